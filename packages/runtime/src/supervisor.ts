/**
 * Supervisor: starts children in order, restarts them by strategy, stops them in reverse.
 *
 * Rules (OTP's):
 * - Children start in spec order; if one fails to start, those already started are stopped in
 *   reverse order and the supervisor's start fails with that reason.
 * - On a child's exit: `temporary` is never restarted (and forgotten); `transient` only after
 *   an abnormal exit (not `normal`, `shutdown`, `{shutdown: _}`); `permanent` always.
 * - Strategy: `one_for_one` restarts the child; `one_for_all` stops all others (reverse order)
 *   and restarts all (in order); `rest_for_one` stops those after it (reverse) and restarts it
 *   and them.
 * - Intensity: more than `maxRestarts` restarts within `maxSeconds` (default 3 in 5) stops all
 *   children and exits the supervisor with `shutdown`, which its own supervisor sees as a child
 *   exit (escalation). A restart whose start fails counts as a restart and is retried through
 *   the mailbox; the supervisor does not crash on it.
 * - The supervisor traps exits; the child is linked at spawn, so a child that dies before the
 *   start function returns is still seen (its EXIT waits in the mailbox) and restarted.
 */
import { CinderError } from "./internal/errors.js";
import { GenServer, type GenServerBehaviour, type ServerRef, type StartOptions } from "./gen_server.js";
import { Intensity, isNormalExit, logChildError, perNode, shutdownChild, startChildProcess, unwrapReply as unwrap, type ChildSpec, type SupervisorReply } from "./internal/child.js";
import type { Process } from "./internal/process.js";
import { coreOf, type Context } from "./internal/request.js";
import type { ExitMessage, ExitReason, Pid } from "./internal/types.js";
import type { NodeCore } from "./internal/node_core.js";

export type { ChildSpec, Restart, Shutdown } from "./internal/child.js";

/** Restart strategies. */
export type Strategy = "one_for_one" | "one_for_all" | "rest_for_one";

/** Supervisor flags and its initial children. */
export interface SupervisorOptions {
  strategy?: Strategy;
  /** Default 3. */
  maxRestarts?: number;
  /** Default 5. */
  maxSeconds?: number;
  children: ChildSpec[];
}

/** One row of `whichChildren`. */
export interface ChildInfo {
  id: string;
  /** The child's pid, `"restarting"`, or `undefined` when not running. */
  pid: Pid | "restarting" | undefined;
  type: "worker" | "supervisor";
}

/** Counts from `countChildren`. */
export interface ChildCounts {
  specs: number;
  active: number;
  supervisors: number;
  workers: number;
}

type SupCall =
  | { op: "start_child"; spec: ChildSpec }
  | { op: "terminate_child"; id: string }
  | { op: "restart_child"; id: string }
  | { op: "delete_child"; id: string }
  | { op: "which_children" }
  | { op: "count_children" };

type SupReply = SupervisorReply;
type SupInfo = ExitMessage | { $sup: "retry"; ids: string[] };

/** A supervisor's ref. */
export type SupervisorRef = ServerRef<SupCall, SupReply, never>;

interface Rec {
  spec: ChildSpec;
  pid: Pid | undefined;
  restarting: boolean;
}

interface SupState {
  strategy: Strategy;
  children: Rec[];
  intensity: Intensity;
}

function makeBehaviour(core: NodeCore): GenServerBehaviour<SupState, SupCall, SupReply, never, SupInfo, SupervisorOptions> {
  const restartType = (r: Rec) => r.spec.restart ?? "permanent";

  async function stopRec(self: Process<any>, r: Rec): Promise<void> {
    const pid = r.pid;
    if (pid === undefined) return;
    r.pid = undefined;
    await shutdownChild(core, self, pid, r.spec);
  }

  async function stopAll(self: Process<any>, recs: Rec[]): Promise<void> {
    for (let i = recs.length - 1; i >= 0; i--) await stopRec(self, recs[i]!);
  }

  /** Starts the records in order; on failure stops the ones started here and throws. */
  async function startGroup(self: Process<any>, recs: Rec[]): Promise<void> {
    const started: Rec[] = [];
    for (const r of recs) {
      try {
        r.pid = await startChildProcess(self, r.spec);
        r.restarting = false;
        started.push(r);
      } catch (e) {
        logChildError(core, self.pid, r.spec.id, "failed to start", e);
        await stopAll(self, started);
        throw e;
      }
    }
  }

  /** Restarts a group; on failure, retries through the mailbox (each try counts). */
  async function restartGroup(self: Process<any>, st: SupState, recs: Rec[]): Promise<ExitReason | undefined> {
    try {
      await startGroup(self, recs);
      return undefined;
    } catch {
      for (const r of recs) r.restarting = true;
      self.send(self.pid, { $sup: "retry", ids: recs.map((r) => r.spec.id) } satisfies SupInfo);
      return undefined;
    }
  }

  function forget(st: SupState, r: Rec): void {
    const i = st.children.indexOf(r);
    if (i >= 0) st.children.splice(i, 1);
  }

  async function onChildExit(self: Process<any>, st: SupState, r: Rec, reason: ExitReason): Promise<ExitReason | undefined> {
    r.pid = undefined;
    const rt = restartType(r);
    if (rt === "temporary") {
      forget(st, r);
      return undefined;
    }
    if (rt === "transient" && isNormalExit(reason)) return undefined;
    if (reason !== "shutdown" && reason !== "normal") logChildError(core, self.pid, r.spec.id, "exited", reason);
    if (!st.intensity.allow(core, `supervisor ${self.pid}`)) return "shutdown";
    return restartBy(self, st, r);
  }

  async function restartBy(self: Process<any>, st: SupState, r: Rec): Promise<ExitReason | undefined> {
    const i = st.children.indexOf(r);
    let group: Rec[];
    if (st.strategy === "one_for_one") group = [r];
    else if (st.strategy === "one_for_all") group = st.children.slice();
    else group = st.children.slice(i);
    const others = group.filter((x) => x !== r);
    await stopAll(self, others);
    for (const o of others) if (restartType(o) === "temporary") forget(st, o);
    return restartGroup(
      self,
      st,
      group.filter((x) => st.children.includes(x)),
    );
  }

  return {
    name: "Supervisor",
    async init(opts, self) {
      self.trapExit(true);
      const ids = new Set<string>();
      for (const c of opts.children) {
        if (ids.has(c.id)) throw new CinderError("badarg", `duplicate child id ${c.id}`);
        ids.add(c.id);
      }
      const st: SupState = {
        strategy: opts.strategy ?? "one_for_one",
        children: opts.children.map((spec) => ({ spec, pid: undefined, restarting: false })),
        intensity: new Intensity(opts.maxRestarts ?? 3, opts.maxSeconds ?? 5),
      };
      await startGroup(self, st.children);
      return st;
    },

    async handleCall(req, _from, st, self) {
      const find = (id: string) => st.children.find((r) => r.spec.id === id);
      switch (req.op) {
        case "start_child": {
          const existing = find(req.spec.id);
          if (existing) {
            const err = existing.pid !== undefined ? new CinderError("already_started", `child ${req.spec.id} already started`, { already_started: existing.pid }) : new CinderError("badarg", `child ${req.spec.id} already present`, "already_present");
            return { reply: { error: err }, state: st };
          }
          const r: Rec = { spec: req.spec, pid: undefined, restarting: false };
          try {
            r.pid = await startChildProcess(self, r.spec);
          } catch (e) {
            return { reply: { error: e instanceof CinderError ? e : new CinderError("init_failed", `child ${req.spec.id} failed to start`, e) }, state: st };
          }
          if (r.pid !== undefined || restartType(r) !== "temporary") st.children.push(r);
          return { reply: { ok: r.pid }, state: st };
        }
        case "terminate_child": {
          const r = find(req.id);
          if (!r) return { reply: { error: new CinderError("not_found", `no child ${req.id}`) }, state: st };
          await stopRec(self, r);
          r.restarting = false; // a pending retry must not bring it back
          if (restartType(r) === "temporary") forget(st, r);
          return { reply: { ok: true }, state: st };
        }
        case "restart_child": {
          const r = find(req.id);
          if (!r) return { reply: { error: new CinderError("not_found", `no child ${req.id}`) }, state: st };
          if (r.pid !== undefined) return { reply: { error: new CinderError("running", `child ${req.id} is running`) }, state: st };
          if (r.restarting) return { reply: { error: new CinderError("restarting", `child ${req.id} is restarting`) }, state: st };
          try {
            r.pid = await startChildProcess(self, r.spec);
          } catch (e) {
            return { reply: { error: new CinderError("init_failed", `child ${req.id} failed to start`, e) }, state: st };
          }
          return { reply: { ok: r.pid }, state: st };
        }
        case "delete_child": {
          const r = find(req.id);
          if (!r) return { reply: { error: new CinderError("not_found", `no child ${req.id}`) }, state: st };
          if (r.pid !== undefined) return { reply: { error: new CinderError("running", `child ${req.id} is running`) }, state: st };
          if (r.restarting) return { reply: { error: new CinderError("restarting", `child ${req.id} is restarting`) }, state: st };
          forget(st, r);
          return { reply: { ok: true }, state: st };
        }
        case "which_children":
          return {
            reply: { ok: st.children.map((r): ChildInfo => ({ id: r.spec.id, pid: r.restarting ? "restarting" : r.pid, type: r.spec.type ?? "worker" })) },
            state: st,
          };
        case "count_children": {
          const sups = st.children.filter((r) => r.spec.type === "supervisor").length;
          return {
            reply: { ok: { specs: st.children.length, active: st.children.filter((r) => r.pid !== undefined).length, supervisors: sups, workers: st.children.length - sups } satisfies ChildCounts },
            state: st,
          };
        }
      }
    },

    async handleInfo(msg, st, self) {
      if (typeof msg !== "object" || msg === null) return { state: st }; // a stray message: ignore it
      if ("$sup" in msg) {
        const recs = msg.ids.map((id) => st.children.find((r) => r.spec.id === id)).filter((r): r is Rec => r !== undefined && r.restarting);
        if (recs.length === 0) return { state: st };
        if (!st.intensity.allow(core, `supervisor ${self.pid}`)) return { state: st, stop: "shutdown" };
        await restartGroup(self, st, recs);
        return { state: st };
      }
      if (msg.type !== "EXIT") return { state: st };
      const r = st.children.find((c) => c.pid === msg.from);
      if (!r) return { state: st };
      const stop = await onChildExit(self, st, r, msg.reason);
      return stop === undefined ? { state: st } : { state: st, stop };
    },

    async terminate(_reason, st, self) {
      if (st) await stopAll(self, st.children);
    },
  };
}

const behaviourFor = perNode(makeBehaviour);

/**
 * Supervisor functions.
 *
 * @example
 * ```ts
 * import { startNode, silentLogger, Supervisor, GenServer, type Pid } from "@cinder/runtime";
 * const node = await startNode({ logger: silentLogger });
 * const sup = await Supervisor.start(node, {
 *   strategy: "one_for_one",
 *   children: [{ id: "echo", start: (s) => GenServer.startLink(s, { init: () => null, handleCall: (r: string, _f, st) => ({ reply: r, state: st }) }, undefined, { name: "echo" }) }],
 * });
 * console.log((await Supervisor.whichChildren(node, sup)).map((c) => c.id)); // ["echo"]
 * const first = GenServer.whereis(node, "echo") as Pid;
 * const me = node.process();
 * me.monitor(first);
 * me.exit(first, "kill");
 * await me.receive(); // its DOWN; the supervisor got its EXIT before our next call
 * const [echo] = await Supervisor.whichChildren(node, sup);
 * console.log(echo!.pid !== first, echo!.pid === GenServer.whereis(node, "echo")); // [true, true]: restarted
 * console.log(await GenServer.call(node, "echo", "still here")); // "still here"
 * await node.stop();
 * ```
 */
export const Supervisor = {
  /** Starts a supervisor (not linked); rejects if a child fails to start. */
  start(ctx: Context, opts: SupervisorOptions, startOpts?: StartOptions): Promise<SupervisorRef> {
    return GenServer.start(ctx, behaviourFor(coreOf(ctx)), opts, startOpts);
  },
  /** Starts a supervisor linked to `parent` (for nesting: use in a child spec's `start`). */
  startLink(parent: Process<any>, opts: SupervisorOptions, startOpts?: StartOptions): Promise<SupervisorRef> {
    return GenServer.startLink(parent, behaviourFor(coreOf(parent)), opts, startOpts);
  },
  /** A child spec for a nested supervisor. */
  childSpec(id: string, opts: SupervisorOptions, extra?: Partial<ChildSpec>): ChildSpec {
    return { id, type: "supervisor", shutdown: "infinity", start: (sup) => Supervisor.startLink(sup, opts), ...extra };
  },
  /** Starts and adds a child; rejects `already_started` / `badarg` (already present) / the start error. */
  startChild(ctx: Context, sup: SupervisorRef | string, spec: ChildSpec): Promise<Pid | undefined> {
    return unwrap(GenServer.call(ctx, sup, { op: "start_child", spec }, Infinity));
  },
  /** Stops a child (keeping its spec, except a temporary one). */
  terminateChild(ctx: Context, sup: SupervisorRef | string, id: string): Promise<void> {
    return unwrap(GenServer.call(ctx, sup, { op: "terminate_child", id }, Infinity));
  },
  /**
   * Starts a stopped child again from its spec; rejects `running` / `not_found`.
   *
   * @example
   * ```ts
   * import { startNode, Supervisor, type ChildSpec } from "@cinder/runtime";
   * const node = await startNode();
   * const idle: ChildSpec = { id: "idle", start: (s) => s.spawnLink(async (self) => void (await self.receive())) };
   * const sup = await Supervisor.start(node, { children: [idle] });
   * await Supervisor.terminateChild(node, sup, "idle"); // stopped, spec kept
   * console.log(await Supervisor.countChildren(node, sup)); // { specs: 1, active: 0, supervisors: 0, workers: 1 }
   * const pid = await Supervisor.restartChild(node, sup, "idle");
   * console.log(node.isAlive(pid!)); // true
   * console.log(await Supervisor.restartChild(node, sup, "idle").catch((e) => e.code)); // "running"
   * await node.stop();
   * ```
   */
  restartChild(ctx: Context, sup: SupervisorRef | string, id: string): Promise<Pid | undefined> {
    return unwrap(GenServer.call(ctx, sup, { op: "restart_child", id }, Infinity));
  },
  /** Removes a stopped child's spec; rejects `running` / `restarting` / `not_found`. */
  deleteChild(ctx: Context, sup: SupervisorRef | string, id: string): Promise<void> {
    return unwrap(GenServer.call(ctx, sup, { op: "delete_child", id }, Infinity));
  },
  /** The children, in start order. */
  whichChildren(ctx: Context, sup: SupervisorRef | string): Promise<ChildInfo[]> {
    return unwrap(GenServer.call(ctx, sup, { op: "which_children" }));
  },
  /** Counts of specs, running children, supervisors and workers. */
  countChildren(ctx: Context, sup: SupervisorRef | string): Promise<ChildCounts> {
    return unwrap(GenServer.call(ctx, sup, { op: "count_children" }));
  },
  /** Stops the supervisor: its children stop in reverse order first. */
  stop(ctx: Context, sup: SupervisorRef | string, reason: ExitReason = "normal"): Promise<void> {
    return GenServer.stop(ctx, sup, reason);
  },
};
