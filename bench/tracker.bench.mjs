// Tracker across two nodes, with the method of /work/shared/anchors/beam.md §4 ("tolerant":
// broadcastPeriod 50, downPeriod 5000, permdownPeriod 10000, pool size 1): two OS processes
// (`bench/fixtures/tracker_node.mjs`) joined by a Redis cluster transport through one
// redis-server on loopback — node A tracks, node B observes; this process only orchestrates.
// The nodes, Redis and this process share the machine, as BEAM's two nodes shared its 2 cores.
//
// Per run: a fresh A; a sentinel tracked on B must appear on A and leave again; then phase 10k,
// (Cinder adds a second 10k phase: the first runs before the JIT has warmed up), then phase 100k: A spawns N actors blocked in receive, releases them together, each tracks
// itself on "t:" + (i mod 1000), key "u:" + i, meta {i}. Measured:
//   - track: from the first release until every actor has its ref (on A);
//   - convergence on B from the end of tracking: B's handleDiff saw N joins; a sweep of `list`
//     over the 1,000 topics sums to N (end of the first such sweep);
//   - crash-driven untrack: A kills the N actors; from the start of the kill loop until A's and
//     B's handleDiff saw N leaves, and until B's list sweep shows 0;
//   - memory per presence: heap after a forced GC, minus the heap before the release (the N
//     actors already spawned), / N, on A (origin) and B (replica) while the N presences are held;
//   - node kill: A tracks 10,000 more, B converges, both idle 3.1 s, A gets SIGKILL; time until
//     B's list sum is 0 (down) and B's shard rows are 0 (permdown purge).
// Times cross processes as absolute ms (performance.timeOrigin + now). Default 3 runs
// (BENCH_RUNS); BENCH_SCALE scales N for a quick look.
//
// Run: `pnpm bench tracker` (builds first) or `node --expose-gc bench/tracker.bench.mjs` after
// `npx tsc -b packages/runtime packages/pubsub packages/redis packages/tracker`.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Suite, startRedis as startRedisWith, freePort } from "./lib.mjs";
// big heartbeats: a subscriber may briefly hold tens of MB of pub/sub output
const startRedis = () => startRedisWith(["--client-output-buffer-limit", "pubsub 512mb 256mb 60"]);

const here = dirname(fileURLToPath(import.meta.url));
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
// The method's phases (10k, then 100k, on a fresh A) plus a second 10k phase: the first phase of
// a fresh Node.js process runs mostly unoptimized code (JIT warm-up), which BEAM does not have.
const PHASES = [
  { n: 10_000, label: "10k presences, 1,000 topics (first phase: cold JIT)" },
  { n: 10_000, label: "10k presences, 1,000 topics (second phase: warm)" },
  { n: 100_000, label: "100k presences, 1,000 topics" },
].map((p) => ({ ...p, n: Math.max(100, Math.round(p.n * SCALE)) }));
const KILL_N = Math.max(100, Math.round(10_000 * SCALE));
const TOPICS = 1000;
// callTimeout 10 min: 100k concurrent tracks queue in one shard; the measure is how long
// they take, not whether some pass a 5 s call timeout
const TOLERANT = { broadcastPeriod: 50, downPeriod: 5000, permdownPeriod: 10_000, callTimeout: 600_000 };
const topics = Array.from({ length: TOPICS }, (_, i) => `t:${i}`);
const abs = () => performance.timeOrigin + performance.now();

/** beam.md §4, tolerant column (ms unless stated). */
const BEAM = {
  10000: {
    track: "BEAM 156 [130–156]",
    rate: "BEAM ≈ 64 k/s",
    joinsB: "BEAM 67 [49–70]",
    listB: "BEAM 80 [62–84]",
    listBFromStart: "BEAM 236 [192–239]",
    leavesA: "BEAM 134 [86–182]",
    leavesB: "BEAM 214 [168–249]",
    listB0: "BEAM 246 [179–264]",
    memA: "BEAM 1,139 B (default cfg)",
    memB: "BEAM 1,147 B (default cfg)",
  },
  100000: {
    track: "BEAM 3,278 [2,628–3,473]",
    rate: "BEAM ≈ 31 k/s",
    joinsB: "BEAM 867 [702–1,011]",
    listB: "BEAM 1,112 [885–1,215]",
    listBFromStart: "BEAM 4,390 [3,513–4,688]",
    leavesA: "BEAM 2,742 [2,486–3,519]",
    leavesB: "BEAM 3,896 [3,856–4,480]",
    listB0: "BEAM 3,958 [3,915–4,547]",
    memA: "BEAM 1,066 B (default cfg)",
    memB: "BEAM 1,193 B (default cfg)",
  },
};

// ---- redis-server and child nodes --------------------------------------------------------------



function startChild(name, redisUrl, cluster) {
  const proc = spawn(process.execPath, ["--expose-gc", "--max-old-space-size=4096", join(here, "fixtures/tracker_node.mjs")], {
    env: { ...process.env, REDIS_URL: redisUrl, CLUSTER: cluster, NODE_NAME: name, TRACKER_OPTS: JSON.stringify(TOLERANT) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const waiters = new Map();
  const events = [];
  let evWaiter = null;
  let buf = "";
  proc.stdout.on("data", (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const m = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (m.id !== undefined) {
        const w = waiters.get(m.id);
        waiters.delete(m.id);
        if (m.error) w.reject(new Error(`${name}: ${m.error}`));
        else w.resolve(m);
      } else {
        events.push(m);
        evWaiter?.();
      }
    }
  });
  const exited = new Promise((r) => proc.on("exit", r));
  let id = 0;
  return {
    proc,
    exited,
    call(cmd) {
      const my = ++id;
      proc.stdin.write(`${JSON.stringify({ ...cmd, id: my })}\n`);
      return new Promise((resolve, reject) => waiters.set(my, { resolve, reject }));
    },
    async event(kind, timeoutMs = 60_000) {
      const deadline = abs() + timeoutMs;
      for (;;) {
        const i = events.findIndex((e) => e.event === kind);
        if (i >= 0) return events.splice(i, 1)[0];
        if (abs() > deadline) throw new Error(`${name}: no ${kind} event within ${timeoutMs} ms`);
        await new Promise((r) => {
          evWaiter = r;
          setTimeout(r, 50);
        });
      }
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitListed(node, pred, what, timeoutMs = 30_000) {
  const deadline = abs() + timeoutMs;
  for (;;) {
    const r = await node.call({ cmd: "listed", topics });
    if (pred(r)) return r;
    if (abs() > deadline) throw new Error(`timed out: ${what} (${JSON.stringify(r)})`);
    await sleep(20);
  }
}

// ---- the runs ------------------------------------------------------------------------------------

const S = new Suite("tracker", { runs: RUNS });
const redis = await startRedis();
const cluster = `bench-${process.pid}`;
const B = startChild("b", redis.url, cluster);
await B.event("ready");

try {
  for (let run = 1; run <= RUNS; run++) {
    const A = startChild("a", redis.url, cluster);
    await A.event("ready");
    // sentinel on B: seen by A, then gone
    await B.call({ cmd: "sentinel", op: "track" });
    await waitListed(A, (r) => r.sentinel === 1, "A sees B's sentinel");
    await B.call({ cmd: "sentinel", op: "untrack" });
    await waitListed(A, (r) => r.sentinel === 0, "the sentinel leaves A");
    let expected = 0;
    for (const [phase, { n: N, label: phaseLabel }] of PHASES.entries()) {
      const label = SCALE === 1 ? phaseLabel : `${N / 1000}k presences, 1,000 topics (phase ${phase + 1})`;
      const ref = (SCALE === 1 && BEAM[N]) || {};
      await A.call({ cmd: "spawn", n: N, topics: TOPICS, key: `r${run}u:` });
      const before = { a: await A.call({ cmd: "mem" }), b: await B.call({ cmd: "mem" }), bc: await B.call({ cmd: "listed", topics }) };
      const obs = B.call({ cmd: "expect", joins: before.bc.joins + N, sum: expected + N, topics });
      const tr = await A.call({ cmd: "release" });
      const seen = await obs;
      expected += N;
      const after = { a: await A.call({ cmd: "mem" }), b: await B.call({ cmd: "mem" }) };
      S.add(label, "track all on A", tr.t1 - tr.t0, "ms", ref.track);
      S.add(label, "track rate on A", N / ((tr.t1 - tr.t0) / 1000), "tracks/s", ref.rate);
      S.add(label, "B handleDiff saw all joins, after tracking", seen.diffAt - tr.t1, "ms", ref.joinsB);
      S.add(label, "B list sums to N, after tracking (sweep end)", seen.sweepEnd - tr.t1, "ms", ref.listB);
      S.add(label, "B list sums to N, from start of tracking", seen.sweepEnd - tr.t0, "ms", ref.listBFromStart);
      S.add(label, "bytes per presence on A (origin)", (after.a.heap - before.a.heap) / N, "B", ref.memA);
      S.add(label, "bytes per presence on B (replica)", (after.b.heap - before.b.heap) / N, "B", ref.memB);
      // crash-driven untrack
      const bc = await B.call({ cmd: "listed", topics });
      const obs0 = B.call({ cmd: "expect", leaves: bc.leaves + N, sum: expected - N, topics });
      const k = await A.call({ cmd: "kill" });
      const aSeen = await A.event("leavesSeen");
      const gone = await obs0;
      expected -= N;
      S.add(label, "crash untrack: A handleDiff saw all leaves", aSeen.at - k.t0, "ms", ref.leavesA);
      S.add(label, "crash untrack: B handleDiff saw all leaves", gone.diffAt - k.t0, "ms", ref.leavesB);
      S.add(label, "crash untrack: B list shows 0 (sweep end)", gone.sweepEnd - k.t0, "ms", ref.listB0);
      console.error(`  [tracker] run ${run} ${label}: track ${Math.round(tr.t1 - tr.t0)} ms, B joins +${Math.round(seen.diffAt - tr.t1)} ms, B list +${Math.round(seen.sweepEnd - tr.t1)} ms, leaves A ${Math.round(aSeen.at - k.t0)} / B ${Math.round(gone.diffAt - k.t0)} ms, mem A ${Math.round((after.a.heap - before.a.heap) / N)} B ${Math.round((after.b.heap - before.b.heap) / N)} B/presence`);
    }
    // node kill
    const bc = await B.call({ cmd: "listed", topics });
    const obs = B.call({ cmd: "expect", joins: bc.joins + KILL_N, sum: KILL_N, topics });
    await A.call({ cmd: "spawn", n: KILL_N, topics: TOPICS, key: `k${run}u:` });
    await A.call({ cmd: "release" });
    await obs;
    await sleep(3100);
    await B.call({ cmd: "watch", topics });
    const t0 = abs();
    A.proc.kill("SIGKILL");
    await A.exited;
    const down = await B.event("listZero", 60_000);
    const purged = await B.event("rowsZero", 60_000);
    S.add(`node A SIGKILLed, ${KILL_N / 1000}k of its presences on B`, "B list reaches 0 (down detected)", down.at - t0, "ms", "BEAM 4,745 [4,628–4,791]");
    S.add(`node A SIGKILLed, ${KILL_N / 1000}k of its presences on B`, "B shard rows reach 0 (permdown purge)", purged.at - t0, "ms", "BEAM 9,726 [9,698–9,739]");
    console.error(`  [tracker] run ${run} kill: down ${Math.round(down.at - t0)} ms, purge ${Math.round(purged.at - t0)} ms`);
  }
} finally {
  B.proc.stdin.end();
  await Promise.race([B.exited, sleep(3000)]);
  B.proc.kill("SIGKILL");
  redis.stop();
}

S.note("Two OS processes (node A tracks, node B observes) over the Redis cluster transport through one redis-server on loopback; nodes, Redis and the orchestrator share the machine. BEAM: two nodes over loopback distribution (beam.md §4), tolerant configuration unless marked.");
S.note("Tracks are real: one actor per presence, each calling Tracker.track (a GenServer call) after a common release; B's handleDiff only counts; B's list sweeps run inside B.");
S.note("Bytes per presence: heap after forced GC minus heap before the phase, / N (rows, indexes, metas, pids, retained delta windows); BEAM's figure is the shard's tables plus heap after GC, measured with the default configuration.");
S.report();
