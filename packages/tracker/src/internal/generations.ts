/**
 * Delta generations (TRACKER.md 2.10): a shard keeps one window of recent deltas per entry of
 * `maxDeltaSizes`, smallest first, so that a peer that is a little behind can be answered with
 * a delta instead of the whole state. Windows are immutable deltas; every function returns a
 * new array and leaves its inputs alone.
 */
import { dominates, dominatesOrEqual, filter, type Clock } from "./clock.js";
import { copyDelta, deltaMentions, deltaSize, mergeDeltas, NOT_CONTIGUOUS, pruneDelta } from "./delta.js";
import type { ReplicaId } from "./replica.js";
import type { Delta } from "./types.js";

/** The retained windows, index i capped at `sizes[i]` (see {@link pushGeneration}). */
export type Generations = readonly Delta[];

/** Phoenix's default `max_delta_sizes`. */
export const DEFAULT_MAX_DELTA_SIZES: readonly number[] = [100, 1000, 10000];

/**
 * Records delta `d` (sent in a heartbeat, merged from one, or received in a delta transfer).
 *
 * When `gens` is empty it is first seeded with a copy of `seed` (the shard's current pending
 * delta) per window. Then, smallest window first, with a candidate that starts as `d`: window i
 * merged with `d` replaces window i if the merge is contiguous and fits `sizes[i]`; if contiguous
 * but too big, window i takes the candidate instead; either way the merge becomes the candidate.
 * A window that `d` does not continue is kept and becomes the candidate. Pushing the same delta
 * twice gives the same windows.
 *
 * Push the deltas a shard sends as they are, and the deltas it receives through `knownDelta`
 * (State), so that nothing of a replica it has purged comes back through the windows.
 */
export function pushGeneration(gens: Generations, seed: Delta, d: Delta, sizes: readonly number[]): Generations {
  let windows = gens;
  if (windows.length === 0) {
    const copy = copyDelta(seed);
    windows = sizes.map(() => copy);
  }
  const out: Delta[] = [];
  let candidate: Delta = d;
  for (let i = 0; i < sizes.length; i++) {
    const w = windows[i] ?? copyDelta(seed);
    const m = mergeDeltas(w, d);
    if (m === NOT_CONTIGUOUS) {
      out.push(w);
      candidate = w;
      continue;
    }
    out.push(deltaSize(m) <= sizes[i]! ? m : candidate);
    candidate = m;
  }
  return out;
}

/**
 * The index of the smallest window worth sending to a requester whose context is
 * `requesterContext`, or -1 when none is (then the full state must be sent). With each
 * window's range restricted to the requester's replicas, a window qualifies when that range is
 * not empty, the requester already is at or beyond its start, and the requester does not
 * already dominate its end.
 */
export function pickWindow(gens: Generations, requesterContext: Clock): number {
  for (let i = 0; i < gens.length; i++) {
    const w = gens[i]!;
    const start = filter(w.range.start, requesterContext);
    const end = filter(w.range.end, requesterContext);
    if (dominatesOrEqual(start, end)) continue;
    if (!dominatesOrEqual(requesterContext, start)) continue;
    if (dominates(requesterContext, end)) continue;
    return i;
  }
  return -1;
}

/** The windows with every trace of a permdowned replica removed (values, clouds and ranges). */
export function pruneGenerations(gens: Generations, replica: ReplicaId): Generations {
  return gens.map((w) => (deltaMentions(w, replica) ? pruneDelta(w, replica) : w));
}
