/**
 * The row store behind a State: every presence (topic, pid, key) → (value, tag), with three
 * indexes kept in step so each read costs O(result):
 *
 * - by topic: topic → key → the entry, or pid → entry when several pids share the key
 *   (getByTopic, getByKey, and the exact triple lookup used by every join and leave);
 * - by pid: pid → an intrusive doubly linked list of its entries (getByPid, leave(pid));
 * - by tag: replica → counter → entry (leaves found from a delta's cloud dots, replica
 *   up/down/purge, extracts).
 *
 * Entries are internal and mutable (an update rewrites one in place); callers outside the
 * State only ever see {@link Row} snapshots.
 */
import type { ReplicaId } from "./replica.js";
import type { Key, Pid, Row, Topic, Value } from "./types.js";

/** Merge bookkeeping carried by an entry during one merge; {@link MARK_NONE} outside merges. */
export type Mark = 0 | 1 | 2 | 3;
/** Not touched by the running merge. */
export const MARK_NONE = 0;
/** Found as a leave by the running merge. */
export const MARK_LEAVING = 1;
/** Inserted by the running merge. */
export const MARK_JOINED = 2;
/** Found as a leave, then overwritten in place by a join of the same triple. */
export const MARK_REJOINED = 3;

/** One stored presence. Internal: never handed out (its `value` and `row` are immutable and are). */
export class Entry {
  /** The presence as carried in payloads (shared with deltas and extracts). */
  value: Value;
  /** The presence with its tag, as returned by reads and reports; replaced, never mutated. */
  row: Row;
  pidPrev: Entry | null = null;
  pidNext: Entry | null = null;
  mark: Mark = MARK_NONE;
  joinIndex = -1;

  constructor(value: Value, row: Row) {
    this.value = value;
    this.row = row;
  }
}

function makeRow(v: Value, replica: ReplicaId, counter: number): Row {
  return { topic: v.topic, pid: v.pid, key: v.key, meta: v.meta, replica, counter };
}

/** Under one key: the single entry, or pid → entry when several pids share the key. */
type KeySlot = Entry | Map<Pid, Entry>;
/** Under one topic: the single entry, or key → slot. Most topics hold one presence. */
type TopicSlot = Entry | Map<Key, KeySlot>;

/** The rows of one State and their three indexes (see the top of this file). */
export class RowStore {
  readonly byTopic = new Map<Topic, TopicSlot>();
  readonly byPid = new Map<Pid, Entry>();
  readonly byTag = new Map<ReplicaId, Map<number, Entry>>();
  size = 0;

  /** The entry of (topic, key, pid), if stored. */
  find(topic: Topic, key: Key, pid: Pid): Entry | undefined {
    const t = this.byTopic.get(topic);
    if (t === undefined) return undefined;
    if (t instanceof Entry) return t.value.key === key && t.value.pid === pid ? t : undefined;
    const slot = t.get(key);
    if (slot === undefined) return undefined;
    if (slot instanceof Entry) return slot.value.pid === pid ? slot : undefined;
    return slot.get(pid);
  }

  /**
   * Stores a new entry.
   * @throws Error when the (topic, pid, key) triple is already stored or the tag is taken.
   */
  insert(value: Value, replica: ReplicaId, counter: number): Entry {
    const e = new Entry(value, makeRow(value, replica, counter));
    this.link(e);
    return e;
  }

  /** Removes an entry from every index. */
  remove(e: Entry): void {
    this.unlinkTopic(e);
    this.tagDelete(e);
    this.unlinkPid(e);
    this.size--;
  }

  /** Rewrites an entry in place with a new value (same triple) and tag; the pid index is untouched. */
  retag(e: Entry, value: Value, replica: ReplicaId, counter: number): void {
    this.tagDelete(e);
    e.value = value;
    e.row = makeRow(value, replica, counter);
    this.tagSet(e);
  }

  /** The first entry of a pid's list (follow `pidNext`). */
  pidHead(pid: Pid): Entry | undefined {
    return this.byPid.get(pid);
  }

  /** Calls `fn` for every entry of the topic. */
  forEachInTopic(topic: Topic, fn: (e: Entry) => void): void {
    const t = this.byTopic.get(topic);
    if (t === undefined) return;
    if (t instanceof Entry) {
      fn(t);
      return;
    }
    for (const slot of t.values()) {
      if (slot instanceof Entry) fn(slot);
      else for (const e of slot.values()) fn(e);
    }
  }

  /** Calls `fn` for every entry of the (topic, key). */
  forEachInKey(topic: Topic, key: Key, fn: (e: Entry) => void): void {
    const t = this.byTopic.get(topic);
    if (t === undefined) return;
    if (t instanceof Entry) {
      if (t.value.key === key) fn(t);
      return;
    }
    const slot = t.get(key);
    if (slot === undefined) return;
    if (slot instanceof Entry) fn(slot);
    else for (const e of slot.values()) fn(e);
  }

  /** The entries of one replica by counter (do not mutate). */
  ofReplica(replica: ReplicaId): ReadonlyMap<number, Entry> | undefined {
    return this.byTag.get(replica);
  }

  /** Deletes every entry of a replica. */
  removeReplica(replica: ReplicaId): void {
    const tags = this.byTag.get(replica);
    if (tags === undefined) return;
    if (tags.size * 2 > this.size) {
      // Most rows go: rebuild from the survivors instead of unlinking each victim.
      const keep: Entry[] = [];
      for (const [r, m] of this.byTag) {
        if (r !== replica) for (const e of m.values()) keep.push(e);
      }
      this.byTopic.clear();
      this.byPid.clear();
      this.byTag.clear();
      this.size = 0;
      for (const e of keep) {
        e.pidPrev = null;
        e.pidNext = null;
        this.link(e);
      }
      return;
    }
    for (const e of tags.values()) {
      this.unlinkTopic(e);
      this.unlinkPid(e);
    }
    this.size -= tags.size;
    this.byTag.delete(replica);
  }

  /** Every entry, in no particular order. */
  *entries(): IterableIterator<Entry> {
    for (const m of this.byTag.values()) yield* m.values();
  }

  /**
   * Checks that the three indexes describe the same rows; returns the problems found (empty when
   * consistent). O(rows): for tests and debugging.
   */
  verify(): string[] {
    const problems: string[] = [];
    const all = new Set<Entry>();
    for (const [r, m] of this.byTag) {
      if (m.size === 0) problems.push(`empty tag map for ${r}`);
      for (const [n, e] of m) {
        if (e.row.replica !== r || e.row.counter !== n) problems.push(`tag index ${r}/${n} holds ${e.row.replica}/${e.row.counter}`);
        const v = e.value;
        if (e.row.topic !== v.topic || e.row.pid !== v.pid || e.row.key !== v.key || e.row.meta !== v.meta) problems.push(`row and value of ${r}/${n} disagree`);
        if (e.mark !== MARK_NONE) problems.push(`entry ${r}/${n} left marked ${e.mark}`);
        all.add(e);
      }
    }
    if (all.size !== this.size) problems.push(`size ${this.size} but ${all.size} tagged entries`);
    let viaTopic = 0;
    const check = (topic: Topic, key: Key, e: Entry) => {
      viaTopic++;
      if (e.value.topic !== topic || e.value.key !== key) problems.push(`topic index ${topic}/${key} holds ${e.value.topic}/${e.value.key}`);
      if (!all.has(e)) problems.push(`topic index holds an untagged entry ${topic}/${key}/${e.value.pid}`);
    };
    for (const [topic, t] of this.byTopic) {
      if (t instanceof Entry) {
        check(topic, t.value.key, t);
        continue;
      }
      if (t.size === 0) problems.push(`empty topic map ${topic}`);
      if (t.size === 1 && t.values().next().value instanceof Entry) problems.push(`topic map of ${topic} holds a single entry`);
      for (const [key, slot] of t) {
        if (slot instanceof Entry) check(topic, key, slot);
        else {
          if (slot.size < 2) problems.push(`pid map of ${topic}/${key} has ${slot.size} entries`);
          for (const e of slot.values()) check(topic, key, e);
        }
      }
    }
    if (viaTopic !== this.size) problems.push(`topic index has ${viaTopic} entries, size ${this.size}`);
    let viaPid = 0;
    for (const [pid, head] of this.byPid) {
      if (head.pidPrev !== null) problems.push(`pid head of ${pid} has a predecessor`);
      for (let e: Entry | null = head; e !== null; e = e.pidNext) {
        viaPid++;
        if (e.value.pid !== pid) problems.push(`pid list ${pid} holds ${e.value.pid}`);
        if (e.pidNext !== null && e.pidNext.pidPrev !== e) problems.push(`broken pid list for ${pid}`);
        if (!all.has(e)) problems.push(`pid index holds an untagged entry of ${pid}`);
        if (viaPid > this.size + 1) break;
      }
    }
    if (viaPid !== this.size) problems.push(`pid index has ${viaPid} entries, size ${this.size}`);
    return problems;
  }

  private link(e: Entry): void {
    const { topic, key, pid } = e.value;
    if (this.byTag.get(e.row.replica)?.has(e.row.counter)) throw new Error(`tracker state: tag ${e.row.replica}/${e.row.counter} already stored`);
    const t = this.byTopic.get(topic);
    if (t === undefined) {
      this.byTopic.set(topic, e);
    } else if (t instanceof Entry) {
      const other = t.value;
      if (other.key !== key) {
        this.byTopic.set(topic, pair<Key, KeySlot>(other.key, t, key, e));
      } else if (other.pid !== pid) {
        const keys = new Map<Key, KeySlot>();
        keys.set(key, pair<Pid, Entry>(other.pid, t, pid, e));
        this.byTopic.set(topic, keys);
      } else {
        throw duplicate(e.value);
      }
    } else {
      const slot = t.get(key);
      if (slot === undefined) {
        t.set(key, e);
      } else if (slot instanceof Entry) {
        if (slot.value.pid === pid) throw duplicate(e.value);
        t.set(key, pair<Pid, Entry>(slot.value.pid, slot, pid, e));
      } else {
        if (slot.has(pid)) throw duplicate(e.value);
        slot.set(pid, e);
      }
    }
    this.tagSet(e);
    const head = this.byPid.get(pid);
    if (head !== undefined) {
      e.pidNext = head;
      head.pidPrev = e;
    }
    this.byPid.set(pid, e);
    this.size++;
  }

  private unlinkTopic(e: Entry): void {
    const { topic, key, pid } = e.value;
    const t = this.byTopic.get(topic)!;
    if (t instanceof Entry) {
      this.byTopic.delete(topic);
      return;
    }
    const slot = t.get(key)!;
    if (slot instanceof Entry) {
      t.delete(key);
    } else {
      slot.delete(pid);
      if (slot.size === 1) t.set(key, slot.values().next().value!);
    }
    if (t.size === 0) {
      this.byTopic.delete(topic);
    } else if (t.size === 1) {
      const only = t.values().next().value!;
      if (only instanceof Entry) this.byTopic.set(topic, only);
    }
  }

  private tagSet(e: Entry): void {
    let m = this.byTag.get(e.row.replica);
    if (m === undefined) {
      m = new Map();
      this.byTag.set(e.row.replica, m);
    }
    m.set(e.row.counter, e);
  }

  private tagDelete(e: Entry): void {
    const m = this.byTag.get(e.row.replica)!;
    m.delete(e.row.counter);
    if (m.size === 0) this.byTag.delete(e.row.replica);
  }

  private unlinkPid(e: Entry): void {
    const { pidPrev, pidNext } = e;
    if (pidPrev === null) {
      if (pidNext === null) this.byPid.delete(e.value.pid);
      else this.byPid.set(e.value.pid, pidNext);
    } else {
      pidPrev.pidNext = pidNext;
    }
    if (pidNext !== null) pidNext.pidPrev = pidPrev;
    e.pidPrev = null;
    e.pidNext = null;
  }
}

function pair<K, V>(k1: K, v1: V, k2: K, v2: V): Map<K, V> {
  const m = new Map<K, V>();
  m.set(k1, v1);
  m.set(k2, v2);
  return m;
}

function duplicate(v: Value): Error {
  return new Error(`tracker state: presence already stored: topic ${JSON.stringify(v.topic)}, pid ${JSON.stringify(v.pid)}, key ${JSON.stringify(v.key)}`);
}
