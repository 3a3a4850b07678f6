/**
 * What supervisors share: child specs, starting a child, stopping it within its shutdown
 * budget, and the restart-intensity window.
 */
import { formatReason, type CinderError } from "./errors.js";
import type { NodeCore } from "./node_core.js";
import type { Process } from "./process.js";
import { awaitExit, TIMED_OUT } from "./request.js";
import type { ExitReason, Pid } from "./types.js";

/** When a child is restarted: always, only after an abnormal exit, or never. */
export type Restart = "permanent" | "transient" | "temporary";

/** How long a child gets to stop after `shutdown` before `kill` (ms), or kill at once / wait forever. */
export type Shutdown = number | "brutal_kill" | "infinity";

/**
 * A child specification. `start` must start the child *linked to the supervisor process it is
 * given* (use `GenServer.startLink(sup, …)`, `Supervisor.startLink(sup, …)` or
 * `sup.spawnLink(…)`) and return its pid (or `undefined` to be ignored).
 */
export interface ChildSpec {
  id: string;
  start: (sup: Process<any>) => Pid | undefined | Promise<Pid | undefined>;
  restart?: Restart;
  /** Default 5000 for workers, `infinity` for supervisors. */
  shutdown?: Shutdown;
  type?: "worker" | "supervisor";
}

/** @internal What a supervisor answers a call with: a value, or the error its caller gets. */
export type SupervisorReply = { ok: unknown } | { error: CinderError };

/** @internal A supervisor call's value; rejects with the error the supervisor answered. */
export async function unwrapReply<T>(p: Promise<SupervisorReply>): Promise<T> {
  const r = await p;
  if ("error" in r) throw r.error;
  return r.ok as T;
}

/** @internal `make(core)`, made once per node (a supervisor behaviour closes over its node). */
export function perNode<T extends object>(make: (core: NodeCore) => T): (core: NodeCore) => T {
  const made = new WeakMap<NodeCore, T>();
  return (core) => {
    let b = made.get(core);
    if (!b) made.set(core, (b = make(core)));
    return b;
  };
}

/** @internal Runs a child's start function; returns the pid or throws the reason. */
export async function startChildProcess(sup: Process<any>, spec: ChildSpec): Promise<Pid | undefined> {
  const pid = await spec.start(sup);
  return pid ?? undefined;
}

/** @internal Is this exit reason a normal one for a transient child? */
export function isNormalExit(reason: ExitReason): boolean {
  return reason === "normal" || reason === "shutdown" || (typeof reason === "object" && reason !== null && "shutdown" in reason);
}

/**
 * @internal Stops one child: unlink (dropping a queued EXIT for it), send `shutdown`, wait up
 * to the budget, then `kill`. Resolves with the reason it exited with.
 */
export async function shutdownChild(core: NodeCore, sup: Process<any>, pid: Pid, spec: ChildSpec): Promise<ExitReason> {
  const budget = spec.shutdown ?? (spec.type === "supervisor" ? "infinity" : 5000);
  const exited = awaitExit(core, pid, budget === "infinity" ? Infinity : budget === "brutal_kill" ? Infinity : budget);
  sup.unlink(pid);
  sup.exit(pid, budget === "brutal_kill" ? "kill" : "shutdown");
  const r = await exited;
  if (r !== TIMED_OUT) return r;
  core.logger.warn(`child ${spec.id} (${pid}) did not stop within ${String(budget)} ms: killing it`);
  const killed = awaitExit(core, pid);
  sup.exit(pid, "kill");
  return killed;
}

/** @internal The restart-intensity window: more than `max` restarts in `seconds` → give up. */
export class Intensity {
  private readonly stamps: number[] = [];
  constructor(
    private readonly max: number,
    private readonly seconds: number,
  ) {}
  /** Records one restart; returns false if the limit is now exceeded. */
  add(now = performance.now()): boolean {
    this.stamps.push(now);
    const since = now - this.seconds * 1000;
    while (this.stamps.length > 0 && this.stamps[0]! < since) this.stamps.shift();
    return this.stamps.length <= this.max;
  }

  /**
   * Records one restart of the supervisor `what` (`"supervisor <pid>"`); false, and logged, if
   * the limit is now exceeded: the supervisor must then shut down.
   */
  allow(core: NodeCore, what: string): boolean {
    if (this.add()) return true;
    core.logger.error(`${what}: reached max restart intensity; shutting down`);
    return false;
  }
}

/** @internal */
export function logChildError(core: NodeCore, sup: Pid, id: string, what: string, reason: unknown): void {
  core.logger.error(`supervisor ${sup}: child ${id} ${what}: ${formatReason(reason)}`, { supervisor: sup, child: id, reason });
}
