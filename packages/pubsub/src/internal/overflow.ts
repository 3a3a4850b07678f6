/**
 * Slow-consumer policies of a subscription (PUBSUB.md 2.5).
 *
 * A bounded subscription limits the messages delivered through it that the receiving process
 * has not yet taken from its mailbox. The check runs at delivery, on the receiver's scheduler,
 * in O(1) (amortized), and never blocks or fails the broadcaster:
 *
 * - `dropNewest(n)`: with n pending, a new message is not delivered (counted);
 * - `dropOldest(n)`: with n pending, the oldest pending one is taken out of the mailbox (counted)
 *   and the new one delivered — the receiver keeps the latest n;
 * - `exit(n)`: with n pending, the receiver exits with reason `slow_consumer` (counted), like a
 *   server closing a slow socket.
 *
 * How "pending" is known without a hook in the mailbox: each message we deliver gets a
 * *position* (its arrival rank among the messages of that mailbox that were never evicted), and
 * the mailbox tells how many messages the process has taken so far,
 * `taken = received − queued − evicted` (evicted: messages this module took out). With FIFO
 * consumption (handlers, GenServers, `receive()` without `match`) a message is pending iff its
 * position is above `taken`: exact. A selective `receive({ match })` that takes messages out of
 * order makes the count follow the mailbox's total consumption instead (an estimate that can be
 * off by the number of out-of-order takes still pending); eviction then finds the message by
 * identity, and a message already taken is simply forgotten.
 *
 * Evictions shift the positions of later messages of the same mailbox: one per-policy `bias`
 * covers the policy that evicted (all its other pending messages are later), other bounded
 * policies feeding the same mailbox are adjusted entry by entry (rare: several bounded
 * subscriptions on one process).
 */
import { BadArgError, type Process } from "@cinder/runtime";

/**
 * A subscription's overflow policy. `"unbounded"` (default) is Phoenix's behaviour.
 *
 * @example
 * ```ts
 * import type { OverflowPolicy } from "@cinder/pubsub";
 * const keepLatest: OverflowPolicy = { dropOldest: 100 };
 * console.log(Object.keys(keepLatest)); // ["dropOldest"]
 * ```
 */
export type OverflowPolicy = "unbounded" | { readonly dropNewest: number } | { readonly dropOldest: number } | { readonly exit: number };

/** @internal what `offer` did */
export const DELIVERED = 0;
/** @internal */
export const DROPPED = 1;
/** @internal the receiver must exit with `slow_consumer` */
export const EXIT = 2;

const K_DROP_NEWEST = 1;
const K_DROP_OLDEST = 2;
const K_EXIT = 3;

/** The mailbox internals this module reads (fields of the runtime's Process). */
interface Mailbox {
  mailbox: unknown[] | null;
  head: number;
  received: number;
  waiter: { scanned: number } | null;
}

/** Per receiving process: messages evicted from its mailbox, and the policies feeding it. */
class Track {
  evicted = 0;
  readonly overflows = new Set<Overflow>();
}
const tracks = new WeakMap<Process<any>, Track>();

/** @internal parses a policy; null for unbounded */
export function makeOverflow(policy: OverflowPolicy | undefined): Overflow | null {
  if (policy === undefined || policy === "unbounded") return null;
  if (policy !== null && typeof policy === "object") {
    const keys = Object.keys(policy);
    if (keys.length === 1) {
      const k = keys[0]!;
      const n = (policy as Record<string, unknown>)[k];
      if (typeof n === "number" && Number.isInteger(n) && n >= 1) {
        if (k === "dropNewest") return new Overflow(K_DROP_NEWEST, n);
        if (k === "dropOldest") return new Overflow(K_DROP_OLDEST, n);
        if (k === "exit") return new Overflow(K_EXIT, n);
      }
    }
  }
  throw new BadArgError(`invalid overflow policy ${JSON.stringify(policy)}: use "unbounded", { dropNewest: n }, { dropOldest: n } or { exit: n } with n ≥ 1`);
}

/** @internal the state of one bounded subscription */
export class Overflow {
  readonly kind: number;
  readonly n: number;
  private target: Process<any> | null = null;
  private track: Track | null = null;
  /** pending positions (+ bias), ascending, from `head` */
  private pos: number[] = [];
  /** the pending messages, parallel to `pos` (dropOldest only) */
  private msgs: unknown[] | null;
  private head = 0;
  private bias = 0;
  droppedNewest = 0;
  droppedOldest = 0;
  exits = 0;
  highWater = 0;

  constructor(kind: number, n: number) {
    this.kind = kind;
    this.n = n;
    this.msgs = kind === K_DROP_OLDEST ? [] : null;
  }

  /** The policy, as given. */
  get policy(): OverflowPolicy {
    return this.kind === K_DROP_NEWEST ? { dropNewest: this.n } : this.kind === K_DROP_OLDEST ? { dropOldest: this.n } : { exit: this.n };
  }

  /** Messages delivered through this subscription and not yet taken (as of the last delivery). */
  get pending(): number {
    return this.pos.length - this.head;
  }

  /** Delivers `msg` to `p` under the policy: DELIVERED, DROPPED or EXIT. */
  offer(p: Process<any>, msg: unknown): number {
    const mb = p as unknown as Mailbox;
    const box = mb.mailbox;
    if (box === null) return DROPPED; // dead: its exit is being processed
    if (p !== this.target) this.retarget(p);
    const track = this.track!;
    const taken = mb.received - (box.length - mb.head) - track.evicted;
    const pos = this.pos;
    while (this.head < pos.length && pos[this.head]! - this.bias <= taken) this.popFront();
    if (this.pending >= this.n) {
      if (this.kind === K_DROP_NEWEST) {
        this.droppedNewest++;
        return DROPPED;
      }
      if (this.kind === K_EXIT) {
        this.exits++;
        return EXIT;
      }
      if (this.evictFront(mb, taken)) this.droppedOldest++;
    }
    p.enqueue(msg);
    pos.push(mb.received - track.evicted + this.bias);
    this.msgs?.push(msg);
    const pending = this.pending;
    if (pending > this.highWater) this.highWater = pending;
    return DELIVERED;
  }

  /** Forgets the receiver (the subscription is gone). */
  release(): void {
    this.track?.overflows.delete(this);
    this.track = null;
    this.target = null;
    this.pos = [];
    if (this.msgs !== null) this.msgs = [];
    this.head = 0;
    this.bias = 0;
  }

  private retarget(p: Process<any>): void {
    this.release();
    this.target = p;
    let t = tracks.get(p);
    if (t === undefined) tracks.set(p, (t = new Track()));
    t.overflows.add(this);
    this.track = t;
  }

  private popFront(): void {
    const h = this.head++;
    if (this.msgs !== null) this.msgs[h] = undefined;
    if (this.head === this.pos.length) {
      this.pos.length = 0;
      if (this.msgs !== null) this.msgs.length = 0;
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.pos.length) {
      this.pos.splice(0, this.head);
      this.msgs?.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Takes our oldest pending message out of the mailbox; false if it was already taken. */
  private evictFront(mb: Mailbox, taken: number): boolean {
    const eff = this.pos[this.head]! - this.bias;
    const msg = this.msgs![this.head];
    this.popFront();
    const box = mb.mailbox!;
    let idx = mb.head + (eff - taken - 1);
    let exact = true;
    if (!(idx >= mb.head && idx < box.length && box[idx] === msg)) {
      exact = false;
      idx = -1;
      for (let i = mb.head; i < box.length; i++) {
        if (box[i] === msg) {
          idx = i;
          break;
        }
      }
      if (idx < 0) return false; // taken out of order by a selective receive
    }
    box.splice(idx, 1);
    const w = mb.waiter;
    if (w !== null && idx < w.scanned) w.scanned--;
    const track = this.track!;
    track.evicted++;
    const removed = exact ? eff : taken + 1 + (idx - mb.head);
    // every later message of this mailbox moved up one place
    if (exact) this.bias++;
    else this.shiftAfter(removed);
    for (const o of track.overflows) if (o !== this) o.shiftAfter(removed);
    return true;
  }

  private shiftAfter(removed: number): void {
    for (let i = this.head; i < this.pos.length; i++) if (this.pos[i]! - this.bias > removed) this.pos[i]!--;
  }
}
