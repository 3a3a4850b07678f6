/**
 * Dispatchers (PUBSUB.md 1.4): how a broadcast is handed to the subscribers of one partition
 * (in Cinder: one scheduler's entries for the topic).
 *
 * A dispatcher is named by a registered id, never passed as a function, because it must run
 * wherever the broadcast is dispatched: on every scheduler thread and on every node. Register it
 * at module load in every process (and worker) that runs the PubSub.
 */
import { BadArgError, type Pid } from "@cinder/runtime";

/** One subscription, as dispatchers see it. Duplicate subscriptions are separate entries. */
export interface SubscriberEntry {
  readonly pid: Pid;
  /** The `metadata` given to `subscribe` (null by default). */
  readonly metadata: unknown;
}

/** What a dispatcher may use besides the entries. */
export interface DispatchContext {
  /**
   * Delivers `msg` for `entry` to its subscriber, or to `to` (e.g. the socket actor of a
   * fastlane entry), under the entry's overflow policy and counters. A `to` on another
   * scheduler or node is sent plainly (the policy applies where the receiver lives).
   */
  send(entry: SubscriberEntry, msg: unknown, to?: Pid): void;
  /** Index of the scheduler whose entries these are. */
  readonly scheduler: number;
}

/**
 * `dispatch(entries, from, message, ctx)`: called once per non-empty partition of the topic's
 * subscribers (so never assume one call sees every subscriber). `from` is the pid to skip
 * (`broadcastFrom`) or null. The return value is ignored; a throw is caught, counted and logged.
 */
export type Dispatcher = (entries: readonly SubscriberEntry[], from: Pid | null, message: unknown, ctx: DispatchContext) => void;

const registry = new Map<string, Dispatcher>();

/**
 * Registers a dispatcher under `id` (module-wide, in this thread). Registering the same function
 * again is allowed; another function under a taken id is a `BadArgError`.
 *
 * @example
 * ```ts
 * import { registerDispatcher } from "@cinder/pubsub";
 * registerDispatcher("doc.upper", (entries, from, msg, ctx) => {
 *   for (const e of entries) if (e.pid !== from) ctx.send(e, String(msg).toUpperCase());
 * });
 * ```
 */
export function registerDispatcher(id: string, fn: Dispatcher): void {
  if (typeof id !== "string" || id.length === 0) throw new BadArgError(`registerDispatcher: id must be a non-empty string`);
  if (typeof fn !== "function") throw new BadArgError(`registerDispatcher: ${id}: not a function`);
  const prev = registry.get(id);
  if (prev !== undefined && prev !== fn) throw new BadArgError(`registerDispatcher: ${id} is already registered to another function`);
  registry.set(id, fn);
}

/** @internal */
export function dispatcherFor(id: string): Dispatcher | undefined {
  return registry.get(id);
}

/** @internal throws for an unknown id (at the broadcaster) */
export function checkDispatcher(id: string | null | undefined): string | null {
  if (id === undefined || id === null) return null;
  if (!registry.has(id)) throw new BadArgError(`unknown dispatcher ${JSON.stringify(id)}: register it with registerDispatcher on every node and scheduler`);
  return id;
}
