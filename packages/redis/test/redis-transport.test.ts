import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { Redis } from "ioredis";
import fc from "fast-check";
import { FrameDecodeError } from "@cinder/runtime";
import type { MembershipEvent, TransportLogger } from "@cinder/runtime";
import { createRedisTransport, redisChannels, RedisTransportError, ENVELOPE_VERSION } from "@cinder/redis";
import type { RedisTransport, RedisTransportOptions } from "@cinder/redis";
import { decodeEnvelope, encodeFrameEnvelope, encodeHeartbeat, shortString } from "../src/internal/envelope.js";
import { backoff } from "../src/internal/backoff.js";
import { freePort, startRedis, type RedisServer } from "../../../test/support/redis.js";
import { holdsFor, waitFor } from "../../../test/support/wait.js";
import { spawnTsxChild } from "../../../test/support/child.js";

const HB = 50;
const DOWN = 400;

interface Logged {
  level: "warn" | "error";
  message: string;
}

interface Peer {
  t: RedisTransport;
  frames: Array<{ from: string; channel: string; payload: Uint8Array }>;
  events: MembershipEvent[];
  logs: Logged[];
}

let redis: RedisServer;
let clusterSeq = 0;
const live: RedisTransport[] = [];
const clients: Redis[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  await Promise.all(live.splice(0).map((t) => t.stop()));
  for (const c of clients.splice(0)) c.disconnect();
});

afterAll(async () => {
  await redis?.stop();
});

function newCluster(): string {
  return `test-${process.pid}-${++clusterSeq}`;
}

function peer(nodeName: string, cluster: string, opts: Partial<RedisTransportOptions> = {}): Peer {
  const logs: Logged[] = [];
  const logger: TransportLogger = {
    warn: (message) => void logs.push({ level: "warn", message }),
    error: (message) => void logs.push({ level: "error", message }),
  };
  const t = createRedisTransport({
    url: redis.url,
    nodeName,
    cluster,
    heartbeatMs: HB,
    downAfterMs: DOWN,
    reconnect: { initialMs: 20, maxMs: 200 },
    startTimeoutMs: 5000,
    logger,
    ...opts,
  });
  live.push(t);
  const p: Peer = { t, frames: [], events: [], logs };
  t.onFrame((from, channel, payload) => p.frames.push({ from, channel, payload }));
  t.onMembership((e) => p.events.push(e));
  return p;
}

async function pair(cluster = newCluster()): Promise<[Peer, Peer]> {
  const a = peer("a", cluster);
  const b = peer("b", cluster);
  await Promise.all([a.t.start(), b.t.start()]);
  await waitFor(() => a.t.members().includes("b") && b.t.members().includes("a"), { timeoutMs: 3000, what: "a and b see each other" });
  return [a, b];
}

function rawClient(url = redis.url): Redis {
  const c = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  c.on("error", () => {});
  clients.push(c);
  return c;
}

const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const seqOf = (p: Uint8Array) => new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(0);

/** Per node: up/down alternate, starting with up. */
function alternates(events: MembershipEvent[], node: string): boolean {
  const mine = events.filter((e) => e.node === node).map((e) => e.type);
  return mine.every((t, i) => t === (i % 2 === 0 ? "up" : "down"));
}

describe("envelope codec (wire format of the Redis transport)", () => {
  const from = shortString("nodeName", "node-1");
  const inc = shortString("incarnation", "inc-ü");

  it("round-trips heartbeats and frames (unicode names, empty and binary payloads)", () => {
    expect(decodeEnvelope(encodeHeartbeat(from, inc, 7))).toEqual({ kind: "heartbeat", from: "node-1", incarnation: "inc-ü", epoch: 7 });
    const f = decodeEnvelope(encodeFrameEnvelope(from, inc, 3, "pubsub:ü", new Uint8Array([0, 255, 1])));
    expect(f).toMatchObject({ kind: "frame", from: "node-1", incarnation: "inc-ü", epoch: 3, channel: "pubsub:ü" });
    expect(f.kind === "frame" && [...f.payload]).toEqual([0, 255, 1]);
    const e = decodeEnvelope(encodeFrameEnvelope(from, inc, 0, "", new Uint8Array(0)));
    expect(e.kind === "frame" && e.payload.length).toBe(0);
    expect(encodeHeartbeat(from, inc, 1)[0]).toBe(ENVELOPE_VERSION);
  });

  it("unknown version, truncation, bad kind, bad UTF-8 and trailing bytes are FrameDecodeErrors", () => {
    const good = encodeFrameEnvelope(from, inc, 1, "ch", new Uint8Array([1, 2]));
    const v9 = Buffer.from(good);
    v9[0] = 9;
    expect(() => decodeEnvelope(v9)).toThrow(expect.objectContaining({ name: "FrameDecodeError", reason: "unknown-version", version: 9 }));
    expect(() => decodeEnvelope(good.subarray(0, 9))).toThrow(FrameDecodeError);
    const badKind = Buffer.from(good);
    badKind[1] = 7;
    expect(() => decodeEnvelope(badKind)).toThrow(/kind 7/);
    const badUtf8 = Buffer.from(good);
    badUtf8[7] = 0xff; // first byte of the sender name
    expect(() => decodeEnvelope(badUtf8)).toThrow(/UTF-8/);
    expect(() => decodeEnvelope(Buffer.concat([encodeHeartbeat(from, inc, 1), Buffer.from([0])]))).toThrow(/trailing/);
    expect(() => decodeEnvelope(new Uint8Array(0))).toThrow(expect.objectContaining({ reason: "empty" }));
  });

  it("random bytes never throw anything but FrameDecodeError (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), fc.boolean(), (bytes, v1) => {
        if (v1 && bytes.length > 0) bytes[0] = ENVELOPE_VERSION;
        try {
          decodeEnvelope(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(FrameDecodeError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("names longer than 255 bytes are refused up front", () => {
    expect(() => shortString("nodeName", "x".repeat(256))).toThrow(RangeError);
    expect(() => createRedisTransport({ nodeName: "é".repeat(128) })).toThrow(/255 bytes/);
  });

  it("backoff grows exponentially, is capped, and never gives up", () => {
    const f = backoff({ initialMs: 10, maxMs: 100 }, () => 0);
    expect([1, 2, 3, 4, 5, 50, 5000].map(f)).toEqual([10, 20, 40, 80, 100, 100, 100]);
    expect(backoff({ initialMs: 10, maxMs: 100 }, () => 0.999)(10)).toBeLessThanOrEqual(120);
  });
});

describe("RedisTransport over a real redis-server", () => {
  it("membership: each side sees the other up with its incarnation", async () => {
    const [a, b] = await pair();
    expect(a.events).toEqual([{ type: "up", node: "b", incarnation: b.t.incarnation }]);
    expect(b.events).toEqual([{ type: "up", node: "a", incarnation: a.t.incarnation }]);
    expect(a.t.incarnation).not.toBe(b.t.incarnation);
    expect(a.t.stats().connected).toBe(true);
  });

  it("node-addressed and broadcast frames arrive; broadcast skips the sender; sendTo(self) is local and async", async () => {
    const cluster = newCluster();
    const [a, b] = await pair(cluster);
    const c = peer("c", cluster);
    await c.t.start();
    await waitFor(() => a.t.members().length === 2 && c.t.members().length === 2, { timeoutMs: 3000, what: "3 nodes up" });

    a.t.sendTo("b", "direct", new Uint8Array([1]));
    a.t.broadcast("all", new Uint8Array([2]));
    a.t.sendTo("a", "self", new Uint8Array([3]));
    expect(a.frames).toHaveLength(0); // not synchronous
    await waitFor(() => b.frames.length === 2 && c.frames.length === 1 && a.frames.length === 1, { what: "deliveries" });
    expect(b.frames.map((f) => [f.from, f.channel, f.payload[0]])).toEqual([["a", "direct", 1], ["a", "all", 2]]);
    expect(c.frames.map((f) => [f.from, f.channel, f.payload[0]])).toEqual([["a", "all", 2]]);
    expect(a.frames.map((f) => [f.from, f.channel, f.payload[0]])).toEqual([["a", "self", 3]]);
    // the broadcast does not come back to its sender (it would have arrived before this frame)
    a.t.sendTo("b", "marker", new Uint8Array([4]));
    await waitFor(() => b.frames.length === 3);
    expect(a.frames).toHaveLength(1);
    expect(a.t.stats()).toMatchObject({ framesOut: 4, framesIn: 1, decodeErrors: 0 });
  });

  it("FIFO per pair: 2000 frames mixing sendTo, broadcast and channels arrive in send order", async () => {
    const [a, b] = await pair();
    const N = 2000;
    for (let i = 0; i < N; i++) {
      if (i % 3 === 0) a.t.broadcast("bc", u32(i));
      else a.t.sendTo("b", `ch${i % 5}`, u32(i));
    }
    await waitFor(() => b.frames.length === N, { timeoutMs: 10_000, what: `${N} frames` });
    expect(b.frames.map((f) => seqOf(f.payload))).toEqual(Array.from({ length: N }, (_, i) => i));
  });

  it("sendTo an unknown node is dropped and counted", async () => {
    const [a] = await pair();
    a.t.sendTo("nobody", "x", new Uint8Array([1]));
    expect(a.t.stats()).toMatchObject({ dropped: 1, framesOut: 0 });
  });

  it("a stopped peer is reported down exactly once, after downAfterMs", async () => {
    const [a, b] = await pair();
    const t0 = performance.now();
    await b.t.stop();
    await waitFor(() => a.events.some((e) => e.type === "down"), { timeoutMs: 3000, what: "b down" });
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(DOWN - HB - 10);
    expect(a.events.at(-1)).toEqual({ type: "down", node: "b", incarnation: b.t.incarnation });
    await holdsFor(() => a.events.filter((e) => e.type === "down").length === 1, DOWN, "exactly one down");
    expect(a.t.members()).toEqual([]);
  });

  it("clusters sharing one Redis never see each other", async () => {
    const [a] = await pair();
    const [x] = await pair();
    a.t.broadcast("x", new Uint8Array([1]));
    x.t.broadcast("x", new Uint8Array([2]));
    await holdsFor(() => a.t.members().join() === "b" && x.t.members().join() === "b", 3 * HB, "separate memberships");
  });

  it("garbage published on our channels: counted as decode errors and logged, never a crash; valid frames still flow", async () => {
    const cluster = newCluster();
    const [a, b] = await pair(cluster);
    const raw = rawClient();
    const ch = redisChannels(cluster, "b");
    await raw.publish(ch.node, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    await raw.publish(ch.all, Buffer.from("not a frame at all"));
    const v9 = encodeFrameEnvelope(shortString("n", "a"), shortString("i", a.t.incarnation), 1, "x", new Uint8Array([1]));
    v9[0] = 9;
    await raw.publish(ch.node, v9);
    await raw.publish(ch.node, Buffer.alloc(0));
    await waitFor(() => b.t.stats().decodeErrors === 4, { what: "4 decode errors" });
    expect(a.t.stats().decodeErrors).toBe(1); // a also subscribes to the broadcast channel
    expect(b.logs.some((l) => /undecodable/.test(l.message))).toBe(true);
    a.t.sendTo("b", "after", new Uint8Array([7]));
    await waitFor(() => b.frames.some((f) => f.channel === "after"));
    expect(b.frames.map((f) => f.channel)).toEqual(["after"]);
    expect(b.t.members()).toEqual(["a"]);
  });

  it("a handler that throws is counted and logged; delivery goes on", async () => {
    const [a, b] = await pair();
    b.t.onFrame(() => {
      throw new Error("handler boom");
    });
    a.t.sendTo("b", "x", new Uint8Array([1]));
    a.t.sendTo("b", "x", new Uint8Array([2]));
    await waitFor(() => b.frames.length === 2);
    expect(b.t.stats().handlerErrors).toBe(2);
    expect(b.logs.some((l) => /frame handler/.test(l.message))).toBe(true);
  });

  it("redis restarted mid-test: broadcasts resume, frames sent during the outage are dropped and counted, nothing crashes", async () => {
    const [a, b] = await pair();
    a.t.broadcast("before", new Uint8Array([1]));
    await waitFor(() => b.frames.some((f) => f.channel === "before"));

    await redis.kill();
    await waitFor(() => !a.t.stats().connected && !b.t.stats().connected, { timeoutMs: 3000, what: "both see Redis gone" });
    const droppedBefore = a.t.stats().dropped;
    for (let i = 0; i < 10; i++) {
      a.t.broadcast("during", new Uint8Array([i])); // never throws
      a.t.sendTo("b", "during", new Uint8Array([i]));
    }
    expect(a.t.stats().dropped).toBeGreaterThanOrEqual(droppedBefore + 10);
    await redis.start();

    await waitFor(() => a.t.stats().connected && b.t.stats().connected, { timeoutMs: 5000, what: "both reconnected" });
    // After reconnecting, b reports a down until a's next heartbeat; keep broadcasting until through.
    let n = 0;
    await waitFor(
      () => {
        a.t.broadcast("after", new Uint8Array([n++ & 0xff]));
        return b.frames.some((f) => f.channel === "after");
      },
      { timeoutMs: 5000, intervalMs: 10, what: "a broadcast after the restart reaches b" },
    );
    expect(b.frames.some((f) => f.channel === "during")).toBe(false);
    expect(a.t.stats().reconnects).toBeGreaterThanOrEqual(1);
    expect(b.t.stats().reconnects).toBeGreaterThanOrEqual(1);
    // membership: a was reported down then up again, same incarnation, alternating
    const aSeenByB = b.events.filter((e) => e.node === "a");
    expect(aSeenByB.length).toBeGreaterThanOrEqual(3);
    expect(aSeenByB.every((e) => e.incarnation === a.t.incarnation)).toBe(true);
    expect(alternates(b.events, "a")).toBe(true);
    await waitFor(() => b.t.members().includes("a") && a.t.members().includes("b"), { timeoutMs: 2000 });
    expect(b.logs.some((l) => /lost Redis/.test(l.message))).toBe(true);
    expect(b.logs.some((l) => /reconnected/.test(l.message))).toBe(true);
    // node-addressed frames resume too
    b.t.sendTo("a", "direct-after", new Uint8Array([9]));
    await waitFor(() => a.frames.some((f) => f.channel === "direct-after"));
  });

  it("one node's subscription dropped alone (CLIENT KILL): it reports its peers down then up, and they see it down then up", async () => {
    const cluster = newCluster();
    const [a, b] = await pair(cluster);
    const raw = rawClient();
    const list = String(await raw.call("CLIENT", "LIST"));
    const line = list.split("\n").find((l) => l.includes(` name=cinder:${cluster}:b:sub `));
    expect(line, "b's subscriber connection is listed by name").toBeDefined();
    const id = /(?:^|\s)id=(\d+)/.exec(line!)![1]!;
    await raw.call("CLIENT", "KILL", "ID", id);
    await waitFor(() => b.t.stats().reconnects === 1, { timeoutMs: 3000, what: "b reconnected" });
    // b may have missed frames from a while deaf: a down then up again (same incarnation).
    await waitFor(() => b.events.filter((e) => e.node === "a").length >= 3 && b.t.members().includes("a"), { timeoutMs: 2000, what: "b: a down, up" });
    expect(b.events.slice(0, 3).map((e) => e.type)).toEqual(["up", "down", "up"]);
    // a's connection never dropped, but b's new connection epoch tells it b may have missed its frames.
    await waitFor(() => a.events.filter((e) => e.node === "b").length >= 3, { timeoutMs: 2000, what: "a: b down, up" });
    expect(a.events.map((e) => [e.type, e.incarnation])).toEqual([
      ["up", b.t.incarnation],
      ["down", b.t.incarnation],
      ["up", b.t.incarnation],
    ]);
    expect(a.t.stats().reconnects).toBe(0);
  });

  it("redis unreachable at start: start() rejects with RedisTransportError after startTimeoutMs, nothing leaks", async () => {
    const port = await freePort();
    const p = peer("lonely", newCluster(), { url: `redis://127.0.0.1:${port}`, startTimeoutMs: 400 });
    const t0 = performance.now();
    const err = await p.t.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RedisTransportError);
    expect(String((err as Error).message)).toMatch(/within 400 ms.*ECONNREFUSED/);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(390);
    p.t.broadcast("x", new Uint8Array([1]));
    expect(p.t.stats()).toMatchObject({ connected: false, dropped: 1 });
    await expect(p.t.start()).rejects.toThrow(/stopped/);
  });

  it("stop() during a start() that waits for Redis: start rejects at once, not at its timeout", async () => {
    const port = await freePort();
    const p = peer("impatient", newCluster(), { url: `redis://127.0.0.1:${port}`, startTimeoutMs: 10_000 });
    const t0 = performance.now();
    const starting = p.t.start();
    setTimeout(() => void p.t.stop(), 50);
    await expect(starting).rejects.toThrow(RedisTransportError);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe("RedisTransport: auth and TLS options pass through to ioredis", () => {
  it("requirepass server: username/password in redisOptions or in the URL work; a wrong password fails start() naming the error", async () => {
    const secured = await startRedis({ args: ["--requirepass", "s3cret"] });
    try {
      const cluster = newCluster();
      const a = peer("a", cluster, { url: secured.url, redisOptions: { username: "default", password: "s3cret" } });
      const b = peer("b", cluster, { url: secured.url.replace("redis://", "redis://:s3cret@") });
      await Promise.all([a.t.start(), b.t.start()]);
      await waitFor(() => a.t.members().includes("b"), { timeoutMs: 3000 });
      a.t.sendTo("b", "x", new Uint8Array([1]));
      await waitFor(() => b.frames.length === 1);

      const bad = peer("c", cluster, { url: secured.url, redisOptions: { password: "wrong" }, startTimeoutMs: 500 });
      await expect(bad.t.start()).rejects.toThrow(/WRONGPASS|NOAUTH/);
      expect(bad.t.stats().connectionErrors).toBeGreaterThan(0);
    } finally {
      await Promise.all(live.splice(0).map((t) => t.stop()));
      await secured.stop();
    }
  });

  it("TLS (rediss:// with a CA in redisOptions.tls): frames flow; without the CA start() fails", async () => {
    const secure = await startRedis({ tls: true });
    try {
      const cluster = newCluster();
      const a = peer("a", cluster, { url: secure.url, redisOptions: { tls: { ca: secure.ca! } } });
      const b = peer("b", cluster, { url: secure.url, redisOptions: { tls: { ca: secure.ca! } } });
      await Promise.all([a.t.start(), b.t.start()]);
      await waitFor(() => b.t.members().includes("a"), { timeoutMs: 3000 });
      a.t.broadcast("x", new Uint8Array([42]));
      await waitFor(() => b.frames.length === 1);
      expect(b.frames[0]!.payload[0]).toBe(42);

      const untrusting = peer("c", cluster, { url: secure.url, startTimeoutMs: 500 });
      await expect(untrusting.t.start()).rejects.toThrow(/certificate/i);
    } finally {
      await Promise.all(live.splice(0).map((t) => t.stop()));
      await secure.stop();
    }
  });
});

// ---- two OS processes ----------------------------------------------------------------------

interface ChildNode {
  proc: ChildProcessWithoutNullStreams;
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
}

function spawnEchoNode(nodeName: string, cluster: string): ChildNode {
  const c = spawnTsxChild(new URL("./fixtures/echo-node.ts", import.meta.url), {
    REDIS_URL: redis.url,
    NODE_NAME: nodeName,
    CLUSTER: cluster,
    HEARTBEAT_MS: String(HB),
    DOWN_AFTER_MS: String(DOWN),
  });
  const exited = new Promise<number | null>((resolve) => c.proc.on("exit", (code) => resolve(code)));
  children.push(c.proc);
  return { ...c, exited };
}

const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

async function childReady(c: ChildNode): Promise<{ pid: number; incarnation: string }> {
  const ready = await waitFor(() => c.lines.find((l) => l.event === "ready") ?? (c.proc.exitCode !== null ? "exited" : undefined), {
    timeoutMs: 15_000,
    what: "child node ready",
  }).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}\nchild stderr:\n${c.stderr()}`);
  });
  if (ready === "exited") throw new Error(`child exited with ${c.proc.exitCode} before ready:\n${c.stderr()}`);
  return ready as unknown as { pid: number; incarnation: string };
}

describe("two OS processes on one Redis cluster", () => {
  it("a child process joins, echoes node-addressed frames in order and broadcasts; SIGKILL → down exactly once; respawn → new incarnation", async () => {
    const cluster = newCluster();
    const p = peer("parent", cluster);
    await p.t.start();
    const child = spawnEchoNode("child", cluster);
    const ready = await childReady(child);
    expect(ready.pid).not.toBe(process.pid);
    const up = await waitFor(() => p.events.find((e) => e.type === "up" && e.node === "child"), { timeoutMs: 5000, what: "parent sees child" });
    expect(up.incarnation).toBe(ready.incarnation);

    // node-addressed round trip, FIFO both ways
    const N = 300;
    for (let i = 0; i < N; i++) p.t.sendTo("child", "echo", u32(i));
    await waitFor(() => p.frames.filter((f) => f.channel === "echo").length === N, { timeoutMs: 10_000, what: "echoes" });
    const echoes = p.frames.filter((f) => f.channel === "echo");
    expect(echoes.every((f) => f.from === "child")).toBe(true);
    expect(echoes.map((f) => seqOf(f.payload))).toEqual(Array.from({ length: N }, (_, i) => i));

    // broadcast round trip
    p.t.broadcast("echo-broadcast", u32(12345));
    await waitFor(() => p.frames.some((f) => f.channel === "echo-broadcast"), { what: "broadcast echo" });
    expect(seqOf(p.frames.find((f) => f.channel === "echo-broadcast")!.payload)).toBe(12345);
    // the child saw the parent up too
    expect(child.lines.some((l) => l.event === "membership" && l.type === "up" && l.node === "parent")).toBe(true);

    // crash: SIGKILL, no goodbye
    const t0 = performance.now();
    child.proc.kill("SIGKILL");
    await child.exited;
    await waitFor(() => p.events.some((e) => e.type === "down" && e.node === "child"), { timeoutMs: 3000, what: "child down" });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(DOWN - HB - 10);
    await holdsFor(() => p.events.filter((e) => e.type === "down").length === 1, DOWN, "exactly one down");
    p.t.sendTo("child", "echo", u32(1));
    expect(p.t.stats().dropped).toBeGreaterThanOrEqual(1);

    // respawn under the same name: a new incarnation, seen up
    const again = spawnEchoNode("child", cluster);
    const ready2 = await childReady(again);
    expect(ready2.incarnation).not.toBe(ready.incarnation);
    await waitFor(() => p.events.filter((e) => e.type === "up").length === 2, { timeoutMs: 5000, what: "new child up" });
    expect(p.events.map((e) => [e.type, e.incarnation])).toEqual([
      ["up", ready.incarnation],
      ["down", ready.incarnation],
      ["up", ready2.incarnation],
    ]);
    p.t.sendTo("child", "exit", new Uint8Array(0));
    expect(await again.exited).toBe(0);
  });
});
