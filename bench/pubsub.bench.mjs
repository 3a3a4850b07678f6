// PubSub on one node and across two OS processes through Redis, with the methods of
// shared/anchors/beam.md §2 (figures to compare with are given per row as `reference`).
//
// Fan-out: every subscriber is its own process; on "go" it subscribes and acknowledges, then
// counts messages and reports "done" after the expected number. A separate broadcaster process
// calls broadcast in a tight loop. Clock: first broadcast → last "done";
// deliveries/s = subscribers × broadcasts / wall. One warm-up pass (1k subscribers) is not reported.
// Subscribe: clock from the first "go" until every acknowledgement; bytes per subscription =
// heapUsed delta after forced GC (processes already spawned before) / count.
// Cleanup: subscribers killed in a loop; clock from the first kill until the table count is 0.
// Cross-scheduler fan-out: a node with BENCH_SCHEDULERS (default 4) scheduler threads, the
// subscribers spread evenly over all of them (one "crowd" actor per worker thread spawns its
// share there), the broadcaster on the main thread: each broadcast is dispatched to the main
// thread's share at once and crosses once to each worker thread (one envelope per thread,
// cloned by postMessage), which fans it out locally. Clock: first broadcast -> last "done".
// Cross-node: node "bench" (this process) ↔ node "echo" (a child OS process) over a real
// redis-server on a free loopback port; sequential ping → echo → pong round trips.
//
// Imports the BUILT packages: `npx tsc -b packages/runtime packages/pubsub packages/redis`.
// BENCH_RUNS (default 3), BENCH_SCALE (default 1), BENCH_CASES (comma list of case prefixes).
import { spawn } from "node:child_process";
import { createServer, createConnection } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { availableParallelism } from "node:os";
import { Suite, gc, now, tick, median, startRedis, freePort } from "./lib.mjs";

const { startNode, silentLogger, spawnOn } = await import("../packages/runtime/dist/index.js");
const { PubSub, clusterAdapter } = await import("../packages/pubsub/dist/index.js");

const S = new Suite("pubsub", { runs: Number(process.env.BENCH_RUNS ?? 3) });
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const only = process.env.BENCH_CASES?.split(",");
const want = (name) => !only || only.some((o) => name.startsWith(o));
const sc = (n) => Math.max(1, Math.round(n * SCALE));

async function freshNode() {
  const node = await startNode({ name: "bench", schedulers: 1, logger: silentLogger });
  const ps = await PubSub.start(node, { name: "ps" });
  return { node, ps };
}

/** A process that resolves `done` when it got `target` messages. */
function counter(node, target) {
  let resolve;
  const done = new Promise((r) => (resolve = r));
  let n = 0;
  const pid = node.spawn({
    handle() {
      if (++n === target) resolve(now());
    },
  });
  return { pid, done };
}

/** Spawns subscribers; returns their pids and a function that sends "go" and awaits every ack. */
function spawnSubscribers(node, ps, count, topicOf, expected, doneTo) {
  const pids = new Array(count);
  for (let i = 0; i < count; i++) {
    const topic = topicOf(i);
    let n = 0;
    let ackTo;
    pids[i] = node.spawn({
      handle(m, self) {
        if (m !== null && typeof m === "object" && m.go !== undefined) {
          PubSub.subscribe(self, ps, topic);
          self.send(m.go, "ack");
          return;
        }
        if (++n === expected) self.send(doneTo, "done");
      },
    });
  }
  return {
    pids,
    async subscribeAll() {
      const acks = counter(node, count);
      const t0 = now();
      for (const pid of pids) node.send(pid, { go: acks.pid });
      const t1 = await acks.done;
      return t1 - t0;
    },
  };
}

async function fanout(subs, broadcasts, topics) {
  const { node, ps } = await freshNode();
  const perSub = topics ? 1 : broadcasts;
  const done = counter(node, subs);
  const s = spawnSubscribers(node, ps, subs, topics ? (i) => `bench:t${i}` : () => "bench:hot", perSub, done.pid);
  await s.subscribeAll();
  await gc();
  let loopMs = 0;
  let t0 = 0;
  node.spawn((self) => {
    t0 = now();
    if (topics) for (let i = 0; i < subs; i++) PubSub.broadcast(self, ps, `bench:t${i}`, { msg: "x", k: i });
    else for (let k = 0; k < broadcasts; k++) PubSub.broadcast(self, ps, "bench:hot", { msg: "x", k });
    loopMs = now() - t0;
  });
  const t1 = await done.done;
  const wall = t1 - t0;
  const deliveries = topics ? subs : subs * broadcasts;
  await node.stop();
  return { wall, loopMs, rate: deliveries / (wall / 1000) };
}

async function subscribeCase(count, manyTopics) {
  const { node, ps } = await freshNode();
  const done = counter(node, 1);
  const s = spawnSubscribers(node, ps, count, manyTopics ? (i) => `bench:t${i}` : () => "bench:hot", Infinity, done.pid);
  await gc();
  const before = process.memoryUsage().heapUsed;
  const ms = await s.subscribeAll();
  await gc();
  const after = process.memoryUsage().heapUsed;
  await node.stop();
  return { ms, rate: count / (ms / 1000), bytes: (after - before) / count };
}

/** The table's own bytes: subscribe calls on processes that already handled a message. */
async function tableBytes(count, manyTopics) {
  const { node, ps } = await freshNode();
  const done = counter(node, count);
  const pids = [];
  for (let i = 0; i < count; i++) pids.push(node.spawn({ handle: (_m, self) => self.send(done.pid, "ok") }));
  for (const pid of pids) node.send(pid, "warm");
  await done.done;
  const procs = pids.map((p) => node.lookup(p));
  await gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) PubSub.subscribe(procs[i], ps, manyTopics ? `bench:t${i}` : "bench:hot");
  await gc();
  const bytes = (process.memoryUsage().heapUsed - before) / count;
  await node.stop();
  return bytes;
}

async function perSubscriberBytes(count) {
  const { node, ps } = await freshNode();
  await gc();
  const before = process.memoryUsage().heapUsed;
  const done = counter(node, 1);
  const s = spawnSubscribers(node, ps, count, () => "bench:hot", Infinity, done.pid);
  await s.subscribeAll();
  await gc();
  const bytes = (process.memoryUsage().heapUsed - before) / count;
  await node.stop();
  return bytes;
}

async function cleanup(count, manyTopics) {
  const { node, ps } = await freshNode();
  const done = counter(node, 1);
  const s = spawnSubscribers(node, ps, count, manyTopics ? (i) => `bench:t${i}` : () => "bench:hot", Infinity, done.pid);
  await s.subscribeAll();
  await gc();
  const t0 = now();
  for (const pid of s.pids) node.exit(pid, "kill");
  while (PubSub.stats(ps).subscriptions !== 0) await new Promise((r) => setTimeout(r, 1));
  const ms = now() - t0;
  await node.stop();
  return ms;
}

/** Fan-out with subscribers on every scheduler thread (see the header). */
async function fanoutThreads(schedulers, subs, broadcasts) {
  const node = await startNode({ name: "bench", schedulers, logger: silentLogger });
  const ps = await PubSub.start(node, { name: "ps" });
  const per = Math.floor(subs / schedulers);
  const me = node.process();
  const mod = new URL("./fixtures/pubsub_actors.mjs", import.meta.url);
  for (let s = 1; s < schedulers; s++) await spawnOn(node, s, { module: mod, export: "crowd" }, ["ps", "bench:hot", per, broadcasts, me.pid]);
  // the main thread's share
  let finished = 0;
  for (let i = 0; i < per; i++) {
    let c = 0;
    const pid = node.spawn({
      handle() {
        if (++c === broadcasts && ++finished === per) node.send(me.pid, "done");
      },
    });
    PubSub.subscribe(node.lookup(pid), ps, "bench:hot");
  }
  for (let s = 1; s < schedulers; s++) if ((await me.receive({ timeout: 30_000 })) !== "ready") throw new Error("crowd not ready");
  await gc();
  let loopMs = 0;
  const t0 = now();
  node.spawn((self) => {
    for (let k = 0; k < broadcasts; k++) PubSub.broadcast(self, ps, "bench:hot", { msg: "x", k });
    loopMs = now() - t0;
  });
  for (let s = 0; s < schedulers; s++) if ((await me.receive({ timeout: 120_000 })) !== "done") throw new Error("fan-out did not finish");
  const wall = now() - t0;
  const f = PubSub.stats(ps).fabric;
  await node.stop();
  return { wall, loopMs, rate: (per * schedulers * broadcasts) / (wall / 1000), envelopes: f.envelopesOut.reduce((a, b) => a + b, 0) };
}

// ---- Redis: a real server on a free loopback port, a child process as the other node ----------



async function crossNodeLatency(pings) {
  const { createRedisTransport } = await import("../packages/redis/dist/index.js");
  const redis = await startRedis();
  const cluster = `bench-${process.pid}`;
  const here = dirname(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, [join(here, "fixtures/pubsub_echo_node.mjs")], { env: { ...process.env, REDIS_URL: redis.url, CLUSTER: cluster }, stdio: ["pipe", "pipe", "inherit"] });
  const events = [];
  createInterface({ input: child.stdout }).on("line", (l) => events.push(JSON.parse(l).event));
  const t = createRedisTransport({ url: redis.url, nodeName: "bench", cluster, heartbeatMs: 100, downAfterMs: 3000, logger: { warn() {}, error() {} } });
  await t.start();
  const node = await startNode({ name: "bench", schedulers: 1, logger: silentLogger });
  const ps = await PubSub.start(node, { name: "ps", adapter: clusterAdapter(t) });
  while (!events.includes("synced")) await new Promise((r) => setTimeout(r, 10));
  const me = node.process();
  PubSub.subscribe(me, ps, "pong");
  await PubSub.synced(ps, 30_000);
  const rtts = [];
  for (let i = 0; i < pings; i++) {
    const t0 = now();
    PubSub.broadcast(me, ps, "ping", i);
    const m = await me.receive({ timeout: 5000 });
    if (m !== i) throw new Error(`pong ${String(m)} for ping ${i}`);
    rtts.push(now() - t0);
  }
  // frames saved by interest routing: the echo node is not subscribed to "pong", we are not to "ping"
  const a = PubSub.stats(ps).adapter;
  child.stdin.end();
  await new Promise((r) => child.once("exit", r));
  await node.stop();
  await t.stop();
  await redis.stop();
  const warm = rtts.slice(Math.min(100, rtts.length >> 2)).sort((x, y) => x - y);
  const q = (p) => warm[Math.min(warm.length - 1, Math.floor(p * warm.length))];
  return { p50: q(0.5), p99: q(0.99), framesOut: a.framesOut };
}

// ---- cases ------------------------------------------------------------------------------------

console.log(`pubsub bench: ${S.runs} runs, scale ${SCALE}`);
await fanout(1000, 100, false); // warm-up pass (not reported)
await gc();

const fanCases = [
  ["fan-out 1 topic × 1k subscribers × 10k broadcasts", sc(1000), sc(10_000), "1.77 M/s [1.21–2.02 M] (BEAM)"],
  ["fan-out 1 topic × 10k subscribers × 1k broadcasts", sc(10_000), sc(1000), "1.95 M/s [1.73–1.98 M] (BEAM)"],
  ["fan-out 1 topic × 100k subscribers × 100 broadcasts", sc(100_000), 100, "1.34 M/s [1.16–1.36 M] (BEAM)"],
];
for (const [name, subs, b, ref] of fanCases) {
  if (!want(name)) continue;
  await S.measure(name, async () => {
    const r = await fanout(subs, b, false);
    await gc();
    return { "deliveries/s": [r.rate, "/s", ref], wall: [r.wall, "ms"], "broadcast loop": [r.loopMs, "ms"] };
  });
}
{
  const threads = Number(process.env.BENCH_SCHEDULERS ?? 4);
  for (const [subs, b] of [
    [sc(10_000), sc(1000)],
    [sc(100_000), 100],
  ]) {
    const name = `cross-scheduler fan-out (${threads} schedulers) 1 topic × ${subs >= 1000 ? `${subs / 1000}k` : subs} subscribers spread over all × ${b} broadcasts`;
    if (!want(name)) continue;
    await S.measure(name, async () => {
      const r = await fanoutThreads(threads, subs, b);
      await gc();
      return { "deliveries/s": [r.rate, "/s"], wall: [r.wall, "ms"], "broadcast loop": [r.loopMs, "ms"], "envelopes per broadcast": [r.envelopes / b, ""] };
    });
  }
}
{
  const name = "fan-out 100k topics × 1 subscriber, 1 broadcast each";
  if (want(name))
    await S.measure(name, async () => {
      const r = await fanout(sc(100_000), 1, true);
      await gc();
      return { "deliveries/s": [r.rate, "/s", "275 k/s [218–311 k] (BEAM)"], wall: [r.wall, "ms", "363 ms (BEAM)"] };
    });
}
for (const [name, n, many, refRate, refBytes] of [
  ["subscribe 100k processes, 1 topic", sc(100_000), false, "539 k/s (BEAM)", "400 B (BEAM)"],
  ["subscribe 100k processes, 100k topics", sc(100_000), true, "457 k/s (BEAM)", "386 B (BEAM)"],
]) {
  if (!want(name)) continue;
  await S.measure(name, async () => {
    const r = await subscribeCase(n, many);
    await gc();
    return { "subscribes/s": [r.rate, "/s", refRate], wall: [r.ms, "ms"], "bytes/subscription": [r.bytes, "B", refBytes] };
  });
}
for (const [name, many] of [
  ["table bytes per subscription, 100k on 1 topic", false],
  ["table bytes per subscription, 100k topics", true],
]) {
  if (!want(name)) continue;
  await S.measure(name, async () => {
    const b = await tableBytes(sc(100_000), many);
    await gc();
    return { bytes: [b, "B", "(BEAM's 386–400 B include the go round trip)"] };
  });
}
{
  const name = "subscriber process + subscription, 100k";
  if (want(name))
    await S.measure(name, async () => {
      const b = await perSubscriberBytes(sc(100_000));
      await gc();
      return { bytes: [b, "B", "3,043 B (BEAM)"] };
    });
}
for (const [name, n, many, ref] of [
  ["cleanup 1k dead subscribers of 1 topic", sc(1000), false, "16.5 ms (BEAM)"],
  ["cleanup 10k dead subscribers of 1 topic", sc(10_000), false, "1,360 ms (BEAM)"],
  ["cleanup 100k dead subscribers of 1 topic", sc(100_000), false, "not finished at 15 s (BEAM)"],
  ["cleanup 100k topics × 1 dead subscriber", sc(100_000), true, "4,111 ms (BEAM)"],
]) {
  if (!want(name)) continue;
  await S.measure(name, async () => {
    const ms = await cleanup(n, many);
    await gc();
    return { time: [ms, "ms", ref] };
  });
}
{
  const name = "cross-node broadcast via Redis (2 OS processes)";
  if (want(name))
    await S.measure(name, async () => {
      const r = await crossNodeLatency(sc(2000));
      return { "round trip p50": [r.p50, "ms"], "round trip p99": [r.p99, "ms"], "one-way p50 (rtt/2)": [r.p50 / 2, "ms"], "one-way p99 (rtt/2)": [r.p99 / 2, "ms"] };
    });
}
S.note("fan-out: clock from the first broadcast until the last subscriber counted all its messages; the broadcast loop row is the broadcaster alone (every delivery is enqueued by then: one thread).");
S.note(`cross-scheduler fan-out: ${Number(process.env.BENCH_SCHEDULERS ?? 4)} scheduler threads on a machine with ${availableParallelism()} CPUs; subscribers split evenly (main thread included); the broadcaster sends one envelope per worker thread per broadcast (the envelopes row), each thread fans out to its share.`);
S.note("subscribe: from the first 'go' until every acknowledgement (the go loop included); bytes = heapUsed delta after forced GC / count (processes spawned before the baseline).");
S.note("cleanup: kill loop until the table count reaches 0 (removal runs while each exit is processed, O(its topics)).");
S.note("cross-node: sequential ping→echo→pong through one redis-server on loopback (both nodes and Redis share the machine); first 100 round trips dropped as warm-up.");
S.report();
await tick();
process.exit(0);
