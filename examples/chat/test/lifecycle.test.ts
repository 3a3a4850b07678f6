/** CHANNELS.md §8 items 8–23: joins, pushes, replies, leaves, closes, errors, join_refs. */
import { afterEach, describe, expect, it } from "vitest";
import { Presence } from "phoenix";
import { RawClient, collect, connected, disconnectAll, inbox, joinOk, joinResult, phxSocket, push, settle, waitFor, type Frame } from "./support/client.js";
import { startTestServer, type TestServer } from "./support/server.js";

let server: TestServer | undefined;
afterEach(async () => {
  server?.probe.openAll();
  await disconnectAll();
  await server?.stop();
  server = undefined;
});

const rawUrl = () => `${server!.socketUrl}/websocket?vsn=2.0.0`;

describe("channel lifecycle (CHANNELS.md §8)", () => {
  it("§8.8 join ok: the reply has the join's ref and join_ref, and receive('ok') gets the handler's response", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl));
    const got = inbox(s);
    const ch = s.channel("test:ok", { name: "ann" });
    const resp = await joinOk(ch);
    const J = ch.joinRef();
    expect(resp).toEqual({ welcome: "ann", join_ref: J });
    expect(got.filter((m) => m.topic === "test:ok")).toEqual([{ join_ref: J, ref: J, topic: "test:ok", event: "phx_reply", payload: { status: "ok", response: { welcome: "ann", join_ref: J } } }]);
  });

  it("§8.9 join refused: error reply with {reason} and that join_ref; the client retries; after leave() no more joins", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl, { rejoinAfterMs: () => 30 }));
    const got = inbox(s);
    const ch = s.channel("test:refused", { refuse: "nope" });
    const r = await joinResult(ch);
    expect(r).toEqual({ status: "error", response: { reason: "nope" } });
    const J = ch.joinRef();
    expect(got.find((m) => m.event === "phx_reply" && m.ref === J)).toEqual({ join_ref: J, ref: J, topic: "test:refused", event: "phx_reply", payload: { status: "error", response: { reason: "nope" } } });
    await waitFor(() => server!.probe.of("join", "test:refused").length >= 3, "retries");
    const refs = server.probe.of("join", "test:refused").map((c) => c.joinRef);
    expect(new Set(refs).size).toBe(refs.length);
    ch.leave();
    await settle(50);
    const n = server.probe.of("join", "test:refused").length;
    await settle(250); // > 8 retry periods
    expect(server.probe.of("join", "test:refused")).toHaveLength(n);
    expect(server.endpoint.connections()[0]!.topics.size).toBe(0);
  });

  it("§8.10 a join to an unrouted topic gets [null, R, T, phx_reply, error 'unmatched topic']", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl));
    const got = inbox(s);
    const ch = s.channel("nowhere:1", {});
    expect(await joinResult(ch)).toEqual({ status: "error", response: { reason: "unmatched topic" } });
    const R = ch.joinRef();
    ch.leave();
    expect(got.find((m) => m.topic === "nowhere:1")).toEqual({ join_ref: null, ref: R, topic: "nowhere:1", event: "phx_reply", payload: { status: "error", response: { reason: "unmatched topic" } } });
    // the reserved socket topic has no route either
    const raw = await RawClient.open(rawUrl());
    expect(await raw.call(["1", "1", "phoenix", "phx_join", {}])).toEqual([null, "1", "phoenix", "phx_reply", { status: "error", response: { reason: "unmatched topic" } }]);
    raw.close();
  });

  it("§8.11 a throwing join handler gives 'join crashed'; the connection and its other channels keep working", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl));
    const other = s.channel("test:other", {});
    await joinOk(other);
    const bad = s.channel("test:throws", { throw: true });
    expect(await joinResult(bad)).toEqual({ status: "error", response: { reason: "join crashed" } });
    bad.leave();
    expect(await push(other, "echo", { still: "here" })).toEqual({ status: "ok", response: { still: "here" } });
    await joinOk(s.channel("test:third", {}));
    expect(s.isConnected()).toBe(true);
  });

  it("§8.12 a push made before the join reply is delivered after the join and gets its reply", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl, { timeout: 3000 }));
    const ch = s.channel("test:early", { stall: "early" });
    const joined = joinOk(ch);
    const early = push(ch, "echo", { n: 1 });
    await waitFor(() => server!.probe.of("join", "test:early").length === 1, "join reached the server");
    server.probe.open("early");
    await joined;
    expect(await early).toEqual({ status: "ok", response: { n: 1 } });
    // raw: the server itself queues a push that arrives while the join is still running
    const raw = await RawClient.open(rawUrl());
    raw.send(["1", "1", "test:rawearly", "phx_join", { stall: "rawearly" }]);
    raw.send(["1", "2", "test:rawearly", "echo", { n: 2 }]);
    await waitFor(() => server!.probe.of("join", "test:rawearly").length === 1, "raw join reached the server");
    expect(server.probe.of("in", "test:rawearly")).toHaveLength(0);
    server.probe.open("rawearly");
    const reply = await raw.next((f) => f[1] === "2", "push reply");
    expect(reply).toEqual(["1", "2", "test:rawearly", "phx_reply", { status: "ok", response: { n: 2 } }]);
    const order = raw.frames.map((f) => (f as Frame)[1]);
    expect(order.indexOf("1")).toBeLessThan(order.indexOf("2"));
    raw.close();
  });

  it("§8.13 a push reply echoes the push's ref and join_ref; receive(status) fires with the response for ok and error", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl));
    const got = inbox(s);
    const ch = s.channel("test:replies", {});
    await joinOk(ch);
    expect(await push(ch, "echo", { a: 1 })).toEqual({ status: "ok", response: { a: 1 } });
    expect(await push(ch, "fail", { reason: "bad" })).toEqual({ status: "error", response: { reason: "bad" } });
    const calls = server.probe.of("in", "test:replies");
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      const reply = got.find((m) => m.event === "phx_reply" && m.ref === c.ref);
      expect(reply?.join_ref).toBe(ch.joinRef());
      expect(c.joinRef).toBe(ch.joinRef());
    }
    // asynchronous replies reach receive too
    expect(await push(ch, "async", { ms: 20 })).toEqual({ status: "ok", response: { late: true } });
  });

  it("§8.14 a push never answered makes receive('timeout') fire, and no stray reply follows", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl));
    const got = inbox(s);
    const ch = s.channel("test:silent", {});
    await joinOk(ch);
    expect((await push(ch, "noreply", {}, 80)).status).toBe("timeout");
    const ref = server.probe.of("in", "test:silent")[0]!.ref;
    expect(await push(ch, "echo", { after: true })).toEqual({ status: "ok", response: { after: true } });
    expect(got.filter((m) => m.ref === ref)).toEqual([]);
  });

  it("§8.15 raw: a push to a topic that isn't joined gets the unmatched-topic error reply", async () => {
    server = await startTestServer();
    const raw = await RawClient.open(rawUrl());
    expect(await raw.call(["5", "6", "test:notjoined", "echo", {}])).toEqual([null, "6", "test:notjoined", "phx_reply", { status: "error", response: { reason: "unmatched topic" } }]);
    expect(await raw.call([null, "7", "phoenix", "whatever", {}])).toEqual([null, "7", "phoenix", "phx_reply", { status: "error", response: { reason: "unmatched topic" } }]);
    expect(server.probe.calls).toHaveLength(0);
    raw.close();
  });

  it("§8.16 raw: a push or leave with a stale join_ref gets no reply and reaches no handler; a null join_ref is accepted", async () => {
    server = await startTestServer();
    const raw = await RawClient.open(rawUrl());
    expect((await raw.call(["1", "1", "test:stale", "phx_join", {}]))[4]).toMatchObject({ status: "ok" });
    raw.send(["0", "2", "test:stale", "echo", { stale: true }]);
    raw.send(["0", "3", "test:stale", "phx_leave", {}]);
    expect(await raw.call([null, "4", "test:stale", "echo", { fresh: true }])).toEqual([null, "4", "test:stale", "phx_reply", { status: "ok", response: { fresh: true } }]);
    expect(await raw.call(["1", "5", "test:stale", "echo", { current: true }])).toEqual(["1", "5", "test:stale", "phx_reply", { status: "ok", response: { current: true } }]);
    expect(raw.matching((f) => f[1] === "2" || f[1] === "3")).toEqual([]);
    expect(server.probe.of("in", "test:stale").map((c) => c.payload)).toEqual([{ fresh: true }, { current: true }]);
    expect(server.probe.of("terminate", "test:stale")).toEqual([]);
    expect(server.endpoint.connections()[0]!.topics.get("test:stale")?.state).toBe("joined");
    // a leave with a null join_ref is accepted too
    expect(await raw.call([null, "6", "test:stale", "phx_leave", {}])).toEqual([null, "6", "test:stale", "phx_reply", { status: "ok", response: {} }]);
    await raw.next((f) => f[3] === "phx_close", "phx_close");
    raw.close();
  });

  it("§8.17 leave: ok reply with the same ref, then phx_close [J,J]; another client sees the leave diff; no broadcasts follow", async () => {
    server = await startTestServer();
    const a = await connected(phxSocket(server.socketUrl));
    const b = await connected(phxSocket(server.socketUrl));
    const gotA = inbox(a);
    const chA = a.channel("test:leave", { user: "alice" });
    await joinOk(chA);
    const chB = b.channel("test:leave", { user: "bob" });
    const pb = new Presence(chB);
    await joinOk(chB);
    await waitFor(() => pb.list().length === 2, "both present");
    const J = chA.joinRef();
    const aliceRef = (pb.list((k: string, p: any) => (k === "alice" ? p.metas[0].phx_ref : null)) as Array<string | null>).find(Boolean);
    const diffs = collect(chB, "presence_diff");
    const leave = chA.leave();
    let leftOk = false;
    leave.receive("ok", () => (leftOk = true));
    expect(leftOk).toBe(true); // phoenix.js resolves leave locally
    await waitFor(() => gotA.some((m) => m.event === "phx_close" && m.topic === "test:leave"), "phx_close");
    const mine = gotA.filter((m) => m.topic === "test:leave" && m.ref !== J && m.join_ref === J);
    const leaveReply = mine.find((m) => m.event === "phx_reply")!;
    expect(leaveReply.payload).toEqual({ status: "ok", response: {} });
    const closeIdx = gotA.findIndex((m) => m.event === "phx_close");
    expect(gotA.indexOf(leaveReply)).toBeLessThan(closeIdx);
    expect(gotA[closeIdx]).toEqual({ join_ref: J, ref: J, topic: "test:leave", event: "phx_close", payload: {} });
    await waitFor(() => diffs.some((d) => d.payload.leaves.alice), "leave diff");
    const d = diffs.find((x) => x.payload.leaves.alice)!.payload;
    // exactly alice's meta leaves; other keys' changes of the same batching window (bob's own
    // join, say) may share the diff (@cinder/presence batches per topic)
    expect(d.leaves).toEqual({ alice: { metas: [expect.objectContaining({ phx_ref: aliceRef })] } });
    expect(d.joins.alice).toBeUndefined();
    expect(pb.list().map((p: any) => p.metas.length)).toEqual([1]);
    expect(server.probe.of("terminate", "test:leave").map((c) => c.reason)).toEqual(["leave"]);
    // broadcasts after the leave never reach the leaver
    const news = collect(chB, "news");
    expect((await push(chB, "broadcast", { event: "news", payload: { n: 1 } })).status).toBe("ok");
    await waitFor(() => news.length === 1, "b gets its own broadcast");
    expect(gotA.slice(closeIdx + 1).filter((m) => m.topic === "test:leave")).toEqual([]);
  });

  it("§8.18 raw: phx_leave for a topic that isn't joined gets an ok reply", async () => {
    server = await startTestServer();
    const raw = await RawClient.open(rawUrl());
    expect(await raw.call(["3", "4", "test:never", "phx_leave", {}])).toEqual(["3", "4", "test:never", "phx_reply", { status: "ok", response: {} }]);
    raw.close();
  });

  it("§8.19 a server-initiated close sends phx_close with the current join_ref; the client fires onClose and never rejoins", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl, { rejoinAfterMs: () => 20 }));
    const got = inbox(s);
    const ch = s.channel("test:kick", {});
    let closed = 0;
    ch.onClose(() => void closed++);
    await joinOk(ch);
    const J = ch.joinRef();
    // from a push handler (`stop`) …
    expect((await push(ch, "close", {})).status).toBe("ok");
    await waitFor(() => closed === 1, "onClose");
    expect(got.find((m) => m.event === "phx_close")).toEqual({ join_ref: J, ref: J, topic: "test:kick", event: "phx_close", payload: {} });
    expect(server.probe.of("terminate", "test:kick").map((c) => c.reason)).toEqual(["closed"]);
    // … and from outside (a message to the channel actor)
    const ch2 = s.channel("test:kick2", {});
    let closed2 = 0;
    ch2.onClose(() => void closed2++);
    await joinOk(ch2);
    const pid = server.endpoint.connections()[0]!.topics.get("test:kick2")!.pid;
    server.node.send(pid, "kick");
    await waitFor(() => closed2 === 1, "onClose (kick)");
    await settle(150); // many rejoin periods
    expect(server.probe.of("join", "test:kick")).toHaveLength(1);
    expect(server.probe.of("join", "test:kick2")).toHaveLength(1);
    expect(s.channels).toHaveLength(0);
  });

  it("§8.20 a handler crash sends phx_error with the current join_ref; the client rejoins with a new join_ref, gets a fresh presence_state", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl, { rejoinAfterMs: () => 20 }));
    const got = inbox(s);
    const ch = s.channel("test:crash", { user: "carol" });
    const errors: unknown[] = [];
    ch.onError((e: unknown) => void errors.push(e));
    const p = new Presence(ch);
    await joinOk(ch);
    await waitFor(() => p.list().length === 1, "presence");
    const J1 = ch.joinRef();
    const ref1 = (p.list() as any[])[0].metas[0].phx_ref;
    const other = s.channel("test:bystander", {});
    await joinOk(other);
    ch.push("crash", {});
    await waitFor(() => errors.length === 1, "onError");
    expect(got.find((m) => m.event === "phx_error")).toEqual({ join_ref: J1, ref: J1, topic: "test:crash", event: "phx_error", payload: {} });
    await waitFor(() => server!.probe.of("join", "test:crash").length === 2 && ch.state === "joined", "rejoined");
    const J2 = ch.joinRef();
    expect(J2).not.toBe(J1);
    expect(server.probe.of("join", "test:crash")[1]!.joinRef).toBe(J2);
    const state2 = await waitFor(() => got.find((m) => m.event === "presence_state" && m.join_ref === J2), "fresh presence_state");
    expect(Object.keys(state2.payload)).toEqual(["carol"]);
    expect(state2.payload.carol.metas).toHaveLength(1);
    expect(state2.payload.carol.metas[0].phx_ref).not.toBe(ref1);
    await waitFor(() => p.list().length === 1 && (p.list() as any[])[0].metas.length === 1 && (p.list() as any[])[0].metas[0].phx_ref !== ref1, "presence view reconciled");
    expect(await push(other, "echo", { ok: 1 })).toEqual({ status: "ok", response: { ok: 1 } });
    expect(await push(ch, "echo", { again: 1 })).toEqual({ status: "ok", response: { again: 1 } });
  });

  it("§8.21 raw: two joins of one topic get phx_close for the first, then ok for the second; a broadcast then arrives once, with one meta", async () => {
    server = await startTestServer();
    const raw = await RawClient.open(rawUrl());
    expect((await raw.call(["1", "1", "test:dup", "phx_join", { user: "dan" }]))[4]).toMatchObject({ status: "ok" });
    await raw.next((f) => f[3] === "presence_state" && f[0] === "1", "first presence_state");
    raw.send(["2", "2", "test:dup", "phx_join", { user: "dan" }]);
    const ok2 = await raw.next((f) => f[3] === "phx_reply" && f[1] === "2", "second join reply");
    expect(ok2[4]).toMatchObject({ status: "ok" });
    const closeIdx = raw.frames.findIndex((f) => Array.isArray(f) && f[3] === "phx_close");
    expect(raw.frames[closeIdx]).toEqual(["1", "1", "test:dup", "phx_close", {}]);
    expect(closeIdx).toBeLessThan(raw.frames.indexOf(ok2));
    const state = await raw.next((f) => f[3] === "presence_state" && f[0] === "2", "second presence_state");
    expect((state[4] as any).dan.metas).toHaveLength(1);
    expect(server.presence.list("test:dup").dan!.metas).toHaveLength(1);
    expect(server.pubsub.subscriberCount("test:dup")).toBe(1);
    expect((await raw.call(["2", "3", "test:dup", "broadcast", { event: "once", payload: { x: 1 } }]))[4]).toMatchObject({ status: "ok" });
    await raw.next((f) => f[3] === "once", "broadcast");
    await raw.call(["2", "4", "test:dup", "echo", {}]); // anything duplicated would have arrived by now
    expect(raw.matching((f) => f[3] === "once")).toEqual([[null, null, "test:dup", "once", { x: 1 }]]);
    raw.close();
  });

  it("§8.22 phoenix.js opening a second Channel on a joined topic ends with one joined channel, one subscription and one meta", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl));
    const first = s.channel("test:twice", { user: "erin" });
    await joinOk(first);
    const second = s.channel("test:twice", { user: "erin" });
    const p = new Presence(second);
    await joinOk(second);
    await waitFor(() => p.list().length === 1, "presence");
    await waitFor(() => server!.presence.list("test:twice").erin?.metas.length === 1 && server!.probe.of("terminate", "test:twice").length === 1, "old one gone");
    expect(s.channels.filter((c: any) => c.topic === "test:twice" && c.state === "joined")).toHaveLength(1);
    expect(server.pubsub.subscriberCount("test:twice")).toBe(1);
    expect(server.endpoint.connections()[0]!.topics.get("test:twice")!.joinRef).toBe(second.joinRef());
    expect((p.list() as any[])[0].metas).toHaveLength(1);
    const got = collect(second, "hello");
    await push(second, "broadcast", { event: "hello", payload: {} });
    await push(second, "echo", {});
    expect(got).toHaveLength(1);
  });

  it("§8.23 after any rejoin every push and reply carries the new join_ref; the old one only on frames about the ended join", async () => {
    server = await startTestServer();
    const s = await connected(phxSocket(server.socketUrl, { rejoinAfterMs: () => 20 }));
    const got = inbox(s);
    const ch = s.channel("test:refs", { user: "fay" });
    await joinOk(ch);
    const J1 = ch.joinRef();
    ch.push("crash", {});
    await waitFor(() => ch.state === "joined" && ch.joinRef() !== J1, "rejoined");
    const J2 = ch.joinRef();
    const mark = got.length;
    await push(ch, "echo", {});
    await push(ch, "push", { event: "direct", payload: { a: 1 } });
    await push(ch, "fail", { reason: "x" });
    await waitFor(() => got.some((m) => m.event === "direct"), "direct push");
    await waitFor(() => got.some((m) => m.event === "presence_state" && m.join_ref === J2), "presence_state");
    const after = got.slice(mark).filter((m) => m.topic === "test:refs");
    expect(after.length).toBeGreaterThanOrEqual(4);
    for (const m of after) expect([null, J2]).toContain(m.join_ref);
    const withOld = got.filter((m) => m.topic === "test:refs" && m.join_ref === J1);
    for (const m of withOld) expect(["phx_reply", "phx_error", "presence_state"]).toContain(m.event);
    expect(got.indexOf(got.find((m) => m.event === "phx_error")!)).toBeLessThan(got.findIndex((m) => m.join_ref === J2));
  });
});
