/** The chat application: rooms, messages, typing, presence metas, the served page, auth token. */
import { afterEach, describe, expect, it } from "vitest";
import { Presence } from "phoenix";
import { collect, connected, disconnectAll, inbox, joinOk, joinResult, phxSocket, push, upgradeStatus, waitFor } from "./support/client.js";
import { startChat, type ChatServer } from "../src/server.js";
import { silentLogger } from "@cinder/runtime";

let chat: ChatServer | undefined;
afterEach(async () => {
  await disconnectAll();
  await chat?.stop();
  chat = undefined;
});

const start = async (opts: Parameters<typeof startChat>[0] = {}) => (chat = await startChat({ port: 0, logger: silentLogger, ...opts }));

describe("chat rooms", () => {
  it("refuses joins without a valid user or room with {reason}", async () => {
    await start();
    const s = await connected(phxSocket(chat!.socketUrl));
    const cases: Array<[string, object, string]> = [
      ["room:lobby", {}, "user required"],
      ["room:lobby", { user: "" }, "invalid user"],
      ["room:lobby", { user: "   " }, "invalid user"],
      ["room:lobby", { user: 42 }, "invalid user"],
      ["room:lobby", { user: "x".repeat(33) }, "invalid user"],
      ["room:lobby", { user: "a\u0007b" }, "invalid user"],
      ["room:bad name", { user: "ann" }, "invalid room"],
      ["room:", { user: "ann" }, "invalid room"],
    ];
    for (const [topic, params, reason] of cases) {
      const ch = s.channel(topic, params);
      expect(await joinResult(ch)).toEqual({ status: "error", response: { reason } });
      ch.leave();
    }
    expect(await joinOk(s.channel("room:lobby", { user: "  ann  " }))).toEqual({ user: "ann" });
  });

  it("new_msg replies ok and broadcasts {user, body, at} to the room, sender included", async () => {
    await start();
    const a = await connected(phxSocket(chat!.socketUrl));
    const b = await connected(phxSocket(chat!.socketUrl));
    const other = await connected(phxSocket(chat!.socketUrl));
    const chA = a.channel("room:r1", { user: "ann" });
    const chB = b.channel("room:r1", { user: "bob" });
    const chO = other.channel("room:r2", { user: "olga" });
    await Promise.all([joinOk(chA), joinOk(chB), joinOk(chO)]);
    const [ma, mb, mo] = [collect(chA, "new_msg"), collect(chB, "new_msg"), collect(chO, "new_msg")];
    const t0 = Date.now();
    expect(await push(chA, "new_msg", { body: "  hello, bob  " })).toEqual({ status: "ok", response: {} });
    await waitFor(() => ma.length === 1 && mb.length === 1, "both got it");
    expect(mb[0]!.payload).toEqual({ user: "ann", body: "hello, bob", at: expect.any(Number) });
    expect(mb[0]!.payload.at).toBeGreaterThanOrEqual(t0 - 1000);
    expect(ma[0]!.payload).toEqual(mb[0]!.payload);
    for (const bad of [{}, { body: "" }, { body: "   " }, { body: 5 }, { body: "x".repeat(4001) }]) {
      expect(await push(chA, "new_msg", bad)).toEqual({ status: "error", response: { reason: "invalid body" } });
    }
    expect(await push(chA, "shout", {})).toEqual({ status: "error", response: { reason: "unknown event" } });
    expect(mo).toEqual([]);
    expect(ma).toHaveLength(1);
  });

  it("presence: presence_state after join, metas with online_at and typing, typing updates as one diff", async () => {
    await start();
    const a = await connected(phxSocket(chat!.socketUrl));
    const gotA = inbox(a);
    const chA = a.channel("room:p", { user: "ann" });
    const pa = new Presence(chA);
    await joinOk(chA);
    const stateA = await waitFor(() => gotA.find((m) => m.event === "presence_state"), "presence_state");
    expect(stateA.payload).toEqual({ ann: { metas: [{ online_at: expect.any(Number), typing: false, phx_ref: expect.any(String) }] } });
    const b = await connected(phxSocket(chat!.socketUrl));
    const chB = b.channel("room:p", { user: "bob" });
    const pb = new Presence(chB);
    await joinOk(chB);
    await waitFor(() => pa.list().length === 2 && pb.list().length === 2, "both see both");
    const diffs = collect(chA, "presence_diff");
    expect(await push(chB, "typing", { typing: true })).toEqual({ status: "ok", response: {} });
    await waitFor(() => diffs.length === 1, "typing diff");
    expect(diffs[0]!.payload.joins.bob.metas[0]).toMatchObject({ typing: true, phx_ref_prev: expect.any(String) });
    const typingOf = (p: Presence) => Object.fromEntries(p.list((k: string, v: any) => [k, v.metas.some((m: any) => m.typing)]) as Array<[string, boolean]>);
    expect(typingOf(pa)).toEqual({ ann: false, bob: true });
    expect(await push(chB, "typing", { typing: "yes" })).toEqual({ status: "error", response: { reason: "invalid typing" } });
    await push(chB, "typing", { typing: false });
    await waitFor(() => typingOf(pa).bob === false, "typing off");
    b.disconnect();
    await waitFor(() => pa.list().length === 1, "bob left");
    expect(Object.keys(chat!.presence.list("room:p"))).toEqual(["ann"]);
  });

  it("serves the page, its script and phoenix.js from node_modules; other paths 404", async () => {
    await start();
    const page = await fetch(chat!.url + "/");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="/app.js">');
    const app = await fetch(chat!.url + "/app.js");
    expect(await app.text()).toContain('from "/vendor/phoenix.mjs"');
    const lib = await fetch(chat!.url + "/vendor/phoenix.mjs");
    expect(lib.headers.get("content-type")).toMatch(/javascript/);
    expect(await lib.text()).toMatch(/export\s*\{[^}]*Presence/);
    expect((await fetch(chat!.url + "/healthz")).status).toBe(200);
    const missing = await fetch(chat!.url + "/../../etc/passwd");
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
    const ws = await fetch(chat!.url + "/socket/websocket?vsn=2.0.0");
    expect(ws.status).toBe(400);
    await ws.arrayBuffer();
  });

  it("with a token configured, connections without it get 403 and with it (authToken or param) are accepted", async () => {
    await start({ token: "let-me-in" });
    expect(await upgradeStatus(`${chat!.socketUrl}/websocket?vsn=2.0.0`)).toBe(403);
    expect(await upgradeStatus(`${chat!.socketUrl}/websocket?vsn=2.0.0&token=nope`)).toBe(403);
    expect(await upgradeStatus(`${chat!.socketUrl}/websocket?vsn=2.0.0&token=let-me-in`)).toBe(101);
    const s = await connected(phxSocket(chat!.socketUrl, { authToken: "let-me-in" } as any));
    await joinOk(s.channel("room:secret", { user: "ann" }));
  });
});
