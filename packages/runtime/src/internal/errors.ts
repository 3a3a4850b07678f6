/** Error codes a Cinder API can reject or throw with. */
export type CinderErrorCode =
  | "noproc"
  | "timeout"
  | "badarg"
  | "already_started"
  | "already_registered"
  | "max_children"
  | "not_found"
  | "running"
  | "restarting"
  | "init_failed"
  | "exit"
  | "noconnection"
  | "shutdown"
  // @cinder/tracker
  | "already_tracked"
  | "nopresence"
  | "conflict";

/**
 * The base class of every typed error Cinder throws or rejects with. `code` says what went
 * wrong in the terms an Erlang user knows (`noproc`, `timeout`, `badarg`, …).
 *
 * @example
 * ```ts
 * import { startNode, GenServer, CinderError } from "@cinder/runtime";
 * const node = await startNode();
 * try { await GenServer.call(node, "no_such_server", "ping"); }
 * catch (e) { if (e instanceof CinderError) console.log(e.code); } // "noproc"
 * await node.stop();
 * ```
 */
export class CinderError extends Error {
  /** What went wrong, in Erlang's terms. */
  readonly code: CinderErrorCode;
  /** The underlying reason (an exit reason, the owner's pid…); `code` when there is none. */
  readonly reason: unknown;
  constructor(code: CinderErrorCode, message: string, reason?: unknown) {
    super(message);
    this.name = "CinderError";
    this.code = code;
    this.reason = reason ?? code;
  }
}

/**
 * Raised when the target process is dead or a name is not registered.
 *
 * @example
 * ```ts
 * import { startNode, GenServer, NoProcError } from "@cinder/runtime";
 * const node = await startNode();
 * const server = await GenServer.start(node, { init: () => null }, undefined);
 * await GenServer.stop(node, server);
 * const e = await GenServer.call(node, server, "ping").catch((e: unknown) => e);
 * console.log(e instanceof NoProcError, (e as NoProcError).code); // [true, "noproc"]
 * await node.stop();
 * ```
 */
export class NoProcError extends CinderError {
  constructor(what: string) {
    super("noproc", `no process: ${what}`);
    this.name = "NoProcError";
  }
}

/**
 * Raised when a call, await or receive passes its deadline.
 *
 * @example
 * ```ts
 * import { startNode, GenServer, TimeoutError } from "@cinder/runtime";
 * const node = await startNode();
 * // never replies: handleCall returns no `reply`
 * await GenServer.start(node, { init: () => null, handleCall: (_r: string, _f, s) => ({ state: s }) }, undefined, { name: "mute" });
 * const e = await GenServer.call(node, "mute", "ping", 20).catch((e: unknown) => e);
 * console.log(e instanceof TimeoutError, (e as Error).message); // [true, "timeout after 20 ms: call to mute"]
 * await node.stop();
 * ```
 */
export class TimeoutError extends CinderError {
  constructor(what: string, ms: number) {
    super("timeout", `timeout after ${ms} ms: ${what}`);
    this.name = "TimeoutError";
  }
}

/**
 * Raised for invalid arguments (Erlang's `badarg`), e.g. registering a taken name or sending
 * to a name nobody holds.
 *
 * @example
 * ```ts
 * import { startNode, BadArgError } from "@cinder/runtime";
 * const node = await startNode();
 * node.process().register("taken");
 * try { node.process().register("taken"); } catch (e) { console.log(e instanceof BadArgError); } // true
 * try { node.send("nobody", "hi"); } catch (e) { console.log((e as BadArgError).code); } // "badarg"
 * await node.stop();
 * ```
 */
export class BadArgError extends CinderError {
  constructor(message: string) {
    super("badarg", message);
    this.name = "BadArgError";
  }
}

/**
 * A call whose server exited before replying; `reason` is the server's exit reason (`code` is
 * `noconnection` when its node went away, else `exit`).
 *
 * @example
 * ```ts
 * import { startNode, silentLogger, GenServer, ExitError } from "@cinder/runtime";
 * const node = await startNode({ logger: silentLogger });
 * const fragile = await GenServer.start(node, { init: () => null, handleCall: (): never => { throw new Error("boom"); } }, undefined);
 * const e = await GenServer.call(node, fragile, "ping").catch((e: unknown) => e);
 * console.log(e instanceof ExitError, (e as ExitError).code, (e as ExitError).reason); // [true, "exit", Error: boom]
 * await node.stop();
 * ```
 */
export class ExitError extends CinderError {
  constructor(what: string, reason: unknown) {
    super(reason === "noconnection" ? "noconnection" : "exit", `${what} exited: ${formatReason(reason)}`, reason);
    this.name = "ExitError";
  }
}

/**
 * Renders an exit reason for log lines and error messages: an error as `Name: message`, a
 * string as itself, anything else as JSON.
 *
 * @example
 * ```ts
 * import { formatReason } from "@cinder/runtime";
 * console.log(formatReason(new TypeError("bad"))); // "TypeError: bad"
 * console.log(formatReason("shutdown")); // "shutdown"
 * console.log(formatReason({ shutdown: "bye" })); // {"shutdown":"bye"}
 * ```
 */
export function formatReason(reason: unknown): string {
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  if (typeof reason === "string") return reason;
  try {
    return JSON.stringify(reason) ?? String(reason);
  } catch {
    return String(reason);
  }
}
