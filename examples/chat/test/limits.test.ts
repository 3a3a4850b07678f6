/** CHANNELS.md §8 items 35–40: restarts and close codes, teardown on every kind of close, bad frames, limits. */
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Presence, Socket as Socket1816, type Channel, type Socket, type SocketConnectOption } from "phoenix";
import { Socket as Socket1812 } from "phoenix1812";
import { Socket as Socket17 } from "phoenix17";
import { RawClient, collect, connected, disconnectAll, inbox, joinOk, phxSocket, push, waitFor } from "./support/client.js";
import { startTestServer, type TestServer } from "./support/server.js";

const servers: TestServer[] = [];
const extraSockets: Socket[] = [];
afterEach(async () => {
  for (const s of extraSockets.splice(0)) s.disconnect();
  await disconnectAll();
  for (const s of servers.splice(0)) {
    s.probe.openAll();
    await s.stop();
  }
});

async function start(opts: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const s = await startTestServer(opts);
  servers.push(s);
  return s;
}

const rawUrl = (s: TestServer) => `${s.socketUrl}/websocket?vsn=2.0.0`;

describe("close codes and limits (CHANNELS.md §8)", () => {
  it("§8.35 a restart closes with 1012; phoenix.js 1.8.16, 1.8.12 (and 1.7.23) reconnect and rejoin; no server path closes with 1000", async () => {
    const first = await start();
    const port = first.port;
    const kinds = [
      ["1.8.16", Socket1816],
      ["1.8.12", Socket1812],
      ["1.7.23", Socket17],
    ] as const;
    const cs: Array<{ version: string; s: Socket; ch: Channel; closes: number[]; J1: string }> = [];
    for (const [version, S] of kinds) {
      const s = new S(first.socketUrl, { transport: WebSocket as unknown as SocketConnectOption["transport"], timeout: 1000, reconnectAfterMs: () => 20, rejoinAfterMs: () => 20 });
      extraSockets.push(s);
      const closes: number[] = [];
      s.onClose((e: any) => void closes.push(e.code));
      await connected(s);
      const ch = s.channel("test:restart", { v: version });
      await joinOk(ch);
      cs.push({ version, s, ch, closes, J1: ch.joinRef() });
    }
    await first.stop();
    servers.splice(servers.indexOf(first), 1);
    expect(first.endpoint.stats.closes).toEqual({ 1012: 3 });
    const second = await start({ port });
    await waitFor(() => cs.every((c) => c.ch.state === "joined" && c.ch.joinRef() !== c.J1), "all versions rejoined", 10_000);
    expect(second.probe.of("join", "test:restart").map((c) => (c.payload as any).v).sort()).toEqual(["1.7.23", "1.8.12", "1.8.16"]);
    for (const c of cs) expect(c.closes[0]).toBe(1012);
    for (const c of cs) expect(await push(c.ch, "echo", { v: c.version })).toEqual({ status: "ok", response: { v: c.version } });
    // the connection layer refuses to close with 1000 at all
    expect(() => second.endpoint.connections()[0]!.close(1000, "no")).toThrow(/1000/);
    expect(second.endpoint.stats.closes[1000]).toBeUndefined();
    expect(first.endpoint.stats.closes[1000]).toBeUndefined();
  });

  it("§8.36 disconnect() (1005), a heartbeat-timeout close (1000) and an abrupt drop (1006) all remove the connection's subscriptions and metas", async () => {
    const server = await start({ endpoint: { hooks: { heartbeat: (conn) => conn.params.hb !== "withhold" } } });
    const cases: Array<[string, number, object, (s: Socket) => void]> = [
      ["disconnect", 1005, {}, (s) => s.disconnect()],
      ["heartbeat timeout", 1000, { params: { hb: "withhold" }, heartbeatIntervalMs: 40 }, () => {}],
      ["drop", 1006, {}, (s) => (s as any).conn._socket.destroy()],
    ];
    for (const [name, code, opts, trigger] of cases) {
      const topic = `test:gone-${code}`;
      const s = await connected(phxSocket(server.socketUrl, { reconnectAfterMs: () => 60_000, ...opts }));
      const ch = s.channel(topic, { user: name });
      await joinOk(ch);
      await waitFor(() => server.presence.list(topic)[name], `${name}: tracked`);
      expect(server.pubsub.subscriberCount(topic)).toBe(1);
      const endedBefore = server.endpoint.stats.ended[code] ?? 0;
      trigger(s);
      await waitFor(() => (server.endpoint.stats.ended[code] ?? 0) === endedBefore + 1, `${name}: connection ended with ${code}`);
      await waitFor(() => server.presence.list(topic)[name] === undefined && server.pubsub.subscriberCount(topic) === 0, `${name}: cleaned up`);
      expect(server.probe.of("terminate", topic).map((c) => c.reason)).toEqual(["transport_closed"]);
      s.disconnect();
    }
    await waitFor(() => server.endpoint.connections().length === 0, "no connections left");
  });

  it("§8.37 raw: invalid JSON, a 4-element array, a non-string topic, a kind-1 binary frame and a truncated header each close only their connection with 1007", async () => {
    const server = await start();
    const s = await connected(phxSocket(server.socketUrl));
    const ch = s.channel("test:bystander", {});
    await joinOk(ch);
    const samples: Array<[string, string | Buffer]> = [
      ["invalid JSON", '["1","1","t","e",{'],
      ["4-element array", '["1","1","test:x","phx_join"]'],
      ["non-string topic", '["1","1",5,"phx_join",{}]'],
      ["empty event", '["1","1","test:x","",{}]'],
      ["numeric ref", '["1",1,"test:x","e",{}]'],
      ["object frame (V1 style)", '{"topic":"t","event":"e","payload":{},"ref":"1"}'],
      ["binary kind 1", Buffer.from([1, 1, 1, 1, 2, ...Buffer.from("11tok")])],
      ["truncated binary header", Buffer.from([0, 1, 1])],
      ["binary lengths past the end", Buffer.from([0, 1, 1, 10, 4, ...Buffer.from("11abc")])],
      ["binary field not UTF-8", Buffer.from([0, 1, 1, 2, 1, 0x31, 0x32, 0xc3, 0x28, 0x65, 9])],
    ];
    for (const [what, frame] of samples) {
      const raw = await RawClient.open(rawUrl(server));
      raw.send(frame);
      expect([what, await raw.closed]).toEqual([what, 1007]);
      if (typeof frame === "string") expect(raw.closeReason).toBe("malformed frame");
    }
    // text that is not UTF-8 (ws checks it)
    const raw = await RawClient.open(rawUrl(server));
    raw.ws.send(Buffer.from([0x5b, 0xff, 0xfe, 0x5d]), { binary: false });
    expect(await raw.closed).toBe(1007);
    expect(server.endpoint.stats.malformed).toBe(samples.length + 1);
    expect(await push(ch, "echo", { alive: true })).toEqual({ status: "ok", response: { alive: true } });
    expect(server.endpoint.connections()).toHaveLength(1);
    expect(server.endpoint.stats.internalErrors).toBe(0);
  });

  it("§8.38 a push with a non-object payload gets the error reply 'invalid payload', and the channel stays joined", async () => {
    const server = await start();
    const s = await connected(phxSocket(server.socketUrl));
    const got = inbox(s);
    const ch = s.channel("test:payload", {});
    await joinOk(ch);
    for (const bad of ["str", 42, [1, 2], true]) {
      expect(await push(ch, "echo", bad as any)).toEqual({ status: "error", response: { reason: "invalid payload" } });
    }
    expect(ch.state).toBe("joined");
    expect(await push(ch, "echo", { fine: 1 })).toEqual({ status: "ok", response: { fine: 1 } });
    expect(server.probe.of("in", "test:payload")).toHaveLength(1);
    const replies = got.filter((m) => m.event === "phx_reply" && m.payload.status === "error");
    for (const r of replies) expect(r.join_ref).toBe(ch.joinRef());
    // raw, with a null payload and no ref: nothing to answer, connection kept
    const raw = await RawClient.open(rawUrl(server));
    raw.send(["1", null, "test:payload", "echo", null]);
    expect(await raw.call(["1", "2", "test:payload", "echo", "x"])).toEqual(["1", "2", "test:payload", "phx_reply", { status: "error", response: { reason: "invalid payload" } }]);
    raw.close();
  });

  it("§8.39 a frame over the size limit closes its connection with 1009; phoenix.js reconnects and rejoins; others are unaffected", async () => {
    const server = await start({ endpoint: { maxFrameBytes: 4096 } });
    const big = await connected(phxSocket(server.socketUrl));
    const closes: number[] = [];
    big.onClose((e: any) => void closes.push(e.code));
    const ch = big.channel("test:size", {});
    await joinOk(ch);
    const J1 = ch.joinRef();
    const other = await connected(phxSocket(server.socketUrl));
    const och = other.channel("test:size", {});
    await joinOk(och);
    const otherCloses: number[] = [];
    other.onClose((e: any) => void otherCloses.push(e.code));
    ch.push("echo", { blob: "x".repeat(5000) });
    await waitFor(() => closes.length === 1, "close");
    expect(closes[0]).toBe(1009);
    expect(server.endpoint.stats.closes[1009]).toBe(1);
    await waitFor(() => ch.state === "joined" && ch.joinRef() !== J1, "rejoined");
    expect(await push(ch, "echo", { small: 1 })).toEqual({ status: "ok", response: { small: 1 } });
    expect(await push(och, "echo", { other: 1 })).toEqual({ status: "ok", response: { other: 1 } });
    expect(otherCloses).toEqual([]);
    // exactly at the limit is fine
    const exact = JSON.stringify(["3", "9", "test:size", "echo", { blob: "" }]);
    const raw = await RawClient.open(rawUrl(server));
    await raw.call(["3", "3", "test:size", "phx_join", {}]);
    const pad = 4096 - exact.length;
    const reply = await raw.call(["3", "9", "test:size", "echo", { blob: "y".repeat(pad) }]);
    expect((reply[4] as any).status).toBe("ok");
    raw.close();
  });

  it("§8.40 a slow consumer over the buffer limit is closed with 1013 and misses no presence_diff silently; reconnected, its view matches", async () => {
    const server = await start({ endpoint: { maxBufferedBytes: 256 * 1024, closeTimeoutMs: 10_000, ratePerSecond: 10_000, rateBurst: 10_000 } });
    const slow = await connected(phxSocket(server.socketUrl, { params: { who: "slow" } }));
    const slowCh = slow.channel("test:slow", { user: "slow" });
    const sp = new Presence(slowCh);
    const closes: number[] = [];
    slow.onClose((e: any) => void closes.push(e.code));
    const bigs = collect(slowCh, "big");
    await joinOk(slowCh);
    const J1 = slowCh.joinRef();
    const pub = await connected(phxSocket(server.socketUrl, { timeout: 10_000 }));
    const pubCh = pub.channel("test:slow", { user: "pub" });
    await joinOk(pubCh);
    const gone = await connected(phxSocket(server.socketUrl));
    const goneCh = gone.channel("test:slow", { user: "gone" });
    await joinOk(goneCh);
    await waitFor(() => (sp.list() as unknown[]).length === 3, "slow sees everyone");
    // stop reading: the server's send buffer for this socket fills up
    (slow as any).conn._socket.pause();
    const blob = "z".repeat(60_000);
    let n = 0;
    while (server.endpoint.stats.slowConsumers === 0 && n < 1000) {
      await push(pubCh, "broadcast", { event: "big", payload: { n: n++, blob } });
    }
    expect(server.endpoint.stats.slowConsumers).toBe(1);
    // presence changes while the consumer is stalled
    goneCh.leave();
    const late = await connected(phxSocket(server.socketUrl));
    await joinOk(late.channel("test:slow", { user: "late" }));
    await waitFor(() => server.presence.list("test:slow").late && !server.presence.list("test:slow").gone, "server presence changed");
    (slow as any).conn._socket.resume();
    await waitFor(() => closes.length === 1, "slow consumer closed", 10_000);
    expect(closes[0]).toBe(1013);
    expect(server.endpoint.stats.closes[1013]).toBe(1);
    // what it did get came in order, without a gap
    expect(bigs.map((b) => b.payload.n)).toEqual(Array.from({ length: bigs.length }, (_, i) => i));
    await waitFor(() => slowCh.state === "joined" && slowCh.joinRef() !== J1, "rejoined", 10_000);
    const expected = Object.keys(server.presence.list("test:slow")).sort();
    expect(expected).toEqual(["late", "pub", "slow"]);
    await waitFor(() => JSON.stringify((sp.list((k: string) => k) as string[]).sort()) === JSON.stringify(expected), "slow's view matches the server's");
    const serverRefs = Object.values(server.presence.list("test:slow")).flatMap((e) => e.metas.map((m) => m.phx_ref)).sort();
    const clientRefs = (sp.list((_k: string, p: any) => p.metas.map((m: any) => m.phx_ref)) as string[][]).flat().sort();
    expect(clientRefs).toEqual(serverRefs);
  });
});
