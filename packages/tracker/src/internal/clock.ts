/**
 * Vector clocks (TRACKER.md 2.9).
 *
 * A clock maps replica → counter: "every event of r up to clock[r] has been seen". A replica
 * missing from a clock counts as 0 wherever two clocks are compared. Clocks handed in are never
 * mutated; every function that builds a clock returns a new `Map`.
 */
import type { ReplicaId } from "./replica.js";

/** replica → highest contiguous counter seen. */
export type Clock = ReadonlyMap<ReplicaId, number>;

/** A clock tagged with the replica that advertised it (a heartbeat's or a shard's own). */
export interface NamedClock {
  readonly replica: ReplicaId;
  readonly clock: Clock;
}

/** A set of mutually non-dominated clocks, built with {@link appendClock}. */
export type ClockSet = readonly NamedClock[];

/** Anything that can answer "is this replica included": a `Set`, or a `Map` keyed by replica. */
export interface ReplicaFilter {
  has(replica: ReplicaId): boolean;
}

/**
 * True when `a` has seen everything `b` has: `a` has at least as many entries as `b` and
 * `a[r] ≥ b[r]` for every r of `b` (missing entries of `a` count as 0).
 */
export function dominates(a: Clock, b: Clock): boolean {
  if (a.size < b.size) return false;
  for (const [r, n] of b) {
    if ((a.get(r) ?? 0) < n) return false;
  }
  return true;
}

/**
 * The looser test used for delta ranges: true if both are empty, false if only `a` is; else
 * `a[r] ≥ b[r]` for every r **of `a`** (keys only in `b` are ignored, missing in `b` count as 0).
 */
export function dominatesOrEqual(a: Clock, b: Clock): boolean {
  if (a.size === 0) return b.size === 0;
  for (const [r, n] of a) {
    if (n < (b.get(r) ?? 0)) return false;
  }
  return true;
}

/** Pointwise max over the union of keys; a key present on one side keeps its value. */
export function upperbound(a: Clock, b: Clock): Map<ReplicaId, number> {
  const out = new Map(a);
  for (const [r, n] of b) {
    const m = out.get(r);
    if (m === undefined || n > m) out.set(r, n);
  }
  return out;
}

/** Pointwise min over the union of keys; a key present on one side keeps its value. */
export function lowerbound(a: Clock, b: Clock): Map<ReplicaId, number> {
  const out = new Map(a);
  for (const [r, n] of b) {
    const m = out.get(r);
    if (m === undefined || n < m) out.set(r, n);
  }
  return out;
}

/** The entries of `clock` whose replica `replicas` has (a `Set` of ids or a clock/`Map`). */
export function filter(clock: Clock, replicas: ReplicaFilter): Map<ReplicaId, number> {
  const out = new Map<ReplicaId, number>();
  for (const [r, n] of clock) {
    if (replicas.has(r)) out.set(r, n);
  }
  return out;
}

/** The replicas a clock mentions, in its iteration order. */
export function replicas(clock: Clock): ReplicaId[] {
  return [...clock.keys()];
}

/**
 * Adds a peer's clock to a set of mutually non-dominated clocks (the shard's pending clockset)
 * and returns the new set; `set` is not modified. An empty clock changes nothing; a clock that
 * dominates the upperbound of the whole set replaces it; a clock that the upperbound dominates
 * changes nothing; otherwise every member it dominates is dropped and it joins the set.
 */
export function appendClock(set: ClockSet, entry: NamedClock): ClockSet {
  if (entry.clock.size === 0) return set;
  let big: Clock = new Map();
  for (const member of set) big = upperbound(big, member.clock);
  if (dominates(entry.clock, big)) return [entry];
  if (dominates(big, entry.clock)) return set;
  const out: NamedClock[] = [];
  for (const member of set) {
    if (!dominates(entry.clock, member.clock)) out.push(member);
  }
  out.push(entry);
  return out;
}
