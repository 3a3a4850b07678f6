/** Unit tests of the wire codec and handshake helpers (CHANNELS.md §1.1, §1.2, §2). */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  MalformedFrameError,
  authTokenFrom,
  decodeBinary,
  decodeText,
  encodeBinaryBroadcast,
  encodeBinaryPush,
  encodeBinaryReply,
  encodeText,
  isReservedEvent,
  parseParams,
} from "../src/channels/index.js";

const b = (...parts: Array<number[] | string>) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from(p))));

describe("protocol codec", () => {
  it("decodes and encodes V2 text frames", () => {
    expect(decodeText('["4","4","room:lobby","phx_join",{"nick":"alice"}]')).toEqual({ joinRef: "4", ref: "4", topic: "room:lobby", event: "phx_join", payload: { nick: "alice" }, binary: false });
    expect(decodeText('[null,"5","phoenix","heartbeat",{}]').joinRef).toBeNull();
    expect(encodeText("4", "6", "room:lobby", "phx_reply", { status: "ok", response: {} })).toBe('["4","6","room:lobby","phx_reply",{"status":"ok","response":{}}]');
    for (const bad of ["", "{", "[]", '["1","1","t","e"]', '["1","1","t","e",{},6]', '[1,"1","t","e",{}]', '["1",{},"t","e",{}]', '["1","1","","e",{}]', '["1","1","t",null,{}]', "null", '"str"']) {
      expect(() => decodeText(bad), bad).toThrow(MalformedFrameError);
    }
    // a non-object payload decodes (the connection answers "invalid payload")
    expect(decodeText('["1","2","t","e","x"]').payload).toBe("x");
  });

  it("decodes the CHANNELS.md §2.3 binary examples and encodes them byte for byte", () => {
    const push = b([0, 1, 2, 10, 4], "4", "28", "room:lobby", "blob", [1, 2, 3, 0xfa]);
    const m = decodeBinary(push);
    expect(m).toMatchObject({ joinRef: "4", ref: "28", topic: "room:lobby", event: "blob", binary: true });
    expect([...(m.payload as Buffer)]).toEqual([1, 2, 3, 0xfa]);
    expect(encodeBinaryReply("4", "28", "room:lobby", "ok", Buffer.from("bin-ack"))).toEqual(b([1, 1, 2, 10, 2], "4", "28", "room:lobby", "ok", "bin-ack"));
    expect(encodeBinaryBroadcast("room:lobby", "blob", Buffer.from([1, 2, 3, 0xfa]))).toEqual(b([2, 10, 4], "room:lobby", "blob", [1, 2, 3, 0xfa]));
    expect(encodeBinaryPush("4", "room:lobby", "blob", Buffer.from([1, 2, 3, 0xfa]))).toEqual(b([0, 1, 10, 4], "4", "room:lobby", "blob", [1, 2, 3, 0xfa]));
    // zero-length refs mean null
    expect(decodeBinary(b([0, 0, 0, 1, 1], "te", [9]))).toMatchObject({ joinRef: null, ref: null, topic: "t", event: "e" });
  });

  it("rejects bad binary frames: wrong kind, short header, lengths past the end, bad UTF-8, empty topic/event", () => {
    for (const bad of [b([]), b([1, 0, 0, 1, 1], "te"), b([2, 1, 1], "te"), b([0, 1, 1]), b([0, 1, 1, 10, 4], "11abc"), b([0, 0, 0, 1, 1], [0xff], "e"), b([0, 0, 0, 0, 1], "e"), b([0, 0, 0, 1, 0], "t")]) {
      expect(() => decodeBinary(bad)).toThrow(MalformedFrameError);
    }
  });

  it("round-trips any binary push a client can build (property)", () => {
    const field = fc.string({ unit: "grapheme", maxLength: 30 }).filter((s) => Buffer.byteLength(s) <= 255);
    fc.assert(
      fc.property(field, field, field.filter((s) => s.length > 0), field.filter((s) => s.length > 0), fc.uint8Array({ maxLength: 50 }), (jr, r, t, e, p) => {
        const frame = b([0, Buffer.byteLength(jr), Buffer.byteLength(r), Buffer.byteLength(t), Buffer.byteLength(e)], jr + r + t + e, [...p]);
        const m = decodeBinary(frame);
        expect(m).toMatchObject({ joinRef: jr === "" ? null : jr, ref: r === "" ? null : r, topic: t, event: e });
        expect([...(m.payload as Buffer)]).toEqual([...p]);
      }),
    );
  });

  it("decodes auth tokens leniently (either alphabet, any padding) as Latin-1", () => {
    expect(authTokenFrom(["phoenix", "base64url.bearer.phx.czNjcjN0LXRva2Vu"])).toBe("s3cr3t-token");
    expect(authTokenFrom(["phoenix"])).toBeUndefined();
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 40 }), (token) => {
        const std = btoa(token);
        for (const enc of [std, std.replace(/=/g, ""), std.replace(/\+/g, "-").replace(/\//g, "_").replace(/=/g, "")]) {
          expect(authTokenFrom(["phoenix", `base64url.bearer.phx.${enc}`])).toBe(token);
        }
      }),
    );
  });

  it("parses connect params with brackets into strings, nested objects and arrays, safely", () => {
    expect(parseParams("token=abc&user%5Bid%5D=7&user%5Bname%5D=ann&tags%5B0%5D=a&tags%5B1%5D=b&vsn=2.0.0")).toEqual({ token: "abc", user: { id: "7", name: "ann" }, tags: ["a", "b"], vsn: "2.0.0" });
    const p = parseParams("__proto__%5Bx%5D=1&constructor=2&a%5B__proto__%5D=3");
    expect(Object.getPrototypeOf(p)).toBeNull();
    expect(({} as any).x).toBeUndefined();
    expect(p.constructor).toBe("2");
    expect(parseParams("big%5B99999999%5D=1")).toEqual({ big: { "99999999": "1" } });
  });

  it("knows the reserved events", () => {
    for (const e of ["phx_join", "phx_reply", "phx_anything", "chan_reply_12"]) expect(isReservedEvent(e)).toBe(true);
    for (const e of ["new_msg", "presence_diff", "heartbeat", "reply"]) expect(isReservedEvent(e)).toBe(false);
  });
});
