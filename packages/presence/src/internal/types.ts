/**
 * The wire shapes of presence (CHANNELS.md 6.1), as the Presence API returns and broadcasts them.
 */

/**
 * One tracked instance's metadata as clients see it: the app's fields plus `phx_ref` (opaque,
 * unique per tracking and per update across the cluster, never reused) and, on a meta produced
 * by `update`, `phx_ref_prev` (the ref it replaced).
 */
export type PresenceMeta = { readonly phx_ref: string; readonly phx_ref_prev?: string } & { readonly [field: string]: unknown };

/**
 * The presences of one key: `metas` (one per tracked instance: tabs, devices, nodes), in a stable
 * order, plus whatever fields a `fetch` hook adds beside it.
 */
export interface PresenceEntry {
  metas: PresenceMeta[];
  [extra: string]: unknown;
}

/**
 * `key → { metas }` for one topic. Built as a null-prototype object, so a key such as
 * `__proto__` is an ordinary key and serialises as one.
 */
export type PresenceState = Record<string, PresenceEntry>;

/**
 * A change of one topic: `joins` and `leaves`, each shaped like a state and holding only the
 * metas concerned. Both are always present (`{}` when empty). An update is one diff: the new
 * meta in `joins`, the old one in `leaves`, under the same key.
 */
export type PresenceDiff = {
  joins: PresenceState;
  leaves: PresenceState;
};

/**
 * The message a Presence broadcasts to a topic's local subscribers for each diff, unless the
 * `message` option builds another (Phoenix's `%Broadcast{event: "presence_diff"}`).
 */
export interface PresenceBroadcast {
  readonly $presence: "diff";
  /** The name of the Presence that produced it. */
  readonly presence: string;
  readonly topic: string;
  readonly event: "presence_diff";
  readonly payload: PresenceDiff;
}

/**
 * The `fetch` hook: given a topic and entries (a state, a diff's `joins` or `leaves`, or one
 * key's entry), returns them enriched (e.g. user records loaded in one query, placed beside
 * `metas`). It may be async. It must keep every key it was given, each with a `metas` array.
 */
export type FetchFn = (topic: string, entries: PresenceState) => PresenceState | Promise<PresenceState>;

/** Builds the PubSub message of one diff (see {@link PresenceBroadcast} for the default). */
export type MessageFn = (topic: string, diff: PresenceDiff) => unknown;
