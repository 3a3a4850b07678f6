/**
 * Request/reply plumbing shared by GenServer.call, Task.await and supervisors' shutdowns.
 *
 * A request spawns a short-lived *reply slot* (a process of its own), monitors the target
 * from it, and sends the request carrying the slot's pid as the reply ref. The first of reply,
 * DOWN or timeout settles the promise and ends the slot, so a late reply goes to a dead pid and
 * is dropped: it never lands as a stray message in anyone's mailbox.
 */
import { CinderError, ExitError, NoProcError, TimeoutError, formatReason } from "./errors.js";
import type { NodeCore } from "./node_core.js";
import { Process } from "./process.js";
import type { DownMessage, ExitReason, Pid, Ref } from "./types.js";

/** The reply envelope sent to a reply ref. */
export interface ReplyEnvelope<R> {
  readonly $reply: R;
}

/** A reply ref: where the answer to a request of reply type `R` is sent. */
export type From<R> = Ref<ReplyEnvelope<R>>;

/** Anything that can issue requests: a node or a process. */
export type Context = NodeCore | Process<any>;

/** @internal the node behind a context */
export function coreOf(ctx: Context): NodeCore {
  return ctx instanceof Process ? (ctx.node as NodeCore) : ctx;
}

/**
 * Sends the message built by `build(replyRef)` to `target` and resolves with the reply.
 * Rejects with `NoProcError` if the target is dead, `ExitError` if it exits first, and
 * `TimeoutError` after `timeoutMs`.
 */
export function request<R>(core: NodeCore, target: Pid, build: (from: From<R>) => unknown, timeoutMs: number, what: string): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let slot: Process<any>;
    let settled = false;
    const settle = () => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      core.main.terminate(slot, "normal");
    };
    slot = core.main.spawn<ReplyEnvelope<R> | DownMessage>(
      {
        handle(m) {
          if (typeof m !== "object" || m === null) return;
          if ("$reply" in m) {
            settle();
            resolve((m as ReplyEnvelope<R>).$reply);
          } else if ((m as DownMessage).type === "DOWN") {
            settle();
            const reason = (m as DownMessage).reason;
            reject(reason === "noproc" ? new NoProcError(what) : new ExitError(what, reason));
          }
        },
      },
      { label: "reply" },
      null,
      false,
    );
    // the slot ended by anything but an answer (the node halting): fail the request, drop the timer
    slot.onExit((_pid, reason) => {
      if (timer !== undefined) clearTimeout(timer);
      if (settled) return;
      settled = true;
      reject(new CinderError("shutdown", `${what}: no reply, the caller's reply slot ended (${formatReason(reason)})`, reason));
    });
    slot.monitor(target);
    if (!slot.alive) return; // DOWN noproc already settled it
    if (timeoutMs !== Infinity) {
      timer = setTimeout(() => {
        settled = true;
        core.main.terminate(slot, "normal");
        reject(new TimeoutError(what, timeoutMs));
      }, timeoutMs);
    }
    core.send(target, build(slot.pid as From<R>));
  });
}

/** Sends `value` to a reply ref. */
export function replyTo<R>(core: NodeCore, from: From<R>, value: R): void {
  core.send(from, { $reply: value });
}

/**
 * Resolves with `pid`'s exit reason once it has exited (`noproc` if it was already dead), or
 * with `Timeout` after `timeoutMs`.
 */
export function awaitExit(core: NodeCore, pid: Pid, timeoutMs = Infinity): Promise<ExitReason | typeof TIMED_OUT> {
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const slot = core.main.spawn<DownMessage>(
      {
        handle(m, self) {
          if (m.type !== "DOWN") return;
          if (timer !== undefined) clearTimeout(timer);
          self.exit("normal");
          resolve(m.reason);
        },
      },
      { label: "await-exit" },
      null,
      false,
    );
    slot.onExit(() => {
      if (timer !== undefined) clearTimeout(timer); // no timer outlives the slot (node halt)
    });
    slot.monitor(pid);
    if (timeoutMs !== Infinity && slot.alive) {
      timer = setTimeout(() => {
        core.main.terminate(slot, "normal");
        resolve(TIMED_OUT);
      }, timeoutMs);
    }
  });
}

/** @internal */
export const TIMED_OUT: unique symbol = Symbol("timed out");
