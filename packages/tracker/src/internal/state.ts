/**
 * Tracker `State`: the presence CRDT (TRACKER.md section 2). Pure: no actors, timers or I/O.
 *
 * ## What a state holds
 *
 * A state is one replica's copy of "actor P is present under key K on topic T with meta M".
 * Every change a replica makes is an *event* numbered by that replica: 1, 2, 3, … An event's
 * (replica, number) is its *dot*; a presence is stored with the dot of the event that created
 * it (its *tag*). Alongside the presences a state records what it has *seen*:
 *
 * - `context`: per replica, the highest n such that every dot 1..n of it has been seen;
 * - `clouds`: per replica, dots seen beyond that prefix (after a lost message, say).
 *
 * A dot is *covered* when the context reaches it or a cloud holds it. Seeing a dot is forever;
 * holding a presence is not. So a covered dot with no stored presence means "removed", and that
 * is all a removal needs to leave behind: no tombstone per presence, just the knowledge.
 * Only the replica that created a presence ever removes it at the source; everyone else
 * learns the removal by merging.
 *
 * A state also carries its *pending delta*: the events since the last heartbeat (added presences,
 * plus the dots of removals as bare cloud dots), and an up/down flag per known replica that
 * only filters reads and the advertised clock.
 *
 * ## What merge guarantees
 *
 * `merge(local, payload)` takes a delta (from a heartbeat or a small transfer) or a full payload
 * (another replica's whole state, restricted to what the receiver knows) and:
 *
 * - adds every presence whose dot the local state has not seen, from replicas it has met;
 * - removes every presence (of another replica) whose dot the payload has seen but no longer
 *   holds: the sender observed its removal. A presence created concurrently carries a dot the
 *   sender has not seen, so it survives (add wins);
 * - keeps the removed dots in its clouds (Cinder rule A), so a stale payload that still holds a
 *   removed presence cannot bring it back;
 * - keeps at most one presence per (topic, pid, key) from one replica, the newer (higher
 *   counter) winning (Cinder rule B), so a stale payload cannot replace a newer meta;
 * - relays every removal it learned through its own pending delta, and reports exactly the
 *   presences that appeared (joins) and disappeared (leaves); an update is one in-place
 *   overwrite reported as a leave of the old meta and a join of the new one.
 *
 * Merging the same payload twice changes nothing the second time. Full payloads can be merged
 * in any order. Deltas of one sender must be merged in send order, gaps allowed: anything
 * missed is found later by comparing clocks and asking for a transfer.
 *
 * ## Partitions and failures
 *
 * Nothing here measures time. The shard flags a silent replica `down`: its presences stay
 * stored but vanish from reads (and are reported as leaves); merges keep applying to them, so
 * what was learned about it while it was down (through third replicas) is not lost. If it comes
 * back (`replicaUp`) they reappear; what changed in the meantime arrives by transfer, removals
 * included, because removed dots stay covered. A replica silent for too long is purged
 * (`removeDownReplica`): its presences, its clock entry and its dots go, and since merges ignore
 * replicas the state has not met, a stale copy held by a third replica cannot resurrect it. If it
 * ever returns it is met afresh and a transfer rebuilds its presences. Replicas only ever see
 * what they have merged: views are not transitive across a partial partition.
 *
 * ## Mutability and cost
 *
 * Functions that change a state mutate it in place (a state belongs to one shard) and return
 * what they report. Payloads, deltas and rows handed out are snapshots that this module never
 * modifies afterwards (except the live pending delta, `state.delta`, until `resetDelta`). Metas
 * are stored by reference and must be treated as immutable. Reads cost O(result); a local
 * operation O(1); merging a delta O(size of the delta); merging a full payload O(payload +
 * local presences of the replicas it covers).
 *
 * ## Where this differs from the letter of TRACKER.md section 2 (same observable behaviour)
 *
 * - Own dots are not copied into `clouds` on each local event: the own context entry already
 *   covers every own dot, so the copy could only be compacted away (2.2 calls it redundant).
 *   For the same reason a local leave has no cloud entry to delete.
 * - `extract` of a delta keeps the requester's own values (2.4 allows dropping them): dropped,
 *   their dots would stay in the clouds and read as tombstones once the requester pushes the
 *   delta into its generations (found by the property tests; see `extract`).
 * - A join of a triple or tag already stored throws instead of silently corrupting the indexes.
 * - Rule B never replaces a row of the local replica (consistent with "rows of the local replica
 *   are never removed by a merge").
 *
 * @module
 */
import type { Clock, NamedClock, ReplicaFilter } from "./clock.js";
import { copyDelta, deltaHasDots, emptyDelta, restrictDelta, type MutableDelta } from "./delta.js";
import { pickWindow, type Generations } from "./generations.js";
import type { ReplicaId } from "./replica.js";
import { Entry, MARK_JOINED, MARK_LEAVING, MARK_NONE, MARK_REJOINED, RowStore } from "./rows.js";
import type { Delta, Diff, FullPayload, Key, Meta, Payload, Pid, ReplicaStatus, Row, Topic, Value } from "./types.js";

export {
  appendClock,
  dominates,
  dominatesOrEqual,
  filter,
  lowerbound,
  replicas,
  upperbound,
  type Clock,
  type ClockSet,
  type NamedClock,
  type ReplicaFilter,
} from "./clock.js";
export { deltaSize, mergeDeltas, NOT_CONTIGUOUS, type NotContiguous } from "./delta.js";
export {
  DEFAULT_MAX_DELTA_SIZES,
  pickWindow,
  pruneGenerations,
  pushGeneration,
  type Generations,
} from "./generations.js";
export { replicaId, replicaName, replicaVsn, type ReplicaId } from "./replica.js";
export type {
  Clouds,
  Delta,
  DeltaRange,
  Diff,
  FullPayload,
  Key,
  Meta,
  Payload,
  Pid,
  ReplicaStatus,
  Row,
  Topic,
  Value,
  Values,
} from "./types.js";

/** The public, read-only view of a state. Change it only through this module's functions. */
export interface TrackerState {
  /** This state's own replica id. */
  readonly replica: ReplicaId;
  /** replica → highest contiguous counter seen; the own entry is the own event counter. */
  readonly context: Clock;
  /** replica → counters seen beyond the context (empty sets are never kept). */
  readonly clouds: ReadonlyMap<ReplicaId, ReadonlySet<number>>;
  /** Status of every replica met; rows of `down` ones are hidden from filtered reads. */
  readonly replicas: ReadonlyMap<ReplicaId, ReplicaStatus>;
  /**
   * The pending delta: every local event since the last {@link resetDelta}, plus removals
   * learned by merges (to relay). Live: it changes with each local operation until reset.
   */
  readonly delta: Delta;
}

/** A presence as listed by {@link getByTopic}. */
export interface TopicPresence {
  readonly key: Key;
  readonly meta: Meta;
}

/** A presence as listed by {@link getByKey}. */
export interface KeyPresence {
  readonly pid: Pid;
  readonly meta: Meta;
}

/** The internal shape behind {@link TrackerState}. */
interface StateData {
  readonly replica: ReplicaId;
  readonly context: Map<ReplicaId, number>;
  readonly clouds: Map<ReplicaId, Set<number>>;
  readonly replicas: Map<ReplicaId, ReplicaStatus>;
  delta: MutableDelta;
  readonly rows: RowStore;
  /** The replicas flagged down (a fast filter for reads). */
  readonly down: Set<ReplicaId>;
}

const data = (s: TrackerState): StateData => s as unknown as StateData;

// ---------------------------------------------------------------------------------------------
// Creation and local mutations

/**
 * A new, empty state for replica `replica`: context {replica: 0}, no rows, the replica up.
 * @example const s = create(replicaId("node-a", "v1"));
 */
export function create(replica: ReplicaId): TrackerState {
  const s: StateData = {
    replica,
    context: new Map([[replica, 0]]),
    clouds: new Map(),
    replicas: new Map([[replica, "up" as ReplicaStatus]]),
    delta: emptyDelta(new Map([[replica, 0]])),
    rows: new RowStore(),
    down: new Set(),
  };
  return s as unknown as TrackerState;
}

/**
 * An independent deep copy of a state (rows re-indexed; immutable values and metas shared).
 * O(rows). For tests, and for handing a snapshot to other work while the original goes on.
 */
export function clone(state: TrackerState): TrackerState {
  const s = data(state);
  const rows = new RowStore();
  for (const e of s.rows.entries()) rows.insert(e.value, e.row.replica, e.row.counter);
  const clouds = new Map<ReplicaId, Set<number>>();
  for (const [r, c] of s.clouds) clouds.set(r, new Set(c));
  const copy: StateData = {
    replica: s.replica,
    context: new Map(s.context),
    clouds,
    replicas: new Map(s.replicas),
    delta: copyDelta(s.delta),
    rows,
    down: new Set(s.down),
  };
  return copy as unknown as TrackerState;
}

/**
 * Adds presence (pid, topic, key) with `meta`, tagged with a new dot of the own replica, and
 * records it in the pending delta. Returns the stored row.
 * @throws Error if the triple is already present (the shard checks first; `already_tracked`).
 */
export function join(state: TrackerState, pid: Pid, topic: Topic, key: Key, meta: Meta): Row {
  const s = data(state);
  const value: Value = { pid, topic, key, meta };
  const n = ownCounter(s) + 1;
  const e = s.rows.insert(value, s.replica, n);
  bumpTo(s, n);
  valuesOf(s.delta, s.replica).set(n, value);
  return e.row;
}

/**
 * Removes presences at their origin. `leave(state, pid, topic, key)` removes that one presence
 * (nothing if absent); `leave(state, pid)` removes every presence of the pid. Each removal
 * tombstones the presence's dot in the pending delta and takes a new own dot. Returns the
 * removed rows (with their metas and tags), in no particular order.
 */
export function leave(state: TrackerState, pid: Pid): Row[];
export function leave(state: TrackerState, pid: Pid, topic: Topic, key: Key): Row[];
export function leave(state: TrackerState, pid: Pid, topic?: Topic, key?: Key): Row[] {
  const s = data(state);
  if (topic === undefined || key === undefined) {
    const victims: Entry[] = [];
    for (let e = s.rows.pidHead(pid) ?? null; e !== null; e = e.pidNext) victims.push(e);
    return victims.map((e) => removeLocally(s, e));
  }
  const e = s.rows.find(topic, key, pid);
  return e === undefined ? [] : [removeLocally(s, e)];
}

/**
 * Updates a presence's meta at its origin (the tracker's `update`): tombstones the old tag,
 * takes a dot for the removal and one for the new value, and rewrites the row in place, so a
 * reader never sees the presence missing. The pid index is unchanged.
 * @returns the row before (`leave`) and after (`join`).
 * @throws Error if the presence does not exist (the shard answers `nopresence` first).
 */
export function leaveJoin(state: TrackerState, pid: Pid, topic: Topic, key: Key, meta: Meta): { leave: Row; join: Row } {
  const s = data(state);
  const e = s.rows.find(topic, key, pid);
  if (e === undefined) {
    throw new Error(`tracker state: leaveJoin of an absent presence: topic ${JSON.stringify(topic)}, pid ${JSON.stringify(pid)}, key ${JSON.stringify(key)}`);
  }
  const old = e.row;
  tombstone(s.delta, e.row.replica, e.row.counter);
  bumpTo(s, ownCounter(s) + 1);
  const n = ownCounter(s) + 1;
  bumpTo(s, n);
  const value: Value = { pid, topic, key, meta };
  s.rows.retag(e, value, s.replica, n);
  valuesOf(s.delta, s.replica).set(n, value);
  return { leave: old, join: e.row };
}

// ---------------------------------------------------------------------------------------------
// Merge

/**
 * Merges a delta or a full payload from another replica into `state` and reports what changed
 * (TRACKER.md 2.5, with Cinder rules A and B). All decisions are taken against the rows as they
 * were before the merge:
 *
 * 1. joins: payload values from replicas this state has met (context) whose dot it has not seen
 *    (values of replicas it never met are ignored);
 * 2. leaves: rows of other replicas whose dot the payload has seen (a full payload: its context
 *    and clouds; a delta: its clouds) but does not hold; their dots are tombstoned in the pending
 *    delta so the removal is relayed. Rows of the own replica are never removed by a merge;
 * 3. one live tag per (topic, pid, key) and replica: the higher counter wins, a losing local
 *    row is a leave, a losing incoming value is dropped (its dot is still recorded);
 * 4. the payload's clouds (and context, for a full payload) are added for replicas this state
 *    has met; removed dots stay recorded; then the state is compacted.
 *
 * A leave and a join of the same triple are one in-place overwrite (an update). Reported rows
 * may belong to replicas flagged down; the shard filters those out of its diffs. Idempotent.
 * The payload is not modified.
 */
export function merge(state: TrackerState, payload: Payload): Diff {
  const s = data(state);
  const own = s.replica;
  const ctx = s.context;
  const rows = s.rows;
  const joins: Row[] = [];
  const leaves: Row[] = [];
  const tombstones: Row[] = [];
  const touched: Entry[] = [];

  const markLeave = (e: Entry): void => {
    e.mark = MARK_LEAVING;
    touched.push(e);
    const row = e.row;
    leaves.push(row);
    tombstones.push(row);
  };

  // 1. Leaves, from the payload's knowledge.
  const remoteValues = payload.values;
  if (payload.kind === "delta") {
    for (const [r, dots] of payload.clouds) {
      if (r === own) continue;
      const tags = rows.ofReplica(r);
      if (tags === undefined) continue;
      const held = remoteValues.get(r);
      for (const n of dots) {
        const e = tags.get(n);
        if (e !== undefined && e.mark === MARK_NONE && (held === undefined || !held.has(n))) markLeave(e);
      }
    }
  } else {
    const remoteContext = payload.context;
    for (const [r, cloud] of payload.clouds) {
      if (r === own || remoteContext.has(r)) continue;
      // Seen dots of a replica the sender has no context entry for: look each one up.
      const tags = rows.ofReplica(r);
      if (tags === undefined) continue;
      const held = remoteValues.get(r);
      for (const n of cloud) {
        const e = tags.get(n);
        if (e !== undefined && e.mark === MARK_NONE && (held === undefined || !held.has(n))) markLeave(e);
      }
    }
    for (const [r, upTo] of remoteContext) {
      if (r === own) continue;
      const tags = rows.ofReplica(r);
      if (tags === undefined) continue;
      const cloud = payload.clouds.get(r);
      const held = remoteValues.get(r);
      tags.forEach((e, n) => {
        if ((n <= upTo || (cloud !== undefined && cloud.has(n))) && (held === undefined || !held.has(n)) && e.mark === MARK_NONE) {
          markLeave(e);
        }
      });
    }
  }

  // 2. Joins, with one live tag per triple and replica.
  const joinedReplicas: ReplicaId[] = [];
  const joinedCounters: number[] = [];
  for (const [r, vals] of remoteValues) {
    const upTo = ctx.get(r);
    if (upTo === undefined) continue;
    const cloud = s.clouds.get(r);
    vals.forEach((v, n) => {
      if (n <= upTo || (cloud !== undefined && cloud.has(n))) return;
      joinedReplicas.push(r);
      joinedCounters.push(n);
      const e = rows.find(v.topic, v.key, v.pid);
      if (e === undefined) {
        const fresh = rows.insert(v, r, n);
        fresh.mark = MARK_JOINED;
        fresh.joinIndex = joins.length;
        touched.push(fresh);
        joins.push(fresh.row);
      } else if (e.mark === MARK_LEAVING) {
        // The sender removed the old row and holds a new one for the same triple: an update.
        rows.retag(e, v, r, n);
        e.mark = MARK_REJOINED;
        e.joinIndex = joins.length;
        joins.push(e.row);
      } else if (e.mark === MARK_JOINED || e.mark === MARK_REJOINED) {
        // A second value for the same triple in this payload: the newer of one replica wins.
        if (e.row.replica === r && e.row.counter > n) return;
        rows.retag(e, v, r, n);
        joins[e.joinIndex] = e.row;
      } else {
        // An untouched local row holds the triple.
        if (e.row.replica === own) return; // own rows are never replaced by a merge
        if (e.row.replica === r && e.row.counter > n) return; // stale incoming value loses (rule B)
        const old = e.row;
        leaves.push(old);
        if (e.row.replica === r) tombstones.push(old); // its owner replaced it, so it was removed
        rows.retag(e, v, r, n);
        e.mark = MARK_REJOINED;
        e.joinIndex = joins.length;
        touched.push(e);
        joins.push(e.row);
      }
    });
  }

  // 3. Delete the leaves that were not overwritten; clear the marks.
  for (const e of touched) {
    if (e.mark === MARK_LEAVING) rows.remove(e);
    e.mark = MARK_NONE;
    e.joinIndex = -1;
  }

  // 4. Knowledge: context, clouds (removed dots included: rule A), then compaction.
  const raised: ReplicaId[] = [];
  if (payload.kind === "full") {
    for (const [r, n] of payload.context) {
      const mine = ctx.get(r);
      if (mine !== undefined && n > mine) {
        ctx.set(r, n);
        raised.push(r);
      }
    }
  }
  for (const [r, dots] of payload.clouds) {
    const upTo = ctx.get(r);
    if (upTo === undefined) continue;
    let cloud = s.clouds.get(r);
    for (const n of dots) {
      if (n <= upTo) continue;
      if (cloud === undefined) {
        cloud = new Set();
        s.clouds.set(r, cloud);
      }
      cloud.add(n);
    }
  }
  for (let i = 0; i < joinedReplicas.length; i++) {
    const r = joinedReplicas[i]!;
    const n = joinedCounters[i]!;
    if (n > ctx.get(r)!) addDot(s.clouds, r, n); // normally already there through the payload's clouds
  }
  for (const t of tombstones) tombstone(s.delta, t.replica, t.counter);
  for (const r of raised) compactReplica(s, r, true);
  for (const r of [...s.clouds.keys()]) compactReplica(s, r, false);

  return { joins, leaves };
}

// ---------------------------------------------------------------------------------------------
// Extracts and clocks

/**
 * Prepares what a peer asked for (TRACKER.md 2.4), restricted to the replicas in
 * `remoteContext`:
 *
 * - from a state: a full payload (context, clouds and every row of those replicas, including
 *   rows of replicas flagged down locally), without the rows of `remote` itself (it never
 *   loses its own rows, and a full payload is never pushed into delta generations);
 * - from a delta: the delta's values, clouds and range, **keeping** the values of `remote`.
 *   Dropping them would leave their dots in the clouds as false tombstones; the requester
 *   pushes the delta into its generations and would then relay those "removals" of its own
 *   presences to third replicas (the property tests found exactly that).
 *
 * The result shares no mutable structure with the source.
 */
export function extract(source: TrackerState, remote: ReplicaId, remoteContext: ReplicaFilter): FullPayload;
export function extract(source: Delta, remote: ReplicaId, remoteContext: ReplicaFilter): Delta;
export function extract(source: TrackerState | Delta, remote: ReplicaId, remoteContext: ReplicaFilter): Payload;
export function extract(source: TrackerState | Delta, remote: ReplicaId, remoteContext: ReplicaFilter): Payload {
  if ((source as Delta).kind === "delta") return restrictDelta(source as Delta, null, remoteContext);
  const s = data(source as TrackerState);
  const context = new Map<ReplicaId, number>();
  for (const [r, n] of s.context) if (remoteContext.has(r)) context.set(r, n);
  const clouds = new Map<ReplicaId, Set<number>>();
  for (const [r, c] of s.clouds) if (remoteContext.has(r)) clouds.set(r, new Set(c));
  const values = new Map<ReplicaId, Map<number, Value>>();
  for (const [r, tags] of s.rows.byTag) {
    if (r === remote || !remoteContext.has(r)) continue;
    const m = new Map<number, Value>();
    tags.forEach((e, n) => m.set(n, e.value));
    values.set(r, m);
  }
  return { kind: "full", context, clouds, values };
}

/**
 * The part of a received delta that concerns replicas this state knows (its context), e.g.
 * before pushing it into the delta generations: a replica purged by {@link removeDownReplica}
 * then never re-enters them through a third replica's heartbeat or transfer.
 */
export function knownDelta(state: TrackerState, delta: Delta): Delta {
  return restrictDelta(delta, null, data(state).context);
}

/**
 * Answers a transfer request (TRACKER.md 2.10 extractFor): the extract of the smallest
 * generation window that bridges the requester's gap, or of the whole state when none does.
 * `source` says which was sent: a window index, or `"full"`.
 */
export function extractFor(
  gens: Generations,
  state: TrackerState,
  requester: ReplicaId,
  requesterContext: Clock,
): { payload: Payload; source: number | "full" } {
  const i = pickWindow(gens, requesterContext);
  if (i < 0) return { payload: extract(state, requester, requesterContext), source: "full" };
  return { payload: extract(gens[i]!, requester, requesterContext), source: i };
}

/**
 * The clock this replica advertises: its own id and its context without the replicas it flags
 * down (so a newcomer that never met a departed replica does not look behind forever).
 */
export function clocks(state: TrackerState): NamedClock {
  const s = data(state);
  const clock = new Map<ReplicaId, number>();
  for (const [r, n] of s.context) if (!s.down.has(r)) clock.set(r, n);
  return { replica: s.replica, clock };
}

// ---------------------------------------------------------------------------------------------
// Pending delta and compaction

/** True when the pending delta holds any dot (an add or a tombstone): a heartbeat is due. */
export function hasDelta(state: TrackerState): boolean {
  return deltaHasDots(data(state).delta);
}

/**
 * Starts a new, empty pending delta with range start = end = {own: own counter}. The previous
 * delta object is left as it was and is never touched again, so it may be sent and retained.
 */
export function resetDelta(state: TrackerState): void {
  const s = data(state);
  s.delta = emptyDelta(new Map([[s.replica, ownCounter(s)]]));
}

/**
 * Folds cloud dots into the context (TRACKER.md 2.6): per replica, a dot just above the context
 * advances it, dots at or below it are dropped, dots after a gap stay. Merges already leave the
 * state compacted; this is for callers that want to be sure (e.g. after each heartbeat).
 */
export function compact(state: TrackerState): void {
  const s = data(state);
  for (const r of [...s.clouds.keys()]) compactReplica(s, r, true);
}

// ---------------------------------------------------------------------------------------------
// Replica status

/**
 * Marks a replica up (adding it to the context at 0 if it was never met) and returns its stored
 * rows as joins: they become visible again.
 */
export function replicaUp(state: TrackerState, replica: ReplicaId): Row[] {
  const s = data(state);
  if (!s.context.has(replica)) s.context.set(replica, 0);
  s.replicas.set(replica, "up");
  s.down.delete(replica);
  return rowsOf(s, replica);
}

/**
 * Marks a replica down and returns its rows as leaves. The rows stay stored (hidden from
 * filtered reads) and keep receiving merges, so they can come back with {@link replicaUp}.
 */
export function replicaDown(state: TrackerState, replica: ReplicaId): Row[] {
  const s = data(state);
  s.replicas.set(replica, "down");
  s.down.add(replica);
  return rowsOf(s, replica);
}

/**
 * Purges a replica (permdown): deletes its rows and their index entries, its context entry, its
 * clouds, its status flag and every trace of it in the pending delta. Reports nothing (the
 * leaves were reported when it went down). Afterwards merges ignore it until it is met again.
 */
export function removeDownReplica(state: TrackerState, replica: ReplicaId): void {
  const s = data(state);
  s.rows.removeReplica(replica);
  s.context.delete(replica);
  s.clouds.delete(replica);
  s.replicas.delete(replica);
  s.down.delete(replica);
  const d = s.delta;
  d.values.delete(replica);
  d.clouds.delete(replica);
  d.range.start.delete(replica);
  d.range.end.delete(replica);
}

/** {@link removeDownReplica} for each replica given. */
export function removeDownReplicas(state: TrackerState, replicas: Iterable<ReplicaId>): void {
  for (const r of replicas) removeDownReplica(state, r);
}

/** The status of a replica in this state, or undefined if it is not known. */
export function replicaStatus(state: TrackerState, replica: ReplicaId): ReplicaStatus | undefined {
  return data(state).replicas.get(replica);
}

// ---------------------------------------------------------------------------------------------
// Reads

/** The visible presences of a topic as (key, meta), hiding replicas flagged down. O(result). */
export function getByTopic(state: TrackerState, topic: Topic): TopicPresence[] {
  const s = data(state);
  const down = s.down;
  const out: TopicPresence[] = [];
  s.rows.forEachInTopic(topic, (e) => {
    if (down.size === 0 || !down.has(e.row.replica)) out.push({ key: e.value.key, meta: e.value.meta });
  });
  return out;
}

/** The visible presences of (topic, key) as (pid, meta), hiding replicas flagged down. O(result). */
export function getByKey(state: TrackerState, topic: Topic, key: Key): KeyPresence[] {
  const s = data(state);
  const down = s.down;
  const out: KeyPresence[] = [];
  s.rows.forEachInKey(topic, key, (e) => {
    if (down.size === 0 || !down.has(e.row.replica)) out.push({ pid: e.value.pid, meta: e.value.meta });
  });
  return out;
}

/**
 * Rows of a pid. `getByPid(state, pid)`: all of them; `getByPid(state, pid, topic, key)`: that
 * one or undefined. Unlike the other reads these do **not** hide replicas flagged down (the
 * shard uses them for its own bookkeeping).
 */
export function getByPid(state: TrackerState, pid: Pid): Row[];
export function getByPid(state: TrackerState, pid: Pid, topic: Topic, key: Key): Row | undefined;
export function getByPid(state: TrackerState, pid: Pid, topic?: Topic, key?: Key): Row[] | Row | undefined {
  const s = data(state);
  if (topic !== undefined && key !== undefined) return s.rows.find(topic, key, pid)?.row;
  const out: Row[] = [];
  for (let e = s.rows.pidHead(pid) ?? null; e !== null; e = e.pidNext) out.push(e.row);
  return out;
}

/** Every visible row, hiding replicas flagged down. O(rows). */
export function onlineList(state: TrackerState): Row[] {
  const s = data(state);
  const out: Row[] = [];
  for (const [r, tags] of s.rows.byTag) {
    if (s.down.has(r)) continue;
    tags.forEach((e) => out.push(e.row));
  }
  return out;
}

/** Every stored row of a topic, including hidden ones (Phoenix `dirty_list`; tests, debugging). */
export function dirtyByTopic(state: TrackerState, topic: Topic): Row[] {
  const out: Row[] = [];
  data(state).rows.forEachInTopic(topic, (e) => out.push(e.row));
  return out;
}

/** Every stored row, including hidden ones (tests, debugging). O(rows). */
export function dirtyList(state: TrackerState): Row[] {
  const out: Row[] = [];
  for (const e of data(state).rows.entries()) out.push(e.row);
  return out;
}

/**
 * Applies reported rows to a read copy (internal/spread.ts): each leave removes its triple if
 * it is stored under the same tag, then each join inserts its triple or rewrites it in place.
 * A copy written only this way holds exactly the rows its stream reported as visible. Not for
 * a replica's own state (no clocks, clouds or delta are touched). O(rows given).
 * @internal
 */
export function applyRows(state: TrackerState, joins: readonly Row[], leaves: readonly Row[]): void {
  const rows = data(state).rows;
  for (const r of leaves) {
    const e = rows.find(r.topic, r.key, r.pid);
    if (e !== undefined && e.row.replica === r.replica && e.row.counter === r.counter) rows.remove(e);
  }
  for (const r of joins) {
    const v: Value = { pid: r.pid, topic: r.topic, key: r.key, meta: r.meta };
    const e = rows.find(r.topic, r.key, r.pid);
    if (e !== undefined) rows.retag(e, v, r.replica, r.counter);
    else if (rows.ofReplica(r.replica)?.has(r.counter) !== true) rows.insert(v, r.replica, r.counter);
  }
}

/** Number of stored rows, hidden ones included. */
export function size(state: TrackerState): number {
  return data(state).rows.size;
}

/**
 * Checks the state's internal invariants and returns the problems found (empty when sound):
 * the three row indexes agree, every row's replica is known and its tag covered, clouds are
 * compacted, the down filter matches the flags. O(rows + dots): for tests and debugging.
 */
export function checkInvariants(state: TrackerState): string[] {
  const s = data(state);
  const problems = s.rows.verify();
  for (const [r, tags] of s.rows.byTag) {
    const upTo = s.context.get(r);
    if (upTo === undefined) {
      problems.push(`rows of unknown replica ${r}`);
      continue;
    }
    const cloud = s.clouds.get(r);
    for (const n of tags.keys()) {
      if (n > upTo && !(cloud?.has(n) ?? false)) problems.push(`row ${r}/${n} not covered`);
    }
  }
  for (const [r, cloud] of s.clouds) {
    const upTo = s.context.get(r);
    if (cloud.size === 0) problems.push(`empty cloud kept for ${r}`);
    if (upTo === undefined) continue;
    if (cloud.has(upTo + 1)) problems.push(`cloud of ${r} not compacted`);
    for (const n of cloud) if (n <= upTo) problems.push(`cloud of ${r} holds ${n} <= context ${upTo}`);
  }
  for (const [r, st] of s.replicas) if ((st === "down") !== s.down.has(r)) problems.push(`down filter disagrees for ${r}`);
  for (const r of s.down) if (s.replicas.get(r) !== "down") problems.push(`down filter holds ${r}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function ownCounter(s: StateData): number {
  return s.context.get(s.replica) ?? 0;
}

/** Records own event n (one above the own counter): context, pending delta clouds and range. */
function bumpTo(s: StateData, n: number): void {
  s.context.set(s.replica, n);
  addDot(s.delta.clouds, s.replica, n);
  s.delta.range.end.set(s.replica, n);
}

function removeLocally(s: StateData, e: Entry): Row {
  const row = e.row;
  s.rows.remove(e);
  tombstone(s.delta, e.row.replica, e.row.counter);
  bumpTo(s, ownCounter(s) + 1);
  return row;
}

/** Marks dot (r, n) as removed in a delta: seen in its clouds, absent from its values. */
function tombstone(d: MutableDelta, r: ReplicaId, n: number): void {
  addDot(d.clouds, r, n);
  const vals = d.values.get(r);
  if (vals !== undefined && vals.delete(n) && vals.size === 0) d.values.delete(r);
}

function valuesOf(d: MutableDelta, r: ReplicaId): Map<number, Value> {
  let m = d.values.get(r);
  if (m === undefined) {
    m = new Map();
    d.values.set(r, m);
  }
  return m;
}

function addDot(clouds: Map<ReplicaId, Set<number>>, r: ReplicaId, n: number): void {
  let c = clouds.get(r);
  if (c === undefined) {
    c = new Set();
    clouds.set(r, c);
  }
  c.add(n);
}

/**
 * Compacts one replica's cloud. `scan` also drops dots at or below the context (needed only
 * when the context was raised from outside the cloud); advancing is O(dots folded).
 */
function compactReplica(s: StateData, r: ReplicaId, scan: boolean): void {
  const cloud = s.clouds.get(r);
  if (cloud === undefined) return;
  let upTo = s.context.get(r);
  if (upTo === undefined) {
    if (!cloud.has(1)) return;
    upTo = 0;
  }
  if (scan) for (const n of cloud) if (n <= upTo) cloud.delete(n);
  const before = upTo;
  while (cloud.has(upTo + 1)) {
    upTo++;
    cloud.delete(upTo);
  }
  if (upTo !== before || !s.context.has(r)) s.context.set(r, upTo);
  if (cloud.size === 0) s.clouds.delete(r);
}

function rowsOf(s: StateData, replica: ReplicaId): Row[] {
  const tags = s.rows.ofReplica(replica);
  if (tags === undefined) return [];
  const out: Row[] = new Array(tags.size);
  let i = 0;
  tags.forEach((e) => (out[i++] = e.row));
  return out;
}
