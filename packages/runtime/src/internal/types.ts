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

/**
 * The message a trapping process receives for an exit signal (a linked process's exit
 * included). Without `trapExit`, an abnormal exit signal kills the receiver instead.
 *
 * @example
 * ```ts
 * import { startNode, silentLogger, type ExitMessage } from "@cinder/runtime";
 * const node = await startNode({ logger: silentLogger });
 * const me = node.process();
 * me.trapExit();
 * const child = me.spawnLink(() => { throw new Error("boom"); });
 * const m = (await me.receive()) as ExitMessage;
 * console.log(m.type, m.from === child, m.reason); // ["EXIT", true, Error: boom]
 * console.log(me.alive); // true: trapped, not killed
 * await node.stop();
 * ```
 */
export interface ExitMessage {
  readonly type: "EXIT";
  readonly from: Pid;
  readonly reason: ExitReason;
}

/**
 * The message a watcher receives when a monitored process exits (`noproc` if it was already
 * dead). A monitor is one way and never kills the watcher.
 *
 * @example
 * ```ts
 * import { startNode, type DownMessage } from "@cinder/runtime";
 * const node = await startNode();
 * const me = node.process();
 * const worker = node.spawn(async (self) => { await self.receive(); }); // ends after one message
 * const ref = me.monitor(worker);
 * node.send(worker, "go");
 * const down = (await me.receive()) as DownMessage;
 * console.log(down.type, down.ref === ref, down.reason); // ["DOWN", true, "normal"]
 * await node.stop();
 * ```
 */
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

/**
 * Returned by `receive` when its timeout passes first (the mailbox is left as it was).
 *
 * @example
 * ```ts
 * import { startNode, Timeout } from "@cinder/runtime";
 * const node = await startNode();
 * const me = node.process();
 * console.log((await me.receive({ timeout: 10 })) === Timeout); // true
 * me.send(me.pid, "hi");
 * console.log(await me.receive({ timeout: 10 })); // "hi"
 * await node.stop();
 * ```
 */
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

/**
 * Is this value a pid string? (A cheap shape test: `<…>`; it does not say the process lives.)
 *
 * @example
 * ```ts
 * import { startNode, isPid } from "@cinder/runtime";
 * const node = await startNode();
 * console.log(isPid(node.process().pid), isPid("worker"), isPid(42)); // [true, false, false]
 * await node.stop();
 * ```
 */
export function isPid(x: unknown): x is Pid {
  return typeof x === "string" && x.charCodeAt(0) === 60 /* < */ && x.charCodeAt(x.length - 1) === 62 /* > */;
}
