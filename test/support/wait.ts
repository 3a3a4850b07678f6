/**
 * Waiting without fixed sleeps: poll a condition until it holds or a deadline passes.
 *
 * @example
 * ```ts
 * await waitFor(() => a.members().includes("b"), { timeoutMs: 2000, what: "a sees b up" });
 * const frame = await waitFor(() => received.find((f) => f.seq === 10));
 * ```
 */
export interface WaitOptions {
  /** Give up after this long, ms. Default 5000. */
  timeoutMs?: number;
  /** Poll period, ms. Default 5. */
  intervalMs?: number;
  /** Says what was awaited in the timeout error. */
  what?: string;
}

/**
 * Resolves with the first truthy value returned by `check` (which may be async); rejects with
 * an error naming `what` at the deadline. Errors thrown by `check` are retried until then and
 * reported at the end.
 */
export async function waitFor<T>(check: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const intervalMs = opts.intervalMs ?? 5;
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() >= deadline) {
      const why = lastError === undefined ? "" : ` (last error: ${lastError instanceof Error ? lastError.message : String(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? "condition"}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Asserts that `good` stays truthy for `forMs` (checked every 5 ms). Used for "nothing more
 * happens" checks, e.g. no second `down` event.
 */
export async function holdsFor(good: () => boolean, forMs: number, what = "condition"): Promise<void> {
  const end = performance.now() + forMs;
  while (performance.now() < end) {
    if (!good()) throw new Error(`${what} stopped holding`);
    await new Promise((r) => setTimeout(r, 5));
  }
  if (!good()) throw new Error(`${what} stopped holding`);
}

/** Resolves after `ms`. Only for letting time pass on purpose (e.g. past a timeout), never to "wait enough". */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
