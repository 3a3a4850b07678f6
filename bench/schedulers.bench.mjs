// Cross-scheduler benchmarks (worker threads): ping-pong, one-way throughput, skynet over all
// schedulers, and raw postMessage baselines measured in the same run (beam.md §5).
import { Worker, MessageChannel } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { Suite, now } from "./lib.mjs";
import { startNode, spawnOn, silentLogger } from "../packages/runtime/dist/index.js";

const suite = new Suite("schedulers", { runs: Number(process.env.BENCH_RUNS ?? 5) });
const mod = new URL("./fixtures/sched_actors.mjs", import.meta.url);
const ref = (e) => ({ module: mod, export: e });
const S = Math.max(2, availableParallelism());
const PING = Number(process.env.BENCH_PING ?? 20_000);
const ONEWAY = Number(process.env.BENCH_ONEWAY ?? 2_000_000);
const SKY = Number(process.env.BENCH_SKYNET ?? 1_000_000);

const node = await startNode({ schedulers: S, logger: silentLogger });

// 1. cross-scheduler ping-pong: a main-thread process ↔ an echo on scheduler 1
await suite.measure("cross-scheduler ping-pong", async () => {
  const { pid } = await spawnOn(node, 1, ref("echo"), []);
  const me = node.process();
  const t0 = now();
  for (let i = 0; i < PING; i++) {
    me.send(pid, { to: me.pid, n: i });
    await me.receive();
  }
  const dt = now() - t0;
  node.exit(pid, "kill");
  me.exit("normal");
  return { "round trip": [(dt * 1000) / PING, "µs", "raw postMessage ≈ 54 µs"], "round trips/s": [PING / (dt / 1000), "1/s"] };
}, { warm: undefined });

// 2. one-way throughput: scheduler 1 blasts ONEWAY messages to a counter on the main thread
await suite.measure("one-way cross-scheduler throughput (worker → main)", async () => {
  const me = node.process();
  const counter = node.spawn((await import(mod)).counter(ONEWAY, me.pid));
  const { pid } = await spawnOn(node, 1, ref("blaster"), [counter, ONEWAY]);
  const t0 = now();
  node.send(pid, "go");
  await me.receive();
  const dt = now() - t0;
  node.exit(pid, "kill");
  node.exit(counter, "kill");
  me.exit("normal");
  return { throughput: [ONEWAY / (dt / 1000), "msgs/s", "raw batched postMessage 2.7 M/s"] };
});

// 3. skynet 1M, the root's 10 subtrees spread round-robin over all schedulers
await suite.measure(`skynet ${SKY} over ${S} schedulers`, async () => {
  const me = node.process();
  const t0 = now();
  const s = SKY / 10;
  for (let i = 0; i < 10; i++) await spawnOn(node, i % S, ref("skynet"), [me.pid, i * s, s]);
  let sum = 0;
  for (let i = 0; i < 10; i++) sum += await me.receive();
  const dt = now() - t0;
  const want = (SKY * (SKY - 1)) / 2;
  if (sum !== want) throw new Error(`skynet sum ${sum} !== ${want}`);
  me.exit("normal");
  return { time: [dt, "ms", "BEAM 2,328 ms (1 scheduler pair)"] };
}, { runs: 3 });
await node.stop();

// 4. raw postMessage baselines, same run
async function rawWorker(mode, n) {
  const { port1, port2 } = new MessageChannel();
  const w = new Worker(new URL("./fixtures/raw_worker.mjs", import.meta.url), { workerData: { port: port2, mode, n }, transferList: [port2] });
  await new Promise((r) => w.once("message", r));
  return { w, port: port1 };
}
await suite.measure("raw postMessage ping-pong", async () => {
  const { w, port } = await rawWorker("echo", 0);
  const t0 = now();
  for (let i = 0; i < PING; i++) {
    port.postMessage(i);
    await new Promise((r) => port.once("message", r));
  }
  const dt = now() - t0;
  await w.terminate();
  return { "round trip": [(dt * 1000) / PING, "µs", "beam.md: ~54 µs"] };
});
for (const batch of [1, 256]) {
  await suite.measure(`raw postMessage one-way, ${batch} per call`, async () => {
    const n = batch === 1 ? 500_000 : ONEWAY;
    const { w, port } = await rawWorker("sink", n);
    const done = new Promise((r) => port.once("message", r));
    const t0 = now();
    if (batch === 1) for (let i = 0; i < n; i++) port.postMessage(i);
    else
      for (let i = 0; i < n; i += batch) {
        const b = new Array(batch);
        for (let j = 0; j < batch; j++) b[j] = i + j;
        port.postMessage(b);
      }
    await done;
    const dt = now() - t0;
    await w.terminate();
    return { throughput: [n / (dt / 1000), "msgs/s", batch === 1 ? "beam.md: 0.70 M/s" : "beam.md: 2.7 M/s"] };
  });
}

suite.report();
