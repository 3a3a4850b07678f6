/**
 * The node's topic interest (PUBSUB.md 2.3): which topics have at least one subscriber on some
 * scheduler of this node, and the changes of that set, batched per turn, for the cluster adapter
 * to announce.
 *
 * With one scheduler the set is the table's own topic map (nothing is copied); with several,
 * a bitmask of the schedulers that have the topic (up to 30 schedulers; beyond, one topic set
 * per scheduler), so a dead scheduler's topics can be withdrawn without its table. Tables on
 * worker threads report their gained/lost topics to the main thread as thread-service
 * messages (batched per turn by the data plane), which calls `gained`/`lost` here.
 */
import type { LocalTable } from "./local_table.js";

export type InterestListener = (added: string[], removed: string[]) => void;

export class NodeInterest {
  /** topic → bitmask of the schedulers with subscribers (2–30 schedulers), or the number of them (more) */
  private readonly counts: Map<string, number> | null;
  /** more than 30 schedulers: the topics of each scheduler */
  private readonly perSched: Array<Set<string>> | null;
  private readonly single: () => LocalTable | undefined;
  /** topic → true (gained) / false (lost), since the last flush */
  private pending = new Map<string, boolean>();
  private armed = false;
  private readonly listeners = new Set<InterestListener>();

  constructor(schedulers: number, single: () => LocalTable | undefined) {
    this.counts = schedulers > 1 ? new Map() : null;
    this.perSched = schedulers > 30 ? Array.from({ length: schedulers }, () => new Set<string>()) : null;
    this.single = single;
  }

  /** Scheduler `s` has its first subscriber for `topic`. */
  gained(topic: string, s = 0): void {
    const per = this.perSched;
    if (per !== null) {
      const mine = per[s];
      if (mine === undefined || mine.has(topic)) return;
      mine.add(topic);
      const n = this.counts!.get(topic) ?? 0;
      this.counts!.set(topic, n + 1);
      if (n !== 0) return;
    } else if (this.counts !== null) {
      const m = this.counts.get(topic) ?? 0;
      this.counts.set(topic, m | (1 << s));
      if (m !== 0) return;
    }
    this.change(topic, true);
  }

  /** Scheduler `s` lost its last subscriber for `topic`. */
  lost(topic: string, s = 0): void {
    const per = this.perSched;
    if (per !== null) {
      if (per[s]?.delete(topic) !== true) return;
      const n = this.counts!.get(topic)! - 1;
      if (n > 0) {
        this.counts!.set(topic, n);
        return;
      }
      this.counts!.delete(topic);
    } else if (this.counts !== null) {
      const m = (this.counts.get(topic) ?? 0) & ~(1 << s);
      if (m !== 0) {
        this.counts.set(topic, m);
        return;
      }
      if (!this.counts.delete(topic)) return;
    }
    this.change(topic, false);
  }

  /** Scheduler `s` died: its topics are withdrawn (O(topics of the node)). */
  schedulerDown(s: number): void {
    if (this.counts === null) return;
    if (this.perSched !== null) {
      for (const topic of [...(this.perSched[s] ?? [])]) this.lost(topic, s);
      return;
    }
    for (const topic of [...this.counts.keys()]) if ((this.counts.get(topic)! & (1 << s)) !== 0) this.lost(topic, s);
  }

  /** Topics with subscribers on this node. */
  topics(): IterableIterator<string> {
    if (this.counts !== null) return this.counts.keys();
    const t = this.single();
    return t === undefined ? [].values() : t.topics.keys();
  }

  get size(): number {
    return this.counts !== null ? this.counts.size : (this.single()?.topics.size ?? 0);
  }

  /** Changes not yet announced. */
  get pendingChanges(): number {
    return this.pending.size;
  }

  listen(fn: InterestListener): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  private change(topic: string, add: boolean): void {
    if (this.listeners.size === 0) return;
    const prev = this.pending.get(topic);
    if (prev === !add) this.pending.delete(topic); // gained and lost within one turn: peers never knew
    else this.pending.set(topic, add);
    if (!this.armed) {
      this.armed = true;
      setImmediate(this.flush);
    }
  }

  /** Announces the pending changes now (also runs once per turn by itself). */
  readonly flush = (): void => {
    this.armed = false;
    if (this.pending.size === 0) return;
    const added: string[] = [];
    const removed: string[] = [];
    for (const [t, add] of this.pending) (add ? added : removed).push(t);
    this.pending = new Map();
    for (const fn of this.listeners) fn(added, removed);
  };
}
