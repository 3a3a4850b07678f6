/**
 * The main thread's view of the worker schedulers: start them, wire the data-plane mesh,
 * serve name claims, watch heartbeats, restart a thread that dies.
 *
 * Crash isolation: when a worker thread exits for any reason other than our own shutdown
 * (uncaught error outside an actor, `resourceLimits` exceeded, `terminate`), every process on it
 * is dead with reason `noconnection`: the main thread and every other worker fire their links
 * and monitors to it (Mesh.schedulerDown), names owned there are dropped, and the thread is
 * started again under a new incarnation letter, so its old pids never alias new ones.
 *
 * Watchdog: each worker bumps a shared counter every `heartbeatMs`; if the counter stands still
 * for `blockedAfterMs`, the thread is blocked (an actor in an endless loop): the watchdog
 * reports it with the pid of the process it last started running, and optionally restarts the
 * thread.
 */
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as Comlink from "comlink";
import { nodeEndpoint } from "./comlink_node.js";
import { Mesh } from "./mesh.js";
import type { NodeCore } from "./node_core.js";
import type { SchedulerStats } from "./scheduler.js";
import type { WorkerApi, WorkerInit } from "./worker_main.js";
import { fromWire, spawnHere, type SpawnRequest, type WireError } from "./remote_spawn.js";

async function errorClasses(): Promise<Record<string, new (...a: never[]) => Error>> {
  const errors = await import("./errors.js");
  const gs = await import("../gen_server.js");
  return {
    CinderError: errors.CinderError,
    NoProcError: errors.NoProcError,
    TimeoutError: errors.TimeoutError,
    BadArgError: errors.BadArgError,
    ExitError: errors.ExitError,
    InitError: gs.InitError,
    AlreadyStartedError: gs.AlreadyStartedError,
  } as never;
}
import type { Pid } from "./types.js";
import { CinderError } from "./errors.js";
import { RegistryPlane } from "./registry_replica.js";

/** Where to spawn: a scheduler index, or a policy. */
export type Placement = number | "round_robin" | "least_loaded";

/** Watchdog settings. */
export interface WatchdogOptions {
  /** A thread whose heartbeat stands still this long is reported blocked (default 1000 ms). */
  blockedAfterMs?: number;
  /** Heartbeat period (default 50 ms). */
  heartbeatMs?: number;
  /** What to do with a blocked thread: report only (default) or restart it. */
  action?: "report" | "restart";
}

/** A blocked-thread report. */
export interface BlockedReport {
  scheduler: number;
  /** The process that was running when the thread stopped beating (best effort). */
  pid: Pid | undefined;
  silentMs: number;
}

/** Options of a node's worker scheduler threads (`startNode({ workers })`). */
export interface WorkerOptions {
  /** Detects a thread blocked by an actor that never yields. */
  watchdog?: WatchdogOptions;
  /** `resourceLimits` for each worker thread. */
  resourceLimits?: import("node:worker_threads").ResourceLimits;
  /** Called on every blocked-thread report. */
  onBlocked?: (r: BlockedReport) => void;
  /** Called when a worker thread dies (before its restart). */
  onSchedulerDown?: (index: number, reason: unknown) => void;
}

interface Slot {
  index: number;
  inc: string;
  worker: Worker;
  api: Comlink.Remote<WorkerApi>;
  hb: Int32Array;
  flag: Int32Array;
  namePort: MessagePort;
  ctlPort: MessagePort;
  lastBeat: number;
  lastBeatAt: number;
  reported: boolean;
  ready: Promise<void>;
  /** true once the thread answered and ran its inits (the watchdog judges only ready threads) */
  isReady: boolean;
  /** rejects `ready` when the thread exits before it got ready */
  failReady: (e: Error) => void;
  /** rejects when the thread exits (requests in flight to it fail with noconnection) */
  exited: Promise<never>;
  stopping: boolean;
  /** answers the name claims queued on `namePort` now (while this thread blocks in a registry request) */
  serveNames?: () => void;
}

function workerUrl(): URL {
  const here = import.meta.url;
  const url = here.includes("/src/internal/") ? new URL("../../dist/internal/worker_main.js", here) : new URL("./worker_main.js", here);
  if (!existsSync(fileURLToPath(url))) throw new CinderError("badarg", `worker scheduler entry ${fileURLToPath(url)} is missing: build the packages first (pnpm build)`);
  return url;
}

function letters(n: number): string {
  let s = "";
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return s;
}

export class WorkerSchedulers {
  readonly core: NodeCore;
  readonly mesh: Mesh;
  readonly count: number;
  private readonly slots: Array<Slot | undefined> = [];
  private readonly generation: number[] = [];
  private rr = 0;
  private stopped = false;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private readonly opts: WorkerOptions;
  private readonly wd: Required<WatchdogOptions>;
  restarts = 0;
  /** registry replication, main thread's end (internal/registry_replica.ts) */
  readonly registry: RegistryPlane;

  constructor(core: NodeCore, count: number, opts: WorkerOptions = {}) {
    this.core = core;
    this.count = count;
    this.opts = opts;
    this.wd = { blockedAfterMs: opts.watchdog?.blockedAfterMs ?? 1000, heartbeatMs: opts.watchdog?.heartbeatMs ?? 50, action: opts.watchdog?.action ?? "report" };
    this.mesh = new Mesh(core);
    core.router = this.mesh;
    core.threads.link = this.mesh;
    core.threads.on("cinder.names.release", (d) => {
      const { name, pid } = d as { name: string; pid: Pid };
      core.releaseForRemote(name, pid);
    });
    this.mesh.incs[0] = "a";
    core.onNameChange = (name, pid) => this.mesh.controlAll({ c: "name", name, pid });
    this.registry = RegistryPlane.install(core, this.mesh, 0, count);
    this.registry.extraServe = () => {
      for (const s of this.slots) s?.serveNames?.();
    };
  }

  /** Starts every worker thread and waits until each answers. */
  async start(): Promise<void> {
    for (let i = 1; i < this.count; i++) this.generation[i] = 0;
    for (let i = 1; i < this.count; i++) this.launch(i);
    for (let i = 1; i < this.count; i++) await this.ready(i);
    this.watchdog = setInterval(() => this.checkHeartbeats(), Math.max(10, Math.floor(this.wd.heartbeatMs)));
    this.watchdog.unref();
  }

  private launch(index: number): Slot {
    const inc = letters(this.generation[index]!);
    const peers: Array<[number, string, MessagePort]> = [];
    const transfer: MessagePort[] = [];
    // a channel to the main thread, and one to each live worker
    const toMain = new MessageChannel();
    this.mesh.connect(index, inc, toMain.port1);
    peers.push([0, "a", toMain.port2]);
    transfer.push(toMain.port2);
    // registry replication: one more port per pair, alongside the mesh's (registry_replica.ts)
    const regMain = new MessageChannel();
    this.registry.connect(index, inc, regMain.port1);
    const regPeers: Array<[number, string, MessagePort]> = [[0, "a", regMain.port2]];
    transfer.push(regMain.port2);
    const connects: Array<Promise<void>> = [];
    for (let j = 1; j < this.count; j++) {
      const other = this.slots[j];
      if (j === index || other === undefined || other.stopping) continue;
      const ch = new MessageChannel();
      const reg = new MessageChannel();
      peers.push([j, other.inc, ch.port1]);
      regPeers.push([j, other.inc, reg.port1]);
      transfer.push(ch.port1, reg.port1);
      connects.push(other.ready.then(() => other.api.connect(index, inc, Comlink.transfer(ch.port2, [ch.port2 as never]), Comlink.transfer(reg.port2, [reg.port2 as never]))));
    }
    const names = new MessageChannel();
    const ctl = new MessageChannel();
    Comlink.expose({ spawnAt: (p: Placement, r: SpawnRequest) => this.spawnAt(p, r) }, nodeEndpoint(ctl.port1 as never));
    ctl.port1.unref();
    const hbBuf = new SharedArrayBuffer(12);
    const flagBuf = new SharedArrayBuffer(8);
    const init: WorkerInit = {
      name: this.core.name,
      tag: this.core.tag,
      incarnation: this.core.incarnation,
      index,
      inc,
      peers,
      names: this.core.nameSnapshot(),
      heartbeat: hbBuf,
      nameFlag: flagBuf,
      namePort: names.port2,
      ctlPort: ctl.port2,
      heartbeatMs: this.wd.heartbeatMs,
      registry: this.registry.shared,
      regPeers,
    };
    const worker = new Worker(workerUrl(), { workerData: init, transferList: [...transfer, names.port2, ctl.port2] as never, resourceLimits: this.opts.resourceLimits });
    const api = Comlink.wrap<WorkerApi>(nodeEndpoint(worker as never));
    const slot: Slot = {
      index,
      inc,
      worker,
      api,
      hb: new Int32Array(hbBuf),
      flag: new Int32Array(flagBuf),
      namePort: names.port1,
      ctlPort: ctl.port1,
      lastBeat: -1,
      lastBeatAt: performance.now(),
      reported: false,
      stopping: false,
      ready: Promise.resolve(),
      isReady: false,
      failReady: () => {},
      exited: Promise.resolve() as never,
    };
    const exited = new Promise<never>((_, reject) => {
      slot.failReady = reject;
    });
    exited.catch(() => {});
    slot.exited = exited;
    const starting = Promise.all([api.ping(), ...connects]).then(async () => {
      for (const t of this.inits) {
        try {
          await api.init(t.url, t.export, t.args);
        } catch (e) {
          this.core.logger.error(`scheduler ${index}: thread init ${t.export} of ${t.url} failed: ${(e as Error)?.message ?? String(e)}`);
        }
      }
      // tell the others the new incarnation is live
      for (let j = 1; j < this.count; j++) if (j !== index && this.slots[j] && !this.slots[j]!.stopping) this.mesh.control(j, { c: "up", index, inc });
    });
    slot.ready = Promise.race([starting, exited]).then(() => {
      slot.isReady = true;
      slot.lastBeat = Atomics.load(slot.hb, 0);
      slot.lastBeatAt = performance.now();
    });
    slot.ready.catch(() => {});
    const onName = (m: { op: "claim" | "release" | "log"; name: string; pid: Pid; level: "error" | "warn" | "info"; message: string; meta?: Record<string, unknown> }) => {
      if (m.op === "log") {
        this.core.logger[m.level](`[scheduler ${index}] ${m.message}`, m.meta);
      } else if (m.op === "claim") {
        const owner = this.core.claimForRemote(m.name, m.pid);
        Atomics.store(slot.flag, 1, owner === undefined ? 0 : 1);
        Atomics.store(slot.flag, 0, 1);
        Atomics.notify(slot.flag, 0);
      } else this.core.releaseForRemote(m.name, m.pid);
    };
    names.port1.on("message", onName);
    slot.serveNames = () => {
      for (let r = receiveMessageOnPort(names.port1); r !== undefined; r = receiveMessageOnPort(names.port1)) onName(r.message as Parameters<typeof onName>[0]);
    };
    names.port1.unref();
    worker.on("error", (e) => {
      this.core.logger.error(`scheduler ${index} (thread) crashed: ${e instanceof Error ? e.message : String(e)}`);
    });
    worker.on("exit", (code) => this.onExit(slot, code));
    this.slots[index] = slot;
    return slot;
  }

  private onExit(slot: Slot, code: number): void {
    if (this.slots[slot.index] !== slot) return;
    const reason = slot.stopping ? "shutdown" : `thread exited with code ${code}`;
    slot.failReady(new CinderError("noconnection", `scheduler ${slot.index} exited before it was ready`));
    this.slots[slot.index] = undefined;
    slot.namePort.close();
    slot.ctlPort.close();
    // every process on it is dead: fire links and monitors here and on every other thread
    for (let j = 1; j < this.count; j++) if (j !== slot.index && this.slots[j]) this.mesh.control(j, { c: "down", index: slot.index, inc: slot.inc });
    this.mesh.schedulerDown(slot.index, slot.inc);
    if (this.stopped || slot.stopping) return;
    this.opts.onSchedulerDown?.(slot.index, reason);
    this.generation[slot.index]! += 1;
    this.restarts++;
    this.launch(slot.index);
  }

  private checkHeartbeats(): void {
    const now = performance.now();
    for (const s of this.slots) {
      if (!s || s.stopping || !s.isReady) continue;
      const beat = Atomics.load(s.hb, 0);
      if (beat !== s.lastBeat) {
        s.lastBeat = beat;
        s.lastBeatAt = now;
        s.reported = false;
        continue;
      }
      const silent = now - s.lastBeatAt;
      if (silent >= this.wd.blockedAfterMs && !s.reported) {
        s.reported = true;
        const serial = Atomics.load(s.hb, 1);
        const pid = serial > 0 ? (`<${this.core.tag}.${s.index}${s.inc}.${serial}>` as Pid) : undefined;
        const report: BlockedReport = { scheduler: s.index, pid, silentMs: Math.round(silent) };
        this.core.logger.error(`scheduler ${s.index} is blocked for ${report.silentMs} ms${pid ? `; running ${pid}` : ""}`, { ...report });
        this.opts.onBlocked?.(report);
        if (this.wd.action === "restart") void s.worker.terminate();
      }
    }
  }

  /** Picks a scheduler index for a placement. */
  pick(p: Placement | undefined): number {
    if (typeof p === "number") {
      if (!Number.isInteger(p) || p < 0 || p >= this.count) throw new CinderError("badarg", `no scheduler ${p} (0..${this.count - 1})`);
      return p;
    }
    if (p === "least_loaded") {
      let best = 0;
      let bestLoad = this.core.main.procs.size;
      for (const s of this.slots) {
        if (!s) continue;
        const load = Atomics.load(s.hb, 2);
        if (load < bestLoad) {
          best = s.index;
          bestLoad = load;
        }
      }
      return best;
    }
    const i = this.rr++ % this.count;
    return i;
  }

  /** Spawns on scheduler `index`. */
  async spawn(index: number, req: SpawnRequest): Promise<Pid> {
    if (index === 0) return spawnHere(this.core, req);
    let slot = this.slots[index];
    for (let tries = 0; slot === undefined && tries < 100 && !this.stopped; tries++) {
      await new Promise((r) => setTimeout(r, 10));
      slot = this.slots[index];
    }
    if (slot === undefined) throw new CinderError("noconnection", `scheduler ${index} is down`);
    await this.ready(index);
    slot = this.slots[index];
    if (slot === undefined) throw new CinderError("noconnection", `scheduler ${index} is down`);
    const r = await Promise.race([slot.api.spawn(req), slot.exited]);
    if (typeof r === "object" && r !== null && (r as WireError).$error) throw fromWire(r as WireError, await errorClasses());
    return r as Pid;
  }

  private readonly inits: Array<{ url: string; export: string; args: unknown[] }> = [];

  /** Runs a thread-init export on every worker thread, now and on every later start. */
  async everyThread(url: string, exportName: string, args: unknown[]): Promise<void> {
    this.inits.push({ url, export: exportName, args });
    await Promise.all(
      this.slots.map(async (s) => {
        if (!s || s.stopping) return;
        await s.ready;
        await s.api.init(url, exportName, args);
      }),
    );
  }

  /** Picks by placement and spawns there. */
  async spawnAt(placement: Placement, req: SpawnRequest): Promise<{ pid: Pid; index: number }> {
    const index = this.pick(placement);
    return { pid: await this.spawn(index, req), index };
  }

  /** Terminates worker thread `index` as a crash would (tests, chaos). */
  async kill(index: number): Promise<void> {
    const s = this.slots[index];
    if (s) await s.worker.terminate();
  }

  /** Waits until scheduler `index` is up (after a restart). */
  async ready(index: number): Promise<void> {
    const deadline = performance.now() + 30_000;
    while (!this.stopped && performance.now() < deadline) {
      const s = this.slots[index];
      if (s === undefined) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      try {
        await s.ready;
        return;
      } catch {
        // the thread died while starting: its replacement is being launched
      }
    }
  }

  /** Per-scheduler statistics, main thread first. */
  async stats(): Promise<Array<SchedulerStats & { messagesOut?: number; mailboxes?: Array<{ pid: Pid; length: number; highWater: number }> }>> {
    const out: Array<SchedulerStats & { messagesOut?: number }> = [{ ...this.core.main.stats(), messagesOut: this.mesh.sent }];
    for (const s of this.slots) if (s) out.push(await s.api.stats());
    return out;
  }

  /** The incarnation letter of scheduler `index` (changes on restart). */
  incarnationOf(index: number): string | undefined {
    return index === 0 ? "a" : this.slots[index]?.inc;
  }

  /** Graceful shutdown of every worker thread. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    await Promise.all(
      this.slots.map(async (s) => {
        if (!s) return;
        s.stopping = true;
        try {
          await Promise.race([s.api.shutdown(), new Promise((r) => setTimeout(r, 1000).unref())]);
        } catch {
          /* already gone */
        }
        s.api[Comlink.releaseProxy]();
        await s.worker.terminate();
      }),
    );
    this.mesh.close();
    this.registry.close();
  }
}
