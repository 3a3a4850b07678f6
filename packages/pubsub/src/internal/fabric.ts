/**
 * The seam between the schedulers of one node (PUBSUB.md 2.2): which schedulers have
 * subscribers for a topic, and the one hop a broadcast makes to each of them.
 *
 * **Interest table.** `counts` is an `Int32Array` over a `SharedArrayBuffer`:
 * `counts[slot * size + s]` is the number of topics hashing to `slot` for which scheduler `s`
 * has at least one entry. A table raises its counter (with `Atomics`) *before* `subscribe`
 * returns and lowers it when its last entry for the topic goes, so a broadcast that starts after
 * `subscribe` returned — on any thread — sees the subscriber's scheduler (the visibility rule
 * of 2.2, P28). Two topics sharing a slot cost a wasted hop (counted), never a lost message.
 *
 * **Hops.** A broadcast dispatches the sender's own scheduler's entries synchronously and sends
 * one envelope `{topic, msg, from, dispatcher}` to each *other* scheduler whose counter is
 * non-zero (`forEachSchedulerWithSubscribers`), batched per destination per turn (flushed in a
 * microtask), FIFO per destination. The receiving scheduler dispatches from its own table. The
 * message is cloned once per destination, never per subscriber.
 *
 * **Today** (one scheduler per node, or in-thread schedulers in tests) every table lives on this
 * thread and a hop is a direct call from the flush. **For worker threads** (the seam):
 * 1. create the `SharedArrayBuffer` once per PubSub instance on the main thread and hand it to
 *    every worker with the instance's name, so all threads share one `counts`;
 * 2. each worker builds its own `LocalTable` and calls `raise`/`lower` on the shared `counts`;
 * 3. replace `deliverHop` with a post on the data plane (`Mesh`): one envelope per destination
 *    scheduler, batched with that turn's traffic; the receiver calls `receiveHop` on its table;
 * 4. on a scheduler's death call `schedulerDown(index)` on every thread (zeroes its column).
 * `forEachSchedulerWithSubscribers` itself needs no change: it only reads `counts`.
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
  /** Shared counters, `counts[slot * size + scheduler]` (see the file comment). */
  readonly counts: Int32Array;
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
    this.counts = new Int32Array(buffer ?? new SharedArrayBuffer(size > 1 ? slots * size * 4 : 4));
    this.tables = new Array(size).fill(undefined);
    this.envelopesOut = new Array(size).fill(0);
    this.envelopesIn = new Array(size).fill(0);
    this.wastedHops = new Array(size).fill(0);
    this.outbox = new Array(size).fill(null);
  }

  /** The slot of `topic`. */
  slotOf(topic: string): number {
    return fnv1a(topic) & (this.slots - 1);
  }

  /** Scheduler `s` has its first entry for `topic`: raise its counter (before subscribe returns). */
  raise(s: number, topic: string): void {
    if (this.size > 1) Atomics.add(this.counts, this.slotOf(topic) * this.size + s, 1);
  }

  /** Scheduler `s` lost its last entry for `topic`. */
  lower(s: number, topic: string): void {
    if (this.size > 1) Atomics.sub(this.counts, this.slotOf(topic) * this.size + s, 1);
  }

  /**
   * Calls `fn(index)` for every scheduler other than `except` whose interest counter for the
   * topic's slot is non-zero. O(schedulers); reads shared memory only.
   */
  forEachSchedulerWithSubscribers(topic: string, except: number, fn: (index: number) => void): void {
    const size = this.size;
    if (size <= 1) return;
    const base = this.slotOf(topic) * size;
    const c = this.counts;
    for (let s = 0; s < size; s++) if (s !== except && Atomics.load(c, base + s) > 0) fn(s);
  }

  /** Does any scheduler have subscribers for `topic`? (may say yes for a slot collision) */
  anyWithSubscribers(topic: string): boolean {
    if (this.size <= 1) return this.tables[0]?.has(topic) ?? false;
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

  /** Hands a batch to scheduler `to` (in-thread today; a data-plane post with worker threads). */
  private deliverHop(to: number, batch: HopEnvelope[]): void {
    for (const env of batch) this.receiveHop(to, env);
  }

  /** The receiving side: dispatch from scheduler `to`'s own table. */
  receiveHop(to: number, env: HopEnvelope): void {
    this.envelopesIn[to]!++;
    const t = this.tables[to];
    if (t === undefined || !t.dispatch(env.topic, env.msg, env.from, env.dispatcher)) this.wastedHops[to]!++;
  }

  /** Scheduler `index` died: its table is gone and nothing is sent to it any more. */
  schedulerDown(index: number): void {
    if (index < 0 || index >= this.size) return;
    this.tables[index] = undefined;
    this.outbox[index] = null;
    if (this.size > 1) for (let slot = 0; slot < this.slots; slot++) Atomics.store(this.counts, slot * this.size + index, 0);
  }

  /** Sum of all counters of scheduler `s` (0 when it has no topic). */
  interestOf(s: number): number {
    if (this.size <= 1) return this.tables[0]?.topics.size ?? 0;
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
