/**
 * The entry of a scheduler worker thread. Loaded from the built JS (`dist/internal/
 * worker_main.js`), always: see docs/ARCHITECTURE-NOTES.md.
 *
 * It builds a kernel for scheduler `index` of the node, connects the data-plane ports, keeps a
 * replica of the name table (claims go to the main thread synchronously: post, then
 * `Atomics.wait` on a shared flag the main thread sets), beats a shared heartbeat for the
 * watchdog, and serves the control plane with comlink: spawn, load module, stats, connect a
 * new peer, shutdown.
 */
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import * as Comlink from "comlink";
import { nodeEndpoint } from "./comlink_node.js";
import { NodeCore } from "./node_core.js";
import { Mesh } from "./mesh.js";
import { loadModule, spawnHere, toWire, type SpawnRequest, type WireError } from "./remote_spawn.js";
import type { Pid } from "./types.js";
import type { SchedulerStats } from "./scheduler.js";
import { consoleLogger } from "./logger.js";
import { RegistryPlane } from "./registry_replica.js";

export interface WorkerInit {
  name: string;
  tag: string;
  incarnation: string;
  index: number;
  inc: string;
  /** [index, inc, port] for each peer scheduler (main included) */
  peers: Array<[number, string, MessagePort]>;
  names: Array<[string, Pid]>;
  /** Int32Array over: [0] heartbeat counter, [1] serial of the process running */
  heartbeat: SharedArrayBuffer;
  /** Int32Array over: [0] flag, [1] result (0 ok, 1 taken) */
  nameFlag: SharedArrayBuffer;
  namePort: MessagePort;
  /** comlink channel to the main thread's services (spawn elsewhere) */
  ctlPort: MessagePort;
  heartbeatMs: number;
  /** registry replication: the node's shared control words and a port to each peer (registry_replica.ts) */
  registry: SharedArrayBuffer;
  regPeers: Array<[number, string, MessagePort]>;
}

/** What the main thread can ask a worker scheduler. */
export interface WorkerApi {
  spawn(req: SpawnRequest): Promise<Pid | WireError>;
  init(url: string, exportName: string, args: unknown[]): Promise<void>;
  loadModule(url: string): Promise<string[]>;
  stats(): SchedulerStats & { mailboxes: Array<{ pid: Pid; length: number; highWater: number }> };
  connect(index: number, inc: string, port: MessagePort, regPort?: MessagePort): void;
  shutdown(): void;
  ping(): number;
}

const init = workerData as WorkerInit;
// log lines go to the main thread's logger (which may be silent, or a test's capture)
const logger = {
  error: (message: string, meta?: Record<string, unknown>) => sendLog("error", message, meta),
  warn: (message: string, meta?: Record<string, unknown>) => sendLog("warn", message, meta),
  info: (message: string, meta?: Record<string, unknown>) => sendLog("info", message, meta),
};
function sendLog(level: "error" | "warn" | "info", message: string, meta?: Record<string, unknown>): void {
  try {
    init.namePort.postMessage({ op: "log", level, message, meta: meta ? { ...meta, error: meta.error instanceof Error ? meta.error.message : meta.error } : undefined });
  } catch {
    consoleLogger[level](message);
  }
}
const core = new NodeCore({ name: init.name, logger }, { tag: init.tag, incarnation: init.incarnation, index: init.index, schedIncarnation: init.inc });
const mesh = new Mesh(core);
core.router = mesh;
core.threads.link = mesh;
mesh.remote = mesh.relayTo(0); // pids of other nodes: through the main thread's cluster router
for (const [i, inc, port] of init.peers) mesh.connect(i, inc, port);
for (const [n, pid] of init.names) core.replicateName(n, pid);
const registry = RegistryPlane.install(core, mesh, init.index, init.registry);
for (const [i, inc, port] of init.regPeers) registry.connect(i, inc, port);

const flag = new Int32Array(init.nameFlag);
core.nameAuthority = {
  claim(name, pid) {
    Atomics.store(flag, 0, 0);
    init.namePort.postMessage({ op: "claim", name, pid });
    registry.ring(0); // the main thread may be blocked in a registry request: it serves name claims there
    const r = Atomics.wait(flag, 0, 0, 10_000);
    if (r === "timed-out") throw new Error("register: the main thread did not answer within 10 s");
    return Atomics.load(flag, 1) === 0 ? undefined : ("(another process)" as Pid);
  },
  release(name, pid) {
    // on the data plane, so the main thread frees the name before it sees this process's DOWN
    if (!mesh.service(0, "cinder.names.release", { name, pid })) init.namePort.postMessage({ op: "release", name, pid });
  },
};

const mainApi = Comlink.wrap<{ spawnAt(p: number | "round_robin" | "least_loaded", r: SpawnRequest): Promise<{ pid: Pid; index: number }> }>(nodeEndpoint(init.ctlPort as never));
init.ctlPort.unref();
core.spawnService = async (placement, req) => (placement === init.index ? { pid: await spawnHere(core, req), index: init.index } : mainApi.spawnAt(placement, req));

const hb = new Int32Array(init.heartbeat);
core.main.onRun = (serial: number) => {
  hb[1] = serial;
};
const beat = setInterval(() => {
  Atomics.add(hb, 0, 1);
  Atomics.store(hb, 2, core.main.procs.size);
}, Math.max(5, init.heartbeatMs));

const api: WorkerApi = {
  spawn: (req) => spawnHere(core, req).catch((e: unknown) => toWire(e)),
  async init(url, exportName, args) {
    const mod = await loadModule(url);
    const fn = mod[exportName];
    if (typeof fn !== "function") throw new Error(`thread init: ${url} has no function export ${exportName}`);
    await (fn as (ctx: unknown, ...a: unknown[]) => unknown)(core.threads, ...args);
  },
  async loadModule(url) {
    return Object.keys(await loadModule(url));
  },
  stats() {
    const mailboxes: Array<{ pid: Pid; length: number; highWater: number }> = [];
    for (const p of core.main.procs.values()) if (p.mailboxLength > 0 || p.highWater > 0) mailboxes.push({ pid: p.pid, length: p.mailboxLength, highWater: p.highWater });
    return { ...core.main.stats(), messagesOut: mesh.sent, mailboxes: mailboxes.slice(0, 1000) };
  },
  connect(index, inc, port, regPort) {
    mesh.connect(index, inc, port);
    if (regPort !== undefined) registry.connect(index, inc, regPort);
  },
  shutdown() {
    clearInterval(beat);
    core.halt();
    mesh.flush();
    mesh.close();
    registry.close();
    init.namePort.close();
    init.ctlPort.close();
  },
  ping: () => Date.now(),
};

Comlink.expose(api, nodeEndpoint(parentPort!));
