/**
 * The pool and the API (TRACKER.md section 4): pool sizes, supervision, the topic → shard hash,
 * and `update` with a function against concurrent updates (5.2).
 */
import { afterEach, describe, expect, it } from "vitest";
import { Supervisor, spawnOn, silentLogger, startNode, type CinderNode, type Pid } from "@cinder/runtime";
import { PubSub } from "@cinder/pubsub";
import { Tracker, UpdateConflictError, shardOf, topicHash, type TrackerRef } from "@cinder/tracker";
import { listView, startTrackerNode, waitFor, type TNode } from "./support/cluster.js";

const live: CinderNode[] = [];
afterEach(async () => {
  for (const n of live.splice(0)) await n.stop();
});

async function solo(extra = {}): Promise<TNode> {
  const n = await startTrackerNode("solo", null, extra);
  live.push(n.node);
  return n;
}

/** [topic, FNV-1a 32 of its UTF-8 bytes, shard of 2, of 8, of 512] (computed with Buffer.from(topic, "utf8")). */
const GOLDEN: Array<[string, number, number, number, number]> = [
  ["", 2166136261, 1, 5, 453],
  ["a", 3826002220, 0, 4, 300],
  ["foobar", 3214735720, 0, 0, 360],
  ["room:lobby", 3566630712, 0, 0, 312],
  ["t:0", 4103227121, 1, 1, 241],
  ["t:999", 2166406972, 0, 4, 316],
  ["users:42", 2814391629, 1, 5, 333],
  ["héllo", 1252296000, 0, 0, 320],
  ["日本語", 2153733351, 1, 7, 231],
  ["🔥 fire", 2938501077, 1, 5, 469],
  ["\ud800x", 1538974390, 0, 6, 182], // lone surrogates hash as U+FFFD, as UTF-8 encoders write them
  ["a\udc00", 3644493853, 1, 5, 29],
];

describe("topic → shard (T47)", () => {
  it("T47 the hash matches golden vectors on the main thread and on a worker scheduler, and equals FNV-1a of the UTF-8 bytes for arbitrary strings", async () => {
    for (const [t, h, s2, s8, s512] of GOLDEN) {
      expect(topicHash(t), JSON.stringify(t)).toBe(h);
      expect([shardOf(t, 1), shardOf(t, 2), shardOf(t, 8), shardOf(t, 512)]).toEqual([0, s2, s8, s512]);
    }
    const ref = (s: string) => {
      let h = 0x811c9dc5;
      for (const b of Buffer.from(s, "utf8")) h = Math.imul(h ^ b, 0x01000193);
      return h >>> 0;
    };
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
    for (let i = 0; i < 2000; i++) {
      const s = String.fromCharCode(...Array.from({ length: Math.floor(rnd() * 12) }, () => Math.floor(rnd() * (rnd() < 0.7 ? 0x80 : 0x10000))));
      expect(topicHash(s)).toBe(ref(s));
    }
    // a worker thread agrees
    const node = await startNode({ name: "hash", schedulers: 2, logger: silentLogger });
    live.push(node);
    const me = node.process();
    await spawnOn(node, 1, { module: new URL("./fixtures/hash_actor.ts", import.meta.url), export: "hasher" }, [me.pid, GOLDEN.map((g) => g[0])]);
    const got = (await me.receive({ timeout: 10_000 })) as { scheduler: string; hashes: number[][] };
    expect(got.scheduler).toContain(".1"); // it ran on scheduler 1
    expect(got.hashes).toEqual(GOLDEN.map(([, h, , s8, s512]) => [h, s8, s512]));
  });
});

describe("actors on other schedulers (3.9)", () => {
  it("T33 an actor on a worker scheduler can be tracked (it is local); when its thread dies, the DOWN (noconnection) untracks it", async () => {
    const node = await startNode({ name: "w", schedulers: 2, logger: silentLogger });
    live.push(node);
    const ps = await PubSub.start(node, { name: "ps" });
    const leaves: string[] = [];
    const tracker = await Tracker.start(node, { name: "tr", pubsub: ps, handleDiff: (d, s) => { for (const x of d.values()) for (const l of x.leaves) leaves.push(l.key); return { state: s }; } });
    const { pid } = await spawnOn(node, 1, { module: new URL("./fixtures/hash_actor.ts", import.meta.url), export: "idler" }, []);
    const me = node.process();
    await Tracker.track(me, tracker, pid, "room", "worker", {});
    expect(Tracker.getByKey(node, tracker, "room", "worker")).toMatchObject([{ pid }]);
    await node.killScheduler(1);
    await waitFor(() => leaves.includes("worker"), { timeoutMs: 10_000, what: "the leave of the actor of the dead thread" });
    expect(Tracker.list(node, tracker, "room")).toEqual([]);
    expect(Tracker.stats(node, tracker)[0]!.monitors).toBe(0);
  });
});

describe("pool sizes (T45)", () => {
  for (const poolSize of [1, 2, 8, 512]) {
    it(`T45 pool size ${poolSize}: track/list with refs over 100 topics, untrack both forms, update with an object and a function, gracefulPermdown stops every shard and the pool normally, a restarted pool lists nothing`, async () => {
      const n = await solo({ poolSize });
      expect(Tracker.stats(n.node, n.tracker)).toHaveLength(poolSize);
      const p = n.node.process();
      const ref0 = await Tracker.track(n.me, n.tracker, p.pid, "room", "alice", { a: 1 });
      expect(Tracker.list(n.node, n.tracker, "room")).toEqual([{ key: "alice", meta: { a: 1, phx_ref: ref0 } }]);
      const topics = Array.from({ length: 100 }, (_, i) => `topic:${i}`);
      const refs = new Map<string, string>();
      for (const t of topics) refs.set(t, await Tracker.track(n.me, n.tracker, p.pid, t, "k", { t }));
      for (const t of topics) expect(Tracker.list(n.node, n.tracker, t)).toEqual([{ key: "k", meta: { t, phx_ref: refs.get(t) } }]);
      if (poolSize > 1) expect(new Set(topics.map((t) => Tracker.shardOf(n.node, n.tracker, t))).size).toBeGreaterThan(1);
      // updates
      const u1 = await Tracker.update(n.me, n.tracker, p.pid, "topic:1", "k", { v: 2 });
      expect(Tracker.list(n.node, n.tracker, "topic:1")).toEqual([{ key: "k", meta: { v: 2, phx_ref: u1, phx_ref_prev: refs.get("topic:1") } }]);
      const u2 = await Tracker.update(n.me, n.tracker, p.pid, "topic:1", "k", (m) => ({ v: (m.v as number) + 1 }));
      expect(Tracker.list(n.node, n.tracker, "topic:1")).toEqual([{ key: "k", meta: { v: 3, phx_ref: u2, phx_ref_prev: u1 } }]);
      // untrack(pid, topic, key) of half, untrack(pid) of the rest
      for (const t of topics.slice(0, 50)) expect(await Tracker.untrack(n.me, n.tracker, p.pid, t, "k")).toBe("ok");
      for (const t of topics.slice(0, 50)) expect(Tracker.list(n.node, n.tracker, t)).toEqual([]);
      expect(await Tracker.untrack(n.me, n.tracker, p.pid)).toBe("ok");
      for (const t of [...topics, "room"]) expect(Tracker.list(n.node, n.tracker, t)).toEqual([]);
      expect(n.diffs.joins).toBe(103);
      expect(n.diffs.leaves).toBe(103);
      // graceful permdown: every shard and the pool stop normally
      const watcher = n.node.process();
      const sup = n.node.whereis("tr")!;
      const pids = [sup, ...Tracker.stats(n.node, n.tracker).map((s) => s.pid)];
      for (const pid of pids) watcher.monitor(pid);
      const q = n.node.process();
      await Tracker.track(n.me, n.tracker, q.pid, "room", "bob", {});
      await Tracker.gracefulPermdown(n.me, n.tracker);
      const downs: Array<{ pid: Pid; reason: unknown }> = [];
      while (downs.length < pids.length) downs.push((await watcher.receive({ timeout: 5000 })) as never);
      expect(new Set(downs.map((d) => d.pid))).toEqual(new Set(pids));
      expect(downs.every((d) => d.reason === "normal")).toBe(true);
      expect(n.node.whereis("tr")).toBeUndefined();
      expect(Tracker.list(n.node, n.tracker, "room")).toEqual([]);
      // a restarted pool lists nothing
      const again = await Tracker.start(n.node, { name: "tr", pubsub: n.ps, poolSize, broadcastPeriod: 20, downPeriod: 300, permdownPeriod: 1200 });
      expect(Tracker.stats(n.node, again)).toHaveLength(poolSize);
      for (const t of [...topics, "room"]) expect(Tracker.list(n.node, again, t)).toEqual([]);
      expect(Tracker.list(n.node, n.tracker, "room")).toEqual([]); // the old handle reaches the new pool
    });
  }
});

describe("supervision (T46)", () => {
  it("T46 the tracker runs in a supervision tree as a supervisor child; each shard calls init itself; a pool restarted by its parent serves the same handle", async () => {
    const node = await startNode({ name: "sup", schedulers: 1, logger: silentLogger });
    live.push(node);
    const inits: number[] = [];
    const tree = await Supervisor.start(node, {
      strategy: "rest_for_one",
      children: [
        PubSub.childSpec({ name: "app_ps" }),
        Tracker.childSpec({ name: "app_tr", pubsub: "app_ps", poolSize: 4, init: (_a, info) => void inits.push(info.shard) }),
      ],
    });
    const children = await Supervisor.whichChildren(node, tree);
    expect(children.map((c) => [c.id, c.type])).toEqual([
      ["app_ps", "supervisor"],
      ["app_tr", "supervisor"],
    ]);
    expect(inits.sort()).toEqual([0, 1, 2, 3]);
    const tracker: TrackerRef = Tracker.ref(node, "app_tr");
    const p = node.process();
    await Tracker.track(p, tracker, p.pid, "room", "alice", {});
    expect(Tracker.list(node, "app_tr", "room").map((x) => x.key)).toEqual(["alice"]);
    // the pool's supervisor dies: the tree restarts it, empty, behind the same handle
    const old = node.whereis("app_tr")!;
    node.exit(old, "kill");
    await waitFor(() => node.whereis("app_tr") !== undefined && node.whereis("app_tr") !== old && Tracker.stats(node, tracker).length === 4);
    expect(inits).toHaveLength(8);
    expect(Tracker.list(node, tracker, "room")).toEqual([]);
    const q = node.process();
    await Tracker.track(q, tracker, q.pid, "room", "bob", {});
    expect(Tracker.list(node, tracker, "room").map((x) => x.key)).toEqual(["bob"]);
    // and as a child of the node's root supervisor
    await node.startChild(PubSub.childSpec({ name: "root_ps" }));
    await node.startChild(Tracker.childSpec({ name: "root_tr", pubsub: "root_ps" }));
    await Tracker.track(q, "root_tr", q.pid, "room", "carol", {});
    expect(Tracker.list(q, "root_tr", "room").map((x) => x.key)).toEqual(["carol"]);
    // a second tracker of the same name on this node is refused
    await expect(Tracker.start(node, { name: "root_tr", pubsub: "root_ps" })).rejects.toMatchObject({ code: "already_started" });
    expect(Tracker.list(q, "root_tr", "room").map((x) => x.key)).toEqual(["carol"]);
  });
});

describe("update with a function (T64)", () => {
  it("T64 (5.2) update with a function applies once; a concurrent update makes it run again on the new meta; exhausting the attempts gives conflict", async () => {
    const n = await solo({ updateAttempts: 3 });
    const p = n.node.process();
    await Tracker.track(n.me, n.tracker, p.pid, "room", "alice", { n: 0 });
    // no concurrency: the function runs once, the shard applies it once
    let runs = 0;
    await Tracker.update(n.me, n.tracker, p.pid, "room", "alice", (m) => {
      runs++;
      return { n: (m.n as number) + 1 };
    });
    expect(runs).toBe(1);
    expect(Tracker.list(n.node, n.tracker, "room")[0]!.meta.n).toBe(1);
    // a concurrent update lands between the read and the apply: the function runs again
    runs = 0;
    const seen: unknown[] = [];
    let concurrent: Promise<string> | undefined;
    const ref = await Tracker.update(n.me, n.tracker, p.pid, "room", "alice", (m) => {
      runs++;
      seen.push(m.n);
      if (runs === 1) concurrent = Tracker.update(n.me, n.tracker, p.pid, "room", "alice", { n: 100 });
      return { n: (m.n as number) + 1 };
    });
    const cref = await concurrent!;
    expect(runs).toBe(2);
    expect(seen).toEqual([1, 100]);
    expect(Tracker.list(n.node, n.tracker, "room")).toEqual([{ key: "alice", meta: { n: 101, phx_ref: ref, phx_ref_prev: cref } }]);
    const joinsBefore = n.diffs.joins;
    // always losing: conflict after 3 attempts; the concurrent updates all applied
    runs = 0;
    const others: Array<Promise<string>> = [];
    const err = await Tracker.update(n.me, n.tracker, p.pid, "room", "alice", (m) => {
      runs++;
      others.push(Tracker.update(n.me, n.tracker, p.pid, "room", "alice", { n: (m.n as number) + 1000 }));
      return { mine: true };
    }).catch((e: unknown) => e);
    await Promise.all(others);
    expect(err).toBeInstanceOf(UpdateConflictError);
    expect(err).toMatchObject({ code: "conflict", attempts: 3, topic: "room", key: "alice" });
    expect(runs).toBe(3);
    expect(Tracker.list(n.node, n.tracker, "room")[0]!.meta.n).toBe(3101);
    expect(n.diffs.joins - joinsBefore).toBe(3);
    expect(listView(n, "room")).toEqual(n.diffs.view("room"));
    // a function that throws fails the caller only
    await expect(Tracker.update(n.me, n.tracker, p.pid, "room", "alice", () => { throw new Error("mine"); })).rejects.toThrow("mine");
    await Tracker.track(n.me, n.tracker, p.pid, "room", "still-alive", {});
  });
});
