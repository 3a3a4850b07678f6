/**
 * PubSub on real worker scheduler threads (PUBSUB.md 2.1, 2.2, 2.6): the tables live on every
 * scheduler thread, a broadcast crosses once to each other scheduler with subscribers, a dead
 * thread takes its subscriptions with it. Subscribers and broadcasters are actors spawned on
 * schedulers 1–3 from a .ts fixture module (test/fixtures/members.ts, loaded by tsx in the
 * workers; it imports the BUILT package: `npx tsc -b packages/runtime packages/pubsub` first).
 * P21, P23, P26, P27, P28, P38, P41, and the cluster adapter with worker threads (P23 across
 * nodes). The in-thread unit tests of the seam are in fabric.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { MemoryCluster, Timeout, silentLogger, spawnOn, startNode, type CinderNode, type DownMessage, type Pid, type Process } from "@cinder/runtime";
import { BroadcastError, PubSub, clusterAdapter, type ClusterAdapterStats, type PubSubNodeStats, type PubSubOptions, type PubSubRef } from "@cinder/pubsub";
import { clusterReady, waitFor, type ClusterNode } from "./support/harness.js";
import "./fixtures/members.js"; // registers the dispatcher "test.upper" on this thread too
import type { Cmd, Kind, Result } from "./fixtures/members.js";

const mod = new URL("./fixtures/members.ts", import.meta.url);
const ref = (e: string) => ({ module: mod, export: e });

const nodes: CinderNode[] = [];
let cluster: MemoryCluster | undefined;
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.stop();
  await cluster?.close();
  cluster = undefined;
});

interface World {
  node: CinderNode;
  ps: PubSubRef;
  /** the test's process on the main thread: members report here */
  me: Process<unknown>;
}

async function world(schedulers: number, name = "cinder", opts: Partial<PubSubOptions> = {}): Promise<World> {
  const node = await startNode({ name, schedulers, logger: silentLogger });
  nodes.push(node);
  const ps = await PubSub.start(node, { name: "ps", ...opts });
  return { node, ps, me: node.process() };
}

type Report = { ready?: Pid; scheduler?: number; got?: unknown; did?: string; by?: Pid; result?: Result; counted?: number; min?: number; max?: number };

async function take(w: World, match: (m: Report) => boolean, what: string, timeout = 10_000): Promise<Report> {
  const m = await w.me.receive({ match: (x) => x !== null && typeof x === "object" && match(x as Report), timeout });
  if (m === Timeout) throw new Error(`no ${what} within ${timeout} ms`);
  return m as Report;
}

/** Spawns a member on scheduler `sched`, subscribed to `topics`; resolves once it is. */
async function member(w: World, sched: number, topics: string[] = []): Promise<Pid> {
  const { pid } = await spawnOn(w.node, sched, ref("member"), ["ps", w.me.pid, topics]);
  const r = await take(w, (m) => m.ready === pid, `ready of ${pid}`);
  expect(r.scheduler).toBe(sched);
  return pid;
}

/** Spawns `n` subscribers of `topic` on scheduler `sched` (one crowd); resolves once subscribed. */
async function crowd(w: World, sched: number, topic: string, n: number): Promise<Pid> {
  const { pid } = await spawnOn(w.node, sched, ref("crowd"), ["ps", w.me.pid, topic, n]);
  await take(w, (m) => m.ready === pid, `crowd ${pid}`);
  return pid;
}

const cmd = (w: World, to: Pid, c: Cmd | { $cmd: "count" }) => w.me.send(to, c);

/** The next `n` broadcasts member `by` got, in order. */
async function got(w: World, by: Pid, n: number): Promise<unknown[]> {
  const out: unknown[] = [];
  while (out.length < n) out.push((await take(w, (m) => m.by === by && "got" in m, `message ${out.length + 1}/${n} of ${by}`)).got);
  return out;
}

async function pub(w: World, by: Pid, kind: Kind, topic: string, msg: unknown, extra: { fn?: boolean; node?: string } = {}): Promise<Result> {
  cmd(w, by, { $cmd: "pub", kind, topic, msg, ...extra });
  return (await take(w, (m) => m.by === by && m.did === "pub", `pub result of ${by}`)).result!;
}

/** Asks a crowd how many messages its subscribers got until `total` (polling). */
async function counted(w: World, c: Pid, total: number): Promise<Report> {
  return waitFor(async () => {
    cmd(w, c, { $cmd: "count" });
    const r = await take(w, (m) => m.by === c && m.counted !== undefined, `count of ${c}`);
    return r.counted === total ? r : null;
  }, { what: `crowd ${c} counted ${total}` });
}

const fabric = (s: PubSubNodeStats) => s.fabric!;
const delta = (a: number[], b: number[]) => a.map((n, i) => n - b[i]!);
const row = (s: PubSubNodeStats, i: number) => s.schedulers.find((r) => r.scheduler === i);
const interest = (w: World, i: number) => w.ps.inst.gen!.fabric.interestOf(i);

describe("PubSub on worker scheduler threads", () => {
  it("every worker thread has its part: a process on any scheduler subscribes on its own thread, and a broadcast from any thread reaches every subscriber once", async () => {
    const w = await world(4);
    const here = w.node.process();
    PubSub.subscribe(here, w.ps, "all");
    const m = [await member(w, 1, ["all"]), await member(w, 2, ["all"]), await member(w, 3, ["all"])];
    const s = await PubSub.nodeStats(w.ps);
    expect(s.schedulers.map((r) => [r.scheduler, r.subscriptions, r.interest])).toEqual([
      [0, 1, 1],
      [1, 1, 1],
      [2, 1, 1],
      [3, 1, 1],
    ]);
    expect(s.topics).toBe(1);
    expect(PubSub.broadcast(w.node, w.ps, "all", "from main")).toBe("ok");
    expect(await pub(w, m[0]!, "broadcast", "all", "from 1")).toBe("ok");
    expect(await pub(w, m[2]!, "broadcast", "all", "from 3")).toBe("ok");
    for (const p of m) expect((await got(w, p, 3)).sort()).toEqual(["from 1", "from 3", "from main"]);
    expect(((await Promise.all([here.receive(), here.receive(), here.receive()])) as string[]).sort()).toEqual(["from 1", "from 3", "from main"]);
    expect(await here.receive({ timeout: 20 })).toBe(Timeout);
  });

  it("P26 subscribe and unsubscribe on worker threads send no cross-thread message", async () => {
    const w = await world(3);
    const a = await member(w, 1);
    const b = await member(w, 2);
    const before = await PubSub.nodeStats(w.ps);
    const sched0 = await w.node.stats();
    for (let i = 0; i < 100; i++) {
      cmd(w, a, { $cmd: "sub", topic: `t${i}`, reply: false });
      cmd(w, b, { $cmd: "sub", topic: `t${i}`, metadata: i, reply: false });
    }
    for (let i = 0; i < 100; i += 2) cmd(w, a, { $cmd: "unsub", topic: `t${i}`, reply: false });
    // one reply each, to know they are done: the only message they send
    cmd(w, a, { $cmd: "unsub", topic: "never", reply: true });
    cmd(w, b, { $cmd: "unsub", topic: "never", reply: true });
    await take(w, (m) => m.by === a && m.did === "unsub", "a done");
    await take(w, (m) => m.by === b && m.did === "unsub", "b done");
    const after = await PubSub.nodeStats(w.ps);
    const sched1 = await w.node.stats();
    // the pubsub parts sent nothing to any thread, the main thread's part got nothing
    expect(after.workers.map((x) => x.messagesOut)).toEqual(before.workers.map((x) => x.messagesOut));
    expect(after.threads.messagesIn).toBe(before.threads.messagesIn);
    // and on the data plane, each worker sent exactly its one reply
    expect(sched1.slice(1).map((x, i) => x.messagesOut! - sched0[i + 1]!.messagesOut!)).toEqual([1, 1]);
    // each subscription is in its own scheduler's table, visible in the shared counters at once
    expect(after.schedulers.map((r) => [r.scheduler, r.subscriptions, r.topics])).toEqual([
      [0, 0, 0],
      [1, 50, 50],
      [2, 100, 100],
    ]);
    expect([interest(w, 1), interest(w, 2)]).toEqual([50, 100]);
  });

  it("P27 a broadcast to subscribers on k other schedulers sends exactly k envelopes, whatever their number; none to schedulers without subscribers", async () => {
    const w = await world(4);
    const c1 = await crowd(w, 1, "fan", 150);
    const c2 = await crowd(w, 2, "fan", 150);
    const other = await member(w, 3, ["elsewhere"]);
    const s0 = await PubSub.nodeStats(w.ps);
    expect(PubSub.broadcast(w.node, w.ps, "fan", "x")).toBe("ok"); // from scheduler 0, which has no subscriber
    expect((await counted(w, c1, 150)).min).toBe(1);
    expect((await counted(w, c2, 150)).min).toBe(1);
    const s1 = await PubSub.nodeStats(w.ps);
    expect(delta(fabric(s1).envelopesOut, fabric(s0).envelopesOut)).toEqual([0, 1, 1, 0]);
    expect(delta(fabric(s1).envelopesIn, fabric(s0).envelopesIn)).toEqual([0, 1, 1, 0]);
    // from scheduler 1: its own subscribers at once, one envelope to scheduler 2
    const b1 = await member(w, 1);
    expect(await pub(w, b1, "broadcast", "fan", "y")).toBe("ok");
    expect((await counted(w, c1, 300)).max).toBe(2);
    expect((await counted(w, c2, 300)).max).toBe(2);
    const s2 = await PubSub.nodeStats(w.ps);
    expect(delta(fabric(s2).envelopesOut, fabric(s1).envelopesOut)).toEqual([0, 0, 1, 0]);
    expect(fabric(s2).wastedHops).toEqual([0, 0, 0, 0]);
    cmd(w, other, { $cmd: "unsub", topic: "nothing" });
    await take(w, (m) => m.by === other && m.did === "unsub", "other alive");
    expect(await w.me.receive({ match: (m) => (m as Report).by === other && "got" in (m as Report), timeout: 20 })).toBe(Timeout);
  });

  it("P28 stress: an actor subscribes on scheduler A and signals the broadcaster on B through C; the broadcast is always delivered", async () => {
    const w = await world(4);
    const N = 2000;
    const A = [await member(w, 1), await member(w, 1), await member(w, 1), await member(w, 1)];
    const { pid: B } = await spawnOn(w.node, 2, ref("broadcaster"), ["ps"]);
    const { pid: C } = await spawnOn(w.node, 3, ref("relay"), [B]);
    for (let i = 0; i < N; i++) {
      const topic = `race:${i}`;
      cmd(w, A[i % A.length]!, { $cmd: "subThen", topic, to: C, msg: { topic, msg: i } });
    }
    const seen = new Set<number>();
    while (seen.size < N) {
      const r = await take(w, (m) => "got" in m, `delivery ${seen.size + 1}/${N}`);
      seen.add(r.got as number);
    }
    expect(seen.size).toBe(N);
    const s = await PubSub.nodeStats(w.ps);
    expect(row(s, 1)!.topics).toBe(N);
    expect(fabric(s).envelopesIn[1]).toBe(N);
  });

  it("P21 a subscriber that exits is removed from every topic on its thread; no broadcast goes to its scheduler afterwards", async () => {
    const w = await world(3);
    const p = await member(w, 1, ["x", "y", "z", "x"]);
    const q = await member(w, 2, ["x", "y"]);
    PubSub.broadcast(w.node, w.ps, "x", "before");
    expect(await got(w, p, 2)).toEqual(["before", "before"]); // two entries for x
    expect(await got(w, q, 1)).toEqual(["before"]);
    expect(interest(w, 1)).toBe(3);
    const mon = w.me.monitor(p);
    w.node.exit(p, "kill");
    const down = (await w.me.receive({ match: (m) => (m as DownMessage).ref === mon, timeout: 5000 })) as DownMessage;
    expect(down.reason).toBe("killed");
    // removed on its own thread while its exit was processed, before the DOWN left it
    expect(interest(w, 1)).toBe(0);
    const s0 = await PubSub.nodeStats(w.ps);
    expect(row(s0, 1)).toMatchObject({ subscriptions: 0, subscribers: 0, topics: 0, removalVisits: 3 });
    PubSub.broadcast(w.node, w.ps, "x", "after");
    PubSub.broadcast(w.node, w.ps, "y", "after y");
    expect(await got(w, q, 2)).toEqual(["after", "after y"]);
    const s1 = await PubSub.nodeStats(w.ps);
    expect(delta(fabric(s1).envelopesOut, fabric(s0).envelopesOut)).toEqual([0, 0, 2]);
  });

  it("P23 one sender's messages reach each subscriber in send order across broadcast, broadcastFrom, directBroadcast and localBroadcast: sender on a worker, subscribers on its scheduler, another one and the main thread", async () => {
    const w = await world(3);
    const here = w.node.process();
    PubSub.subscribe(here, w.ps, "order");
    const same = await member(w, 1, ["order"]);
    const there = await member(w, 2, ["order"]);
    const sender = await member(w, 1);
    const N = 600;
    cmd(w, sender, { $cmd: "seq", topic: "order", n: N, node: PubSub.nodeName(w.ps), kinds: ["broadcast", "broadcastFrom", "direct", "local"] });
    const want = Array.from({ length: N }, (_, i) => i);
    expect(await got(w, same, N)).toEqual(want);
    expect(await got(w, there, N)).toEqual(want);
    const mine: unknown[] = [];
    while (mine.length < N) mine.push(await here.receive());
    expect(mine).toEqual(want);
  });

  it("P23 from the main thread to subscribers on two worker threads, interleaved with plain sends, in send order", async () => {
    const w = await world(3);
    const a = await member(w, 1, ["order"]);
    const b = await member(w, 2, ["order"]);
    const N = 400;
    const sender = w.node.process();
    for (let i = 0; i < N; i++) {
      if (i % 5 === 4) {
        sender.send(a, i);
        sender.send(b, i);
      } else if (i % 2 === 0) PubSub.broadcast(sender, w.ps, "order", i);
      else PubSub.directBroadcast(sender, w.ps, PubSub.nodeName(w.ps), "order", i);
    }
    const want = Array.from({ length: N }, (_, i) => i);
    expect(await got(w, a, N)).toEqual(want);
    expect(await got(w, b, N)).toEqual(want);
  });

  it("P38 a scheduler thread that dies takes its subscriptions with it; the others stop sending to it and keep their subscribers; the restarted thread gets a fresh part", async () => {
    const w = await world(4);
    const here = w.node.process();
    PubSub.subscribe(here, w.ps, "room");
    const alive = [await member(w, 1, ["room"]), await member(w, 3, ["room"])];
    await member(w, 2, ["room", "only-on-2"]);
    await member(w, 2, ["room"]);
    expect(interest(w, 2)).toBe(2);
    const downs: number[] = [];
    w.node.threads.onSchedulerDown((i) => downs.push(i));
    await w.node.killScheduler(2);
    await waitFor(() => downs.includes(2), { what: "scheduler 2 down" });
    // its column of the shared counters is gone: nothing is sent there
    expect(interest(w, 2)).toBe(0);
    const s0 = await PubSub.nodeStats(w.ps);
    PubSub.broadcast(w.node, w.ps, "room", "still");
    PubSub.broadcast(w.node, w.ps, "only-on-2", "nobody");
    expect(await here.receive()).toBe("still");
    for (const p of alive) expect(await got(w, p, 1)).toEqual(["still"]);
    expect(await pub(w, alive[0]!, "broadcast", "room", "from 1")).toBe("ok");
    expect(await got(w, alive[1]!, 1)).toEqual(["from 1"]);
    expect(await here.receive()).toBe("from 1");
    const s1 = await PubSub.nodeStats(w.ps);
    expect(delta(fabric(s1).envelopesOut, fabric(s0).envelopesOut)).toEqual([1, 1, 0, 2]);
    // the restarted thread: a fresh part with an empty table, working as before
    await w.node.schedulerReady(2);
    const s2 = await PubSub.nodeStats(w.ps);
    expect(row(s2, 2)).toMatchObject({ subscriptions: 0, topics: 0 });
    const fresh = await member(w, 2, ["room"]);
    PubSub.broadcast(w.node, w.ps, "room", "welcome");
    expect(await got(w, fresh, 1)).toEqual(["welcome"]);
    expect(PubSub.broadcast(w.node, w.ps, "only-on-2", "nobody")).toBe("ok");
    expect(interest(w, 2)).toBe(1);
  });

  it("P41 a message that cannot be cloned: a typed error names the schedulers; the sender's scheduler still gets it; nothing is half-sent (from the main thread and from a worker)", async () => {
    const w = await world(4);
    const local = w.node.process();
    PubSub.subscribe(local, w.ps, "fn");
    const m1 = await member(w, 1, ["fn"]);
    const m3 = await member(w, 3, ["fn"]);
    const fnMsg = { run: () => 1 };
    const r = PubSub.broadcast(w.node, w.ps, "fn", fnMsg);
    expect(r).toMatchObject({ name: "BroadcastError", failure: "clone", remoteOnly: true });
    expect([...(r as BroadcastError).schedulers].sort()).toEqual([1, 3]);
    expect(() => PubSub.broadcastOrThrow(w.node, w.ps, "fn", fnMsg)).toThrow(/cannot be cloned to scheduler\(s\) 1, 3/);
    expect(local.flush()).toEqual([fnMsg, fnMsg]);
    // from scheduler 1: its own subscriber gets it, schedulers 0 and 3 are named
    const fromWorker = await pub(w, m1, "broadcast", "fn", "p", { fn: true });
    expect(fromWorker).toMatchObject({ failure: "clone", remoteOnly: true });
    expect([...(fromWorker as { schedulers: number[] }).schedulers].sort()).toEqual([0, 3]);
    expect(await got(w, m1, 1)).toEqual([{ uncloneable: ["payload", "run"] }]);
    // nothing went anywhere else: the next broadcast is the first thing the others get
    PubSub.broadcast(w.node, w.ps, "fn", "clonable");
    expect(await got(w, m3, 1)).toEqual(["clonable"]);
    expect(await got(w, m1, 1)).toEqual(["clonable"]);
    expect(local.flush()).toEqual(["clonable"]);
    const s = await PubSub.nodeStats(w.ps);
    expect(fabric(s).cloneFailures).toBe(2 + 2 + 2);
    expect(fabric(s).envelopesIn).toEqual([0, 1, 0, 1]);
  });
});

describe("dispatchers on worker threads", () => {
  it("a custom dispatcher registered by the actor module runs on each subscriber's thread, once per scheduler, with that scheduler's entries", async () => {
    const w = await world(3);
    const a = [await member(w, 1, ["d"]), await member(w, 1, ["d"])];
    const b = await member(w, 2, ["d"]);
    expect(PubSub.broadcast(w.node, w.ps, "d", "hi", "test.upper")).toBe("ok");
    for (const p of a) expect(await got(w, p, 1)).toEqual([{ upper: "HI", scheduler: 1, entries: 2 }]);
    expect(await got(w, b, 1)).toEqual([{ upper: "HI", scheduler: 2, entries: 1 }]);
    // from a worker, skipping the sender
    cmd(w, a[0]!, { $cmd: "pub", kind: "broadcastFrom", topic: "d", msg: "yo", dispatcher: "test.upper" });
    await take(w, (m) => m.by === a[0] && m.did === "pub", "pub");
    expect(await got(w, a[1]!, 1)).toEqual([{ upper: "YO", scheduler: 1, entries: 2 }]);
    expect(await got(w, b, 1)).toEqual([{ upper: "YO", scheduler: 2, entries: 1 }]);
  });
});

describe("PubSub tables on worker threads follow the tables child", () => {
  it("P25 a restart of the tables closes every thread's table (subscribers get the owner's exit signal) and the parts open the next generation; stop closes them; a new start opens them again", async () => {
    const w = await world(3);
    const m1 = await member(w, 1, ["t"]);
    cmd(w, m1, { $cmd: "trap" });
    await take(w, (m) => m.by === m1 && m.did === "trap", "trap");
    const m2 = await member(w, 2, ["t"]);
    const mon2 = w.me.monitor(m2);
    const tables1 = w.node.whereis("ps.tables")!;
    w.node.exit(tables1, "kill");
    expect(await got(w, m1, 1)).toEqual([{ type: "EXIT", from: tables1, reason: "killed" }]);
    const down = (await w.me.receive({ match: (m) => (m as DownMessage).ref === mon2, timeout: 5000 })) as DownMessage;
    expect(down.reason).toBe("killed");
    await waitFor(() => w.node.whereis("ps.adapter") !== undefined && w.node.whereis("ps.tables") !== tables1, { what: "tables and adapter restarted" });
    expect(interest(w, 1) + interest(w, 2)).toBe(0);
    expect((await PubSub.nodeStats(w.ps)).schedulers.map((r) => r.subscriptions)).toEqual([0, 0, 0]);
    cmd(w, m1, { $cmd: "sub", topic: "t" });
    await take(w, (m) => m.by === m1 && m.did === "sub", "re-subscribed");
    PubSub.broadcast(w.node, w.ps, "t", "again");
    expect(await got(w, m1, 1)).toEqual(["again"]);
    // stop: the worker's table closes with the tree; a subscribe there fails with noproc
    const tables2 = w.node.whereis("ps.tables")!;
    await PubSub.stop(w.node, w.ps);
    expect(await got(w, m1, 1)).toEqual([{ type: "EXIT", from: tables2, reason: "shutdown" }]);
    const m3 = await member(w, 2);
    const mon3 = w.me.monitor(m3);
    cmd(w, m3, { $cmd: "sub", topic: "t" });
    const down3 = (await w.me.receive({ match: (m) => (m as DownMessage).ref === mon3, timeout: 5000 })) as DownMessage;
    expect(String((down3.reason as Error).message)).toMatch(/ps\.tables.*not running/);
    // a new start of the name: every part opens the new tables before start resolves
    const ps = await PubSub.start(w.node, { name: "ps" });
    cmd(w, m1, { $cmd: "sub", topic: "t" });
    await take(w, (m) => m.by === m1 && m.did === "sub", "subscribed after the new start");
    PubSub.broadcast(w.node, ps, "t", "new start");
    expect(await got(w, m1, 1)).toEqual(["new start"]);
  });
});

describe("PubSub on worker threads across nodes (MemoryCluster)", () => {
  async function pair(): Promise<[World, World]> {
    cluster = new MemoryCluster({ heartbeatMs: 10, downAfterMs: 1000, logger: { warn() {}, error() {} } });
    const out: World[] = [];
    const cns: ClusterNode[] = [];
    for (const name of ["a", "b"]) {
      const t = cluster.node(name);
      await t.start();
      const w = await world(3, name, { adapter: clusterAdapter(t, { interestSyncMs: 40 }) });
      out.push(w);
      cns.push({ name, node: w.node, ps: w.ps, t });
    }
    await clusterReady(cns);
    return out as [World, World];
  }

  it("P23 a worker's broadcasts reach another node's subscribers on its worker threads in send order: out through the main thread, in once per scheduler", async () => {
    const [a, b] = await pair();
    const b1 = await member(b, 1, ["x"]);
    const b2 = await member(b, 2, ["x"]);
    const c2 = await crowd(b, 2, "x", 50);
    await PubSub.synced(b.ps); // b's interest (reported by its worker parts) reached a
    const sb = await PubSub.nodeStats(b.ps);
    expect(sb.interest?.topics).toBe(1);
    const sender = await member(a, 1);
    const N = 300;
    cmd(a, sender, { $cmd: "seq", topic: "x", n: N, node: "b", kinds: ["broadcast", "broadcastFrom", "direct"] });
    const want = Array.from({ length: N }, (_, i) => i);
    expect(await got(b, b1, N)).toEqual(want);
    expect(await got(b, b2, N)).toEqual(want);
    await counted(b, c2, 50 * N);
    // a: every broadcast went through a's main thread (a has no subscriber: FWD only)
    const sa = await PubSub.nodeStats(a.ps);
    expect(sa.threads.forwardsIn).toBe(N);
    expect(sa.workers.find((x) => x.scheduler === 1)!.forwardsOut).toBe(N);
    // b: each frame crossed once to each of schedulers 1 and 2, none to the main thread's own table
    const sb2 = await PubSub.nodeStats(b.ps);
    expect(delta(fabric(sb2).envelopesOut, fabric(sb).envelopesOut)).toEqual([0, N, N]);
  });

  it("a worker's subscription is announced to other nodes through the main thread, and withdrawn when its thread dies", async () => {
    const [a, b] = await pair();
    await member(b, 2, ["only-b2"]);
    await PubSub.synced(b.ps);
    expect((await PubSub.nodeStats(b.ps)).interest?.topics).toBe(1);
    const downs: number[] = [];
    b.node.threads.onSchedulerDown((i) => downs.push(i));
    await b.node.killScheduler(2);
    await waitFor(() => downs.includes(2), { what: "b's scheduler 2 down" });
    expect((await PubSub.nodeStats(b.ps)).interest?.topics).toBe(0);
    await PubSub.synced(b.ps);
    const before = (PubSub.stats(a.ps).adapter as ClusterAdapterStats).framesSaved;
    PubSub.broadcast(a.node, a.ps, "only-b2", "nobody");
    expect((PubSub.stats(a.ps).adapter as ClusterAdapterStats).framesSaved).toBe(before + 1);
  });
});
