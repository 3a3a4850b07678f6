/** Reconnection delays: exponential from `initialMs`, capped at `maxMs`, plus up to 20 % jitter. */
export interface BackoffOptions {
  /** First delay, ms. Default 50. */
  initialMs?: number;
  /** Largest delay, ms. Default 2000. */
  maxMs?: number;
}

/** An ioredis `retryStrategy` that never gives up. `times` starts at 1. */
export function backoff(opts: BackoffOptions = {}, random: () => number = Math.random): (times: number) => number {
  const initial = opts.initialMs ?? 50;
  const max = opts.maxMs ?? 2000;
  if (!(initial > 0) || !(max >= initial)) throw new RangeError(`backoff needs 0 < initialMs <= maxMs, got ${initial} and ${max}`);
  return (times: number) => {
    const exp = Math.min(max, initial * 2 ** Math.min(30, Math.max(0, times - 1)));
    return Math.round(exp + exp * 0.2 * random());
  };
}
