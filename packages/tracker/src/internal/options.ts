/**
 * Tracker start options (TRACKER.md 3.1): types, defaults and validation. A violated rule fails
 * the start with a {@link TrackerOptionError} naming the option.
 */
import type { Logger, Pid } from "@cinder/runtime";
import type { PubSubRef } from "@cinder/pubsub";
import { TrackerOptionError } from "./errors.js";
import type { ReplicaId } from "./replica.js";
import type { Meta } from "./types.js";

/**
 * One presence as a diff reports it and `list` returns it: its key and its meta (with
 * `phx_ref`, and `phx_ref_prev` after an update).
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, type Presence } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const tracker = await Tracker.start(node, { name: "doc_pr", pubsub: await PubSub.start(node, { name: "doc_pr_ps" }) });
 * const me = node.process();
 * const ref = await Tracker.track(me, tracker, me.pid, "room", "alice", { away: false });
 * const [p]: Presence[] = Tracker.list(node, tracker, "room");
 * console.log([p!.key, p!.meta.away, p!.meta.phx_ref === ref]); // ["alice", false, true]
 * await node.stop();
 * ```
 */
export interface Presence {
  readonly key: string;
  readonly meta: Meta;
}

/**
 * The joins and leaves of one topic in a diff.
 *
 * @example
 * ```ts
 * import type { TopicDiff } from "@cinder/tracker";
 * const d: TopicDiff = { joins: [{ key: "bob", meta: { phx_ref: "r2" } }], leaves: [{ key: "alice", meta: { phx_ref: "r1" } }] };
 * console.log([d.joins.length, d.leaves[0]!.key]); // [1, "alice"]
 * ```
 */
export interface TopicDiff {
  readonly joins: Presence[];
  readonly leaves: Presence[];
}

/**
 * What `handleDiff` receives: topic → joins and leaves (TRACKER.md 3.8). Never empty. An update
 * is a leave of the old meta and a join of the new one under the same key.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, type TrackerDiff } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const diffs: TrackerDiff[] = [];
 * const tracker = await Tracker.start(node, {
 *   name: "doc_diff",
 *   pubsub: await PubSub.start(node, { name: "doc_diff_ps" }),
 *   handleDiff: (diff, state) => (diffs.push(diff), { state }),
 * });
 * const me = node.process();
 * await Tracker.track(me, tracker, me.pid, "room", "alice", { v: 1 });
 * await Tracker.update(me, tracker, me.pid, "room", "alice", { v: 2 });
 * const update = diffs[1]!.get("room")!;
 * console.log([update.leaves.map((p) => p.meta.v), update.joins.map((p) => p.meta.v)]); // [[1], [2]]
 * await node.stop();
 * ```
 */
export type TrackerDiff = Map<string, TopicDiff>;

/**
 * What a shard tells the tracker module's `init` (each shard calls it once at its start).
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, type ShardInfo } from "@cinder/tracker";
 * const node = await startNode({ name: "docnode", schedulers: 1 });
 * const seen: ShardInfo[] = [];
 * await Tracker.start(node, { name: "doc_info", pubsub: await PubSub.start(node, { name: "doc_info_ps" }), poolSize: 2, init: (_arg, info) => void seen.push(info) });
 * console.log(seen.map((i) => [i.shard, i.poolSize, i.node]).sort()); // [[0, 2, "docnode"], [1, 2, "docnode"]]
 * await node.stop();
 * ```
 */
export interface ShardInfo {
  /** The tracker's name. */
  readonly tracker: string;
  /** This shard's index in the pool. */
  readonly shard: number;
  readonly poolSize: number;
  /** This shard incarnation's replica id (node name + vsn). */
  readonly replica: ReplicaId;
  /** This node's name in the cluster (the PubSub's). */
  readonly node: string;
}

/**
 * What the `handleDiff` / `handleInfo` callbacks return: the tracker module's new state. Any
 * other shape crashes the shard (it is restarted by the pool).
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, type CallbackResult, type TrackerDiff } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * let last = 0;
 * const count = (diff: TrackerDiff, n: number): CallbackResult<number> => {
 *   for (const d of diff.values()) n += d.joins.length - d.leaves.length;
 *   last = n;
 *   return { state: n };
 * };
 * const tracker = await Tracker.start(node, { name: "doc_cb", pubsub: await PubSub.start(node, { name: "doc_cb_ps" }), init: () => 0, handleDiff: count });
 * const me = node.process();
 * await Tracker.track(me, tracker, me.pid, "a", "k", {});
 * await Tracker.track(me, tracker, me.pid, "b", "k", {});
 * console.log(last); // 2
 * await node.stop();
 * ```
 */
export interface CallbackResult<S> {
  state: S;
}

/**
 * A replica event (up, down, permdown), sent to `reportEventsTo` (Phoenix's undocumented
 * `report_events_to`). `up` is sent when the replica's presences become visible. See the
 * example of {@link TrackerOptions}.
 *
 * @example
 * ```ts
 * import type { ReplicaEvent } from "@cinder/tracker";
 * const isDown = (e: ReplicaEvent) => e.event === "down";
 * console.log(isDown({ type: "tracker_replica", event: "down", tracker: "t", shard: 0, replica: "b#x.1" as never, node: "b" })); // true
 * ```
 */
export interface ReplicaEvent {
  readonly type: "tracker_replica";
  readonly event: "up" | "down" | "permdown";
  readonly tracker: string;
  readonly shard: number;
  readonly replica: ReplicaId;
  readonly node: string;
}

/**
 * Sent to every tracked actor when its shard exits, with `onShardExit: "notify"`, so that it
 * can track itself again once the shard is back.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, type ShardDownMessage } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const tracker = await Tracker.start(node, { name: "doc_down", pubsub: await PubSub.start(node, { name: "doc_down_ps" }), onShardExit: "notify" });
 * const me = node.process();
 * await Tracker.track(me, tracker, me.pid, "room", "me", {});
 * node.exit(Tracker.stats(node, tracker)[0]!.pid, "kill");
 * const m = (await me.receive()) as ShardDownMessage;
 * console.log([m.type, m.shard, m.reason]); // ["tracker_shard_down", 0, "killed"]
 * await node.stop();
 * ```
 */
export interface ShardDownMessage {
  readonly type: "tracker_shard_down";
  readonly tracker: string;
  readonly shard: number;
  readonly reason: unknown;
}

/**
 * Options of `Tracker.start` / `Tracker.childSpec`. `S` is the tracker module's state, `A` its
 * init argument. Every node of the cluster must use the same `name` and `poolSize`.
 *
 * @example
 * ```ts
 * import { MemoryCluster, startNode, silentLogger, type Process } from "@cinder/runtime";
 * import { PubSub, clusterAdapter } from "@cinder/pubsub";
 * import { Tracker, type ReplicaEvent, type TrackerOptions, type TrackerRef } from "@cinder/tracker";
 * const cluster = new MemoryCluster({ heartbeatMs: 10, downAfterMs: 200 });
 * const nodes: Array<{ node: Awaited<ReturnType<typeof startNode>>; tracker: TrackerRef; events: Process<ReplicaEvent> }> = [];
 * for (const name of ["a", "b"]) {
 *   const t = cluster.node(name);
 *   await t.start();
 *   const node = await startNode({ name, schedulers: 1, logger: silentLogger });
 *   const pubsub = await PubSub.start(node, { name: "ps", adapter: clusterAdapter(t) });
 *   const events = node.process<ReplicaEvent>();
 *   const opts: TrackerOptions = { name: "doc_opts", pubsub, broadcastPeriod: 20, downPeriod: 200, permdownPeriod: 1000, reportEventsTo: events.pid };
 *   nodes.push({ node, tracker: await Tracker.start(node, opts), events });
 * }
 * const [a, b] = nodes;
 * const up = (await a!.events.receive()) as ReplicaEvent;
 * console.log([up.event, up.node]); // ["up", "b"]
 * const user = b!.node.process();
 * await Tracker.track(user, b!.tracker, user.pid, "room", "bob", {});
 * while (Tracker.list(a!.node, a!.tracker, "room").length === 0) await new Promise((r) => setTimeout(r, 5));
 * console.log(Tracker.list(a!.node, a!.tracker, "room").map((p) => p.key)); // ["bob"]
 * for (const n of nodes) await n.node.stop();
 * await cluster.close();
 * ```
 */
export interface TrackerOptions<S = unknown, A = unknown> {
  /** Required: the tracker's name, unique on the node and equal on every node of the cluster. */
  name: string;
  /** Required: the PubSub (handle or name) the shards replicate over. */
  pubsub: PubSubRef | string;
  /** Shards in the pool; must be equal on every node. Default 1. */
  poolSize?: number;
  /** Tick interval, ms. Default 1500. */
  broadcastPeriod?: number;
  /** An idle shard heartbeats every `maxSilentPeriods + 1` ticks. Default 10. */
  maxSilentPeriods?: number;
  /** Silence after which a peer is down, ms; ≥ 2 × broadcastPeriod. Default broadcastPeriod × maxSilentPeriods × 2. */
  downPeriod?: number;
  /** Silence after which a peer is purged, ms; > downPeriod. Default 1,200,000 (20 min). */
  permdownPeriod?: number;
  /** Clocks are compared every N ticks. Default 2. */
  clockSamplePeriods?: number;
  /** Delta generation windows, ascending. Default [100, 1000, 10000]. */
  maxDeltaSizes?: number[];
  /** On an orderly node shutdown, announce a graceful permdown first. Default false. */
  permdownOnShutdown?: boolean;
  /** `"info"` logs protocol events (replica up/down/permdown, transfers) through the node's logger. Default `"off"`. */
  logLevel?: "off" | "info";
  /** Logger (default: the node's). */
  logger?: Logger;
  /** The tracker module's state, built by each shard at its start (default: `undefined`). */
  init?: (arg: A, shard: ShardInfo) => S;
  /** The argument given to `init`. */
  arg?: A;
  /** Called inside the shard with every non-empty diff; returns `{ state }`. A throw or another shape crashes the shard. */
  handleDiff?: (diff: TrackerDiff, state: S) => CallbackResult<S>;
  /** Called with messages the shard does not know; returns `{ state }`. Without it they are dropped. */
  handleInfo?: (msg: unknown, state: S) => CallbackResult<S>;
  /** A pid that receives a {@link ReplicaEvent} for every replica up, down and permdown. */
  reportEventsTo?: Pid;
  /**
   * What tracked actors learn when their shard exits (TRACKER.md 3.9): `"exit"` (default) sends
   * each an exit signal with the shard's reason, as Phoenix's link does (a `normal` exit is
   * ignored unless trapped); `"notify"` sends a {@link ShardDownMessage} instead.
   */
  onShardExit?: "exit" | "notify";
  /** `update` with a function tries this many times against concurrent updates before failing with `conflict`. Default 5. */
  updateAttempts?: number;
  /** How long `track`, `untrack` and `update` wait for the shard, ms. Default 5000. */
  callTimeout?: number;
  /**
   * Where the shards run. Default: on the caller's scheduler thread (all of them). `"spread"`:
   * shard i on the node's i-th worker scheduler, round-robin, so merges run in parallel;
   * a list of worker scheduler indexes: round-robin over those. The callbacks (`init`,
   * `handleDiff`, `handleInfo`) still run on the caller's thread (one dispatcher process per
   * shard); every thread keeps a read copy of the shards' rows, so `list`/`getByKey` stay
   * synchronous on any thread (see `internal/spread.ts`). On a node without worker threads
   * `"spread"` keeps the shards on the caller's thread.
   */
  schedulers?: "spread" | number[];
}

/** @internal options after defaults */
export interface ResolvedOptions {
  readonly name: string;
  readonly poolSize: number;
  readonly broadcastPeriod: number;
  readonly maxSilentPeriods: number;
  readonly downPeriod: number;
  readonly permdownPeriod: number;
  readonly clockSamplePeriods: number;
  readonly maxDeltaSizes: readonly number[];
  readonly permdownOnShutdown: boolean;
  readonly logLevel: "off" | "info";
  readonly logger: Logger | undefined;
  readonly init: ((arg: any, shard: ShardInfo) => unknown) | undefined;
  readonly arg: unknown;
  readonly handleDiff: ((diff: TrackerDiff, state: any) => CallbackResult<any>) | undefined;
  readonly handleInfo: ((msg: unknown, state: any) => CallbackResult<any>) | undefined;
  readonly reportEventsTo: Pid | undefined;
  readonly onShardExit: "exit" | "notify";
  readonly updateAttempts: number;
  readonly callTimeout: number;
  readonly schedulers: "spread" | readonly number[] | undefined;
}

function num(opts: Record<string, unknown>, key: string, dflt: number, rule: (v: number) => boolean, what: string): number {
  const v = opts[key];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !rule(v)) throw new TrackerOptionError(key, `must be ${what}, got ${String(v)}`);
  return v;
}

const positiveInt = (v: number) => Number.isInteger(v) && v >= 1;
const positive = (v: number) => Number.isFinite(v) && v > 0;

function fn(opts: Record<string, unknown>, key: string): ((...a: any[]) => any) | undefined {
  const v = opts[key];
  if (v === undefined) return undefined;
  if (typeof v !== "function") throw new TrackerOptionError(key, `must be a function, got ${typeof v}`);
  return v as (...a: any[]) => any;
}

function placementOption(v: unknown): "spread" | readonly number[] | undefined {
  if (v === undefined || v === "spread") return v;
  if (Array.isArray(v) && v.length > 0 && v.every((i) => Number.isInteger(i) && i >= 1)) return [...(v as number[])];
  throw new TrackerOptionError("schedulers", `must be "spread" or a non-empty list of worker scheduler indexes (≥ 1), got ${JSON.stringify(v)}`);
}

/** @internal validates and fills defaults; throws TrackerOptionError */
export function resolveOptions(opts: TrackerOptions<any, any> | undefined): ResolvedOptions {
  if (opts === null || typeof opts !== "object") throw new TrackerOptionError("name", "the required option name is missing (no options given)");
  const o = opts as unknown as Record<string, unknown>;
  const name = opts.name;
  if (typeof name !== "string" || name.length === 0) throw new TrackerOptionError("name", `must be a non-empty string, got ${JSON.stringify(name)}`);
  if (opts.pubsub === undefined || opts.pubsub === null) throw new TrackerOptionError("pubsub", "the required option pubsub is missing");
  const poolSize = num(o, "poolSize", 1, positiveInt, "a positive integer");
  const broadcastPeriod = num(o, "broadcastPeriod", 1500, positive, "a positive number of ms");
  const maxSilentPeriods = num(o, "maxSilentPeriods", 10, (v) => Number.isInteger(v) && v >= 0, "a non-negative integer");
  const downPeriod = num(o, "downPeriod", broadcastPeriod * Math.max(1, maxSilentPeriods) * 2, positive, "a positive number of ms");
  if (downPeriod < 2 * broadcastPeriod) {
    throw new TrackerOptionError("downPeriod", `must be at least 2 × broadcastPeriod (${2 * broadcastPeriod} ms), got ${downPeriod}`);
  }
  const permdownPeriod = num(o, "permdownPeriod", 1_200_000, positive, "a positive number of ms");
  if (permdownPeriod <= downPeriod) {
    throw new TrackerOptionError("permdownPeriod", `must be greater than downPeriod (${downPeriod} ms), got ${permdownPeriod}`);
  }
  const clockSamplePeriods = num(o, "clockSamplePeriods", 2, positiveInt, "a positive integer");
  const sizes = opts.maxDeltaSizes ?? [100, 1000, 10000];
  if (!Array.isArray(sizes) || sizes.length === 0 || !sizes.every((s, i) => positiveInt(s) && (i === 0 || s > sizes[i - 1]!))) {
    throw new TrackerOptionError("maxDeltaSizes", `must be a non-empty ascending list of positive integers, got ${JSON.stringify(sizes)}`);
  }
  const logLevel = opts.logLevel ?? "off";
  if (logLevel !== "off" && logLevel !== "info") throw new TrackerOptionError("logLevel", `must be "off" or "info", got ${JSON.stringify(logLevel)}`);
  const onShardExit = opts.onShardExit ?? "exit";
  if (onShardExit !== "exit" && onShardExit !== "notify") throw new TrackerOptionError("onShardExit", `must be "exit" or "notify", got ${JSON.stringify(onShardExit)}`);
  const reportEventsTo = opts.reportEventsTo;
  if (reportEventsTo !== undefined && typeof reportEventsTo !== "string") throw new TrackerOptionError("reportEventsTo", "must be a pid");
  return {
    name,
    poolSize,
    broadcastPeriod,
    maxSilentPeriods,
    downPeriod,
    permdownPeriod,
    clockSamplePeriods,
    maxDeltaSizes: [...sizes],
    permdownOnShutdown: opts.permdownOnShutdown === true,
    logLevel,
    logger: opts.logger,
    init: fn(o, "init"),
    arg: opts.arg,
    handleDiff: fn(o, "handleDiff"),
    handleInfo: fn(o, "handleInfo"),
    reportEventsTo,
    onShardExit,
    updateAttempts: num(o, "updateAttempts", 5, positiveInt, "a positive integer"),
    callTimeout: num(o, "callTimeout", 5000, (v) => v > 0, "a positive number of ms (or Infinity)"),
    schedulers: placementOption(opts.schedulers),
  };
}
