/**
 * Fastlane: encode a broadcast once per node and write the same bytes to every socket.
 *
 * A channel subscribes to its topic with metadata `{ fastlane: socketPid }`. A broadcast is the
 * message `{ $channels: "broadcast", topic, event, payload }`. The fastlane dispatcher, given one
 * batch of subscriber entries, encodes the frame at most once — `[null, null, topic, event,
 * payload]` as one UTF-8 Buffer, or a kind-2 binary frame when the payload is bytes — and sends
 * `{ k: "frame", data, binary }` straight to each entry's socket actor, skipping the entry whose
 * pid is `from` (broadcast-from). Entries without fastlane metadata get the plain message.
 */
import type { Pid } from "@cinder/runtime";
import { encodeBinaryBroadcast, encodeText, type OutPayload } from "./protocol.js";

/** The message every broadcast on a channel topic carries. Structured-clonable. */
export interface Broadcast {
  readonly $channels: "broadcast";
  readonly topic: string;
  readonly event: string;
  readonly payload: OutPayload;
}

/** Subscription metadata of a channel: where its encoded broadcasts go. */
export interface FastlaneMeta {
  readonly fastlane: Pid;
}

/** What a socket actor receives from the fastlane: an already encoded frame. */
export interface FrameMsg {
  readonly k: "frame";
  readonly data: Buffer;
  readonly binary: boolean;
}

/** Builds a broadcast message (validates nothing; the channel API checks reserved events). */
export function broadcastMsg(topic: string, event: string, payload: OutPayload): Broadcast {
  return { $channels: "broadcast", topic, event, payload };
}

export function isBroadcast(m: unknown): m is Broadcast {
  return typeof m === "object" && m !== null && (m as Broadcast).$channels === "broadcast";
}

/** Counters of the fastlane (per thread: each scheduler has its own). */
export const fastlaneStats = { encodes: 0 };

/**
 * Encodes a broadcast frame. A `Uint8Array` payload (a Buffer too) gives a kind-2 binary frame;
 * anything else a V2 JSON text frame. Throws `FrameEncodeError` for binary fields > 255 bytes.
 */
export function encodeBroadcast(b: Broadcast): FrameMsg {
  fastlaneStats.encodes++;
  if (b.payload instanceof Uint8Array) return { k: "frame", data: encodeBinaryBroadcast(b.topic, b.event, b.payload), binary: true };
  return { k: "frame", data: Buffer.from(encodeText(null, null, b.topic, b.event, b.payload)), binary: false };
}
