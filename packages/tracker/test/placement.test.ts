/**
 * Shards spread over worker schedulers (`schedulers: "spread" | number[]`, internal/spread.ts):
 * placement, reads from any thread, update with a function (T64), crash-driven untracking
 * across threads, callbacks on the caller's thread, a dying shard thread, and two nodes.
 */
import { threadId } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryCluster, silentLogger, spawnOn, startNode, type CinderNode, type ClusterTransport, type Pid, type Process } from "@cinder/runtime";
import { PubSub, clusterAdapter } from "@cinder/pubsub";
import { Tracker, TrackerOptionError, UpdateConflictError, shardOf, type ShardInfo, type TrackerOptions, type TrackerRef } from "@cinder/tracker";
import { DiffLog, fastOpts, waitFor } from "./support/cluster.js";

const live: CinderNode[] = [];
const clusters: MemoryCluster[] = [];
afterEach(async () => {
  for (const n of live.splice(0)) await n.stop();
  for (const c of clusters.splice(0)) await c.close();
});

const fixtures = new URL("./fixtures/spread_actors.ts", import.meta.url);
const idlerRef = { module: new URL("./fixtures/hash_actor.ts", import.meta.url), export: "idler" };
const POOL = 4;

/** The scheduler index a pid lives on (`<tag.<index><incarnation letter>.<n>>`). */
function schedulerOf(pid: string): number {
  const m = /\.(\d+)[a-z]+\.\d+>$/.exec(pid);
  if (m === null) throw new Error(`no scheduler in ${pid}`);
  return Number(m[1]);
}

/** A topic name of shard `i` (of POOL). */
function topicOf(i: number, tag = "t"): string {
  for (let n = 0; ; n++) if (shardOf(`${tag}:${n}`, POOL) === i) return `${tag}:${n}`;
}

interface SNode {
  node: CinderNode;
  tracker: TrackerRef;
  diffs: DiffLog;
  me: Process<any>;
  /** threadId of each handleDiff / init call */
  callbackThreads: number[];
  infos: ShardInfo[];
  infoMsgs: unknown[];
}

async function spreadNode(name: string, t: ClusterTransport | null = null, extra: Partial<TrackerOptions> = {}): Promise<SNode> {
  const node = await startNode({ name, schedulers: 3, logger: silentLogger });
  live.push(node);
  const ps = await PubSub.start(node, t === null ? { name: "ps" } : { name: "ps", adapter: clusterAdapter(t, { interestSyncMs: 40 }) });
  const diffs = new DiffLog();
  const callbackThreads: number[] = [];
  const infos: ShardInfo[] = [];
  const infoMsgs: unknown[] = [];
  const tracker = await Tracker.start(node, {
    name: "tr",
    pubsub: ps,
    poolSize: POOL,
    schedulers: "spread",
    ...fastOpts(),
    init: (_arg, info) => {
      callbackThreads.push(threadId);
      infos.push(info);
      return 0;
    },
    handleDiff: (diff, n: number) => {
      callbackThreads.push(threadId);
      diffs.apply(diff);
      return { state: n + 1 };
    },
    handleInfo: (msg, n: number) => {
      infoMsgs.push(msg);
      return { state: n };
    },
    ...(extra as object),
  });
  return { node, tracker, diffs, me: node.process(), callbackThreads, infos, infoMsgs };
}

/** A tracker client process on scheduler `at`; `ask` sends a command and waits for its answer. */
async function client(n: SNode, at: number) {
  const inbox = n.node.process();
  const { pid } = await spawnOn(n.node, at, { module: fixtures, export: "trackerClient" }, [inbox.pid]);
  let seq = 0;
  return {
    pid,
    async ask(cmd: Record<string, unknown>): Promise<any> {
      const id = ++seq;
      inbox.send(pid, { ...cmd, id });
      return inbox.receive({ timeout: 10_000, match: (m: any) => m?.id === id } as never);
    },
  };
}

function shardPids(n: SNode): Pid[] {
  return Tracker.stats(n.node, n.tracker)
    .sort((a, b) => a.shard - b.shard)
    .map((s) => s.pid);
}

describe("spread shards (TRACKER.md 5.2)", () => {
  it("places shard i on worker scheduler i round-robin; the callbacks run on the caller's thread; T64 update with a function on a shard on another thread", async () => {
    const n = await spreadNode("sp1");
    await waitFor(() => Tracker.stats(n.node, n.tracker).length === POOL, { what: "every shard's stats" });
    expect(shardPids(n).map(schedulerOf)).toEqual([1, 2, 1, 2]);
    expect(n.infos.map((i) => i.shard).sort()).toEqual([0, 1, 2, 3]);
    const p = n.node.process();
    const topic = topicOf(1);
    await Tracker.track(n.me, n.tracker, p.pid, topic, "alice", { n: 0 });
    // read-your-writes on the caller's thread, from the read copy
    expect(Tracker.list(n.node, n.tracker, topic).map((x) => x.meta.n)).toEqual([0]);
    expect(n.diffs.view(topic)).toHaveLength(1);
    // T64: no concurrency: runs once
    let runs = 0;
    await Tracker.update(n.me, n.tracker, p.pid, topic, "alice", (m) => (runs++, { n: (m.n as number) + 1 }));
    expect(runs).toBe(1);
    expect(Tracker.getByKey(n.node, n.tracker, topic, "alice")).toEqual([{ pid: p.pid, meta: expect.objectContaining({ n: 1 }) }]);
    // a concurrent update lands between the read and the apply: runs again on the new meta
    runs = 0;
    const seen: unknown[] = [];
    let concurrent: Promise<string> | undefined;
    const ref = await Tracker.update(n.me, n.tracker, p.pid, topic, "alice", (m) => {
      runs++;
      seen.push(m.n);
      if (runs === 1) concurrent = Tracker.update(n.me, n.tracker, p.pid, topic, "alice", { n: 100 });
      return { n: (m.n as number) + 1 };
    });
    const cref = await concurrent!;
    expect([runs, seen]).toEqual([2, [1, 100]]);
    expect(Tracker.list(n.node, n.tracker, topic)).toEqual([{ key: "alice", meta: { n: 101, phx_ref: ref, phx_ref_prev: cref } }]);
    // always losing: conflict after updateAttempts (5)
    runs = 0;
    const others: Array<Promise<string>> = [];
    const err = await Tracker.update(n.me, n.tracker, p.pid, topic, "alice", (m) => {
      runs++;
      others.push(Tracker.update(n.me, n.tracker, p.pid, topic, "alice", { n: (m.n as number) + 1000 }));
      return { mine: true };
    }).catch((e: unknown) => e);
    await Promise.all(others);
    expect(err).toBeInstanceOf(UpdateConflictError);
    expect(runs).toBe(5);
    expect(Tracker.list(n.node, n.tracker, topic)[0]!.meta.n).toBe(5101);
    // every init / handleDiff ran on this (the caller's) thread; diffs add up to list
    expect(n.callbackThreads.length).toBeGreaterThan(POOL);
    expect(new Set(n.callbackThreads)).toEqual(new Set([threadId]));
    await waitFor(() => n.diffs.view(topic).length === 1 && n.diffs.view(topic)[0] === `alice ${String(Tracker.list(n.node, n.tracker, topic)[0]!.meta.phx_ref)}`, { what: "diffs equal list" });
    expect(n.diffs.problems).toEqual([]);
    // an unknown message sent to a shard reaches handleInfo on the caller's thread
    n.me.send(shardPids(n)[1]!, { hello: "shard" });
    await waitFor(() => n.infoMsgs.length === 1);
    expect(n.infoMsgs).toEqual([{ hello: "shard" }]);
  });

  it("list and getByKey from the main thread and from processes on workers; tracks from a worker are read back at once there", async () => {
    const n = await spreadNode("sp2");
    const c1 = await client(n, 1);
    const c2 = await client(n, 2);
    const topics = [0, 1, 2, 3].map((i) => topicOf(i, "room"));
    // tracked from the main thread
    const p = n.node.process();
    for (const t of topics) await Tracker.track(n.me, n.tracker, p.pid, t, "main", { from: "main" });
    // tracked by worker processes themselves (scheduler 1 and 2), each read back at once on its own thread
    for (const t of topics) {
      const a = await c1.ask({ op: "track", topic: t, key: "w1", meta: { from: 1 } });
      expect(a.error).toBeUndefined();
      expect(a.after).toEqual([{ pid: c1.pid, meta: { from: 1, phx_ref: a.ref } }]);
      const b = await c2.ask({ op: "track", topic: t, key: "w2", meta: { from: 2 } });
      expect(b.after).toEqual([{ pid: c2.pid, meta: { from: 2, phx_ref: b.ref } }]);
    }
    const keys = (l: Array<{ key: string }>) => l.map((x) => x.key).sort();
    for (const t of topics) {
      // the main thread is a third thread for a worker's write: it sees it one hop later
      await waitFor(() => keys(Tracker.list(n.node, n.tracker, t)).join() === "main,w1,w2", { what: `main lists ${t}` });
      // each worker sees every shard's rows: its own thread's shard live, the others through its copy
      await waitFor(async () => keys((await c1.ask({ op: "list", topic: t })).list).join() === "main,w1,w2", { what: `worker 1 lists ${t}` });
      await waitFor(async () => keys((await c2.ask({ op: "list", topic: t })).list).join() === "main,w1,w2", { what: `worker 2 lists ${t}` });
      expect((await c2.ask({ op: "byKey", topic: t, key: "w1" })).list).toEqual([{ pid: c1.pid, meta: expect.objectContaining({ from: 1 }) }]);
    }
    // update with a function from a worker, read back there
    const u = await c1.ask({ op: "bump", topic: topics[2], key: "w1" });
    expect(u.after[0].meta).toMatchObject({ n: 1, phx_ref: u.ref });
    await waitFor(() => (Tracker.getByKey(n.node, n.tracker, topics[2]!, "w1")[0]?.meta as { n?: number } | undefined)?.n === 1, { what: "main sees the update" });
    expect(Tracker.getByKey(n.node, n.tracker, topics[2]!, "w1")[0]!.meta).toMatchObject({ n: 1, phx_ref: u.ref });
    // untrack(pid) from a worker: every shard
    await c2.ask({ op: "untrack" });
    for (const t of topics) await waitFor(() => keys(Tracker.list(n.node, n.tracker, t)).join() === "main,w1", { what: `main sees the untrack on ${t}` });
    expect(n.diffs.problems).toEqual([]);
    for (const t of topics) expect(n.diffs.view(t)).toEqual(Tracker.list(n.node, n.tracker, t).map((x) => `${x.key} ${String(x.meta.phx_ref)}`).sort());
  });

  it("crash-driven untracking works with the tracked actor and its shard on different threads (and on the caller's thread)", async () => {
    const n = await spreadNode("sp3");
    const topic = topicOf(0); // shard 0: scheduler 1
    const { pid: onTwo } = await spawnOn(n.node, 2, idlerRef, []);
    const onMain = n.node.process();
    await Tracker.track(n.me, n.tracker, onTwo, topic, "two", {});
    await Tracker.track(n.me, n.tracker, onMain.pid, topic, "main", {});
    expect(Tracker.list(n.node, n.tracker, topic).map((x) => x.key).sort()).toEqual(["main", "two"]);
    n.node.exit(onTwo, "kill");
    await waitFor(() => Tracker.list(n.node, n.tracker, topic).length === 1, { what: "the worker actor's exit untracks it" });
    onMain.exit("bye");
    await waitFor(() => Tracker.list(n.node, n.tracker, topic).length === 0, { what: "the main actor's exit untracks it" });
    await waitFor(() => n.diffs.view(topic).length === 0 && n.diffs.leaves === 2);
    expect(Tracker.stats(n.node, n.tracker).find((s) => s.shard === 0)).toBeDefined();
  });

  it("a handleDiff that throws crashes its shard (on the worker) through the dispatcher; the pool restarts it", async () => {
    let boom = false;
    const n = await spreadNode("sp4", null, { handleDiff: (_d: unknown, s: unknown) => { if (boom) throw new Error("boom"); return { state: s }; } } as never);
    await waitFor(() => Tracker.stats(n.node, n.tracker).length === POOL);
    const before = shardPids(n)[3];
    const topic = topicOf(3);
    const actor = n.node.process();
    actor.trapExit(true);
    boom = true;
    await Tracker.track(n.me, n.tracker, actor.pid, topic, "a", {});
    // the shard went down with the dispatcher's reason: its tracked actor got the exit signal
    const exit = (await actor.receive({ timeout: 5000 })) as { type: string; reason: unknown };
    expect(exit.type).toBe("EXIT");
    boom = false;
    await waitFor(() => { const p = shardPids(n)[3]; return p !== undefined && p !== before && Tracker.stats(n.node, n.tracker).length === POOL; }, { what: "shard 3 restarted" });
    expect(Tracker.list(n.node, n.tracker, topic)).toEqual([]);
    await Tracker.track(n.me, n.tracker, actor.pid, topic, "a", {});
    expect(Tracker.list(n.node, n.tracker, topic).map((x) => x.key)).toEqual(["a"]);
  });

  it("killScheduler of a shard's thread: its actors are told, the pool restarts the shard on that thread, and every thread reads again", async () => {
    const n = await spreadNode("sp5", null, { onShardExit: "notify" });
    await waitFor(() => Tracker.stats(n.node, n.tracker).length === POOL);
    const t0 = topicOf(0); // scheduler 1
    const t1 = topicOf(1); // scheduler 2
    const a = n.node.process();
    await Tracker.track(n.me, n.tracker, a.pid, t0, "a", {});
    await Tracker.track(n.me, n.tracker, a.pid, t1, "a", {});
    const old = shardPids(n);
    await n.node.killScheduler(1);
    const down = (await a.receive({ timeout: 5000 })) as { type: string; shard: number; reason: unknown };
    expect(down).toMatchObject({ type: "tracker_shard_down", shard: 0, reason: "noconnection" });
    // shards 0 and 2 come back on scheduler 1 as new replicas; 1 and 3 were untouched
    await n.node.schedulerReady(1);
    await waitFor(() => {
      const now = shardPids(n);
      return now.length === POOL && now[0] !== old[0] && now[2] !== old[2];
    }, { timeoutMs: 10_000, what: "shards 0 and 2 restarted" });
    const now = shardPids(n);
    expect(now.map(schedulerOf)).toEqual([1, 2, 1, 2]);
    expect([now[1], now[3]]).toEqual([old[1], old[3]]);
    // the restarted shard lost its local presences (a crash): a re-tracks
    expect(Tracker.list(n.node, n.tracker, t0)).toEqual([]);
    expect(Tracker.list(n.node, n.tracker, t1).map((x) => x.key)).toEqual(["a"]);
    await Tracker.track(n.me, n.tracker, a.pid, t0, "a", { again: true });
    expect(Tracker.list(n.node, n.tracker, t0).map((x) => x.meta.again)).toEqual([true]);
    // the restarted thread reads the other thread's shard (snapshot) and its own
    const c = await client(n, 1);
    await waitFor(async () => (await c.ask({ op: "list", topic: t1 })).list.length === 1, { what: "restarted thread reads shard 1 (scheduler 2)" });
    await waitFor(async () => (await c.ask({ op: "list", topic: t0 })).list.length === 1, { what: "restarted thread reads shard 0" });
  });

  it("rejects a scheduler list naming no worker of the node; spread on a node without workers keeps the shards on the caller's thread", async () => {
    const node = await startNode({ name: "sp6", schedulers: 2, logger: silentLogger });
    live.push(node);
    const ps = await PubSub.start(node, { name: "ps" });
    await expect(Tracker.start(node, { name: "bad", pubsub: ps, schedulers: [5] })).rejects.toBeInstanceOf(TrackerOptionError);
    expect(() => Tracker.childSpec({ name: "bad2", pubsub: ps, schedulers: [0] })).toThrow(TrackerOptionError);
    const one = await startNode({ name: "sp7", schedulers: 1, logger: silentLogger });
    live.push(one);
    const ps1 = await PubSub.start(one, { name: "ps" });
    const tr = await Tracker.start(one, { name: "tr", pubsub: ps1, schedulers: "spread", poolSize: 2 });
    expect(Tracker.stats(one, tr).map((s) => schedulerOf(s.pid))).toEqual([0, 0]);
  });

  it("two nodes over a MemoryCluster with spread shards converge, and a worker process reads the other node's presences", async () => {
    const cluster = new MemoryCluster({ heartbeatMs: 10, downAfterMs: 150, logger: { warn() {}, error() {} } });
    clusters.push(cluster);
    const nodes: SNode[] = [];
    for (const name of ["a", "b"]) {
      const t = cluster.node(name);
      await t.start();
      nodes.push(await spreadNode(name, t));
    }
    const [a, b] = nodes as [SNode, SNode];
    const topics = Array.from({ length: 12 }, (_, i) => `room:${i}`);
    const actors = new Map<SNode, Process<any>[]>();
    for (const n of nodes) {
      const ps = Array.from({ length: 5 }, () => n.node.process());
      actors.set(n, ps);
      for (const t of topics) for (const [i, p] of ps.entries()) await Tracker.track(n.me, n.tracker, p.pid, t, `${n === a ? "a" : "b"}${i}`, {});
    }
    const expected = [...Array.from({ length: 5 }, (_, i) => `a${i}`), ...Array.from({ length: 5 }, (_, i) => `b${i}`)].sort();
    const keys = (n: SNode, t: string) => Tracker.list(n.node, n.tracker, t).map((x) => x.key).sort().join();
    await waitFor(() => nodes.every((n) => topics.every((t) => keys(n, t) === expected.join())), { timeoutMs: 10_000, what: "both nodes list every presence" });
    // actors of a die: both nodes drop them
    for (const p of actors.get(a)!) p.exit("bye");
    const onlyB = expected.filter((k) => k.startsWith("b")).join();
    await waitFor(() => nodes.every((n) => topics.every((t) => keys(n, t) === onlyB)), { timeoutMs: 10_000, what: "a's leaves reach b" });
    const c = await client(b, 2);
    for (const t of topics.slice(0, 3)) expect((await c.ask({ op: "list", topic: t })).list.map((x: { key: string }) => x.key).sort().join()).toBe(onlyB);
    for (const n of nodes) {
      expect(n.diffs.problems).toEqual([]);
      for (const t of topics) expect(n.diffs.view(t)).toEqual(Tracker.list(n.node, n.tracker, t).map((x) => `${x.key} ${String(x.meta.phx_ref)}`).sort());
    }
    // graceful permdown of b's spread pool: a drops b's presences at once; b's pool and dispatchers stop
    await Tracker.gracefulPermdown(b.me, b.tracker);
    await waitFor(() => topics.every((t) => keys(a, t) === ""), { timeoutMs: 2000, what: "a drops b at once" });
    expect(b.node.whereis("tr")).toBeUndefined();
  });
});
