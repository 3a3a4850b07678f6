// The chat server's broadcast path against Socket.IO, with the method of shared/anchors/peers.md
// ("WebSocket broadcast"): one room of N WebSocket clients on loopback, the server sends M
// messages as fast as it can (a loop yielding to the event loop every BENCH_CHUNK messages, the
// same loop in both servers); deliveries/s from the first send until every client has counted M;
// latency of every delivery from send to receive on the shared monotonic clock (process.hrtime,
// CLOCK_MONOTONIC on Linux, the same in every process of the machine).
//
// - Cinder: the chat server (built examples/chat/dist) in its own OS process,
//   bench/fixtures/chat_server.mjs; the clients join `bench:room` (a channel without presence,
//   like a Socket.IO room), and a control client's push starts the burst.
// - Socket.IO 4.8: a minimal server (websocket transport, rooms, no presence) in its own OS
//   process, bench/fixtures/socketio_server.mjs; the control client is socket.io-client.
// - The load: N `ws` clients in this process, speaking the Phoenix V2 JSON protocol (Cinder) or
//   the engine.io 4 / socket.io 5 protocol (Socket.IO) directly, answering pings; each counts the
//   messages and reads `t` out of the frame. The same client code path for both servers.
// - One extra case: the chat's own `room:*` channel (presence tracked for every client, a
//   presence_state per join, batched presence_diffs), 1k clients: join time and the same burst.
//
// Cases: 1k clients × 1,000 messages and 10k clients × 100 messages; BENCH_RUNS runs (default 3)
// after one warm-up burst each. BENCH_CASES: comma list of case prefixes ("1k", "10k", "presence").
// BENCH_CHUNK (default 1). Imports the BUILT packages: run `pnpm build` first.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Suite } from "./lib.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const requireChat = createRequire(join(root, "examples/chat/package.json"));
const WebSocket = requireChat("ws");
const { io: ioClient } = await import("socket.io-client");

const S = new Suite("chat", { runs: Number(process.env.BENCH_RUNS ?? 3) });
const only = process.env.BENCH_CASES?.split(",");
const want = (name) => !only || only.some((o) => name.startsWith(o));
const CHUNK = Number(process.env.BENCH_CHUNK ?? 1);
const hr = () => Number(process.hrtime.bigint()) / 1e6;
const sleepTick = () => new Promise((r) => setImmediate(r));

// ---- servers ---------------------------------------------------------------------------------

function startServer(fixture) {
  const extra = process.env.BENCH_SERVER_NODE_ARGS ? process.env.BENCH_SERVER_NODE_ARGS.split(" ") : [];
  const proc = spawn(process.execPath, [...extra, join(root, "bench/fixtures", fixture)], { cwd: root, stdio: ["pipe", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout });
    rl.on("line", (l) => {
      try {
        const e = JSON.parse(l);
        if (e.event === "ready") resolve({ proc, port: e.port, stop: () => stopServer(proc) });
      } catch {
        // not ours
      }
    });
    proc.once("exit", (code) => reject(new Error(`${fixture} exited with ${code}`)));
  });
}

async function stopServer(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.stdin.end();
  const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(t);
}

// ---- the load: N raw ws clients ---------------------------------------------------------------

/** Counters of one burst, shared by every client. */
class Burst {
  constructor(n, m) {
    this.n = n;
    this.m = m;
    this.lat = new Float64Array(n * m);
    this.k = 0;
    this.done = 0;
    this.last = 0;
    this.promise = new Promise((res) => (this.resolve = res));
  }
  /** A client got a message stamped `t` (and has now `count` of them). */
  got(t, count) {
    const now = hr();
    if (this.k < this.lat.length) this.lat[this.k++] = now - t;
    if (count === this.m) {
      this.last = now;
      if (++this.done === this.n) this.resolve();
    }
  }
}

const T_KEY = '"t":';

/** Reads the number after `"t":` in a frame. */
function stampOf(s) {
  const i = s.lastIndexOf(T_KEY);
  return i < 0 ? NaN : parseFloat(s.slice(i + T_KEY.length));
}

/** One load client. `kind`: "phoenix" or "socketio". Resolves once it has joined `room`. */
function openClient(kind, port, room, state, params = {}) {
  return new Promise((resolve, reject) => {
    const url = kind === "phoenix" ? `ws://127.0.0.1:${port}/socket/websocket?vsn=2.0.0` : `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`;
    const ws = new WebSocket(url, kind === "phoenix" ? ["phoenix"] : undefined, { perMessageDeflate: false });
    const c = { ws, count: 0 };
    let joined = false;
    ws.on("error", (e) => (joined ? undefined : reject(e)));
    ws.on("open", () => {
      if (kind === "phoenix") ws.send(JSON.stringify(["1", "1", room, "phx_join", params]));
    });
    ws.on("message", (data) => {
      const s = data.toString();
      if (joined) {
        if (kind === "socketio" && s === "2") return ws.send("3"); // engine.io ping
        const t = stampOf(s);
        if (t === t && s.includes('"msg"')) state.burst?.got(t, ++c.count);
        return;
      }
      if (kind === "phoenix") {
        if (s.startsWith('["1","1"')) {
          if (!s.includes('"status":"ok"')) return reject(new Error(`join refused: ${s}`));
          joined = true;
          resolve(c);
        }
        return;
      }
      // engine.io open → socket.io connect → join with ack
      if (s[0] === "0") ws.send("40");
      else if (s.startsWith("40")) ws.send(`420${JSON.stringify(["join", room])}`);
      else if (s.startsWith("430")) {
        joined = true;
        resolve(c);
      } else if (s === "2") ws.send("3");
    });
  });
}

/** N clients of `kind` in `room`, opened `parallel` at a time. */
async function openClients(kind, port, room, n, state, params = () => ({})) {
  const clients = [];
  const parallel = 250;
  for (let i = 0; i < n; i += parallel) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + parallel); j++) batch.push(openClient(kind, port, room, state, params(j)));
    clients.push(...(await Promise.all(batch)));
  }
  return clients;
}

async function closeClients(clients) {
  await Promise.all(
    clients.map(
      (c) =>
        new Promise((r) => {
          if (c.ws.readyState === WebSocket.CLOSED) return r();
          c.ws.once("close", r);
          c.ws.terminate();
        }),
    ),
  );
}

// ---- control: start a burst -------------------------------------------------------------------

async function phoenixControl(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket/websocket?vsn=2.0.0`, ["phoenix"]);
  await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
  let ref = 1;
  const waiting = new Map();
  ws.on("message", (d) => {
    const [, r, , ev, payload] = JSON.parse(d.toString());
    if (ev === "phx_reply" && waiting.has(r)) {
      waiting.get(r)(payload);
      waiting.delete(r);
    }
  });
  const call = (event, payload) => {
    const r = String(++ref);
    ws.send(JSON.stringify(["c", r, "ctl:go", event, payload]));
    return new Promise((res) => waiting.set(r, res));
  };
  ws.send(JSON.stringify(["c", "c", "ctl:go", "phx_join", {}]));
  await new Promise((res) => waiting.set("c", res));
  return {
    go: async (topic, m) => (await call("go", { topic, m, chunk: CHUNK })).response,
    close: () => ws.terminate(),
  };
}

async function socketioControl(port) {
  const s = ioClient(`http://127.0.0.1:${port}`, { transports: ["websocket"], reconnection: false });
  await new Promise((r, j) => (s.once("connect", r), s.once("connect_error", j)));
  return {
    go: (room, m) => s.timeout(300_000).emitWithAck("go", { room, m, chunk: CHUNK }),
    close: () => s.close(),
  };
}

// ---- one burst ----------------------------------------------------------------------------------

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function burst(state, control, topic, n, m) {
  const b = (state.burst = new Burst(n, m));
  for (const c of state.clients) c.count = 0;
  const timeout = setTimeout(() => b.resolve("timeout"), 300_000);
  const cpu0 = process.cpuUsage();
  const sent = await control.go(topic, m);
  const r = await b.promise;
  if (process.env.BENCH_DEBUG) {
    const cpu = process.cpuUsage(cpu0);
    console.error(`    load process cpu: ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (user ${(cpu.user / 1000).toFixed(0)}, sys ${(cpu.system / 1000).toFixed(0)}) over ${(b.last - sent.t0).toFixed(0)} ms wall`);
  }
  clearTimeout(timeout);
  state.burst = undefined;
  if (r === "timeout") throw new Error(`burst timed out: ${b.done}/${n} clients done, ${b.k}/${n * m} deliveries`);
  const wallMs = b.last - sent.t0;
  const lat = b.lat.subarray(0, b.k).sort();
  return { rate: (n * m) / (wallMs / 1000), p50: pct(lat, 50), p99: pct(lat, 99), sendMs: sent.t1 - sent.t0 };
}

// ---- cases ----------------------------------------------------------------------------------

const REF = {
  "1k": { rate: "Socket.IO 63.4 k/s, ws send(string) 90.5 k/s (peers.md)", p50: "Socket.IO 21.4 ms, ws 14.3 ms", p99: "Socket.IO 59.8 ms, ws 36.7 ms" },
  "10k": { rate: "Socket.IO 49.5 k/s, ws send(string) 67.9 k/s (peers.md)", p50: "Socket.IO 187 ms, ws 114 ms", p99: "Socket.IO 607 ms, ws 305 ms" },
};

const SERVERS = {
  cinder: { fixture: "chat_server.mjs", kind: "phoenix", control: phoenixControl, topic: "bench:room" },
  "socket.io": { fixture: "socketio_server.mjs", kind: "socketio", control: socketioControl, topic: "bench-room" },
};

const medians = new Map();

async function runCase(label, n, m, server, opts = {}) {
  const spec = SERVERS[server];
  const srv = await startServer(spec.fixture);
  const state = { clients: [], burst: undefined };
  try {
    const topic = opts.topic ?? spec.topic;
    const t0 = hr();
    state.clients = await openClients(spec.kind, srv.port, topic, n, state, opts.params);
    const joinS = (hr() - t0) / 1000;
    const control = await spec.control(srv.port);
    const caseName = `${label} ${server}${opts.suffix ?? ""}`;
    S.add(caseName, "connect + join all", joinS, "s");
    await S.measure(
      caseName,
      async (mm) => {
        const r = await burst(state, control, topic, n, mm ?? m);
        const ref = REF[label.split(" ")[0]];
        return {
          "deliveries/s": [r.rate, "/s", server === "socket.io" ? ref?.rate : undefined],
          p50: [r.p50, "ms", server === "socket.io" ? ref?.p50 : undefined],
          p99: [r.p99, "ms", server === "socket.io" ? ref?.p99 : undefined],
          "send loop": [r.sendMs, "ms"],
        };
      },
      { warm: Math.max(10, Math.round(m / 4)) },
    );
    control.close();
    const rows = S.results().filter((x) => x.case === caseName);
    medians.set(caseName, Object.fromEntries(rows.map((x) => [x.metric, x.value])));
  } finally {
    await closeClients(state.clients);
    await srv.stop();
  }
}

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const CASES = [
  { label: "1k×1000", n: 1000, m: Math.max(10, Math.round(1000 * SCALE)) },
  { label: "10k×100", n: 10_000, m: Math.max(10, Math.round(100 * SCALE)) },
];

for (const c of CASES) {
  if (!want(c.label.startsWith("1k") ? "1k" : "10k")) continue;
  for (const server of ["cinder", "socket.io"]) {
    console.error(`[chat] ${c.label} ${server}`);
    await runCase(c.label, c.n, c.m, server);
  }
  const a = medians.get(`${c.label} cinder`);
  const b = medians.get(`${c.label} socket.io`);
  if (a && b) {
    S.add(`${c.label} cinder vs socket.io`, "deliveries/s ratio", a["deliveries/s"] / b["deliveries/s"], "×", "target ≥ 2");
    S.add(`${c.label} cinder vs socket.io`, "p99 ratio", a.p99 / b.p99, "×", "target ≤ 1");
  }
}

if (want("presence")) {
  console.error(`[chat] 1k×1000 cinder, room:* with presence`);
  await runCase("1k×1000", 1000, 1000, "cinder", { topic: "room:bench", params: (i) => ({ user: `u${i}` }), suffix: " (room:* with presence)" });
}

S.note(`N clients in this process (raw ws: Phoenix V2 JSON for Cinder, engine.io/socket.io for Socket.IO); each server in its own process; burst loop yields every ${CHUNK} message(s)`);
S.note("deliveries/s = N × M / (last client done − first send); latency = receive − send on process.hrtime (CLOCK_MONOTONIC)");
S.report();
await sleepTick();
process.exit(0);
