/**
 * DynamicSupervisor: a supervisor that starts with no children and adds them at run time.
 *
 * Rules (OTP's / Elixir's):
 * - Children are started with `startChild` from a child spec; `maxChildren` bounds how many
 *   it holds (running or restarting): one more is refused with `MaxChildrenError`.
 * - Each child's restart type is honoured: `temporary` is never restarted, `transient` only
 *   after an abnormal exit (not `normal`, `shutdown`, `{shutdown: _}`), `permanent` always.
 *   A child that is not restarted is forgotten.
 * - Strategy is one_for_one. Intensity as in `Supervisor`: more than `maxRestarts` restarts in
 *   `maxSeconds` (default 3 in 5) stops every child and exits the supervisor with `shutdown`.
 *   A restart whose start fails counts and is retried through the mailbox.
 * - `terminateChild(pid)` stops a child within its shutdown budget and forgets it.
 * - On shutdown the children are stopped concurrently, each within its own budget (they are
 *   independent of one another, so there is no order to keep).
 */
import { CinderError } from "./internal/errors.js";
import { GenServer, type GenServerBehaviour, type ServerName, type ServerRef, type StartOptions } from "./gen_server.js";
import { Intensity, isNormalExit, logChildError, perNode, shutdownChild, startChildProcess, unwrapReply as unwrap, type ChildSpec, type SupervisorReply } from "./internal/child.js";
import type { NodeCore } from "./internal/node_core.js";
import type { Process } from "./internal/process.js";
import { coreOf, type Context } from "./internal/request.js";
import type { ExitMessage, ExitReason, Pid } from "./internal/types.js";
import type { ChildCounts } from "./supervisor.js";

/** Options of a DynamicSupervisor. */
export interface DynamicSupervisorOptions {
  /** How many children it may hold at once (default: unbounded). */
  maxChildren?: number;
  /** Default 3. */
  maxRestarts?: number;
  /** Default 5. */
  maxSeconds?: number;
}

/** A child spec for a dynamic child: the `id` is optional (only used in log lines). */
export type DynamicChildSpec = Omit<ChildSpec, "id"> & { id?: string };

/** One row of `DynamicSupervisor.whichChildren`. */
export interface DynamicChildInfo {
  /** The spec's id, if it had one. */
  id: string | undefined;
  /** The child's pid, or `"restarting"` while a failed restart waits for its retry. */
  pid: Pid | "restarting";
  type: "worker" | "supervisor";
}

/**
 * Raised by `startChild` when the supervisor already holds `maxChildren` children.
 *
 * @example
 * ```ts
 * import { startNode, DynamicSupervisor, MaxChildrenError, type DynamicChildSpec } from "@cinder/runtime";
 * const node = await startNode();
 * const sup = await DynamicSupervisor.start(node, { maxChildren: 1 });
 * const idle: DynamicChildSpec = { start: (s) => s.spawnLink(async (self) => void (await self.receive())) };
 * await DynamicSupervisor.startChild(node, sup, idle);
 * const e = await DynamicSupervisor.startChild(node, sup, idle).catch((e: unknown) => e);
 * console.log(e instanceof MaxChildrenError, (e as MaxChildrenError).max); // [true, 1]
 * await node.stop();
 * ```
 */
export class MaxChildrenError extends CinderError {
  /** The supervisor's `maxChildren`. */
  readonly max: number;
  constructor(max: number) {
    super("max_children", `dynamic supervisor already holds its maximum of ${max} children`, "max_children");
    this.name = "MaxChildrenError";
    this.max = max;
  }
}

type DynCall = { op: "start_child"; spec: DynamicChildSpec } | { op: "terminate_child"; pid: Pid } | { op: "which_children" } | { op: "count_children" };
type DynReply = SupervisorReply;
type DynInfo = ExitMessage | { $dsup: "retry"; serial: number };

/** A DynamicSupervisor's ref. */
export type DynamicSupervisorRef = ServerRef<DynCall, DynReply, never>;

interface Rec {
  serial: number;
  /** the id the caller gave, if any (the spec's id is filled in for log lines) */
  id: string | undefined;
  spec: ChildSpec;
  /** undefined while a failed restart waits for its retry */
  pid: Pid | undefined;
}

interface DynState {
  /** every child, in start order, by serial */
  children: Map<number, Rec>;
  /** running children by pid */
  byPid: Map<Pid, Rec>;
  serial: number;
  maxChildren: number;
  intensity: Intensity;
}

function makeBehaviour(core: NodeCore): GenServerBehaviour<DynState, DynCall, DynReply, never, DynInfo, DynamicSupervisorOptions> {
  const restartType = (r: Rec) => r.spec.restart ?? "permanent";

  function forget(st: DynState, r: Rec): void {
    st.children.delete(r.serial);
    if (r.pid !== undefined && st.byPid.get(r.pid) === r) st.byPid.delete(r.pid);
  }

  /** Starts (or restarts) a record; on failure schedules a retry through the mailbox. */
  async function restart(self: Process<any>, st: DynState, r: Rec): Promise<void> {
    let pid: Pid | undefined;
    try {
      pid = await startChildProcess(self, r.spec);
    } catch (e) {
      logChildError(core, self.pid, r.spec.id, "failed to restart", e);
      self.send(self.pid, { $dsup: "retry", serial: r.serial } satisfies DynInfo);
      return;
    }
    if (pid === undefined) {
      forget(st, r);
      return;
    }
    r.pid = pid;
    st.byPid.set(pid, r);
  }

  async function onChildExit(self: Process<any>, st: DynState, r: Rec, reason: ExitReason): Promise<ExitReason | undefined> {
    st.byPid.delete(r.pid!);
    r.pid = undefined;
    const rt = restartType(r);
    if (rt === "temporary" || (rt === "transient" && isNormalExit(reason))) {
      forget(st, r);
      return undefined;
    }
    if (reason !== "shutdown" && reason !== "normal") logChildError(core, self.pid, r.spec.id, "exited", reason);
    if (!st.intensity.allow(core, `dynamic supervisor ${self.pid}`)) return "shutdown";
    await restart(self, st, r);
    return undefined;
  }

  async function stopAll(self: Process<any>, st: DynState): Promise<void> {
    const running = [...st.byPid];
    st.byPid.clear();
    st.children.clear();
    await Promise.all(running.map(([pid, r]) => shutdownChild(core, self, pid, r.spec)));
  }

  return {
    name: "DynamicSupervisor",
    init(opts, self) {
      self.trapExit(true);
      const max = opts.maxChildren ?? Infinity;
      if (!(max === Infinity || (Number.isInteger(max) && max >= 0))) throw new CinderError("badarg", `maxChildren must be a non-negative integer, got ${String(max)}`);
      return {
        children: new Map(),
        byPid: new Map(),
        serial: 0,
        maxChildren: max,
        intensity: new Intensity(opts.maxRestarts ?? 3, opts.maxSeconds ?? 5),
      };
    },

    async handleCall(req, _from, st, self) {
      switch (req.op) {
        case "start_child": {
          if (st.children.size >= st.maxChildren) return { reply: { error: new MaxChildrenError(st.maxChildren) }, state: st };
          const serial = ++st.serial;
          const spec: ChildSpec = { ...req.spec, id: req.spec.id ?? `dynamic#${serial}` };
          let pid: Pid | undefined;
          try {
            pid = await startChildProcess(self, spec);
          } catch (e) {
            return { reply: { error: e instanceof CinderError ? e : new CinderError("init_failed", `child ${spec.id} failed to start`, e) }, state: st };
          }
          if (pid !== undefined) {
            const r: Rec = { serial, id: req.spec.id, spec, pid };
            st.children.set(serial, r);
            st.byPid.set(pid, r);
          }
          return { reply: { ok: pid }, state: st };
        }
        case "terminate_child": {
          const r = st.byPid.get(req.pid);
          if (r === undefined) return { reply: { error: new CinderError("not_found", `${req.pid} is not a child of ${self.pid}`) }, state: st };
          forget(st, r);
          await shutdownChild(core, self, req.pid, r.spec);
          return { reply: { ok: true }, state: st };
        }
        case "which_children": {
          const rows: DynamicChildInfo[] = [];
          for (const r of st.children.values()) rows.push({ id: r.id, pid: r.pid ?? "restarting", type: r.spec.type ?? "worker" });
          return { reply: { ok: rows }, state: st };
        }
        case "count_children": {
          let sups = 0;
          for (const r of st.children.values()) if (r.spec.type === "supervisor") sups++;
          const counts: ChildCounts = { specs: st.children.size, active: st.byPid.size, supervisors: sups, workers: st.children.size - sups };
          return { reply: { ok: counts }, state: st };
        }
      }
    },

    async handleInfo(msg, st, self) {
      if ("$dsup" in msg) {
        const r = st.children.get(msg.serial);
        if (r === undefined || r.pid !== undefined) return { state: st };
        if (!st.intensity.allow(core, `dynamic supervisor ${self.pid}`)) return { state: st, stop: "shutdown" };
        await restart(self, st, r);
        return { state: st };
      }
      if (msg.type !== "EXIT") return { state: st };
      const r = st.byPid.get(msg.from);
      if (r === undefined) return { state: st };
      const stop = await onChildExit(self, st, r, msg.reason);
      return stop === undefined ? { state: st } : { state: st, stop };
    },

    async terminate(_reason, st, self) {
      if (st) await stopAll(self, st);
    },
  };
}

const behaviourFor = perNode(makeBehaviour);

/** Where a DynamicSupervisor can be reached: its ref, a registered name or a via name. */
export type DynamicSupervisorName = ServerName<DynCall, DynReply, never>;

/**
 * DynamicSupervisor functions.
 *
 * @example
 * ```ts
 * import { startNode, DynamicSupervisor, GenServer } from "@cinder/runtime";
 * const node = await startNode();
 * const sup = await DynamicSupervisor.start(node, { maxChildren: 100 });
 * const Echo = { init: () => null, handleCall: (r: string, _f: unknown, s: null) => ({ reply: r, state: s }) };
 * const pid = await DynamicSupervisor.startChild(node, sup, { start: (s) => GenServer.startLink(s, Echo, undefined), restart: "transient" });
 * console.log(await DynamicSupervisor.countChildren(node, sup)); // { specs: 1, active: 1, supervisors: 0, workers: 1 }
 * await DynamicSupervisor.terminateChild(node, sup, pid!);
 * await node.stop();
 * ```
 */
export const DynamicSupervisor = {
  /** Starts a dynamic supervisor (not linked), with no children. */
  start(ctx: Context, opts: DynamicSupervisorOptions = {}, startOpts?: StartOptions): Promise<DynamicSupervisorRef> {
    return GenServer.start(ctx, behaviourFor(coreOf(ctx)), opts, startOpts);
  },

  /** Starts a dynamic supervisor linked to `parent` (for a child spec's `start`). */
  startLink(parent: Process<any>, opts: DynamicSupervisorOptions = {}, startOpts?: StartOptions): Promise<DynamicSupervisorRef> {
    return GenServer.startLink(parent, behaviourFor(coreOf(parent)), opts, startOpts);
  },

  /** A child spec for a dynamic supervisor under another supervisor. */
  childSpec(id: string, opts: DynamicSupervisorOptions = {}, startOpts?: StartOptions, extra?: Partial<ChildSpec>): ChildSpec {
    return { id, type: "supervisor", shutdown: "infinity", start: (sup) => DynamicSupervisor.startLink(sup, opts, startOpts), ...extra };
  },

  /**
   * Starts a child from `spec` and resolves with its pid (`undefined` if its start ignored).
   * Rejects with `MaxChildrenError` when full, or with the start's error.
   */
  startChild(ctx: Context, sup: DynamicSupervisorName, spec: DynamicChildSpec): Promise<Pid | undefined> {
    return unwrap(GenServer.call(ctx, sup, { op: "start_child", spec }, Infinity));
  },

  /** Stops the child `pid` within its shutdown budget and forgets it; rejects `not_found`. */
  terminateChild(ctx: Context, sup: DynamicSupervisorName, pid: Pid): Promise<void> {
    return unwrap(GenServer.call(ctx, sup, { op: "terminate_child", pid }, Infinity));
  },

  /** The children, in start order. */
  whichChildren(ctx: Context, sup: DynamicSupervisorName): Promise<DynamicChildInfo[]> {
    return unwrap(GenServer.call(ctx, sup, { op: "which_children" }));
  },

  /** Counts of children (`specs`), running ones (`active`), supervisors and workers. */
  countChildren(ctx: Context, sup: DynamicSupervisorName): Promise<ChildCounts> {
    return unwrap(GenServer.call(ctx, sup, { op: "count_children" }));
  },

  /** Stops the supervisor after stopping its children. */
  stop(ctx: Context, sup: DynamicSupervisorName, reason: ExitReason = "normal"): Promise<void> {
    return GenServer.stop(ctx, sup, reason);
  },
};
