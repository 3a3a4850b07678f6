/**
 * Data types shared by the State, delta and generation modules. Everything here is plain data
 * (strings, numbers, `Map`, `Set`, objects) so it survives `structuredClone` and the cluster codec.
 */
import type { Clock } from "./clock.js";
import type { ReplicaId } from "./replica.js";

/** An actor id. Opaque to the tracker: compared with `===` only. */
export type Pid = string;
/** A topic name. */
export type Topic = string;
/** A presence key within a topic (e.g. a user id). */
export type Key = string;
/** Presence metadata: a plain structured-clonable object, treated as immutable once stored. */
export type Meta = Readonly<Record<string, unknown>>;

/**
 * One presence as carried in deltas and transfers; its tag is where it sits in
 * {@link Values} (replica → counter → value). Immutable: shared between the state, its
 * pending delta, extracts and delta generations.
 */
export interface Value {
  readonly pid: Pid;
  readonly topic: Topic;
  readonly key: Key;
  readonly meta: Meta;
}

/** Presences by tag: replica → counter → value. */
export type Values = ReadonlyMap<ReplicaId, ReadonlyMap<number, Value>>;

/** Per replica, the counters seen beyond that replica's contiguous prefix (or in a delta: all seen). */
export type Clouds = ReadonlyMap<ReplicaId, ReadonlySet<number>>;

/** The clocks a delta spans: it holds the events after `start` up to `end`. */
export interface DeltaRange {
  readonly start: Clock;
  readonly end: Clock;
}

/**
 * A partial state (TRACKER.md 1, "Delta"). A value whose dot is in `clouds` is an add; a cloud
 * dot with no value is a tombstone (that presence was removed). A delta has no context of its
 * own: what it knows is exactly its clouds.
 */
export interface Delta {
  readonly kind: "delta";
  readonly values: Values;
  readonly clouds: Clouds;
  readonly range: DeltaRange;
}

/**
 * A full-state transfer: what the sender knows (context + clouds) and every presence it holds
 * (restricted to the replicas the requester knows).
 */
export interface FullPayload {
  readonly kind: "full";
  readonly context: Clock;
  readonly clouds: Clouds;
  readonly values: Values;
}

/** What {@link merge} accepts: a delta (heartbeat, delta transfer) or a full transfer. */
export type Payload = Delta | FullPayload;

/**
 * One stored presence with its tag, as returned by reads and reported as a join or leave.
 * A snapshot: later changes to the state never alter a returned row.
 */
export interface Row {
  readonly topic: Topic;
  readonly pid: Pid;
  readonly key: Key;
  readonly meta: Meta;
  /** Replica that created this presence (first half of the tag). */
  readonly replica: ReplicaId;
  /** That replica's event counter for it (second half of the tag). */
  readonly counter: number;
}

/** Joins and leaves caused by a merge. A leave carries the row as it was (old meta and tag). */
export interface Diff {
  readonly joins: Row[];
  readonly leaves: Row[];
}

/** A replica's status in a state: only used to filter reads and {@link clocks}. */
export type ReplicaStatus = "up" | "down";
