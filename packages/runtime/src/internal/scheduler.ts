/**
 * A scheduler: one thread's table of processes and its run queue.
 *
 * Run loop: `schedule(p)` appends a process that has work to the run queue and arms a drain.
 * A drain takes processes in FIFO order and lets each handle at most `budget` messages, then
 * re-queues it (fairness). Drains run as microtasks for speed, but after `turnBudget`
 * messages in one macrotask the next drain is deferred with `setImmediate`, so sockets and
 * timers stay live under a message storm.
 *
 * Signals (exit, link, unlink, monitor, demonitor, down) to local processes are applied in
 * one iterative queue (no recursion, so a chain of 100k links is fine), in the order they were
 * sent; a signal to a pid of another scheduler or node goes to the node's router.
 */
import { Process, startBody, type Behaviour, type Handler, type SpawnOptions } from "./process.js";
import type { ExitReason, MonitorRef, Pid, Signal } from "./types.js";
import type { NodeCore } from "./node_core.js";

/**
 * Microtasks go through a resolved promise: Node's `queueMicrotask` wraps each callback in a
 * new AsyncResource plus a bound function (≈2× the cost; per drain and per spawn here). Same
 * FIFO microtask queue, so the order is unchanged. The callbacks below never throw.
 */
const resolved = Promise.resolve();

export interface SchedulerStats {
  index: number;
  processes: number;
  runQueue: number;
  messagesIn: number;
  spawned: number;
  exited: number;
}

export class Scheduler {
  readonly node: NodeCore;
  readonly index: number;
  readonly prefix: string;
  readonly procs = new Map<Pid, Process<any>>();
  private serial = 0;
  private runQueue: Array<Process<any> | undefined> = [];
  private rqHead = 0;
  private armed = false;
  private resetArmed = false;
  private turnCount = 0;
  private readonly sigQueue: Array<[Pid, Signal]> = [];
  private sigHead = 0;
  private inSignals = false;
  /** @internal watchdog hook: told the serial of each process before it runs */
  onRun: ((serial: number) => void) | null = null;
  budget = 200;
  turnBudget = 50_000;
  spawned = 0;
  exited = 0;
  messagesIn = 0;

  constructor(node: NodeCore, index: number, incarnation: string) {
    this.node = node;
    this.index = index;
    this.prefix = `<${node.tag}.${index}${incarnation}.`;
  }

  /** @internal */
  nextPid(): Pid {
    return (this.prefix + ++this.serial + ">") as Pid;
  }

  spawn<M>(behaviour: Behaviour<M>, opts: SpawnOptions | undefined, linkTo: Process<any> | null, _monitor: boolean): Process<M> {
    const pid = this.nextPid();
    const isHandler = typeof behaviour === "object" && behaviour !== null;
    const p = new Process<M>(this, pid, null, opts?.label);
    if (opts?.trapExit) p.trapping = true;
    this.procs.set(pid, p);
    this.spawned++;
    if (opts?.name !== undefined) {
      try {
        this.node.register(opts.name, pid);
      } catch (e) {
        this.procs.delete(pid);
        p.state = 1;
        throw e;
      }
    }
    if (linkTo !== null && linkTo.alive) {
      (linkTo.links ??= new Set()).add(pid);
      p.links = new Set([linkTo.pid]);
    }
    if (isHandler) {
      const h = behaviour as Handler<M>;
      p.handler = h;
      if (h.init) {
        // init runs on the next drain, before any message: the process is busy until it settles
        p.busy = true;
        this.queueStart(p, undefined);
      }
    } else {
      // a body starts on the next drain, so spawn returns first (and links are in place)
      this.queueStart(p, behaviour as (self: Process<M>) => void);
    }
    return p;
  }

  /** processes whose init or body starts on the next drain (and their bodies) */
  private readonly starts: Array<Process<any> | undefined> = [];
  private readonly startBodies: Array<((self: Process<any>) => void | Promise<void>) | undefined> = [];
  private startHead = 0;

  private queueStart(p: Process<any>, body: ((self: Process<any>) => void | Promise<void>) | undefined): void {
    this.starts.push(p);
    this.startBodies.push(body);
    this.arm();
  }

  private arm(): void {
    if (!this.armed) {
      this.armed = true;
      if (this.turnCount < this.turnBudget) void resolved.then(this.drain);
      else setImmediate(this.drainFresh);
    }
  }

  /** Runs queued inits and bodies (those queued meanwhile too, in order). */
  private runStarts(): number {
    const q = this.starts;
    const bodies = this.startBodies;
    let n = 0;
    while (this.startHead < q.length) {
      const i = this.startHead++;
      const p = q[i]!;
      const body = bodies[i];
      q[i] = undefined;
      bodies[i] = undefined;
      n++;
      if (!p.alive) continue;
      if (body !== undefined) {
        startBody(p, body);
        continue;
      }
      p.busy = false;
      let r: void | Promise<void>;
      try {
        r = p.handler!.init!(p);
      } catch (e) {
        p.crash(e, "init");
        continue;
      }
      if (r !== undefined && typeof (r as Promise<void>).then === "function") p.suspend(r as Promise<void>, "init");
      else if (p.mailboxLength > 0 && !p.queued) this.schedule(p);
    }
    q.length = 0;
    bodies.length = 0;
    this.startHead = 0;
    return n;
  }

  /** Appends a process with work to the run queue. */
  schedule(p: Process<any>): void {
    p.queued = true;
    this.runQueue.push(p);
    if (!this.armed) {
      this.armed = true;
      if (this.turnCount < this.turnBudget) void resolved.then(this.drain);
      else setImmediate(this.drainFresh);
    }
  }

  private readonly drainFresh = (): void => {
    this.turnCount = 0;
    this.drain();
  };

  private readonly drain = (): void => {
    this.armed = false;
    const q = this.runQueue;
    const budget = this.budget;
    let n = this.starts.length > 0 ? this.runStarts() : 0;
    while (this.rqHead < q.length) {
      const p = q[this.rqHead]!;
      q[this.rqHead++] = undefined;
      p.queued = false;
      if (this.onRun !== null) this.onRun(Number(p.pid.slice(this.prefix.length, -1)));
      n += p.run(budget); // messages handled: the turn budget counts messages, not runs
      if (n >= 1024) {
        this.turnCount += n;
        n = 0;
        if (this.turnCount >= this.turnBudget) break;
      }
    }
    this.turnCount += n;
    if (this.rqHead >= q.length) {
      // a small queue is emptied with pop, which keeps its backing store (length = 0 frees it)
      if (q.length > 64) q.length = 0;
      else while (q.length > 0) q.pop();
      this.rqHead = 0;
    } else {
      if (this.rqHead > 4096) {
        q.splice(0, this.rqHead);
        this.rqHead = 0;
      }
      if (!this.armed) {
        this.armed = true;
        setImmediate(this.drainFresh);
      }
    }
    if (!this.armed && !this.resetArmed) {
      // one pending reset at a time (not one setImmediate per drain)
      this.resetArmed = true;
      setImmediate(this.resetTurn);
    }
  };

  private readonly resetTurn = (): void => {
    this.resetArmed = false;
    this.turnCount = 0;
  };

  /** Delivers a message to a local pid (dropped if dead). */
  deliver(to: Pid, msg: unknown): void {
    const p = this.procs.get(to);
    if (p !== undefined) {
      this.messagesIn++;
      p.enqueue(msg);
    }
  }

  /** Sends a signal; local ones are applied in order, without recursion. */
  signal(to: Pid, sig: Signal): void {
    // lastIndexOf(p, 0) === 0 is startsWith without its RegExp check (≈3× faster; per signal)
    if (to.lastIndexOf(this.prefix, 0) !== 0) {
      this.node.routeSignal(to, sig);
      return;
    }
    this.sigQueue.push([to, sig]);
    if (this.inSignals) return;
    this.inSignals = true;
    try {
      while (this.sigHead < this.sigQueue.length) {
        const [t, s] = this.sigQueue[this.sigHead]!;
        this.sigQueue[this.sigHead++] = undefined as never;
        this.apply(t, s);
      }
    } finally {
      this.sigQueue.length = 0;
      this.sigHead = 0;
      this.inSignals = false;
    }
  }

  /** Applies one signal to a local process (or answers for a dead one). */
  apply(to: Pid, sig: Signal): void {
    const p = this.procs.get(to);
    switch (sig.k) {
      case "exit": {
        if (p === undefined) return;
        if (sig.link) {
          if (p.links === null || !p.links.delete(sig.from)) {
            // a child spawn-linked on another scheduler may die before its pid is known here
            if (p.spawning > 0) (p.stashed ??= []).push({ from: sig.from, reason: sig.reason });
            return; // otherwise: unlinked meanwhile
          }
        }
        if (sig.reason === "kill" && !sig.link) {
          this.terminate(p, "killed");
        } else if (p.trapping) {
          p.enqueue({ type: "EXIT", from: sig.from, reason: sig.reason });
        } else if (sig.reason === "normal") {
          if (sig.from === to) this.terminate(p, "normal");
        } else {
          this.terminate(p, sig.reason);
        }
        return;
      }
      case "link":
        if (p === undefined) this.signal(sig.from, { k: "exit", from: to, reason: "noproc", link: true });
        else (p.links ??= new Set()).add(sig.from);
        return;
      case "unlink":
        p?.links?.delete(sig.from);
        return;
      case "monitor":
        if (p === undefined) this.signal(sig.from, { k: "down", from: to, ref: sig.ref, reason: "noproc" });
        else (p.monitoredBy ??= new Map()).set(sig.ref, sig.from);
        return;
      case "demonitor":
        p?.monitoredBy?.delete(sig.ref);
        return;
      case "down":
        if (p !== undefined && p.watching !== null && p.watching.delete(sig.ref)) {
          p.enqueue({ type: "DOWN", ref: sig.ref, pid: sig.from, reason: sig.reason });
        }
        return;
    }
  }

  /** Ends a process: links get exit signals, monitors DOWN, hooks run. Idempotent. */
  terminate(p: Process<any>, reason: ExitReason): void {
    if (p.state === 1) return;
    p.state = 1;
    p.reason = reason;
    this.procs.delete(p.pid);
    this.exited++;
    p.mailbox = null;
    const w = p.waiter;
    if (w !== null) {
      p.waiter = null;
      if (w.timer !== undefined) clearTimeout(w.timer);
    }
    if (p.name !== null) this.node.unregisterDead(p.name, p.pid);
    const from = p.pid;
    if (p.links !== null) {
      const links = p.links;
      p.links = null;
      for (const l of links) this.signal(l, { k: "exit", from, reason, link: true });
    }
    if (p.monitoredBy !== null) {
      const mons = p.monitoredBy;
      p.monitoredBy = null;
      for (const [ref, w2] of mons) this.signal(w2, { k: "down", from, ref, reason });
    }
    if (p.watching !== null) {
      const ws = p.watching;
      p.watching = null;
      for (const [ref, t] of ws) this.signal(t, { k: "demonitor", from, ref: ref as MonitorRef });
    }
    if (p.exitHooks !== null) {
      const hooks = p.exitHooks;
      p.exitHooks = null;
      for (const h of hooks) {
        try {
          h(from, reason);
        } catch (e) {
          this.node.logger.error(`exit hook of ${from} threw: ${String(e)}`);
        }
      }
    }
  }

  stats(): SchedulerStats {
    return {
      index: this.index,
      processes: this.procs.size,
      runQueue: this.runQueue.length - this.rqHead,
      messagesIn: this.messagesIn,
      spawned: this.spawned,
      exited: this.exited,
    };
  }
}
