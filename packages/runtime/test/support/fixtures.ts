/**
 * Actors and GenServers the placement-parameterised cases spawn at the "far end".
 *
 * Every fixture is addressed by its export name and built from structured-clonable args, and
 * talks to the test only through messages: so the same cases can later place it on another
 * scheduler (`spawnOn(ctx, placement, { module, export }, [args])`) without a closure crossing
 * a thread. Actor exports are factories `(args) => behaviour`; GenServer exports are
 * behaviours whose init takes `args`. Fixtures import the runtime by package name (the
 * source under vitest, the build in a worker: docs/ARCHITECTURE-NOTES.md).
 */
import { GenServer, type Behaviour, type ExitReason, type From, type GenServerBehaviour, type MonitorRef, type Pid, type Process } from "@cinder/runtime";

// ---- actors -------------------------------------------------------------------------------

/** A command the `puppet` performs; it acks each one to `to` as `{ ack, from, ... }`. */
export type PuppetCmd =
  | { cmd: "ping"; n?: number }
  | { cmd: "link"; pid: Pid }
  | { cmd: "unlink"; pid: Pid }
  | { cmd: "monitor"; pid: Pid }
  | { cmd: "demonitor"; ref: MonitorRef; flush?: boolean }
  | { cmd: "trap"; on: boolean }
  | { cmd: "exit"; reason: ExitReason }
  | { cmd: "exitSignal"; pid: Pid; reason: ExitReason }
  | { cmd: "return" }
  | { cmd: "throw"; message: string }
  | { cmd: "spawnLinkCrash"; reason: ExitReason }
  | { cmd: "register"; name: string }
  | { cmd: "unregister"; name: string }
  | { cmd: "whereis"; name: string }
  | { cmd: "send"; to: Pid | string; msg: unknown };

/** What a puppet forwards to `to` for any message that is not a command (EXIT, DOWN, …). */
export interface Forwarded {
  readonly fwd: Pid;
  readonly m: unknown;
}

function isCmd(m: unknown): m is PuppetCmd {
  return typeof m === "object" && m !== null && typeof (m as { cmd?: unknown }).cmd === "string";
}

/**
 * A remote-controlled actor: performs link/monitor/exit/name commands on request, acks each
 * to `to`, and forwards every other message (EXIT and DOWN included) to `to`.
 */
export function puppet(args: { to: Pid }): Behaviour<PuppetCmd> {
  return async (self: Process<PuppetCmd>) => {
    const ack = (cmd: string, extra: object = {}) => self.send(args.to, { ack: cmd, from: self.pid, ...extra });
    for (;;) {
      const m = await self.receive();
      if (!isCmd(m)) {
        self.send(args.to, { fwd: self.pid, m } satisfies Forwarded);
        continue;
      }
      switch (m.cmd) {
        case "ping":
          ack("ping", { n: m.n, mailbox: self.mailboxLength });
          break;
        case "link":
          self.link(m.pid);
          ack("link");
          break;
        case "unlink":
          self.unlink(m.pid);
          ack("unlink");
          break;
        case "monitor":
          ack("monitor", { ref: self.monitor(m.pid) });
          break;
        case "demonitor":
          ack("demonitor", { result: self.demonitor(m.ref, { flush: m.flush }) });
          break;
        case "trap":
          self.trapExit(m.on);
          ack("trap");
          break;
        case "exit":
          self.exit(m.reason);
          return;
        case "exitSignal":
          self.exit(m.pid, m.reason);
          ack("exitSignal");
          break;
        case "return":
          return;
        case "throw":
          throw new Error(m.message);
        case "spawnLinkCrash":
          ack("spawnLinkCrash", { child: self.spawnLink(exitAtOnce({ reason: m.reason })) });
          break;
        case "register":
          try {
            self.register(m.name);
            ack("register", { ok: true });
          } catch (e) {
            ack("register", { ok: false, code: (e as { code?: string }).code });
          }
          break;
        case "unregister":
          self.node.unregister(m.name);
          ack("unregister");
          break;
        case "whereis":
          ack("whereis", { pid: self.node.whereis(m.name) });
          break;
        case "send":
          self.send(m.to, m.msg);
          ack("send");
          break;
      }
    }
  };
}

/** Forwards every message, unchanged, to `to`. */
export function forward(args: { to: Pid }): Behaviour<unknown> {
  return async (self: Process<unknown>) => {
    for (;;) self.send(args.to, await self.receive());
  };
}

/** Exits with `reason` as soon as it runs (`normal`: returns). */
export function exitAtOnce(args: { reason: ExitReason }): Behaviour<never> {
  return (self: Process<never>) => {
    if (args.reason !== "normal") self.exit(args.reason);
  };
}

/**
 * A handler whose `handle` is async: each `{ n }` takes `delayMs`; reports `{ done: n, active }`
 * to `to`, where `active` is how many handlers were running at once (must be 1).
 */
export function slowHandler(args: { to: Pid; delayMs: number }): Behaviour<{ n: number }> {
  let active = 0;
  return {
    async handle(m, self) {
      active++;
      const seen = active;
      await new Promise((r) => setTimeout(r, args.delayMs));
      active--;
      self.send(args.to, { done: (m as { n: number }).n, active: seen });
    },
  };
}

/**
 * A handler that throws on `{ type: "boom" }`, rejects on `{ type: "reject" }`, and echoes
 * anything else to `to` as `{ echo, from }`.
 */
export function crashOn(args: { to: Pid }): Behaviour<{ type: string }> {
  return {
    handle(m, self) {
      const t = (m as { type?: string }).type;
      if (t === "boom") throw new Error("boom");
      if (t === "reject") return Promise.reject(new Error("rejected"));
      self.send(args.to, { echo: m, from: self.pid });
    },
  };
}

/** Every actor fixture, by export name. */
export const actors = { puppet, forward, exitAtOnce, slowHandler, crashOn };
export type ActorName = keyof typeof actors;
export type ActorArgs<K extends ActorName> = Parameters<(typeof actors)[K]>[0];

// ---- GenServers ---------------------------------------------------------------------------

export type CounterCall = "get" | "inc" | { add: number } | { sleep: number; then: "inc" | "get" } | "crash" | { stop: ExitReason };
export type CounterCast = { add: number } | "crash";

/** A counter; `{ sleep }` answers after an async wait (the server is suspended meanwhile). */
export const counter: GenServerBehaviour<number, CounterCall, number | "ok", CounterCast, unknown, { start?: number }> = {
  name: "counter",
  init: (args) => args?.start ?? 0,
  async handleCall(req, _from, n) {
    if (req === "get") return { reply: n, state: n };
    if (req === "inc") return { reply: n + 1, state: n + 1 };
    if (req === "crash") throw new Error("counter crashed");
    if ("add" in req) return { reply: n + req.add, state: n + req.add };
    if ("stop" in req) return { reply: "ok", state: n, stop: req.stop };
    await new Promise((r) => setTimeout(r, req.sleep));
    const next = req.then === "inc" ? n + 1 : n;
    return { reply: next, state: next };
  },
  handleCast(msg, n) {
    if (msg === "crash") throw new Error("counter crashed in cast");
    return { state: n + msg.add };
  },
};

export type DeferCall = { hold: string } | { release: string; value: unknown } | { replyAfter: number; value: unknown } | "held";

/**
 * Answers later: `{ hold: k }` parks the caller; `{ release: k, value }` answers the parked
 * caller `k` with `value` (and its own caller with "ok"); `{ replyAfter, value }` answers from a
 * timer. `to` (if given) gets `{ replied: value }` after each late answer is sent.
 */
export const deferred: GenServerBehaviour<Map<string, From<unknown>>, DeferCall, unknown, never, unknown, { to?: Pid }> = {
  name: "deferred",
  init: () => new Map(),
  handleCall(req, from, held, self) {
    if (req === "held") return { reply: [...held.keys()], state: held };
    if ("hold" in req) {
      held.set(req.hold, from);
      return { state: held };
    }
    if ("release" in req) {
      const f = held.get(req.release);
      held.delete(req.release);
      if (f) GenServer.reply(self, f, req.value);
      return { reply: f ? "ok" : "unknown", state: held };
    }
    setTimeout(() => GenServer.reply(self, from, req.value), req.replyAfter);
    return { state: held };
  },
};

/** A server whose init fails: throws, rejects, exits, or never settles (`hang`). */
export const failingInit: GenServerBehaviour<null, never, never, never, unknown, { mode: "throw" | "reject" | "exit" | "hang"; message?: string }> = {
  name: "failingInit",
  init(args, self) {
    const err = new Error(args.message ?? "init failed");
    if (args.mode === "throw") throw err;
    if (args.mode === "reject") return Promise.reject(err);
    if (args.mode === "exit") {
      self.exit(args.message ?? "init exited");
      return new Promise(() => {});
    }
    return new Promise(() => {});
  },
};

/**
 * A server that reports its `terminate` to `to` as `{ terminated: reason, pid }`; `{ stop }`
 * stops it with a reason, `"crash"` throws, and `{ slowStop: ms }` makes terminate take `ms`.
 */
export const reporter: GenServerBehaviour<{ to: Pid; terminateMs: number }, "ping" | "crash" | { stop: ExitReason } | { slowStop: number }, unknown, never, unknown, { to: Pid }> = {
  name: "reporter",
  init: (args) => ({ to: args.to, terminateMs: 0 }),
  handleCall(req, _from, st) {
    if (req === "ping") return { reply: "pong", state: st };
    if (req === "crash") throw new Error("reporter crashed");
    if ("slowStop" in req) return { reply: "ok", state: { ...st, terminateMs: req.slowStop } };
    return { reply: "ok", state: st, stop: req.stop };
  },
  handleInfo(msg, st, self) {
    self.send(st.to, { info: msg, pid: self.pid });
    return { state: st };
  },
  async terminate(reason, st, self) {
    if (st.terminateMs > 0) await new Promise((r) => setTimeout(r, st.terminateMs));
    self.send(st.to, { terminated: reason, pid: self.pid });
  },
};

/** Every GenServer fixture, by export name. */
export const servers = { counter, deferred, failingInit, reporter };
export type ServerFixture = keyof typeof servers;
export type ServerArgs<K extends ServerFixture> = Parameters<(typeof servers)[K]["init"]>[0];
