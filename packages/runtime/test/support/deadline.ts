/**
 * Waiting helpers for the conformance suite: poll with a deadline instead of sleeping, and
 * receive with a deadline instead of hoping a message has arrived.
 */
import { Timeout, type CinderNode, type DownMessage, type ExitReason, type Logger, type Pid, type Process } from "@cinder/runtime";

/** Default deadline: generous for a loaded CI machine, never reached when things work. */
export const DEADLINE_MS = 3000;

/** Polls `cond` until it holds; throws (naming `what`) when `timeoutMs` passes first. */
export async function until(cond: () => boolean | Promise<boolean>, what = "condition", timeoutMs = DEADLINE_MS): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** `p`, or a rejection naming `what` if it has not settled within `timeoutMs` (a hang guard). */
export function within<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** Retries `fn` until it stops throwing (an assertion that becomes true), with a deadline. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = DEADLINE_MS): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (performance.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

/** Takes the first message matching `match` from `p`'s mailbox; throws if none comes in time. */
export async function expectMsg<T = any>(p: Process<any>, match: (m: any) => boolean = () => true, what = "a message", timeoutMs = DEADLINE_MS): Promise<T> {
  const m = await p.receive({ match, timeout: timeoutMs });
  if (m === Timeout) throw new Error(`no ${what} within ${timeoutMs} ms (mailbox: ${safe(p.flush())})`);
  return m as T;
}

/** Asserts that no message matching `match` arrives within `ms` (a short quiet window). */
export async function expectNoMsg(p: Process<any>, match: (m: any) => boolean = () => true, ms = 30, what = "message"): Promise<void> {
  const m = await p.receive({ match, timeout: ms });
  if (m !== Timeout) throw new Error(`unexpected ${what}: ${safe(m)}`);
}

/** A promise of `pid`'s exit reason, observed through a monitor from a helper process. */
export function downOf(node: CinderNode, pid: Pid, timeoutMs = DEADLINE_MS): Promise<ExitReason> {
  const w = node.process();
  const ref = w.monitor(pid);
  return w.receive({ match: (m) => isDown(m) && m.ref === ref, timeout: timeoutMs }).then((m) => {
    w.exit("normal");
    if (m === Timeout) throw new Error(`${pid} did not exit within ${timeoutMs} ms`);
    return (m as DownMessage).reason;
  });
}

/** Asserts that `pid` stays alive for `ms` (a short quiet window watched by a monitor). */
export async function staysAlive(node: CinderNode, pid: Pid, ms = 30): Promise<void> {
  const w = node.process();
  const ref = w.monitor(pid);
  const m = await w.receive({ match: (x) => isDown(x) && x.ref === ref, timeout: ms });
  w.exit("normal");
  if (m !== Timeout) throw new Error(`${pid} exited: ${safe((m as DownMessage).reason)}`);
}

export function isDown(m: unknown): m is DownMessage {
  return typeof m === "object" && m !== null && (m as DownMessage).type === "DOWN";
}

export function isExit(m: unknown, from?: Pid): m is { type: "EXIT"; from: Pid; reason: ExitReason } {
  return typeof m === "object" && m !== null && (m as { type?: unknown }).type === "EXIT" && (from === undefined || (m as { from: Pid }).from === from);
}

/** Resolves after `ms` — only for short, bounded waits that are the point of the test. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A logger that records every line (to assert on crash reports) and prints nothing. */
export function capturingLogger(): Logger & { lines: Array<{ level: string; message: string; meta?: Record<string, unknown> }> } {
  const lines: Array<{ level: string; message: string; meta?: Record<string, unknown> }> = [];
  return {
    lines,
    error: (message, meta) => void lines.push({ level: "error", message, meta }),
    warn: (message, meta) => void lines.push({ level: "warn", message, meta }),
    info: (message, meta) => void lines.push({ level: "info", message, meta }),
  };
}

function safe(x: unknown): string {
  try {
    return JSON.stringify(x, (_k, v) => (v instanceof Error ? `${v.name}: ${v.message}` : v));
  } catch {
    return String(x);
  }
}
