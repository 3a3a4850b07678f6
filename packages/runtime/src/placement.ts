/**
 * Spawning on any scheduler of the node, by module reference (see internal/remote_spawn.ts).
 *
 * Worker schedulers start on first use, or at `startNode` when `schedulers` is given.
 */
import { CinderError } from "./internal/errors.js";
import type { NodeCore } from "./internal/node_core.js";
import { Process } from "./internal/process.js";
import { coreOf, type Context } from "./internal/request.js";
import { moduleUrl, spawnHere, type ModuleRef, type SpawnRequest } from "./internal/remote_spawn.js";
import type { Placement, WorkerSchedulers } from "./internal/schedulers.js";
import type { MonitorRef, Pid, Ref } from "./internal/types.js";
import type { ServerRef } from "./gen_server.js";

export type { ModuleRef } from "./internal/remote_spawn.js";
export type { Placement, WatchdogOptions, BlockedReport, WorkerOptions } from "./internal/schedulers.js";

/** Options for `spawnOn`. */
export interface SpawnOnOptions {
  /** `process` (default): the export is a factory `(...args) => behaviour`; `genserver`: a GenServer behaviour, `args[0]` its init argument. */
  kind?: "process" | "genserver";
  /** Link the new process to this process, atomically. */
  link?: Process<any>;
  /** Monitor the new process from this process, atomically; the ref is in the result. */
  monitor?: Process<any>;
  /** Register a name (node-wide). */
  name?: string;
  trapExit?: boolean;
  /** GenServer init timeout in ms (kind `genserver`). */
  timeout?: number;
}

/** @internal implemented by CinderNode */
export interface HasSchedulers {
  workerSchedulers(): Promise<WorkerSchedulers | null>;
}

/**
 * Spawns a process (or GenServer) on a scheduler chosen by `placement`: an index (0 is the
 * main thread), `"round_robin"` or `"least_loaded"`. The behaviour is named by module URL and
 * export; `args` must be structured-clonable.
 *
 * @example
 * ```ts
 * import { startNode, spawnOn } from "@cinder/runtime";
 * const node = await startNode({ schedulers: 1 });
 * const mod = "data:text/javascript,export const echo = () => async (self) => { const m = await self.receive(); self.send(m.to, m.text); };";
 * const { pid } = await spawnOn(node, 0, { module: mod, export: "echo" }, []);
 * const me = node.process();
 * me.send(pid, { to: me.pid, text: "hi" });
 * console.log(await me.receive()); // "hi"
 * await node.stop();
 * ```
 */
export async function spawnOn<M = unknown>(ctx: Context, placement: Placement, ref: ModuleRef, args: unknown[], opts: SpawnOnOptions = {}): Promise<{ pid: Ref<M>; monitorRef?: MonitorRef; scheduler: number }> {
  const core = coreOf(ctx);
  const link = opts.link;
  const watcher = opts.monitor;
  const req: SpawnRequest = { module: moduleUrl(ref.module), export: ref.export, args, kind: opts.kind ?? "process", name: opts.name, trapExit: opts.trapExit, label: ref.export, timeout: opts.timeout };
  if (link) {
    if (!link.alive) throw new CinderError("noproc", `spawnOn: linking process ${link.pid} is dead`);
    req.link = link.pid;
    link.spawning++;
  }
  let monitorRef: MonitorRef | undefined;
  if (watcher) {
    monitorRef = core.makeRef() as MonitorRef;
    (watcher.watching ??= new Map()).set(monitorRef, "<pending>" as Pid);
    req.monitor = { watcher: watcher.pid, ref: monitorRef };
  }
  let pid: Pid;
  let index = 0;
  try {
    ({ pid, index } = await spawnAt(core, placement, req));
  } catch (e) {
    if (link) link.spawning--;
    if (watcher && monitorRef) watcher.watching?.delete(monitorRef);
    throw e;
  }
  if (link) {
    link.spawning--;
    if (!link.alive) {
      core.routeSignal(pid, { k: "exit", from: link.pid, reason: link.reason, link: true });
    } else {
      (link.links ??= new Set()).add(pid);
      const early = link.stashed?.findIndex((s) => s.from === pid) ?? -1;
      if (early >= 0) {
        const [sig] = link.stashed!.splice(early, 1);
        core.main.signal(link.pid, { k: "exit", from: pid, reason: sig!.reason, link: true });
      }
      if (link.spawning === 0) link.stashed = null;
    }
  }
  if (watcher && monitorRef && watcher.watching?.has(monitorRef)) watcher.watching.set(monitorRef, pid);
  return { pid: pid as Ref<M>, monitorRef, scheduler: index };
}

/**
 * Starts a GenServer on a scheduler chosen by `placement`; its behaviour is a module export and
 * `arg` (structured-clonable) its init argument. Linked to `opts.link` if given.
 *
 * @example
 * ```ts
 * import { startNode, startGenServerOn, GenServer } from "@cinder/runtime";
 * const node = await startNode({ schedulers: 1 });
 * const mod = "data:text/javascript,export const counter = { init: (n) => n, handleCall: (by, _from, n) => ({ reply: n + by, state: n + by }) };";
 * const counter = await startGenServerOn<number, number>(node, "least_loaded", { module: mod, export: "counter" }, 40, { name: "counter" });
 * console.log(await GenServer.call(node, counter, 2)); // 42
 * console.log(GenServer.whereis(node, "counter") === counter); // true
 * await node.stop();
 * ```
 */
export async function startGenServerOn<C = any, R = any, K = any>(ctx: Context, placement: Placement, ref: ModuleRef, arg: unknown, opts: Omit<SpawnOnOptions, "kind"> = {}): Promise<ServerRef<C, R, K>> {
  const { pid } = await spawnOn(ctx, placement, ref, [arg], { ...opts, kind: "genserver" });
  return pid as ServerRef<C, R, K>;
}

async function spawnAt(core: NodeCore, placement: Placement, req: SpawnRequest): Promise<{ pid: Pid; index: number }> {
  if (core.spawnService) return core.spawnService(placement, req);
  const n = core as NodeCore & Partial<HasSchedulers>;
  const pool = n.workerSchedulers ? await n.workerSchedulers() : null;
  if (pool) return pool.spawnAt(placement, req);
  if (placement !== 0 && placement !== core.main.index && typeof placement === "number") throw new CinderError("badarg", `no scheduler ${String(placement)}: this node runs 1 scheduler`);
  return { pid: await spawnHere(core, req), index: core.main.index };
}
