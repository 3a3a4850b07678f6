/**
 * The cluster adapter: PubSub across nodes over any `ClusterTransport` (memory, Redis), with
 * interest routing (PUBSUB.md 1.5, 1.6, 2.3, 2.4).
 *
 * ## Protocol
 *
 * Every frame is an array encoded with the runtime's versioned cluster codec (`encodeFrame`),
 * sent on the transport channel `pubsub:<name>`:
 *
 * | frame | sent with | meaning |
 * |---|---|---|
 * | `["b", lane, topic, msg, dispatcher]` | `sendTo` each interested peer, or `broadcast` when all are | a broadcast |
 * | `["d", lane, topic, msg, dispatcher]` | `sendTo(node)` | a direct broadcast (ignores interest) |
 * | `["i", session, seq, added[], removed[]]` | `broadcast` | interest delta: topics that gained their first / lost their last subscriber on the sender |
 * | `["s", session, seq, part, parts, topics[], wantReply]` | `sendTo` | the sender's full interest set as of `seq`, in parts |
 * | `["h", session, seq]` | `broadcast`, every `interestSyncMs` | digest: "my interest is at `seq`" |
 * | `["r"]` | `sendTo` | "send me your full set" |
 * | `["a", session, seq]` | `sendTo` | "I applied your interest up to `seq`" (for `PubSub.synced`) |
 *
 * - **Sessions and sequence numbers.** Each adapter start picks a random `session`; each delta
 *   gets the next `seq` (a big change is cut into several deltas). A peer applies a delta only
 *   if it is the next one of the session it knows; a gap, an unknown session, or a digest ahead
 *   of what it applied makes the sender *unknown* to it: it asks for the full set (`r`) and,
 *   until that arrives, sends every broadcast to that node unconditionally. A duplicate (seq
 *   already applied) is ignored; a stale full set (older seq of the same session) too. So lost,
 *   duplicated or reordered announcements are repaired by the next delta or, at the latest, by
 *   the next digest.
 * - **Membership.** Every `up` of a peer (first contact, a restart, a transport reconnect, a
 *   healed partition: the transport reports each as `up`) starts a resync: the peer is unknown
 *   (unconditional sends) and gets our full set with `wantReply`, which it answers with its own.
 *   A `down` forgets the peer and its interest: nothing is sent to it until it is up again.
 * - **Routing.** A broadcast goes to the peers that are unknown or whose set has the topic, one
 *   frame per node (`framesSaved` counts the nodes skipped). The receiver drops (and counts as
 *   `staleFrames`) a `b` frame for a topic it no longer has; `d` frames are always dispatched.
 * - **Lanes.** The sender's lane is `hash(sender pid) mod broadcastPoolSize` (0 for a node
 *   context); the receiver uses its lane `lane mod poolSize`, so one sender always lands on one
 *   lane (FIFO per sender and subscriber, with the transport's FIFO per node pair), and nodes
 *   with different pool sizes lose nothing.
 * - **Partitions.** While a partition lasts, frames across it are lost (at most once: nothing is
 *   replayed). Until the transport reports the other side `down`, broadcasts are still sent into
 *   the void; after it, they are not sent at all. Interest changes made during the split are
 *   lost too. **On heal** the transport reports the peers `up` again, each side resyncs the
 *   other's full set (one round trip), and broadcasts reach every existing subscriber again;
 *   a split shorter than the transport's down detection is repaired by the seq gap of the next
 *   delta or by the next digest.
 * - **Transport down** (Redis outage): `broadcast` returns a `transport` BroadcastError (local
 *   delivery still happens, 2.7); after the reconnect every peer comes back `up` and resyncs.
 * - **Bad frames.** A frame that does not decode, or decodes to something that is not one of the
 *   frames above, is counted (`decodeErrors`) and logged (throttled); it never throws.
 */
import { randomBytes } from "node:crypto";
import { TimeoutError, decodeFrame, encodeFrame, formatReason, type ClusterTransport, type MembershipEvent } from "@cinder/runtime";
import type { Adapter, AdapterContext, AdapterFactory, AdapterStats } from "./adapter.js";
import { BroadcastError } from "./errors.js";
import { PeerInterest } from "./peer_interest.js";

/** Options of {@link clusterAdapter}. */
export interface ClusterAdapterOptions {
  /** Transport channel. Default `pubsub:<name>`. */
  channel?: string;
  /** Period of the interest digest (repairs lost announcements), ms. Default 1000. */
  interestSyncMs?: number;
  /** Topics per interest frame (bigger sets are cut into parts). Default 4096. */
  maxTopicsPerFrame?: number;
}

/** Counters of a cluster adapter (`PubSub.stats(ps).adapter`). */
export interface ClusterAdapterStats extends AdapterStats {
  kind: "cluster";
  channel: string;
  connected: boolean;
  session: string;
  seq: number;
  /** broadcast and direct frames sent (one per destination node) */
  framesOut: number;
  /** frames received on the channel (all kinds) */
  framesIn: number;
  /** destination nodes skipped because they have no subscriber for the topic */
  framesSaved: number;
  /** broadcast frames received for a topic this node no longer has (dropped) */
  staleFrames: number;
  decodeErrors: number;
  encodeErrors: number;
  interestFramesOut: number;
  interestFramesIn: number;
  fullSetsApplied: number;
  resyncRequests: number;
  /** topics some peer is interested in */
  interestTopics: number;
  peers: Array<{ node: string; known: boolean; topics: number; framesOut: number; framesSaved: number; acked: number }>;
}

class Peer {
  readonly name: string;
  readonly slot: number;
  known = false;
  session: string | null = null;
  seq = -1;
  partial: { session: string; seq: number; parts: number; next: number; topics: string[] } | null = null;
  requestedAt = -Infinity;
  /** their acknowledgement of our interest (our session) */
  acked = -1;
  framesOut = 0;
  framesSaved = 0;
  constructor(name: string, slot: number) {
    this.name = name;
    this.slot = slot;
  }
}

/** Is the transport connected? (duck-typed: `isConnected`, `connected` or `running` if it has one) */
function transportUp(t: ClusterTransport): boolean {
  const a = t as unknown as { isConnected?: unknown; connected?: unknown; running?: unknown };
  if (typeof a.isConnected === "boolean") return a.isConnected;
  if (typeof a.connected === "boolean") return a.connected;
  if (typeof a.running === "boolean") return a.running;
  return true;
}

const isLane = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x >= 0;
const isStrings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === "string");

/**
 * The adapter for a cluster: broadcasts travel over `transport` (which the caller starts and
 * stops; it may be shared with other services) only to nodes with subscribers for the topic.
 *
 * @example
 * ```ts
 * import { startNode, MemoryCluster } from "@cinder/runtime";
 * import { PubSub, clusterAdapter } from "@cinder/pubsub";
 * const cluster = new MemoryCluster({ heartbeatMs: 20, downAfterMs: 200 });
 * const t = cluster.node("a");
 * await t.start();
 * const node = await startNode({ name: "a", schedulers: 1 });
 * const ps = await PubSub.start(node, { name: "doc_cluster", adapter: clusterAdapter(t) });
 * console.log(PubSub.nodeName(ps)); // "a"
 * await node.stop();
 * await cluster.close();
 * ```
 */
export function clusterAdapter(transport: ClusterTransport, opts: ClusterAdapterOptions = {}): AdapterFactory {
  const f = (ctx: AdapterContext) => new ClusterAdapter(transport, ctx, opts).start();
  return Object.assign(f, { interestRouting: true as const });
}

class ClusterAdapter implements Adapter {
  private readonly t: ClusterTransport;
  private readonly ctx: AdapterContext;
  private readonly channel: string;
  private readonly syncMs: number;
  private readonly chunk: number;
  private readonly session = randomBytes(6).toString("hex");
  private seq = 0;
  private readonly peers = new Map<string, Peer>();
  private readonly interest = new PeerInterest();
  private readonly unsubs: Array<() => void> = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private waiters: Array<{ seq: number; resolve: () => void; reject: (e: unknown) => void; timer: ReturnType<typeof setTimeout> | undefined }> = [];
  private stopped = false;
  private c = {
    framesOut: 0,
    framesIn: 0,
    framesSaved: 0,
    staleFrames: 0,
    decodeErrors: 0,
    encodeErrors: 0,
    interestFramesOut: 0,
    interestFramesIn: 0,
    fullSetsApplied: 0,
    resyncRequests: 0,
  };

  constructor(t: ClusterTransport, ctx: AdapterContext, opts: ClusterAdapterOptions) {
    this.t = t;
    this.ctx = ctx;
    this.channel = opts.channel ?? `pubsub:${ctx.name}`;
    this.syncMs = opts.interestSyncMs ?? 1000;
    this.chunk = opts.maxTopicsPerFrame ?? 4096;
    if (!(this.syncMs > 0)) throw new RangeError(`interestSyncMs must be > 0, got ${this.syncMs}`);
    if (!(this.chunk >= 1)) throw new RangeError(`maxTopicsPerFrame must be ≥ 1, got ${this.chunk}`);
  }

  start(): this {
    this.unsubs.push(this.t.onFrame(this.onFrame), this.t.onMembership(this.onMembership), this.ctx.onInterest(this.onLocalInterest));
    for (const m of this.t.members()) this.peerUp(m);
    this.timer = setInterval(this.tick, this.syncMs);
    this.timer.unref?.();
    return this;
  }

  nodeName(): string {
    return this.t.nodeName;
  }

  // ---- sending -----------------------------------------------------------------------------

  broadcast(topic: string, msg: unknown, dispatcher: string | null, lane: number): BroadcastError | null {
    if (!transportUp(this.t)) return this.downError(topic, [...this.peers.keys()]);
    if (this.peers.size === 0) return null;
    const mask = this.interest.maskOf(topic);
    let targets: Peer[] | null = null;
    let all = true;
    for (const p of this.peers.values()) {
      if (!p.known || this.interest.hasIn(mask, p.slot, topic)) (targets ??= []).push(p);
      else {
        all = false;
        p.framesSaved++;
        this.c.framesSaved++;
      }
    }
    if (targets === null) return null;
    const bytes = this.encode(["b", lane, topic, msg, dispatcher], topic, targets);
    if (bytes instanceof BroadcastError) return bytes;
    if (all && targets.length > 1) this.t.broadcast(this.channel, bytes);
    else for (const p of targets) this.t.sendTo(p.name, this.channel, bytes);
    for (const p of targets) p.framesOut++;
    this.c.framesOut += targets.length;
    return null;
  }

  directBroadcast(node: string, topic: string, msg: unknown, dispatcher: string | null, lane: number): BroadcastError | null {
    if (!transportUp(this.t)) return this.downError(topic, [node]);
    const p = this.peers.get(node);
    if (p === undefined) return null; // unknown or down node: delivers nothing, as Phoenix
    const bytes = this.encode(["d", lane, topic, msg, dispatcher], topic, [p]);
    if (bytes instanceof BroadcastError) return bytes;
    this.t.sendTo(node, this.channel, bytes);
    p.framesOut++;
    this.c.framesOut++;
    return null;
  }

  private encode(frame: unknown[], topic: string, targets: Peer[]): Uint8Array | BroadcastError {
    try {
      return encodeFrame(frame);
    } catch (e) {
      this.c.encodeErrors++;
      const nodes = targets.map((p) => p.name);
      return new BroadcastError("encode", `message for ${topic} cannot be encoded for node(s) ${nodes.join(", ")}: ${formatReason(e)}`, { nodes, cause: e });
    }
  }

  private downError(topic: string, nodes: string[]): BroadcastError {
    return new BroadcastError("transport", `transport of node ${this.t.nodeName} is down: ${topic} not sent to other nodes`, { nodes });
  }

  private send(node: string, frame: unknown[]): void {
    this.t.sendTo(node, this.channel, encodeFrame(frame));
    this.c.interestFramesOut++;
  }

  private sendFull(p: Peer, wantReply: boolean): void {
    const topics = [...this.ctx.localTopics()];
    const parts = Math.max(1, Math.ceil(topics.length / this.chunk));
    for (let i = 0; i < parts; i++) this.send(p.name, ["s", this.session, this.seq, i, parts, topics.slice(i * this.chunk, (i + 1) * this.chunk), wantReply && i === 0]);
  }

  private requestFull(p: Peer, force = false): void {
    const now = performance.now();
    if (!force && now - p.requestedAt < this.syncMs / 2) return;
    p.requestedAt = now;
    this.c.resyncRequests++;
    this.send(p.name, ["r"]);
  }

  private readonly onLocalInterest = (added: string[], removed: string[]): void => {
    if (this.stopped) return;
    const n = Math.max(added.length, removed.length);
    for (let i = 0; i === 0 || i < n; i += this.chunk) {
      this.seq++;
      const frame = encodeFrame(["i", this.session, this.seq, added.slice(i, i + this.chunk), removed.slice(i, i + this.chunk)]);
      this.t.broadcast(this.channel, frame);
      this.c.interestFramesOut++;
    }
  };

  private readonly tick = (): void => {
    if (this.stopped || this.peers.size === 0) return;
    this.t.broadcast(this.channel, encodeFrame(["h", this.session, this.seq]));
    this.c.interestFramesOut++;
    for (const p of this.peers.values()) if (!p.known) this.requestFull(p);
  };

  // ---- receiving ---------------------------------------------------------------------------

  private readonly onFrame = (from: string, channel: string, payload: Uint8Array): void => {
    if (channel !== this.channel || this.stopped) return;
    this.c.framesIn++;
    let f: unknown;
    try {
      f = decodeFrame(payload);
    } catch (e) {
      this.bad(from, e);
      return;
    }
    if (!Array.isArray(f) || typeof f[0] !== "string") return this.bad(from, "not a pubsub frame");
    switch (f[0]) {
      case "b":
      case "d": {
        const [, lane, topic, msg, dispatcher] = f as [string, unknown, unknown, unknown, unknown];
        if (!isLane(lane) || typeof topic !== "string" || (dispatcher !== null && typeof dispatcher !== "string")) return this.bad(from, `malformed ${f[0]} frame`);
        if (f[0] === "b" && !this.ctx.hasSubscribers(topic)) {
          this.c.staleFrames++;
          return;
        }
        this.ctx.deliver(lane, topic, msg, dispatcher);
        return;
      }
      case "i": {
        const [, session, seq, added, removed] = f as [string, unknown, unknown, unknown, unknown];
        if (typeof session !== "string" || !isLane(seq) || !isStrings(added) || !isStrings(removed)) return this.bad(from, "malformed interest delta");
        this.c.interestFramesIn++;
        const p = this.peerFor(from);
        if (p.known && p.session === session) {
          if (seq <= p.seq) return; // duplicate
          if (seq === p.seq + 1) {
            for (const t of added) this.interest.add(p.slot, t);
            for (const t of removed) this.interest.remove(p.slot, t);
            p.seq = seq;
            this.send(from, ["a", session, seq]);
            return;
          }
        }
        // a gap, or a session we do not know: unknown until its full set arrives
        this.forget(p);
        this.requestFull(p);
        return;
      }
      case "s": {
        const [, session, seq, part, parts, topics, wantReply] = f as [string, unknown, unknown, unknown, unknown, unknown, unknown];
        if (typeof session !== "string" || !isLane(seq) || !isLane(part) || !isLane(parts) || part >= parts || !isStrings(topics)) return this.bad(from, "malformed interest set");
        this.c.interestFramesIn++;
        const p = this.peerFor(from);
        if (wantReply === true) this.sendFull(p, false);
        if (part === 0) p.partial = { session, seq, parts, next: 0, topics: [] };
        const acc = p.partial;
        if (acc === null || acc.session !== session || acc.seq !== seq || acc.next !== part) {
          p.partial = null; // a part went missing: ask again
          this.requestFull(p, true);
          return;
        }
        for (const t of topics) acc.topics.push(t);
        acc.next++;
        if (acc.next < parts) return;
        p.partial = null;
        if (p.known && p.session === session && seq < p.seq) return; // stale copy
        this.interest.clear(p.slot);
        for (const t of acc.topics) this.interest.add(p.slot, t);
        p.known = true;
        p.session = session;
        p.seq = seq;
        this.c.fullSetsApplied++;
        this.send(from, ["a", session, seq]);
        return;
      }
      case "h": {
        const [, session, seq] = f as [string, unknown, unknown];
        if (typeof session !== "string" || !isLane(seq)) return this.bad(from, "malformed digest");
        this.c.interestFramesIn++;
        const p = this.peerFor(from);
        if (!p.known || p.session !== session || p.seq < seq) {
          this.forget(p);
          this.requestFull(p);
        }
        return;
      }
      case "r":
        this.c.interestFramesIn++;
        this.sendFull(this.peerFor(from), false);
        return;
      case "a": {
        const [, session, seq] = f as [string, unknown, unknown];
        if (typeof session !== "string" || !isLane(seq)) return this.bad(from, "malformed ack");
        this.c.interestFramesIn++;
        if (session !== this.session) return;
        const p = this.peerFor(from);
        if (seq > p.acked) p.acked = seq;
        this.checkWaiters();
        return;
      }
      default:
        return this.bad(from, `unknown frame kind ${JSON.stringify(f[0])}`);
    }
  };

  private bad(from: string, e: unknown): void {
    const n = ++this.c.decodeErrors;
    if (n <= 10 || n % 1000 === 0) {
      this.ctx.logger.warn(`pubsub ${this.ctx.name}: dropped a frame from ${from} that does not decode (${n} so far): ${formatReason(e)}`, { from, count: n });
    }
  }

  // ---- membership --------------------------------------------------------------------------

  private readonly onMembership = (e: MembershipEvent): void => {
    if (this.stopped || e.node === this.t.nodeName) return;
    if (e.type === "up") this.peerUp(e.node);
    else this.peerDown(e.node);
  };

  /** A peer is up (first contact or again): resync both ways. */
  private peerUp(node: string): void {
    const p = this.peerFor(node, false);
    this.forget(p);
    p.acked = -1;
    p.requestedAt = performance.now();
    this.sendFull(p, true);
  }

  private peerDown(node: string): void {
    const p = this.peers.get(node);
    if (p === undefined) return;
    this.peers.delete(node);
    this.interest.release(p.slot);
    this.checkWaiters();
  }

  private peerFor(node: string, resyncIfNew = true): Peer {
    let p = this.peers.get(node);
    if (p === undefined) {
      p = new Peer(node, this.interest.alloc());
      this.peers.set(node, p);
      if (resyncIfNew) {
        p.requestedAt = performance.now();
        this.sendFull(p, true);
      }
    }
    return p;
  }

  /** Unknown until its full set arrives: broadcasts go to it unconditionally meanwhile. */
  private forget(p: Peer): void {
    if (p.known) this.interest.clear(p.slot);
    p.known = false;
    p.session = null;
    p.seq = -1;
    p.partial = null;
  }

  // ---- sync, stats, stop -------------------------------------------------------------------

  synced(timeoutMs: number): Promise<void> {
    this.ctx.flushInterest();
    const seq = this.seq;
    if (this.allAcked(seq)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { seq, resolve, reject, timer: undefined as ReturnType<typeof setTimeout> | undefined };
      if (timeoutMs !== Infinity) {
        w.timer = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          const missing = [...this.peers.values()].filter((p) => p.acked < seq).map((p) => p.name);
          reject(new TimeoutError(`PubSub.synced (${this.ctx.name}: no acknowledgement from ${missing.join(", ")})`, timeoutMs));
        }, timeoutMs);
      }
      this.waiters.push(w);
    });
  }

  private allAcked(seq: number): boolean {
    for (const p of this.peers.values()) if (p.acked < seq) return false;
    return true;
  }

  private checkWaiters(): void {
    if (this.waiters.length === 0) return;
    const keep = [];
    for (const w of this.waiters) {
      if (this.allAcked(w.seq)) {
        if (w.timer !== undefined) clearTimeout(w.timer);
        w.resolve();
      } else keep.push(w);
    }
    this.waiters = keep;
  }

  stats(): ClusterAdapterStats {
    return {
      kind: "cluster",
      node: this.t.nodeName,
      channel: this.channel,
      connected: transportUp(this.t),
      session: this.session,
      seq: this.seq,
      ...this.c,
      interestTopics: this.interest.size,
      peers: [...this.peers.values()].map((p) => ({ node: p.name, known: p.known, topics: this.interest.countOf(p.slot), framesOut: p.framesOut, framesSaved: p.framesSaved, acked: p.acked })),
    };
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    for (const u of this.unsubs) u();
    for (const w of this.waiters) {
      if (w.timer !== undefined) clearTimeout(w.timer);
      w.reject(new Error(`PubSub ${this.ctx.name}: adapter stopped`));
    }
    this.waiters = [];
  }
}
