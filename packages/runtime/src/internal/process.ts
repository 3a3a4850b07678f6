/**
 * A process: a mailbox plus a behaviour, living on one scheduler.
 *
 * Two behaviours exist:
 * - a *handler* (`{ handle(msg, self) }`): the scheduler calls it once per message; if it
 *   returns a promise, the process is suspended (no further message) until it settles;
 * - a *body* (`async (self) => { … await self.receive() … }`): a function that runs once and
 *   pulls messages with `receive` (selective, with timeout). Its return is a normal exit.
 *
 * Rules kept here (see docs/semantics.md):
 * - one message at a time: a handler is never re-entered while its promise is pending;
 * - a throw (or a rejected promise) kills only this process, with the error as exit reason;
 * - on exit, every link gets an exit signal and every monitor a DOWN, exactly once; the
 *   mailbox is dropped; names and registry entries go (exit hooks).
 */
import type { Scheduler } from "./scheduler.js";
import { formatReason } from "./errors.js";
import {
  Timeout,
  type Dest,
  type DownMessage,
  type ExitReason,
  type MonitorRef,
  type Pid,
  type Ref,
  type SystemMessage,
} from "./types.js";

/** A message handler behaviour. */
export interface Handler<M> {
  /** Runs once before the first message; may be async (the process waits). */
  init?(self: Process<M>): void | Promise<void>;
  /** Handles one message; may be async (the process waits, the scheduler does not). */
  handle(msg: M | SystemMessage, self: Process<M>): void | Promise<void>;
}

/** A process body: runs once; its return (or settled promise) is a normal exit. */
export type Body<M> = (self: Process<M>) => void | Promise<void>;

/** What `spawn` accepts: a body function or a handler object. */
export type Behaviour<M> = Body<M> | Handler<M>;

/** Options for a `receive`. */
export interface ReceiveOptions<M, T extends M> {
  /** Take the first message for which this returns true; others stay queued in order. */
  match?: ((m: M) => m is T) | ((m: M) => boolean);
  /** Milliseconds to wait; on expiry `receive` resolves to `Timeout`. */
  timeout?: number;
}

/** Spawn options. */
export interface SpawnOptions {
  /** A label for log lines (e.g. the module or behaviour name). */
  label?: string;
  /** Register the process under this name at spawn (atomic; throws if taken). */
  name?: string;
  /** Trap exits from the start (before the first instruction runs). */
  trapExit?: boolean;
}

interface Waiter {
  match: ((m: unknown) => boolean) | undefined;
  resolve: (m: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  scanned: number;
}

const RUNNING = 0;
const DEAD = 1;

/**
 * A live process, as seen from inside it (`self`). Send, receive, spawn, link, monitor and
 * exit from here. `M` is the type of the messages it accepts (system messages — EXIT, DOWN —
 * may also arrive).
 *
 * @example
 * ```ts
 * import { startNode, type Process } from "@cinder/runtime";
 * const node = await startNode();
 * const echo = node.spawn(async (self: Process<{ from: string; text: string }>) => {
 *   const m = await self.receive();
 *   if ("text" in m) self.send(m.from, m.text);
 * });
 * const me = node.process();
 * me.send(echo, { from: me.pid, text: "hi" });
 * console.log(await me.receive()); // "hi"
 * await node.stop();
 * ```
 */
export class Process<M = unknown> {
  /** This process's pid, typed with the messages it accepts. */
  readonly pid: Ref<M>;
  /** @internal */ readonly sched: Scheduler;
  /** @internal */ handler: Handler<M> | null;
  /** @internal */ mailbox: unknown[] | null = [];
  /** @internal */ head = 0;
  /** @internal */ state = RUNNING;
  /** @internal */ busy = false;
  /** @internal */ queued = false;
  /** @internal */ trapping = false;
  /** @internal */ waiter: Waiter | null = null;
  /** @internal */ links: Set<Pid> | null = null;
  /** @internal monitors held by others on this process: ref → watcher */
  monitoredBy: Map<MonitorRef, Pid> | null = null;
  /** @internal monitors this process holds: ref → target */
  watching: Map<MonitorRef, Pid> | null = null;
  /** @internal */ name: string | null = null;
  /** @internal */ label: string | undefined;
  /** @internal */ exitHooks: Array<(pid: Pid, reason: ExitReason) => void> | null = null;
  /** @internal */ reason: ExitReason = undefined;
  /** @internal spawn-links to other schedulers still in flight */
  spawning = 0;
  /** @internal link exits that arrived while a spawn-link was in flight */
  stashed: Array<{ from: Pid; reason: ExitReason }> | null = null;
  /** @internal stats */ highWater = 0;
  /** @internal */ received = 0;

  /** @internal */
  constructor(sched: Scheduler, pid: Pid, handler: Handler<M> | null, label?: string) {
    this.sched = sched;
    this.pid = pid as Ref<M>;
    this.handler = handler;
    this.label = label;
  }

  /** The node this process runs on. */
  get node() {
    return this.sched.node;
  }

  /** True until the process exits. */
  get alive(): boolean {
    return this.state === RUNNING;
  }

  /** Messages waiting in the mailbox. */
  get mailboxLength(): number {
    return this.mailbox ? this.mailbox.length - this.head : 0;
  }

  // ---- messages ----------------------------------------------------------------------

  /**
   * Sends `msg` to a pid, a registered name or a `via` name. Never throws for a dead pid;
   * throws `BadArgError` for a name that is not registered (Erlang's `badarg`).
   */
  send<T>(dest: Dest<T>, msg: T): void {
    if (this.state === DEAD) return;
    this.sched.node.send(dest, msg);
  }

  /**
   * Takes the next message (or the first matching `opts.match`); non-matching messages stay
   * queued in order. With `opts.timeout`, resolves to `Timeout` if nothing matches in time.
   * Only for body processes (a handler gets its messages as calls).
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * const node = await startNode();
   * const me = node.process<{ prio: "low" | "high"; n: number }>();
   * me.send(me.pid, { prio: "low", n: 1 });
   * me.send(me.pid, { prio: "high", n: 2 });
   * console.log(await me.receive({ match: (m) => "prio" in m && m.prio === "high" })); // { prio: "high", n: 2 }
   * console.log(me.mailboxLength, await me.receive()); // [1, { prio: "low", n: 1 }]
   * await node.stop();
   * ```
   */
  receive(): Promise<M | SystemMessage>;
  receive<T extends M | SystemMessage>(opts: ReceiveOptions<M | SystemMessage, T> & { timeout: number }): Promise<T | Timeout>;
  receive<T extends M | SystemMessage>(opts: ReceiveOptions<M | SystemMessage, T>): Promise<T>;
  receive(opts?: ReceiveOptions<any, any>): Promise<unknown> {
    if (this.state === DEAD) return new Promise(() => {});
    if (this.waiter) throw new Error("receive: already receiving");
    const match = opts?.match as ((m: unknown) => boolean) | undefined;
    const found = this.take(match, this.head);
    if (found !== NOTHING) return Promise.resolve(found);
    if (opts?.timeout !== undefined && opts.timeout <= 0) return Promise.resolve(Timeout);
    return new Promise((resolve) => {
      const w: Waiter = { match, resolve, timer: undefined, scanned: this.mailbox!.length };
      if (opts?.timeout !== undefined && opts.timeout !== Infinity) {
        w.timer = setTimeout(() => {
          if (this.waiter === w) {
            this.waiter = null;
            resolve(Timeout);
          }
        }, opts.timeout);
      }
      this.waiter = w;
    });
  }

  /** Removes and returns every queued message (or those matching `match`). */
  flush(match?: (m: M | SystemMessage) => boolean): Array<M | SystemMessage> {
    const box = this.mailbox;
    if (!box) return [];
    const out: unknown[] = [];
    const keep: unknown[] = [];
    for (let i = this.head; i < box.length; i++) (match === undefined || match(box[i] as M) ? out : keep).push(box[i]);
    this.mailbox = keep;
    this.head = 0;
    // a pending selective receive's scan position indexed the old array: rescan the new one
    if (this.waiter !== null) this.waiter.scanned = 0;
    return out as Array<M | SystemMessage>;
  }

  /** @internal take the first message matching, scanning from `from`; NOTHING if none */
  take(match: ((m: unknown) => boolean) | undefined, from: number): unknown {
    const box = this.mailbox!;
    if (match === undefined) {
      if (this.head < box.length) return this.shift();
      return NOTHING;
    }
    for (let i = from; i < box.length; i++) {
      const m = box[i];
      if (match(m)) {
        if (i === this.head) return this.shift();
        box.splice(i, 1);
        return m;
      }
    }
    return NOTHING;
  }

  /** @internal */
  shift(): unknown {
    const box = this.mailbox!;
    const h = this.head;
    if (h + 1 === box.length) {
      // The last queued message. `pop` keeps the array's backing store; `length = 0` would
      // free it, so the next push allocates again (one allocation per message: bench/).
      const m = box.pop();
      if (h !== 0) {
        box.length = 0;
        this.head = 0;
      }
      return m;
    }
    const m = box[h];
    box[h] = undefined;
    this.head = h + 1;
    if (this.head > 1024 && this.head * 2 > box.length) {
      box.splice(0, this.head);
      this.head = 0;
    }
    return m;
  }

  /** @internal enqueue a message (called by the scheduler) */
  enqueue(msg: unknown): void {
    const box = this.mailbox;
    if (box === null) return;
    box.push(msg);
    this.received++;
    const len = box.length - this.head;
    if (len > this.highWater) this.highWater = len;
    if (!this.queued && !this.busy && (this.handler !== null || this.waiter !== null)) this.sched.schedule(this);
  }

  /**
   * @internal run up to `budget` messages; called from the scheduler's run loop. Returns the
   * work done, in messages (at least 1), which the scheduler counts against its turn budget.
   */
  run(budget: number): number {
    if (this.state === DEAD) return 1;
    const h = this.handler;
    if (h !== null) {
      let n = 0;
      while (this.state === RUNNING && !this.busy && this.head < this.mailbox!.length) {
        if (n === budget) {
          this.sched.schedule(this);
          return n;
        }
        n++;
        const msg = this.shift();
        let r: void | Promise<void>;
        try {
          r = h.handle(msg as M, this);
        } catch (e) {
          this.crash(e, msg);
          return n;
        }
        if (r !== undefined && typeof (r as Promise<void>).then === "function") this.suspend(r as Promise<void>, msg);
      }
      return n === 0 ? 1 : n;
    }
    const w = this.waiter;
    if (w !== null) {
      const found = this.take(w.match, Math.max(w.scanned, this.head));
      if (found === NOTHING) {
        w.scanned = this.mailbox!.length;
        return 1;
      }
      this.waiter = null;
      if (w.timer !== undefined) clearTimeout(w.timer);
      w.resolve(found);
    }
    return 1;
  }

  /** @internal wait for an async handler; no message is handled meanwhile */
  suspend(p: Promise<void>, msg: unknown): void {
    this.busy = true;
    p.then(
      () => {
        this.busy = false;
        if (this.state === RUNNING && this.head < this.mailbox!.length && !this.queued) this.sched.schedule(this);
      },
      (e) => {
        this.busy = false;
        this.crash(e, msg);
      },
    );
  }

  /** @internal a handler or body threw */
  crash(e: unknown, msg: unknown): void {
    if (this.state === DEAD) return;
    this.sched.node.logger.error(
      `process ${this.pid}${this.label ? ` (${this.label})` : ""}${this.name ? ` registered as ${this.name}` : ""} crashed${msg === NOBODY ? "" : ` handling ${messageKind(msg)}`}: ${formatReason(e)}`,
      { pid: this.pid, label: this.label, name: this.name, message: msg === NOBODY ? undefined : messageKind(msg), error: e },
    );
    this.sched.terminate(this, e);
  }

  // ---- spawning ----------------------------------------------------------------------

  /** Spawns a process on this process's scheduler. */
  spawn<T>(behaviour: Behaviour<T>, opts?: SpawnOptions): Ref<T> {
    return this.sched.spawn(behaviour, opts, null, false).pid;
  }

  /** Spawns a process linked to this one, atomically: an immediate crash still signals. */
  spawnLink<T>(behaviour: Behaviour<T>, opts?: SpawnOptions): Ref<T> {
    return this.sched.spawn(behaviour, opts, this, false).pid;
  }

  /** Spawns a process monitored by this one, atomically. */
  spawnMonitor<T>(behaviour: Behaviour<T>, opts?: SpawnOptions): [Ref<T>, MonitorRef] {
    const ref = this.sched.node.makeRef() as MonitorRef;
    const p = this.sched.spawn(behaviour, opts, null, false);
    (this.watching ??= new Map()).set(ref, p.pid);
    (p.monitoredBy ??= new Map()).set(ref, this.pid);
    return [p.pid, ref];
  }

  // ---- links, exits, monitors ---------------------------------------------------------

  /** Links this process to `pid` (both ways). A dead pid gives an exit signal `noproc`. */
  link(pid: Pid): void {
    if (this.state === DEAD || pid === this.pid) return;
    (this.links ??= new Set()).add(pid);
    this.sched.signal(pid, { k: "link", from: this.pid });
  }

  /** Removes the link both ways; no exit signal crosses afterwards. */
  unlink(pid: Pid): void {
    if (this.state === DEAD) return;
    this.links?.delete(pid);
    this.sched.signal(pid, { k: "unlink", from: this.pid });
    // an exit signal from that link already queued as a message is dropped (as OTP's unlink)
    if (this.trapping) this.flush((m) => isExitFrom(m, pid));
  }

  /** Turns exit signals into `{ type: "EXIT", from, reason }` messages (except `kill`). */
  trapExit(on = true): void {
    this.trapping = on;
  }

  /**
   * `exit(reason)`: this process exits now with `reason`.
   * `exit(pid, reason)`: sends an exit signal to `pid` (`kill` is untrappable; `normal` is
   * ignored unless trapped).
   */
  exit(reason: ExitReason): void;
  exit(pid: Pid, reason: ExitReason): void;
  exit(a: unknown, b?: unknown): void {
    if (arguments.length >= 2) {
      if (this.state === DEAD) return;
      this.sched.signal(a as Pid, { k: "exit", from: this.pid, reason: b, link: false });
    } else {
      this.sched.terminate(this, a);
    }
  }

  /** Monitors `pid`; its exit (or its absence: `noproc`) arrives as one DOWN message. */
  monitor(pid: Pid): MonitorRef {
    const ref = this.sched.node.makeRef() as MonitorRef;
    if (this.state === DEAD) return ref;
    (this.watching ??= new Map()).set(ref, pid);
    this.sched.signal(pid, { k: "monitor", from: this.pid, ref });
    return ref;
  }

  /** Stops a monitor; with `flush`, removes a DOWN for it already in the mailbox. */
  demonitor(ref: MonitorRef, opts?: { flush?: boolean }): boolean {
    const target = this.watching?.get(ref);
    if (target === undefined) {
      if (opts?.flush) this.flush((m) => isDownFor(m, ref));
      return false;
    }
    this.watching!.delete(ref);
    this.sched.signal(target, { k: "demonitor", from: this.pid, ref });
    if (opts?.flush) this.flush((m) => isDownFor(m, ref));
    return true;
  }

  // ---- names and timers ---------------------------------------------------------------

  /** Registers this process under `name` (node-wide). Throws `BadArgError` if taken. */
  register(name: string): void {
    this.sched.node.register(name, this.pid);
  }

  /** Sends `msg` to `dest` after `ms`; returns a timer ref for `cancelTimer`. */
  sendAfter<T>(dest: Dest<T>, msg: T, ms: number) {
    return this.sched.node.sendAfter(dest, msg, ms);
  }

  /** Registers a function to run when this process exits (after links and monitors). */
  onExit(fn: (pid: Pid, reason: ExitReason) => void): void {
    if (this.state === DEAD) {
      fn(this.pid, this.reason);
      return;
    }
    // an exactly-sized array: `[]` then push reserves 16 slots (~140 B per process)
    if (this.exitHooks === null) this.exitHooks = [fn];
    else this.exitHooks.push(fn);
  }
}

/** @internal */
export const NOTHING: unique symbol = Symbol("nothing");
/** @internal marks a crash outside any message (a body) */
export const NOBODY: unique symbol = Symbol("nobody");

/** @internal start a body process (called by the scheduler on its first run) */
export function startBody<M>(p: Process<M>, body: Body<M>): void {
  let r: void | Promise<void>;
  try {
    r = body(p);
  } catch (e) {
    p.crash(e, NOBODY);
    return;
  }
  if (r !== undefined && typeof (r as Promise<void>).then === "function") {
    (r as Promise<void>).then(
      () => p.sched.terminate(p, "normal"),
      (e) => p.crash(e, NOBODY),
    );
  } else {
    p.sched.terminate(p, "normal");
  }
}

function messageKind(msg: unknown): string {
  if (msg === null || typeof msg !== "object") return typeof msg === "string" ? JSON.stringify(msg.slice(0, 40)) : typeof msg;
  const o = msg as Record<string, unknown>;
  for (const k of ["$gen", "type", "kind", "event", "op", "tag"]) if (typeof o[k] === "string") return `${k}=${o[k] as string}`;
  if (Array.isArray(msg)) return typeof msg[0] === "string" ? `[${msg[0]}, …]` : "array";
  const keys = Object.keys(o);
  return keys.length ? `{${keys.slice(0, 3).join(",")}}` : "{}";
}

function isExitFrom(m: unknown, pid: Pid): boolean {
  return typeof m === "object" && m !== null && (m as SystemMessage).type === "EXIT" && (m as { from: Pid }).from === pid;
}

function isDownFor(m: unknown, ref: MonitorRef): boolean {
  return typeof m === "object" && m !== null && (m as DownMessage).type === "DOWN" && (m as DownMessage).ref === ref;
}

export { Timeout };
