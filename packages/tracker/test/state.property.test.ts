/**
 * Property tests of the Tracker State over 3–5 replicas driven as shards drive them (see
 * model.ts): random local operations, heartbeats and clock-driven transfers over links that
 * lose, duplicate and reorder messages, partitions and heals, replica down / up / permdown
 * and restarts.
 *
 * Runs per property: env FC_RUNS (default 250, ~6 s for the file on 2 busy cores; nightly uses 10000). Reproduce a failure with
 * the seed and path fast-check prints (FC_SEED / FC_PATH are read too).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { State } from "@cinder/tracker";
import type { Delta, Payload, TrackerState } from "@cinder/tracker";
import { canonDelta, canonRows, Cluster, type DeliveryMode } from "./model.js";

const RUNS = Number(process.env.FC_RUNS ?? 250);
const params = (): fc.Parameters<unknown> => {
  const p: fc.Parameters<unknown> = { numRuns: RUNS };
  if (process.env.FC_SEED !== undefined) p.seed = Number(process.env.FC_SEED);
  if (process.env.FC_PATH !== undefined) p.path = process.env.FC_PATH;
  return p;
};
// Generous: 10000 runs of the heaviest property take a few minutes.
const TIMEOUT = Math.max(30_000, RUNS * 100);

type Op =
  | { t: "join"; i: number; p: number; topic: number; key: number; m: number }
  | { t: "leave"; i: number; p: number; topic: number; key: number }
  | { t: "leavePid"; i: number; p: number }
  | { t: "update"; i: number; p: number; topic: number; key: number; m: number }
  | { t: "tick"; i: number }
  | { t: "deliver"; i: number; j: number; mode: DeliveryMode; pick: number }
  | { t: "flood"; i: number; j: number }
  | { t: "sample"; i: number }
  | { t: "cut"; i: number; j: number }
  | { t: "heal"; i: number; j: number }
  | { t: "down"; i: number; j: number }
  | { t: "permdown"; i: number; j: number }
  | { t: "restart"; i: number };

function opArb(n: number, faults: { restarts: boolean; partitions: boolean }): fc.Arbitrary<Op> {
  const node = fc.nat(n - 1);
  const pair = fc.tuple(node, node).filter(([i, j]) => i !== j);
  const small = fc.nat(2);
  const bit = fc.nat(1);
  const mode = fc.constantFrom<DeliveryMode>("fifo", "fifo", "fifo", "drop", "dup", "reorder");
  const arbs: Array<fc.WeightedArbitrary<Op>> = [
    { weight: 6, arbitrary: fc.record({ t: fc.constant("join"), i: node, p: small, topic: bit, key: bit, m: fc.nat(9) }) as fc.Arbitrary<Op> },
    { weight: 3, arbitrary: fc.record({ t: fc.constant("leave"), i: node, p: small, topic: bit, key: bit }) as fc.Arbitrary<Op> },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("leavePid"), i: node, p: small }) as fc.Arbitrary<Op> },
    { weight: 3, arbitrary: fc.record({ t: fc.constant("update"), i: node, p: small, topic: bit, key: bit, m: fc.nat(9) }) as fc.Arbitrary<Op> },
    { weight: 5, arbitrary: fc.record({ t: fc.constant("tick"), i: node }) as fc.Arbitrary<Op> },
    {
      weight: 12,
      arbitrary: fc.record({ t: fc.constant("deliver"), ij: pair, mode, pick: fc.nat(7) }).map(({ ij, mode: m, pick }) => ({ t: "deliver", i: ij[0], j: ij[1], mode: m, pick }) as Op),
    },
    { weight: 2, arbitrary: pair.map(([i, j]) => ({ t: "flood", i, j }) as Op) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant("sample"), i: node }) as fc.Arbitrary<Op> },
  ];
  if (faults.partitions) {
    arbs.push(
      { weight: 1, arbitrary: pair.map(([i, j]) => ({ t: "cut", i, j }) as Op) },
      { weight: 1, arbitrary: pair.map(([i, j]) => ({ t: "heal", i, j }) as Op) },
      { weight: 1, arbitrary: pair.map(([i, j]) => ({ t: "down", i, j }) as Op) },
      { weight: 1, arbitrary: pair.map(([i, j]) => ({ t: "permdown", i, j }) as Op) },
    );
  }
  if (faults.restarts) arbs.push({ weight: 1, arbitrary: node.map((i) => ({ t: "restart", i }) as Op) });
  return fc.oneof(...arbs);
}

const scenarioArb = (faults = { restarts: true, partitions: true }, maxOps = 80) =>
  fc.integer({ min: 3, max: 5 }).chain((n) => fc.tuple(fc.constant(n), fc.array(opArb(n, faults), { minLength: 5, maxLength: maxOps, size: "max" })));

function run(cl: Cluster, ops: readonly Op[], probe?: (cl: Cluster, step: number) => void): void {
  ops.forEach((op, step) => {
    switch (op.t) {
      case "join":
        cl.join(op.i, op.p, `t${op.topic}`, `k${op.key}`, { m: op.m });
        break;
      case "leave":
        cl.leave(op.i, op.p, `t${op.topic}`, `k${op.key}`);
        break;
      case "leavePid":
        cl.leavePid(op.i, op.p);
        break;
      case "update":
        cl.update(op.i, op.p, `t${op.topic}`, `k${op.key}`, { m: op.m, u: step });
        break;
      case "tick":
        cl.tick(op.i);
        break;
      case "deliver":
        cl.deliver(op.i, op.j, op.mode, op.pick);
        break;
      case "flood":
        while (cl.deliver(op.i, op.j));
        break;
      case "sample":
        cl.sample(op.i);
        break;
      case "cut":
        cl.cutLink(op.i, op.j);
        break;
      case "heal":
        cl.healLink(op.i, op.j);
        break;
      case "down":
        cl.down(op.i, op.j);
        break;
      case "permdown":
        cl.permdown(op.i, op.j);
        break;
      case "restart":
        cl.restart(op.i);
        break;
    }
    probe?.(cl, step);
  });
}

const names = (n: number) => ["a", "b", "c", "d", "e"].slice(0, n);
const knowledge = (s: TrackerState) => ({
  rows: canonRows(State.dirtyList(s)),
  context: [...s.context].sort(),
  clouds: [...s.clouds].map(([r, c]) => [r, [...c].sort((x, y) => x - y)]).sort(),
});

describe("State properties", () => {
  it(
    "T49 / T48 (F1, F11) replicas that exchanged state agree after heal and anti-entropy: no ghost, no missing row, diffs equal the observable change",
    () => {
      const stats = { full: 0, window: 0, merged: 0, droppedStale: 0, rounds: 0 };
      fc.assert(
        fc.property(scenarioArb(), ([n, ops]) => {
          const cl = new Cluster(names(n));
          run(cl, ops); // every merge / status change is checked against the observable change
          const rounds = cl.converge();
          const problems = cl.convergenceProblems();
          if (problems.length > 0) throw new Error(`${problems.join("\n")}\n--- log ---\n${cl.log.slice(-60).join("\n")}`);
          expect(rounds).toBeLessThan(30);
          for (const node of cl.nodes) {
            stats.full += node.stats.full;
            stats.window += node.stats.window;
            stats.merged += node.stats.merged;
            stats.droppedStale += node.stats.droppedStale;
          }
          stats.rounds = Math.max(stats.rounds, rounds);
        }),
        params(),
      );
      if (process.env.FC_STATS) console.log(JSON.stringify(stats));
      // the runs exercised both kinds of transfer and the stale-heartbeat filter
      if (RUNS >= 20) {
        expect(stats.full).toBeGreaterThan(0);
        expect(stats.window).toBeGreaterThan(0);
        expect(stats.droppedStale).toBeGreaterThan(0);
      }
    },
    TIMEOUT,
  );

  it(
    "T49 (F11) per-sender FIFO with loss only (the delivery contract), no status changes: views of every owner equal the owner's rows",
    () => {
      fc.assert(
        fc.property(scenarioArb({ restarts: false, partitions: false }, 100), ([n, ops]) => {
          const cl = new Cluster(names(n), { clone: false });
          cl.converge(); // everyone has met
          run(cl, ops);
          cl.converge();
          const problems = cl.convergenceProblems();
          if (problems.length > 0) throw new Error(`${problems.join("\n")}\n--- log ---\n${cl.log.slice(-60).join("\n")}`);
        }),
        params(),
      );
    },
    TIMEOUT,
  );

  it(
    "T49 (F11) the spec's loss model: rounds of random ops and ticks, per-sender FIFO with 20–50 % heartbeat loss, random cross-sender interleaving, delayed transfer answers, clock sampling every 2 ticks",
    () => {
      let windows = 0;
      fc.assert(
        fc.property(
          fc.integer({ min: 3, max: 5 }),
          fc.double({ min: 0.2, max: 0.5, noNaN: true }),
          fc.integer({ min: 10, max: 40 }),
          fc.integer(),
          (n, loss, rounds, seed) => {
            const rnd = mulberry32(seed);
            const pick = (k: number) => Math.floor(rnd() * k);
            const cl = new Cluster(names(n), { clone: false, sizes: [3, 8, 30] });
            cl.converge();
            for (let round = 1; round <= rounds; round++) {
              for (let i = 0; i < n; i++) {
                const r = rnd();
                const [p, topic, key, m] = [pick(2), `t${pick(2)}`, `k${pick(2)}`, { m: pick(100) }];
                if (r < 0.3) cl.join(i, p, topic, key, m);
                else if (r < 0.45) cl.leave(i, p, topic, key);
                else if (r < 0.6) cl.update(i, p, topic, key, m);
                else if (r < 0.63) cl.leavePid(i, p);
              }
              for (let i = 0; i < n; i++) cl.tick(i);
              // deliver a random share of every link, links interleaved at random; heartbeats
              // are lost with probability `loss`; transfer answers may wait for later rounds
              const links: Array<[number, number]> = [];
              for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) links.push([i, j]);
              for (let k = 0; k < links.length * 3; k++) {
                const [i, j] = links[pick(links.length)]!;
                const head = cl.links.get(`${i}>${j}`)?.[0];
                if (head === undefined || rnd() < (head.t === "ack" ? 0.8 : 0.3)) continue;
                cl.deliver(i, j, head.t === "hb" && rnd() < loss ? "drop" : "fifo");
              }
              if (round % 2 === 0) for (let i = 0; i < n; i++) cl.sample(i);
            }
            cl.converge();
            windows += cl.nodes.reduce((a, x) => a + x.stats.window, 0);
            const problems = cl.convergenceProblems();
            if (problems.length > 0) throw new Error(`${problems.join("\n")}\n--- log ---\n${cl.log.slice(-80).join("\n")}`);
          },
        ),
        params(),
      );
      if (RUNS >= 20) expect(windows).toBeGreaterThan(0);
    },
    TIMEOUT,
  );

  it(
    "T4 merge is idempotent: any payload (pending delta, window or full state) merged twice reports nothing and changes nothing the second time",
    () => {
      fc.assert(
        fc.property(scenarioArb(), fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(2)), { minLength: 1, maxLength: 6 }), ([n, ops], probes) => {
          const cl = new Cluster(names(n), { check: false });
          let k = 0;
          const stride = Math.max(1, Math.floor(ops.length / probes.length));
          run(cl, ops, (c, step) => {
            if (step % stride !== 0 || k >= probes.length) return;
            const [x, y, kind] = probes[k++]!;
            const to = c.nodes[x % n]!;
            const from = c.nodes[y % n]!;
            const target = State.clone(to.state);
            let payload: Payload;
            if (kind === 0) payload = from.state.delta;
            else if (kind === 1) payload = State.extractFor(from.gens, from.state, target.replica, target.context).payload;
            else payload = State.extract(from.state, target.replica, target.context);
            State.merge(target, payload);
            const once = JSON.stringify([knowledge(target), canonDelta(target.delta)]);
            expect(State.merge(target, payload)).toEqual({ joins: [], leaves: [] });
            expect(JSON.stringify([knowledge(target), canonDelta(target.delta)])).toBe(once);
            expect(State.checkInvariants(target)).toEqual([]);
          });
        }),
        params(),
      );
    },
    TIMEOUT,
  );

  it(
    "full payloads merged in any order give the same rows, context and clouds",
    () => {
      fc.assert(
        fc.property(scenarioArb(), fc.nat(), fc.nat(), ([n, ops], who, seed) => {
          const cl = new Cluster(names(n), { check: false });
          run(cl, ops);
          const to = cl.nodes[who % n]!;
          const payloads = cl.nodes.filter((x) => x !== to).map((x) => State.extract(x.state, to.state.replica, to.state.context));
          const orders = [payloads, [...payloads].reverse(), [...payloads].sort((p, q) => ((hash(p) ^ seed) >>> 0) - ((hash(q) ^ seed) >>> 0))];
          const results = orders.map((order) => {
            const target = State.clone(to.state);
            for (const p of order) State.merge(target, p);
            expect(State.checkInvariants(target)).toEqual([]);
            return knowledge(target);
          });
          expect(results[1]).toEqual(results[0]);
          expect(results[2]).toEqual(results[0]);
        }),
        params(),
      );
    },
    TIMEOUT,
  );

  it(
    "T18/T19 mergeDeltas of consecutive heartbeats is commutative, associative and idempotent, and merging the combination equals merging the parts",
    () => {
      fc.assert(
        fc.property(scenarioArb({ restarts: false, partitions: true }), fc.nat(), fc.nat(), ([n, ops], who, at) => {
          const cl = new Cluster(names(n), { check: false });
          const sent: Delta[] = [];
          const sender = who % n;
          // capture the sender's heartbeat deltas as they are sent
          const tick = cl.tick.bind(cl);
          cl.tick = (i: number) => {
            const d = cl.nodes[i]!.state.delta;
            const had = State.hasDelta(cl.nodes[i]!.state);
            tick(i);
            if (i === sender && had) sent.push(d);
          };
          run(cl, ops);
          if (sent.length < 3) return;
          const s = at % (sent.length - 2);
          const [d1, d2, d3] = [sent[s]!, sent[s + 1]!, sent[s + 2]!];
          const m = (x: Delta, y: Delta) => {
            const r = State.mergeDeltas(x, y);
            expect(r).not.toBe(State.NOT_CONTIGUOUS); // consecutive deltas are contiguous
            return r as Delta;
          };
          const show = (d: Delta) => JSON.stringify(canonDelta(d));
          expect(show(m(d1, d2))).toBe(show(m(d2, d1)));
          expect(show(m(m(d1, d2), d3))).toBe(show(m(d1, m(d2, d3))));
          expect(show(m(d1, d1))).toBe(show(d1));
          expect(show(m(m(d1, d2), d2))).toBe(show(m(d1, d2)));
          const own = cl.nodes[sender]!.state.replica;
          if (d3.range.start.get(own)! > d1.range.end.get(own)!) expect(State.mergeDeltas(d1, d3)).toBe(State.NOT_CONTIGUOUS);
          // a receiver that merges the parts in order ends like one that merges the combination
          for (const node of cl.nodes) {
            if (node.state.replica === cl.nodes[sender]!.state.replica) continue;
            if (!node.state.context.has(cl.nodes[sender]!.state.replica)) continue;
            const parts = State.clone(node.state);
            const whole = State.clone(node.state);
            for (const d of [d1, d2, d3]) State.merge(parts, d);
            State.merge(whole, m(m(d1, d2), d3));
            expect(knowledge(whole)).toEqual(knowledge(parts));
          }
        }),
        params(),
      );
    },
    TIMEOUT,
  );
});

function hash(p: Payload): number {
  let h = 0;
  for (const ch of JSON.stringify(canonDelta({ kind: "delta", values: p.values, clouds: p.clouds, range: { start: new Map(), end: new Map() } }))) {
    h = (Math.imul(h, 31) + ch.charCodeAt(0)) | 0;
  }
  return h;
}

/** A small seeded PRNG (for the high-volume schedules; fast-check supplies the seed). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
