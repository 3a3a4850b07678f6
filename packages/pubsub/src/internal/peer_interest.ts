/**
 * What other nodes are interested in (PUBSUB.md 2.3), kept small for 100k topics × N nodes:
 * one map entry per topic, its value a bitset of peer *slots* (a small integer per peer node).
 * Slots 0–29 live in the map value itself (a small integer: no allocation per topic); a cluster
 * of more than 30 peers spills the higher slots into a second map of sets.
 */
const INLINE = 30;

export class PeerInterest {
  private readonly masks = new Map<string, number>();
  private wide: Map<string, Set<number>> | null = null;
  private readonly free: number[] = [];
  private next = 0;

  /** A slot for a new peer. */
  alloc(): number {
    return this.free.length > 0 ? this.free.pop()! : this.next++;
  }

  /** The peer of `slot` is gone: clear its bits and recycle the slot. */
  release(slot: number): void {
    this.clear(slot);
    this.free.push(slot);
  }

  add(slot: number, topic: string): void {
    if (slot < INLINE) this.masks.set(topic, (this.masks.get(topic) ?? 0) | (1 << slot));
    else {
      this.wide ??= new Map();
      let s = this.wide.get(topic);
      if (s === undefined) this.wide.set(topic, (s = new Set()));
      s.add(slot);
    }
  }

  remove(slot: number, topic: string): void {
    if (slot < INLINE) {
      const m = this.masks.get(topic);
      if (m === undefined) return;
      const n = m & ~(1 << slot);
      if (n === 0) this.masks.delete(topic);
      else this.masks.set(topic, n);
    } else {
      const s = this.wide?.get(topic);
      if (s !== undefined && s.delete(slot) && s.size === 0) this.wide!.delete(topic);
    }
  }

  /** The inline mask of `topic` (read once per broadcast, then test slots with `hasIn`). */
  maskOf(topic: string): number {
    return this.masks.get(topic) ?? 0;
  }

  /** Is `slot` interested, given the topic's inline `mask`? */
  hasIn(mask: number, slot: number, topic: string): boolean {
    if (slot < INLINE) return (mask & (1 << slot)) !== 0;
    return this.wide?.get(topic)?.has(slot) ?? false;
  }

  /** Clears every bit of `slot`: O(topics). */
  clear(slot: number): void {
    if (slot < INLINE) {
      const bit = 1 << slot;
      for (const [t, m] of this.masks) {
        if ((m & bit) === 0) continue;
        const n = m & ~bit;
        if (n === 0) this.masks.delete(t);
        else this.masks.set(t, n);
      }
    } else if (this.wide !== null) {
      for (const [t, s] of this.wide) if (s.delete(slot) && s.size === 0) this.wide.delete(t);
    }
  }

  /** Topics `slot` is interested in (counting: O(topics)). */
  countOf(slot: number): number {
    let n = 0;
    if (slot < INLINE) {
      const bit = 1 << slot;
      for (const m of this.masks.values()) if ((m & bit) !== 0) n++;
    } else if (this.wide !== null) for (const s of this.wide.values()) if (s.has(slot)) n++;
    return n;
  }

  /** Topics some peer is interested in. */
  get size(): number {
    if (this.wide === null) return this.masks.size;
    let n = this.masks.size;
    for (const t of this.wide.keys()) if (!this.masks.has(t)) n++;
    return n;
  }
}
