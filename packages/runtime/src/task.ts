/**
 * Task: run a function in a process of its own and await its result.
 *
 * Rules (Elixir's, adapted to promises):
 * - `Task.async(ctx, fn)` spawns a process that runs `fn(self)`. When `ctx` is a process (the
 *   *owner*), the task is linked to it, atomically: a task that throws exits its owner with the
 *   same reason, unless the owner traps exits (then it gets an EXIT message and `await`
 *   rejects with an `ExitError` carrying the reason). From a node, the task is not linked.
 * - `Task.await(task, timeout)` resolves with the value. The result travels to a private reply
 *   slot (as `GenServer.call`'s does), never to the owner's mailbox, so it can be awaited from
 *   any kind of process (body or handler) and a late result is never a stray message. Past its
 *   timeout it rejects with `TimeoutError`; a task linked to its owner is then stopped (unlinked
 *   and killed), as in OTP where the owner's exit takes it down. An unlinked task runs on.
 * - If the owner itself was killed by the task's crash, `await` never settles (the owner's code
 *   is dead, as a `receive` of a dead process never resolves).
 * - `Task.yield` waits without consequences: `undefined` on timeout, the task runs on.
 * - `Task.Supervisor` runs tasks as temporary children of a `DynamicSupervisor`:
 *   `asyncNolink` tasks are not linked to the caller, so their crash only fails the await.
 */
import { BadArgError, ExitError, TimeoutError } from "./internal/errors.js";
import { DynamicSupervisor, type DynamicSupervisorName, type DynamicSupervisorOptions, type DynamicSupervisorRef } from "./dynamic_supervisor.js";
import type { StartOptions } from "./gen_server.js";
import type { ChildSpec, Restart, Shutdown } from "./internal/child.js";
import type { NodeCore } from "./internal/node_core.js";
import { Process, type Body } from "./internal/process.js";
import { awaitExit, coreOf, TIMED_OUT, type Context } from "./internal/request.js";
import type { DownMessage, ExitReason, Pid } from "./internal/types.js";

/** A running task: its pid and its owner (the process that started it, if any). */
export interface Task<T = unknown> {
  /** The task's process. */
  readonly pid: Pid;
  /** The process that owns the task (linked to it unless started with `asyncNolink`), if any. */
  readonly owner: Pid | undefined;
  /** @internal phantom: the result type */
  readonly __result?: T;
}

/** How a task ended: with a value, or by exiting with a reason. */
export type TaskResult<T> = { ok: T } | { exit: ExitReason };

/** A task's function: runs in the task's own process, `self`. */
export type TaskFn<T> = (self: Process<any>) => T | Promise<T>;

interface TaskState<T> {
  core: NodeCore;
  /** the owning process when the task is linked to it */
  linkedOwner: Process<any> | null;
  outcome: Promise<TaskResult<T>>;
  settled: TaskResult<T> | undefined;
}

const states = new WeakMap<Task<any>, TaskState<any>>();

interface Slot<T> {
  proc: Process<any>;
  outcome: Promise<TaskResult<T>>;
}

/** A reply slot: receives the task's value, or its DOWN, whichever comes first; then ends. */
function makeSlot<T>(core: NodeCore): Slot<T> {
  let settle!: (r: TaskResult<T>) => void;
  const outcome = new Promise<TaskResult<T>>((resolve) => (settle = resolve));
  const proc = core.main.spawn<{ $task: T } | DownMessage>(
    {
      handle(m, self) {
        if (typeof m !== "object" || m === null) return;
        if ("$task" in m) settle({ ok: m.$task });
        else if (m.type === "DOWN") settle({ exit: m.reason });
        else return;
        self.exit("normal");
      },
    },
    { label: "task-reply" },
    null,
    false,
  );
  return { proc, outcome };
}

/** The body of a task process: optionally link to the owner first, run `fn`, report the value. */
function taskBody<T>(fn: TaskFn<T>, reportTo: Pid | undefined, linkTo: Pid | undefined): Body<any> {
  return async (self) => {
    if (linkTo !== undefined) self.link(linkTo);
    const value = await fn(self);
    if (reportTo !== undefined) self.send(reportTo, { $task: value });
  };
}

function makeTask<T>(core: NodeCore, pid: Pid, owner: Process<any> | null, linked: boolean, outcome: Promise<TaskResult<T>>): Task<T> {
  const task: Task<T> = Object.freeze({ pid, owner: owner?.pid });
  const st: TaskState<T> = { core, linkedOwner: linked ? owner : null, outcome, settled: undefined };
  outcome.then((r) => (st.settled = r));
  states.set(task, st);
  return task;
}

function stateOf<T>(task: Task<T>): TaskState<T> {
  const st = states.get(task);
  if (st === undefined) throw new BadArgError("not a task started by Task.async / Task.Supervisor");
  return st as TaskState<T>;
}

/** Resolves with the outcome, or TIMED_OUT after `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  if (ms === Infinity) return p;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(TIMED_OUT), ms);
    p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

function unlinkOwner(st: TaskState<any>, pid: Pid): void {
  const owner = st.linkedOwner;
  if (owner !== null) {
    owner.unlink(pid);
    st.linkedOwner = null;
  }
}

const never = <T>() => new Promise<T>(() => {});

/**
 * Task functions.
 *
 * @example
 * ```ts
 * import { startNode, Task } from "@cinder/runtime";
 * const node = await startNode();
 * const caller = node.process();
 * const t = Task.async(caller, async () => 6 * 7);
 * console.log(await Task.await(t)); // 42
 * const slow = Task.async(node, () => new Promise<string>((r) => setTimeout(() => r("late"), 50)));
 * console.log(await Task.yield(slow, 1)); // undefined (still running)
 * console.log(await Task.yield(slow, 1000)); // { ok: "late" }
 * await node.stop();
 * ```
 */
export const Task = {
  /**
   * Runs `fn` in a new process. From a process, the task is linked to it (atomically); from a
   * node, it is not linked.
   */
  async<T>(ctx: Context, fn: TaskFn<T>): Task<T> {
    const core = coreOf(ctx);
    const owner = ctx instanceof Process ? ctx : null;
    const slot = makeSlot<T>(core);
    const body = taskBody(fn, slot.proc.pid, undefined);
    const pid = owner !== null ? owner.spawnLink(body, { label: "Task" }) : core.spawn(body, { label: "Task" });
    slot.proc.monitor(pid);
    return makeTask(core, pid, owner, owner !== null && owner.alive, slot.outcome);
  },

  /**
   * Waits for the task's value (default 5000 ms). Rejects with `ExitError` if the task exited
   * without a value (as `reason`), with `TimeoutError` past `timeout` (a task linked to its
   * owner is then stopped).
   */
  async await<T>(task: Task<T>, timeout = 5000): Promise<T> {
    const st = stateOf(task);
    const r = await within(st.outcome, timeout);
    if (r === TIMED_OUT) {
      if (st.linkedOwner !== null) {
        unlinkOwner(st, task.pid);
        st.core.exit(task.pid, "kill");
      }
      throw new TimeoutError(`await of task ${task.pid}`, timeout);
    }
    if ("ok" in r) return r.ok;
    // a linked owner that did not trap died of this exit: its code must not go on
    if (st.linkedOwner !== null && !st.linkedOwner.alive) return never<T>();
    throw new ExitError(`task ${task.pid}`, r.exit);
  },

  /**
   * Waits up to `timeout` (default 5000 ms) for the task: `{ ok: value }`, `{ exit: reason }`,
   * or `undefined` if it is still running (it runs on; yield again or shut it down).
   */
  async yield<T>(task: Task<T>, timeout = 5000): Promise<TaskResult<T> | undefined> {
    const st = stateOf(task);
    const r = await within(st.outcome, timeout);
    return r === TIMED_OUT ? undefined : r;
  },

  /**
   * Stops the task: unlinks it from its owner, sends `shutdown` and waits `shutdown` ms
   * (default 5000) before killing it (`brutal_kill`: kill at once). Resolves with its result if
   * it finished first (`{ ok }`, or `{ exit }` for a reason of its own), else `undefined`.
   *
   * @example
   * ```ts
   * import { startNode, Task } from "@cinder/runtime";
   * const node = await startNode();
   * const me = node.process();
   * const forever = Task.async(me, () => new Promise<never>(() => {}));
   * console.log(await Task.shutdown(forever, 100), node.isAlive(forever.pid)); // [undefined, false]
   * const quick = Task.async(me, () => "done");
   * await Task.yield(quick);
   * console.log(await Task.shutdown(quick)); // { ok: "done" }
   * await node.stop();
   * ```
   */
  async shutdown<T>(task: Task<T>, shutdown: number | "brutal_kill" = 5000): Promise<TaskResult<T> | undefined> {
    const st = stateOf(task);
    unlinkOwner(st, task.pid);
    if (st.settled === undefined) {
      const exited = awaitExit(st.core, task.pid, shutdown === "brutal_kill" ? Infinity : shutdown);
      st.core.exit(task.pid, shutdown === "brutal_kill" ? "kill" : "shutdown");
      if ((await exited) === TIMED_OUT) {
        const killed = awaitExit(st.core, task.pid);
        st.core.exit(task.pid, "kill");
        await killed;
      }
    }
    const r = await st.outcome;
    if ("ok" in r) return r;
    return r.exit === "shutdown" || r.exit === "killed" ? undefined : r;
  },

  /** Starts a fire-and-forget task (not linked, no result to await) and returns its pid. */
  start(ctx: Context, fn: TaskFn<unknown>): Pid {
    const body = taskBody(fn, undefined, undefined);
    return ctx instanceof Process ? ctx.spawn(body, { label: "Task" }) : coreOf(ctx).spawn(body, { label: "Task" });
  },

  /**
   * A supervisor of tasks: a `DynamicSupervisor` whose children are task processes.
   *
   * @example
   * ```ts
   * import { startNode, Task } from "@cinder/runtime";
   * const node = await startNode();
   * const tasks = await Task.Supervisor.start(node, { maxChildren: 10 });
   * const t = await Task.Supervisor.asyncNolink(node, tasks, () => { throw new Error("boom"); });
   * console.log(await Task.yield(t)); // { exit: Error: boom } — the caller is unaffected
   * await node.stop();
   * ```
   */
  Supervisor: {
    /** Starts a task supervisor (not linked). */
    start(ctx: Context, opts: DynamicSupervisorOptions = {}, startOpts?: StartOptions): Promise<DynamicSupervisorRef> {
      return DynamicSupervisor.start(ctx, opts, startOpts);
    },

    /** Starts a task supervisor linked to `parent`. */
    startLink(parent: Process<any>, opts: DynamicSupervisorOptions = {}, startOpts?: StartOptions): Promise<DynamicSupervisorRef> {
      return DynamicSupervisor.startLink(parent, opts, startOpts);
    },

    /** A child spec for a task supervisor under another supervisor. */
    childSpec(id: string, opts: DynamicSupervisorOptions = {}, startOpts?: StartOptions, extra?: Partial<ChildSpec>): ChildSpec {
      return DynamicSupervisor.childSpec(id, opts, startOpts, extra);
    },

    /**
     * Runs `fn` as a temporary child of `sup`, linked to the calling process `caller` (a crash
     * exits the caller unless it traps). Await it with `Task.await`.
     */
    async async<T>(caller: Process<any>, sup: DynamicSupervisorName, fn: TaskFn<T>, opts?: { shutdown?: Shutdown }): Promise<Task<T>> {
      return superviseTask(caller, sup, fn, caller, opts?.shutdown);
    },

    /**
     * Runs `fn` as a temporary child of `sup`, not linked to the caller: its crash only fails
     * `Task.await` (with `ExitError`) or shows in `Task.yield` as `{ exit }`.
     */
    async asyncNolink<T>(ctx: Context, sup: DynamicSupervisorName, fn: TaskFn<T>, opts?: { shutdown?: Shutdown }): Promise<Task<T>> {
      return superviseTask(ctx, sup, fn, null, opts?.shutdown);
    },

    /** Starts a fire-and-forget task under `sup` (default `temporary`); resolves with its pid. */
    async startChild(ctx: Context, sup: DynamicSupervisorName, fn: TaskFn<unknown>, opts?: { restart?: Restart; shutdown?: Shutdown }): Promise<Pid> {
      const pid = await DynamicSupervisor.startChild(ctx, sup, {
        id: "Task",
        restart: opts?.restart ?? "temporary",
        shutdown: opts?.shutdown ?? 5000,
        start: (s) => s.spawnLink(taskBody(fn, undefined, undefined), { label: "Task" }),
      });
      return pid!;
    },

    /** The pids of the supervisor's running tasks. */
    async children(ctx: Context, sup: DynamicSupervisorName): Promise<Pid[]> {
      const rows = await DynamicSupervisor.whichChildren(ctx, sup);
      return rows.flatMap((r) => (r.pid === "restarting" ? [] : [r.pid]));
    },
  },
};

async function superviseTask<T>(ctx: Context, sup: DynamicSupervisorName, fn: TaskFn<T>, linkOwner: Process<any> | null, shutdown: Shutdown | undefined): Promise<Task<T>> {
  const core = coreOf(ctx);
  const slot = makeSlot<T>(core);
  let pid: Pid | undefined;
  try {
    pid = await DynamicSupervisor.startChild(ctx, sup, {
      id: "Task",
      restart: "temporary",
      shutdown: shutdown ?? 5000,
      start: (s) => {
        // link to the owner from inside the task (before fn runs) and monitor it from the slot
        // in the same synchronous step as the spawn: an immediate crash is still seen
        const p = s.spawnLink(taskBody(fn, slot.proc.pid, linkOwner?.pid), { label: "Task" });
        slot.proc.monitor(p);
        return p;
      },
    });
  } catch (e) {
    core.main.terminate(slot.proc, "normal");
    throw e;
  }
  const owner = ctx instanceof Process ? ctx : null;
  return makeTask(core, pid!, owner, linkOwner !== null, slot.outcome);
}
