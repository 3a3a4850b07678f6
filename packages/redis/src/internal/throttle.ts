import type { TransportLogger } from "@cinder/runtime";

/**
 * Logs the first occurrence of a kind of trouble at once, then at most once per `everyMs`,
 * with the number of occurrences left unlogged in between. A Redis outage retries every few
 * hundred milliseconds and garbage can arrive at line rate: neither may flood the log.
 */
export class ThrottledLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: TransportLogger,
    private readonly everyMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(key: string, message: string, meta?: Record<string, unknown>): void {
    this.log("warn", key, message, meta);
  }

  error(key: string, message: string, meta?: Record<string, unknown>): void {
    this.log("error", key, message, meta);
  }

  private log(level: "warn" | "error", key: string, message: string, meta: Record<string, unknown> | undefined): void {
    const now = this.now();
    const s = this.last.get(key);
    if (s !== undefined && now - s.at < this.everyMs) {
      s.suppressed++;
      return;
    }
    const suffix = s !== undefined && s.suppressed > 0 ? ` (${s.suppressed} more since last report)` : "";
    this.last.set(key, { at: now, suppressed: 0 });
    try {
      this.logger[level](message + suffix, meta);
    } catch {
      // a broken logger must not break the transport
    }
  }
}
