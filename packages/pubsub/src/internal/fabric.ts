/**
 * The seam between the schedulers of one node (PUBSUB.md 2.2): which schedulers have
 * subscribers for a topic, and the one hop a broadcast makes to each of them.
 *
 * **Interest table.** `counts` is an `Int32Array` over a `SharedArrayBuffer` that every scheduler
 * thread of the node maps (the main thread creates it per generation of tables and hands it to
 * the worker threads' parts, internal/thread_part.ts):
 * - `counts[slot * size + s]`: the number of topics hashing to `slot` for which scheduler `s`
 *   has at least one entry;
 * - `counts[slots * size + s]`: the number of topics scheduler `s` has (its row total);
 * - `counts[slots * size + size]`: the sum of the row totals.
 * A table raises its counters (with `Atomics`) *before* `subscribe` returns and lowers them when
 * its last entry for the topic goes, so a broadcast that starts after `subscribe` returned — on
 * any thread — sees the subscriber's scheduler (the visibility rule of 2.2, P28). Two topics
 * sharing a slot cost a wasted hop (counted), never a lost message. The totals let a broadcast
 * skip hashing the topic when no other scheduler has any topic (two loads).
 *
 * **Hops.** A broadcast dispatches the sender's own scheduler's entries synchronously and sends
 * one envelope `{topic, msg, from, dispatcher}` to each *other* scheduler whose counter is
 * non-zero (`forEachSchedulerWithSubscribers`). The receiving scheduler dispatches from its own
 * table (`receive`). Two transports:
 * - a scheduler on another thread: a thread-service message (`Instance.hops`), which the data
 *   plane batches per destination per turn, in order with the sender's other messages (FIFO per
 *   sender and subscriber, P23), cloned once per destination by `postMessage`;
 * - a scheduler on this thread (tests add in-thread schedulers): `hop`, batched here per
 *   destination per turn and flushed in a microtask; `cloneHops` clones as a thread would.
 *
 * **Scheduler death.** The main thread zeroes the dead scheduler's column (`schedulerDown`)
 * before the thread restarts, so nothing is sent to it any more; the restarted thread starts
 * from an empty row.
 */
import type { Pid } from "@cinder/runtime";
import { fnv1a } from "./hash.js";
import type { LocalTable } from "./local_table.js";

/** @internal what crosses to another scheduler */
export interface HopEnvelope {
  readonly topic: string;
  readonly msg: unknown;
  readonly from: Pid | null;
  readonly dispatcher: string | null;
}

/** Counters of the hops between schedulers. */
export interface FabricStats {
  schedulers: number;
  /** envelopes sent to each scheduler */
  envelopesOut: number[];
  /** envelopes each scheduler received */
  envelopesIn: number[];
  /** envelopes that found no entry at the destination (slot collision or a race with an exit) */
  wastedHops: number[];
  /** hops not sent because the message could not be cloned */
  cloneFailures: number;
}

export class SchedulerFabric {
  /** Number of scheduler indices covered (max index + 1). */
  readonly size: number;
  readonly slots: number;
  /** Shared counters (see the file comment). */
  readonly counts: Int32Array;
  /** Index of scheduler 0's row total in `counts`; the grand total is at `totals + size`. */
  private readonly totals: number;
  /** The tables of this thread by scheduler index. */
  readonly tables: Array<LocalTable | undefined>;
  /** Clone messages per destination (always across threads; in-thread only when asked, for tests). */
  cloneHops = false;
  readonly envelopesOut: number[];
  readonly envelopesIn: number[];
  readonly wastedHops: number[];
  cloneFailures = 0;
  private readonly outbox: Array<HopEnvelope[] | null>;
  private armed = false;

  constructor(size: number, slots: number, buffer?: SharedArrayBuffer) {
    this.size = size;
    this.slots = slots;
    this.counts = new Int32Array(buffer ?? SchedulerFabric.buffer(size, slots));
    this.totals = slots * size;
    this.tables = new Array(size).fill(undefined);
    this.envelopesOut = new Array(size).fill(0);
    this.envelopesIn = new Array(size).fill(0);
    this.wastedHops = new Array(size).fill(0);
    this.outbox = new Array(size).fill(null);
  }

  /** A zeroed shared buffer for `size` schedulers and `slots` slots. */
  static buffer(size: number, slots: number): SharedArrayBuffer {
    return new SharedArrayBuffer(size > 1 ? (slots * size + size + 1) * 4 : 4);
  }

  /** The slot of `topic`. */
  slotOf(topic: string): number {
    return fnv1a(topic) & (this.slots - 1);
  }

  /** Scheduler `s` has its first entry for `topic`: raise its counter (before subscribe returns). */
  raise(s: number, topic: string): void {
    if (this.size <= 1) return;
    const c = this.counts;
    Atomics.add(c, this.slotOf(topic) * this.size + s, 1);
    Atomics.add(c, this.totals + s, 1);
    Atomics.add(c, this.totals + this.size, 1);
  }

  /** Scheduler `s` lost its last entry for `topic`. */
  lower(s: number, topic: string): void {
    if (this.size <= 1) return;
    const c = this.counts;
    Atomics.sub(c, this.totals + this.size, 1);
    Atomics.sub(c, this.totals + s, 1);
    Atomics.sub(c, this.slotOf(topic) * this.size + s, 1);
  }

  /** Has any scheduler other than `except` a topic at all? (two loads, no hashing) */
  othersHaveTopics(except: number): boolean {
    const c = this.counts;
    return Atomics.load(c, this.totals + this.size) - Atomics.load(c, this.totals + except) > 0;
  }

  /**
   * Calls `fn(index)` for every scheduler other than `except` whose interest counter for the
   * topic's slot is non-zero. O(schedulers); reads shared memory only.
   */
  forEachSchedulerWithSubscribers(topic: string, except: number, fn: (index: number) => void): void {
    const size = this.size;
    if (size <= 1 || !this.othersHaveTopics(except)) return;
    const base = this.slotOf(topic) * size;
    const c = this.counts;
    for (let s = 0; s < size; s++) if (s !== except && Atomics.load(c, base + s) > 0) fn(s);
  }

  /** Does any scheduler have subscribers for `topic`? (may say yes for a slot collision) */
  anyWithSubscribers(topic: string): boolean {
    if (this.size <= 1) return this.tables[0]?.has(topic) ?? false;
    if (Atomics.load(this.counts, this.totals + this.size) === 0) return false;
    const base = this.slotOf(topic) * this.size;
    for (let s = 0; s < this.size; s++) if (Atomics.load(this.counts, base + s) > 0) return true;
    return false;
  }

  /**
   * Queues one envelope for scheduler `to` (cloning the message when required). Returns false
   * if the message cannot be cloned: nothing is queued.
   */
  hop(to: number, env: HopEnvelope): boolean {
    let e = env;
    if (this.cloneHops) {
      try {
        e = { topic: env.topic, msg: structuredClone(env.msg), from: env.from, dispatcher: env.dispatcher };
      } catch {
        this.cloneFailures++;
        return false;
      }
    }
    (this.outbox[to] ??= []).push(e);
    this.envelopesOut[to]!++;
    if (!this.armed) {
      this.armed = true;
      queueMicrotask(this.flush);
    }
    return true;
  }

  private readonly flush = (): void => {
    this.armed = false;
    for (let to = 0; to < this.size; to++) {
      const batch = this.outbox[to];
      if (batch === null || batch === undefined) continue;
      this.outbox[to] = null;
      this.deliverHop(to, batch);
    }
  };

  /** Hands a batch to in-thread scheduler `to` (schedulers on other threads get thread-service messages instead: `Instance.hops`). */
  private deliverHop(to: number, batch: HopEnvelope[]): void {
    for (const env of batch) this.receiveHop(to, env);
  }

  /** The receiving side: dispatch from scheduler `to`'s own table. */
  receiveHop(to: number, env: HopEnvelope): void {
    this.receive(to, env.topic, env.msg, env.from, env.dispatcher);
  }

  /** The receiving side, unpacked: dispatch from scheduler `to`'s own table. */
  receive(to: number, topic: string, msg: unknown, from: Pid | null, dispatcher: string | null): void {
    this.envelopesIn[to]!++;
    const t = this.tables[to];
    if (t === undefined || !t.dispatch(topic, msg, from, dispatcher)) this.wastedHops[to]!++;
  }

  /**
   * Scheduler `index` died: its in-thread table (if any) is gone and nothing is sent to it any
   * more. `zero`: clear its column of the shared counters (done once, by the main thread,
   * before the scheduler's thread restarts).
   */
  schedulerDown(index: number, zero = true): void {
    if (index < 0 || index >= this.size) return;
    this.tables[index] = undefined;
    this.outbox[index] = null;
    if (this.size <= 1 || !zero) return;
    const c = this.counts;
    for (let slot = 0; slot < this.slots; slot++) Atomics.store(c, slot * this.size + index, 0);
    Atomics.sub(c, this.totals + this.size, Atomics.exchange(c, this.totals + index, 0));
  }

  /** Number of topics scheduler `s` has (from the shared counters). */
  interestOf(s: number): number {
    if (this.size <= 1) return this.tables[0]?.topics.size ?? 0;
    if (s < 0 || s >= this.size) return 0;
    return Atomics.load(this.counts, this.totals + s);
  }

  /** Sum of the slot counters of scheduler `s` (equals `interestOf(s)` when consistent; tests). */
  slotSum(s: number): number {
    if (this.size <= 1) return this.interestOf(s);
    let n = 0;
    for (let slot = 0; slot < this.slots; slot++) n += Atomics.load(this.counts, slot * this.size + s);
    return n;
  }

  stats(): FabricStats {
    return {
      schedulers: this.size,
      envelopesOut: [...this.envelopesOut],
      envelopesIn: [...this.envelopesIn],
      wastedHops: [...this.wastedHops],
      cloneFailures: this.cloneFailures,
    };
  }
}
