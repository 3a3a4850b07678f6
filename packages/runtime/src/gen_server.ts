/**
 * GenServer: a process with state, synchronous calls, casts and info messages.
 *
 * Protocol (messages a server accepts):
 * - `{ $gen: "call", req, from }` — `from` is a reply ref; the answer travels as
 *   `{ $reply: value }` to it (see `request.ts`: a late answer is dropped, never stray).
 * - `{ $gen: "cast", msg }` — fire and forget.
 * - `{ $gen: "stop", reason, from }` — run `terminate`, reply, exit with `reason`.
 * - anything else → `handleInfo` (including EXIT and DOWN). An EXIT from the parent (the
 *   process that start-linked it) while trapping stops the server with that reason.
 *
 * `terminate` runs on stop, on a callback's throw, and on a trapped exit from the parent;
 * never on `kill` (the process is gone at once).
 */
import { BadArgError, CinderError, NoProcError, formatReason } from "./internal/errors.js";
import type { NodeCore } from "./internal/node_core.js";
import { Process } from "./internal/process.js";
import { coreOf, replyTo, request, type Context, type From } from "./internal/request.js";
import type { Dest, ExitMessage, ExitReason, Pid, Ref, SystemMessage, Via } from "./internal/types.js";

/** What a server's ref accepts: calls, casts and stops. */
export type GenMsg<Call, Reply, Cast> =
  | { readonly $gen: "call"; readonly req: Call; readonly from: From<Reply> }
  | { readonly $gen: "cast"; readonly msg: Cast }
  | { readonly $gen: "stop"; readonly reason: ExitReason; readonly from: From<"ok"> };

/** A typed server ref: requests of type `Call` get replies of type `Reply`; casts are `Cast`. */
export type ServerRef<Call = any, Reply = any, Cast = any> = Ref<GenMsg<Call, Reply, Cast>>;

/** Where a server can be reached: its ref, a registered name or a via name. */
export type ServerName<Call = any, Reply = any, Cast = any> = ServerRef<Call, Reply, Cast> | string | Via;

/** The result of `handleCall`: reply now (`reply`), or later with `GenServer.reply` (no `reply` key). */
export type CallResult<S, R> = { reply: R; state: S; stop?: ExitReason } | { state: S; stop?: ExitReason; reply?: never };

/** The result of `handleCast` / `handleInfo`. `stop` ends the server with that reason. */
export interface NoReply<S> {
  state: S;
  stop?: ExitReason;
}

type MaybePromise<T> = T | Promise<T>;

/** The server process as seen by callbacks. */
export type ServerSelf<Call, Reply, Cast, Info> = Process<GenMsg<Call, Reply, Cast> | Info>;

/**
 * A GenServer behaviour. `init` returns the initial state (throw to fail the start);
 * the handlers return `{ state }` plus `reply` or `stop` as needed. Any handler may be async:
 * the server waits for it; other processes on the scheduler keep running.
 */
export interface GenServerBehaviour<S, Call = never, Reply = unknown, Cast = never, Info = unknown, Args = void> {
  /** A name for log lines. */
  name?: string;
  init(args: Args, self: ServerSelf<Call, Reply, Cast, Info>): MaybePromise<S>;
  handleCall?(req: Call, from: From<Reply>, state: S, self: ServerSelf<Call, Reply, Cast, Info>): MaybePromise<CallResult<S, Reply>>;
  handleCast?(msg: Cast, state: S, self: ServerSelf<Call, Reply, Cast, Info>): MaybePromise<NoReply<S>>;
  handleInfo?(msg: Info | SystemMessage, state: S, self: ServerSelf<Call, Reply, Cast, Info>): MaybePromise<NoReply<S>>;
  terminate?(reason: ExitReason, state: S, self: ServerSelf<Call, Reply, Cast, Info>): MaybePromise<void>;
}

/** Options for `start` / `startLink`. */
export interface StartOptions {
  /** Register under a name (string) or a via name. Taken → rejects with `already_started`. */
  name?: string | Via;
  /** Milliseconds `init` may take (default: infinity). */
  timeout?: number;
  /** Trap exits from the first instruction. */
  trapExit?: boolean;
  /**
   * @internal The parent's pid when the parent is on another scheduler (spawnOn with a link):
   * a trapped EXIT from it stops the server, as from a local parent.
   */
  parentPid?: Pid;
}

/**
 * Raised by `start` when the name is taken; `pid` is the current owner.
 *
 * @example
 * ```ts
 * import { startNode, GenServer, AlreadyStartedError } from "@cinder/runtime";
 * const node = await startNode();
 * const first = await GenServer.start(node, { init: () => null }, undefined, { name: "cache" });
 * const e = await GenServer.start(node, { init: () => null }, undefined, { name: "cache" }).catch((e: unknown) => e);
 * console.log(e instanceof AlreadyStartedError && e.pid === first); // true
 * await node.stop();
 * ```
 */
export class AlreadyStartedError extends CinderError {
  /** The process that holds the name. */
  readonly pid: Pid;
  constructor(name: string, pid: Pid) {
    super("already_started", `already started: ${name} is ${pid}`, { already_started: pid });
    this.name = "AlreadyStartedError";
    this.pid = pid;
  }
}

/**
 * Raised by `start` when `init` throws or exits; `reason` is what it threw.
 *
 * @example
 * ```ts
 * import { startNode, GenServer, InitError } from "@cinder/runtime";
 * const node = await startNode();
 * const e = await GenServer.start(node, { init: (): never => { throw new Error("no config"); } }, undefined).catch((e: unknown) => e);
 * console.log(e instanceof InitError, (e as InitError).code, (e as InitError).reason); // [true, "init_failed", Error: no config]
 * await node.stop();
 * ```
 */
export class InitError extends CinderError {
  constructor(what: string, reason: unknown) {
    super("init_failed", `${what} init failed: ${formatReason(reason)}`, reason);
    this.name = "InitError";
  }
}

function isPromise<T>(x: MaybePromise<T>): x is Promise<T> {
  return x !== null && typeof x === "object" && typeof (x as Promise<T>).then === "function";
}

function startServer<S, C, R, K, I, A>(
  ctx: Context,
  parent: Process<any> | null,
  spec: GenServerBehaviour<S, C, R, K, I, A>,
  args: A,
  opts: StartOptions | undefined,
): Promise<ServerRef<C, R, K>> {
  const core = coreOf(ctx);
  const label = spec.name ?? "GenServer";
  return new Promise((resolve, reject) => {
    let state: S;
    let started = false;
    let parentPid: Pid | undefined = parent?.pid ?? opts?.parentPid;
    let initTimer: ReturnType<typeof setTimeout> | undefined;
    let initDone = false;

    const fail = (self: Process<any>, reason: unknown) => {
      if (started) return;
      started = true;
      if (parentPid !== undefined) self.unlink(parentPid);
      reject(reason instanceof CinderError && reason.code === "timeout" ? reason : new InitError(label, reason));
      self.exit(reason);
    };

    const stopWith = (self: Process<any>, reason: ExitReason, after?: () => void): void | Promise<void> => {
      const done = () => {
        after?.();
        self.exit(reason);
      };
      if (!spec.terminate) return done();
      let r: MaybePromise<void>;
      try {
        r = spec.terminate(reason, state, self as ServerSelf<C, R, K, I>);
      } catch (e) {
        core.logger.error(`${label} ${self.pid} terminate threw: ${formatReason(e)}`);
        return done();
      }
      if (isPromise(r))
        return r.then(done, (e) => {
          core.logger.error(`${label} ${self.pid} terminate threw: ${formatReason(e)}`);
          done();
        });
      return done();
    };

    const crashed = (self: Process<any>, e: unknown, kind: string): void | Promise<void> => {
      core.logger.error(`${label} ${self.pid}${self.name ? ` (${self.name})` : ""} crashed in ${kind}: ${formatReason(e)}`, { pid: self.pid, error: e });
      return stopWith(self, e);
    };

    const afterNoReply = (self: Process<any>, res: NoReply<S>): void | Promise<void> => {
      state = res.state;
      if (res.stop !== undefined) return stopWith(self, res.stop);
    };

    const afterCall = (self: Process<any>, from: From<R>, res: CallResult<S, R>): void | Promise<void> => {
      state = res.state;
      if ("reply" in res) replyTo(core, from, res.reply as R);
      if (res.stop !== undefined) return stopWith(self, res.stop);
    };

    const run = <T>(self: Process<any>, kind: string, f: () => MaybePromise<T>, then: (t: T) => void | Promise<void>): void | Promise<void> => {
      let r: MaybePromise<T>;
      try {
        r = f();
      } catch (e) {
        return crashed(self, e, kind);
      }
      if (isPromise(r)) return r.then(then, (e) => crashed(self, e, kind));
      return then(r);
    };

    const handler = {
      init(self: Process<any>): void | Promise<void> {
        let timer: ReturnType<typeof setTimeout> | undefined;
        if (opts?.timeout !== undefined && opts.timeout !== Infinity) {
          timer = initTimer = setTimeout(() => fail(self, new CinderError("timeout", `${label} init timed out after ${opts.timeout} ms`)), opts.timeout);
        }
        const ok = (s: S) => {
          if (timer) clearTimeout(timer);
          if (started) return;
          state = s;
          started = true;
          initDone = true;
          resolve(self.pid as ServerRef<C, R, K>);
        };
        let r: MaybePromise<S>;
        try {
          r = spec.init(args, self as ServerSelf<C, R, K, I>);
        } catch (e) {
          if (timer) clearTimeout(timer);
          return fail(self, e);
        }
        if (isPromise(r))
          return r.then(ok, (e) => {
            if (timer) clearTimeout(timer);
            fail(self, e);
          });
        ok(r);
      },
      handle(msg: unknown, self: Process<any>): void | Promise<void> {
        const m = msg as GenMsg<C, R, K>;
        switch (m !== null && typeof m === "object" ? m.$gen : undefined) {
          case "call": {
            const c = m as Extract<GenMsg<C, R, K>, { $gen: "call" }>;
            if (!spec.handleCall) return crashed(self, new BadArgError(`${label} has no handleCall`), "call");
            return run(self, "handleCall", () => spec.handleCall!(c.req, c.from, state, self as ServerSelf<C, R, K, I>), (res) => afterCall(self, c.from, res));
          }
          case "cast": {
            const c = m as Extract<GenMsg<C, R, K>, { $gen: "cast" }>;
            if (!spec.handleCast) return;
            return run(self, "handleCast", () => spec.handleCast!(c.msg, state, self as ServerSelf<C, R, K, I>), (res) => afterNoReply(self, res));
          }
          case "stop": {
            const c = m as Extract<GenMsg<C, R, K>, { $gen: "stop" }>;
            return stopWith(self, c.reason, () => replyTo(core, c.from, "ok"));
          }
          default: {
            const ex = msg as ExitMessage;
            if (parentPid !== undefined && ex !== null && typeof ex === "object" && ex.type === "EXIT" && ex.from === parentPid) {
              return stopWith(self, ex.reason);
            }
            if (!spec.handleInfo) {
              core.logger.warn(`${label} ${self.pid} got an unexpected message and has no handleInfo`);
              return;
            }
            return run(self, "handleInfo", () => spec.handleInfo!(msg as I, state, self as ServerSelf<C, R, K, I>), (res) => afterNoReply(self, res));
          }
        }
      },
    };

    let proc: Process<any>;
    const name = opts?.name;
    const spawnOpts = { label, trapExit: opts?.trapExit, name: typeof name === "string" ? name : undefined };
    if (typeof name === "string") {
      const owner = core.whereis(name);
      if (owner !== undefined) {
        reject(new AlreadyStartedError(name, owner));
        return;
      }
    }
    proc = core.main.spawn(handler, spawnOpts, parent, false);
    if (name !== undefined && typeof name === "object") {
      if (!name.via.registerName(name.name, proc.pid)) {
        const owner = name.via.whereisName(name.name);
        core.main.terminate(proc, "normal");
        if (parent) parent.links?.delete(proc.pid);
        // no owner: the via registry refused without a holder (e.g. it is not running)
        reject(owner !== undefined ? new AlreadyStartedError(String(name.name), owner) : new BadArgError(`${label}: via name ${String(name.name)} could not be registered`));
        return;
      }
    }
    // An exit before init completed (killed, or `self.exit` in init) fails the start too, and a
    // via name goes with it (as OTP's gen unregisters on init failure); no init timer outlives it.
    proc.onExit((pid, reason) => {
      if (initTimer !== undefined) clearTimeout(initTimer);
      if (initDone) return;
      if (name !== undefined && typeof name === "object" && name.via.whereisName(name.name) === pid) name.via.unregisterName(name.name);
      if (!started) {
        started = true;
        reject(new InitError(label, reason));
      }
    });
    parentPid = parent?.pid ?? opts?.parentPid;
  });
}

/**
 * GenServer functions: start a server, call it, cast to it, reply later, stop it.
 *
 * @example
 * ```ts
 * import { startNode, GenServer, type GenServerBehaviour } from "@cinder/runtime";
 * const Counter: GenServerBehaviour<number, "get" | "inc", number> = {
 *   init: () => 0,
 *   handleCall: (req, _from, n) => (req === "inc" ? { reply: n + 1, state: n + 1 } : { reply: n, state: n }),
 * };
 * const node = await startNode();
 * const counter = await GenServer.start(node, Counter, undefined, { name: "counter" });
 * await GenServer.call(node, counter, "inc");
 * console.log(await GenServer.call(node, "counter", "get")); // 1
 * await node.stop();
 * ```
 */
export const GenServer = {
  /** Starts a server not linked to the caller; resolves with its ref after `init`. */
  start<S, C, R, K, I, A>(ctx: Context, spec: GenServerBehaviour<S, C, R, K, I, A>, args: A, opts?: StartOptions): Promise<ServerRef<C, R, K>> {
    return startServer(ctx, null, spec, args, opts);
  },

  /** Starts a server linked to `parent` (a process: a supervisor or any actor). */
  startLink<S, C, R, K, I, A>(parent: Process<any>, spec: GenServerBehaviour<S, C, R, K, I, A>, args: A, opts?: StartOptions): Promise<ServerRef<C, R, K>> {
    return startServer(parent, parent, spec, args, opts);
  },

  /**
   * Calls the server and waits for its reply (default timeout 5000 ms). Rejects with
   * `NoProcError` (dead or unknown server), `TimeoutError`, or `ExitError` (it died meanwhile).
   */
  call<C, R>(ctx: Context, server: ServerName<C, R, any>, req: C, timeout = 5000): Promise<R> {
    const core = coreOf(ctx);
    const pid = resolveServer(core, server);
    const what = `call to ${describe(server)}`;
    if (pid === undefined) return Promise.reject(new NoProcError(describe(server)));
    return request<R>(core, pid, (from) => ({ $gen: "call", req, from }), timeout, what);
  },

  /**
   * Sends a cast; never blocks, never throws (even for a dead or unknown server). Casts and
   * calls from one caller are handled in the order sent.
   *
   * @example
   * ```ts
   * import { startNode, GenServer, type GenServerBehaviour } from "@cinder/runtime";
   * const Log: GenServerBehaviour<string[], "read", string[], string> = {
   *   init: () => [],
   *   handleCast: (line, lines) => ({ state: [...lines, line] }),
   *   handleCall: (_req, _from, lines) => ({ reply: lines, state: lines }),
   * };
   * const node = await startNode();
   * const log = await GenServer.start(node, Log, undefined);
   * GenServer.cast(node, log, "a");
   * GenServer.cast(node, log, "b");
   * GenServer.cast(node, "no_such_server", "c"); // dropped, no error
   * console.log(await GenServer.call(node, log, "read")); // ["a", "b"]
   * await node.stop();
   * ```
   */
  cast<K>(ctx: Context, server: ServerName<any, any, K>, msg: K): void {
    const core = coreOf(ctx);
    const pid = resolveServer(core, server);
    if (pid !== undefined) core.send(pid, { $gen: "cast", msg });
  },

  /**
   * Answers a call later (a deferred reply), from any process: `handleCall` keeps `from` and
   * returns no `reply`; the server goes on handling other messages meanwhile.
   *
   * @example
   * ```ts
   * import { startNode, GenServer, type From, type GenServerBehaviour } from "@cinder/runtime";
   * // "wait" calls are answered by the next "release" call
   * const Gate: GenServerBehaviour<From<string>[], "wait" | "release", string> = {
   *   init: () => [],
   *   handleCall: (req, from, waiting, self) => {
   *     if (req === "wait") return { state: [...waiting, from] };
   *     for (const w of waiting) GenServer.reply(self, w, "open");
   *     return { reply: `released ${waiting.length}`, state: [] };
   *   },
   * };
   * const node = await startNode();
   * const gate = await GenServer.start(node, Gate, undefined);
   * const waiting = GenServer.call(node, gate, "wait");
   * console.log(await GenServer.call(node, gate, "release")); // "released 1"
   * console.log(await waiting); // "open"
   * await node.stop();
   * ```
   */
  reply<R>(ctx: Context, from: From<R>, value: R): void {
    replyTo(coreOf(ctx), from, value);
  },

  /**
   * Stops the server with `reason` (default `normal`) after its `terminate` has run; resolves
   * once it has exited. Rejects with `NoProcError` for a dead or unknown server.
   *
   * @example
   * ```ts
   * import { startNode, GenServer } from "@cinder/runtime";
   * const node = await startNode();
   * const seen: unknown[] = [];
   * const server = await GenServer.start(node, { init: () => "state", terminate: (reason, state) => void seen.push(reason, state) }, undefined, { name: "svc" });
   * await GenServer.stop(node, "svc", "shutdown");
   * console.log(seen, GenServer.whereis(node, "svc"), node.isAlive(server)); // [["shutdown", "state"], undefined, false]
   * await node.stop();
   * ```
   */
  async stop(ctx: Context, server: ServerName, reason: ExitReason = "normal", timeout = Infinity): Promise<void> {
    const core = coreOf(ctx);
    const pid = resolveServer(core, server);
    if (pid === undefined) throw new NoProcError(describe(server));
    await request<"ok">(core, pid, (from) => ({ $gen: "stop", reason, from }), timeout, `stop of ${describe(server)}`);
  },

  /** The pid behind a server name, or `undefined`. */
  whereis(ctx: Context, server: ServerName): Pid | undefined {
    return resolveServer(coreOf(ctx), server);
  },
};

function resolveServer(core: NodeCore, server: ServerName | Dest<any>): Pid | undefined {
  return core.resolve(server as Dest<any>);
}

function describe(server: ServerName): string {
  return typeof server === "string" ? server : `via ${String((server as Via).name)}`;
}
