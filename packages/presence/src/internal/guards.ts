import type { PresenceBroadcast } from "./types.js";

/**
 * Is `msg` a Presence's default diff broadcast? (For subscribers that also get other messages.)
 *
 * @example
 * ```ts
 * import { isPresenceBroadcast } from "@cinder/presence";
 * const msg: unknown = { $presence: "diff", presence: "p", topic: "t", event: "presence_diff", payload: { joins: {}, leaves: {} } };
 * console.log([isPresenceBroadcast(msg), isPresenceBroadcast({ text: "hi" })]); // [true, false]
 * ```
 */
export function isPresenceBroadcast(msg: unknown): msg is PresenceBroadcast {
  return msg !== null && typeof msg === "object" && (msg as PresenceBroadcast).$presence === "diff" && typeof (msg as PresenceBroadcast).topic === "string";
}
