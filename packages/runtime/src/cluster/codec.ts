/**
 * The cluster codec: turns structured values into versioned binary frames and back.
 *
 * Layout of a frame: `[version: u8][body...]`.
 *
 * - Version 1: the body is Node's structured-clone serialization (`node:v8` `serialize`), so
 *   everything `structuredClone` accepts crosses nodes: primitives (bigint included), plain
 *   objects, arrays, `Map`, `Set`, `Date`, `RegExp`, `Error`, typed arrays and `Buffer`s.
 *   Class instances arrive as plain objects (prototypes do not travel); functions and symbols
 *   cannot be encoded. V8 reads its older formats, so a cluster whose nodes run different Node
 *   versions must upgrade readers before writers.
 *
 * Typed arrays inside a decoded value may share memory with the decoded bytes (no copy is made);
 * do not reuse a frame's buffer while its decoded value is in use.
 *
 * A receiver that meets a version it does not know, or bytes that are not a frame, gets a
 * {@link FrameDecodeError} (a transport counts it and drops the frame; it never crashes).
 *
 * @example
 * ```ts
 * import { encodeFrame, decodeFrame, FrameDecodeError } from "@cinder/runtime";
 *
 * const bytes = encodeFrame({ topic: "room:1", seen: new Set(["a", "b"]) });
 * console.log(bytes[0]); // 1 (CODEC_VERSION)
 * console.log(decodeFrame(bytes)); // { topic: "room:1", seen: new Set(["a", "b"]) }
 *
 * try {
 *   decodeFrame(new Uint8Array([99, 1, 2]));
 * } catch (e) {
 *   if (e instanceof FrameDecodeError) console.log(e.reason); // "unknown-version"
 * }
 * ```
 */
import { serialize, deserialize } from "node:v8";

/** The version this node writes. */
export const CODEC_VERSION = 1;

/** Versions this node can read. */
export const SUPPORTED_CODEC_VERSIONS: readonly number[] = [1];

/** Why {@link decodeFrame} refused its input (see {@link FrameDecodeError}). */
export type FrameDecodeReason = "empty" | "unknown-version" | "malformed";

/**
 * Thrown by {@link decodeFrame} when bytes are not a frame this node can read.
 *
 * @example
 * ```ts
 * import { decodeFrame, FrameDecodeError } from "@cinder/runtime";
 * for (const bytes of [new Uint8Array([]), new Uint8Array([1, 255, 255])]) {
 *   try { decodeFrame(bytes); }
 *   catch (e) { if (e instanceof FrameDecodeError) console.log(e.reason, e.byteLength); } // [["empty", 0], ["malformed", 3]]
 * }
 * ```
 */
export class FrameDecodeError extends Error {
  override readonly name = "FrameDecodeError";
  /** Why decoding failed. */
  readonly reason: FrameDecodeReason;
  /** The version byte found, when there was one. */
  readonly version: number | undefined;
  /** Length of the rejected input in bytes. */
  readonly byteLength: number;

  constructor(reason: FrameDecodeReason, message: string, opts: { version?: number; byteLength: number; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.reason = reason;
    this.version = opts.version;
    this.byteLength = opts.byteLength;
  }
}

/**
 * Thrown by {@link encodeFrame} when a value cannot be encoded (a function, a symbol...).
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameEncodeError } from "@cinder/runtime";
 * try { encodeFrame({ onMessage: () => {} }); }
 * catch (e) { console.log(e instanceof FrameEncodeError); } // true
 * ```
 */
export class FrameEncodeError extends Error {
  override readonly name = "FrameEncodeError";
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
  }
}

/**
 * Encodes `value` as a frame of the current {@link CODEC_VERSION}.
 *
 * @throws {FrameEncodeError} if the value is not structured-clonable; nothing partial is returned.
 *
 * @example
 * ```ts
 * import { encodeFrame, CODEC_VERSION } from "@cinder/runtime";
 * const frame = encodeFrame(["join", { user: 42n }]);
 * console.log(frame[0] === CODEC_VERSION); // true
 * ```
 */
export function encodeFrame(value: unknown): Uint8Array {
  let body: Buffer;
  try {
    body = serialize(value);
  } catch (cause) {
    const what = cause instanceof Error ? cause.message : String(cause);
    throw new FrameEncodeError(`cannot encode value: ${what}`, { cause });
  }
  const out = new Uint8Array(body.length + 1);
  out[0] = CODEC_VERSION;
  out.set(body, 1);
  return out;
}

/**
 * Decodes a frame produced by {@link encodeFrame} (on this node or another one).
 *
 * @throws {FrameDecodeError} `reason` is `"empty"` (no bytes), `"unknown-version"` (first byte is
 *   not a version this node reads) or `"malformed"` (the body is not a valid serialization).
 *
 * @example
 * ```ts
 * import { encodeFrame, decodeFrame } from "@cinder/runtime";
 * const frame = encodeFrame(["join", { user: 42n }]);
 * const value = decodeFrame(frame) as [string, { user: bigint }];
 * console.log(value); // ["join", { user: 42n }]
 * ```
 */
export function decodeFrame(bytes: Uint8Array): unknown {
  const byteLength = bytes.byteLength;
  if (byteLength === 0) {
    throw new FrameDecodeError("empty", "cannot decode an empty frame", { byteLength });
  }
  const version = bytes[0]!;
  if (version !== 1) {
    throw new FrameDecodeError(
      "unknown-version",
      `unknown frame version ${version} (this node reads ${SUPPORTED_CODEC_VERSIONS.join(", ")})`,
      { version, byteLength },
    );
  }
  if (byteLength < 2) {
    throw new FrameDecodeError("malformed", "frame has no body", { version, byteLength });
  }
  // A view, not a copy: v8.deserialize reads from the given range only.
  const body = Buffer.from(bytes.buffer, bytes.byteOffset + 1, byteLength - 1);
  try {
    return deserialize(body);
  } catch (cause) {
    const what = cause instanceof Error ? cause.message : String(cause);
    throw new FrameDecodeError("malformed", `malformed frame body: ${what}`, { version, byteLength, cause });
  }
}
