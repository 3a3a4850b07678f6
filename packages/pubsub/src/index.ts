/**
 * @cinder/pubsub — Phoenix.PubSub for Cinder: topic subscriptions per scheduler, broadcasts that
 * hop once per scheduler and once per node that has subscribers, explicit slow-consumer
 * policies, and O(its topics) cleanup of an exiting subscriber. See PUBSUB.md for the contract.
 *
 * @example
 * ```ts
 * import { startNode, type Process } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * const node = await startNode({ schedulers: 1 });
 * const ps = await PubSub.start(node, { name: "doc_chat" });
 * const me = node.process();
 * PubSub.subscribe(me, ps, "room:1");
 * PubSub.broadcast(node, ps, "room:1", { text: "hi" });
 * console.log(await me.receive()); // {"text":"hi"}
 * await node.stop();
 * ```
 */
import { BadArgError, NoProcError, Process, Supervisor, type ChildSpec, type Context, type Pid, type SupervisorRef } from "@cinder/runtime";
import type { AdapterStats } from "./internal/adapter.js";
import { checkDispatcher, registerDispatcher, type SubscriberEntry } from "./internal/dispatch.js";
import { BroadcastError } from "./internal/errors.js";
import type { FabricStats } from "./internal/fabric.js";
import { fnv1a } from "./internal/hash.js";
import { findInstance, instanceFor, type Instance, type NodeCore } from "./internal/instance.js";
import { DELIVERY_COUNTERS, emptyTopicStats, type DeliveryCounters, type TableStats, type TopicTableStats } from "./internal/local_table.js";
import { resolveOptions, type PubSubOptions } from "./internal/options.js";
import type { OverflowPolicy } from "./internal/overflow.js";
import { treeOptions } from "./internal/tree.js";
import type { ThreadPartStats } from "./internal/thread_part.js";

export { BroadcastError, PubSubOptionError, type BroadcastFailure } from "./internal/errors.js";
export { registerDispatcher, type Dispatcher, type DispatchContext, type SubscriberEntry } from "./internal/dispatch.js";
export { localAdapter, type Adapter, type AdapterContext, type AdapterFactory, type AdapterStats } from "./internal/adapter.js";
export { clusterAdapter, type ClusterAdapterOptions, type ClusterAdapterStats } from "./internal/cluster_adapter.js";
export type { OverflowPolicy } from "./internal/overflow.js";
export type { PubSubOptions } from "./internal/options.js";
export type { DeliveryCounters, TableStats, TopicTableStats } from "./internal/local_table.js";
export type { FabricStats } from "./internal/fabric.js";
/** @internal the thread init of the worker parts (internal/thread.ts loads it by package name) */
export { threadInit as __threadInit } from "./internal/thread_part.js";

/**
 * A handle on a PubSub instance of one node. It stays valid across restarts of the instance's
 * supervision tree. Get one from `PubSub.start` or, for an instance started by a child spec,
 * `PubSub.ref(ctx, name)`. API functions also accept the instance's name (resolved on the
 * context's node).
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * const node = await startNode({ schedulers: 1 });
 * await node.startChild(PubSub.childSpec({ name: "doc_ref" }));
 * console.log(PubSub.ref(node, "doc_ref").name); // "doc_ref"
 * await node.stop();
 * ```
 */
export class PubSubRef {
  /** The instance's name (unique on its node). */
  readonly name: string;
  /** @internal */
  readonly inst: Instance;
  /** @internal */
  constructor(inst: Instance) {
    this.inst = inst;
    this.name = inst.name;
  }
  /** The node the instance runs on. */
  get node(): NodeCore {
    return this.inst.core;
  }
}

/** Options of `subscribe`. Unknown keys are ignored. */
export interface SubscribeOptions {
  /** Given to dispatchers with the entry (default null). */
  metadata?: unknown;
  /** Slow-consumer policy of this subscription (default `"unbounded"`). */
  overflow?: OverflowPolicy;
  [other: string]: unknown;
}

/** What `broadcast` and friends return: `"ok"`, or what could not be reached. */
export type BroadcastResult = "ok" | BroadcastError;

/**
 * The counters of a PubSub instance on this node (PUBSUB.md 2.8).
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * const node = await startNode({ schedulers: 1 });
 * const ps = await PubSub.start(node, { name: "doc_stats" });
 * const a = node.process(), b = node.process();
 * PubSub.subscribe(a, ps, "t");
 * PubSub.subscribe(a, ps, "u");
 * PubSub.subscribe(b, ps, "t");
 * PubSub.broadcast(node, ps, "t", "hi");
 * const { topics, subscriptions, subscribers, delivered } = PubSub.stats(ps);
 * console.log({ topics, subscriptions, subscribers, delivered }); // { topics: 2, subscriptions: 3, subscribers: 2, delivered: 2 }
 * a.exit("normal"); // an exiting subscriber's entries go with it (its deliveries stay counted)
 * console.log(PubSub.stats(ps).subscriptions, PubSub.stats(ps).delivered); // [1, 2]
 * console.log(PubSub.topicStats(ps, "t")); // { subscriptions: 1, subscribers: 1, delivered: 1, droppedNewest: 0, droppedOldest: 0, slowConsumerExits: 0, highWater: 0 }
 * await node.stop();
 * ```
 */
export interface PubSubStats extends DeliveryCounters {
  name: string;
  node: string;
  poolSize: number;
  broadcastPoolSize: number;
  running: { tables: boolean; adapter: boolean };
  /** topics with a subscriber on some scheduler of this node */
  topics: number;
  dispatcherErrors: number;
  /** entries touched while removing exited subscribers (≈ one per subscription removed) */
  removalVisits: number;
  /** one row per scheduler, with its interest counters' sum */
  schedulers: Array<TableStats & { interest: number }>;
  fabric: FabricStats | null;
  /** the node's interest set kept for the cluster adapter (null without interest routing) */
  interest: { topics: number; pending: number } | null;
  /** receive lanes (1-based), their queues and drops */
  lanes: Array<{ lane: number; pid: Pid; queue: number; frames: number; dropped: number }>;
  laneDrops: number;
  adapter: AdapterStats | null;
  /**
   * Traffic between this thread's part and the other scheduler threads' parts: thread-service
   * messages sent and received (hops, interest reports, control; not stats requests), and
   * broadcasts for other nodes handed to (worker) or taken from (main thread) another thread.
   */
  threads: { messagesOut: number; messagesIn: number; forwardsOut: number; forwardsIn: number; forwardErrors: number };
}

/** `PubSub.nodeStats`: the counters of every scheduler thread of the node. */
export interface PubSubNodeStats extends PubSubStats {
  /** per worker thread: its thread-service traffic (`threads` of its part) */
  workers: Array<{ scheduler: number; messagesOut: number; messagesIn: number; forwardsOut: number }>;
}

type PubSubName = PubSubRef | string;

function coreOf(ctx: Context): NodeCore {
  return ctx instanceof Process ? ctx.node : (ctx as NodeCore);
}

function resolve(ctx: Context | null, pubsub: PubSubName): Instance {
  if (pubsub instanceof PubSubRef) return pubsub.inst;
  if (typeof pubsub === "string" && ctx !== null) {
    const inst = findInstance(coreOf(ctx), pubsub);
    if (inst !== undefined) return inst;
    throw new NoProcError(`PubSub ${pubsub}`);
  }
  throw new BadArgError(`not a PubSub: ${String(pubsub)}`);
}

function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== "string") throw new BadArgError(`topic must be a string, got ${typeof topic}`);
}

function schedOf(ctx: Context): number {
  return ctx instanceof Process ? ctx.sched.index : (ctx as NodeCore).main.index;
}

function laneOf(ctx: Context, inst: Instance): number {
  return ctx instanceof Process ? fnv1a(ctx.pid) % inst.opts.broadcastPoolSize : 0;
}

/** What `stats` adds up over the scheduler rows, in display order. */
const SUMMED = [...DELIVERY_COUNTERS, "dispatcherErrors", "removalVisits"] as const;

function sumRows(rows: readonly TableStats[]): Pick<TableStats, (typeof SUMMED)[number]> {
  const s = {} as Pick<TableStats, (typeof SUMMED)[number]>;
  for (const k of SUMMED) s[k] = rows.reduce((n, r) => n + r[k], 0);
  return s;
}

function result(e: BroadcastError | null): BroadcastResult {
  return e === null ? "ok" : e;
}

function orThrow(r: BroadcastResult): "ok" {
  if (r !== "ok") throw r;
  return r;
}

function remote(inst: Instance, send: (a: NonNullable<Instance["adapter"]>) => BroadcastError | null, topic: string): BroadcastError | null {
  const a = inst.adapter;
  if (a !== null) return send(a);
  if (inst.opts.adapter === undefined) return null; // a node on its own
  return notRunning(inst, topic);
}

function publish(ctx: Context, pubsub: PubSubName, topic: string, msg: unknown, dispatcher: string | undefined, from: Pid | null, toOthers: boolean): BroadcastResult {
  const inst = resolve(ctx, pubsub);
  checkTopic(topic);
  const d = dispatcher === undefined ? null : checkDispatcher(dispatcher);
  let err: BroadcastError | null = null;
  let forwardLane = -1;
  if (toOthers && inst.opts.adapter !== undefined) {
    if (inst.forward) forwardLane = laneOf(ctx, inst); // a worker thread: through the main thread, with the hops
    else {
      const a = inst.adapter;
      err = a !== null ? a.broadcast(topic, msg, d, laneOf(ctx, inst)) : notRunning(inst, topic);
    }
  }
  const local = inst.dispatchLocal(schedOf(ctx), topic, msg, from, d, forwardLane);
  return err === null && local === null ? "ok" : (BroadcastError.merge(err, local) as BroadcastError);
}

function notRunning(inst: Instance, topic: string): BroadcastError {
  return new BroadcastError("transport", `PubSub ${inst.name}: the adapter is not running (restarting): ${topic} not sent to other nodes`, {});
}

function direct(ctx: Context, pubsub: PubSubName, node: string, topic: string, msg: unknown, dispatcher: string | undefined): BroadcastResult {
  const inst = resolve(ctx, pubsub);
  checkTopic(topic);
  if (typeof node !== "string") throw new BadArgError(`node must be a string, got ${typeof node}`);
  const d = checkDispatcher(dispatcher);
  if (node === inst.nodeName()) return result(inst.dispatchLocal(schedOf(ctx), topic, msg, null, d));
  return result(remote(inst, (a) => a.directBroadcast(node, topic, msg, d, laneOf(ctx, inst)), topic));
}

/**
 * The PubSub API. Every call is synchronous except `start`, `stop` and `synced`.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * const node = await startNode({ schedulers: 1 });
 * const ps = await PubSub.start(node, { name: "doc_api" });
 * const a = node.process(), b = node.process();
 * PubSub.subscribe(a, ps, "t");
 * PubSub.subscribe(b, ps, "t", { metadata: { role: "b" } });
 * PubSub.broadcastFrom(a, ps, a.pid, "t", "from a");
 * console.log(await b.receive()); // "from a"
 * console.log(PubSub.subscribers(ps, "t").map((e) => e.metadata)); // [null,{"role":"b"}]
 * await node.stop();
 * ```
 */
export const PubSub = {
  /**
   * Starts an instance (its supervision tree, not linked to the caller) and resolves with its
   * handle. Call it on the main thread: on a node with worker scheduler threads it installs the
   * instance's part on each of them (now and whenever a thread starts or restarts), and resolves
   * once every running thread has its table. Rejects with `PubSubOptionError` for a missing
   * `name` or a bad option, and with `AlreadyStartedError` if the name is taken on this node.
   */
  async start(ctx: Context, opts: PubSubOptions): Promise<PubSubRef> {
    const o = resolveOptions(opts);
    const inst = instanceFor(coreOf(ctx), o);
    await Supervisor.start(ctx, treeOptions(inst), { name: o.name });
    return new PubSubRef(inst);
  },

  /**
   * A child spec that starts the instance's tree under a supervisor (id = the name). Throws
   * `PubSubOptionError` at once for bad options.
   */
  childSpec(opts: PubSubOptions, extra?: Partial<ChildSpec>): ChildSpec {
    const o = resolveOptions(opts);
    return {
      id: o.name,
      type: "supervisor",
      shutdown: "infinity",
      start: (sup) => Supervisor.startLink(sup, treeOptions(instanceFor(sup.node, o)), { name: o.name }),
      ...extra,
    };
  },

  /** The handle of the instance named `name` on the context's node; `NoProcError` if none was started. */
  ref(ctx: Context, name: string): PubSubRef {
    return new PubSubRef(resolve(ctx, name));
  },

  /** Stops the instance's tree (subscribers get its exit signal, as in Phoenix). */
  async stop(ctx: Context, pubsub: PubSubName): Promise<void> {
    const inst = resolve(ctx, pubsub);
    await Supervisor.stop(ctx, inst.name as unknown as SupervisorRef, "shutdown");
  },

  /**
   * Subscribes the calling process `self` to `topic`, in the table of its own scheduler (on
   * whichever thread it runs). Synchronous: no message, no await; the entry is visible to every
   * broadcast of this node, from any scheduler, that starts after the call. Subscribing twice
   * makes two entries (two deliveries). Returns "ok". On a worker thread name the instance by
   * its name (`PubSub.subscribe(self, "chat", topic)`).
   */
  subscribe(self: Process<any>, pubsub: PubSubName, topic: string, opts?: SubscribeOptions): "ok" {
    if (!(self instanceof Process)) throw new BadArgError("subscribe: self must be the calling process");
    const inst = resolve(self, pubsub);
    checkTopic(topic);
    if (!self.alive) return "ok";
    inst.tableOf(self).subscribe(self, topic, opts?.metadata, opts?.overflow);
    return "ok";
  },

  /**
   * Removes every entry of `self` under `topic`; "ok" also when there was none.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * const node = await startNode({ schedulers: 1 });
   * const ps = await PubSub.start(node, { name: "doc_unsub" });
   * const me = node.process();
   * PubSub.subscribe(me, ps, "news");
   * PubSub.subscribe(me, ps, "news"); // a second entry: two deliveries
   * PubSub.subscribe(me, ps, "sport");
   * PubSub.unsubscribe(me, ps, "news"); // both entries go
   * console.log(PubSub.topicsOf(ps, me.pid)); // ["sport"]
   * PubSub.broadcast(node, ps, "news", "missed");
   * PubSub.broadcast(node, ps, "sport", "goal");
   * console.log(me.flush()); // ["goal"]
   * await node.stop();
   * ```
   */
  unsubscribe(self: Process<any>, pubsub: PubSubName, topic: string): "ok" {
    if (!(self instanceof Process)) throw new BadArgError("unsubscribe: self must be the calling process");
    const inst = resolve(self, pubsub);
    checkTopic(topic);
    inst.gen?.fabric.tables[self.sched.index]?.unsubscribe(self.pid, topic);
    return "ok";
  },

  /**
   * Sends `msg` to every subscriber of `topic` on every node: other nodes through the adapter
   * (only those with subscribers), then this node (the caller's scheduler at once, one hop per
   * other scheduler with subscribers). Returns "ok", or a `BroadcastError` naming what could not
   * be reached (local delivery still happened). From a worker thread, the part for other nodes
   * goes through the main thread's adapter: the result reports what the worker can see at once
   * (a message that cannot be cloned, the adapter not running); a transport or encode error on
   * the main thread is counted (`stats(ps).threads.forwardErrors` there) and logged.
   */
  broadcast(ctx: Context, pubsub: PubSubName, topic: string, msg: unknown, dispatcher?: string): BroadcastResult {
    return publish(ctx, pubsub, topic, msg, dispatcher, null, true);
  },

  /** `broadcast`, throwing the `BroadcastError` (Phoenix's `broadcast!`). */
  broadcastOrThrow(ctx: Context, pubsub: PubSubName, topic: string, msg: unknown, dispatcher?: string): "ok" {
    return orThrow(publish(ctx, pubsub, topic, msg, dispatcher, null, true));
  },

  /** `broadcast` that skips `fromPid` on this node (remote nodes dispatch with `from` = none). */
  broadcastFrom(ctx: Context, pubsub: PubSubName, fromPid: Pid, topic: string, msg: unknown, dispatcher?: string): BroadcastResult {
    return publish(ctx, pubsub, topic, msg, dispatcher, fromPid, true);
  },

  /** `broadcastFrom`, throwing the `BroadcastError`. */
  broadcastFromOrThrow(ctx: Context, pubsub: PubSubName, fromPid: Pid, topic: string, msg: unknown, dispatcher?: string): "ok" {
    return orThrow(publish(ctx, pubsub, topic, msg, dispatcher, fromPid, true));
  },

  /** Broadcast on this node only. */
  localBroadcast(ctx: Context, pubsub: PubSubName, topic: string, msg: unknown, dispatcher?: string): "ok" {
    publish(ctx, pubsub, topic, msg, dispatcher, null, false);
    return "ok";
  },

  /** Broadcast on this node only, skipping `fromPid`. */
  localBroadcastFrom(ctx: Context, pubsub: PubSubName, fromPid: Pid, topic: string, msg: unknown, dispatcher?: string): "ok" {
    publish(ctx, pubsub, topic, msg, dispatcher, fromPid, false);
    return "ok";
  },

  /**
   * Broadcast to the subscribers on node `nodeName` only (which may be this node: dispatched
   * at once). Ignores interest routing. An unknown node: "ok", nothing delivered.
   */
  directBroadcast(ctx: Context, pubsub: PubSubName, nodeName: string, topic: string, msg: unknown, dispatcher?: string): BroadcastResult {
    return direct(ctx, pubsub, nodeName, topic, msg, dispatcher);
  },

  /** `directBroadcast`, throwing the `BroadcastError`. */
  directBroadcastOrThrow(ctx: Context, pubsub: PubSubName, nodeName: string, topic: string, msg: unknown, dispatcher?: string): "ok" {
    return orThrow(direct(ctx, pubsub, nodeName, topic, msg, dispatcher));
  },

  /** This node's name as the adapter knows it (unique in the cluster). */
  nodeName(pubsub: PubSubRef): string {
    return resolve(null, pubsub).nodeName();
  },

  /**
   * The entries of `topic` in the tables of the calling thread (on the main thread: its own
   * scheduler's), as `{ pid, metadata }`. Worker threads' tables: `nodeStats` counts them.
   */
  subscribers(pubsub: PubSubRef, topic: string): SubscriberEntry[] {
    const inst = resolve(null, pubsub);
    const out: SubscriberEntry[] = [];
    for (const t of inst.tables()) for (const e of t.entries(topic)) out.push({ pid: e.pid, metadata: e.metadata });
    return out;
  },

  /** The topics `pid` is subscribed to (a pid's entries live on its own scheduler's table: ask on its thread). */
  topicsOf(pubsub: PubSubRef, pid: Pid): string[] {
    const out: string[] = [];
    for (const t of resolve(null, pubsub).tables()) out.push(...t.topicsOf(pid));
    return out;
  },

  /** Counters of one topic in the tables of the calling thread. */
  topicStats(pubsub: PubSubRef, topic: string): TopicTableStats {
    const s = emptyTopicStats();
    for (const t of resolve(null, pubsub).tables()) {
      const x = t.topicStats(topic);
      for (const k of DELIVERY_COUNTERS) s[k] += x[k];
      s.highWater = Math.max(s.highWater, x.highWater);
    }
    return s;
  },

  /**
   * Counters of the instance as the calling thread sees them: its own table(s), the node-wide
   * hop and interest counters it keeps, the adapter (main thread). `nodeStats` adds every
   * worker thread's table.
   */
  stats(pubsub: PubSubRef): PubSubStats {
    const inst = resolve(null, pubsub);
    const gen = inst.gen;
    const rows = inst.tables().map((t) => ({ ...t.stats(), interest: gen?.fabric.interestOf(t.scheduler) ?? 0 }));
    const topics = rows.length <= 1 ? (rows[0]?.topics ?? 0) : new Set(inst.tables().flatMap((t) => [...t.topics.keys()])).size;
    const lanes = inst.lanes.map((l) => ({ lane: l.index + 1, pid: l.proc.pid as Pid, queue: l.proc.mailboxLength, frames: l.frames, dropped: l.dropped }));
    return {
      name: inst.name,
      node: inst.nodeName(),
      poolSize: inst.opts.poolSize,
      broadcastPoolSize: inst.opts.broadcastPoolSize,
      running: { tables: gen !== null, adapter: inst.adapter !== null },
      topics,
      ...sumRows(rows),
      schedulers: rows,
      fabric: gen?.fabric.stats() ?? null,
      interest: gen?.interest ? { topics: gen.interest.size, pending: gen.interest.pendingChanges } : null,
      lanes,
      laneDrops: lanes.reduce((n, l) => n + l.dropped, 0) + inst.laneless,
      adapter: inst.adapter?.stats() ?? null,
      threads: { messagesOut: inst.threadMsgsOut, messagesIn: inst.threadMsgsIn, forwardsOut: inst.forwardsOut, forwardsIn: inst.forwardsIn, forwardErrors: inst.forwardErrors },
    };
  },

  /**
   * Counters of the instance on every scheduler thread of the node: `stats` of the main thread,
   * with the table rows, topics and hop counters of the worker threads' parts merged in (they
   * are asked with one thread-service message each; a thread that does not answer within
   * `timeoutMs` is left out). Without worker threads, the same as `stats`.
   */
  async nodeStats(pubsub: PubSubRef, timeoutMs = 2000): Promise<PubSubNodeStats> {
    const inst = resolve(null, pubsub);
    const parts: ThreadPartStats[] = inst.parts === null ? [] : await inst.parts.collect(timeoutMs);
    const out: PubSubNodeStats = { ...PubSub.stats(pubsub), workers: [] };
    const fabric = inst.gen?.fabric;
    const topics = new Set<string>();
    for (const t of inst.tables()) for (const k of t.topics.keys()) topics.add(k);
    for (const p of parts) {
      out.workers.push({ scheduler: p.scheduler, messagesOut: p.threadMsgsOut, messagesIn: p.threadMsgsIn, forwardsOut: p.forwardsOut });
      for (const k of p.topics) topics.add(k);
      if (p.table !== null) out.schedulers.push({ ...p.table, interest: fabric?.interestOf(p.scheduler) ?? 0 });
      if (p.fabric !== null && out.fabric !== null && p.fabric.schedulers === out.fabric.schedulers) {
        const f = out.fabric;
        for (let i = 0; i < f.schedulers; i++) {
          f.envelopesOut[i]! += p.fabric.envelopesOut[i]!;
          f.envelopesIn[i]! += p.fabric.envelopesIn[i]!;
          f.wastedHops[i]! += p.fabric.wastedHops[i]!;
        }
        f.cloneFailures += p.fabric.cloneFailures;
      }
    }
    out.schedulers.sort((a, b) => a.scheduler - b.scheduler);
    out.topics = topics.size;
    return Object.assign(out, sumRows(out.schedulers));
  },

  /**
   * Resolves once every node currently up has acknowledged this node's interest (so broadcasts
   * from them reach subscriptions made before the call). Immediate without a cluster adapter,
   * and on a worker thread: call it on the main thread, which learns a worker's new topics one
   * thread hop after the subscribe (in order with that worker's other messages to it).
   */
  async synced(pubsub: PubSubRef, timeoutMs = 5000): Promise<void> {
    const a = resolve(null, pubsub).adapter;
    if (a?.synced) await a.synced(timeoutMs);
  },

  /** Registers a dispatcher (see `registerDispatcher`). */
  registerDispatcher,
};
