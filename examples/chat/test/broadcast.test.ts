/** CHANNELS.md §8 items 24–29: broadcasts (encoded once), broadcast-from, ordering, binary frames. */
import { afterEach, describe, expect, it } from "vitest";
import type { Socket } from "phoenix";
import { FrameEncodeError, encodeBinaryBroadcast, encodeBinaryPush, encodeBinaryReply, fastlaneStats } from "../src/channels/index.js";
import { arrayBuffer, collect, connected, disconnectAll, inbox, joinOk, phxSocket, push, waitFor } from "./support/client.js";
import { startTestServer, type TestServer } from "./support/server.js";

let server: TestServer | undefined;
afterEach(async () => {
  server?.probe.openAll();
  await disconnectAll();
  await server?.stop();
  server = undefined;
});

/** The raw frames a phoenix.js socket's WebSocket receives (strings, or ArrayBuffers). */
function rawFrames(s: Socket): unknown[] {
  const out: unknown[] = [];
  (s as any).conn.addEventListener("message", (e: { data: unknown }) => void out.push(e.data));
  return out;
}

async function clients(n: number, topic: string, params: (i: number) => object = () => ({})) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const s = await connected(phxSocket(server!.socketUrl, { params: { i: String(i) } }));
    const raw = rawFrames(s);
    const got = inbox(s);
    const ch = s.channel(topic, params(i));
    await joinOk(ch);
    out.push({ s, ch, raw, got });
  }
  return out;
}

describe("broadcasts and binary frames (CHANNELS.md §8)", () => {
  it("§8.24 a broadcast arrives as [null,null,T,event,payload] at every subscriber, sender included, byte-identical (encoded once)", async () => {
    server = await startTestServer();
    const seen: Array<{ conn: string; data: unknown }> = [];
    server.endpoint.hooks = { frameOut: (conn, data) => void seen.push({ conn: conn.id, data }) };
    const cs = await clients(3, "test:bc");
    const encodesBefore = fastlaneStats.encodes;
    expect((await push(cs[0]!.ch, "broadcast", { event: "news", payload: { text: "hé ✓", n: 1 } })).status).toBe("ok");
    const frames = await Promise.all(cs.map((c) => waitFor(() => c.raw.find((d) => typeof d === "string" && d.includes('"news"')), "raw broadcast")));
    expect(new Set(frames).size).toBe(1);
    expect(JSON.parse(frames[0] as string)).toEqual([null, null, "test:bc", "news", { text: "hé ✓", n: 1 }]);
    for (const c of cs) expect(c.got.filter((m) => m.event === "news")).toEqual([{ join_ref: null, ref: null, topic: "test:bc", event: "news", payload: { text: "hé ✓", n: 1 } }]);
    // one encoding, and the very same buffer written to every socket
    expect(fastlaneStats.encodes - encodesBefore).toBe(1);
    const outs = seen.filter((x) => Buffer.isBuffer(x.data) && (x.data as Buffer).includes('"news"'));
    expect(outs).toHaveLength(3);
    expect(new Set(outs.map((x) => x.conn)).size).toBe(3);
    expect(outs.every((x) => x.data === outs[0]!.data)).toBe(true);
  });

  it("§8.25 broadcast-from skips only the sending connection; the same user on a second connection still gets it", async () => {
    server = await startTestServer();
    const [a1, a2, b] = await clients(3, "test:bf", (i) => ({ user: i < 2 ? "ann" : "bob" }));
    const got = [a1!, a2!, b!].map((c) => collect(c.ch, "hey"));
    expect((await push(a1!.ch, "broadcast_from", { event: "hey", payload: { from: "ann" } })).status).toBe("ok");
    await waitFor(() => got[1]!.length === 1 && got[2]!.length === 1, "others got it");
    // the reply to the sender was written after anything the broadcast could have sent it
    expect(got[0]).toEqual([]);
    expect(got[1]![0]).toEqual({ payload: { from: "ann" }, ref: null, joinRef: a2!.ch.joinRef() });
    expect(a2!.got.find((m) => m.event === "hey")!.join_ref).toBeNull();
  });

  it("§8.26 one publisher's broadcasts arrive in order, and none after a leave or a close", async () => {
    server = await startTestServer();
    const [pub, sub, leaver, kicked] = await clients(4, "test:order");
    const N = 300;
    const subSeq = collect(sub!.ch, "seq");
    const leaverSeq = collect(leaver!.ch, "seq");
    leaver!.ch.on("seq", (p: { n: number }) => {
      if (p.n === 50) leaver!.ch.leave();
    });
    const kickedPid = server.endpoint.connections().find((c) => c.params.i === "3")!.topics.get("test:order")!.pid;
    const kickedSeq = collect(kicked!.ch, "seq");
    kicked!.ch.on("seq", (p: { n: number }) => {
      if (p.n === 100) server!.node.send(kickedPid, "kick");
    });
    // the publisher waits for the kicked client to see n = 100 halfway, so the kick lands mid-stream
    const halfway = new Promise<void>((r) => {
      kicked!.ch.on("seq", (p: { n: number }) => void (p.n === 100 && r()));
    });
    for (let n = 0; n <= 100; n++) pub!.ch.push("broadcast", { event: "seq", payload: { n } });
    await halfway;
    for (let n = 101; n < N; n++) pub!.ch.push("broadcast", { event: "seq", payload: { n } });
    await waitFor(() => subSeq.length === N, "all broadcasts", 10_000);
    expect(subSeq.map((x) => x.payload.n)).toEqual(Array.from({ length: N }, (_, i) => i));
    await waitFor(() => leaver!.got.some((m) => m.event === "phx_close") && kicked!.got.some((m) => m.event === "phx_close"), "closes");
    for (const [c, seq] of [
      [leaver!, leaverSeq],
      [kicked!, kickedSeq],
    ] as const) {
      const closeAt = c.got.findIndex((m) => m.event === "phx_close");
      const seqFrames = c.got.filter((m) => m.event === "seq");
      expect(c.got.slice(closeAt + 1).filter((m) => m.event === "seq")).toEqual([]);
      expect(seqFrames.map((m) => m.payload.n)).toEqual(Array.from({ length: seqFrames.length }, (_, i) => i));
      expect(seq.length).toBeLessThan(N);
    }
  });

  it("§8.27 a binary push (ArrayBuffer payload) reaches the handler with the exact join_ref, ref, topic, event and bytes", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl));
    const got = inbox(s);
    const ch = s.channel("test:bin", {});
    await joinOk(ch);
    const bytes = Buffer.from([0, 1, 2, 3, 0xfa, 0xff, 0x80, 10, 13]);
    const p = ch.push("bin", arrayBuffer(bytes));
    await new Promise<void>((r) => p.receive("ok", () => r()));
    const call = server.probe.of("in", "test:bin")[0]!;
    expect(call.event).toBe("bin");
    expect(call.joinRef).toBe(ch.joinRef());
    expect(Buffer.isBuffer(call.payload)).toBe(true);
    expect(Buffer.compare(call.payload as Buffer, bytes)).toBe(0);
    expect(got.find((m) => m.event === "phx_reply" && m.topic === "test:bin" && m.ref === call.ref)).toBeDefined();
    // an empty binary payload too
    const p2 = ch.push("bin", new ArrayBuffer(0));
    await new Promise<void>((r) => p2.receive("ok", () => r()));
    expect((server.probe.of("in", "test:bin")[1]!.payload as Buffer).length).toBe(0);
  });

  it("§8.28 kind-1 replies reach receive('ok') as ArrayBuffers; kind-2 broadcasts and kind-0 pushes reach channel.on as ArrayBuffers", async () => {
    server = await startTestServer();
    const [a, b] = await clients(2, "test:bin2");
    const bytes = [9, 8, 7, 0, 255, 128];
    const reply = await new Promise<unknown>((r) => a!.ch.push("bin", arrayBuffer(Buffer.from(bytes))).receive("ok", r));
    expect(reply).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(reply as ArrayBuffer)]).toEqual(bytes);
    const pushed = collect(a!.ch, "bin");
    await push(a!.ch, "push_bin", { bytes });
    await waitFor(() => pushed.length === 1, "kind-0 push");
    expect(pushed[0]!.payload).toBeInstanceOf(ArrayBuffer);
    expect([...new Uint8Array(pushed[0]!.payload)]).toEqual(bytes);
    expect(pushed[0]!.joinRef).toBe(a!.ch.joinRef());
    const blobs = [a!, b!].map((c) => collect(c.ch, "blob"));
    await push(a!.ch, "broadcast_bin", { bytes });
    await waitFor(() => blobs.every((x) => x.length === 1), "kind-2 broadcasts");
    for (const x of blobs) {
      expect(x[0]!.payload).toBeInstanceOf(ArrayBuffer);
      expect([...new Uint8Array(x[0]!.payload)]).toEqual(bytes);
      expect(x[0]!.ref).toBeNull();
    }
    const rawB = b!.raw.filter((d) => d instanceof ArrayBuffer) as ArrayBuffer[];
    expect([...new Uint8Array(rawB.at(-1)!)]).toEqual([2, 9, 4, ...Buffer.from("test:bin2blob"), ...bytes]);
  });

  it("§8.29 encoding a binary frame with a field over 255 bytes fails with an error, and nothing is sent", async () => {
    const long = "x".repeat(256);
    const ok255 = "y".repeat(255);
    expect(() => encodeBinaryPush("1", "t", long, new Uint8Array(1))).toThrow(FrameEncodeError);
    expect(() => encodeBinaryPush(long, "t", "e", new Uint8Array(1))).toThrow(/join_ref/);
    expect(() => encodeBinaryReply("1", "2", long, "ok", new Uint8Array(1))).toThrow(/topic/);
    expect(() => encodeBinaryReply("1", "2", "t", long, new Uint8Array(1))).toThrow(/status/);
    expect(() => encodeBinaryBroadcast("t", "é".repeat(128), new Uint8Array(1))).toThrow(/256 bytes/);
    expect(encodeBinaryBroadcast(ok255, ok255, new Uint8Array([1])).length).toBe(1 + 2 + 510 + 1);
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl));
    const got = inbox(s);
    const ch = s.channel("test:long", {});
    await joinOk(ch);
    const before = server.endpoint.stats.framesOut;
    expect(await push(ch, "long_field", {})).toEqual({ status: "error", response: { reason: "encode failed" } });
    expect(server.endpoint.stats.framesOut - before).toBe(1); // the error reply only
    expect(got.filter((m) => m.topic === "test:long" && m.event !== "phx_reply")).toEqual([]);
  });
});
