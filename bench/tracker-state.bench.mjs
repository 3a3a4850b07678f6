// Tracker State micro-benchmark: the exact sequence of phoenix_pubsub's own State bench script,
// as /work/shared/anchors/beam.md §3 describes it, so the figures compare with BEAM's (same
// 2-core machine class). Each line times one call on the pure CRDT (wall clock, ms).
//
//   1. create 2 × S (timed together): state 1, replica R: S joins of a fresh pid on
//      "topic" + hash(i) mod (S/10), key "user" + i, meta {name: i}; state 2, ALSO replica R:
//      S joins of a fresh pid on "topic" + i / "user" + i. Untimed: state 1 joins pid U on
//      "topic100" / "user100".
//   2. extract: full extract of state 2 for its own context (all S values; the remote name is
//      not R, as in the script).
//   3. merge 2 sets into state 1 (shared replica: 0 joins, 0 leaves, S + 1 rows remain).
//   4. merge again (0 / 0).
//   5–7. get_by_topic("topic10"), get_by_pid(U), get_by_pid(U, "topic100", "user100").
//      Untimed: compact both states, reset state 2's delta.
//   8. create delta D on state 2: D/2 × (join a fresh pid on "delta" + i / "user" + i, then
//      leave one original row of state 2, in extract order).
//   9. merge delta D into state 1 (D/2 − 1 joins, 0 leaves).
//  10. replica_down(state 1, R): all S + D/2 rows come back as leaves.
//  11. remove_down_replicas(state 1, R).
//
// hash(i): Erlang's phash2 is not reproduced; a 32-bit integer mix (murmur3 fmix32) spreads i
// over S/10 topics the same way, so "topic10" holds ~10 rows instead of phash2's 5 / 13.
// Fresh pids are new strings ("<prefix>.<counter>"), made inside the timed loops as the
// script's make_ref() is.
//
// Cases: S = 100,000 / D = 100 and S = 25,000 / D = 1,000 (compared with BEAM), S = 1,000 /
// D = 100 (small, information only), plus a labelled variant at S = 100,000 where state 2 has
// its own replica (a real 2S merge: S joins), not comparable with BEAM.
// Runs: three untimed warm-ups at S = 10,000 / D = 1,000, then BENCH_RUNS (default 3) runs per case on fresh
// states, GC forced (then 100 ms idle) before every timed step; value = median.
//
// "create 2xS" also records "(main-thread cpu)": the CPU time of the main thread during the step
// (Linux /proc), which a loaded shared machine does not inflate the way it inflates wall time
// (the other steps are too short for /proc's tick-based figure).
//
// Run: `npx tsc -b packages/tracker && node --expose-gc bench/tracker-state.bench.mjs`
// (or `pnpm bench tracker-state`). BENCH_TRACKER=/path/to/dist/index.js benchmarks another build.
let State;
try {
  ({ State } = await import(process.env.BENCH_TRACKER ?? "../packages/tracker/dist/index.js"));
} catch (err) {
  // The package index also loads the shard and pool (and through them @cinder/pubsub and
  // @cinder/runtime); the State module alone has no dependency, so a broken sibling build does
  // not have to stop this benchmark. Say so loudly.
  console.error(`tracker-state: packages/tracker/dist/index.js did not load (${String(err?.message ?? err).split("\n")[0]}); using dist/internal/state.js`);
  State = await import("../packages/tracker/dist/internal/state.js");
}
import { readFileSync } from "node:fs";
import os, { loadavg } from "node:os";
import { Suite, gc, now } from "./lib.mjs";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const suite = new Suite("tracker-state", { runs: RUNS });

// BEAM medians [min–max], ms (beam.md §3).
const BEAM = {
  "S=100000/D=100": {
    "create 2xS": [1693, 1460, 1723],
    extract: [79.9, 61.6, 82.9],
    "merge 2 sets": [533.9, 498.1, 584.1],
    "merge again": [73.2, 63.9, 73.7],
    get_by_topic: [0.04],
    "get_by_pid/2": [0.01],
    "get_by_pid/4": [0.0],
    "create delta": [5.91, 4.8, 6.06],
    "merge delta": [21.18, 20.62, 21.43],
    replica_down: [43.48, 35.63, 45.8],
    remove_down_replicas: [200.08, 186.11, 201.15],
  },
  "S=25000/D=1000": {
    "create 2xS": [227, 218, 375],
    extract: [43.8, 42.0, 45.4],
    "merge 2 sets": [22.6, 22.1, 24.0],
    "merge again": [14.2, 13.8, 14.2],
    get_by_topic: [0.03],
    "get_by_pid/2": [0.01],
    "get_by_pid/4": [0.0],
    "create delta": [5.06, 5.04, 5.23],
    "merge delta": [5.61, 5.57, 5.7],
    replica_down: [5.38, 5.12, 5.62],
    remove_down_replicas: [40.02, 36.1, 40.97],
  },
};
const ref = (c, m) => {
  const b = BEAM[c]?.[m.replace(" (main-thread cpu)", "")];
  if (!b) return undefined;
  return b.length === 3 ? `BEAM ${b[0]} [${b[1]}–${b[2]}]` : `BEAM ${b[0]}`;
};

function availableCores() {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}

function fmix32(h) {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// After the forced GC, give V8's concurrent sweeper a moment to finish, so that the aftermath of
// a collection the benchmark itself forced is not charged to the next step (the BEAM script
// forces none). Without it, steps that allocate little (merge delta) swing from 0.3 to 30 ms.
const settle = () => new Promise((r) => setTimeout(r, 100));

// CPU time of this (the main) thread, in ms, from /proc (Linux; NaN elsewhere). On a shared,
// overloaded machine the wall clock mostly measures the wait for a core; this is what the step
// itself cost. It leaves out V8's GC helper threads (which an idle 2-core machine runs on the
// other core, in parallel), so it is the figure an idle machine's wall clock approaches.
const mainThreadCpu = () => {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
  } catch {
    return NaN;
  }
};

let pidSerial = 0;
const freshPid = () => `<0.${++pidSerial}.0>`;

function expectEq(what, got, want) {
  if (got !== want) throw new Error(`tracker-state bench: ${what}: got ${got}, expected ${want}`);
}

/** One run of the sequence. Returns [metric, ms] pairs. */
async function sequence(S, D, { distinct = false } = {}) {
  const R = State.replicaId("bench@host", "1");
  const R2 = distinct ? State.replicaId("bench2@host", "1") : R;
  const topics = Math.trunc(S / 10);
  const out = [];
  const time = async (metric, fn) => {
    await gc();
    await settle();
    const c0 = mainThreadCpu();
    const t0 = now();
    const result = fn();
    const wall = now() - t0;
    const cpu = mainThreadCpu() - c0;
    out.push([metric, wall]);
    // /proc's figure advances in scheduler ticks: only meaningful for the one long step
    if (metric === "create 2xS" && Number.isFinite(cpu)) out.push([`${metric} (main-thread cpu)`, cpu]);
    return result;
  };

  // 1. create 2 × S
  const [s1, s2] = await time("create 2xS", () => {
    const a = State.create(R);
    for (let i = 1; i <= S; i++) State.join(a, freshPid(), `topic${fmix32(i) % topics}`, `user${i}`, { name: i });
    const b = State.create(R2);
    for (let i = 1; i <= S; i++) State.join(b, freshPid(), `topic${i}`, `user${i}`, { name: i });
    return [a, b];
  });
  const user = freshPid();
  State.join(s1, user, "topic100", "user100", { name: 100 });
  if (distinct) {
    State.replicaUp(s1, R2);
    State.replicaUp(s2, R);
  }

  // 2. extract (the script passes a remote name that is not the replica: every value goes)
  const remoteName = State.replicaId("s2", "bench");
  const extracted = await time("extract", () => State.extract(s2, remoteName, s2.context));
  expectEq("extracted values", extracted.values.get(R2)?.size, S);

  // 3. / 4. merge the two sets, twice
  const m1 = await time("merge 2 sets", () => State.merge(s1, extracted));
  expectEq("merge 2 sets joins", m1.joins.length, distinct ? S : 0);
  expectEq("merge 2 sets leaves", m1.leaves.length, 0);
  expectEq("rows after merge", State.size(s1), distinct ? 2 * S + 1 : S + 1);
  const m2 = await time("merge again", () => State.merge(s1, extracted));
  expectEq("merge again joins", m2.joins.length + m2.leaves.length, 0);

  // 5–7. reads
  const byTopic = await time("get_by_topic", () => State.getByTopic(s1, "topic10"));
  if (byTopic.length === 0) throw new Error("topic10 is empty");
  const byPid = await time("get_by_pid/2", () => State.getByPid(s1, user));
  expectEq("get_by_pid/2 rows", byPid.length, 1);
  const { topic, pid, key } = byPid[0];
  const one = await time("get_by_pid/4", () => State.getByPid(s1, pid, topic, key));
  if (one === undefined) throw new Error("get_by_pid/4 found nothing");

  State.compact(s1);
  State.compact(s2);
  State.resetDelta(s2);

  // 8. create delta D: joins on state 2, each followed by the leave of one original row
  const originals = [...extracted.values.get(R2).values()].slice(0, D / 2);
  await time("create delta", () => {
    for (let i = 1; i <= D / 2; i++) {
      State.join(s2, freshPid(), `delta${i}`, `user${i}`, { name: i });
      const v = originals[i - 1];
      State.leave(s2, v.pid, v.topic, v.key);
    }
  });
  expectEq("delta size", State.deltaSize(s2.delta), D / 2 + (3 * D) / 2);

  // 9. merge the delta into state 1
  const md = await time("merge delta", () => State.merge(s1, s2.delta));
  expectEq("merge delta joins", md.joins.length, distinct ? D / 2 : D / 2 - 1);
  expectEq("merge delta leaves", md.leaves.length, distinct ? D / 2 : 0);

  // 10. / 11. down and purge R (state 1's own replica in the shared-replica sequence)
  const down = await time("replica_down", () => State.replicaDown(s1, R2));
  expectEq("replica_down leaves", down.length, distinct ? S - D / 2 + D / 2 : S + D / 2);
  await time("remove_down_replicas", () => State.removeDownReplica(s1, R2));
  expectEq("rows after purge", State.size(s1), distinct ? S + 1 : 0);
  return out;
}

const cases = [
  { name: "S=100000/D=100", S: 100_000, D: 100 },
  { name: "S=25000/D=1000", S: 25_000, D: 1_000 },
  { name: "S=1000/D=100", S: 1_000, D: 100 },
  { name: "S=100000/D=100 two replicas (variant, not comparable)", S: 100_000, D: 100, distinct: true },
];
const only = process.env.BENCH_CASES?.split(",");

// warm-up, untimed: enough calls of every step for V8 to optimize them (a long-running shard is warm)
for (let i = 0; i < 3; i++) await sequence(10_000, 1_000);
for (const c of cases) {
  if (only && !only.some((o) => c.name.includes(o))) continue;
  await suite.measure(c.name, async () => (await sequence(c.S, c.D, c)).map(([m, v]) => [c.name, m, v, "ms", ref(c.name, m)]));
}

// Ratio to BEAM (target ≤ 0.5 on every compared step).
for (const r of suite.results()) {
  const b = BEAM[r.case]?.[r.metric.replace(" (main-thread cpu)", "")];
  if (b && b[0] > 0.05) suite.note(`${r.case} ${r.metric}: ${(r.value / b[0]).toFixed(3)} × BEAM (wall)`);
}
suite.note(`load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(" / ")} on ${availableCores()} cores (BEAM's figures: an idle machine)`);
suite.note("hash: murmur3 fmix32 instead of phash2 (topic10 holds a different handful of rows); pids are fresh strings");
suite.note("variant row: state 2 has its own replica, so merge 2 sets joins S rows; labelled, not compared with BEAM");
suite.report();
