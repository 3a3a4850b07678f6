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
  readonly code: CinderErrorCode;
  readonly reason: unknown;
  constructor(code: CinderErrorCode, message: string, reason?: unknown) {
    super(message);
    this.name = "CinderError";
    this.code = code;
    this.reason = reason ?? code;
  }
}

/** Raised when the target process is dead or a name is not registered. */
export class NoProcError extends CinderError {
  constructor(what: string) {
    super("noproc", `no process: ${what}`);
    this.name = "NoProcError";
  }
}

/** Raised when a call, await or receive passes its deadline. */
export class TimeoutError extends CinderError {
  constructor(what: string, ms: number) {
    super("timeout", `timeout after ${ms} ms: ${what}`);
    this.name = "TimeoutError";
  }
}

/** Raised for invalid arguments (Erlang's `badarg`), e.g. registering a taken name. */
export class BadArgError extends CinderError {
  constructor(message: string) {
    super("badarg", message);
    this.name = "BadArgError";
  }
}

/** A call whose server exited before replying; `reason` is the server's exit reason. */
export class ExitError extends CinderError {
  constructor(what: string, reason: unknown) {
    super(reason === "noconnection" ? "noconnection" : "exit", `${what} exited: ${formatReason(reason)}`, reason);
    this.name = "ExitError";
  }
}

/** Renders an exit reason for log lines and error messages. */
export function formatReason(reason: unknown): string {
  if (reason instanceof Error) return `${reason.name}: ${reason.message}`;
  if (typeof reason === "string") return reason;
  try {
    return JSON.stringify(reason) ?? String(reason);
  } catch {
    return String(reason);
  }
}
