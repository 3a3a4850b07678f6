/**
 * Write coalescing: frames written to a connection are corked and go out together, so a burst
 * costs one `writev` system call per socket instead of one per frame (on loopback each write is
 * 10–20 µs, most of a plain `ws` server's CPU: shared/anchors/peers.md).
 *
 * - `windowMs` 0 (the default), driven by the queue: a socket actor uncorks as soon as its
 *   mailbox is empty, so the frames that were queued for it go out in one write and a lone frame
 *   is not delayed at all; the coalescer only flushes, at the end of the event-loop turn, sockets
 *   whose actor stopped with frames still queued (its budget ran out).
 * - `windowMs` > 0, held: frames wait for the endpoint-wide flush, which runs at the end of the
 *   turn after a quiet spell of `windowMs`, and at most every `windowMs` while writes keep coming
 *   (fewer, larger writes under load; up to `windowMs` more latency).
 */
import type { Duplex } from "node:stream";

/** What the coalescer flushes: a connection with corked frames. */
export interface Corked {
  /** Uncorks (writes what is queued); a no-op if it was uncorked meanwhile. */
  uncork(): void;
}

export class WriteCoalescer {
  private pending: Corked[] = [];
  private scheduled = false;
  private last = -Infinity;
  /** Endpoint-wide flushes so far, and sockets they uncorked. */
  flushes = 0;
  uncorks = 0;

  constructor(readonly windowMs: number) {}

  /** Frames are held until the endpoint-wide flush (else each socket uncorks when its queue is empty). */
  get holds(): boolean {
    return this.windowMs > 0;
  }

  /** Registers a connection that has just corked its socket. */
  add(c: Corked): void {
    this.pending.push(c);
    if (this.scheduled) return;
    this.scheduled = true;
    const wait = this.last + this.windowMs - performance.now();
    if (wait <= 0) process.nextTick(this.flush);
    else setTimeout(this.flush, wait);
  }

  /** Writes every corked socket now. */
  readonly flush = (): void => {
    this.scheduled = false;
    this.last = performance.now();
    const list = this.pending;
    this.pending = [];
    this.flushes++;
    this.uncorks += list.length;
    for (const c of list) c.uncork();
  };
}

/** The TCP socket under a `ws` WebSocket (its `_socket`), if it has one. */
export function rawSocket(ws: unknown): Duplex | undefined {
  const s = (ws as { _socket?: Duplex })._socket;
  return s !== undefined && s !== null && typeof s.cork === "function" ? s : undefined;
}
