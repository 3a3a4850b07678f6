/** CHANNELS.md §8 items 1–7: connection, auth, vsn, idle timeout, heartbeats. */
import { afterEach, describe, expect, it } from "vitest";
import type { SocketConnectOption } from "phoenix";
import { RawClient, connected, disconnectAll, joinOk, phxSocket, push, upgradeStatus, waitFor } from "./support/client.js";
import { startTestServer, type TestServer } from "./support/server.js";

let server: TestServer | undefined;
afterEach(async () => {
  server?.probe.openAll();
  await disconnectAll();
  await server?.stop();
  server = undefined;
});

/** An encoder that records every message phoenix.js sends (same wire format as the default). */
function recordingEncoder(sent: Array<{ join_ref: string | null; ref: string | null; topic: string; event: string }>): Pick<SocketConnectOption, "encode"> {
  return {
    encode: ((msg: any, cb: (s: string) => void) => {
      sent.push(msg);
      return cb(JSON.stringify([msg.join_ref, msg.ref, msg.topic, msg.event, msg.payload]));
    }) as SocketConnectOption["encode"],
  };
}

describe("connection (CHANNELS.md §8)", () => {
  it("§8.1 upgrade with vsn=2.0.0 succeeds and socket params, nested ones included, reach connect as strings", async () => {
    server = await startTestServer();
    const s = phxSocket(server.socketUrl, { params: { token: "abc", n: 5, user: { id: 7, name: "ann" }, tags: ["a", "b"] } as any });
    await connected(s);
    await waitFor(() => server!.probe.connects.length === 1, "connect");
    expect(JSON.parse(JSON.stringify(server.probe.connects[0]!.params))).toEqual({ token: "abc", n: "5", user: { id: "7", name: "ann" }, tags: ["a", "b"] });
    expect(server.endpoint.stats.accepted).toBe(1);
  });

  it("§8.2 with authToken the 101 selects `phoenix` and connect gets the exact token (all paddings); without, no subprotocol", async () => {
    server = await startTestServer();
    for (const token of ["s3cr3t-token", "abcd", "abcde", "tøken é"]) {
      const s = phxSocket(server.socketUrl, { authToken: token } as any);
      await connected(s);
      expect((s as any).conn.protocol).toBe("phoenix");
      expect(server.probe.connects.at(-1)!.authToken).toBe(token);
      s.disconnect();
    }
    expect(["s3cr3t-token", "abcd", "abcde"].map((t) => Buffer.byteLength(t) % 3).sort()).toEqual([0, 1, 2]);
    const plain = phxSocket(server.socketUrl);
    await connected(plain);
    expect((plain as any).conn.protocol).toBe("");
    expect(server.probe.connects.at(-1)!.authToken).toBeUndefined();
  });

  it("§8.3 auth refusal is a 403 before the upgrade: client error + close 1006, retries, server keeps serving", async () => {
    server = await startTestServer({ endpoint: { connect: ({ authToken }) => (authToken === "good" ? {} : false) } });
    expect(await upgradeStatus(`${server.socketUrl}/websocket?vsn=2.0.0`)).toBe(403);
    const bad = phxSocket(server.socketUrl, { authToken: "bad", reconnectAfterMs: () => 20 } as any);
    const errors: unknown[] = [];
    const closes: number[] = [];
    bad.onError((e: unknown) => void errors.push(e));
    bad.onClose((e: any) => void closes.push(e.code));
    bad.connect();
    await waitFor(() => server!.endpoint.stats.rejected[403]! >= 4, "several refused retries");
    bad.disconnect();
    expect(errors.length).toBeGreaterThan(0);
    expect(String((errors[0] as any).message ?? errors[0])).toMatch(/403/);
    expect(closes[0]).toBe(1006);
    expect(server.endpoint.stats.accepted).toBe(0);
    const good = phxSocket(server.socketUrl, { authToken: "good" } as any);
    await connected(good);
    await joinOk(good.channel("test:after-refusals", {}));
  });

  it("§8.4 missing or unsupported vsn gives 400; a wrong path 404; /socket/longpoll 404", async () => {
    server = await startTestServer();
    const base = `ws://127.0.0.1:${server.port}`;
    expect(await upgradeStatus(`${base}/socket/websocket`)).toBe(400);
    expect(await upgradeStatus(`${base}/socket/websocket?vsn=1.0.0`)).toBe(400);
    expect(await upgradeStatus(`${base}/socket/websocket?vsn=2.0.1`)).toBe(400);
    expect(await upgradeStatus(`${base}/socket/websocket?vsn=2.0.0`)).toBe(101);
    expect(await upgradeStatus(`${base}/nope/websocket?vsn=2.0.0`)).toBe(404);
    expect(await upgradeStatus(`${base}/socket?vsn=2.0.0`)).toBe(404);
    expect(await upgradeStatus(`${base}/socket/longpoll?vsn=2.0.0`)).toBe(404);
    const lp = await fetch(`${server.url}/socket/longpoll?vsn=2.0.0`);
    expect(lp.status).toBe(404);
    await lp.arrayBuffer();
    expect(server.endpoint.stats.rejected).toMatchObject({ 400: 3, 404: 3 });
  });

  it("§8.5 raw: a silent connection is closed with 1001 after the idle timeout; a heartbeating phoenix.js one outlives it", async () => {
    server = await startTestServer({ endpoint: { idleTimeoutMs: 300 } });
    const live = phxSocket(server.socketUrl, { heartbeatIntervalMs: 60 });
    const closes: number[] = [];
    live.onClose((e: any) => void closes.push(e.code));
    await connected(live);
    const t0 = Date.now();
    const raw = await RawClient.open(`${server.socketUrl}/websocket?vsn=2.0.0`);
    expect(await raw.closed).toBe(1001);
    expect(raw.closeReason).toBe("idle timeout");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    // one more idle period: the heartbeating client is still there
    await new Promise((r) => setTimeout(r, 350));
    expect(closes).toEqual([]);
    expect(live.isConnected()).toBe(true);
    expect(server.endpoint.connections()).toHaveLength(1);
  });

  it("§8.6 every heartbeat, concurrent pings included, gets an ok reply with {}, its own ref and a null join_ref", async () => {
    server = await startTestServer();
    const sent: any[] = [];
    const s = phxSocket(server.socketUrl, { heartbeatIntervalMs: 40, ...recordingEncoder(sent) });
    const got: any[] = [];
    s.onMessage((m: any) => void got.push(m));
    await connected(s);
    const rtts = await Promise.all(Array.from({ length: 5 }, () => new Promise<number>((r) => s.ping(r))));
    expect(rtts).toHaveLength(5);
    await waitFor(() => sent.filter((m) => m.event === "heartbeat").length >= 8, "automatic heartbeats too");
    await waitFor(() => sent.filter((m) => m.event === "heartbeat").every((h) => got.some((m) => m.ref === h.ref)), "replies to all");
    const beats = sent.filter((m) => m.event === "heartbeat");
    expect(new Set(beats.map((b) => b.ref)).size).toBe(beats.length);
    for (const h of beats) {
      const replies = got.filter((m) => m.ref === h.ref);
      expect(replies).toEqual([{ join_ref: null, ref: h.ref, topic: "phoenix", event: "phx_reply", payload: { status: "ok", response: {} } }]);
    }
    expect(s.channels).toHaveLength(0);
  });

  it("§8.7 heartbeats are answered promptly while a join and a push on other topics are stalled", async () => {
    server = await startTestServer();
    const s = phxSocket(server.socketUrl, { timeout: 5000 });
    await connected(s);
    const busy = s.channel("test:busy", {});
    await joinOk(busy);
    const stalledPush = push(busy, "stall", { gate: "push" }, 5000);
    s.channel("test:slowjoin", { stall: "join" }).join(5000);
    await waitFor(() => server!.probe.of("join", "test:slowjoin").length === 1 && server!.probe.of("in", "test:busy").length === 1, "both stalled");
    for (let i = 0; i < 5; i++) {
      const rtt = await new Promise<number>((r) => s.ping(r));
      expect(rtt).toBeLessThan(100);
    }
    server.probe.open("push");
    expect((await stalledPush).response).toEqual({ stalled: true });
  });
});
