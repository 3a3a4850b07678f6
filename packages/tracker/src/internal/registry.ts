/**
 * The per-thread table of trackers: tracker name → its pool (options, PubSub, and one slot per
 * shard) on the thread that started it, or a {@link PoolView} (read copies of the shards' rows,
 * internal/spread.ts) on the other threads of a node whose shards are spread. A shard publishes
 * its slot when it starts and clears it when it exits; the API reads presences through the
 * slot synchronously, without a message to the shard (TRACKER.md 5.1).
 *
 * The table hangs off the thread's kernel under a `Symbol.for` key rather than in a module
 * variable: a worker thread may load this package twice (from `src/` through tsx, and built),
 * and both copies must see the same trackers.
 */
import type { PubSubRef } from "@cinder/pubsub";
import type { Pid, Process } from "@cinder/runtime";
import type { ResolvedOptions } from "./options.js";
import type { ShardStats } from "./shard.js";
import type { TrackerState } from "./state.js";

/** @internal the kernel a context belongs to */
export type NodeCore = Process<any>["sched"]["node"];

/** @internal what a reader needs of a running shard */
export interface ShardSlot {
  readonly pid: Pid;
  readonly index: number;
  /** the rows to read: the shard's own State (same thread) or a read copy */
  readonly state: TrackerState;
  /** counters now (same thread) or as of the shard's last tick (read copy); undefined if unknown */
  stats(): ShardStats | undefined;
}

/** @internal what the API needs of a tracker on this thread */
export interface PoolView {
  readonly name: string;
  readonly core: NodeCore;
  readonly opts: Pick<ResolvedOptions, "poolSize" | "callTimeout" | "updateAttempts">;
  /** Slot i holds the running shard i, or undefined while it is down or restarting. */
  readonly shards: Array<ShardSlot | undefined>;
  /** true on the thread that started the tracker (the Pool itself) */
  readonly home: boolean;
}

/** @internal one tracker pool on one node; outlives restarts of its shards */
export class Pool implements PoolView {
  readonly name: string;
  readonly core: NodeCore;
  readonly opts: ResolvedOptions;
  readonly pubsub: PubSubRef;
  /** Slot i holds the running shard i, or undefined while it is down or restarting. */
  readonly shards: Array<ShardSlot | undefined>;
  readonly home = true;
  /** worker schedulers the shards run on (round-robin), or null: on this thread */
  targets: readonly number[] | null = null;

  constructor(core: NodeCore, opts: ResolvedOptions, pubsub: PubSubRef) {
    this.core = core;
    this.name = opts.name;
    this.opts = opts;
    this.pubsub = pubsub;
    this.shards = new Array(opts.poolSize).fill(undefined);
  }
}

const KEY = Symbol.for("cinder.tracker.pools");

/** @internal this thread's trackers */
export function threadPools(core: NodeCore): Map<string, PoolView> {
  const c = core as unknown as { [KEY]?: Map<string, PoolView> };
  return (c[KEY] ??= new Map());
}

/** @internal the tracker named `name` on this thread, if one was started (or is spread here) */
export function findPool(core: NodeCore, name: string): PoolView | undefined {
  return (core as unknown as { [KEY]?: Map<string, PoolView> })[KEY]?.get(name);
}

/** @internal records a new pool (replacing a dead one of the same name) */
export function registerPool(pool: PoolView): void {
  threadPools(pool.core).set(pool.name, pool);
}
