/**
 * The presence interface the chat uses, shaped like `@cinder/presence` / Phoenix.Presence so a
 * tracker-based implementation can replace the in-memory one without touching the channels.
 *
 * Wire shapes (CHANNELS.md §6): a state is `{ key: { metas: [meta, …] } }`; a meta is the app's
 * fields plus `phx_ref` (unique per tracking and per update, never reused) and, on an updated
 * meta, `phx_ref_prev`. A diff is `{ joins: state, leaves: state }` with both halves always
 * present; an update is one diff holding the new meta in `joins` and the old one in `leaves`.
 */
import type { Pid } from "@cinder/runtime";

/** One presence's metadata as sent to clients. */
export type Meta = { readonly phx_ref: string; readonly phx_ref_prev?: string } & { readonly [field: string]: unknown };

/** The presences of one key. Extra fields beside `metas` are allowed. */
export type PresenceEntry = {
  metas: Meta[];
};

/** `key → { metas }`, as a null-prototype object (a key such as `__proto__` is an ordinary key). */
export type PresenceState = Record<string, PresenceEntry>;

/** A change: joins and leaves, both always present. */
export type PresenceDiff = {
  joins: PresenceState;
  leaves: PresenceState;
};

/** Called with every diff, per topic in the order produced (the app broadcasts it). */
export type DiffHandler = (topic: string, diff: PresenceDiff) => void;

/** Typed failures of presence operations. */
export class PresenceError extends Error {
  readonly code: "already_tracked" | "nopresence";
  constructor(code: "already_tracked" | "nopresence", message: string) {
    super(message);
    this.name = "PresenceError";
    this.code = code;
  }
}

/**
 * Track, untrack, update and list presences. `pid` is the tracked process (a channel actor);
 * when it exits, its presences leave by themselves.
 */
export interface Presence {
  /** Tracks `pid` under `key` on `topic`; resolves with the new `phx_ref`. Rejects `already_tracked`. */
  track(pid: Pid, topic: string, key: string, meta: Record<string, unknown>): Promise<string>;
  /** Removes that presence (no-op if absent). */
  untrack(pid: Pid, topic: string, key: string): Promise<void>;
  /** Removes every presence of `pid`. */
  untrackAll(pid: Pid): Promise<void>;
  /** Replaces the meta (or maps the current one); resolves with the new `phx_ref`. Rejects `nopresence`. */
  update(pid: Pid, topic: string, key: string, meta: Record<string, unknown> | ((current: Meta) => Record<string, unknown>)): Promise<string>;
  /** The current state of `topic`: a read that never waits behind the writer's mailbox. */
  list(topic: string): PresenceState;
}

/** A fresh null-prototype state object. */
export function emptyState(): PresenceState {
  return Object.create(null) as PresenceState;
}
