/**
 * Pure helpers: grouping presences by key into wire states, and {@link DiffBatch}, which folds a
 * topic's joins and leaves over a batching window into one diff.
 *
 * # Why "last event per ref wins"
 *
 * A client holds a state that reflects some prefix of the topic's events: what it had when the
 * window opened, or a `presence_state` taken in the middle of the window (a client that joined
 * meanwhile). phoenix.js applies a diff's joins, then its leaves; joins are deduplicated by
 * `phx_ref` and leaves of absent refs change nothing (CHANNELS.md 6.2). So the batched diff puts
 * each ref touched in the window in exactly one half, the one of its last event: a ref that
 * joined and then left is a leave (harmless for a client that never saw it, needed by one whose
 * snapshot had it), a ref that left and came back (a replica down, then up again) is a join. Any
 * client state along the way, plus the diff, gives the state at the end of the window; applying
 * the diff twice changes nothing more. Cancelling a join against a later leave would leave a
 * ghost in a client whose snapshot fell between the two.
 */
import type { PresenceDiff, PresenceEntry, PresenceMeta, PresenceState } from "./types.js";

/** A fresh null-prototype state. */
export function emptyState(): PresenceState {
  return Object.create(null) as PresenceState;
}

/** Groups `{ key, meta }` presences by key, keeping their order. */
export function group(presences: Iterable<{ readonly key: string; readonly meta: unknown }>): PresenceState {
  const out = emptyState();
  for (const p of presences) {
    const e = out[p.key];
    if (e === undefined) out[p.key] = { metas: [p.meta as PresenceMeta] };
    else e.metas.push(p.meta as PresenceMeta);
  }
  return out;
}

/** The app's fields of a meta: without `phx_ref` and `phx_ref_prev`, which the tracker sets. */
export function appFields(meta: Readonly<Record<string, unknown>>): Record<string, unknown> {
  if (!("phx_ref" in meta) && !("phx_ref_prev" in meta)) return meta as Record<string, unknown>;
  const { phx_ref: _r, phx_ref_prev: _p, ...fields } = meta;
  return fields;
}

interface Pending {
  readonly key: string;
  readonly meta: PresenceMeta;
}

/** The joins and leaves of one topic during one batching window. */
export class DiffBatch {
  /** phx_ref → presence whose last event was a join / a leave, in event order. */
  private readonly joins = new Map<string, Pending>();
  private readonly leaves = new Map<string, Pending>();

  /** Number of refs in the batch. */
  get size(): number {
    return this.joins.size + this.leaves.size;
  }

  join(key: string, meta: PresenceMeta): void {
    const ref = refOf(meta);
    this.leaves.delete(ref);
    this.joins.delete(ref);
    this.joins.set(ref, { key, meta });
  }

  leave(key: string, meta: PresenceMeta): void {
    const ref = refOf(meta);
    this.joins.delete(ref);
    this.leaves.delete(ref);
    this.leaves.set(ref, { key, meta });
  }

  /** The diff: joins and leaves grouped by key (both always present). */
  toDiff(): PresenceDiff {
    return { joins: group(this.joins.values()), leaves: group(this.leaves.values()) };
  }
}

function refOf(meta: PresenceMeta): string {
  const r = meta?.phx_ref;
  return typeof r === "string" ? r : String(r);
}

/** Number of metas in a state. */
export function countMetas(state: PresenceState): number {
  let n = 0;
  for (const k in state) n += state[k]!.metas.length;
  return n;
}

/**
 * The result of a `fetch` hook, checked: every key it was given, with a `metas` array (keys it
 * dropped or broke keep their entries as given; keys it added are ignored). `bad` counts the
 * repaired keys.
 */
export function checkFetched(given: PresenceState, got: unknown): { state: PresenceState; bad: number } {
  const out = emptyState();
  let bad = 0;
  const ok = got !== null && typeof got === "object";
  for (const key in given) {
    const e = ok ? ((got as Record<string, unknown>)[key] as PresenceEntry | undefined) : undefined;
    if (e !== null && typeof e === "object" && Array.isArray(e.metas) && Object.prototype.hasOwnProperty.call(got, key)) out[key] = e;
    else {
      out[key] = given[key]!;
      bad++;
    }
  }
  return { state: out, bad };
}
