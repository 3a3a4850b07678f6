/**
 * An in-process cluster: several nodes in one process, joined by a hub that can break the
 * network on purpose. It is the test harness for netsplits: every layer above the transport
 * (PubSub, Tracker, remote monitors) is tested against it with the faults real networks have.
 *
 * - Links are directional (`from` → `to`) and FIFO. Each may delay (`delayMs` plus uniform
 *   `jitterMs`, never reordering), drop, duplicate or reorder frames; faults are decided by a
 *   seeded generator, so a run is reproducible given the same sequence of sends.
 * - `partition(groupA, groupB)` cuts every link between the groups in both directions, frames in
 *   flight included; `heal()` restores them.
 * - `kill(name)` stops a node at once, like SIGKILL: no more heartbeats, nothing delivered to
 *   it; frames it already sent stay in flight. `restart(name)` kills it (if alive) and returns a
 *   fresh transport with a new incarnation, ready to `start()`.
 * - Membership by heartbeat, exactly as over a real network (see `transport.ts`): heartbeats
 *   travel the same links as frames, so partitions and delays affect them. Drop, duplicate and
 *   reorder apply to data frames only unless `heartbeats: true` is set in the faults.
 * - Frames are always delivered asynchronously, never inside `sendTo`/`broadcast`, and each
 *   receiver gets its own copy of the payload.
 */
import { PeerTable } from "./membership.js";
import { TransportHandlers } from "./handlers.js";
import type { ClusterTransport, MembershipEvent, TransportLogger, TransportStats } from "./transport.js";

/** What can go wrong on a link. Probabilities are in [0, 1]. */
export interface LinkFaults {
  /** Fixed latency added to every frame, ms. */
  delayMs: number;
  /** Extra latency, uniform in [0, jitterMs), ms. FIFO is kept: a frame never overtakes. */
  jitterMs: number;
  /** Probability that a frame is lost. */
  drop: number;
  /** Probability that a frame is delivered twice (back to back). */
  duplicate: number;
  /**
   * Probability that a frame is held back and delivered right after the next frame on the same
   * link (so `1, 2, 3, 4` becomes `2, 1, 4, 3` with reorder = 1). A held frame with no
   * successor is released after `reorderHoldMs`. Heartbeats (unless `heartbeats` is set) pass a
   * held frame without releasing it.
   */
  reorder: number;
  /** How long a held frame waits for a successor, ms. Default 20. */
  reorderHoldMs: number;
  /** Apply drop, duplicate and reorder to heartbeats too (delay and partitions always apply). */
  heartbeats: boolean;
}

/** A link that does nothing wrong: the defaults of every {@link LinkFaults} field. */
export const NO_FAULTS: Readonly<LinkFaults> = Object.freeze({
  delayMs: 0,
  jitterMs: 0,
  drop: 0,
  duplicate: 0,
  reorder: 0,
  reorderHoldMs: 20,
  heartbeats: false,
});

/** Options of a {@link MemoryCluster}: membership timing, fault seed and faults, logger. */
export interface MemoryClusterOptions {
  /** Heartbeat period of every node, ms. Default 100. */
  heartbeatMs?: number;
  /** A node not heard from for this long is reported down, ms. Default 1000. */
  downAfterMs?: number;
  /** Seed of the generator deciding faults. Default 1. */
  seed?: number;
  /** Faults of every link (see {@link MemoryCluster.setFaults}). Default: none. */
  faults?: Partial<LinkFaults>;
  /** Where handler exceptions are reported. Default: console. */
  logger?: TransportLogger;
}

/** What the hub did to the frames it carried (heartbeats included). */
export interface MemoryClusterStats {
  /** Envelopes handed to the hub (per destination; duplicates not counted). */
  sent: number;
  /** Envelopes handed to a live receiver. */
  delivered: number;
  /** Lost to a partition (at send or while in flight). */
  lostToPartition: number;
  /** Lost to the `drop` fault. */
  lostToDrop: number;
  /** Arrived at a node that was not running (killed, stopped, never started). */
  lostToDeadNode: number;
  /** Extra copies made by the `duplicate` fault. */
  duplicated: number;
  /** Frames delivered after their successor by the `reorder` fault. */
  reordered: number;
}

type Envelope =
  | { kind: "heartbeat"; from: string; incarnation: string }
  | { kind: "frame"; from: string; incarnation: string; channel: string; payload: Uint8Array; copies: number };

interface Queued {
  env: Envelope;
  due: number;
}

const consoleLogger: TransportLogger = {
  warn: (m, meta) => console.warn(`[cinder:memory] ${m}`, ...(meta ? [meta] : [])),
  error: (m, meta) => console.error(`[cinder:memory] ${m}`, ...(meta ? [meta] : [])),
};

/** mulberry32: small, fast, good enough to decide faults reproducibly. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkFaults(f: Partial<LinkFaults>): void {
  for (const k of ["drop", "duplicate", "reorder"] as const) {
    const v = f[k];
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`${k} must be a probability in [0, 1], got ${v}`);
  }
  for (const k of ["delayMs", "jitterMs", "reorderHoldMs"] as const) {
    const v = f[k];
    if (v !== undefined && !(v >= 0 && Number.isFinite(v))) throw new RangeError(`${k} must be a finite number >= 0, got ${v}`);
  }
}

const now = () => performance.now();
const linkKey = (from: string, to: string) => `${from}\u0000${to}`;

let incarnationSeq = 0;
const incarnationPrefix = Math.floor(Math.random() * 0xffffffff).toString(36);

/** One direction between two nodes: a FIFO queue released by a timer. */
class Link {
  private readonly queue: Queued[] = [];
  private head = 0;
  private lastDue = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private immediate: ReturnType<typeof setImmediate> | undefined;
  private held: { item: Queued; timer: ReturnType<typeof setTimeout> } | undefined;

  constructor(
    private readonly hub: MemoryCluster,
    readonly from: string,
    readonly to: string,
  ) {}

  push(env: Envelope, faults: LinkFaults, random: boolean, rng: () => number): void {
    const jitter = faults.jitterMs > 0 ? rng() * faults.jitterMs : 0;
    const item: Queued = { env, due: now() + faults.delayMs + jitter };
    if (this.held !== undefined && random) {
      const held = this.held;
      this.held = undefined;
      clearTimeout(held.timer);
      this.enqueue(item);
      this.enqueue(held.item);
      this.hub.counters.reordered++;
      return;
    }
    if (random && faults.reorder > 0 && rng() < faults.reorder) {
      const timer = setTimeout(() => {
        if (this.held?.item !== item) return;
        this.held = undefined;
        this.enqueue(item);
      }, faults.reorderHoldMs);
      this.held = { item, timer };
      return;
    }
    this.enqueue(item);
  }

  /** Forgets everything queued (used when the hub closes). */
  clear(): void {
    if (this.held !== undefined) clearTimeout(this.held.timer);
    this.held = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.queue.length = 0;
    this.head = 0;
  }

  private enqueue(item: Queued): void {
    // FIFO: never due before what is already queued on this link.
    if (item.due < this.lastDue) item.due = this.lastDue;
    this.lastDue = item.due;
    this.queue.push(item);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.immediate !== undefined) return;
    if (this.head >= this.queue.length) return;
    const wait = this.queue[this.head]!.due - now();
    if (wait <= 1) this.immediate = setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), Math.ceil(wait));
  }

  private flush(): void {
    this.timer = undefined;
    this.immediate = undefined;
    const limit = now() + 1; // timers may fire up to ~1 ms early against performance.now()
    while (this.head < this.queue.length && this.queue[this.head]!.due <= limit) {
      const item = this.queue[this.head]!;
      this.head++;
      this.hub.deliver(this.from, this.to, item.env);
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.schedule();
  }
}

/**
 * The hub: nodes of one in-process cluster and the (faulty) links between them. Faults:
 * `setFaults({ delayMs: 5, drop: 0.1, duplicate: 0.05 })` (every link), `setLink` (one
 * direction of one pair), `partition`/`heal`, `kill`/`restart`.
 *
 * @example
 * ```ts
 * import { MemoryCluster, type MemoryTransport } from "@cinder/runtime";
 * const cluster = new MemoryCluster({ heartbeatMs: 20, downAfterMs: 100, seed: 7 });
 * const a = cluster.node("a"), b = cluster.node("b");
 * const next = (t: MemoryTransport, type: "up" | "down") =>
 *   new Promise((r) => { const off = t.onMembership((e) => { if (e.type === type) { off(); r(e.node); } }); });
 * const got = new Promise((r) => b.onFrame((from, channel, payload) => r([from, channel, [...payload]])));
 * const bUp = next(a, "up");
 * await a.start(); await b.start();
 * console.log(await bUp); // "b" (a sees b up at its first heartbeat)
 * a.sendTo("b", "pubsub", new Uint8Array([1, 2, 3]));
 * console.log(await got); // ["a", "pubsub", [1, 2, 3]]
 * const bDown = next(a, "down");
 * cluster.partition(["a"], ["b"]);
 * console.log(await bDown, a.members()); // ["b", []] (100 ms without a heartbeat)
 * const bBack = next(a, "up");
 * cluster.heal();
 * console.log(await bBack, a.members()); // ["b", ["b"]] (at the next heartbeat)
 * console.log(cluster.stats().lostToPartition > 0); // true
 * await cluster.close();
 * ```
 */
export class MemoryCluster {
  readonly heartbeatMs: number;
  readonly downAfterMs: number;
  readonly seed: number;
  readonly logger: TransportLogger;
  /** @internal */
  readonly counters: MemoryClusterStats = {
    sent: 0,
    delivered: 0,
    lostToPartition: 0,
    lostToDrop: 0,
    lostToDeadNode: 0,
    duplicated: 0,
    reordered: 0,
  };
  private readonly rng: () => number;
  /** Running nodes by name. */
  private readonly running = new Map<string, MemoryTransport>();
  /** Latest transport created for each name. */
  private readonly latest = new Map<string, MemoryTransport>();
  private readonly links = new Map<string, Link>();
  private readonly cuts = new Set<string>();
  private defaultFaults: LinkFaults;
  private readonly linkFaults = new Map<string, Partial<LinkFaults>>();
  private closed = false;

  constructor(opts: MemoryClusterOptions = {}) {
    this.heartbeatMs = opts.heartbeatMs ?? 100;
    this.downAfterMs = opts.downAfterMs ?? 1000;
    if (!(this.heartbeatMs > 0)) throw new RangeError(`heartbeatMs must be > 0, got ${this.heartbeatMs}`);
    if (!(this.downAfterMs > this.heartbeatMs)) {
      throw new RangeError(`downAfterMs (${this.downAfterMs}) must be greater than heartbeatMs (${this.heartbeatMs})`);
    }
    this.seed = opts.seed ?? 1;
    this.rng = mulberry32(this.seed);
    this.logger = opts.logger ?? consoleLogger;
    checkFaults(opts.faults ?? {});
    this.defaultFaults = { ...NO_FAULTS, ...opts.faults };
  }

  /**
   * Creates the transport of node `name` (not started). Throws if a node of that name is running:
   * use {@link restart} to replace a live node.
   */
  node(name: string): MemoryTransport {
    if (this.closed) throw new Error("MemoryCluster is closed");
    if (typeof name !== "string" || name.length === 0) throw new TypeError("node name must be a non-empty string");
    if (this.running.has(name)) throw new Error(`node "${name}" is already running in this cluster (use restart)`);
    const t = new MemoryTransport(this, name, `${name}@${incarnationPrefix}.${++incarnationSeq}`);
    this.latest.set(name, t);
    return t;
  }

  /** The latest transport created for `name`, running or not. */
  transport(name: string): MemoryTransport | undefined {
    return this.latest.get(name);
  }

  /** Names of the running nodes. */
  nodes(): string[] {
    return [...this.running.keys()];
  }

  /** Kills node `name` like SIGKILL: silent at once; frames to it are lost; its frames in flight still arrive. */
  kill(name: string): void {
    this.running.get(name)?.halt();
  }

  /** Kills node `name` if alive and returns a new transport for it (new incarnation), not started. */
  restart(name: string): MemoryTransport {
    this.kill(name);
    return this.node(name);
  }

  /** Cuts every link between `groupA` and `groupB`, both directions. Cumulative until {@link heal}. */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        if (a === b) continue;
        this.cuts.add(linkKey(a, b));
        this.cuts.add(linkKey(b, a));
      }
    }
  }

  /** Removes every partition. */
  heal(): void {
    this.cuts.clear();
  }

  /** True if frames from `from` to `to` are currently lost to a partition. */
  isCut(from: string, to: string): boolean {
    return this.cuts.has(linkKey(from, to));
  }

  /** Sets the faults of every link (replacing the previous defaults; per-link overrides stay). */
  setFaults(faults: Partial<LinkFaults>): void {
    checkFaults(faults);
    this.defaultFaults = { ...NO_FAULTS, ...faults };
  }

  /** Overrides faults on the directional link `from` → `to` (merged over the defaults). */
  setLink(from: string, to: string, faults: Partial<LinkFaults>): void {
    checkFaults(faults);
    this.linkFaults.set(linkKey(from, to), { ...faults });
  }

  /** Removes every fault (defaults and per-link overrides). Partitions stay. */
  clearFaults(): void {
    this.defaultFaults = { ...NO_FAULTS };
    this.linkFaults.clear();
  }

  /** The faults in effect on `from` → `to`. */
  faultsOf(from: string, to: string): LinkFaults {
    const o = this.linkFaults.get(linkKey(from, to));
    return o === undefined ? this.defaultFaults : { ...this.defaultFaults, ...o };
  }

  /** What the hub did to the frames it carried (a copy). */
  stats(): MemoryClusterStats {
    return { ...this.counters };
  }

  /** Stops every node and drops every frame in flight. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of [...this.running.values()]) await t.stop();
    for (const l of this.links.values()) l.clear();
    this.links.clear();
  }

  // ---- used by MemoryTransport and Link -------------------------------------------------

  /** @internal */
  register(t: MemoryTransport): void {
    if (this.closed) throw new Error("MemoryCluster is closed");
    const other = this.running.get(t.nodeName);
    if (other !== undefined && other !== t) throw new Error(`node "${t.nodeName}" is already running in this cluster`);
    this.running.set(t.nodeName, t);
  }

  /** @internal */
  unregister(t: MemoryTransport): void {
    if (this.running.get(t.nodeName) === t) this.running.delete(t.nodeName);
  }

  /** @internal Names of running nodes other than `self`. */
  others(self: string): string[] {
    const out: string[] = [];
    for (const name of this.running.keys()) if (name !== self) out.push(name);
    return out;
  }

  /** @internal Sends one envelope over the link `from` → `to`. */
  route(from: string, to: string, env: Envelope): void {
    this.counters.sent++;
    const key = linkKey(from, to);
    if (this.cuts.has(key)) {
      this.counters.lostToPartition++;
      return;
    }
    const faults = this.faultsOf(from, to);
    const random = env.kind === "frame" || faults.heartbeats;
    if (random && faults.drop > 0 && this.rng() < faults.drop) {
      this.counters.lostToDrop++;
      return;
    }
    let link = this.links.get(key);
    if (link === undefined) {
      link = new Link(this, from, to);
      this.links.set(key, link);
    }
    link.push(env, faults, random, this.rng);
    if (random && faults.duplicate > 0 && this.rng() < faults.duplicate) {
      this.counters.duplicated++;
      link.push(env, faults, random, this.rng);
    }
  }

  /** @internal Called by a link when an envelope is due. */
  deliver(from: string, to: string, env: Envelope): void {
    if (from !== to && this.cuts.has(linkKey(from, to))) {
      this.counters.lostToPartition++;
      return;
    }
    const target = this.running.get(to);
    if (target === undefined) {
      this.counters.lostToDeadNode++;
      return;
    }
    this.counters.delivered++;
    if (env.kind === "frame") {
      // Each delivery gets its own bytes (duplicates included): receivers may mutate them.
      const payload = env.copies++ === 0 ? env.payload : new Uint8Array(env.payload);
      target.receive({ ...env, payload });
    } else {
      target.receive(env);
    }
  }

  /** @internal Loopback for sendTo(self): asynchronous, FIFO, no faults. */
  loopback(t: MemoryTransport, env: Envelope): void {
    const key = linkKey(t.nodeName, t.nodeName);
    let link = this.links.get(key);
    if (link === undefined) {
      link = new Link(this, t.nodeName, t.nodeName);
      this.links.set(key, link);
    }
    this.counters.sent++;
    link.push(env, NO_FAULTS, false, this.rng);
  }
}

/**
 * The transport of one node of a {@link MemoryCluster}. Create it with `cluster.node(name)`.
 *
 * @example
 * ```ts
 * import { MemoryCluster } from "@cinder/runtime";
 * const cluster = new MemoryCluster();
 * const a = cluster.node("a");
 * a.sendTo("b", "x", new Uint8Array([1])); // not started: dropped
 * await a.start();
 * a.sendTo("b", "x", new Uint8Array([1])); // b is not up: dropped
 * console.log(a.running, a.stats()); // [true, { framesIn: 0, framesOut: 0, dropped: 2, decodeErrors: 0 }]
 * const again = cluster.restart("a"); // a kill, and a new incarnation (not started)
 * console.log(a.running, again.incarnation !== a.incarnation); // [false, true]
 * await cluster.close();
 * ```
 */
export class MemoryTransport implements ClusterTransport {
  private state: "new" | "running" | "stopped" = "new";
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private readonly peers: PeerTable;
  private readonly handlers: TransportHandlers;
  private readonly counters: TransportStats = { framesIn: 0, framesOut: 0, dropped: 0, decodeErrors: 0 };

  /** @internal use `cluster.node(name)` */
  constructor(
    private readonly hub: MemoryCluster,
    readonly nodeName: string,
    readonly incarnation: string,
  ) {
    this.peers = new PeerTable({ downAfterMs: hub.downAfterMs, onEvent: (e) => this.emitMembership(e) });
    this.handlers = new TransportHandlers(nodeName, (_kind, message, error) => hub.logger.error(message, { error }));
  }

  /** True between `start()` and `stop()`/kill. */
  get running(): boolean {
    return this.state === "running";
  }

  async start(): Promise<void> {
    if (this.state === "running") return;
    if (this.state === "stopped") {
      throw new Error(`transport of "${this.nodeName}" was stopped; use cluster.restart("${this.nodeName}") for a new incarnation`);
    }
    this.hub.register(this);
    this.state = "running";
    this.peers.start();
    this.sendHeartbeat();
    this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), this.hub.heartbeatMs);
    this.heartbeatTimer.unref?.();
  }

  async stop(): Promise<void> {
    this.halt();
  }

  sendTo(node: string, channel: string, payload: Uint8Array): void {
    if (this.state !== "running") {
      this.counters.dropped++;
      return;
    }
    if (node !== this.nodeName && !this.peers.isUp(node)) {
      this.counters.dropped++;
      return;
    }
    this.counters.framesOut++;
    const env = this.frame(channel, payload);
    if (node === this.nodeName) this.hub.loopback(this, env);
    else this.hub.route(this.nodeName, node, env);
  }

  broadcast(channel: string, payload: Uint8Array): void {
    if (this.state !== "running") {
      this.counters.dropped++;
      return;
    }
    this.counters.framesOut++;
    for (const to of this.hub.others(this.nodeName)) this.hub.route(this.nodeName, to, this.frame(channel, payload));
  }

  onFrame(handler: (from: string, channel: string, payload: Uint8Array) => void): () => void {
    return this.handlers.onFrame(handler);
  }

  onMembership(handler: (event: MembershipEvent) => void): () => void {
    return this.handlers.onMembership(handler);
  }

  members(): string[] {
    return this.state === "running" ? this.peers.members() : [];
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  /** @internal Stops at once (kill and stop are the same here: there is no goodbye message). */
  halt(): void {
    if (this.state === "stopped") return;
    this.state = "stopped";
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.peers.stop();
    this.peers.clear();
    this.hub.unregister(this);
  }

  /** @internal Called by the hub when an envelope arrives. */
  receive(env: Envelope): void {
    if (this.state !== "running") return;
    if (env.kind === "heartbeat") {
      this.peers.heartbeat(env.from, env.incarnation);
      return;
    }
    const self = env.from === this.nodeName && env.incarnation === this.incarnation;
    if (!self && !this.peers.frame(env.from, env.incarnation)) {
      this.counters.dropped++;
      return;
    }
    this.counters.framesIn++;
    this.handlers.emitFrame(env.from, env.channel, env.payload);
  }

  private frame(channel: string, payload: Uint8Array): Envelope {
    // Copy now: the caller may reuse its buffer as soon as we return.
    return { kind: "frame", from: this.nodeName, incarnation: this.incarnation, channel, payload: new Uint8Array(payload), copies: 0 };
  }

  private sendHeartbeat(): void {
    if (this.state !== "running") return;
    const env: Envelope = { kind: "heartbeat", from: this.nodeName, incarnation: this.incarnation };
    for (const to of this.hub.others(this.nodeName)) this.hub.route(this.nodeName, to, env);
  }

  private emitMembership(e: MembershipEvent): void {
    if (this.state !== "running") return;
    this.handlers.emitMembership(e);
  }
}
