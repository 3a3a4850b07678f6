/**
 * Fuzzed frames: malformed, oversized, binary garbage and near-valid frames never crash the
 * server. Each connection either stays open (and still answers a heartbeat) or is closed with
 * the code CHANNELS.md §2.4 gives (1007 malformed, 1009 too big); never 1011, and other
 * connections keep working.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import type { Logger } from "@cinder/runtime";
import { RawClient, connected, disconnectAll, joinOk, phxSocket, push, waitFor } from "./support/client.js";
import { startTestServer, type TestServer } from "./support/server.js";

const MAX = 2048;
let server: TestServer;
const errors: string[] = [];
const logger: Logger = { error: (m) => void errors.push(m), warn() {}, info() {} };

beforeAll(async () => {
  server = await startTestServer({ logger, endpoint: { maxFrameBytes: MAX } });
});
afterAll(async () => {
  await disconnectAll();
  await server.stop();
});

const ref = fc.oneof({ weight: 4, arbitrary: fc.constantFrom("1", "1", "2", null) }, fc.string({ maxLength: 4 }), fc.integer(), fc.boolean());
const topic = fc.oneof({ weight: 4, arbitrary: fc.constantFrom("test:fz", "room:fz") }, fc.constantFrom("phoenix", "room:", "test:", "nowhere", ""), fc.string({ maxLength: 12 }), fc.integer(), fc.constant(null));
const event = fc.oneof(
  fc.constantFrom("phx_join", "phx_leave", "phx_reply", "phx_close", "heartbeat", "echo", "fail", "crash", "noreply", "close", "new_msg", "typing", "push", "broadcast", "broadcast_from", "push_bin", "long_field", "async"),
  fc.string({ maxLength: 12 }),
  fc.constant(null),
);
const payload = fc.oneof(
  fc.constant({}),
  fc.record({ user: fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.constant("ann")), body: fc.oneof(fc.string({ maxLength: 50 }), fc.integer()), typing: fc.oneof(fc.boolean(), fc.string()) }, { requiredKeys: [] }),
  fc.record({ event: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom("phx_x", "chan_reply_1", "ok")), payload: fc.jsonValue({ maxDepth: 2 }), bytes: fc.array(fc.integer({ min: -5, max: 300 }), { maxLength: 8 }) }, { requiredKeys: [] }),
  fc.jsonValue({ maxDepth: 3 }),
);
const nearValid = fc.tuple(ref, ref, topic, event, payload).map((f) => JSON.stringify(f));
/** Well-formed frames on the joined topic: they reach the channel handlers. */
const session = fc
  .tuple(
    fc.constantFrom("1", "1", null, "2"),
    fc.constantFrom("5", "6", null),
    fc.constantFrom("test:fz", "room:fz"),
    fc.constantFrom("echo", "fail", "crash", "noreply", "close", "new_msg", "typing", "push", "broadcast", "broadcast_from", "push_bin", "long_field", "phx_leave", "phx_join", "nope"),
    fc.oneof(
      fc.record({ body: fc.oneof(fc.string({ maxLength: 20 }), fc.integer()), typing: fc.oneof(fc.boolean(), fc.string()), user: fc.string({ maxLength: 4 }) }, { requiredKeys: [] }),
      fc.record({ event: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom("phx_x", "chan_reply_1", "ok")), payload: fc.jsonValue({ maxDepth: 2 }), bytes: fc.array(fc.integer({ min: -5, max: 300 }), { maxLength: 8 }) }, { requiredKeys: [] }),
    ),
  )
  .map((f) => JSON.stringify(f));
const jsonGarbage = fc.oneof(
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 7 }).map((a) => JSON.stringify(a)),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
);
const textGarbage = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "grapheme", maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 }));
const binaryGarbage = fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b));
const nearValidBinary = fc
  .tuple(fc.constantFrom(0, 0, 0, 1, 2, 3), fc.array(fc.nat(12), { minLength: 0, maxLength: 4 }), fc.uint8Array({ maxLength: 40 }))
  .map(([kind, lens, rest]) => Buffer.from([kind, ...lens, ...rest]));
const structuredBinary = fc
  .tuple(fc.constantFrom("", "1", "2"), fc.constantFrom("", "7"), fc.constantFrom("test:fz", "room:fz", "phoenix", ""), fc.constantFrom("echo", "bin", "crash", "phx_join", "heartbeat", ""), fc.uint8Array({ maxLength: 20 }))
  .map(([jr, r, t, e, p]) => Buffer.from([0, Buffer.byteLength(jr), Buffer.byteLength(r), Buffer.byteLength(t), Buffer.byteLength(e), ...Buffer.from(jr + r + t + e), ...p]));
const oversized = fc.integer({ min: MAX + 1, max: MAX * 3 }).map((n) => JSON.stringify(["1", "1", "test:fz", "echo", { pad: "x".repeat(n) }]));
const frame = fc.oneof(
  { weight: 6, arbitrary: session },
  { weight: 4, arbitrary: nearValid },
  { weight: 2, arbitrary: jsonGarbage },
  { weight: 2, arbitrary: textGarbage },
  { weight: 2, arbitrary: binaryGarbage },
  { weight: 2, arbitrary: nearValidBinary },
  { weight: 3, arbitrary: structuredBinary },
  { weight: 1, arbitrary: oversized },
);

describe("fuzzed frames", () => {
  it("malformed, oversized and binary-garbage frames never crash the server: open and answering, or closed with 1007/1009", async () => {
    const control = await connected(phxSocket(server.socketUrl));
    const ctl = control.channel("test:control", {});
    await joinOk(ctl);
    const url = `${server.socketUrl}/websocket?vsn=2.0.0`;
    const outcomes: Record<string, number> = {};
    const clients: RawClient[] = [];
    const kinds = () => new Set(clients.flatMap((c) => c.frames.filter(Array.isArray).map((f) => (f[3] === "phx_reply" ? `reply:${(f[4] as any)?.status}` : f[3]))));
    await fc.assert(
      fc.asyncProperty(fc.option(fc.constantFrom("test:fz", "room:fz")), fc.array(frame, { minLength: 1, maxLength: 6 }), async (joinFirst, frames) => {
        const raw = await RawClient.open(url);
        try {
          if (joinFirst !== null) await raw.call(["1", "1", joinFirst, "phx_join", { user: "ann" }]);
          for (const f of frames) if (raw.closeCode === undefined) raw.send(f);
          raw.send([null, "sentinel", "phoenix", "heartbeat", {}]);
          await waitFor(() => raw.closeCode !== undefined || raw.frames.some((f) => Array.isArray(f) && f[1] === "sentinel"), "sentinel reply or close", 3000);
          const outcome = raw.closeCode === undefined ? "open" : String(raw.closeCode);

          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
          expect(["open", "1007", "1009"]).toContain(outcome);
        } finally {
          clients.push(raw); // kept open until the end: late frames (a crash's phx_error) still count
        }
      }),
      {
        numRuns: 250,
        // always-run cases, so every channel path is reached whatever the seed
        examples: [
          ["test:fz", [JSON.stringify(["1", "5", "test:fz", "crash", {}])]],
          ["test:fz", [JSON.stringify(["1", "5", "test:fz", "close", {}])]],
          ["room:fz", [JSON.stringify(["1", "5", "room:fz", "new_msg", { body: "hi" }]), JSON.stringify(["1", "6", "room:fz", "new_msg", { body: 7 }])]],
          [null, [Buffer.from([7, 7, 7]), "x".repeat(MAX + 1)]],
          [null, ["x".repeat(MAX + 1)]],
        ],
      },
    );
    // every kind of outcome happened, the server is healthy, and nothing reached the 1011 path
    expect(Object.keys(outcomes).sort()).toEqual(["1007", "1009", "open"]);
    // … and the fuzz reached the channels: joins, replies of both kinds, crashes, presence
    const wanted = ["reply:ok", "reply:error", "phx_error", "phx_close", "presence_state", "presence_diff"];
    await waitFor(() => wanted.every((k) => kinds().has(k)), `fuzz reached ${wanted.join(", ")}`).catch(() => expect([...kinds()].sort()).toEqual(expect.arrayContaining(wanted)));
    for (const c of clients) c.close();
    expect(server.endpoint.stats.internalErrors).toBe(0);
    expect(server.endpoint.stats.closes[1011]).toBeUndefined();
    expect(errors.filter((e) => /internal error|socket .* crashed|process <[^>]*> \(socket/.test(e))).toEqual([]);
    expect(await push(ctl, "echo", { still: "alive" })).toEqual({ status: "ok", response: { still: "alive" } });
    await waitFor(() => server.endpoint.connections().length === 1, "fuzz connections gone");
  });
});
