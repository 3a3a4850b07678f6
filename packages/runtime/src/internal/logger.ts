/**
 * A pluggable logger; the node's logger (`startNode({ logger })`) receives actor crash reports.
 *
 * @example
 * ```ts
 * import { startNode, type Logger } from "@cinder/runtime";
 * const lines: string[] = [];
 * const logger: Logger = { error: (m) => lines.push(m), warn: () => {}, info: () => {} };
 * const node = await startNode({ logger });
 * const me = node.process();
 * me.monitor(node.spawn(() => { throw new Error("boom"); }, { label: "worker" }));
 * await me.receive(); // its DOWN: the crash was reported before
 * console.log(lines.length, lines[0]!.endsWith("(worker) crashed: Error: boom")); // [1, true]
 * await node.stop();
 * ```
 */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
}

/** The default logger: one line per event on stderr; `info` is silent unless CINDER_LOG=info. */
export const consoleLogger: Logger = {
  error: (m, meta) => console.error(`[cinder] ${m}`, ...(meta ? [meta] : [])),
  warn: (m, meta) => console.warn(`[cinder] ${m}`, ...(meta ? [meta] : [])),
  info: (m, meta) => {
    if (process.env.CINDER_LOG === "info") console.info(`[cinder] ${m}`, ...(meta ? [meta] : []));
  },
};

/** A logger that drops everything (tests that provoke crashes on purpose). */
export const silentLogger: Logger = { error() {}, warn() {}, info() {} };
