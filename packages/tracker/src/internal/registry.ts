/**
 * The per-node table of running trackers: tracker name → its pool (options, PubSub, and one slot
 * per shard). A shard publishes its {@link ShardHandle} in its slot when it starts and clears the
 * slot when it exits; the API reads presences through the handle synchronously, without a
 * message to the shard (TRACKER.md 5.1).
 */
import type { PubSubRef } from "@cinder/pubsub";
import type { Process } from "@cinder/runtime";
import type { ResolvedOptions } from "./options.js";
import type { ShardHandle } from "./shard.js";

/** @internal the kernel a context belongs to */
export type NodeCore = Process<any>["sched"]["node"];

/** @internal one tracker pool on one node; outlives restarts of its shards */
export class Pool {
  readonly name: string;
  readonly core: NodeCore;
  readonly opts: ResolvedOptions;
  readonly pubsub: PubSubRef;
  /** Slot i holds the running shard i, or undefined while it is down or restarting. */
  readonly shards: Array<ShardHandle | undefined>;

  constructor(core: NodeCore, opts: ResolvedOptions, pubsub: PubSubRef) {
    this.core = core;
    this.name = opts.name;
    this.opts = opts;
    this.pubsub = pubsub;
    this.shards = new Array(opts.poolSize).fill(undefined);
  }
}

const pools = new WeakMap<NodeCore, Map<string, Pool>>();

/** @internal the pool named `name` on this node, if one was started */
export function findPool(core: NodeCore, name: string): Pool | undefined {
  return pools.get(core)?.get(name);
}

/** @internal records a new pool (replacing a dead one of the same name) */
export function registerPool(pool: Pool): void {
  let byName = pools.get(pool.core);
  if (byName === undefined) pools.set(pool.core, (byName = new Map()));
  byName.set(pool.name, pool);
}
