/**
 * @cinder/presence: Phoenix.Presence for Cinder. Who is present on which topic, replicated to
 * every node by a `@cinder/tracker`, with each change broadcast to the topic's subscribers on
 * every node as a `presence_diff` (`{ joins, leaves }`, the wire shapes of CHANNELS.md 6):
 *
 * - {@link Presence}: `start` / `childSpec`, `track`, `untrack`, `update`, `list` (through the
 *   `fetch` hook), `listRaw`, `getByKey`, `flush`, `stats`, `gracefulPermdown`;
 * - metas carry an opaque `phx_ref`, unique per tracking and per update, and `phx_ref_prev`
 *   after an update; an update is one diff holding both halves;
 * - diffs are batched per topic (`batchMs`): a burst of changes becomes a few diffs, a lone change
 *   goes out at once; a batched diff is safe to apply twice, or before or after a
 *   `presence_state` (phoenix.js semantics).
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Presence, type PresenceBroadcast } from "@cinder/presence";
 * const node = await startNode({ schedulers: 1 });
 * const pubsub = await PubSub.start(node, { name: "doc_pm_ps" });
 * const presence = await Presence.start(node, { name: "doc_pm", pubsub, batchMs: 20 });
 * const channel = node.process(); // a channel: subscribes, then tracks its user
 * PubSub.subscribe(channel, pubsub, "room:lobby");
 * await Presence.track(channel, presence, channel.pid, "room:lobby", "alice", { online_at: 1 });
 * const state = await Presence.list(channel, presence, "room:lobby"); // push as presence_state
 * console.log(Object.keys(state)); // ["alice"]
 * const diff = (await channel.receive()) as PresenceBroadcast; // broadcast as presence_diff
 * console.log([diff.topic, diff.event, Object.keys(diff.payload.joins)]); // ["room:lobby", "presence_diff", ["alice"]]
 * await node.stop();
 * ```
 */
export { Presence, PresenceRef, type PresenceName, type PresenceStats, type PresenceUpdate } from "./internal/presence.js";
export { PresenceOptionError, type PresenceOptions, type PresenceTrackerOptions } from "./internal/options.js";
export type { PresenceCounters } from "./internal/registry.js";
export type { FetchFn, MessageFn, PresenceBroadcast, PresenceDiff, PresenceEntry, PresenceMeta, PresenceState } from "./internal/types.js";
export { isPresenceBroadcast } from "./internal/guards.js";
/**
 * The tracker's typed errors, as `track` and `update` reject with them: `AlreadyTrackedError`
 * (`already_tracked`), `NoPresenceError` (`nopresence`), `UpdateConflictError` (`conflict`),
 * `NotLocalError` (`badarg`), `TrackerOptionError` (`badarg`, a bad tracker option).
 *
 * @example
 * ```ts
 * import { TrackerOptionError } from "@cinder/presence";
 * import { Presence } from "@cinder/presence";
 * try {
 *   Presence.childSpec({ name: "doc_pe", pubsub: "ps", broadcastPeriod: 100, downPeriod: 150 });
 * } catch (e) {
 *   console.log(e instanceof TrackerOptionError && e.option); // "downPeriod"
 * }
 * ```
 */
export { AlreadyTrackedError, NoPresenceError, NotLocalError, TrackerOptionError, UpdateConflictError } from "@cinder/tracker";
