/**
 * The chat room channel, topic `room:<name>`.
 *
 * - join params `{ user }` (1–32 characters, no control characters); refused with `{reason}`;
 * - after every join: track presence (`{ online_at, typing: false }`), push `presence_state`;
 * - `new_msg {body}` → reply ok, broadcast `new_msg {user, body, at}`;
 * - `typing {typing}` → presence meta update (one `presence_diff` with both halves), reply ok.
 */
import { error, ok, type ChannelBehaviour, type ChannelSocket } from "./channels/index.js";
import type { Presence } from "./presence/types.js";

export const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_BODY = 4000;

/** Validates a user name: a string of 1–32 characters without control characters, trimmed. */
export function validUser(u: unknown): string | undefined {
  if (typeof u !== "string") return undefined;
  const t = u.trim();
  // eslint-disable-next-line no-control-regex
  if (t.length === 0 || t.length > 32 || /[\u0000-\u001f\u007f]/.test(t)) return undefined;
  return t;
}

export interface RoomOptions {
  readonly presence: Presence;
  /** Clock for `at` and `online_at` (ms since the epoch). */
  readonly now?: () => number;
}

/**
 * Builds the room channel behaviour.
 *
 * @example
 * ```ts
 * const endpoint = new Endpoint({ node, pubsub, channels: [["room:*", roomChannel({ presence })]] });
 * ```
 */
export function roomChannel(opts: RoomOptions): ChannelBehaviour {
  const { presence } = opts;
  const now = opts.now ?? Date.now;
  const userOf = (s: ChannelSocket) => s.assigns.user as string;

  return {
    join(topic, params, socket) {
      if (!ROOM_NAME.test(topic.slice("room:".length))) return { error: { reason: "invalid room" } };
      if (params.user === undefined) return { error: { reason: "user required" } };
      const user = validUser(params.user);
      if (user === undefined) return { error: { reason: "invalid user" } };
      socket.assigns.user = user;
      return { ok: { user } };
    },

    async afterJoin(socket) {
      await presence.track(socket.self.pid, socket.topic, userOf(socket), { online_at: now(), typing: false });
      socket.push("presence_state", presence.list(socket.topic));
    },

    async handleIn(event, payload, socket) {
      if (payload instanceof Uint8Array) return { reply: error({ reason: "binary not supported" }) };
      switch (event) {
        case "new_msg": {
          const body = typeof payload.body === "string" ? payload.body.trim() : "";
          if (body.length === 0 || body.length > MAX_BODY) return { reply: error({ reason: "invalid body" }) };
          socket.broadcast("new_msg", { user: userOf(socket), body, at: now() });
          return { reply: ok() };
        }
        case "typing": {
          if (typeof payload.typing !== "boolean") return { reply: error({ reason: "invalid typing" }) };
          const typing = payload.typing;
          await presence.update(socket.self.pid, socket.topic, userOf(socket), (m) => ({ ...m, typing }));
          return { reply: ok() };
        }
        default:
          return { reply: error({ reason: "unknown event" }) };
      }
    },

    async terminate(_reason, socket) {
      await presence.untrack(socket.self.pid, socket.topic, userOf(socket));
    },
  };
}
