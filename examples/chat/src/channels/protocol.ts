/**
 * Phoenix Channels v2: frames, codecs and the small pieces of the handshake.
 *
 * # The protocol in one page (the spec is CHANNELS.md)
 *
 * **Connection.** `GET <prefix>/websocket?<params>&vsn=2.0.0` (prefix `/socket`). Only `vsn=2.0.0`
 * is accepted (400 otherwise, a missing vsn included); any other path is 404 (`/longpoll` too);
 * a refused connect is 403. All refusals happen before the 101. Params arrive as strings, nested
 * with bracket keys (`user[id]=7`). With an `authToken`, the client offers the subprotocols
 * `phoenix` and `base64url.bearer.phx.<base64 without padding>`; the 101 then selects `phoenix`
 * (never the token entry), and selects nothing when nothing was offered.
 *
 * **Text frames** (both directions) are JSON arrays `[join_ref, ref, topic, event, payload]`:
 * join_ref and ref are strings or null, topic and event non-empty strings, payload a JSON object.
 * A reply is `[J, R, T, "phx_reply", {status, response}]` with the request's own J and R. Server
 * pushes carry `[J, null, …]` with the *current* join_ref; broadcasts `[null, null, …]`;
 * `phx_close`/`phx_error` repeat the join_ref in the ref slot: `[J, J, T, "phx_close", {}]`.
 *
 * **Binary frames**: a kind byte, one length byte per string field (UTF-8, ≤ 255 bytes each),
 * the fields back to back, then the raw payload.
 *
 * | kind | dir | header | fields |
 * |---|---|---|---|
 * | 0 push | C→S | `0, jr, r, t, e` | join_ref, ref, topic, event |
 * | 0 push | S→C | `0, jr, t, e` | join_ref, topic, event (no ref) |
 * | 1 reply | S→C | `1, jr, r, t, s` | join_ref, ref, topic, status |
 * | 2 broadcast | S→C | `2, t, e` | topic, event |
 *
 * **Lifecycle.** `phx_join` → the channel's join callback → ok reply `[J, J, T, "phx_reply",
 * {status: "ok", response}]` (subscribed before the reply is written, so no broadcast precedes
 * it) or `{status: "error", response: {reason}}`. A topic without a route, or any non-join
 * message for a topic not joined, gets `[null, R, T, "phx_reply", {status: "error", response:
 * {reason: "unmatched topic"}}]`; `phx_leave` for a topic not joined gets an ok reply. A second
 * join of a joined topic closes the first (`phx_close` with the old join_ref) before joining
 * again. Messages with a stale non-null join_ref are ignored. Leave: teardown, ok reply,
 * `phx_close`. Server-initiated close: `phx_close`; a crash: `phx_error` (the client rejoins with
 * a new join_ref).
 *
 * **Heartbeat**: `[null, R, "phoenix", "heartbeat", {}]` → `[null, R, "phoenix", "phx_reply",
 * {status: "ok", response: {}}]`, answered by the connection layer at once.
 *
 * **Errors and close codes.** Oversized frame 1009; invalid UTF-8 or a malformed frame 1007
 * ("malformed frame"); a JSON payload that is not an object gets the error reply
 * `"invalid payload"` (connection kept); a connection-layer bug 1011; idle timeout 1001; slow
 * consumer or message-rate limit 1013; restart/drain 1012. Never 1000: phoenix.js < 1.8.16 does
 * not reconnect after it.
 *
 * **Presence** (on the wire only): `presence_state` is a push of the full state to the joiner
 * after every join; `presence_diff` `{joins, leaves}` (both always present) is a broadcast.
 */

/** A decoded inbound message. `payload` is a JSON object, or the raw bytes of a binary push. */
export interface Message {
  readonly joinRef: string | null;
  readonly ref: string | null;
  readonly topic: string;
  readonly event: string;
  readonly payload: unknown;
  /** True when it came as a binary frame (payload is a Buffer). */
  readonly binary: boolean;
}

/** A JSON object payload (what server payloads and replies' responses always are). */
export type JsonObject = { [key: string]: unknown };

/** A payload the server can send: a JSON object, or raw bytes (sent as a binary frame). */
export type OutPayload = JsonObject | Uint8Array;

/** Why a frame was rejected (always closes the connection with 1007). */
export class MalformedFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MalformedFrameError";
  }
}

/** A binary frame field longer than 255 bytes: the send fails and nothing is written. */
export class FrameEncodeError extends Error {
  constructor(field: string, bytes: number) {
    super(`cannot encode ${field} in a binary frame: ${bytes} bytes, at most 255`);
    this.name = "FrameEncodeError";
  }
}

export const PHOENIX_TOPIC = "phoenix";
export const EVENTS = {
  join: "phx_join",
  leave: "phx_leave",
  reply: "phx_reply",
  close: "phx_close",
  error: "phx_error",
  heartbeat: "heartbeat",
} as const;

/** Close codes used by the server (CHANNELS.md §2.4, §4.9). Never 1000. */
export const CLOSE = {
  goingAway: 1001,
  malformed: 1007,
  tooBig: 1009,
  internalError: 1011,
  serviceRestart: 1012,
  tryAgainLater: 1013,
} as const;

/** True for a plain JSON object (not null, not an array, not bytes). */
export function isJsonObject(x: unknown): x is JsonObject {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array) && !(x instanceof ArrayBuffer);
}

/**
 * Events an application must not send: anything starting with `phx_`, and `chan_reply_*`
 * (phoenix.js would take it for the reply to a push).
 */
export function isReservedEvent(event: string): boolean {
  return event.startsWith("phx_") || event.startsWith("chan_reply_");
}

// ---- text frames ----------------------------------------------------------------------

/**
 * Parses a V2 text frame. Throws `MalformedFrameError` for anything that is not a 5-element
 * array with string-or-null refs and non-empty string topic and event. The payload is returned
 * as parsed (the caller checks that it is an object).
 *
 * @example
 * ```ts
 * decodeText('["1","1","room:lobby","phx_join",{"user":"ann"}]');
 * // { joinRef: "1", ref: "1", topic: "room:lobby", event: "phx_join", payload: { user: "ann" }, binary: false }
 * ```
 */
export function decodeText(text: string): Message {
  let arr: unknown;
  try {
    arr = JSON.parse(text);
  } catch {
    throw new MalformedFrameError("not JSON");
  }
  if (!Array.isArray(arr) || arr.length !== 5) throw new MalformedFrameError("not a 5-element array");
  const [joinRef, ref, topic, event, payload] = arr as unknown[];
  if (joinRef !== null && typeof joinRef !== "string") throw new MalformedFrameError("join_ref is neither a string nor null");
  if (ref !== null && typeof ref !== "string") throw new MalformedFrameError("ref is neither a string nor null");
  if (typeof topic !== "string" || topic.length === 0) throw new MalformedFrameError("topic is not a non-empty string");
  if (typeof event !== "string" || event.length === 0) throw new MalformedFrameError("event is not a non-empty string");
  return { joinRef, ref, topic, event, payload, binary: false };
}

/**
 * Encodes a V2 text frame. Payload objects are serialised as they are; `Map`s are not
 * supported (use null-prototype objects for arbitrary keys such as `__proto__`).
 */
export function encodeText(joinRef: string | null, ref: string | null, topic: string, event: string, payload: unknown): string {
  return JSON.stringify([joinRef, ref, topic, event, payload]);
}

// ---- binary frames --------------------------------------------------------------------

const utf8 = new TextDecoder("utf-8", { fatal: true });

function field(buf: Uint8Array, start: number, len: number, what: string): string {
  try {
    return utf8.decode(buf.subarray(start, start + len));
  } catch {
    throw new MalformedFrameError(`${what} is not valid UTF-8`);
  }
}

/**
 * Parses a client binary frame (only kind 0, push, is accepted). Zero-length join_ref or ref
 * mean null. The payload is the remaining bytes, as a Buffer sharing the frame's memory.
 *
 * @example
 * ```ts
 * const f = Buffer.from([0, 1, 2, 10, 4, ...Buffer.from("428room:lobbyblob"), 1, 2, 3, 0xfa]);
 * decodeBinary(f).payload; // <Buffer 01 02 03 fa>
 * ```
 */
export function decodeBinary(buf: Buffer): Message {
  if (buf.length < 1) throw new MalformedFrameError("empty binary frame");
  const kind = buf[0]!;
  if (kind !== 0) throw new MalformedFrameError(`binary frame of kind ${kind}; clients may send only kind 0`);
  if (buf.length < 5) throw new MalformedFrameError("binary frame shorter than its header");
  const jr = buf[1]!,
    r = buf[2]!,
    t = buf[3]!,
    e = buf[4]!;
  let off = 5;
  if (off + jr + r + t + e > buf.length) throw new MalformedFrameError("binary frame lengths run past its end");
  const joinRef = field(buf, off, jr, "join_ref");
  off += jr;
  const ref = field(buf, off, r, "ref");
  off += r;
  const topic = field(buf, off, t, "topic");
  off += t;
  const event = field(buf, off, e, "event");
  off += e;
  if (topic.length === 0) throw new MalformedFrameError("empty topic");
  if (event.length === 0) throw new MalformedFrameError("empty event");
  return { joinRef: jr === 0 ? null : joinRef, ref: r === 0 ? null : ref, topic, event, payload: buf.subarray(off), binary: true };
}

const enc = new TextEncoder();

function bytesOf(s: string, what: string): Uint8Array {
  const b = enc.encode(s);
  if (b.length > 255) throw new FrameEncodeError(what, b.length);
  return b;
}

function assemble(kind: number, fields: Uint8Array[], payload: Uint8Array): Buffer {
  let size = 1 + fields.length + payload.length;
  for (const f of fields) size += f.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = kind;
  let off = 1;
  for (const f of fields) out[off++] = f.length;
  for (const f of fields) {
    out.set(f, off);
    off += f.length;
  }
  out.set(payload, off);
  return out;
}

/** Kind 0, server push to one client: `0, jr, t, e, join_ref, topic, event, payload`. */
export function encodeBinaryPush(joinRef: string, topic: string, event: string, payload: Uint8Array): Buffer {
  return assemble(0, [bytesOf(joinRef, "join_ref"), bytesOf(topic, "topic"), bytesOf(event, "event")], payload);
}

/** Kind 1, reply: `1, jr, r, t, s, join_ref, ref, topic, status, payload`. `ref` must be non-empty. */
export function encodeBinaryReply(joinRef: string | null, ref: string, topic: string, status: string, payload: Uint8Array): Buffer {
  if (ref.length === 0) throw new FrameEncodeError("ref (empty)", 0);
  return assemble(1, [bytesOf(joinRef ?? "", "join_ref"), bytesOf(ref, "ref"), bytesOf(topic, "topic"), bytesOf(status, "status")], payload);
}

/** Kind 2, broadcast: `2, t, e, topic, event, payload`. */
export function encodeBinaryBroadcast(topic: string, event: string, payload: Uint8Array): Buffer {
  return assemble(2, [bytesOf(topic, "topic"), bytesOf(event, "event")], payload);
}

// ---- handshake pieces -----------------------------------------------------------------

/** The subprotocol prefix carrying the auth token. */
export const AUTH_TOKEN_PREFIX = "base64url.bearer.phx.";

/**
 * Extracts the auth token from the offered subprotocols, decoding leniently (either base64
 * alphabet, padding optional) and reading the bytes as Latin-1, which is what `btoa` took.
 * Returns `undefined` when no token entry was offered.
 *
 * @example
 * ```ts
 * authTokenFrom(["phoenix", "base64url.bearer.phx.czNjcjN0LXRva2Vu"]); // "s3cr3t-token"
 * ```
 */
export function authTokenFrom(protocols: Iterable<string>): string | undefined {
  for (const p of protocols) {
    if (p.startsWith(AUTH_TOKEN_PREFIX)) return Buffer.from(p.slice(AUTH_TOKEN_PREFIX.length), "base64").toString("latin1");
  }
  return undefined;
}

/** A nested params object as the client sent it: every leaf is a string. */
export interface Params {
  [key: string]: string | Params | Array<string | Params>;
}

/**
 * Decodes connect params from a query string into nested objects: `user[id]=7` gives
 * `{ user: { id: "7" } }` and `tags[0]=a` gives `{ tags: ["a"] }`. Every leaf is a string.
 * `vsn` is kept (the caller checks it). Objects have no prototype, so any key is safe.
 *
 * @example
 * ```ts
 * parseParams("token=abc&user%5Bid%5D=7&vsn=2.0.0"); // { token: "abc", user: { id: "7" }, vsn: "2.0.0" }
 * ```
 */
export function parseParams(query: string): Params {
  const root: Params = Object.create(null);
  for (const [rawKey, value] of new URLSearchParams(query)) {
    const m = /^([^[\]]*)((?:\[[^[\]]*\])*)$/.exec(rawKey);
    const path = m ? [m[1]!, ...[...m[2]!.matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1]!)] : [rawKey];
    let node: Params | Array<string | Params> = root;
    for (let i = 0; i < path.length; i++) {
      const k = path[i]!;
      // an array takes only small indexes (no sparse giants, no `__proto__` on an array)
      if (Array.isArray(node) && !/^\d{1,3}$/.test(k)) break;
      const last = i === path.length - 1;
      const nextIsIndex = !last && /^\d{1,3}$/.test(path[i + 1]!);
      const holder = node as Record<string, unknown>;
      if (last) {
        holder[k] = value;
        break;
      }
      let child = holder[k];
      if (typeof child !== "object" || child === null) {
        child = nextIsIndex ? [] : Object.create(null);
        holder[k] = child;
      }
      node = child as Params;
    }
  }
  return root;
}
