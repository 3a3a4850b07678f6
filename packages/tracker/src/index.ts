/**
 * @cinder/tracker: Phoenix.Tracker for Cinder (TRACKER.md).
 *
 * - {@link Tracker}: the API. `Tracker.start` runs a pool of shards (one GenServer per shard,
 *   under a supervisor) that replicate presences to every node over PubSub; `track`, `untrack`
 *   and `update` go to the shard of the topic; `list` and `getByKey` read at once.
 * - {@link State}: the presence CRDT (TRACKER.md section 2), pure: local joins/leaves/updates,
 *   merges of deltas and full transfers with the joins and leaves they cause, extracts, clocks,
 *   replica up/down/permdown, delta generations and reads by topic, key and pid.
 * - {@link Peers}: peer records and the up/down/permdown events heartbeats and silence cause.
 *
 * @example
 * ```ts
 * import { State } from "@cinder/tracker";
 *
 * const a = State.create(State.replicaId("node-a", "v1"));
 * const b = State.create(State.replicaId("node-b", "v1"));
 * State.replicaUp(a, b.replica); // the shard does this on a's first heartbeat
 * State.replicaUp(b, a.replica);
 *
 * State.join(a, "pid-1", "room:lobby", "alice", { status: "away" });
 * const heartbeat = a.delta; // what a's next tick broadcasts
 * State.resetDelta(a);
 * const { joins, leaves } = State.merge(b, heartbeat);
 * console.log([joins.map((r) => r.key), leaves.length]); // [["alice"], 0]
 * console.log(State.getByTopic(b, "room:lobby")); // [{ key: "alice", meta: { status: "away" } }]
 *
 * State.leave(a, "pid-1", "room:lobby", "alice");
 * console.log(State.merge(b, a.delta).leaves.map((r) => r.meta)); // [{ status: "away" }]
 * console.log(State.getByTopic(b, "room:lobby")); // []
 * ```
 */
export * as State from "./internal/state.js";
export * as Peers from "./internal/peers.js";
export type {
  Clock,
  Delta,
  Diff,
  FullPayload,
  Generations,
  KeyPresence,
  Meta,
  Payload,
  ReplicaId,
  Row,
  TopicPresence,
  TrackerState,
} from "./internal/state.js";
export { Tracker, TrackerRef, type TrackerName, type MetaUpdate } from "./internal/pool.js";
export { AlreadyTrackedError, NoPresenceError, NotLocalError, TrackerOptionError, UpdateConflictError } from "./internal/errors.js";
export { shardOf, topicHash } from "./internal/hash.js";
export { PROTOCOL_VERSION, shardTopic, type PeerInfo, type ShardCounters, type ShardStats } from "./internal/shard.js";
/** @internal the worker-thread side of spread shards (loaded by internal/thread.ts by package name) */
export { threadInit as __threadInit, RemoteShardServer as __RemoteShard } from "./internal/spread.js";
export type {
  CallbackResult,
  Presence,
  ReplicaEvent,
  ShardDownMessage,
  ShardInfo,
  TopicDiff,
  TrackerDiff,
  TrackerOptions,
} from "./internal/options.js";
