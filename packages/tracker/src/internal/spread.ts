/**
 * Shards spread over the node's worker schedulers (`Tracker.start(ctx, { schedulers: "spread" |
 * [indexes] })`, TRACKER.md 5.2): shard i runs on worker scheduler `targets[i % n]`, so the
 * groups merge in parallel. The default (no option) keeps every shard on the caller's thread
 * and never touches this file.
 *
 * **Placement.** A shard is started by module reference (`startGenServerOn`, module
 * `./thread.ts|js`, export `trackerShard`, which loads this package by its own name so that the
 * shard, the thread's read copies and the thread's actor modules share one copy of it). Its
 * argument is data only (options without closures, the PubSub's name, its dispatcher's pid). It
 * is linked to the pool's supervisor (its child: a thread that dies kills it with
 * `noconnection` and the supervisor restarts it, on the same scheduler once that thread is back).
 *
 * **Closures stay home.** `init`, `handleDiff` and `handleInfo` run in one *dispatcher* process
 * per shard on the caller's (home) thread, which holds the tracker module's state. The shard and
 * its dispatcher are linked (both trap exits): a dispatcher that crashes (a throwing callback)
 * takes the shard down with it, and a shard that exits stops its dispatcher. Unknown messages
 * the shard receives go to the dispatcher's `handleInfo`.
 *
 * **Read copies.** Every thread keeps, per tracker, a {@link PoolView} in its kernel's tracker
 * table: on the shard's own thread the slot reads the shard's live State; on every other thread
 * (home included) it reads a copy (a State written only by {@link State.applyRows}) fed by the
 * shard's change stream. The stream is the shard's visible change (exactly what `handleDiff`
 * would get: joins and leaves as rows with pid and tag), one thread-service message per batch
 * and destination thread, sent before the shard replies to the call that caused it. The home
 * thread applies a batch to its copy, then hands it to the dispatcher (one local message), which
 * calls `handleDiff`. Service messages ride the data plane in order with the shard's replies, so:
 *
 * - a caller of `track`/`untrack`/`update`, on any thread, reads its write once the call
 *   resolved (TRACKER.md 5.1 a);
 * - on the home thread, a read reflects every diff already delivered to `handleDiff` (the copy
 *   is written before the dispatcher gets the batch), so a process that got a message sent from
 *   `handleDiff` and then reads sees at least that diff's state (5.1 b);
 * - a copy never goes backwards (batches apply in the shard's order) (5.1 c);
 * - a copy on a third thread (neither the shard's nor the caller's) sees a change one hop after
 *   the shard made it, unless it learned of it through a message sent after the change.
 *
 * `dirtyList` on a copy lists the visible rows only (hidden rows of down peers are not copied),
 * and `Tracker.stats` on the home thread gives each shard's counters as of its last tick.
 *
 * **Thread service** `cinder.tracker:<name>` (one array per message):
 *
 * | op | from → to | content |
 * |---|---|---|
 * | UP | shard thread → all | shard info (index, pid, scheduler, replica, dispatcher, pool size, timeouts) |
 * | ROWS | shard thread → all | index, pid, joins, leaves (rows) |
 * | GONE | shard thread or home → all | index, pid: the shard exited (slot cleared if it is still that pid) |
 * | STATS | shard thread → home | index, pid, counters (every tick) |
 * | HELLO | a (re)started thread → all | asks every shard thread for a SNAP of its shards |
 * | SNAP | shard thread → that thread | UP's info plus every visible row |
 *
 * **A worker thread that dies** kills its shards with `noconnection`: their dispatchers clear
 * the slots (home and, by GONE, every other thread), and, since a dead shard could not run its
 * exit hook, tell the actors it tracked (an exit signal `noconnection`, or the
 * `tracker_shard_down` message with `onShardExit: "notify"`). The supervisor restarts the shard
 * as a **new replica that starts empty**: its local presences are lost, as in a crash, and their
 * actors re-track; the peers' presences come back by transfer (clock sampling after the first
 * heartbeats), as for any restarted shard. The restarted thread gets a fresh view through
 * `everyThread` and asks the shard threads for snapshots (HELLO/SNAP).
 */
import { CinderError, GenServer, startGenServerOn, type ExitReason, type GenServerBehaviour, type Pid, type Process, type ThreadContext } from "@cinder/runtime";
import { PubSub } from "@cinder/pubsub";
import { TrackerOptionError } from "./errors.js";
import type { ResolvedOptions, ShardInfo, TopicDiff, TrackerDiff } from "./options.js";
import { findPool, registerPool, type NodeCore, type Pool, type PoolView, type ShardSlot } from "./registry.js";
import { initShard, shardStats, ShardServer, type RemoteLink, type ShardCall, type ShardReply, type ShardState, type ShardStats } from "./shard.js";
import * as State from "./state.js";
import type { ReplicaId, Row, TrackerState } from "./state.js";

const OP = { UP: 0, ROWS: 1, GONE: 2, STATS: 3, HELLO: 4, SNAP: 5 } as const;

/** The module every worker loads: next to this one, .ts under tsx, .js built. */
const THREAD_MODULE = new URL(import.meta.url.endsWith(".ts") ? "./thread.ts" : "./thread.js", import.meta.url);

function svc(name: string): string {
  return `cinder.tracker:${name}`;
}

/** What UP and SNAP say about a shard. */
interface ShardInfoMsg {
  index: number;
  pid: Pid;
  scheduler: number;
  replica: ReplicaId;
  dispatcher: Pid;
  poolSize: number;
  callTimeout: number;
  updateAttempts: number;
}

/** The data options a shard takes across threads (no closures, no logger). */
type DataOptions = Omit<ResolvedOptions, "init" | "arg" | "handleDiff" | "handleInfo" | "logger" | "schedulers">;

/** @internal the argument of a shard started on another thread */
export interface RemoteShardArgs {
  readonly opts: DataOptions;
  readonly pubsub: string;
  readonly index: number;
  readonly home: number;
  readonly dispatcher: Pid;
}

// ---- slots -------------------------------------------------------------------------------------

/** A shard of another thread, read through this thread's copy. */
class CopySlot implements ShardSlot {
  readonly state: TrackerState;
  snapshot: ShardStats | undefined = undefined;
  constructor(readonly info: ShardInfoMsg) {
    this.state = State.create(info.replica);
  }
  get pid(): Pid {
    return this.info.pid;
  }
  get index(): number {
    return this.info.index;
  }
  stats(): ShardStats | undefined {
    return this.snapshot;
  }
}

/** A shard of this thread (not its pool's): reads go to its live State. */
class LiveSlot implements ShardSlot {
  constructor(readonly st: ShardState, readonly info: ShardInfoMsg) {}
  get pid(): Pid {
    return this.info.pid;
  }
  get index(): number {
    return this.info.index;
  }
  get state(): TrackerState {
    return this.st.state;
  }
  stats(): ShardStats {
    return shardStats(this.st);
  }
}

/** A worker thread's view of a spread tracker started on another thread. */
class ThreadView implements PoolView {
  readonly shards: Array<ShardSlot | undefined> = [];
  readonly home = false;
  readonly opts = { poolSize: 1, callTimeout: 5000, updateAttempts: 5 };
  constructor(readonly core: NodeCore, readonly name: string) {}
}

function viewOf(core: NodeCore, name: string): PoolView {
  let v = findPool(core, name);
  if (v === undefined) registerPool((v = new ThreadView(core, name)));
  return v;
}

function adopt(view: PoolView, info: ShardInfoMsg): void {
  if (!view.home) {
    const o = view.opts as { poolSize: number; callTimeout: number; updateAttempts: number };
    o.poolSize = info.poolSize;
    o.callTimeout = info.callTimeout;
    o.updateAttempts = info.updateAttempts;
    if (view.shards.length !== info.poolSize) view.shards.length = info.poolSize;
  }
}

// ---- the service ---------------------------------------------------------------------------------

function onService(ctx: ThreadContext, name: string, data: unknown[], from: number): void {
  const core = ctx.core as unknown as NodeCore;
  const view = findPool(core, name);
  if (view === undefined) return;
  switch (data[0]) {
    case OP.UP:
    case OP.SNAP: {
      const info = data[1] as ShardInfoMsg;
      adopt(view, info);
      const slot = new CopySlot(info);
      if (data[0] === OP.SNAP) State.applyRows(slot.state, data[2] as Row[], []);
      view.shards[info.index] = slot;
      if (view.home && data[0] === OP.UP) {
        core.send(info.dispatcher, { $dispatch: "hello", pid: info.pid, replica: info.replica });
      }
      return;
    }
    case OP.ROWS: {
      const slot = view.shards[data[1] as number];
      if (!(slot instanceof CopySlot) || slot.pid !== data[2]) return;
      const joins = data[3] as Row[];
      const leaves = data[4] as Row[];
      State.applyRows(slot.state, joins, leaves);
      if (view.home && (view as Pool).opts.handleDiff !== undefined) core.send(slot.info.dispatcher, { $dispatch: "diff", joins, leaves });
      return;
    }
    case OP.GONE: {
      const i = data[1] as number;
      if (view.shards[i]?.pid === data[2]) view.shards[i] = undefined;
      return;
    }
    case OP.STATS: {
      const slot = view.shards[data[1] as number];
      if (slot instanceof CopySlot && slot.pid === data[2]) slot.snapshot = data[3] as ShardStats;
      return;
    }
    case OP.HELLO: {
      for (const slot of view.shards) {
        if (slot instanceof LiveSlot) ctx.send(from, svc(name), [OP.SNAP, slot.info, State.onlineList(slot.st.state)]);
      }
      return;
    }
  }
}

function listen(ctx: ThreadContext, name: string): void {
  ctx.on(svc(name), (d, from) => onService(ctx, name, d as unknown[], from));
}

/** @internal the thread init (`everyThread`): this worker thread's view of tracker `name` */
export function threadInit(ctx: ThreadContext, name: string): void {
  viewOf(ctx.core as unknown as NodeCore, name);
  listen(ctx, name);
  ctx.broadcast(svc(name), [OP.HELLO]); // a restarted thread: the shard threads send snapshots
}

const INSTALLED = Symbol.for("cinder.tracker.spreadInstalled");

/**
 * @internal Decides where the pool's shards run (`pool.targets`); for spread shards, installs
 * the home thread's service and every worker's view (once per node and tracker name).
 */
export async function placeShards(pool: Pool): Promise<void> {
  const want = pool.opts.schedulers;
  if (want === undefined) return;
  const core = pool.core as NodeCore & { workerSchedulers?: () => Promise<unknown>; everyThread?: (ref: { module: URL; export: string }, args: unknown[]) => Promise<void>; threads: ThreadContext };
  if (typeof core.workerSchedulers === "function") await core.workerSchedulers();
  const ctx = core.threads;
  const live = ctx.schedulers();
  const home = ctx.index;
  let targets: number[];
  if (want === "spread") {
    targets = live.filter((i) => i !== home);
  } else {
    for (const i of want) {
      if (i === home || !live.includes(i)) throw new TrackerOptionError("schedulers", `no worker scheduler ${i} on this node (schedulers: ${live.join(", ")}; the caller runs on ${home})`);
    }
    targets = [...want];
  }
  if (targets.length === 0) return; // no worker threads: the shards stay on the caller's thread
  const c = core as unknown as { [INSTALLED]?: Set<string> };
  const done = (c[INSTALLED] ??= new Set());
  listen(ctx, pool.name); // (again: the handler reads the current pool)
  if (!done.has(pool.name)) {
    done.add(pool.name);
    if (typeof core.everyThread === "function") await core.everyThread({ module: THREAD_MODULE, export: "trackerThread" }, [pool.name]);
  }
  pool.targets = targets;
}

// ---- the shard on its thread ------------------------------------------------------------------------

function dataOptions(o: ResolvedOptions): DataOptions {
  const { init: _i, arg: _a, handleDiff: _d, handleInfo: _h, logger: _l, schedulers: _s, ...data } = o;
  return data;
}

function linkFor(self: Process<any>, a: RemoteShardArgs): RemoteLink {
  const core = self.node as unknown as NodeCore & { threads: ThreadContext };
  const ctx = core.threads;
  const name = a.opts.name;
  const s = svc(name);
  const pid = self.pid;
  const view = viewOf(core, name);
  let info: ShardInfoMsg | undefined;
  const others = (op: unknown[]) => {
    for (const i of ctx.schedulers()) if (i !== ctx.index) ctx.send(i, s, op);
  };
  return {
    dispatcher: a.dispatcher,
    started(st) {
      info = { index: a.index, pid, scheduler: ctx.index, replica: st.replica, dispatcher: a.dispatcher, poolSize: a.opts.poolSize, callTimeout: a.opts.callTimeout, updateAttempts: a.opts.updateAttempts };
      adopt(view, info);
      view.shards[a.index] = new LiveSlot(st, info);
      others([OP.UP, info]);
      ctx.send(a.home, s, [OP.STATS, a.index, pid, shardStats(st)]);
    },
    rows(joins, leaves) {
      others([OP.ROWS, a.index, pid, joins, leaves]);
    },
    stats(st) {
      ctx.send(a.home, s, [OP.STATS, a.index, pid, st]);
    },
    exited() {
      if (view.shards[a.index]?.pid === pid) view.shards[a.index] = undefined;
      others([OP.GONE, a.index, pid]);
    },
  };
}

/** A vsn unique per start on the whole node: from the pid (scheduler, thread incarnation, serial). */
function vsnOf(self: Process<any>): string {
  const tag = self.node.tag as string;
  const pid = self.pid as string;
  const rest = pid.startsWith(`<${tag}.`) ? pid.slice(tag.length + 2, -1) : pid.replace(/[<>#]/g, "");
  return `${String(self.node.incarnation).replaceAll("#", "_")}.w${rest.replaceAll("#", "_")}`;
}

/** @internal the shard behaviour on a worker thread (loaded through ./thread.ts|js) */
export const RemoteShardServer: GenServerBehaviour<ShardState, ShardCall, ShardReply, never, unknown, RemoteShardArgs> = {
  ...ShardServer,
  init(a, self) {
    const opts: ResolvedOptions = { ...a.opts, init: undefined, arg: undefined, handleDiff: undefined, handleInfo: undefined, logger: undefined, schedulers: undefined };
    const pubsub = PubSub.ref(self, a.pubsub);
    self.link(a.dispatcher);
    return initShard(self, { opts, pubsub, index: a.index, pool: null, remote: linkFor(self, a), vsn: vsnOf(self) });
  },
};

// ---- home: the dispatcher and the start ---------------------------------------------------------------

interface DispState {
  readonly pool: Pool;
  readonly index: number;
  user: unknown;
  shard: Pid | undefined;
  replica: ReplicaId | undefined;
}

type DispMsg =
  | { $dispatch: "hello"; pid: Pid; replica: ReplicaId }
  | { $dispatch: "diff"; joins: Row[]; leaves: Row[] }
  | { $dispatch: "info"; msg: unknown };

function checked(res: unknown, what: string): unknown {
  if (res === null || typeof res !== "object" || !("state" in res)) throw new TypeError(`tracker ${what} must return { state }`);
  return (res as { state: unknown }).state;
}

function toDiff(joins: readonly Row[], leaves: readonly Row[]): TrackerDiff {
  const diff: TrackerDiff = new Map();
  const entry = (topic: string): TopicDiff => {
    let d = diff.get(topic);
    if (d === undefined) diff.set(topic, (d = { joins: [], leaves: [] }));
    return d;
  };
  for (const r of leaves) entry(r.topic).leaves.push({ key: r.key, meta: r.meta });
  for (const r of joins) entry(r.topic).joins.push({ key: r.key, meta: r.meta });
  return diff;
}

/** The shard of `pid` exited: clear its slots; a thread death also tells its tracked actors. */
function shardGone(d: DispState, pid: Pid, reason: ExitReason): void {
  const pool = d.pool;
  const core = pool.core;
  const slot = pool.shards[d.index];
  if (slot?.pid !== pid) return;
  pool.shards[d.index] = undefined;
  (core as unknown as { threads: ThreadContext }).threads.broadcast(svc(pool.name), [OP.GONE, d.index, pid]);
  if (reason !== "noconnection" || d.replica === undefined) return; // else the shard told them itself
  const told = new Set<Pid>();
  for (const r of State.onlineList(slot.state)) {
    const p = r.pid as unknown as Pid;
    if (r.replica !== d.replica || told.has(p)) continue;
    told.add(p);
    if (pool.opts.onShardExit === "notify") core.send(p, { type: "tracker_shard_down", tracker: pool.name, shard: d.index, reason });
    else core.exit(p, reason);
  }
}

const Dispatcher: GenServerBehaviour<DispState, never, never, never, unknown, { pool: Pool; index: number }> = {
  name: "Tracker.Dispatcher",
  init({ pool, index }) {
    return { pool, index, user: undefined, shard: undefined, replica: undefined };
  },
  handleInfo(msg, d) {
    const m = msg as DispMsg | { type?: unknown; from?: Pid; reason?: ExitReason };
    const o = d.pool.opts;
    if ("$dispatch" in m) {
      switch (m.$dispatch) {
        case "hello": {
          d.shard = m.pid;
          d.replica = m.replica;
          const info: ShardInfo = { tracker: o.name, shard: d.index, poolSize: o.poolSize, replica: m.replica, node: PubSub.nodeName(d.pool.pubsub) };
          if (o.init !== undefined) d.user = o.init(o.arg, info);
          break;
        }
        case "diff":
          if (o.handleDiff !== undefined) d.user = checked(o.handleDiff(toDiff(m.joins, m.leaves), d.user), "handleDiff");
          break;
        case "info":
          if (o.handleInfo !== undefined) d.user = checked(o.handleInfo(m.msg, d.user), "handleInfo");
          break;
      }
      return { state: d };
    }
    if (m.type === "EXIT") {
      // the only link is to the shard
      shardGone(d, m.from as Pid, m.reason as ExitReason);
      return { state: d, stop: "normal" };
    }
    return { state: d };
  },
};

/** @internal the pool supervisor's start of shard `index` on its worker scheduler */
export async function startRemoteShard(sup: Process<any>, pool: Pool, index: number): Promise<Pid> {
  const targets = pool.targets!;
  const scheduler = targets[index % targets.length]!;
  const disp = await GenServer.start(sup, Dispatcher, { pool, index }, { trapExit: true });
  const args: RemoteShardArgs = { opts: dataOptions(pool.opts), pubsub: pool.pubsub.name, index, home: (pool.core as unknown as { threads: ThreadContext }).threads.index, dispatcher: disp };
  const ref = { module: THREAD_MODULE, export: "trackerShard" };
  try {
    try {
      return await startGenServerOn(sup, scheduler, ref, args, { link: sup, trapExit: true });
    } catch (e) {
      // its thread is down (a restart after it died): wait for it once, then try again
      if (!(e instanceof CinderError && e.code === "noconnection")) throw e;
      await (pool.core as unknown as { schedulerReady?: (i: number) => Promise<void> }).schedulerReady?.(scheduler);
      return await startGenServerOn(sup, scheduler, ref, args, { link: sup, trapExit: true });
    }
  } catch (e) {
    sup.exit(disp, "kill");
    throw e;
  }
}
