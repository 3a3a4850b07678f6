/**
 * Presence start options: the tracker's (passed through, validated by the tracker) plus the
 * presence's own (`fetch`, `batchMs`, `message`, `dispatcher`).
 */
import { CinderError } from "@cinder/runtime";
import type { PubSubRef } from "@cinder/pubsub";
import type { TrackerOptions } from "@cinder/tracker";
import type { FetchFn, MessageFn } from "./types.js";

/**
 * A Presence start option is missing or breaks a rule; `option` names it. (Tracker options are
 * checked by the tracker, which throws its `TrackerOptionError`.)
 *
 * @example
 * ```ts
 * import { Presence, PresenceOptionError } from "@cinder/presence";
 * try {
 *   Presence.childSpec({ name: "doc_badopt", pubsub: "ps", batchMs: -1 });
 * } catch (e) {
 *   if (e instanceof PresenceOptionError) console.log([e.code, e.option]); // ["badarg", "batchMs"]
 * }
 * ```
 */
export class PresenceOptionError extends CinderError {
  /** The option at fault. */
  readonly option: string;
  constructor(option: string, message: string) {
    super("badarg", `Presence option ${option}: ${message}`, { option });
    this.name = "PresenceOptionError";
    this.option = option;
  }
}

/** The tracker options a Presence passes to its tracker (everything but its callbacks). */
export type PresenceTrackerOptions = Omit<TrackerOptions, "name" | "pubsub" | "init" | "arg" | "handleDiff" | "handleInfo">;

/** Options of `Presence.start` / `Presence.childSpec`. */
export interface PresenceOptions extends PresenceTrackerOptions {
  /**
   * Required: the Presence's name, unique on the node and equal on every node of the cluster.
   * Its supervisor is registered under it, its tracker under `<name>.tracker`.
   */
  name: string;
  /** Required: the PubSub (handle or name) the tracker replicates over and diffs are broadcast on. */
  pubsub: PubSubRef | string;
  /**
   * Enriches entries in batch: called with each broadcast diff's `joins` and `leaves` (when not
   * empty) and by `list` / `getByKey`, never by `listRaw`. Default: none.
   */
  fetch?: FetchFn;
  /**
   * Batching window per topic, ms. A change to a topic that was quiet for `batchMs` goes out at
   * once (with whatever else is queued); later changes within the window are folded into one
   * diff sent when it closes. 0: only what is queued together is folded. Default 50.
   */
  batchMs?: number;
  /** Builds the message broadcast for each diff. Default: a {@link PresenceBroadcast}. */
  message?: MessageFn;
  /** The PubSub dispatcher the diffs are broadcast with (registered on every scheduler). Default: PubSub's. */
  dispatcher?: string;
}

/** @internal the presence's own options after defaults */
export interface ResolvedPresenceOptions {
  readonly name: string;
  readonly trackerName: string;
  readonly fetch: FetchFn | undefined;
  readonly batchMs: number;
  readonly message: MessageFn | undefined;
  readonly dispatcher: string | undefined;
  readonly callTimeout: number;
}

/** @internal validates the presence's own options (the tracker checks its own) */
export function resolveOptions(opts: PresenceOptions | undefined): ResolvedPresenceOptions {
  if (opts === null || typeof opts !== "object") throw new PresenceOptionError("name", "the required option name is missing (no options given)");
  const name = opts.name;
  if (typeof name !== "string" || name.length === 0) throw new PresenceOptionError("name", `must be a non-empty string, got ${JSON.stringify(name)}`);
  if (opts.pubsub === undefined || opts.pubsub === null) throw new PresenceOptionError("pubsub", "the required option pubsub is missing");
  const batchMs = opts.batchMs ?? 50;
  if (typeof batchMs !== "number" || !Number.isFinite(batchMs) || batchMs < 0) throw new PresenceOptionError("batchMs", `must be a non-negative number of ms, got ${String(batchMs)}`);
  for (const k of ["fetch", "message"] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== "function") throw new PresenceOptionError(k, `must be a function, got ${typeof opts[k]}`);
  }
  if (opts.dispatcher !== undefined && typeof opts.dispatcher !== "string") throw new PresenceOptionError("dispatcher", `must be a dispatcher id (string), got ${typeof opts.dispatcher}`);
  return {
    name,
    trackerName: `${name}.tracker`,
    fetch: opts.fetch,
    batchMs,
    message: opts.message,
    dispatcher: opts.dispatcher,
    callTimeout: opts.callTimeout ?? 5000,
  };
}

/** @internal the tracker options of a presence (without its callbacks) */
export function trackerOptions(opts: PresenceOptions): PresenceTrackerOptions {
  const { name: _n, pubsub: _p, fetch: _f, batchMs: _b, message: _m, dispatcher: _d, ...rest } = opts;
  for (const k of ["init", "arg", "handleDiff", "handleInfo"]) delete (rest as Record<string, unknown>)[k];
  return rest;
}
