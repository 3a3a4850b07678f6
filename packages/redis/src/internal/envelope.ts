/**
 * The wire envelope of the Redis transport: who sent a message and what it is.
 *
 * Layout (version 1), all integers big-endian:
 *
 * ```
 * u8  version (1)
 * u8  kind (0 = heartbeat, 1 = frame)
 * u32 epoch        sender's connection number (see PeerTable)
 * u8  fromLength,  from (UTF-8)        node name
 * u8  incLength,   incarnation (UTF-8)
 * -- frame only:
 * u16 channelLength, channel (UTF-8)
 * ... payload (the rest)
 * ```
 *
 * Anything else raises a `FrameDecodeError` (the transport counts it and drops the message).
 */
import { FrameDecodeError } from "@cinder/runtime";

/** The version byte of the envelopes this transport writes (and the only one it reads). */
export const ENVELOPE_VERSION = 1;

export type Envelope =
  | { kind: "heartbeat"; from: string; incarnation: string; epoch: number }
  | { kind: "frame"; from: string; incarnation: string; epoch: number; channel: string; payload: Uint8Array };

const KIND_HEARTBEAT = 0;
const KIND_FRAME = 1;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The UTF-8 bytes of a node name or incarnation, checked to fit a u8 length. */
export function shortString(what: string, value: string): Buffer {
  const b = Buffer.from(value, "utf8");
  if (b.length === 0 || b.length > 255) throw new RangeError(`${what} must be 1 to 255 bytes of UTF-8, got ${b.length}`);
  return b;
}

/** The fixed part of every envelope a node sends: version, kind, epoch, from, incarnation. */
export function encodeHeartbeat(from: Buffer, incarnation: Buffer, epoch: number): Buffer {
  const out = Buffer.allocUnsafe(2 + 4 + 1 + from.length + 1 + incarnation.length);
  writeHeader(out, KIND_HEARTBEAT, epoch, from, incarnation);
  return out;
}

export function encodeFrameEnvelope(from: Buffer, incarnation: Buffer, epoch: number, channel: string, payload: Uint8Array): Buffer {
  const ch = Buffer.from(channel, "utf8");
  if (ch.length > 0xffff) throw new RangeError(`channel name is ${ch.length} bytes of UTF-8; at most 65535`);
  const head = 2 + 4 + 1 + from.length + 1 + incarnation.length;
  const out = Buffer.allocUnsafe(head + 2 + ch.length + payload.byteLength);
  let o = writeHeader(out, KIND_FRAME, epoch, from, incarnation);
  o = out.writeUInt16BE(ch.length, o);
  o += ch.copy(out, o);
  out.set(payload, o);
  return out;
}

function writeHeader(out: Buffer, kind: number, epoch: number, from: Buffer, incarnation: Buffer): number {
  let o = out.writeUInt8(ENVELOPE_VERSION, 0);
  o = out.writeUInt8(kind, o);
  o = out.writeUInt32BE(epoch >>> 0, o);
  o = out.writeUInt8(from.length, o);
  o += from.copy(out, o);
  o = out.writeUInt8(incarnation.length, o);
  o += incarnation.copy(out, o);
  return o;
}

/**
 * Decodes an envelope. The payload of a frame is a view into `bytes` (no copy).
 * @throws {FrameDecodeError}
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const n = bytes.byteLength;
  const fail = (reason: "empty" | "unknown-version" | "malformed", message: string, version?: number): never => {
    throw new FrameDecodeError(reason, message, version === undefined ? { byteLength: n } : { version, byteLength: n });
  };
  if (n === 0) fail("empty", "empty envelope");
  const version = bytes[0]!;
  if (version !== ENVELOPE_VERSION) fail("unknown-version", `unknown envelope version ${version} (this node reads ${ENVELOPE_VERSION})`, version);
  const view = new DataView(bytes.buffer, bytes.byteOffset, n);
  let o = 1;
  const need = (k: number, what: string) => {
    if (o + k > n) fail("malformed", `envelope truncated while reading ${what}`, version);
  };
  const str = (len: number, what: string): string => {
    need(len, what);
    try {
      const s = utf8.decode(bytes.subarray(o, o + len));
      o += len;
      return s;
    } catch {
      return fail("malformed", `${what} is not valid UTF-8`, version);
    }
  };
  need(1, "kind");
  const kind = bytes[o++]!;
  if (kind !== KIND_HEARTBEAT && kind !== KIND_FRAME) fail("malformed", `unknown envelope kind ${kind}`, version);
  need(4, "epoch");
  const epoch = view.getUint32(o);
  o += 4;
  need(1, "sender length");
  const fromLen = bytes[o++]!;
  if (fromLen === 0) fail("malformed", "empty sender name", version);
  const from = str(fromLen, "sender name");
  need(1, "incarnation length");
  const incLen = bytes[o++]!;
  if (incLen === 0) fail("malformed", "empty incarnation", version);
  const incarnation = str(incLen, "incarnation");
  if (kind === KIND_HEARTBEAT) {
    if (o !== n) fail("malformed", `${n - o} trailing bytes after heartbeat`, version);
    return { kind: "heartbeat", from, incarnation, epoch };
  }
  need(2, "channel length");
  const chLen = view.getUint16(o);
  o += 2;
  const channel = str(chLen, "channel");
  return { kind: "frame", from, incarnation, epoch, channel, payload: bytes.subarray(o) };
}
