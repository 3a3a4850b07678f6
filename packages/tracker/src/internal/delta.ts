/**
 * Deltas: building, sizing, restricting and combining them (TRACKER.md 2.3, 2.4, 2.7).
 *
 * A delta handed out is never modified again by this package: functions here return new deltas.
 * The only delta that changes is a State's pending one, and only until `resetDelta` replaces it.
 */
import { dominatesOrEqual, lowerbound, upperbound, type Clock, type ReplicaFilter } from "./clock.js";
import type { ReplicaId } from "./replica.js";
import type { Delta, Value } from "./types.js";

/** The internal, mutable shape of a delta (the pending delta of a State). */
export interface MutableDelta {
  readonly kind: "delta";
  readonly values: Map<ReplicaId, Map<number, Value>>;
  readonly clouds: Map<ReplicaId, Set<number>>;
  readonly range: { readonly start: Map<ReplicaId, number>; readonly end: Map<ReplicaId, number> };
}

/** Returned by {@link mergeDeltas} when the two ranges leave a gap. */
export const NOT_CONTIGUOUS = "not_contiguous";
/** The type of {@link NOT_CONTIGUOUS}. */
export type NotContiguous = typeof NOT_CONTIGUOUS;

/** A new empty delta whose range starts and ends at `at`. */
export function emptyDelta(at: Clock): MutableDelta {
  return { kind: "delta", values: new Map(), clouds: new Map(), range: { start: new Map(at), end: new Map(at) } };
}

/** A deep copy of a delta's maps and sets (values themselves are immutable and shared). */
export function copyDelta(d: Delta): MutableDelta {
  const values = new Map<ReplicaId, Map<number, Value>>();
  for (const [r, m] of d.values) values.set(r, new Map(m));
  const clouds = new Map<ReplicaId, Set<number>>();
  for (const [r, c] of d.clouds) clouds.set(r, new Set(c));
  return { kind: "delta", values, clouds, range: { start: new Map(d.range.start), end: new Map(d.range.end) } };
}

/** Number of values plus the total number of cloud dots: the measure generation windows cap. */
export function deltaSize(d: Delta): number {
  let n = 0;
  for (const m of d.values.values()) n += m.size;
  for (const c of d.clouds.values()) n += c.size;
  return n;
}

/** True when the delta carries at least one dot (an add or a tombstone). */
export function deltaHasDots(d: Delta): boolean {
  for (const c of d.clouds.values()) if (c.size > 0) return true;
  return false;
}

/**
 * The part of a delta a peer can use: values, clouds and range restricted to the replicas
 * `known` has, and without the values of `remote` itself (none dropped when `remote` is null).
 */
export function restrictDelta(d: Delta, remote: ReplicaId | null, known: ReplicaFilter): Delta {
  const values = new Map<ReplicaId, Map<number, Value>>();
  for (const [r, m] of d.values) {
    if (r !== remote && known.has(r) && m.size > 0) values.set(r, new Map(m));
  }
  const clouds = new Map<ReplicaId, Set<number>>();
  for (const [r, c] of d.clouds) {
    if (known.has(r) && c.size > 0) clouds.set(r, new Set(c));
  }
  const start = new Map<ReplicaId, number>();
  for (const [r, n] of d.range.start) if (known.has(r)) start.set(r, n);
  const end = new Map<ReplicaId, number>();
  for (const [r, n] of d.range.end) if (known.has(r)) end.set(r, n);
  return { kind: "delta", values, clouds, range: { start, end } };
}

/** A copy of the delta with every trace of `replica` removed (values, clouds, range). */
export function pruneDelta(d: Delta, replica: ReplicaId): Delta {
  const out = copyDelta(d);
  out.values.delete(replica);
  out.clouds.delete(replica);
  out.range.start.delete(replica);
  out.range.end.delete(replica);
  return out;
}

/** True when the delta mentions `replica` anywhere. */
export function deltaMentions(d: Delta, replica: ReplicaId): boolean {
  return d.values.has(replica) || d.clouds.has(replica) || d.range.start.has(replica) || d.range.end.has(replica);
}

/**
 * Combines two deltas into one spanning both ranges (used for delta generations only).
 *
 * - Returns {@link NOT_CONTIGUOUS} unless `d2.end` reaches `d1.start` and `d1.end` reaches
 *   `d2.start` (per `dominatesOrEqual`; ranges about disjoint replicas count as contiguous).
 * - range: (lowerbound of the starts, upperbound of the ends); clouds: union.
 * - values: a value survives unless the other delta saw its dot and does not have it (an
 *   observed remove); tombstones stay in the clouds. Neither input is modified.
 *
 * The result does not depend on argument order.
 */
export function mergeDeltas(d1: Delta, d2: Delta): Delta | NotContiguous {
  if (!dominatesOrEqual(d2.range.end, d1.range.start) || !dominatesOrEqual(d1.range.end, d2.range.start)) {
    return NOT_CONTIGUOUS;
  }
  const clouds = new Map<ReplicaId, Set<number>>();
  for (const [r, c] of d1.clouds) if (c.size > 0) clouds.set(r, new Set(c));
  for (const [r, c] of d2.clouds) {
    if (c.size === 0) continue;
    const mine = clouds.get(r);
    if (mine === undefined) clouds.set(r, new Set(c));
    else for (const n of c) mine.add(n);
  }
  const values = new Map<ReplicaId, Map<number, Value>>();
  for (const [r, m] of d1.values) {
    const seen2 = d2.clouds.get(r);
    const has2 = d2.values.get(r);
    let out: Map<number, Value> | undefined;
    for (const [n, v] of m) {
      if (seen2 !== undefined && seen2.has(n) && (has2 === undefined || !has2.has(n))) continue;
      (out ??= new Map()).set(n, v);
    }
    if (out !== undefined) values.set(r, out);
  }
  for (const [r, m] of d2.values) {
    const seen1 = d1.clouds.get(r);
    const has1 = d1.values.get(r);
    let out = values.get(r);
    for (const [n, v] of m) {
      if (seen1 !== undefined && seen1.has(n)) continue;
      if (has1 !== undefined && has1.has(n)) continue;
      if (out === undefined) {
        out = new Map();
        values.set(r, out);
      }
      out.set(n, v);
    }
  }
  return {
    kind: "delta",
    values,
    clouds,
    range: { start: lowerbound(d1.range.start, d2.range.start), end: upperbound(d1.range.end, d2.range.end) },
  };
}
