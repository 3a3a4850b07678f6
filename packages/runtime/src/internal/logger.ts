/** A pluggable logger; the node's logger receives actor crash reports. */
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
