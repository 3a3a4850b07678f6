/** CHANNELS.md §8 items 30–34: presence on the wire, with phoenix.js `Presence` (room channel). */
import { afterEach, describe, expect, it } from "vitest";
import { Presence, type Channel, type Socket } from "phoenix";
import fc from "fast-check";
import { collect, connected, disconnectAll, inbox, joinOk, phxSocket, push, waitFor } from "./support/client.js";
import { startTestServer, type TestServer } from "./support/server.js";
import type { PresenceState } from "../src/presence/types.js";
import { MemoryPresence } from "../src/presence/memory.js";
import type { ChatOptions } from "../src/server.js";

/** Both presence implementations must give the same wire behaviour: @cinder/presence (the default) and the in-memory reference. */
const backends: Array<[string, Partial<ChatOptions>]> = [
  ["@cinder/presence", {}],
  ["memory", { presence: (node, onDiff) => MemoryPresence.start(node, { onDiff }) }],
];

let server: TestServer | undefined;
afterEach(async () => {
  await disconnectAll();
  await server?.stop();
  server = undefined;
});

interface Member {
  s: Socket;
  ch: Channel;
  p: Presence;
  syncs: number;
  got: ReturnType<typeof inbox>;
}

async function member(topic: string, user: string, opts: object = {}): Promise<Member> {
  const s = await connected(phxSocket(server!.socketUrl, opts));
  const got = inbox(s);
  const ch = s.channel(topic, { user });
  const p = new Presence(ch);
  const m: Member = { s, ch, p, syncs: 0, got };
  p.onSync(() => void m.syncs++);
  await joinOk(ch);
  return m;
}

/** Keys in sorted order: key order carries no meaning (a batched diff may add keys in another order). */
function sortedKeys(o: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]!;
  return out;
}

/** A client's presence view as `key → sorted phx_refs`, keys sorted. */
function view(p: Presence): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  p.list((key: string, pres: any) => (out[key] = pres.metas.map((m: any) => m.phx_ref).sort()));
  return sortedKeys(out);
}

function serverView(state: PresenceState): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(state)) out[k] = v.metas.map((m) => m.phx_ref).sort();
  return sortedKeys(out);
}

describe.each(backends)("presence on the wire (CHANNELS.md §8), %s presence", (_backend, chatOpts) => {
  it("§8.30 the joiner gets presence_state with its join_ref and own meta; the others a join diff; phx_refs are unique strings", async () => {
    server = await startTestServer(chatOpts);
    const alice = await member("room:p30", "alice");
    const diffs = collect(alice.ch, "presence_diff");
    const bob = await member("room:p30", "bob");
    const state = await waitFor(() => bob.got.find((m) => m.event === "presence_state"), "bob's presence_state");
    expect(state.join_ref).toBe(bob.ch.joinRef());
    expect(state.ref).toBeNull();
    expect(Object.keys(state.payload).sort()).toEqual(["alice", "bob"]);
    expect(state.payload.bob.metas).toEqual([{ online_at: expect.any(Number), typing: false, phx_ref: expect.any(String) }]);
    await waitFor(() => diffs.some((d) => d.payload.joins.bob), "alice sees bob join");
    const d = diffs.find((x) => x.payload.joins.bob)!;
    expect(d.joinRef).toBe(alice.ch.joinRef()); // phoenix.js fills in its own; on the wire it was null
    expect(alice.got.find((m) => m.event === "presence_diff" && m.payload.joins.bob)!.join_ref).toBeNull();
    expect(d.payload).toEqual({ joins: { bob: { metas: [state.payload.bob.metas[0]] } }, leaves: {} });
    await waitFor(() => view(alice.p).bob && view(bob.p).alice, "both views");
    expect(view(alice.p)).toEqual(view(bob.p));
    const refs = [...state.payload.alice.metas, ...state.payload.bob.metas].map((m: any) => m.phx_ref);
    expect(new Set(refs).size).toBe(2);
    for (const r of refs) expect(typeof r).toBe("string");
  });

  it("§8.31 two connections under one key: one key with two metas; one leaves: just that meta in leaves, joins {}, the key stays", async () => {
    server = await startTestServer(chatOpts);
    const watcher = await member("room:p31", "watcher");
    const diffs = collect(watcher.ch, "presence_diff");
    const tab1 = await member("room:p31", "gina");
    const tab2 = await member("room:p31", "gina");
    await waitFor(() => view(watcher.p).gina?.length === 2, "two metas");
    expect(Object.keys(view(watcher.p)).sort()).toEqual(["gina", "watcher"]);
    const ref2 = server.presence.list("room:p31").gina!.metas[1]!.phx_ref;
    tab2.ch.leave();
    await waitFor(() => diffs.some((d) => Object.keys(d.payload.leaves).length > 0), "leave diff");
    const leave = diffs.find((d) => Object.keys(d.payload.leaves).length > 0)!.payload;
    expect(leave.joins).toEqual({});
    expect(Object.keys(leave.leaves)).toEqual(["gina"]);
    expect(leave.leaves.gina.metas.map((m: any) => m.phx_ref)).toEqual([ref2]);
    await waitFor(() => view(watcher.p).gina?.length === 1, "one meta left");
    expect(view(watcher.p).gina).toEqual([server.presence.list("room:p31").gina!.metas[0]!.phx_ref]);
    expect(view(tab1.p)).toEqual(view(watcher.p));
  });

  it("§8.32 a meta update is one diff (new phx_ref + phx_ref_prev, and the old meta's leave); others see one onSync and the new meta", async () => {
    server = await startTestServer(chatOpts);
    const hank = await member("room:p32", "hank");
    const ivy = await member("room:p32", "ivy");
    await waitFor(() => view(ivy.p).hank && view(hank.p).ivy, "both present");
    const diffs = collect(ivy.ch, "presence_diff");
    const joins: unknown[][] = [];
    const leaves: unknown[][] = [];
    ivy.p.onJoin((key, cur, next) => void joins.push([key, cur, next]));
    ivy.p.onLeave((key, cur, left) => void leaves.push([key, cur, left]));
    const oldRef = view(ivy.p).hank![0]!;
    const syncsBefore = ivy.syncs;
    expect(await push(hank.ch, "typing", { typing: true })).toEqual({ status: "ok", response: {} });
    await waitFor(() => diffs.length === 1, "one diff");
    const d = diffs[0]!.payload;
    expect(d.joins.hank.metas).toEqual([{ online_at: expect.any(Number), typing: true, phx_ref: expect.any(String), phx_ref_prev: oldRef }]);
    expect(d.leaves.hank.metas).toEqual([expect.objectContaining({ phx_ref: oldRef, typing: false })]);
    expect(d.joins.hank.metas[0].phx_ref).not.toBe(oldRef);
    expect(ivy.syncs - syncsBefore).toBe(1);
    expect(joins.map((j) => j[0])).toEqual(["hank"]);
    expect(leaves.map((l) => l[0])).toEqual(["hank"]);
    const metas = (ivy.p.list((k: string, p: any) => (k === "hank" ? p.metas : null)) as any[]).find(Boolean);
    expect(metas).toEqual([d.joins.hank.metas[0]]);
    // nothing more follows: a second client-side sync point
    await push(hank.ch, "new_msg", { body: "sync" });
    await waitFor(() => ivy.got.some((m) => m.event === "new_msg"), "sync point");
    expect(diffs).toHaveLength(1);
  });

  it("§8.33 after the server kills the TCP connection the client reconnects, rejoins with a new join_ref, gets a fresh presence_state; others see old leave + new join", async () => {
    server = await startTestServer(chatOpts);
    const jack = await member("room:p33", "jack", { params: { who: "jack" } });
    const kim = await member("room:p33", "kim");
    await waitFor(() => view(kim.p).jack, "kim sees jack");
    const oldRef = view(kim.p).jack![0]!;
    const J1 = jack.ch.joinRef();
    const diffs = collect(kim.ch, "presence_diff");
    const closes: number[] = [];
    jack.s.onClose((e: any) => void closes.push(e.code));
    server.endpoint.connections().find((c) => c.params.who === "jack")!.terminate();
    await waitFor(() => jack.ch.state === "joined" && jack.ch.joinRef() !== J1, "rejoined", 5000);
    expect(closes[0]).toBe(1006);
    const J2 = jack.ch.joinRef();
    const state = await waitFor(() => jack.got.find((m) => m.event === "presence_state" && m.join_ref === J2), "fresh presence_state");
    const newRef = state.payload.jack.metas[0].phx_ref;
    expect(newRef).not.toBe(oldRef);
    await waitFor(() => diffs.some((d) => d.payload.leaves.jack) && diffs.some((d) => d.payload.joins.jack), "old leave and new join");
    expect(diffs.find((d) => d.payload.leaves.jack)!.payload.leaves.jack.metas.map((m: any) => m.phx_ref)).toEqual([oldRef]);
    expect(diffs.find((d) => d.payload.joins.jack)!.payload.joins.jack.metas.map((m: any) => m.phx_ref)).toEqual([newRef]);
    await waitFor(() => view(kim.p).jack?.[0] === newRef && view(jack.p).jack?.[0] === newRef, "views converge");
    expect(view(kim.p)).toEqual(serverView(server.presence.list("room:p33")));
    expect(view(jack.p)).toEqual(serverView(server.presence.list("room:p33")));
  });

  it("§8.34 with concurrent joins and leaves during a join, every client's Presence.list() converges to the server's", async () => {
    server = await startTestServer(chatOpts);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ user: fc.constantFrom("u1", "u2", "u3", "u4"), leaveAfter: fc.option(fc.nat(3), { nil: undefined }) }), { minLength: 3, maxLength: 8 }),
        fc.nat(7),
        async (plan, observerAt) => {
          const topic = `room:p34-${Math.random().toString(36).slice(2, 8)}`;
          const members: Member[] = [];
          const pending: Array<Promise<unknown>> = [];
          let observer: Promise<Member> | undefined;
          for (let i = 0; i < plan.length; i++) {
            if (i === Math.min(observerAt, plan.length - 1)) observer = member(topic, "observer");
            const step = plan[i]!;
            const m = member(topic, step.user).then((x) => (members.push(x), x));
            pending.push(
              m.then(async (x) => {
                if (step.leaveAfter === undefined) return;
                for (let k = 0; k < step.leaveAfter; k++) await new Promise((r) => setImmediate(r));
                x.ch.leave();
              }),
            );
          }
          const obs = await observer!;
          await Promise.all(pending);
          const stayed = plan.filter((p) => p.leaveAfter === undefined).length + 1;
          await waitFor(() => Object.values(server!.presence.list(topic)).reduce((n, e) => n + e.metas.length, 0) === stayed, "server settled");
          const expected = serverView(server!.presence.list(topic));
          const watchers = [obs, ...members.filter((m) => m.ch.state === "joined")];
          await waitFor(() => watchers.every((w) => JSON.stringify(view(w.p)) === JSON.stringify(expected)), "all views converge");
          for (const m of [obs, ...members]) m.s.disconnect();
        },
      ),
      { numRuns: 12 },
    );
  });
});
