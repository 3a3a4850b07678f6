// Runtime kernel benchmarks, with the methods of /work/shared/anchors/beam.md §1 so the figures
// compare with BEAM's (same 2-core machine class): ping-pong, spawn 1M idle actors (+ bytes
// per idle actor), skynet 1M, and GenServer.call round trips. Each workload: one warm-up run
// (10k-sized), then BENCH_RUNS (default 5) runs on a fresh node; median [min–max].
//
// Run: `pnpm bench runtime` (builds first) or `node --expose-gc bench/runtime.bench.mjs`.
// Sizes can be scaled down for a quick look: BENCH_SCALE=0.1.
// BENCH_RUNTIME=/path/to/runtime/dist/index.js compares another build (A/B of a kernel change).
const { startNode, GenServer, silentLogger, spawnOn } = await import(process.env.BENCH_RUNTIME ?? "../packages/runtime/dist/index.js");
import { Suite, gc, mem, now, tick } from "./lib.mjs";
import { skynetNode } from "./fixtures/sched_actors.mjs";

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const N_PING = Math.round(1_000_000 * SCALE);
const N_SPAWN = Math.round(1_000_000 * SCALE);
const N_SKYNET = 10 ** Math.round(Math.log10(1_000_000 * SCALE)); // must be a power of 10
const N_CALL = Math.round(200_000 * SCALE);
const N_XPING = Math.round(20_000 * SCALE);
const N_XSEND = Math.round(1_000_000 * SCALE);
const FIXTURES = new URL("./fixtures/actors.mjs", import.meta.url).href;
const WARM = 10_000;
const only = process.env.BENCH_CASES?.split(",");
const want = (c) => !only || only.some((o) => c.includes(o));

const S = new Suite("runtime");
const BEAM = {
  ping: "BEAM 2.83 M [2.69–2.90 M]",
  rtt: "BEAM 0.353 [0.344–0.372]",
  spawn: "BEAM 351 k [176–373 k]",
  bytes: "BEAM 2,654",
  kill: "BEAM 1.37 s [1.28–1.75] (info)",
  skynet: "BEAM 2,328 [2,241–3,090]",
};

// ---- ping-pong ------------------------------------------------------------------------------

/** Body style (Erlang's shape): pinger sends {ping, self}, awaits receive(); ponger loops. */
async function pingPongBody(n) {
  const node = await startNode({ logger: silentLogger });
  const ponger = node.spawn(async (self) => {
    for (;;) {
      const m = await self.receive();
      self.send(m.from, "pong");
    }
  });
  const ms = await new Promise((resolve) => {
    node.spawn(async (self) => {
      const me = self.pid;
      const t0 = now();
      for (let i = 0; i < n; i++) {
        self.send(ponger, { t: "ping", from: me });
        await self.receive();
      }
      resolve(now() - t0);
    });
  });
  await node.stop();
  return rt(n, ms);
}

/** Handler style: both are `{ handle }` actors; the pinger counts pongs. */
async function pingPongHandler(n) {
  const node = await startNode({ logger: silentLogger });
  const ponger = node.spawn({
    handle(m, self) {
      self.send(m.from, "pong");
    },
  });
  const ms = await new Promise((resolve) => {
    let i = 0;
    let t0 = 0;
    node.spawn({
      init(self) {
        t0 = now();
        self.send(ponger, { t: "ping", from: self.pid });
      },
      handle(_m, self) {
        if (++i === n) resolve(now() - t0);
        else self.send(ponger, { t: "ping", from: self.pid });
      },
    });
  });
  await node.stop();
  return rt(n, ms);
}

/** Raw JS: two mailbox arrays and a run queue, synchronous dispatch, no pids or routing: a floor. */
async function pingPongRawSync(n) {
  const a = { box: [], h: null };
  const b = { box: [], h: null };
  const rq = [];
  let count = 0;
  const send = (p, m) => {
    p.box.push(m);
    rq.push(p);
  };
  a.h = () => {
    if (++count < n) send(b, { t: "ping", from: a });
  };
  b.h = (m) => send(m.from, "pong");
  const t0 = now();
  send(b, { t: "ping", from: a });
  // one message in flight at a time, so pop is FIFO here and nothing reallocates
  while (rq.length > 0) {
    const p = rq.pop();
    p.h(p.box.pop());
  }
  const ms = now() - t0;
  if (count !== n) throw new Error("raw ping-pong miscounted");
  return rt(n, ms, false);
}

/** Raw JS: two async functions over a minimal promise channel (the floor of `await receive()`). */
async function pingPongRawAsync(n) {
  class Ch {
    q = [];
    w = null;
    send(m) {
      const w = this.w;
      if (w !== null) {
        this.w = null;
        w(m);
      } else this.q.push(m);
    }
    recv() {
      return this.q.length ? Promise.resolve(this.q.shift()) : new Promise((r) => (this.w = r));
    }
  }
  const ca = new Ch();
  const cb = new Ch();
  let stop = false;
  (async () => {
    while (!stop) {
      const m = await cb.recv();
      if (m === null) return;
      m.from.send("pong");
    }
  })();
  const t0 = now();
  for (let i = 0; i < n; i++) {
    cb.send({ t: "ping", from: ca });
    await ca.recv();
  }
  const ms = now() - t0;
  stop = true;
  cb.send(null);
  return rt(n, ms, false);
}

function rt(n, ms, ref = true) {
  return {
    "round trips/s": [n / (ms / 1000), "rt/s", ref ? BEAM.ping : undefined],
    "mean RTT": [(ms * 1000) / n, "µs", ref ? BEAM.rtt : undefined],
  };
}

// ---- spawn 1M idle --------------------------------------------------------------------------

const idleHandler = { handle() {} };
const idleBody = async (s) => {
  await s.receive();
};

/**
 * One process spawns n idle processes in a loop (only the loop timed; for bodies, until every
 * body is blocked in receive). Memory: heap / RSS after forced GC minus before, / n; no pid list.
 * Then every one is killed (loop timed; information only).
 */
async function spawnIdle(n, kind) {
  const node = await startNode({ logger: silentLogger });
  const before = new Set(node.main.procs.keys());
  await gc();
  const m0 = mem();
  const times = await new Promise((resolve) => {
    node.spawn(async (self) => {
      const t0 = now();
      if (kind === "handler") for (let i = 0; i < n; i++) self.spawn(idleHandler);
      else for (let i = 0; i < n; i++) self.spawn(idleBody);
      const loop = now() - t0;
      await null; // queued after the bodies' start microtasks: every body is now in receive()
      resolve({ loop, settled: now() - t0 });
    });
  });
  await gc();
  const m1 = mem();
  const live = node.main.procs.size - before.size;
  if (live !== n) throw new Error(`expected ${n} idle processes, found ${live}`);
  const t1 = now();
  for (const p of node.main.procs.values()) if (!before.has(p.pid)) node.exit(p.pid, "kill");
  const killMs = now() - t1;
  if (node.main.procs.size !== before.size) throw new Error("kill left processes alive");
  await node.stop();
  await gc();
  const out = {
    "spawns/s": [n / ((kind === "handler" ? times.loop : times.settled) / 1000), "spawns/s", BEAM.spawn],
    "bytes per idle actor (heap)": [(m1.heap - m0.heap) / n, "B", BEAM.bytes],
    "bytes per idle actor (RSS)": [(m1.rss - m0.rss) / n, "B", BEAM.bytes],
    "kill all (loop)": [killMs, "ms", BEAM.kill],
  };
  if (kind !== "handler") out["spawn loop only"] = [n / (times.loop / 1000), "spawns/s"];
  return out;
}

/** Raw JS floor: n `{ box, handler }` records in a Map keyed by fresh pid-like strings. */
async function spawnRaw(n) {
  await gc();
  const m0 = mem();
  const table = new Map();
  const t0 = now();
  for (let i = 0; i < n; i++) {
    const pid = `<cinder#abcdefghij.0a.${i}>`;
    table.set(pid, { pid, box: [], handler: idleHandler });
  }
  const ms = now() - t0;
  await gc();
  const m1 = mem();
  const out = { "spawns/s": [n / (ms / 1000), "spawns/s"], "bytes per idle actor (heap)": [(m1.heap - m0.heap) / n, "B"] };
  table.clear();
  return out;
}

// ---- skynet ---------------------------------------------------------------------------------

const SKYNET_SUM = (n) => (n * (n - 1)) / 2;

/** Body style, as the Erlang skynet: each node spawns 10 children and sums 10 receives. */
function skynetBody(parent, num, size) {
  return async (self) => {
    if (size === 1) {
      self.send(parent, num);
      return;
    }
    const sub = size / 10;
    for (let i = 0; i < 10; i++) self.spawn(skynetBody(self.pid, num + i * sub, sub));
    let sum = 0;
    for (let i = 0; i < 10; i++) sum += await self.receive();
    self.send(parent, sum);
  };
}

/** Handler style: children spawned in init, answers summed in handle (shared with the schedulers suite). */
const skynetHandler = skynetNode;

async function skynet(n, kind) {
  const node = await startNode({ logger: silentLogger });
  const me = node.process();
  await gc();
  const t0 = now();
  me.spawn(kind === "body" ? skynetBody(me.pid, 0, n) : skynetHandler(me.pid, 0, n));
  const sum = await me.receive();
  const ms = now() - t0;
  if (sum !== SKYNET_SUM(n)) throw new Error(`skynet ${kind}: sum ${sum} !== ${SKYNET_SUM(n)}`);
  const left = node.main.procs.size;
  await node.stop();
  if (left > 10) throw new Error(`skynet ${kind}: ${left} processes left alive`);
  return { time: [ms, "ms", n === 1_000_000 ? BEAM.skynet : undefined] };
}

/** Raw JS floor: the same tree as async functions and Promise.all (no mailboxes). */
async function skynetRaw(n) {
  async function sk(num, size) {
    if (size === 1) return num;
    const sub = size / 10;
    const ps = [];
    for (let i = 0; i < 10; i++) ps.push(sk(num + i * sub, sub));
    let s = 0;
    for (const v of await Promise.all(ps)) s += v;
    return s;
  }
  await gc();
  const t0 = now();
  const sum = await sk(0, n);
  const ms = now() - t0;
  if (sum !== SKYNET_SUM(n)) throw new Error("raw skynet sum");
  return { time: [ms, "ms"] };
}

// ---- across schedulers (worker threads) -----------------------------------------------------

/** Pinger on the main thread, ponger on worker scheduler 1: one round trip at a time. */
async function crossPingPong(n) {
  const node = await startNode({ schedulers: 2, logger: silentLogger });
  const { pid: ponger } = await spawnOn(node, 1, { module: FIXTURES, export: "ponger" }, []);
  const ms = await new Promise((resolve) => {
    let i = 0;
    let t0 = 0;
    node.spawn({
      init(self) {
        t0 = now();
        self.send(ponger, { from: self.pid });
      },
      handle(_m, self) {
        if (++i === n) resolve(now() - t0);
        else self.send(ponger, { from: self.pid });
      },
    });
  });
  await node.stop();
  return { "round trips/s": [n / (ms / 1000), "rt/s"], "mean RTT": [(ms * 1000) / n, "µs", "raw postMessage ping-pong ~54 µs (beam.md §5)"] };
}

/** n one-way messages from the main thread to a counter on worker 1 (the mesh batches them). */
async function crossSend(n) {
  const node = await startNode({ schedulers: 2, logger: silentLogger });
  const me = node.process();
  const { pid } = await spawnOn(node, 1, { module: FIXTURES, export: "counter" }, [n, me.pid]);
  const t0 = now();
  for (let i = 0; i < n; i++) {
    me.send(pid, i);
    if ((i & 1023) === 1023) await tick(); // let the batch go out, as a busy actor's turn would
  }
  const done = await me.receive({ timeout: 60_000 });
  const ms = now() - t0;
  if (done !== "done") throw new Error("cross-thread counter did not finish");
  await node.stop();
  return { "messages/s": [n / (ms / 1000), "msg/s", "raw postMessage 0.70 M/s single, 2.7 M/s ×256 (beam.md §5)"] };
}

// ---- GenServer.call -------------------------------------------------------------------------

async function genCall(n, timeout) {
  const node = await startNode({ logger: silentLogger });
  const Echo = { init: () => 0, handleCall: (r, _f, s) => ({ reply: r, state: s + 1 }) };
  const srv = await GenServer.start(node, Echo, undefined);
  await gc();
  const t0 = now();
  for (let i = 0; i < n; i++) {
    const r = await GenServer.call(node, srv, i, timeout);
    if (r !== i) throw new Error("bad reply");
  }
  const ms = now() - t0;
  await node.stop();
  return { "calls/s": [n / (ms / 1000), "calls/s"], "mean latency": [(ms * 1000) / n, "µs"] };
}

// ---- main -----------------------------------------------------------------------------------

const cases = [
  ["ping-pong (body: await receive)", (n) => pingPongBody(n), N_PING],
  ["ping-pong (handler)", (n) => pingPongHandler(n), N_PING],
  ["ping-pong raw JS (sync run queue)", (n) => pingPongRawSync(n), N_PING],
  ["ping-pong raw JS (promise channel)", (n) => pingPongRawAsync(n), N_PING],
  ["spawn idle (handler)", (n) => spawnIdle(n, "handler"), N_SPAWN],
  ["spawn idle (body: await receive)", (n) => spawnIdle(n, "body"), N_SPAWN],
  ["spawn raw JS (Map of records)", (n) => spawnRaw(n), N_SPAWN],
  ["skynet (body)", (n) => skynet(n, "body"), N_SKYNET],
  ["skynet (handler)", (n) => skynet(n, "handler"), N_SKYNET],
  ["skynet raw JS (async + Promise.all)", (n) => skynetRaw(n), N_SKYNET],
  ["ping-pong across threads (main ↔ worker)", (n) => crossPingPong(n), N_XPING],
  ["one-way main → worker (batched)", (n) => crossSend(n), N_XSEND],
  ["GenServer.call (default 5 s timeout)", (n) => genCall(n, 5000), N_CALL],
  ["GenServer.call (timeout: Infinity)", (n) => genCall(n, Infinity), N_CALL],
];

console.log(`runtime bench: ping ${N_PING}, spawn ${N_SPAWN}, skynet ${N_SKYNET}, call ${N_CALL}, cross-thread ${N_XPING}/${N_XSEND}; ${S.runs} runs`);
for (const [name, fn, n] of cases) {
  if (!want(name)) continue;
  await S.measure(name, (arg, isWarm) => fn(isWarm ? Math.min(WARM, n) : arg), { warm: true, arg: n });
  await gc();
}
S.note("spawn idle: spawns/s times the spawn loop (for bodies: until every body is blocked in receive); bytes = (heapUsed | RSS after forced GC − before) / N, no pid list kept.");
S.note("ping-pong: 1M round trips timed inside the pinger; both processes on the one (main-thread) scheduler, as BEAM's pair on one scheduler.");
S.note("skynet: timed from spawning the root until its sum arrives; sum checked = n(n−1)/2.");
S.note("raw JS rows are floors for plain JavaScript with no runtime around it, measured in this same run.");
S.report();
await tick();
process.exit(0);
