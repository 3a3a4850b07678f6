/**
 * One scheduler's subscription table (PUBSUB.md 2.1, 2.6).
 *
 * Layout: `topics: Map<topic, TopicSubs>`; a topic holds its subscriber heads by pid (a single
 * head inline, a `Map<pid, Sub>` from the second pid on); duplicates of one (topic, pid) chain
 * off the head (`dup`). The reverse index `byPid: Map<pid, Sub>` points at the first of the
 * pid's heads, which are chained (`pprev`/`pnext`) across topics.
 *
 * Costs: subscribe O(1) (+ O(duplicates) for a duplicate); unsubscribe O(duplicates of that
 * topic); a subscriber's exit O(its topics): walk its chain, delete one map key per topic — a
 * topic's other entries are never visited (`removalVisits` counts the entries touched, for
 * P36). Nothing here sends a message or waits: `subscribe` and `unsubscribe` are synchronous
 * and touch only this scheduler's table (2.1).
 *
 * Exit: the table registers one `onExit` hook per subscribing process (once per process per
 * table) that removes all its entries when the exit is processed; afterwards no broadcast
 * dispatched here reaches it (P21).
 */
import type { ExitReason, Logger, Pid, Process } from "@cinder/runtime";
import { formatReason } from "@cinder/runtime";
import { dispatcherFor, type DispatchContext, type SubscriberEntry } from "./dispatch.js";
import { DELIVERED, EXIT, makeOverflow, type Overflow, type OverflowPolicy } from "./overflow.js";

type Scheduler = Process<any>["sched"];

/** @internal one subscription entry */
export class Sub implements SubscriberEntry {
  readonly proc: Process<any>;
  readonly topic: string;
  readonly metadata: unknown;
  readonly ov: Overflow | null;
  delivered = 0;
  /** next duplicate of the same (topic, pid) */
  dup: Sub | null = null;
  /** the pid's chain of heads, across topics */
  pprev: Sub | null = null;
  pnext: Sub | null = null;

  constructor(proc: Process<any>, topic: string, metadata: unknown, ov: Overflow | null) {
    this.proc = proc;
    this.topic = topic;
    this.metadata = metadata;
    this.ov = ov;
  }

  /** The subscriber (its process's pid: one field less per entry). */
  get pid(): Pid {
    return this.proc.pid;
  }
}

/** @internal the subscribers of one topic on one scheduler */
export class TopicSubs {
  one: Sub | null = null;
  many: Map<Pid, Sub> | null = null;
  pids = 0;
  entries = 0;
  /** entries flattened for custom dispatchers; dropped on change */
  cache: Sub[] | null = null;
}

/** @internal what a table tells the rest of the node */
export interface TableEvents {
  /** this scheduler's first entry for `topic` */
  gained(index: number, topic: string): void;
  /** this scheduler's last entry for `topic` is gone */
  lost(index: number, topic: string): void;
}

/**
 * The delivery counters every PubSub statistic has (of a topic, a table, an instance):
 * subscriptions (entries), distinct subscriber pids, messages delivered, and what the
 * slow-consumer policies dropped or ended. An exited subscriber's deliveries stay in its
 * table's (and instance's) counters; a topic's count only its live entries.
 */
export interface DeliveryCounters {
  subscriptions: number;
  subscribers: number;
  delivered: number;
  droppedNewest: number;
  droppedOldest: number;
  slowConsumerExits: number;
}

/** The {@link DeliveryCounters} keys, in display order. */
export const DELIVERY_COUNTERS = ["subscriptions", "subscribers", "delivered", "droppedNewest", "droppedOldest", "slowConsumerExits"] as const;

/** Counters of one scheduler's table. */
export interface TableStats extends DeliveryCounters {
  scheduler: number;
  topics: number;
  dispatcherErrors: number;
  /** entries touched while removing exited subscribers (≈ one per subscription removed) */
  removalVisits: number;
}

/** Counters of one topic on one scheduler. */
export interface TopicTableStats extends DeliveryCounters {
  /** highest count of undelivered-and-untaken messages of any bounded entry */
  highWater: number;
}

/** @internal a topic's counters before any entry is counted */
export function emptyTopicStats(): TopicTableStats {
  return { subscriptions: 0, subscribers: 0, delivered: 0, droppedNewest: 0, droppedOldest: 0, slowConsumerExits: 0, highWater: 0 };
}

const NO_TOPIC: never[] = [];

export class LocalTable implements DispatchContext {
  readonly scheduler: number;
  readonly sched: Scheduler;
  readonly topics = new Map<string, TopicSubs>();
  readonly byPid = new Map<Pid, Sub>();
  subscriptions = 0;
  closed = false;
  removalVisits = 0;
  dispatcherErrors = 0;
  /** counters of removed entries */
  private retired = { delivered: 0, droppedNewest: 0, droppedOldest: 0, slowConsumerExits: 0 };
  private kills: Array<[Process<any>, Sub]> | null = null;
  private readonly events: TableEvents;
  private readonly logger: Logger;
  private readonly exitHook = (pid: Pid, _reason: ExitReason): void => this.removePid(pid);

  constructor(sched: Scheduler, events: TableEvents, logger: Logger) {
    this.scheduler = sched.index;
    this.sched = sched;
    this.events = events;
    this.logger = logger;
  }

  // ---- writes --------------------------------------------------------------------------

  /** Adds an entry for `proc` under `topic`. Synchronous; O(1) (+ duplicates). */
  subscribe(proc: Process<any>, topic: string, metadata: unknown, policy: OverflowPolicy | undefined): void {
    const sub = new Sub(proc, topic, metadata === undefined ? null : metadata, makeOverflow(policy));
    const pid = sub.pid;
    let t = this.topics.get(topic);
    let gained = false;
    if (t === undefined) {
      t = new TopicSubs();
      this.topics.set(topic, t);
      gained = true;
    }
    if (t.one !== null) {
      if (t.one.pid === pid) appendDup(t.one, sub);
      else {
        t.many = new Map([
          [t.one.pid, t.one],
          [pid, sub],
        ]);
        t.one = null;
        t.pids = 2;
        this.linkPid(sub);
      }
    } else if (t.many !== null) {
      const head = t.many.get(pid);
      if (head !== undefined) appendDup(head, sub);
      else {
        t.many.set(pid, sub);
        t.pids++;
        this.linkPid(sub);
      }
    } else {
      t.one = sub;
      t.pids = 1;
      this.linkPid(sub);
    }
    t.entries++;
    t.cache = null;
    this.subscriptions++;
    const hooks = proc.exitHooks;
    if (hooks === null || !hooks.includes(this.exitHook)) proc.onExit(this.exitHook);
    if (gained) this.events.gained(this.scheduler, topic);
  }

  /** Removes every entry of `pid` under `topic` (none: nothing happens). */
  unsubscribe(pid: Pid, topic: string): void {
    const t = this.topics.get(topic);
    if (t === undefined) return;
    const head = t.one !== null ? (t.one.pid === pid ? t.one : undefined) : t.many?.get(pid);
    if (head === undefined) return;
    this.unlinkPid(head);
    this.dropHead(t, head);
  }

  /** Removes every entry of `pid` (its exit). O(its topics). */
  removePid(pid: Pid): void {
    let s: Sub | null = this.byPid.get(pid) ?? null;
    if (s === null) return;
    this.byPid.delete(pid);
    while (s !== null) {
      const next: Sub | null = s.pnext;
      s.pprev = s.pnext = null;
      const t = this.topics.get(s.topic);
      this.removalVisits++;
      if (t !== undefined) this.dropHead(t, s);
      s = next;
    }
  }

  private dropHead(t: TopicSubs, head: Sub): void {
    if (t.one === head) t.one = null;
    else t.many!.delete(head.pid);
    t.pids--;
    let n = 0;
    for (let e: Sub | null = head; e !== null; e = e.dup) {
      n++;
      this.retire(e);
    }
    t.entries -= n;
    this.subscriptions -= n;
    t.cache = null;
    if (t.pids === 0) {
      this.topics.delete(head.topic);
      this.events.lost(this.scheduler, head.topic);
    } else if (t.pids === 1 && t.many !== null && t.many.size === 1) {
      // back to the inline form: a topic that shrank keeps no map
      t.one = t.many.values().next().value!;
      t.many = null;
    }
  }

  private retire(e: Sub): void {
    countEntry(this.retired, e);
    e.ov?.release();
  }

  private linkPid(sub: Sub): void {
    const head = this.byPid.get(sub.pid);
    if (head !== undefined) {
      sub.pnext = head;
      head.pprev = sub;
    }
    this.byPid.set(sub.pid, sub);
  }

  private unlinkPid(sub: Sub): void {
    const { pprev, pnext } = sub;
    if (pprev !== null) pprev.pnext = pnext;
    else if (pnext !== null) this.byPid.set(sub.pid, pnext);
    else this.byPid.delete(sub.pid);
    if (pnext !== null) pnext.pprev = pprev;
    sub.pprev = sub.pnext = null;
  }

  // ---- reads -----------------------------------------------------------------------------

  has(topic: string): boolean {
    return this.topics.has(topic);
  }

  /** The entries of `topic` here (duplicates included), in subscription order per pid. */
  entries(topic: string): readonly Sub[] {
    const t = this.topics.get(topic);
    if (t === undefined) return NO_TOPIC;
    return (t.cache ??= flatten(t));
  }

  /** The topics `pid` is subscribed to here. */
  topicsOf(pid: Pid): string[] {
    const out: string[] = [];
    for (let s = this.byPid.get(pid) ?? null; s !== null; s = s.pnext) out.push(s.topic);
    return out;
  }

  // ---- dispatch --------------------------------------------------------------------------

  /**
   * Delivers `msg` to this scheduler's entries of `topic` (skipping `from`), with the default
   * dispatcher or the registered one. Returns false if the topic has no entry here.
   */
  dispatch(topic: string, msg: unknown, from: Pid | null, dispatcher: string | null): boolean {
    const t = this.topics.get(topic);
    if (t === undefined) return false;
    if (dispatcher === null) {
      let n = 0;
      if (t.one !== null) n = this.deliverChain(t.one, msg, from);
      else for (const head of t.many!.values()) n += this.deliverChain(head, msg, from);
      this.sched.messagesIn += n;
    } else {
      const fn = dispatcherFor(dispatcher);
      if (fn === undefined) {
        this.dispatcherErrors++;
        this.logger.error(`pubsub: unknown dispatcher ${JSON.stringify(dispatcher)} on scheduler ${this.scheduler} (topic ${topic}); register it on every node and scheduler`);
      } else {
        try {
          fn((t.cache ??= flatten(t)), from, msg, this);
        } catch (e) {
          this.dispatcherErrors++;
          this.logger.error(`pubsub: dispatcher ${dispatcher} threw on scheduler ${this.scheduler} (topic ${topic}): ${formatReason(e)}`, { dispatcher, topic, error: e });
        }
      }
    }
    if (this.kills !== null) this.runKills();
    return true;
  }

  private deliverChain(head: Sub, msg: unknown, from: Pid | null): number {
    if (head.pid === from) return 0;
    let n = 0;
    for (let e: Sub | null = head; e !== null; e = e.dup) {
      if (e.ov === null) {
        e.delivered++;
        e.proc.enqueue(msg);
        n++;
      } else if (this.offer(e, e.proc, msg)) n++;
    }
    return n;
  }

  private offer(e: Sub, target: Process<any>, msg: unknown): boolean {
    const r = e.ov!.offer(target, msg);
    if (r === DELIVERED) {
      e.delivered++;
      return true;
    }
    if (r === EXIT) (this.kills ??= []).push([target, e]);
    return false;
  }

  /** DispatchContext.send: deliver for `entry` under its policy (custom dispatchers). */
  send(entry: SubscriberEntry, msg: unknown, to?: Pid): void {
    const e = entry as Sub;
    let target: Process<any> | undefined = e.proc;
    if (to !== undefined && to !== e.pid) {
      target = this.sched.procs.get(to);
      if (target === undefined) {
        // another scheduler or node: no policy here
        e.delivered++;
        this.sched.node.send(to, msg);
        return;
      }
    }
    if (e.ov === null) {
      e.delivered++;
      target.enqueue(msg);
    } else this.offer(e, target, msg);
    this.sched.messagesIn++;
  }

  private runKills(): void {
    const kills = this.kills!;
    this.kills = null;
    for (const [p, e] of kills) {
      if (!p.alive) continue;
      this.logger.warn(`pubsub: ${p.pid} is a slow consumer of ${e.topic} (${e.ov!.pending} messages not taken, limit ${e.ov!.n}): exiting with slow_consumer`, { pid: p.pid, topic: e.topic });
      p.sched.terminate(p, "slow_consumer");
    }
  }

  // ---- lifecycle and stats -------------------------------------------------------------

  /**
   * The table dies (its owner exited): every subscriber gets an exit signal from the owner, as
   * Phoenix's subscribers linked to their Registry partition do, and the table empties.
   */
  close(owner: Pid, reason: ExitReason): void {
    if (this.closed) return;
    this.closed = true;
    const pids = [...this.byPid.keys()];
    for (const pid of pids) this.removePid(pid);
    for (const pid of pids) this.sched.signal(pid, { k: "exit", from: owner, reason: reason === "normal" ? "shutdown" : reason, link: false });
  }

  stats(): TableStats {
    const s: TableStats = {
      scheduler: this.scheduler,
      topics: this.topics.size,
      subscriptions: this.subscriptions,
      subscribers: this.byPid.size,
      delivered: this.retired.delivered,
      droppedNewest: this.retired.droppedNewest,
      droppedOldest: this.retired.droppedOldest,
      slowConsumerExits: this.retired.slowConsumerExits,
      dispatcherErrors: this.dispatcherErrors,
      removalVisits: this.removalVisits,
    };
    for (const t of this.topics.values()) {
      const heads = t.one !== null ? [t.one] : t.many!.values();
      for (const h of heads) for (let e: Sub | null = h; e !== null; e = e.dup) countEntry(s, e);
    }
    return s;
  }

  topicStats(topic: string): TopicTableStats {
    const t = this.topics.get(topic);
    const s = emptyTopicStats();
    if (t === undefined) return s;
    s.subscriptions = t.entries;
    s.subscribers = t.pids;
    for (const e of (t.cache ??= flatten(t))) {
      countEntry(s, e);
      if (e.ov !== null && e.ov.highWater > s.highWater) s.highWater = e.ov.highWater;
    }
    return s;
  }
}

/** Adds one entry's deliveries and slow-consumer drops and exits to `s`. */
function countEntry(s: Pick<DeliveryCounters, "delivered" | "droppedNewest" | "droppedOldest" | "slowConsumerExits">, e: Sub): void {
  s.delivered += e.delivered;
  if (e.ov !== null) {
    s.droppedNewest += e.ov.droppedNewest;
    s.droppedOldest += e.ov.droppedOldest;
    s.slowConsumerExits += e.ov.exits;
  }
}

function appendDup(head: Sub, sub: Sub): void {
  let e = head;
  while (e.dup !== null) e = e.dup;
  e.dup = sub;
}

function flatten(t: TopicSubs): Sub[] {
  const out: Sub[] = [];
  const heads = t.one !== null ? [t.one] : t.many!.values();
  for (const h of heads) for (let e: Sub | null = h; e !== null; e = e.dup) out.push(e);
  return out;
}
