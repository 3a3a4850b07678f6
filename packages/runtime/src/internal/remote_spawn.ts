/**
 * Spawning by module reference: how a process is started on another scheduler thread.
 *
 * A thread cannot receive a closure, so the behaviour is named by module URL and export, with
 * structured-clonable args (Erlang's spawn(M, F, A)):
 * - kind `process`: the export is a factory `(...args) => Behaviour` (a body or a handler);
 * - kind `genserver`: the export is a `GenServerBehaviour`; `args[0]` is its init argument.
 *
 * Link and monitor are set up on the new process before it runs its first message (links:
 * the requester has already counted the spawn as in flight, so an early exit is not lost;
 * see `Process.spawning`). `.ts` modules are loaded through tsx's loader, registered lazily in
 * the thread on first use (a development convenience; production code loads built `.js`).
 */
import { pathToFileURL } from "node:url";
import { BadArgError } from "./errors.js";
import type { NodeCore } from "./node_core.js";
import type { Behaviour } from "./process.js";
import type { MonitorRef, Pid } from "./types.js";
import { GenServer } from "../gen_server.js";

/** A module reference: a module URL (or absolute path) and an export name. */
export interface ModuleRef {
  module: string | URL;
  export: string;
}

/** @internal the wire form of a spawn request */
export interface SpawnRequest {
  module: string;
  export: string;
  args: unknown[];
  kind: "process" | "genserver";
  link?: Pid;
  monitor?: { watcher: Pid; ref: MonitorRef };
  name?: string;
  label?: string;
  trapExit?: boolean;
  /** GenServer init timeout (ms) */
  timeout?: number;
}

/** @internal an error as it crosses threads (its class is restored on arrival) */
export interface WireError {
  $error: true;
  name: string;
  message: string;
  code?: string;
  reason?: unknown;
  pid?: string;
  stack?: string;
}

/** @internal */
export function toWire(e: unknown): WireError {
  const x = e as { name?: string; message?: string; code?: string; reason?: unknown; pid?: string; stack?: string };
  let reason: unknown = x?.reason;
  try {
    structuredClone(reason);
  } catch {
    reason = String(reason);
  }
  return { $error: true, name: x?.name ?? "Error", message: x?.message ?? String(e), code: x?.code, reason, pid: x?.pid, stack: x?.stack };
}

/** @internal rebuilds a typed error that crossed a thread */
export function fromWire(w: WireError, classes: Record<string, new (...a: never[]) => Error>): Error {
  const C = classes[w.name] ?? Error;
  const e = Object.create(C.prototype) as Error & Record<string, unknown>;
  Object.assign(e, { name: w.name, message: w.message, stack: w.stack });
  if (w.code !== undefined) e.code = w.code;
  if (w.reason !== undefined) e.reason = w.reason;
  if (w.pid !== undefined) e.pid = w.pid;
  return e;
}

let tsxRegistered: Promise<void> | null = null;

/** Normalises a module reference to a URL string. */
export function moduleUrl(m: string | URL): string {
  if (m instanceof URL) return m.href;
  if (m.startsWith("file:") || m.startsWith("data:") || m.startsWith("node:")) return m;
  if (m.startsWith("/")) return pathToFileURL(m).href;
  return m; // a bare specifier (package name)
}

/** Imports a module in this thread (registering the TypeScript loader for `.ts`). */
export async function loadModule(url: string): Promise<Record<string, unknown>> {
  if (/\.(c|m)?tsx?$/.test(url) && process.env.CINDER_NO_TSX !== "1") {
    tsxRegistered ??= import("tsx/esm/api").then((m: { register: () => unknown }) => {
      m.register();
    });
    await tsxRegistered;
  }
  return (await import(url)) as Record<string, unknown>;
}

/** Runs a spawn request on this thread's scheduler; resolves with the new pid. */
export async function spawnHere(core: NodeCore, req: SpawnRequest): Promise<Pid> {
  const mod = await loadModule(req.module);
  const exp = mod[req.export];
  if (exp === undefined) throw new BadArgError(`spawn: ${req.module} has no export ${req.export}`);
  if (req.kind === "genserver") {
    const pid = await GenServer.start(core, exp as never, req.args[0] as never, { name: req.name, trapExit: req.trapExit, parentPid: req.link, timeout: req.timeout });
    attach(core, pid, req);
    return pid;
  }
  if (typeof exp !== "function") throw new BadArgError(`spawn: ${req.export} is not a factory function`);
  const behaviour = (exp as (...a: unknown[]) => Behaviour<unknown>)(...req.args);
  const p = core.main.spawn(behaviour, { label: req.label ?? req.export, name: req.name, trapExit: req.trapExit }, null, false);
  attach(core, p.pid, req);
  return p.pid;
}

function attach(core: NodeCore, pid: Pid, req: SpawnRequest): void {
  const p = core.main.procs.get(pid);
  if (p === undefined || !p.alive) {
    // already gone: the requester still hears about it, once
    const reason = p?.reason ?? "noproc";
    if (req.link !== undefined) core.routeSignal(req.link, { k: "exit", from: pid, reason, link: true });
    if (req.monitor !== undefined) core.routeSignal(req.monitor.watcher, { k: "down", from: pid, ref: req.monitor.ref, reason });
    return;
  }
  if (req.link !== undefined) (p.links ??= new Set()).add(req.link);
  if (req.monitor !== undefined) (p.monitoredBy ??= new Map()).set(req.monitor.ref, req.monitor.watcher);
}
