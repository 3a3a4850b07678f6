import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { CODEC_VERSION, decodeFrame, encodeFrame, FrameDecodeError, FrameEncodeError } from "@cinder/runtime";

describe("cluster codec", () => {
  it("writes the version in the first byte and round-trips structured values", () => {
    const value = {
      topic: "room:1",
      n: 42,
      big: 2n ** 70n,
      when: new Date(1_700_000_000_000),
      seen: new Set(["a", "b"]),
      meta: new Map<string, unknown>([["k", [1, null, undefined, "x"]]]),
      bytes: new Uint8Array([0, 1, 255]),
      nested: { deep: { er: [true, false, -0, Number.NaN] } },
    };
    const frame = encodeFrame(value);
    expect(frame).toBeInstanceOf(Uint8Array);
    expect(frame[0]).toBe(CODEC_VERSION);
    expect(decodeFrame(frame)).toEqual(value);
  });

  it("round-trips arbitrary JSON-like values (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(decodeFrame(encodeFrame(v))).toEqual(v);
      }),
      { numRuns: 300 },
    );
  });

  it("unknown version: FrameDecodeError with reason unknown-version and the version found", () => {
    const frame = encodeFrame("hello");
    frame[0] = 99;
    const err = catchError(() => decodeFrame(frame));
    expect(err).toBeInstanceOf(FrameDecodeError);
    expect((err as FrameDecodeError).reason).toBe("unknown-version");
    expect((err as FrameDecodeError).version).toBe(99);
    expect((err as Error).message).toMatch(/version 99/);
  });

  it("empty input and a version byte without body are typed errors", () => {
    expect((catchError(() => decodeFrame(new Uint8Array(0))) as FrameDecodeError).reason).toBe("empty");
    expect((catchError(() => decodeFrame(new Uint8Array([CODEC_VERSION]))) as FrameDecodeError).reason).toBe("malformed");
  });

  it("truncated frame: FrameDecodeError malformed", () => {
    const frame = encodeFrame({ a: "some string long enough", b: [1, 2, 3] });
    const err = catchError(() => decodeFrame(frame.subarray(0, frame.length - 5)));
    expect(err).toBeInstanceOf(FrameDecodeError);
    expect((err as FrameDecodeError).reason).toBe("malformed");
  });

  it("garbage never throws anything but FrameDecodeError (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), fc.boolean(), (bytes, withVersion) => {
        if (withVersion && bytes.length > 0) bytes[0] = CODEC_VERSION;
        try {
          decodeFrame(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(FrameDecodeError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("decodes a frame that is a view into a larger buffer", () => {
    const frame = encodeFrame(["x", 1]);
    const big = new Uint8Array(frame.length + 10);
    big.set(frame, 7);
    expect(decodeFrame(big.subarray(7, 7 + frame.length))).toEqual(["x", 1]);
  });

  it("a function or symbol cannot be encoded: FrameEncodeError, nothing returned", () => {
    expect(catchError(() => encodeFrame({ f: () => 1 }))).toBeInstanceOf(FrameEncodeError);
    expect(catchError(() => encodeFrame(Symbol("s")))).toBeInstanceOf(FrameEncodeError);
  });
});

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, got none");
}
