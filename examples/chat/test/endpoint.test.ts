/**
 * Endpoint behaviour beyond the §8 checklist: channel and rate limits, origin checks, gradual
 * drain, the join-timeout sequence (§4.2), stuck channels, and presence keys such as `__proto__`.
 */
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Presence } from "phoenix";
import { RawClient, collect, connected, disconnectAll, inbox, joinOk, joinResult, phxSocket, push, upgradeStatus, waitFor } from "./support/client.js";
import { startTestServer, type TestServer } from "./support/server.js";

let server: TestServer | undefined;
afterEach(async () => {
  server?.probe.openAll();
  await disconnectAll();
  await server?.stop();
  server = undefined;
});

const rawUrl = () => `${server!.socketUrl}/websocket?vsn=2.0.0`;

describe("endpoint limits and lifecycle details", () => {
  it("refuses joins past maxChannels with 'too many channels joined'; a leave frees a slot", async () => {
    server = await startTestServer({ endpoint: { maxChannels: 3 } });
    const raw = await RawClient.open(rawUrl());
    for (const i of [1, 2, 3]) expect((await raw.call([String(i), String(i), `test:c${i}`, "phx_join", {}]))[4]).toMatchObject({ status: "ok" });
    expect(await raw.call(["4", "4", "test:c4", "phx_join", {}])).toEqual(["4", "4", "test:c4", "phx_reply", { status: "error", response: { reason: "too many channels joined" } }]);
    await raw.call(["1", "5", "test:c1", "phx_leave", {}]);
    await raw.next((f) => f[3] === "phx_close" && f[2] === "test:c1", "close of c1");
    expect((await raw.call(["6", "6", "test:c4", "phx_join", {}]))[4]).toMatchObject({ status: "ok" });
    raw.close();
  });

  it("closes a connection that floods past the message rate with 1013, and only that one", async () => {
    server = await startTestServer({ endpoint: { ratePerSecond: 50, rateBurst: 20 } });
    const calm = await connected(phxSocket(server.socketUrl));
    const ch = calm.channel("test:calm", {});
    await joinOk(ch);
    const raw = await RawClient.open(rawUrl());
    for (let i = 0; i < 60; i++) raw.send([null, String(i), "phoenix", "heartbeat", {}]);
    expect(await raw.closed).toBe(1013);
    expect(raw.closeReason).toBe("rate limit");
    expect(raw.matching((f) => f[3] === "phx_reply").length).toBeLessThanOrEqual(21);
    expect(server.endpoint.stats.rateLimited).toBe(1);
    expect(await push(ch, "echo", { fine: true })).toEqual({ status: "ok", response: { fine: true } });
  });

  it("checks browsers' Origin against the allow-list; a missing Origin is allowed", async () => {
    server = await startTestServer({ endpoint: { checkOrigin: ["https://chat.example"] } });
    const url = rawUrl();
    const withOrigin = (origin: string) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, { origin });
        ws.on("unexpected-response", (_q, res) => (resolve(res.statusCode ?? 0), ws.terminate()));
        ws.on("open", () => (resolve(101), ws.terminate()));
        ws.on("error", () => {});
      });
    expect(await withOrigin("https://evil.example")).toBe(403);
    expect(await withOrigin("https://chat.example")).toBe(101);
    expect(await upgradeStatus(url)).toBe(101);
    expect(server.probe.connects).toHaveLength(2); // refused before the connect handler ran
  });

  it("drains gradually: batches of closes spread over the drain period, all with 1012, new upgrades refused with 503", async () => {
    server = await startTestServer();
    const clients = await Promise.all(Array.from({ length: 6 }, () => RawClient.open(rawUrl())));
    const closedAt: number[] = [];
    for (const c of clients) void c.closed.then(() => closedAt.push(Date.now()));
    const t0 = Date.now();
    const drained = server.endpoint.drain({ overMs: 300, batches: 3 });
    await waitFor(() => closedAt.length >= 1, "first batch");
    expect(await upgradeStatus(rawUrl())).toBe(503);
    await drained;
    await waitFor(() => closedAt.length === 6, "all closed");
    expect(clients.map((c) => c.closeCode)).toEqual(Array(6).fill(1012));
    expect(Math.max(...closedAt) - t0).toBeGreaterThanOrEqual(180);
    expect(Math.min(...closedAt) - t0).toBeLessThan(150);
  });

  it("a node stopped without a drain still closes its sockets with 1012 (never 1011 or 1000)", async () => {
    server = await startTestServer();
    const raw = await RawClient.open(rawUrl());
    await raw.call(["1", "1", "test:stop", "phx_join", {}]);
    await server.node.stop();
    expect(await raw.closed).toBe(1012);
    expect(server.endpoint.stats.internalErrors).toBe(0);
  });

  it("§4.2 join timeout: the client's leave after a slow join leaves that join once it succeeds; the rejoin is fresh", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl, { rejoinAfterMs: () => 30 }));
    const got = inbox(s);
    const ch = s.channel("test:slow", { stall: "slow" });
    const timeouts: number[] = [];
    ch.join(80).receive("timeout", () => void timeouts.push(1));
    await waitFor(() => timeouts.length === 1, "join timeout");
    const J1 = server.probe.of("join", "test:slow")[0]!.joinRef;
    server.probe.open("slow");
    await waitFor(() => server!.probe.of("terminate", "test:slow").length >= 1, "the late join was left");
    expect(server.probe.of("terminate", "test:slow")[0]).toMatchObject({ joinRef: J1, reason: "leave" });
    await waitFor(() => ch.state === "joined", "rejoined");
    expect(ch.joinRef()).not.toBe(J1);
    expect(server.endpoint.connections()[0]!.topics.get("test:slow")!.joinRef).toBe(ch.joinRef());
    const ordered = got.filter((m) => m.topic === "test:slow" && m.join_ref === J1).map((m) => m.event);
    expect(ordered).toEqual(["phx_reply", "phx_reply", "phx_close"]); // join ok, leave ok, close
    expect(await push(ch, "echo", { after: 1 })).toEqual({ status: "ok", response: { after: 1 } });
  });

  it("a channel stuck in a handler is killed when it must leave or make room for a duplicate join", async () => {
    server = await startTestServer({ endpoint: { channelShutdownMs: 100 } });
    const raw = await RawClient.open(rawUrl());
    await raw.call(["1", "1", "test:stuck", "phx_join", { user: "sam" }]);
    raw.send(["1", "2", "test:stuck", "stall", { gate: "never" }]);
    await waitFor(() => server!.probe.of("in", "test:stuck").length === 1, "stalled");
    raw.send(["3", "3", "test:stuck", "phx_join", { user: "sam" }]);
    const ok = await raw.next((f) => f[1] === "3" && f[3] === "phx_reply", "second join");
    expect(ok[4]).toMatchObject({ status: "ok" });
    expect(raw.matching((f) => f[3] === "phx_close")).toEqual([["1", "1", "test:stuck", "phx_close", {}]]);
    await waitFor(() => server!.presence.list("test:stuck").sam?.metas.length === 1, "one meta");
    raw.send(["3", "4", "test:stuck", "stall", { gate: "never2" }]);
    await waitFor(() => server!.probe.of("in", "test:stuck").length === 2, "stalled again");
    expect(await raw.call(["3", "5", "test:stuck", "phx_leave", {}])).toEqual(["3", "5", "test:stuck", "phx_reply", { status: "ok", response: {} }]);
    await waitFor(() => server!.presence.list("test:stuck").sam === undefined && server!.pubsub.subscriberCount("test:stuck") === 0, "cleaned up");
    raw.close();
  });

  it("presence keys such as __proto__ are ordinary keys on the wire and in phoenix.js Presence", async () => {
    server = await startTestServer();
    const a = await connected(phxSocket(server.socketUrl));
    const ch = a.channel("room:proto", { user: "__proto__" });
    const p = new Presence(ch);
    await joinOk(ch);
    const b = await connected(phxSocket(server.socketUrl));
    const chB = b.channel("room:proto", { user: "constructor" });
    const pb = new Presence(chB);
    const diffs = collect(ch, "presence_diff");
    await joinOk(chB);
    await waitFor(() => (pb.list((k: string) => k) as string[]).length === 2 && diffs.length >= 1, "both listed");
    expect((pb.list((k: string) => k) as string[]).sort()).toEqual(["__proto__", "constructor"]);
    expect((p.list((k: string) => k) as string[]).sort()).toEqual(["__proto__", "constructor"]);
    expect(Object.keys(server.presence.list("room:proto")).sort()).toEqual(["__proto__", "constructor"]);
    expect(({} as any).metas).toBeUndefined();
    expect(await joinResult(a.channel("room:proto2", { user: "ok" }))).toMatchObject({ status: "ok" });
  });
});
