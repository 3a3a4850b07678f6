/**
 * The broadcaster: one GenServer per Presence per node. The tracker's shards hand it every diff
 * they produce (from `handleDiff`, a message on the same thread); it folds them per topic into
 * {@link DiffBatch}es and broadcasts each topic's diff to that topic's subscribers on this node
 * (`PubSub.localBroadcast`: every node's tracker reports the changes it sees, local or remote,
 * to its own subscribers, as Phoenix.Presence does).
 *
 * Batching, per topic: a change to a topic that has been quiet for `batchMs` is flushed at once,
 * that is after the messages already queued (so whatever arrived together goes out together);
 * changes within `batchMs` of a flush wait for the window to close and go out as one diff. A
 * burst of 1,000 joins is thus about `1 + burst duration / batchMs` diffs, while a lone change
 * is not delayed.
 *
 * Order: one topic's diffs come from one shard, in the order it produced them; flushes are
 * handled one at a time, so per topic diffs are broadcast in order, never dropped. With a
 * `fetch` hook the broadcaster awaits it (all topics due together, in parallel); changes
 * arriving meanwhile queue up and fold into the next diff, as Phoenix's pending fetch task does.
 */
import { formatReason, GenServer, type GenServerBehaviour, type Pid, type Process, type TimerRef } from "@cinder/runtime";
import { PubSub, type PubSubRef } from "@cinder/pubsub";
import type { TrackerDiff } from "@cinder/tracker";
import { checkFetched, countMetas, DiffBatch } from "./diff.js";
import type { Instance } from "./registry.js";
import type { PresenceBroadcast, PresenceDiff, PresenceMeta, PresenceState } from "./types.js";

/** @internal what a shard's `handleDiff` sends */
export interface DiffMsg {
  readonly $presence: "diff";
  readonly diff: TrackerDiff;
}

type SelfMsg = { readonly $presence: "flush" } | { readonly $presence: "due"; readonly topic: string };

/** @internal calls */
export type BroadcasterCall = { readonly op: "flush" };

interface State {
  readonly inst: Instance;
  readonly self: Process<any>;
  readonly pubsub: PubSubRef;
  /** topic → the changes not broadcast yet */
  readonly pending: Map<string, DiffBatch>;
  /** topics to flush at the next "flush" message */
  readonly due: Set<string>;
  flushQueued: boolean;
  /** topic → when its last diff went out (only within the last batchMs matters) */
  readonly lastFlush: Map<string, number>;
  /** topic → the timer closing its window */
  readonly timers: Map<string, TimerRef>;
}

/** @internal */
export interface BroadcasterArgs {
  readonly inst: Instance;
  readonly pubsub: PubSubRef | string;
}

const FLUSH: SelfMsg = { $presence: "flush" };

function isMsg(m: unknown): m is DiffMsg | SelfMsg {
  return m !== null && typeof m === "object" && typeof (m as { $presence?: unknown }).$presence === "string";
}

function onDiff(st: State, diff: TrackerDiff): void {
  const c = st.inst.counters;
  c.diffsIn++;
  for (const [topic, d] of diff) {
    let b = st.pending.get(topic);
    if (b === undefined) st.pending.set(topic, (b = new DiffBatch()));
    // within one tracker diff, leaves and joins never share a ref; an update is a leave of the
    // old ref and a join of the new one, reported together, so they land in one broadcast
    for (const l of d.leaves) b.leave(l.key, l.meta as PresenceMeta);
    for (const j of d.joins) b.join(j.key, j.meta as PresenceMeta);
    c.leavesIn += d.leaves.length;
    c.joinsIn += d.joins.length;
    schedule(st, topic);
  }
}

function schedule(st: State, topic: string): void {
  if (st.due.has(topic) || st.timers.has(topic)) return;
  const last = st.lastFlush.get(topic);
  const wait = last === undefined ? 0 : last + st.inst.opts.batchMs - performance.now();
  if (wait <= 0) {
    st.due.add(topic);
    if (!st.flushQueued) {
      st.flushQueued = true;
      st.self.send(st.self.pid, FLUSH);
    }
  } else {
    st.timers.set(topic, st.self.node.sendAfter(st.self.pid, { $presence: "due", topic } satisfies SelfMsg, Math.ceil(wait)));
  }
}

/** Takes the pending diffs of `topics` out and broadcasts them (after `fetch`, if any). */
function flush(st: State, topics: Iterable<string>): void | Promise<void> {
  const out: Array<[string, PresenceDiff]> = [];
  const now = performance.now();
  for (const topic of topics) {
    const b = st.pending.get(topic);
    st.due.delete(topic);
    const timer = st.timers.get(topic);
    if (timer !== undefined) {
      st.self.node.cancelTimer(timer);
      st.timers.delete(topic);
    }
    if (b === undefined) continue;
    st.pending.delete(topic);
    st.lastFlush.set(topic, now);
    out.push([topic, b.toDiff()]);
  }
  prune(st, now);
  if (out.length === 0) return;
  const fetch = st.inst.opts.fetch;
  if (fetch === undefined) {
    for (const [topic, diff] of out) send(st, topic, diff);
    return;
  }
  return Promise.all(out.map(([topic, diff]) => fetchDiff(st, topic, diff))).then((diffs) => {
    for (let i = 0; i < out.length; i++) send(st, out[i]![0], diffs[i]!);
  });
}

/** Forgets flush times older than the window (they no longer delay anything). */
function prune(st: State, now: number): void {
  if (st.lastFlush.size < 1024) return;
  const horizon = now - st.inst.opts.batchMs;
  for (const [topic, t] of st.lastFlush) if (t <= horizon) st.lastFlush.delete(topic);
}

async function fetchDiff(st: State, topic: string, diff: PresenceDiff): Promise<PresenceDiff> {
  const [joins, leaves] = await Promise.all([fetchEntries(st.inst, topic, diff.joins), fetchEntries(st.inst, topic, diff.leaves)]);
  return { joins, leaves };
}

/**
 * Runs the `fetch` hook on non-empty entries. If it throws or breaks the shape, the entries go
 * out as they were (logged, counted): a diff is never dropped, since a lost diff corrupts the
 * clients' views for good.
 * @internal
 */
export async function fetchEntries(inst: Instance, topic: string, entries: PresenceState): Promise<PresenceState> {
  const fetch = inst.opts.fetch;
  const logger = inst.logger;
  if (fetch === undefined) return entries;
  let empty = true;
  for (const _ in entries) {
    empty = false;
    break;
  }
  if (empty) return entries;
  try {
    const { state, bad } = checkFetched(entries, await fetch(topic, entries));
    if (bad > 0) {
      inst.counters.fetchErrors++;
      logger.error(`presence ${inst.name}: fetch on ${JSON.stringify(topic)} dropped or broke ${bad} key(s); they keep their entries unfetched`);
    }
    return state;
  } catch (e) {
    inst.counters.fetchErrors++;
    logger.error(`presence ${inst.name}: fetch on ${JSON.stringify(topic)} threw: ${formatReason(e)}; entries go out unfetched`, { error: e });
    return entries;
  }
}

function send(st: State, topic: string, diff: PresenceDiff): void {
  const inst = st.inst;
  const c = inst.counters;
  c.broadcasts++;
  c.joinsOut += countMetas(diff.joins);
  c.leavesOut += countMetas(diff.leaves);
  let msg: unknown;
  const build = inst.opts.message;
  if (build === undefined) {
    msg = { $presence: "diff", presence: inst.name, topic, event: "presence_diff", payload: diff } satisfies PresenceBroadcast;
  } else {
    try {
      msg = build(topic, diff);
    } catch (e) {
      // the message builder is the app's: a bug there must not kill presence for every topic
      inst.logger.error(`presence ${inst.name}: message builder threw on ${JSON.stringify(topic)}: ${formatReason(e)}; diff not broadcast`, { error: e });
      return;
    }
  }
  PubSub.localBroadcast(st.self, st.pubsub, topic, msg, inst.opts.dispatcher);
}

/** @internal */
export const Broadcaster: GenServerBehaviour<State, BroadcasterCall, "ok", never, unknown, BroadcasterArgs> = {
  name: "Presence.Broadcaster",

  init({ inst, pubsub }, self) {
    const ps = typeof pubsub === "string" ? PubSub.ref(self, pubsub) : pubsub;
    const st: State = {
      inst,
      self,
      pubsub: ps,
      pending: new Map(),
      due: new Set(),
      flushQueued: false,
      lastFlush: new Map(),
      timers: new Map(),
    };
    inst.pubsub = ps;
    inst.broadcaster = self.pid as Pid;
    inst.live = {
      pendingTopics: () => st.pending.size,
      pendingPresences: () => {
        let n = 0;
        for (const b of st.pending.values()) n += b.size;
        return n;
      },
    };
    self.onExit(() => {
      if (inst.broadcaster === self.pid) {
        inst.broadcaster = undefined;
        inst.live = undefined;
      }
      for (const t of st.timers.values()) self.node.cancelTimer(t);
    });
    return st;
  },

  handleInfo(msg, st) {
    if (!isMsg(msg)) return { state: st };
    switch (msg.$presence) {
      case "diff":
        onDiff(st, (msg as DiffMsg).diff);
        return { state: st };
      case "flush": {
        st.flushQueued = false;
        const r = flush(st, [...st.due]);
        return r === undefined ? { state: st } : r.then(() => ({ state: st }));
      }
      case "due": {
        const topic = (msg as { topic: string }).topic;
        st.timers.delete(topic);
        const r = flush(st, [topic]);
        return r === undefined ? { state: st } : r.then(() => ({ state: st }));
      }
      default:
        return { state: st };
    }
  },

  handleCall(_req, _from, st) {
    const r = flush(st, [...st.pending.keys()]);
    return r === undefined ? { reply: "ok", state: st } : r.then(() => ({ reply: "ok" as const, state: st }));
  },
};

/** @internal flushes every pending diff now and resolves once broadcast */
export function flushNow(ctx: Parameters<typeof GenServer.call>[0], pid: Pid, timeout: number): Promise<"ok"> {
  return GenServer.call<BroadcasterCall, "ok">(ctx, pid, { op: "flush" }, timeout);
}
