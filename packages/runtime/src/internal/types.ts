declare const pidBrand: unique symbol;
declare const msgBrand: unique symbol;
declare const monitorBrand: unique symbol;

/**
 * A process identifier: an opaque string `<node.scheduler.serial>`. Immutable, cheap to
 * compare, a valid `Map` key, and unchanged by `structuredClone` and JSON. The node part
 * carries the node's incarnation and the scheduler part the thread's, so a pid is never reused.
 */
export type Pid = string & { readonly [pidBrand]: true };

/**
 * A typed ref: a pid branded with the message type `M` it accepts. Zero cost at run time;
 * `send(ref, msg)` only type-checks when `msg` is an `M`.
 */
export type Ref<M = unknown> = Pid & { readonly [msgBrand]?: (m: M) => void };

/** The message type a ref accepts. */
export type MessageOf<R> = R extends Ref<infer M> ? M : never;

/** A monitor reference, returned by `monitor` and carried by the DOWN message. */
export type MonitorRef = string & { readonly [monitorBrand]: true };

/** Why a process exited. `normal`, `shutdown`, `killed`, `noproc`, `noconnection` or any value. */
export type ExitReason = "normal" | "shutdown" | "kill" | "killed" | "noproc" | "noconnection" | { shutdown: unknown } | Error | unknown;

/** The message a trapping process receives for an exit signal. */
export interface ExitMessage {
  readonly type: "EXIT";
  readonly from: Pid;
  readonly reason: ExitReason;
}

/** The message a watcher receives when a monitored process exits. */
export interface DownMessage {
  readonly type: "DOWN";
  readonly ref: MonitorRef;
  readonly pid: Pid;
  readonly reason: ExitReason;
}

/** The system messages a process may find in its mailbox. */
export type SystemMessage = ExitMessage | DownMessage;

/** A destination: a pid, a registered name, or a `via` name resolved by a registry. */
export type Dest<M = unknown> = Ref<M> | string | Via;

/** A `via` name: `{ via: registry, name: key }`, resolved with `registry.whereisName(key)`. */
export interface Via {
  readonly via: ViaResolver;
  readonly name: unknown;
}

/** What a `via` registry provides (the `Registry` implements it). */
export interface ViaResolver {
  whereisName(name: unknown): Pid | undefined;
  registerName(name: unknown, pid: Pid): boolean;
  unregisterName(name: unknown): void;
}

/** Returned by `receive` when its timeout passes first. */
export const Timeout: unique symbol = Symbol.for("cinder.timeout");
export type Timeout = typeof Timeout;

/** Internal signal envelopes (links, exits, monitors). Structured-clonable. */
export type Signal =
  | { readonly k: "exit"; readonly from: Pid; readonly reason: ExitReason; readonly link: boolean }
  | { readonly k: "link"; readonly from: Pid }
  | { readonly k: "unlink"; readonly from: Pid }
  | { readonly k: "monitor"; readonly from: Pid; readonly ref: MonitorRef }
  | { readonly k: "demonitor"; readonly from: Pid; readonly ref: MonitorRef }
  | { readonly k: "down"; readonly from: Pid; readonly ref: MonitorRef; readonly reason: ExitReason };

/** Is this value a pid string? */
export function isPid(x: unknown): x is Pid {
  return typeof x === "string" && x.charCodeAt(0) === 60 /* < */ && x.charCodeAt(x.length - 1) === 62 /* > */;
}
