/**
 * Presence on one node: the wire shapes (CHANNELS.md 6), updates as one diff, diffs safe to
 * apply twice and around a presence_state (checked with phoenix.js' own syncState/syncDiff),
 * batching (a burst of 1,000 joins is a few diffs, a lone change is not delayed), the fetch hook
 * (and its failures), options, supervision.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BadArgError, CinderError, GenServer, NoProcError, silentLogger, startNode, Supervisor, type CinderNode, type Process } from "@cinder/runtime";
import { PubSub } from "@cinder/pubsub";
import { Tracker } from "@cinder/tracker";
import {
  AlreadyTrackedError,
  NoPresenceError,
  Presence,
  PresenceOptionError,
  TrackerOptionError,
  type PresenceDiff,
  type PresenceState,
} from "@cinder/presence";
import { Presence as PhxPresence } from "phoenix";
import { applyDiff, applyState, holdsFor, size, startPresenceNode, view, waitFor, Watcher, type PNode, type POpts } from "./support.js";

const nodes: CinderNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.stop();
});

async function one(extra: POpts = {}): Promise<PNode> {
  const n = await startPresenceNode("solo", null, extra);
  nodes.push(n.node);
  return n;
}

const keysOf = (s: PresenceState) => Object.keys(s).sort();

describe("wire shapes", () => {
  it("track: subscribers get a presence_diff {joins, leaves} (both halves present) and list groups metas by key, each with a unique string phx_ref", async () => {
    const n = await one();
    const w = new Watcher(n, "room:1");
    const [t1, t2, t3] = [n.node.process(), n.node.process(), n.node.process()];
    const r1 = await Presence.track(t1, n.presence, t1.pid, "room:1", "gina", { device: "phone" });
    const r2 = await Presence.track(t2, n.presence, t2.pid, "room:1", "gina", { device: "laptop" });
    const r3 = await Presence.track(t3, n.presence, t3.pid, "room:1", "hal", { device: "phone" });
    for (const r of [r1, r2, r3]) expect(typeof r).toBe("string");
    expect(new Set([r1, r2, r3]).size).toBe(3);
    const state = await Presence.list(n.me, n.presence, "room:1");
    expect(JSON.parse(JSON.stringify(state))).toEqual({
      gina: { metas: [{ device: "phone", phx_ref: r1 }, { device: "laptop", phx_ref: r2 }] },
      hal: { metas: [{ device: "phone", phx_ref: r3 }] },
    });
    await waitFor(() => w.diffs.reduce((k, d) => k + size(d.joins), 0) === 3, { what: "three joins broadcast" });
    for (const d of w.diffs) {
      expect(d.joins).toBeTypeOf("object");
      expect(d.leaves).toBeTypeOf("object");
      expect(JSON.parse(JSON.stringify(d)).leaves).toEqual({});
    }
    expect(w.view()).toEqual(view(state));
  });

  it("metas keep their order (join order) across updates and lists; a meta's app-supplied phx_ref / phx_ref_prev are ignored", async () => {
    const n = await one();
    const a = n.node.process(), b = n.node.process();
    const ra = await Presence.track(a, n.presence, a.pid, "t", "k", { i: 1, phx_ref: "forged", phx_ref_prev: "forged" });
    const rb = await Presence.track(b, n.presence, b.pid, "t", "k", { i: 2 });
    expect(ra).not.toBe("forged");
    const ra2 = await Presence.update(a, n.presence, a.pid, "t", "k", { i: 3, phx_ref: "forged2" });
    const metas = Presence.listRaw(n.node, n.presence, "t").k!.metas;
    expect(metas.map((m) => m.i)).toEqual([3, 2]);
    expect(metas[0]).toEqual({ i: 3, phx_ref: ra2, phx_ref_prev: ra });
    expect(metas[1]).toEqual({ i: 2, phx_ref: rb });
    expect(Presence.listRaw(n.node, n.presence, "t").k!.metas.map((m) => m.phx_ref)).toEqual([ra2, rb]);
  });

  it("keys such as __proto__ and constructor are ordinary keys in lists and diffs", async () => {
    const n = await one();
    const w = new Watcher(n, "odd");
    const p = n.node.process();
    await Presence.track(p, n.presence, p.pid, "odd", "__proto__", { a: 1 });
    await Presence.track(p, n.presence, p.pid, "odd", "constructor", { b: 2 });
    const s = Presence.listRaw(n.node, n.presence, "odd");
    expect(Object.keys(s).sort()).toEqual(["__proto__", "constructor"]);
    expect(Object.keys(JSON.parse(JSON.stringify(s))).sort()).toEqual(["__proto__", "constructor"]);
    await waitFor(() => w.diffs.reduce((k, d) => k + Object.keys(d.joins).length, 0) === 2, { what: "both joins" });
  });

  it("an actor's exit broadcasts the leave of exactly its metas; untrack(pid) leaves every topic", async () => {
    const n = await one();
    const w1 = new Watcher(n, "r1"), w2 = new Watcher(n, "r2");
    const stay = n.node.process(), go = n.node.process(), all = n.node.process();
    await Presence.track(stay, n.presence, stay.pid, "r1", "u", { who: "stay" });
    const goRef = await Presence.track(go, n.presence, go.pid, "r1", "u", { who: "go" });
    await Presence.track(all, n.presence, all.pid, "r1", "v", {});
    await Presence.track(all, n.presence, all.pid, "r2", "v", {});
    await waitFor(() => w1.view().length === 2 && w2.view().length === 1);
    go.exit("kill");
    await waitFor(() => w1.view().find(([k]) => k === "u")?.[1].length === 1, { what: "go's meta left" });
    const leave = w1.diffs.find((d) => size(d.leaves) > 0)!;
    expect(JSON.parse(JSON.stringify(leave))).toEqual({ joins: {}, leaves: { u: { metas: [{ who: "go", phx_ref: goRef }] } } });
    await Presence.untrack(all, n.presence, all.pid);
    await waitFor(() => !w1.view().some(([k]) => k === "v") && w2.view().length === 0, { what: "v left r1 and r2" });
    expect(keysOf(Presence.listRaw(n.node, n.presence, "r1"))).toEqual(["u"]);
    expect(keysOf(Presence.listRaw(n.node, n.presence, "r2"))).toEqual([]);
  });

  it("diffs of a topic go to that topic's subscribers only", async () => {
    const n = await one();
    const a = new Watcher(n, "a"), b = new Watcher(n, "b");
    const p = n.node.process();
    await Presence.track(p, n.presence, p.pid, "a", "x", {});
    await waitFor(() => a.diffs.length === 1);
    await Presence.flush(n.node, n.presence);
    expect(b.diffs).toEqual([]);
    expect(b.others).toEqual([]);
  });
});

describe("updates", () => {
  it("an update is one diff with both halves: the new meta (fresh phx_ref, phx_ref_prev = the old) in joins, the old meta in leaves; phoenix.js fires onJoin, onLeave, one onSync and never drops the key", async () => {
    const n = await one();
    const w = new Watcher(n, "room");
    const bob = n.node.process();
    const old = await Presence.track(bob, n.presence, bob.pid, "room", "bob", { status: "online" });
    await waitFor(() => w.diffs.length === 1);
    let client = applyState({}, await Presence.list(n.me, n.presence, "room"));
    const neu = await Presence.update(bob, n.presence, bob.pid, "room", "bob", (m) => ({ ...m, status: "away" }));
    await waitFor(() => w.diffs.length === 2, { what: "the update's diff" });
    await Presence.flush(n.node, n.presence);
    expect(w.diffs).toHaveLength(2);
    const d = JSON.parse(JSON.stringify(w.diffs[1]));
    expect(d).toEqual({
      joins: { bob: { metas: [{ status: "away", phx_ref: neu, phx_ref_prev: old }] } },
      leaves: { bob: { metas: [{ status: "online", phx_ref: old }] } },
    });
    expect(neu).not.toBe(old);
    const events: string[] = [];
    client = PhxPresence.syncDiff(
      client as any,
      d,
      (key?: string, cur?: any) => void events.push(`join ${key} (had ${cur?.metas.length ?? 0})`),
      (key?: string, cur?: any) => void events.push(`leave ${key} (left with ${cur.metas.length})`),
    ) as any;
    expect(events).toEqual(["join bob (had 1)", "leave bob (left with 1)"]);
    expect(view(client)).toEqual([["bob", [neu]]]);
  });

  it("update of an absent presence rejects with NoPresenceError; a second track with AlreadyTrackedError; a non-object meta with BadArgError", async () => {
    const n = await one();
    const p = n.node.process();
    await expect(Presence.update(p, n.presence, p.pid, "t", "k", {})).rejects.toBeInstanceOf(NoPresenceError);
    await Presence.track(p, n.presence, p.pid, "t", "k", {});
    await expect(Presence.track(p, n.presence, p.pid, "t", "k", {})).rejects.toBeInstanceOf(AlreadyTrackedError);
    expect(() => Presence.track(p, n.presence, p.pid, "t", "k2", null as never)).toThrow(BadArgError);
    await expect(Presence.update(p, n.presence, p.pid, "t", "k", () => [] as never)).rejects.toBeInstanceOf(BadArgError);
  });
});

describe("applying diffs: twice, and around a presence_state", () => {
  it("a diff applied twice is harmless: the client's state is the same as after one application", async () => {
    const n = await one();
    const w = new Watcher(n, "room");
    const ps = Array.from({ length: 4 }, () => n.node.process());
    for (const [i, p] of ps.entries()) await Presence.track(p, n.presence, p.pid, "room", `u${i % 2}`, { i });
    await Presence.update(ps[0]!, n.presence, ps[0]!.pid, "room", "u0", { i: 9 });
    await Presence.untrack(ps[1]!, n.presence, ps[1]!.pid);
    await Presence.flush(n.node, n.presence);
    const expected = view(Presence.listRaw(n.node, n.presence, "room"));
    let once: PresenceState = {};
    let twice: PresenceState = {};
    for (const d of w.diffs) {
      once = applyDiff(once, d);
      twice = applyDiff(applyDiff(twice, d), d);
    }
    expect(view(once)).toEqual(expected);
    expect(view(twice)).toEqual(expected);
  });

  it("diffs produced before a presence_state are harmless when applied after it (the joiner's own join diff, queued diffs), and so is the join diff arriving first", async () => {
    const n = await one();
    const w = new Watcher(n, "room");
    const a = n.node.process(), b = n.node.process();
    await Presence.track(a, n.presence, a.pid, "room", "a", {});
    await Presence.track(b, n.presence, b.pid, "room", "b", {});
    await Presence.update(a, n.presence, a.pid, "room", "a", { v: 2 });
    const state = await Presence.list(n.me, n.presence, "room"); // a joiner's presence_state
    await Presence.untrack(b, n.presence, b.pid, "room", "b");
    await Presence.flush(n.node, n.presence);
    const expected = view(Presence.listRaw(n.node, n.presence, "room"));
    const diffs = w.diffs;
    // phoenix.js applies the state, then every diff (those produced before it included)
    expect(view(diffs.reduce((s, d) => applyDiff(s, d), applyState({}, state)))).toEqual(expected);
    // the diffs arrive first (the client queues them, then reconciles)
    let early: PresenceState = {};
    for (const d of diffs) early = applyDiff(early, d);
    expect(view(applyState(early, await Presence.list(n.me, n.presence, "room")))).toEqual(expected);
  });

  it("property: random track / update / untrack / exit sequences, with a client joining at a random point: every client's phoenix.js view converges to the server's list", async () => {
    const n = await one({ batchMs: 5 });
    const rnd = (k: number) => Math.floor(Math.random() * k);
    for (let run = 0; run < 15; run++) {
      const topic = `prop${run}`;
      const w = new Watcher(n, topic);
      /** the model: what is tracked, by whom */
      let tracked: Array<{ p: Process<any>; key: string }> = [];
      const joinAt = rnd(30);
      let late: { w: Watcher; state: PresenceState } | undefined;
      for (let step = 0; step < 30; step++) {
        if (step === joinAt) {
          const lw = new Watcher(n, topic); // subscribe, then take the snapshot
          late = { w: lw, state: await Presence.list(n.me, n.presence, topic) };
        }
        const r = Math.random();
        const t = tracked[rnd(tracked.length)];
        if (r < 0.4 || t === undefined) {
          const p = n.node.process();
          const key = `k${rnd(3)}`;
          await Presence.track(p, n.presence, p.pid, topic, key, { step });
          tracked.push({ p, key });
        } else if (r < 0.65) {
          await Presence.update(t.p, n.presence, t.p.pid, topic, t.key, (m) => ({ ...m, step }));
        } else if (r < 0.85) {
          await Presence.untrack(t.p, n.presence, t.p.pid);
          tracked = tracked.filter((x) => x.p !== t.p);
        } else {
          t.p.exit("kill");
          tracked = tracked.filter((x) => x.p !== t.p);
        }
        if (Math.random() < 0.3) await new Promise((res) => setTimeout(res, 2));
      }
      const keys = [...new Set(tracked.map((x) => x.key))].sort();
      await waitFor(() => size(Presence.listRaw(n.node, n.presence, topic)) === tracked.length && keysOf(Presence.listRaw(n.node, n.presence, topic)).join() === keys.join(), {
        what: "the exits are handled",
      });
      await Presence.flush(n.node, n.presence);
      const expected = view(Presence.listRaw(n.node, n.presence, topic));
      expect(w.view()).toEqual(expected);
      const lateView = view(late!.w.diffs.reduce((st, d) => applyDiff(st, d), applyState({}, late!.state)));
      expect(lateView).toEqual(expected);
      for (const x of tracked) x.p.exit("kill");
    }
  });
});

describe("batching", () => {
  it("a burst of 1,000 joins in one topic becomes a few diffs, not 1,000 frames, and they add up to the list", async () => {
    const n = await one({ batchMs: 50 });
    const w = new Watcher(n, "big");
    const procs = Array.from({ length: 1000 }, () => n.node.process());
    const t0 = performance.now();
    await Promise.all(procs.map((p, i) => Presence.track(p, n.presence, p.pid, "big", `u${i}`, { i })));
    const burst = performance.now() - t0;
    await waitFor(() => w.diffs.reduce((k, d) => k + size(d.joins), 0) === 1000, { what: "1,000 joins broadcast" });
    const frames = w.diffs.length;
    // leading diff + one per window the burst spanned (+1 for the window closing after it)
    expect(frames).toBeLessThanOrEqual(Math.ceil(burst / 50) + 3);
    expect(frames).toBeLessThan(20);
    expect(w.view()).toEqual(view(Presence.listRaw(n.node, n.presence, "big")));
    const s = Presence.stats(n.node, n.presence);
    expect(s.joinsIn).toBe(1000);
    expect(s.joinsOut).toBe(1000);
    expect(s.broadcasts).toBe(frames);
  });

  it("with batchMs 0 only what is queued together is folded: 1,000 queued joins are still a few diffs", async () => {
    const n = await one({ batchMs: 0 });
    const w = new Watcher(n, "big0");
    const procs = Array.from({ length: 1000 }, () => n.node.process());
    await Promise.all(procs.map((p, i) => Presence.track(p, n.presence, p.pid, "big0", `u${i}`, {})));
    await waitFor(() => w.diffs.reduce((k, d) => k + size(d.joins), 0) === 1000, { what: "1,000 joins broadcast" });
    expect(w.diffs.length).toBeLessThan(100);
  });

  it("a lone change to a quiet topic goes out at once, not after the window; changes within the window are held until it closes, then go as one diff", async () => {
    const n = await one({ batchMs: 400 });
    const w = new Watcher(n, "t");
    const p = n.node.process(), q = n.node.process();
    let t0 = performance.now();
    await Presence.track(p, n.presence, p.pid, "t", "p", {});
    await waitFor(() => w.diffs.length === 1, { what: "the first diff" });
    expect(performance.now() - t0).toBeLessThan(200);
    t0 = performance.now();
    await Presence.track(q, n.presence, q.pid, "t", "q", {});
    await Presence.update(p, n.presence, p.pid, "t", "p", { away: true });
    await holdsFor(() => w.diffs.length === 1, 150, "held within the window");
    await waitFor(() => w.diffs.length === 2, { what: "the window's diff", timeoutMs: 2000 });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
    const d = JSON.parse(JSON.stringify(w.diffs[1]));
    expect(Object.keys(d.joins).sort()).toEqual(["p", "q"]);
    expect(Object.keys(d.leaves)).toEqual(["p"]);
    expect(w.view()).toEqual(view(Presence.listRaw(n.node, n.presence, "t")));
  });

  it("windows are per topic: a busy topic does not hold back a quiet one", async () => {
    const n = await one({ batchMs: 500 });
    const busy = new Watcher(n, "busy"), quiet = new Watcher(n, "quiet");
    const p = n.node.process();
    await Presence.track(p, n.presence, p.pid, "busy", "a", {});
    await Presence.track(p, n.presence, p.pid, "busy", "b", {}); // held
    const t0 = performance.now();
    await Presence.track(p, n.presence, p.pid, "quiet", "c", {});
    await waitFor(() => quiet.diffs.length === 1, { what: "the quiet topic's diff" });
    expect(performance.now() - t0).toBeLessThan(300);
    expect(busy.diffs).toHaveLength(1);
  });
});

describe("fetch", () => {
  const users: Record<string, string> = { u1: "Ann", u2: "Bob", u3: "Cy" };

  it("enriches list, getByKey and each broadcast diff's joins and leaves, one call per half per flush (batch)", async () => {
    const calls: Array<[string, string[]]> = [];
    const n = await one({
      batchMs: 300,
      fetch: async (topic, entries) => {
        calls.push([topic, Object.keys(entries).sort()]);
        const out: PresenceState = {};
        for (const [k, e] of Object.entries(entries)) out[k] = { ...e, name: users[k] };
        return out;
      },
    });
    const w = new Watcher(n, "room");
    const [a, b, c] = [n.node.process(), n.node.process(), n.node.process()];
    await Presence.track(a, n.presence, a.pid, "room", "u1", {});
    await waitFor(() => w.diffs.length === 1);
    await Presence.track(b, n.presence, b.pid, "room", "u2", {});
    await Presence.track(c, n.presence, c.pid, "room", "u3", {});
    await Presence.untrack(a, n.presence, a.pid);
    await waitFor(() => w.diffs.length === 2, { what: "the batched diff" });
    const d = JSON.parse(JSON.stringify(w.diffs[1]));
    expect(d.joins).toEqual({ u2: { metas: [expect.any(Object)], name: "Bob" }, u3: { metas: [expect.any(Object)], name: "Cy" } });
    expect(d.leaves).toEqual({ u1: { metas: [expect.any(Object)], name: "Ann" } });
    expect(calls).toEqual([
      ["room", ["u1"]],
      ["room", ["u2", "u3"]],
      ["room", ["u1"]],
    ]);
    const state = await Presence.list(n.me, n.presence, "room");
    expect(Object.fromEntries(Object.entries(state).map(([k, e]) => [k, e.name]))).toEqual({ u2: "Bob", u3: "Cy" });
    expect((await Presence.getByKey(n.me, n.presence, "room", "u3"))!.name).toBe("Cy");
    expect(Presence.listRaw(n.node, n.presence, "room").u3!.name).toBeUndefined();
  });

  it("a fetch that throws or drops keys: entries go out unfetched (logged, counted), no diff is lost", async () => {
    const errors: string[] = [];
    const logger = { ...silentLogger, error: (m: string) => void errors.push(m) };
    let mode: "throw" | "drop" | "ok" = "throw";
    const n = await one({
      batchMs: 0,
      logger,
      fetch: (_t, entries) => {
        if (mode === "throw") throw new Error("db down");
        if (mode === "drop") return {};
        return entries;
      },
    });
    const w = new Watcher(n, "room");
    const p = n.node.process();
    await Presence.track(p, n.presence, p.pid, "room", "x", {});
    await waitFor(() => w.diffs.length === 1, { what: "the diff despite the throw" });
    mode = "drop";
    await Presence.track(p, n.presence, p.pid, "room", "y", {});
    await waitFor(() => w.diffs.length === 2, { what: "the diff despite the dropped key" });
    expect(w.view().map(([k]) => k)).toEqual(["x", "y"]);
    expect(Presence.stats(n.node, n.presence).fetchErrors).toBe(2);
    expect(errors.some((e) => e.includes("db down"))).toBe(true);
    expect(errors.some((e) => e.includes("dropped or broke 1 key"))).toBe(true);
    mode = "throw";
    expect(Object.keys(await Presence.list(n.me, n.presence, "room")).sort()).toEqual(["x", "y"]);
  });

  it("a slow fetch: changes made meanwhile fold into the next diff, in order, none lost", async () => {
    let release!: () => void;
    let gate: Promise<void> | undefined = new Promise<void>((r) => (release = r));
    let calls = 0;
    const n = await one({
      batchMs: 0,
      fetch: async (_t, entries) => {
        calls++;
        if (gate) await gate;
        return entries;
      },
    });
    const w = new Watcher(n, "room");
    const p = n.node.process(), q = n.node.process();
    await Presence.track(p, n.presence, p.pid, "room", "p", {});
    await waitFor(() => calls === 1, { what: "fetch called" });
    await Presence.track(q, n.presence, q.pid, "room", "q", {});
    await Presence.update(p, n.presence, p.pid, "room", "p", { v: 2 });
    await Presence.untrack(q, n.presence, q.pid);
    expect(w.diffs).toHaveLength(0);
    gate = undefined;
    release();
    await waitFor(() => w.diffs.length === 2, { what: "two diffs" });
    await Presence.flush(n.node, n.presence);
    expect(w.diffs).toHaveLength(2);
    expect(w.view()).toEqual(view(Presence.listRaw(n.node, n.presence, "room")));
    expect(JSON.parse(JSON.stringify(w.diffs[1]!.joins)).p.metas[0].v).toBe(2);
  });
});

describe("message and dispatcher", () => {
  it("the message option builds what is broadcast (e.g. a channel layer's broadcast), with the dispatcher given", async () => {
    const seen: Array<{ topic: string; diff: PresenceDiff }> = [];
    PubSub.registerDispatcher("presence.test.dispatcher", (entries, from, message, ctx) => {
      for (const e of entries) if (e.pid !== from) ctx.send(e, { via: "dispatcher", message });
    });
    const n = await one({
      message: (topic, diff) => {
        seen.push({ topic, diff });
        return { $channels: "broadcast", topic, event: "presence_diff", payload: diff };
      },
      dispatcher: "presence.test.dispatcher",
    });
    const w = new Watcher(n, "room");
    const p = n.node.process();
    await Presence.track(p, n.presence, p.pid, "room", "z", {});
    await waitFor(() => (w.diffs, w.others.length === 1), { what: "the custom message" });
    expect(w.others[0]).toMatchObject({ via: "dispatcher", message: { $channels: "broadcast", topic: "room", event: "presence_diff" } });
    expect(seen).toHaveLength(1);
  });

  it("a message builder that throws is logged; presence keeps working for later diffs", async () => {
    const errors: string[] = [];
    let fail = true;
    const n = await one({
      batchMs: 0,
      logger: { ...silentLogger, error: (m: string) => void errors.push(m) },
      message: (topic, diff) => {
        if (fail) throw new Error("bad builder");
        return { $presence: "diff", presence: "pr", topic, event: "presence_diff", payload: diff };
      },
    });
    const w = new Watcher(n, "room");
    const p = n.node.process();
    await Presence.track(p, n.presence, p.pid, "room", "a", {});
    await waitFor(() => errors.length === 1);
    fail = false;
    await Presence.track(p, n.presence, p.pid, "room", "b", {});
    await waitFor(() => w.diffs.length === 1);
    expect(Presence.stats(n.node, n.presence).running).toBe(true);
  });
});

describe("options, names and supervision", () => {
  it("bad options throw typed errors naming the option; presence options and tracker options alike", async () => {
    const bad = (o: object) => {
      try {
        Presence.childSpec({ name: "x", pubsub: "ps", ...o } as never);
      } catch (e) {
        return [(e as CinderError).constructor.name, (e as PresenceOptionError).option];
      }
      return "accepted";
    };
    expect(bad({ batchMs: -1 })).toEqual(["PresenceOptionError", "batchMs"]);
    expect(bad({ batchMs: Infinity })).toEqual(["PresenceOptionError", "batchMs"]);
    expect(bad({ fetch: 3 })).toEqual(["PresenceOptionError", "fetch"]);
    expect(bad({ message: "x" })).toEqual(["PresenceOptionError", "message"]);
    expect(bad({ dispatcher: 1 })).toEqual(["PresenceOptionError", "dispatcher"]);
    expect(bad({ name: "" })).toEqual(["PresenceOptionError", "name"]);
    expect(bad({ pubsub: undefined })).toEqual(["PresenceOptionError", "pubsub"]);
    expect(bad({ poolSize: 0 })).toEqual(["TrackerOptionError", "poolSize"]);
    expect(bad({ broadcastPeriod: 100, downPeriod: 150 })).toEqual(["TrackerOptionError", "downPeriod"]);
    expect(bad({ batchMs: 0, poolSize: 4 })).toBe("accepted");
    expect(TrackerOptionError).toBeDefined();
  });

  it("a taken name fails the start with already_started; an unknown Presence is NoProcError", async () => {
    const n = await one();
    await expect(Presence.start(n.node, { name: "pr", pubsub: n.ps })).rejects.toMatchObject({ code: "already_started" });
    expect(() => Presence.ref(n.node, "nope")).toThrow(NoProcError);
    expect(() => Presence.listRaw(n.node, "nope", "t")).toThrow(NoProcError);
    // the running one still works
    const p = n.node.process();
    await Presence.track(p, "pr", p.pid, "t", "k", {});
    expect(keysOf(Presence.listRaw(n.node, "pr", "t"))).toEqual(["k"]);
  });

  it("works with a pool of shards: topics spread over shards, each topic's diffs in order", async () => {
    const n = await one({ poolSize: 4, batchMs: 0 });
    const topics = Array.from({ length: 12 }, (_, i) => `t${i}`);
    const ws = topics.map((t) => new Watcher(n, t));
    const p = n.node.process();
    for (const t of topics) {
      await Presence.track(p, n.presence, p.pid, t, "a", { v: 1 });
      await Presence.update(p, n.presence, p.pid, t, "a", { v: 2 });
    }
    await Presence.untrack(p, n.presence, p.pid);
    await Presence.flush(n.node, n.presence);
    const shards = new Set(topics.map((t) => Tracker.shardOf(n.node, Presence.tracker(n.node, n.presence), t)));
    expect(shards.size).toBeGreaterThan(1);
    await waitFor(() => ws.every((w) => w.view().length === 0 && w.diffs.length >= 1));
    for (const w of ws) expect(w.view()).toEqual([]);
  });

  it("a crashed broadcaster is restarted with its tracker (rest_for_one): tracked actors get the shard's exit, so none believes itself present in a tracker that forgot it", async () => {
    const node = await startNode({ name: "sup", schedulers: 1, logger: silentLogger });
    nodes.push(node);
    await node.startChild(PubSub.childSpec({ name: "ps" }));
    await node.startChild(Presence.childSpec({ name: "pr", pubsub: "ps", broadcastPeriod: 20, downPeriod: 300, permdownPeriod: 1200, onShardExit: "notify" }));
    const user = node.process();
    await Presence.track(user, "pr", user.pid, "t", "k", {});
    const before = node.whereis("pr.broadcaster");
    node.exit(before!, "boom");
    const msg = (await user.receive({ timeout: 5000 })) as { type: string };
    expect(msg.type).toBe("tracker_shard_down");
    await waitFor(() => node.whereis("pr.broadcaster") !== undefined && node.whereis("pr.broadcaster") !== before && Presence.stats(node, "pr").running);
    await waitFor(() => Tracker.stats(node, Presence.tracker(node, "pr")).length === 1);
    // fresh and working: re-track, diffs flow
    const w = new Watcher({ name: "sup", node, ps: PubSub.ref(node, "ps"), presence: Presence.ref(node, "pr"), me: node.process() }, "t");
    await Presence.track(user, "pr", user.pid, "t", "k", {});
    await waitFor(() => w.diffs.length === 1);
    expect(keysOf(Presence.listRaw(node, "pr", "t"))).toEqual(["k"]);
    expect((await Supervisor.whichChildren(node, "pr")).map((c) => c.id)).toEqual(["broadcaster", "tracker"]);
    expect(GenServer).toBeDefined();
  });

  it("gracefulPermdown broadcasts what is pending, then stops the tracker for good", async () => {
    const n = await one({ batchMs: 60_000 });
    const w = new Watcher(n, "t");
    const p = n.node.process();
    await Presence.track(p, n.presence, p.pid, "t", "a", {});
    await waitFor(() => w.diffs.length === 1);
    await Presence.track(p, n.presence, p.pid, "t", "b", {}); // held by the window
    await Presence.gracefulPermdown(n.node, n.presence);
    expect(w.diffs).toHaveLength(2);
    expect(n.node.whereis("pr.tracker")).toBeUndefined();
    await holdsFor(() => n.node.whereis("pr.tracker") === undefined, 100, "not restarted");
  });
});
