/**
 * The tracker pool (TRACKER.md 4): a Supervisor of `poolSize` shards (one_for_one, shards
 * `transient`, at most 2 × poolSize restarts per second), and the API that routes each call to
 * the shard of its topic (`shardOf`, FNV-1a of the topic's UTF-8 bytes) or, for `untrack(pid)`
 * and `gracefulPermdown`, to every shard in parallel. Reads (`list`, `getByKey`) go to the
 * shard's read side directly and never wait for its mailbox (TRACKER.md 5.1).
 */
import {
  AlreadyStartedError,
  BadArgError,
  CinderError,
  GenServer,
  NoProcError,
  Process,
  Supervisor,
  type ChildSpec,
  type Context,
  type Pid,
  type SupervisorOptions,
} from "@cinder/runtime";
import { PubSub, type PubSubRef } from "@cinder/pubsub";
import { AlreadyTrackedError, NoPresenceError, NotLocalError, TrackerOptionError, UpdateConflictError } from "./errors.js";
import { shardOf } from "./hash.js";
import { resolveOptions, type ResolvedOptions, type TrackerOptions } from "./options.js";
import { findPool, Pool, registerPool, type NodeCore, type PoolView, type ShardSlot } from "./registry.js";
import { ShardServer, type ShardCall, type ShardReply, type ShardStats } from "./shard.js";
import { placeShards, startRemoteShard } from "./spread.js";
import * as State from "./state.js";
import type { KeyPresence, Meta, Row, TopicPresence } from "./state.js";

/**
 * A handle on a tracker of one node. It stays valid across restarts of the tracker's pool.
 * Get one from `Tracker.start`, or `Tracker.ref(ctx, name)` for a tracker started by a child
 * spec. API functions also accept the tracker's name.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * await node.startChild(PubSub.childSpec({ name: "doc_ref_ps" }));
 * await node.startChild(Tracker.childSpec({ name: "doc_ref", pubsub: "doc_ref_ps" }));
 * console.log(Tracker.ref(node, "doc_ref").name); // "doc_ref"
 * await node.stop();
 * ```
 */
export class TrackerRef {
  readonly name: string;
  /** @internal */
  readonly core: NodeCore;
  /** @internal */
  constructor(core: NodeCore, name: string) {
    this.core = core;
    this.name = name;
  }
}

/** A tracker: its handle or its name. */
export type TrackerName = TrackerRef | string;

/** The new meta of `update`: an object (replaces the meta), or a function of the current meta. */
export type MetaUpdate = Meta | ((meta: Meta) => Meta);

function coreOf(ctx: Context): NodeCore {
  return ctx instanceof Process ? ctx.node : (ctx as NodeCore);
}

function resolve(ctx: Context, tracker: TrackerName): PoolView {
  const core = tracker instanceof TrackerRef ? tracker.core : coreOf(ctx);
  const name = tracker instanceof TrackerRef ? tracker.name : tracker;
  if (typeof name !== "string") throw new BadArgError(`not a tracker: ${String(tracker)}`);
  const pool = findPool(core, name);
  if (pool === undefined) throw new NoProcError(`Tracker ${name}`);
  return pool;
}

function checkTopicKey(topic: unknown, key?: unknown): void {
  if (typeof topic !== "string") throw new BadArgError(`topic must be a string, got ${typeof topic}`);
  if (key !== undefined && typeof key !== "string") throw new BadArgError(`key must be a string, got ${typeof key}`);
}

function checkMeta(meta: unknown): asserts meta is Meta {
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) throw new BadArgError(`meta must be a plain object, got ${meta === null ? "null" : Array.isArray(meta) ? "an array" : typeof meta}`);
}

function shardFor(pool: PoolView, topic: string): ShardSlot {
  const i = shardOf(topic, pool.opts.poolSize);
  const h = pool.shards[i];
  if (h === undefined) throw new NoProcError(`Tracker ${pool.name} shard ${i} (not running)`);
  return h;
}

function call(ctx: Context, pool: PoolView, h: ShardSlot, req: ShardCall): Promise<ShardReply> {
  return GenServer.call<ShardCall, ShardReply>(ctx, h.pid, req, pool.opts.callTimeout);
}

function supervisorOptions(pool: Pool): SupervisorOptions {
  const children: ChildSpec[] = [];
  for (let index = 0; index < pool.opts.poolSize; index++) {
    children.push({
      id: `shard${index}`,
      restart: "transient",
      shutdown: 5000,
      start: pool.targets === null ? (sup) => GenServer.startLink(sup, ShardServer, { pool, index }, { trapExit: true }) : (sup) => startRemoteShard(sup, pool, index),
    });
  }
  return { strategy: "one_for_one", maxRestarts: 2 * pool.opts.poolSize, maxSeconds: 1, children };
}

function pubsubOf(ctx: Context, o: ResolvedOptions, pubsub: PubSubRef | string): PubSubRef {
  if (typeof pubsub === "string") return PubSub.ref(ctx, pubsub);
  if (pubsub !== null && typeof pubsub === "object" && typeof (pubsub as PubSubRef).name === "string") return pubsub;
  throw new TrackerOptionError("pubsub", `must be a PubSub handle or name, got ${String(pubsub)} (tracker ${o.name})`);
}

function newPool(ctx: Context, opts: TrackerOptions<any, any>, o: ResolvedOptions): Pool {
  const core = coreOf(ctx);
  const owner = core.whereis(o.name);
  if (owner !== undefined) throw new AlreadyStartedError(o.name, owner);
  const pool = new Pool(core, o, pubsubOf(ctx, o, opts.pubsub));
  registerPool(pool);
  return pool;
}

/** Runs `fn` on every running shard of the pool, in parallel; a shard gone meanwhile is skipped. */
async function everyShard(ctx: Context, pool: PoolView, req: ShardCall): Promise<void> {
  const calls: Array<Promise<unknown>> = [];
  for (const h of pool.shards) {
    if (h !== undefined) calls.push(call(ctx, pool, h, req).catch((e) => (e instanceof CinderError && e.code === "noproc" ? undefined : Promise.reject(e))));
  }
  await Promise.all(calls);
}

function failure(r: ShardReply, pid: Pid, topic: string, key: string, pool: PoolView): never {
  const e = (r as { error: string }).error;
  switch (e) {
    case "already_tracked":
      throw new AlreadyTrackedError(pid, topic, key);
    case "nopresence":
      throw new NoPresenceError(pid, topic, key);
    case "not_local":
      throw new NotLocalError(pid, pool.core.name);
    default:
      throw new CinderError("badarg", `tracker ${pool.name}: unexpected answer ${JSON.stringify(r)}`);
  }
}

/**
 * Phoenix.Tracker for Cinder: track which actors are present under which key on which topic,
 * replicated to every node of the cluster over PubSub (TRACKER.md). Calls that change presences
 * are asynchronous (they go to the topic's shard); reads are synchronous and never wait for a
 * shard.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, type TrackerDiff } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const pubsub = await PubSub.start(node, { name: "doc_tr_ps" });
 * const seen: string[] = [];
 * const tracker = await Tracker.start(node, {
 *   name: "doc_tr",
 *   pubsub,
 *   handleDiff: (diff: TrackerDiff, state: unknown) => {
 *     for (const [topic, { joins, leaves }] of diff) {
 *       for (const l of leaves) seen.push(`leave ${topic} ${l.key}`);
 *       for (const j of joins) seen.push(`join ${topic} ${j.key}`);
 *     }
 *     return { state };
 *   },
 * });
 * const user = node.process();
 * await Tracker.track(user, tracker, user.pid, "room:lobby", "alice", { status: "online" });
 * console.log(Tracker.list(node, tracker, "room:lobby").map((p) => [p.key, p.meta.status])); // [["alice", "online"]]
 * await Tracker.update(user, tracker, user.pid, "room:lobby", "alice", (m) => ({ ...m, status: "away" }));
 * console.log(Tracker.getByKey(node, tracker, "room:lobby", "alice").map((p) => p.meta.status)); // ["away"]
 * await Tracker.untrack(user, tracker, user.pid);
 * console.log(Tracker.list(node, tracker, "room:lobby")); // []
 * console.log(seen); // ["join room:lobby alice", "leave room:lobby alice", "join room:lobby alice", "leave room:lobby alice"]
 * await node.stop();
 * ```
 */
export const Tracker = {
  /**
   * Starts a tracker's pool (a supervisor registered under `name`, not linked to the caller)
   * and resolves with its handle. Rejects with `TrackerOptionError` for a bad option (e.g.
   * `downPeriod < 2 × broadcastPeriod`), `NoProcError` if the PubSub is not running, and
   * `AlreadyStartedError` if the name is taken on this node.
   */
  async start<S = unknown, A = unknown>(ctx: Context, opts: TrackerOptions<S, A>): Promise<TrackerRef> {
    const o = resolveOptions(opts);
    const pool = newPool(ctx, opts, o);
    await placeShards(pool);
    await Supervisor.start(ctx, supervisorOptions(pool), { name: o.name });
    return new TrackerRef(pool.core, o.name);
  },

  /**
   * A child spec that starts the tracker's pool under a supervisor (id = the name; a
   * supervisor child). Throws `TrackerOptionError` at once for bad options; the PubSub is
   * resolved when the child starts, so it may be a sibling started before it.
   */
  childSpec<S = unknown, A = unknown>(opts: TrackerOptions<S, A>, extra?: Partial<ChildSpec>): ChildSpec {
    const o = resolveOptions(opts);
    return {
      id: o.name,
      type: "supervisor",
      shutdown: "infinity",
      start: async (sup) => {
        const pool = newPool(sup, opts, o);
        await placeShards(pool);
        return Supervisor.startLink(sup, supervisorOptions(pool), { name: o.name });
      },
      ...extra,
    };
  },

  /** The handle of the tracker named `name` on the context's node; `NoProcError` if none was started. */
  ref(ctx: Context, name: string): TrackerRef {
    const pool = resolve(ctx, name);
    return new TrackerRef(pool.core, pool.name);
  },

  /**
   * Tracks actor `pid` (of this node) on `topic` under `key` with `meta` (a plain object).
   * Resolves with the presence's `phx_ref`, which is also set in the stored meta. Rejects with
   * `AlreadyTrackedError` if (pid, topic, key) is already tracked, `NotLocalError` for an actor
   * of another node. The shard watches the actor: its exit removes all its presences.
   */
  async track(ctx: Context, tracker: TrackerName, pid: Pid, topic: string, key: string, meta: Meta): Promise<string> {
    checkTopicKey(topic, key);
    checkMeta(meta);
    const pool = resolve(ctx, tracker);
    const r = await call(ctx, pool, shardFor(pool, topic), { op: "track", pid, topic, key, meta });
    if ("ok" in r) return r.ok;
    return failure(r, pid, topic, key, pool);
  },

  /**
   * `untrack(ctx, tracker, pid, topic, key)` removes that presence; `untrack(ctx, tracker, pid)`
   * removes every presence of the pid on every shard. Always resolves `"ok"`, also when nothing
   * was tracked.
   */
  async untrack(ctx: Context, tracker: TrackerName, pid: Pid, topic?: string, key?: string): Promise<"ok"> {
    const pool = resolve(ctx, tracker);
    if (topic === undefined) {
      await everyShard(ctx, pool, { op: "untrack_all", pid });
      return "ok";
    }
    checkTopicKey(topic, key ?? "");
    if (key === undefined) throw new BadArgError("untrack: a topic needs a key");
    await call(ctx, pool, shardFor(pool, topic), { op: "untrack", pid, topic, key });
    return "ok";
  },

  /**
   * Replaces a presence's meta and resolves with its new `phx_ref`; the new meta also gets
   * `phx_ref_prev` (the previous ref). `update` is an object (the new meta) or a function of the
   * current meta; the function runs in the caller, and its result is applied only if nobody
   * updated the presence meanwhile, else it runs again (up to `updateAttempts`, then
   * `UpdateConflictError`). Rejects with `NoPresenceError` if the presence does not exist.
   */
  async update(ctx: Context, tracker: TrackerName, pid: Pid, topic: string, key: string, update: MetaUpdate): Promise<string> {
    checkTopicKey(topic, key);
    const pool = resolve(ctx, tracker);
    if (typeof update !== "function") {
      checkMeta(update);
      const r = await call(ctx, pool, shardFor(pool, topic), { op: "update", pid, topic, key, meta: update });
      if ("ok" in r) return r.ok;
      return failure(r, pid, topic, key, pool);
    }
    const attempts = pool.opts.updateAttempts;
    for (let i = 0; i < attempts; i++) {
      const h = shardFor(pool, topic);
      const row = State.getByPid(h.state, pid, topic, key);
      if (row === undefined) throw new NoPresenceError(pid, topic, key);
      const meta = update(row.meta);
      checkMeta(meta);
      const r = await call(ctx, pool, h, { op: "update", pid, topic, key, meta, ifRef: row.meta.phx_ref as string });
      if ("ok" in r) return r.ok;
      if (r.error !== "conflict") return failure(r, pid, topic, key, pool);
    }
    throw new UpdateConflictError(pid, topic, key, attempts);
  },

  /**
   * The presences of `topic` as `{ key, meta }`, read at once (no message to the shard), without
   * those of peers that are down. Order is unspecified.
   */
  list(ctx: Context, tracker: TrackerName, topic: string): TopicPresence[] {
    checkTopicKey(topic);
    const pool = resolve(ctx, tracker);
    const h = pool.shards[shardOf(topic, pool.opts.poolSize)];
    return h === undefined ? [] : State.getByTopic(h.state, topic);
  },

  /** The presences of (`topic`, `key`) as `{ pid, meta }`, read at once, like `list`. */
  getByKey(ctx: Context, tracker: TrackerName, topic: string, key: string): KeyPresence[] {
    checkTopicKey(topic, key);
    const pool = resolve(ctx, tracker);
    const h = pool.shards[shardOf(topic, pool.opts.poolSize)];
    return h === undefined ? [] : State.getByKey(h.state, topic, key);
  },

  /**
   * Every stored presence of `topic` with its tag, including those of peers that are down and
   * hidden from `list` (Phoenix's `dirty_list`; for tests and debugging).
   */
  dirtyList(ctx: Context, tracker: TrackerName, topic: string): Row[] {
    checkTopicKey(topic);
    const pool = resolve(ctx, tracker);
    const h = pool.shards[shardOf(topic, pool.opts.poolSize)];
    return h === undefined ? [] : State.dirtyByTopic(h.state, topic);
  },

  /**
   * Leaves the cluster on purpose: every shard tells its peers (which drop its presences at
   * once instead of after `downPeriod`) and stops normally; then the pool stops.
   */
  async gracefulPermdown(ctx: Context, tracker: TrackerName): Promise<void> {
    const pool = resolve(ctx, tracker);
    await everyShard(ctx, pool, { op: "graceful_permdown" });
    const sup = pool.core.whereis(pool.name);
    if (sup !== undefined) {
      await Supervisor.stop(ctx, sup, "normal").catch((e) => (e instanceof CinderError && (e.code === "noproc" || e.code === "exit") ? undefined : Promise.reject(e)));
    }
  },

  /** Counters and peers of every running shard of this node (see `ShardStats`). */
  stats(ctx: Context, tracker: TrackerName): ShardStats[] {
    const pool = resolve(ctx, tracker);
    const out: ShardStats[] = [];
    for (const h of pool.shards) {
      const s = h?.stats();
      if (s !== undefined) out.push(s);
    }
    return out;
  },

  /** The shard index of `topic` in this tracker's pool. */
  shardOf(ctx: Context, tracker: TrackerName, topic: string): number {
    checkTopicKey(topic);
    return shardOf(topic, resolve(ctx, tracker).opts.poolSize);
  },
};
