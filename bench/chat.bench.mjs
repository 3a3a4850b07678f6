// The chat server's broadcast path against Socket.IO, with the method of shared/anchors/peers.md
// ("WebSocket broadcast"): one room of N WebSocket clients on loopback; the server sends M
// messages as fast as it can: a loop that yields to the event loop every `chunk` messages until
// they are written (Socket.IO's emit writes to every socket before it returns; Cinder's
// broadcast is a message to each socket actor, so its loop waits until the scheduler's run queue
// is empty: the same point); deliveries/s = N × M from the first send until every client has
// counted M; latency of every delivery from send to receive on the shared monotonic clock
// (process.hrtime: CLOCK_MONOTONIC, one clock for every process of the machine).
//
// - Cinder: the chat server (built examples/chat/dist) in its own OS process,
//   fixtures/chat_server.mjs; the clients join `bench:room`, a channel without presence (a
//   Socket.IO room's work), and a control client's push "go" starts the burst.
// - Socket.IO 4.8: a minimal server (websocket transport, rooms, no presence) in its own OS
//   process, fixtures/socketio_server.mjs; the control client is socket.io-client.
// - The load: per server, one more OS process (fixtures/chat_load.mjs) holding the N clients:
//   raw `ws` clients speaking the Phoenix V2 JSON protocol, or engine.io 4 / socket.io 5 (pings
//   answered); each counts messages and reads `t` out of the frame: one client code path for both.
// - Both servers and both loads run at once and the bursts alternate (Cinder, Socket.IO, then
//   the other way round), so both see the same machine; ratios are taken per round.
// - An extra case: the chat's own `room:*` channel (presence tracked for every client, a
//   presence_state per join, batched presence_diffs), 1k clients: join time and the same burst.
//
// Cases: 1k clients × 1,000 messages and 10k clients × 100 messages, the loop yielding every
// BENCH_CHUNK (default 10) messages; 1k × 1,000 with one message per event-loop turn (chunk 1);
// BENCH_SCALE scales M; BENCH_RUNS rounds (default 5) after one warm-up burst each. BENCH_CASES:
// comma list of case keys ("1k", "10k", "turn", "presence"). COALESCE_MS: the Cinder endpoint's
// write coalescing window ("off" to disable). BENCH_SERVER_NODE_ARGS: extra node flags for the
// servers (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"); BENCH_DEBUG: the loads print mean latency
// by message index. Imports the BUILT packages: run `pnpm build` first.
import { spawn } from "node:child_process";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Suite, median } from "./lib.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const S = new Suite("chat", { runs: Number(process.env.BENCH_RUNS ?? 5) });
const loadAtStart = loadavg();
const only = process.env.BENCH_CASES?.split(",");
const want = (name) => !only || only.some((o) => name.startsWith(o));
const CHUNK = Number(process.env.BENCH_CHUNK ?? 10);
const SCALE = Number(process.env.BENCH_SCALE ?? 1);

/** A child process speaking JSON lines; `next(pred)` waits for a matching event. */
function child(args, what) {
  const proc = spawn(process.execPath, args, { cwd: root, stdio: ["pipe", "pipe", "inherit"] });
  const events = [];
  const waiters = [];
  let exited = false;
  const check = () => {
    for (let w = 0; w < waiters.length; w++) {
      const i = events.findIndex(waiters[w].pred);
      if (i >= 0) {
        const [e] = events.splice(i, 1);
        const [x] = waiters.splice(w--, 1);
        x.resolve(e);
      } else if (exited) {
        const [x] = waiters.splice(w--, 1);
        x.reject(new Error(`${what} exited (code ${proc.exitCode})`));
      }
    }
  };
  createInterface({ input: proc.stdout }).on("line", (l) => {
    try {
      events.push(JSON.parse(l));
      check();
    } catch {
      // not ours
    }
  });
  proc.once("exit", () => {
    exited = true;
    check();
  });
  return {
    proc,
    send: (cmd) => proc.stdin.write(`${JSON.stringify(cmd)}\n`),
    next: (pred) =>
      new Promise((resolve, reject) => {
        waiters.push({ pred, resolve, reject });
        check();
      }),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = new Promise((r) => proc.once("exit", r));
      proc.stdin.end();
      const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await done;
      clearTimeout(t);
    },
  };
}

const SERVERS = {
  cinder: { fixture: "chat_server.mjs", kind: "phoenix", topic: "bench:room" },
  "socket.io": { fixture: "socketio_server.mjs", kind: "socketio", topic: "bench-room" },
};

/** Starts a server and its load (N clients joined); returns a handle that runs bursts. */
async function setup(server, n, opts = {}) {
  const spec = SERVERS[server];
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS ? process.env.BENCH_SERVER_NODE_ARGS.split(" ") : [];
  const srv = child([...nodeArgs, join(root, "bench/fixtures", spec.fixture)], spec.fixture);
  const { port } = await srv.next((e) => e.event === "ready");
  const load = child([join(root, "bench/fixtures/chat_load.mjs"), JSON.stringify({ kind: spec.kind, port, topic: opts.topic ?? spec.topic, n, presence: opts.presence === true })], `load of ${server}`);
  const { joinS } = await load.next((e) => e.event === "ready" || e.event === "error");
  return {
    server,
    joinS,
    async burst(m, chunk = CHUNK) {
      load.send({ op: "burst", m, chunk });
      const r = await load.next((e) => e.event === "burst" || e.event === "error");
      if (r.event === "error") throw new Error(`${server}: ${r.message}`);
      return r;
    },
    async stop() {
      await load.stop();
      await srv.stop();
    },
  };
}

const REF = {
  "1k×1000, 1 msg per turn": { rate: "Socket.IO 63.4 k/s; ws send(string) 90.5 k/s (peers.md, 1k×1000)" },
  "1k×1000": { rate: "Socket.IO 63.4 k/s; ws send(string) 90.5 k/s (peers.md)", p50: "Socket.IO 21.4; ws 14.3", p99: "Socket.IO 59.8; ws 36.7" },
  "10k×100": { rate: "Socket.IO 49.5 k/s; ws send(string) 67.9 k/s (peers.md)", p50: "Socket.IO 187; ws 114", p99: "Socket.IO 607; ws 305" },
};

function record(caseName, r, ref) {
  S.add(caseName, "deliveries/s", r.rate, "/s", ref?.rate);
  S.add(caseName, "p50", r.p50, "ms", ref?.p50);
  S.add(caseName, "p99", r.p99, "ms", ref?.p99);
  S.add(caseName, "send loop", r.sendMs, "ms");
  S.add(caseName, "load process CPU / wall", r.cpuMs / r.wallMs, "");
}

const log = (caseName, i, r) =>
  console.error(`  [chat] ${caseName} run ${i}: ${(r.rate / 1000).toFixed(1)} k deliveries/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, send loop ${r.sendMs.toFixed(0)} ms`);

/** Both servers up at once; bursts alternate; a ratio per round. */
async function compare(label, n, m, chunk, target = { rate: "target ≥ 2", p99: "target ≤ 1" }) {
  console.error(`[chat] ${label}: starting both servers and ${n} + ${n} clients`);
  const cinder = await setup("cinder", n);
  const sio = await setup("socket.io", n);
  const ratios = { rate: [], p99: [] };
  try {
    for (const h of [cinder, sio]) S.add(`${label} ${h.server}`, "connect + join all", h.joinS, "s");
    await cinder.burst(Math.max(10, Math.round(m / 4)), chunk); // warm-up
    await sio.burst(Math.max(10, Math.round(m / 4)), chunk);
    for (let i = 1; i <= S.runs; i++) {
      const order = i % 2 ? [cinder, sio] : [sio, cinder];
      const got = {};
      for (const h of order) {
        const r = await h.burst(m, chunk);
        got[h.server] = r;
        log(`${label} ${h.server}`, i, r);
        record(`${label} ${h.server}`, r, h.server === "socket.io" ? REF[label] : undefined);
      }
      const rr = got.cinder.rate / got["socket.io"].rate;
      const pr = got.cinder.p99 / got["socket.io"].p99;
      ratios.rate.push(rr);
      ratios.p99.push(pr);
      S.add(`${label} cinder ÷ socket.io (same round)`, "deliveries/s", rr, "×", target.rate);
      S.add(`${label} cinder ÷ socket.io (same round)`, "p99", pr, "×", target.p99);
    }
  } finally {
    await cinder.stop();
    await sio.stop();
  }
  return { rate: median(ratios.rate), p99: median(ratios.p99) };
}

const CASES = [
  { key: "1k", label: "1k×1000", n: 1000, m: Math.max(10, Math.round(1000 * SCALE)), chunk: CHUNK },
  { key: "10k", label: "10k×100", n: 10_000, m: Math.max(10, Math.round(100 * SCALE)), chunk: CHUNK },
  // one message per event-loop turn: a server can then only write each socket once per turn,
  // and the load processes (one frame per read) saturate first: no target, for information
  {
    key: "turn",
    label: "1k×1000, 1 msg per turn",
    n: 1000,
    m: Math.max(10, Math.round(1000 * SCALE)),
    chunk: 1,
    target: { rate: "no target: both loads CPU-bound", p99: "no target" },
  },
];

const summary = [];
for (const c of CASES) {
  if (!want(c.key)) continue;
  const r = await compare(c.label, c.n, c.m, c.chunk, c.target);
  summary.push(
    `${c.label} (loop yields every ${c.chunk}): Cinder ÷ Socket.IO deliveries/s ${r.rate.toFixed(2)}×, p99 ${r.p99.toFixed(2)}× (${c.target ? "no target" : "targets ≥ 2 and ≤ 1"}); medians of per-round ratios`,
  );
}

if (want("presence")) {
  const label = "1k×1000 cinder, room:* with presence";
  console.error(`[chat] ${label}`);
  const h = await setup("cinder", 1000, { topic: "room:bench", presence: true });
  try {
    S.add(label, "connect + join all", h.joinS, "s");
    const m = Math.max(10, Math.round(1000 * SCALE));
    await h.burst(Math.max(10, Math.round(m / 4)));
    for (let i = 1; i <= S.runs; i++) {
      const r = await h.burst(m);
      log(label, i, r);
      record(label, r);
    }
  } finally {
    await h.stop();
  }
}

for (const s of summary) S.note(s);
S.note("each server, and each server's N clients, in its own OS process; both servers measured in alternation");
S.note("load process CPU / wall near 1: the load generator (raw ws clients) was the limit, not the server; the Socket.IO figures of peers.md (another load generator) are given for context only");
S.note("burst loop: yields to the event loop every `chunk` messages until they are written (Socket.IO's emit writes synchronously; Cinder's sender waits for its scheduler's run queue to empty)");
S.note("deliveries/s = N × M / (last client done − first send); latency = receive − send on process.hrtime (CLOCK_MONOTONIC)");
S.note(`machine load average (1 min) at start ${loadAtStart[0].toFixed(2)}, at end ${loadavg()[0].toFixed(2)}: other processes on the 2 cores widen the ranges; compare the per-round ratios`);
S.report();
process.exit(0);
