/**
 * `Shard`: one actor per shard of a tracker pool, a thin GenServer over the pure {@link State}
 * (TRACKER.md section 3). It owns one replica's State, replicates it over PubSub, watches the
 * actors it tracks, and publishes a {@link ShardHandle} through which readers list presences
 * without sending it a message.
 *
 * # Shard protocol (version {@link PROTOCOL_VERSION})
 *
 * **Replicas.** Shard *i* of every node forms replication group *i* (topic → shard by
 * `shardOf(topic, poolSize)`, FNV-1a over UTF-8, the same on every node). Each start of a
 * shard is a new replica, named `(node name, vsn)` with a vsn unique per start. All messages
 * travel on the PubSub topic `cinder.tracker:<name>:<i>`, to which every shard of group *i*
 * subscribes, and carry `{ v, name, shard, pool, from }`: protocol version, tracker name, shard
 * index, pool size and the sender's replica id. A message whose `v`, `name`, `shard` or `pool`
 * differs from the receiver's is logged (throttled), counted (`mismatches`) and never merged
 * (TRACKER.md 5.6: a pool size mismatch would otherwise route topics to different groups).
 *
 * | message | sent with | content |
 * |---|---|---|
 * | `hb` heartbeat | `broadcastFrom` (every node but this one) | `seq` (1, 2, … per replica), `delta` (or null), `clock` = `State.clocks()` |
 * | `req` transfer request | `directBroadcast` to the peer's node | `ref`, `to` (the peer's replica), `clock` (what the requester knows) |
 * | `ack` transfer answer | `directBroadcast` to the requester's node | `ref`, `to` (the requester), `payload`: a delta window or the full state |
 * | `bye` graceful permdown | `broadcastFrom` | — |
 *
 * PubSub delivers one sender's messages to a node in send order (PUBSUB.md 2.4), so one
 * replica's deltas are merged in order, gaps allowed (the State's delivery contract).
 *
 * **Local changes.** `track`, `untrack`, `update` and the exit of a tracked actor change the
 * State at once (rows and pending delta), then call `handleDiff`, then reply: a reader that
 * runs after the reply, or after receiving a message sent from `handleDiff`, sees the change.
 * Each tracked pid is monitored once per shard (removed with its last presence); its DOWN
 * removes all its presences. Leaves of consecutive exits are reported in one `handleDiff`
 * call (sent before any other diff, so a join and a leave of one presence are never reordered).
 *
 * **Tick** (every `broadcastPeriod`; the first within `broadcastPeriod / 4` of start). The tick
 * runs at the start of whatever message the shard handles once it is due, so a backlog of calls
 * never delays it by more than one message; an idle shard is woken by a timer (TRACKER.md 5.5).
 * 0. protocol messages queued behind local calls are taken out of the mailbox and handled first
 *    (a long mailbox is scanned at most every `downPeriod / 8`: the scan costs O(mailbox));
 * 1. if the pending delta has dots: broadcast it in a heartbeat, reset it, push it into the delta
 *    generations; else every `maxSilentPeriods + 1` ticks broadcast an empty heartbeat (also
 *    counted in time, `(maxSilentPeriods + ½) × broadcastPeriod`, so that a shard whose ticks
 *    run late still announces itself);
 * 2. every `clockSamplePeriods` ticks: add the own clock to the clocks received since the last
 *    sample (keeping only non-dominated ones) and send a `req` to each remaining peer, so only
 *    the most advanced peer is asked when it dominates the others. Clocks are compared on the
 *    replicas this shard shows (met and not down): what a peer knows of a replica this shard
 *    flags down or never met could not be shown, so asking for it would only repeat transfers
 *    (Phoenix's F3 loop, or a full transfer every sample through a third node during a
 *    partial partition). No second `req` goes to a peer while one is younger than
 *    `downPeriod / 2` (its answer, maybe a big full state, may still be on the way);
 * 3. peers silent longer than `downPeriod` go down (their presences are hidden and reported as
 *    leaves, but kept), longer than `permdownPeriod` are purged (no diff).
 *
 * **Heartbeat received** from replica r with number `seq`: a `seq` not above the last one merged
 * from r (duplicate or reordered delivery) is dropped and counted, and changes nothing.
 * Otherwise the peer record is refreshed with the arrival time: an unknown node is up; a new
 * vsn for a known node means it restarted: its old replica is downed and purged at once and the
 * new one starts empty; the replaced replica is *retired*: anything still arriving from it (its
 * heartbeats travel from another sender than its successor's, so in no order with them) is
 * dropped for `permdownPeriod`, as is anything from a replica gone by graceful permdown. The
 * delta is merged, its joins and leaves reported (never for rows of a replica flagged down:
 * TRACKER.md 5.4), and it is pushed into the generations. Arrival times are taken when the
 * shard handles the heartbeat: at once when idle, at the next tick behind a backlog.
 *
 * **Transfers.** A `req` is answered with the smallest retained delta window that bridges the
 * requester's gap, else the whole state, restricted to the replicas the requester knows. An
 * `ack` is merged only if it answers a request this replica sent to that peer and is still
 * waiting for (so a duplicate is merged once); a full state clears the generations.
 *
 * **Partitions.** Silence cannot be told from a crash: while a split lasts each side marks the
 * other down after `downPeriod` and lists only its own side's presences. When heartbeats resume
 * with the same vsn within `permdownPeriod`, the peer is live again but its presences stay
 * hidden until this shard has caught up with it: if the heartbeat's clock shows that nothing was
 * missed they are shown at once, otherwise a `req` goes to that peer (with a context that
 * includes it) and its answer is merged silently first; then the presences still present are
 * reported as joins. So a presence that left during the split is never reported as joined again
 * (TRACKER.md 5.3). Past `permdownPeriod` each side has purged the other; after the heal they
 * meet as new replicas and clock sampling transfers what is still alive. Views are not
 * transitive: with a–b and b–c up but a–c cut, c never shows a's presences.
 *
 * **Exit.** `gracefulPermdown` broadcasts `bye` and stops the shard normally; peers that know
 * exactly that replica down and purge it at once. With `permdownOnShutdown`, an orderly node
 * shutdown does the same. A crash costs peers `downPeriod`. When the shard exits for any reason,
 * every actor it tracks gets an exit signal with the shard's reason (or a message, with
 * `onShardExit: "notify"`), as Phoenix's link would give it, so no actor believes itself present
 * in a shard that forgot it.
 */
import { randomBytes } from "node:crypto";
import { formatReason, GenServer, type CallResult, type ExitReason, type From, type GenServerBehaviour, type Logger, type MonitorRef, type Pid, type Process, type TimerRef } from "@cinder/runtime";
import { PubSub, type PubSubRef } from "@cinder/pubsub";
import { appendClock, filter, type Clock, type ClockSet } from "./clock.js";
import type { Generations } from "./generations.js";
import type { ResolvedOptions, ShardInfo, TopicDiff, TrackerDiff } from "./options.js";
import * as Peers from "./peers.js";
import type { Pool } from "./registry.js";
import * as State from "./state.js";
import type { Delta, Meta, Payload, ReplicaId, Row, TrackerState } from "./state.js";

/**
 * Version of the messages between shards; a peer with another one is reported and ignored.
 *
 * @example
 * ```ts
 * import { PROTOCOL_VERSION } from "@cinder/tracker";
 * console.log(PROTOCOL_VERSION); // 1
 * ```
 */
export const PROTOCOL_VERSION = 1;

/**
 * The PubSub topic shard `index` of tracker `name` replicates on (the same on every node).
 *
 * @example
 * ```ts
 * import { shardTopic } from "@cinder/tracker";
 * console.log(shardTopic("presence", 3)); // "cinder.tracker:presence:3"
 * ```
 */
export function shardTopic(name: string, index: number): string {
  return `cinder.tracker:${name}:${index}`;
}

// ---- messages --------------------------------------------------------------------------------

interface WireBase {
  readonly $tracker: "hb" | "req" | "ack" | "bye";
  readonly v: number;
  readonly name: string;
  readonly shard: number;
  readonly pool: number;
  readonly from: ReplicaId;
}
/** @internal */
export interface Heartbeat extends WireBase {
  readonly $tracker: "hb";
  readonly seq: number;
  readonly delta: Delta | null;
  readonly clock: Clock;
}
/** @internal */
export interface TransferReq extends WireBase {
  readonly $tracker: "req";
  readonly ref: string;
  readonly to: ReplicaId;
  readonly clock: Clock;
}
/** @internal */
export interface TransferAck extends WireBase {
  readonly $tracker: "ack";
  readonly ref: string;
  readonly to: ReplicaId;
  readonly payload: Payload;
}
/** @internal */
export interface Bye extends WireBase {
  readonly $tracker: "bye";
}
/** @internal a message between shards */
export type Wire = Heartbeat | TransferReq | TransferAck | Bye;

/** Messages a shard sends itself. */
type SelfMsg = { readonly $shard: "tick"; readonly id: number } | { readonly $shard: "flush_exits" };

/** @internal the calls the pool makes */
export type ShardCall =
  | { readonly op: "track"; readonly pid: Pid; readonly topic: string; readonly key: string; readonly meta: Meta }
  | { readonly op: "untrack"; readonly pid: Pid; readonly topic: string; readonly key: string }
  | { readonly op: "untrack_all"; readonly pid: Pid }
  | { readonly op: "update"; readonly pid: Pid; readonly topic: string; readonly key: string; readonly meta: Meta; readonly ifRef?: string }
  | { readonly op: "graceful_permdown" };

/** @internal the answers */
export type ShardReply = { readonly ok: string } | { readonly error: "already_tracked" | "nopresence" | "conflict" | "not_local" };

// ---- stats -----------------------------------------------------------------------------------

/**
 * Counters of one shard (see `Tracker.stats`), from its start.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, type ShardCounters } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const tracker = await Tracker.start(node, { name: "doc_cnt", pubsub: await PubSub.start(node, { name: "doc_cnt_ps" }), handleDiff: (_d, s) => ({ state: s }) });
 * const me = node.process();
 * await Tracker.track(me, tracker, me.pid, "room", "me", {});
 * const c: ShardCounters = Tracker.stats(node, tracker)[0]!;
 * console.log([c.diffCalls, c.diffJoins, c.mismatches]); // [1, 1, 0]
 * await node.stop();
 * ```
 */
export interface ShardCounters {
  heartbeatsSent: number;
  emptyHeartbeatsSent: number;
  heartbeatsReceived: number;
  /** heartbeats dropped because their number was not above the last merged (duplicate, reordered) */
  heartbeatsDropped: number;
  transferReqsSent: number;
  transferReqsReceived: number;
  /** transfer answers sent with a delta window / with the whole state */
  windowTransfersSent: number;
  fullTransfersSent: number;
  acksMerged: number;
  /** answers to no pending request of ours (duplicates, late, or for another incarnation) */
  acksDropped: number;
  /** messages of another protocol version, tracker name, shard index or pool size */
  mismatches: number;
  /** messages on the shard topic that are not tracker messages */
  malformed: number;
  /** messages from a replica replaced by a newer incarnation or gone by graceful permdown */
  retiredDropped: number;
  ups: number;
  downs: number;
  permdowns: number;
  /** DOWN messages of tracked actors handled */
  exits: number;
  diffCalls: number;
  diffJoins: number;
  diffLeaves: number;
  /** protocol messages taken out of the mailbox ahead of local calls at a tick */
  urgentTaken: number;
  ticks: number;
}

/**
 * A peer as a shard sees it (`ShardStats.peers`).
 *
 * @example
 * ```ts
 * import type { PeerInfo } from "@cinder/tracker";
 * const live = (peers: PeerInfo[]) => peers.filter((p) => p.status === "up" && !p.catchingUp).map((p) => p.node);
 * console.log(live([{ replica: "b#x.1" as never, node: "b", status: "up", catchingUp: false, silentFor: 12 }])); // ["b"]
 * ```
 */
export interface PeerInfo {
  readonly replica: ReplicaId;
  readonly node: string;
  readonly status: "up" | "down";
  /** Live again, presences hidden until caught up (TRACKER.md 5.3). */
  readonly catchingUp: boolean;
  /** ms since its last heartbeat arrived */
  readonly silentFor: number;
}

/**
 * One shard's view, from `Tracker.stats`: its replica, peers, sizes and counters.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, type ShardStats } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const tracker = await Tracker.start(node, { name: "doc_stats", pubsub: await PubSub.start(node, { name: "doc_stats_ps" }), poolSize: 2 });
 * const stats: ShardStats[] = Tracker.stats(node, tracker);
 * console.log(stats.map((s) => [s.shard, s.rows, s.peers.length])); // [[0, 0, 0], [1, 0, 0]]
 * await node.stop();
 * ```
 */
export interface ShardStats extends ShardCounters {
  readonly shard: number;
  readonly pid: Pid;
  readonly replica: ReplicaId;
  /** presences stored, hidden ones included */
  readonly rows: number;
  readonly peers: PeerInfo[];
  /** tracked actors watched */
  readonly monitors: number;
  readonly mailbox: number;
  /** size of the pending delta (values + dots), sent at the next tick */
  readonly pending: number;
  /** retained delta windows and their sizes */
  readonly generations: number[];
}

// ---- state -----------------------------------------------------------------------------------

/** @internal */
export interface ShardArgs {
  readonly pool: Pool;
  readonly index: number;
}

/**
 * @internal A shard on another thread than its pool (internal/spread.ts): where its changes,
 * stats and unknown messages go instead of the pool's closures.
 */
export interface RemoteLink {
  /** the dispatcher process on the pool's thread (runs init/handleDiff/handleInfo) */
  readonly dispatcher: Pid;
  /** the shard started: publish it (this thread's read slot, the other threads' copies) */
  started(st: ShardState): void;
  /** visible rows changed (already applied to the State); called before any reply */
  rows(joins: readonly Row[], leaves: readonly Row[]): void;
  /** a stats snapshot (every tick) */
  stats(s: ShardStats): void;
  /** the shard exits */
  exited(): void;
}

/** @internal what `initShard` needs */
export interface ShardParams {
  readonly opts: ResolvedOptions;
  readonly pubsub: PubSubRef;
  readonly index: number;
  /** the pool (shards on the pool's thread), or null with `remote` */
  readonly pool: Pool | null;
  readonly remote: RemoteLink | null;
  /** the vsn of this start (default: the node's vsn source) */
  readonly vsn?: string;
}

interface PendingReq {
  readonly to: ReplicaId;
  readonly at: number;
}

/** @internal */
export interface ShardState {
  readonly pool: Pool | null;
  readonly pubsub: PubSubRef;
  readonly remote: RemoteLink | null;
  readonly opts: ResolvedOptions;
  readonly index: number;
  readonly topic: string;
  readonly self: Process<any>;
  readonly logger: Logger;
  readonly replica: ReplicaId;
  readonly nodeName: string;
  readonly state: TrackerState;
  gens: Generations;
  readonly peers: Peers.PeerTable;
  /** last heartbeat number merged, per replica */
  readonly seqs: Map<ReplicaId, number>;
  hbSeq: number;
  silent: number;
  countdown: number;
  /** the latest clock heard from each peer since the last clock sample */
  readonly clocks: Map<ReplicaId, Clock>;
  readonly pending: Map<string, PendingReq>;
  /** returning replicas whose presences stay hidden until caught up → request ref (or null) */
  readonly catchingUp: Map<ReplicaId, string | null>;
  /**
   * Replicas that will never speak again (replaced by a newer vsn of their node, or gone by
   * graceful permdown) → when retired. Their late messages, which may overtake nothing but
   * arrive after the successor's (another sender: no order), are ignored. Kept permdownPeriod.
   */
  readonly retired: Map<ReplicaId, number>;
  readonly monitors: Map<Pid, MonitorRef>;
  user: unknown;
  nextTickAt: number;
  /** when the mailbox was last scanned for protocol messages */
  lastScan: number;
  /** when the last heartbeat was sent */
  lastSent: number;
  tickId: number;
  tickTimer: TimerRef | undefined;
  /** leaves of exits not reported yet (coalesced) */
  exitLeaves: Row[];
  /** pids of this node start with it (only local actors can be tracked) */
  readonly localPrefix: string;
  readonly refPrefix: string;
  refSeq: number;
  reqSeq: number;
  readonly counters: ShardCounters;
  stopping: boolean;
}

const vsnSources = new WeakMap<object, () => string>();

function nextVsn(core: Process<any>["node"]): string {
  let src = vsnSources.get(core);
  if (src === undefined) vsnSources.set(core, (src = Peers.createVsnSource(core.incarnation)));
  return src();
}

function isWire(m: unknown): m is Wire {
  return m !== null && typeof m === "object" && typeof (m as Wire).$tracker === "string";
}

function isSelf(m: unknown): m is SelfMsg {
  return m !== null && typeof m === "object" && typeof (m as SelfMsg).$shard === "string";
}

function isDown(m: unknown): m is { type: "DOWN"; ref: MonitorRef; pid: Pid; reason: ExitReason } {
  return m !== null && typeof m === "object" && (m as { type?: unknown }).type === "DOWN";
}

function emptyCounters(): ShardCounters {
  return {
    heartbeatsSent: 0,
    emptyHeartbeatsSent: 0,
    heartbeatsReceived: 0,
    heartbeatsDropped: 0,
    transferReqsSent: 0,
    transferReqsReceived: 0,
    windowTransfersSent: 0,
    fullTransfersSent: 0,
    acksMerged: 0,
    acksDropped: 0,
    mismatches: 0,
    malformed: 0,
    retiredDropped: 0,
    ups: 0,
    downs: 0,
    permdowns: 0,
    exits: 0,
    diffCalls: 0,
    diffJoins: 0,
    diffLeaves: 0,
    urgentTaken: 0,
    ticks: 0,
  };
}

// ---- the read side -----------------------------------------------------------------------------

/**
 * What a shard publishes in its pool slot: readers use it synchronously, never through the
 * shard's mailbox (TRACKER.md 5.1, Phoenix's ETS table). The shard and its readers run on the
 * same thread, so the read table is the State's own row store, which the shard writes before it
 * reports a diff or replies: reads cost O(result), never copy the pending delta, reflect every
 * change whose call resolved or whose diff was reported, and never go backwards.
 * @internal
 */
export class ShardHandle {
  readonly pid: Pid;
  readonly index: number;
  /** @internal */
  readonly st: ShardState;
  constructor(st: ShardState) {
    this.pid = st.self.pid;
    this.index = st.index;
    this.st = st;
  }
  get state(): TrackerState {
    return this.st.state;
  }
  stats(): ShardStats {
    return shardStats(this.st);
  }
}

/** @internal a shard's stats now */
export function shardStats(st: ShardState): ShardStats {
  {
    const now = performance.now();
    const peers: PeerInfo[] = [];
    for (const [node, rec] of st.peers) {
      peers.push({ replica: rec.replica, node, status: rec.status, catchingUp: st.catchingUp.has(rec.replica), silentFor: now - rec.lastHeartbeat });
    }
    return {
      ...st.counters,
      shard: st.index,
      pid: st.self.pid,
      replica: st.replica,
      rows: State.size(st.state),
      peers,
      monitors: st.monitors.size,
      mailbox: st.self.mailboxLength,
      pending: State.deltaSize(st.state.delta),
      generations: st.gens.map((g) => State.deltaSize(g)),
    };
  }
}

// ---- diffs -------------------------------------------------------------------------------------

/** Reports rows to handleDiff; `hideDown` drops rows of replicas flagged down (merges: 5.4). */
function report(st: ShardState, joins: readonly Row[], leaves: readonly Row[], hideDown: boolean): void {
  if (st.exitLeaves.length > 0) flushExits(st);
  deliver(st, joins, leaves, hideDown);
}

function flushExits(st: ShardState): void {
  const leaves = st.exitLeaves;
  st.exitLeaves = [];
  deliver(st, [], leaves, false);
}

function deliver(st: ShardState, joins: readonly Row[], leaves: readonly Row[], hideDown: boolean): void {
  if (st.remote !== null) return deliverRemote(st, st.remote, joins, leaves, hideDown);
  const cb = st.opts.handleDiff;
  if (cb === undefined || (joins.length === 0 && leaves.length === 0)) return;
  const diff: TrackerDiff = new Map();
  let nj = 0;
  let nl = 0;
  const entry = (topic: string): TopicDiff => {
    let d = diff.get(topic);
    if (d === undefined) diff.set(topic, (d = { joins: [], leaves: [] }));
    return d;
  };
  const own = st.replica;
  const s = st.state;
  for (const r of leaves) {
    if (hideDown && r.replica !== own && State.replicaStatus(s, r.replica) === "down") continue;
    entry(r.topic).leaves.push({ key: r.key, meta: r.meta });
    nl++;
  }
  for (const r of joins) {
    if (hideDown && r.replica !== own && State.replicaStatus(s, r.replica) === "down") continue;
    entry(r.topic).joins.push({ key: r.key, meta: r.meta });
    nj++;
  }
  if (diff.size === 0) return;
  st.counters.diffCalls++;
  st.counters.diffJoins += nj;
  st.counters.diffLeaves += nl;
  st.user = checked(cb(diff, st.user), "handleDiff");
}

/** A shard on another thread: the visible change goes to the read copies and the dispatcher (spread.ts). */
function deliverRemote(st: ShardState, link: RemoteLink, joins: readonly Row[], leaves: readonly Row[], hideDown: boolean): void {
  if (joins.length === 0 && leaves.length === 0) return;
  const own = st.replica;
  const s = st.state;
  const visible = (r: Row) => r.replica === own || State.replicaStatus(s, r.replica) !== "down";
  const j = hideDown ? joins.filter(visible) : joins;
  const l = hideDown ? leaves.filter(visible) : leaves;
  if (j.length === 0 && l.length === 0) return;
  st.counters.diffCalls++;
  st.counters.diffJoins += j.length;
  st.counters.diffLeaves += l.length;
  link.rows(j, l);
}

function checked(res: unknown, what: string): unknown {
  if (res === null || typeof res !== "object" || !("state" in res)) {
    throw new TypeError(`tracker ${what} must return { state }, got ${formatReason(res)}`);
  }
  return (res as { state: unknown }).state;
}

// ---- replica events ------------------------------------------------------------------------------

function emit(st: ShardState, event: "up" | "down" | "permdown", replica: ReplicaId): void {
  const to = st.opts.reportEventsTo;
  if (to !== undefined) {
    st.self.send(to, { type: "tracker_replica", event, tracker: st.opts.name, shard: st.index, replica, node: Peers.replicaName(replica) });
  }
  if (st.opts.logLevel === "info") st.logger.info(`tracker ${st.opts.name} shard ${st.index} (${st.replica}): replica ${replica} ${event}`);
}

function applyEvents(st: ShardState, events: readonly Peers.PeerEvent[]): void {
  for (const e of events) {
    const r = e.replica;
    const status = State.replicaStatus(st.state, r);
    switch (e.type) {
      case "up":
        if (status === undefined) {
          // first contact: nothing of it is stored (its rows arrive by merge or transfer)
          report(st, State.replicaUp(st.state, r), [], false);
          st.counters.ups++;
          emit(st, "up", r);
        } else if (status === "down") {
          st.catchingUp.set(r, null); // decided once its heartbeat is merged (5.3)
        }
        break;
      case "down":
        st.catchingUp.delete(r);
        if (status === "up") {
          report(st, [], State.replicaDown(st.state, r), false);
          st.counters.downs++;
          emit(st, "down", r);
        }
        break;
      case "permdown":
        st.catchingUp.delete(r);
        if (status === "up") report(st, [], State.replicaDown(st.state, r), false);
        State.removeDownReplica(st.state, r);
        st.gens = State.pruneGenerations(st.gens, r);
        st.seqs.delete(r);
        st.clocks.delete(r);
        for (const [ref, p] of st.pending) if (p.to === r) st.pending.delete(ref);
        st.counters.permdowns++;
        emit(st, "permdown", r);
        break;
    }
  }
}

/** A returning replica whose presences were hidden is caught up: show them (joins). */
function completeUp(st: ShardState, r: ReplicaId): void {
  st.catchingUp.delete(r);
  if (State.replicaStatus(st.state, r) !== "down") return;
  report(st, State.replicaUp(st.state, r), [], false);
  st.counters.ups++;
  emit(st, "up", r);
}

// ---- sending ---------------------------------------------------------------------------------

function envelope<K extends Wire["$tracker"]>(st: ShardState, kind: K) {
  return { $tracker: kind, v: PROTOCOL_VERSION, name: st.opts.name, shard: st.index, pool: st.opts.poolSize, from: st.replica };
}

function broadcast(st: ShardState, msg: Wire): void {
  PubSub.broadcastFrom(st.self, st.pubsub, st.self.pid, st.topic, msg);
}

function sendTo(st: ShardState, replica: ReplicaId, msg: Wire): void {
  PubSub.directBroadcast(st.self, st.pubsub, Peers.replicaName(replica), st.topic, msg);
}

function requestTransfer(st: ShardState, to: ReplicaId, clock: Clock): string {
  const ref = `${st.replica}/${++st.reqSeq}`;
  st.pending.set(ref, { to, at: performance.now() });
  st.counters.transferReqsSent++;
  sendTo(st, to, { ...envelope(st, "req"), ref, to, clock });
  if (st.opts.logLevel === "info") st.logger.info(`tracker ${st.opts.name} shard ${st.index}: transfer request ${ref} to ${to}`);
  return ref;
}

/**
 * True while a request to `r` is young enough that its answer may still come (a big full
 * transfer takes a while): no second one is sent meanwhile. An answer lost on the way is
 * asked for again after downPeriod / 2.
 */
function awaiting(st: ShardState, r: ReplicaId): boolean {
  const now = performance.now();
  for (const p of st.pending.values()) if (p.to === r && now - p.at < st.opts.downPeriod / 2) return true;
  return false;
}

/** Asks a returning replica for what was missed, with a context that includes it (5.3). */
function requestCatchUp(st: ShardState, r: ReplicaId): void {
  const clock = new Map(State.clocks(st.state).clock);
  clock.set(r, st.state.context.get(r) ?? 0);
  st.catchingUp.set(r, requestTransfer(st, r, clock));
}

// ---- the tick --------------------------------------------------------------------------------

function armTick(st: ShardState, delay: number): void {
  const core = st.self.node;
  if (st.tickTimer !== undefined) core.cancelTimer(st.tickTimer);
  const id = ++st.tickId;
  st.nextTickAt = performance.now() + delay;
  st.tickTimer = core.sendAfter(st.self.pid, { $shard: "tick", id } satisfies SelfMsg, delay);
}

function tick(st: ShardState): void {
  const self = st.self;
  const opts = st.opts;
  const s = st.state;
  st.counters.ticks++;
  // 0. protocol messages queued behind local work go first (5.5). Taking them out costs
  // O(mailbox), so a long backlog is scanned at most every downPeriod / 8 (an arrival time is
  // then late by at most that much, far from a false down).
  const len = self.mailboxLength;
  if (len > 0) {
    const now = performance.now();
    if (len <= 1024 || now - st.lastScan >= opts.downPeriod / 8) {
      st.lastScan = now;
      const urgent = self.flush(isWire);
      st.counters.urgentTaken += urgent.length;
      for (const m of urgent) onWire(st, m as Wire);
    }
  }
  // 1. send
  if (State.hasDelta(s)) {
    st.lastSent = performance.now();
    const delta = s.delta;
    broadcast(st, { ...envelope(st, "hb"), seq: ++st.hbSeq, delta, clock: State.clocks(s).clock });
    State.resetDelta(s);
    State.compact(s);
    st.silent = 0;
    st.gens = State.pushGeneration(st.gens, s.delta, delta, opts.maxDeltaSizes);
    st.counters.heartbeatsSent++;
  } else if (st.silent >= opts.maxSilentPeriods || performance.now() - st.lastSent >= (opts.maxSilentPeriods + 0.5) * opts.broadcastPeriod) {
    // every maxSilentPeriods + 1 ticks; counted in time too, so that a shard whose ticks run
    // late (its thread busy) still announces itself in time (5.5)
    st.lastSent = performance.now();
    broadcast(st, { ...envelope(st, "hb"), seq: ++st.hbSeq, delta: null, clock: State.clocks(s).clock });
    st.silent = 0;
    st.counters.heartbeatsSent++;
    st.counters.emptyHeartbeatsSent++;
  } else {
    st.silent++;
  }
  // 2. clock sampling
  if (st.countdown <= 1) {
    // Peers' clocks are compared on the replicas this shard shows (met, not down): what a peer
    // knows of a replica it has not met, or flags down, could not be shown anyway (F3, and no
    // transfer loop through a third node during a partial partition).
    const own = State.clocks(s);
    let set: ClockSet = [];
    for (const [replica, clock] of st.clocks) set = appendClock(set, { replica, clock: filter(clock, own.clock) });
    set = appendClock(set, own);
    for (const c of set) if (c.replica !== st.replica && !st.catchingUp.has(c.replica) && !awaiting(st, c.replica)) requestTransfer(st, c.replica, own.clock);
    for (const r of st.catchingUp.keys()) if (!awaiting(st, r)) requestCatchUp(st, r); // again: its answer was lost
    st.clocks.clear();
    st.countdown = opts.clockSamplePeriods;
  } else {
    st.countdown--;
  }
  // 3. downs and permdowns, from arrival times
  const now = performance.now();
  applyEvents(st, Peers.detectDowns(st.peers, now, opts));
  // requests unanswered for a down period are forgotten (their answers would be dropped)
  for (const [ref, p] of st.pending) if (now - p.at > opts.downPeriod) st.pending.delete(ref);
  for (const [r, at] of st.retired) if (now - at > opts.permdownPeriod) st.retired.delete(r);
  // 4. next tick
  armTick(st, opts.broadcastPeriod);
  if (st.remote !== null) st.remote.stats(shardStats(st));
}

/** Runs the tick if it is due; called before every message (so a backlog never delays it). */
function maybeTick(st: ShardState): void {
  if (performance.now() >= st.nextTickAt && !st.stopping) tick(st);
}

// ---- receiving ---------------------------------------------------------------------------------

function onWire(st: ShardState, m: Wire): void {
  const opts = st.opts;
  if (typeof m.from !== "string" || typeof m.v !== "number") {
    st.counters.malformed++;
    return;
  }
  if (m.v !== PROTOCOL_VERSION || m.name !== opts.name || m.shard !== st.index || m.pool !== opts.poolSize) {
    const n = ++st.counters.mismatches;
    if (n <= 10 || n % 1000 === 0) {
      st.logger.error(
        `tracker ${opts.name} shard ${st.index}: ignoring ${m.$tracker} from ${m.from}: it runs protocol ${m.v}, tracker ${JSON.stringify(m.name)}, ` +
          `shard ${m.shard} of ${m.pool}; this node runs protocol ${PROTOCOL_VERSION}, shard ${st.index} of ${opts.poolSize} (every node must use the same poolSize)`,
        { from: m.from, count: st.counters.mismatches },
      );
    }
    return;
  }
  if (m.from === st.replica || Peers.replicaName(m.from) === st.nodeName) {
    st.counters.malformed++; // our own name from another replica: two nodes share a name
    return;
  }
  if (st.retired.has(m.from)) {
    st.counters.retiredDropped++;
    return;
  }
  switch (m.$tracker) {
    case "hb":
      return onHeartbeat(st, m);
    case "req":
      return onTransferReq(st, m);
    case "ack":
      return onTransferAck(st, m);
    case "bye": {
      const events = Peers.gracefulPermdown(st.peers, m.from);
      if (events.length > 0) st.retired.set(m.from, performance.now());
      applyEvents(st, events);
      return;
    }
    default:
      st.counters.malformed++;
  }
}

function onHeartbeat(st: ShardState, m: Heartbeat): void {
  const r = m.from;
  const last = st.seqs.get(r);
  if (last !== undefined && !(m.seq > last)) {
    st.counters.heartbeatsDropped++;
    return;
  }
  st.counters.heartbeatsReceived++;
  const now = performance.now();
  const events = Peers.heartbeat(st.peers, r, now);
  for (const e of events) if (e.type === "permdown") st.retired.set(e.replica, now); // replaced by r
  applyEvents(st, events);
  st.seqs.set(r, m.seq);
  const s = st.state;
  if (m.delta !== null) {
    const { joins, leaves } = State.merge(s, m.delta);
    report(st, joins, leaves, true);
    st.gens = State.pushGeneration(st.gens, s.delta, State.knownDelta(s, m.delta), st.opts.maxDeltaSizes);
  }
  st.clocks.set(r, m.clock);
  if (st.catchingUp.has(r)) {
    if ((s.context.get(r) ?? 0) >= (m.clock.get(r) ?? 0)) completeUp(st, r); // nothing was missed
    else if (st.catchingUp.get(r) === null) requestCatchUp(st, r);
  }
}

function onTransferReq(st: ShardState, m: TransferReq): void {
  st.counters.transferReqsReceived++;
  const { payload, source } = State.extractFor(st.gens, st.state, m.from, m.clock);
  if (source === "full") st.counters.fullTransfersSent++;
  else st.counters.windowTransfersSent++;
  if (st.opts.logLevel === "info") st.logger.info(`tracker ${st.opts.name} shard ${st.index}: answering ${m.ref} from ${m.from} with ${source === "full" ? "the full state" : `window ${source}`}`);
  sendTo(st, m.from, { ...envelope(st, "ack"), ref: m.ref, to: m.from, payload });
}

function onTransferAck(st: ShardState, m: TransferAck): void {
  const p = st.pending.get(m.ref);
  if (p === undefined || p.to !== m.from || m.to !== st.replica) {
    st.counters.acksDropped++;
    return;
  }
  st.pending.delete(m.ref);
  st.counters.acksMerged++;
  const s = st.state;
  const { joins, leaves } = State.merge(s, m.payload);
  report(st, joins, leaves, true);
  if (m.payload.kind === "full") st.gens = [];
  else st.gens = State.pushGeneration(st.gens, s.delta, State.knownDelta(s, m.payload), st.opts.maxDeltaSizes);
  if (st.catchingUp.get(m.from) === m.ref) completeUp(st, m.from);
}

function onDown(st: ShardState, m: { ref: MonitorRef; pid: Pid }): boolean {
  if (st.monitors.get(m.pid) !== m.ref) return false;
  st.monitors.delete(m.pid);
  st.counters.exits++;
  const rows = State.leave(st.state, m.pid);
  if (rows.length > 0 && (st.opts.handleDiff !== undefined || st.remote !== null)) {
    if (st.exitLeaves.length === 0) st.self.send(st.self.pid, { $shard: "flush_exits" } satisfies SelfMsg);
    for (const r of rows) st.exitLeaves.push(r);
  }
  return true;
}

// ---- local operations ------------------------------------------------------------------------------

function newRef(st: ShardState): string {
  return st.refPrefix + (++st.refSeq).toString(36);
}

function watch(st: ShardState, pid: Pid): void {
  if (!st.monitors.has(pid)) st.monitors.set(pid, st.self.monitor(pid));
}

function unwatch(st: ShardState, pid: Pid): void {
  const ref = st.monitors.get(pid);
  if (ref === undefined) return;
  st.monitors.delete(pid);
  st.self.demonitor(ref); // a DOWN already queued no longer matches st.monitors: ignored
}

function isLocal(st: ShardState, pid: Pid): boolean {
  return typeof pid === "string" && pid.startsWith(st.localPrefix);
}

function handle(st: ShardState, req: ShardCall): ShardReply {
  const s = st.state;
  switch (req.op) {
    case "track": {
      const { pid, topic, key } = req;
      if (!isLocal(st, pid)) return { error: "not_local" };
      if (State.getByPid(s, pid, topic, key) !== undefined) return { error: "already_tracked" };
      watch(st, pid);
      const ref = newRef(st);
      const row = State.join(s, pid, topic, key, Object.freeze({ ...req.meta, phx_ref: ref }));
      report(st, [row], [], false);
      return { ok: ref };
    }
    case "untrack": {
      const rows = State.leave(s, req.pid, req.topic, req.key);
      if (rows.length > 0) {
        if (State.getByPid(s, req.pid).length === 0) unwatch(st, req.pid);
        report(st, [], rows, false);
      }
      return { ok: "ok" };
    }
    case "untrack_all": {
      unwatch(st, req.pid);
      report(st, [], State.leave(s, req.pid), false);
      return { ok: "ok" };
    }
    case "update": {
      const { pid, topic, key } = req;
      const old = State.getByPid(s, pid, topic, key);
      if (old === undefined) return { error: "nopresence" };
      const prev = old.meta.phx_ref;
      if (req.ifRef !== undefined && prev !== req.ifRef) return { error: "conflict" };
      const ref = newRef(st);
      const { leave, join } = State.leaveJoin(s, pid, topic, key, Object.freeze({ ...req.meta, phx_ref: ref, phx_ref_prev: prev }));
      report(st, [join], [leave], false);
      return { ok: ref };
    }
    case "graceful_permdown":
      return { ok: "ok" };
  }
}

/** Announces this replica's departure: peers down and purge it at once. */
function sayGoodbye(st: ShardState): void {
  if (st.stopping) return;
  st.stopping = true;
  broadcast(st, envelope(st, "bye") as Bye);
}

// ---- the behaviour -------------------------------------------------------------------------------

/**
 * The shard GenServer. Started by the pool (`Tracker.start`) with `{ pool, index }`; not meant
 * to be started on its own.
 * @internal
 */
export const ShardServer: GenServerBehaviour<ShardState, ShardCall, ShardReply, never, unknown, ShardArgs> = {
  name: "Tracker.Shard",

  init({ pool, index }, self) {
    return initShard(self, { opts: pool.opts, pubsub: pool.pubsub, index, pool, remote: null });
  },

  handleCall(req, _from: From<ShardReply>, st): CallResult<ShardState, ShardReply> {
    maybeTick(st);
    const reply = handle(st, req);
    if (req.op === "graceful_permdown") {
      sayGoodbye(st);
      return { reply, state: st, stop: "normal" };
    }
    return { reply, state: st };
  },

  handleInfo(msg, st) {
    if (isDown(msg)) {
      maybeTick(st);
      if (!onDown(st, msg)) other(st, msg);
      return { state: st };
    }
    if (isWire(msg)) {
      // this message first: a tick now would take later messages of its sender out of the mailbox
      if (!st.stopping) onWire(st, msg);
      maybeTick(st);
      return { state: st };
    }
    if (isSelf(msg)) {
      if (msg.$shard === "tick") {
        if (msg.id === st.tickId && !st.stopping) tick(st);
        else maybeTick(st);
      } else if (st.exitLeaves.length > 0) {
        maybeTick(st);
        flushExits(st);
      }
      return { state: st };
    }
    maybeTick(st);
    if (st.remote !== null && isExit(msg) && msg.from === st.remote.dispatcher) {
      // the dispatcher (handleDiff, handleInfo) crashed or stopped: so does the shard
      return { state: st, stop: msg.reason };
    }
    other(st, msg);
    return { state: st };
  },

  terminate(reason, st, self) {
    // permdownOnShutdown: an orderly node shutdown (never a restart by the pool's supervisor)
    if (st.opts.permdownOnShutdown && (reason === "shutdown" || reason === "normal") && (self.node as { stopping?: boolean }).stopping === true) {
      sayGoodbye(st);
    }
  },
};

/** A message the shard does not know: the tracker's handleInfo (on the pool's thread for a remote shard). */
function other(st: ShardState, msg: unknown): void {
  if (st.remote !== null) st.self.send(st.remote.dispatcher, { $dispatch: "info", msg });
  else if (st.opts.handleInfo !== undefined) st.user = checked(st.opts.handleInfo(msg, st.user), "handleInfo");
}

function isExit(m: unknown): m is { type: "EXIT"; from: Pid; reason: ExitReason } {
  return m !== null && typeof m === "object" && (m as { type?: unknown }).type === "EXIT";
}

/**
 * @internal Starts a shard in `self` (the GenServer init): its State, subscription, first tick,
 * read handle (`pool` set) or remote publication (`remote` set), and the exit hook.
 */
export function initShard(self: Process<any>, params: ShardParams): ShardState {
  {
    const { opts, pubsub, index, pool, remote } = params;
    const core = self.node;
    const nodeName = PubSub.nodeName(pubsub);
    const replica = State.replicaId(nodeName, params.vsn ?? nextVsn(core));
    const info: ShardInfo = { tracker: opts.name, shard: index, poolSize: opts.poolSize, replica, node: nodeName };
    const user = remote !== null || opts.init === undefined ? undefined : opts.init(opts.arg, info);
    const topic = shardTopic(opts.name, index);
    const st: ShardState = {
      pool,
      pubsub,
      remote,
      opts,
      index,
      topic,
      self,
      logger: opts.logger ?? core.logger,
      replica,
      nodeName,
      state: State.create(replica),
      gens: [],
      peers: Peers.createPeers(),
      seqs: new Map(),
      hbSeq: 0,
      silent: opts.maxSilentPeriods, // the first tick announces the shard
      countdown: opts.clockSamplePeriods,
      clocks: new Map(),
      pending: new Map(),
      catchingUp: new Map(),
      retired: new Map(),
      monitors: new Map(),
      user,
      nextTickAt: Infinity,
      lastScan: 0,
      lastSent: 0,
      tickId: 0,
      tickTimer: undefined,
      exitLeaves: [],
      refPrefix: randomBytes(9).toString("base64url"),
      refSeq: 0,
      reqSeq: 0,
      counters: emptyCounters(),
      stopping: false,
      localPrefix: `<${core.tag}.`,
    };
    PubSub.subscribe(self, pubsub, topic);
    armTick(st, Math.random() * (opts.broadcastPeriod / 4));
    const handle = pool !== null ? new ShardHandle(st) : null;
    if (pool !== null) pool.shards[index] = handle!;
    if (remote !== null) remote.started(st);
    self.onExit((_pid, reason) => {
      if (pool !== null && pool.shards[index] === handle) pool.shards[index] = undefined;
      remote?.exited();
      if (st.tickTimer !== undefined) core.cancelTimer(st.tickTimer);
      // the second half of Phoenix's link: tracked actors learn that the shard is gone (3.9)
      for (const pid of st.monitors.keys()) {
        if (opts.onShardExit === "notify") core.send(pid, { type: "tracker_shard_down", tracker: opts.name, shard: index, reason });
        else core.exit(pid, reason);
      }
    });
    return st;
  }
}
