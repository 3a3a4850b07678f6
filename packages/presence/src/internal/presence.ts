/**
 * The Presence API: a tracker (pool of shards replicating presences over PubSub) plus a
 * broadcaster turning its diffs into batched `presence_diff` broadcasts, under one supervisor
 * (rest_for_one: broadcaster, then tracker; a broadcaster crash restarts the tracker too, so no
 * diff is silently lost: the tracked actors get the shards' exit and their clients rejoin).
 */
import { AlreadyStartedError, BadArgError, NoProcError, Process, Supervisor, GenServer, type ChildSpec, type Context, type Logger, type Pid, type SupervisorOptions } from "@cinder/runtime";
import { Tracker, TrackerRef, type Meta, type TrackerDiff } from "@cinder/tracker";
import { Broadcaster, fetchEntries, flushNow, type DiffMsg } from "./broadcaster.js";
import { appFields, emptyState, group } from "./diff.js";
import { resolveOptions, trackerOptions, type PresenceOptions, type ResolvedPresenceOptions } from "./options.js";
import { findInstance, Instance, registerInstance, type NodeCore, type PresenceCounters } from "./registry.js";
import type { PresenceEntry, PresenceMeta, PresenceState } from "./types.js";

/**
 * A handle on a Presence of one node; valid across restarts of its tree. Get one from
 * `Presence.start`, or `Presence.ref(ctx, name)` for one started by a child spec. API functions
 * also accept the Presence's name.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Presence } from "@cinder/presence";
 * const node = await startNode({ schedulers: 1 });
 * await node.startChild(PubSub.childSpec({ name: "doc_pref_ps" }));
 * await node.startChild(Presence.childSpec({ name: "doc_pref", pubsub: "doc_pref_ps" }));
 * console.log(Presence.ref(node, "doc_pref").name); // "doc_pref"
 * await node.stop();
 * ```
 */
export class PresenceRef {
  readonly name: string;
  /** @internal */
  readonly core: NodeCore;
  /** @internal */
  constructor(core: NodeCore, name: string) {
    this.core = core;
    this.name = name;
  }
}

/** A Presence: its handle or its name. */
export type PresenceName = PresenceRef | string;

/** The new meta of `update`: an object (replaces the app's fields), or a function of the current meta. */
export type PresenceUpdate = Record<string, unknown> | ((meta: PresenceMeta) => Record<string, unknown>);

/** Counters and backlog of a Presence on this node, from `Presence.stats`. */
export interface PresenceStats extends PresenceCounters {
  readonly name: string;
  /** topics with changes not broadcast yet, and the presences in them */
  readonly pendingTopics: number;
  readonly pendingPresences: number;
  readonly running: boolean;
}

function coreOf(ctx: Context): NodeCore {
  return ctx instanceof Process ? ctx.node : (ctx as NodeCore);
}

function resolve(ctx: Context, presence: PresenceName): Instance {
  const core = presence instanceof PresenceRef ? presence.core : coreOf(ctx);
  const name = presence instanceof PresenceRef ? presence.name : presence;
  if (typeof name !== "string") throw new BadArgError(`not a Presence: ${String(presence)}`);
  const inst = findInstance(core, name);
  if (inst === undefined) throw new NoProcError(`Presence ${name}`);
  return inst;
}

function trackerOf(inst: Instance): TrackerRef {
  return new TrackerRef(inst.core, inst.opts.trackerName);
}

function checkMeta(meta: unknown): asserts meta is Record<string, unknown> {
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) throw new BadArgError(`meta must be a plain object, got ${meta === null ? "null" : Array.isArray(meta) ? "an array" : typeof meta}`);
}

function supervisorOptions(inst: Instance, opts: PresenceOptions): SupervisorOptions {
  const o = inst.opts;
  const handleDiff = (diff: TrackerDiff, state: unknown) => {
    const to = inst.broadcaster;
    // no broadcaster: it crashed, and rest_for_one is about to restart this tracker too
    if (to !== undefined) inst.core.send(to, { $presence: "diff", diff } satisfies DiffMsg);
    return { state };
  };
  return {
    strategy: "rest_for_one",
    maxRestarts: 3,
    maxSeconds: 5,
    children: [
      {
        id: "broadcaster",
        shutdown: 5000,
        start: (sup) => GenServer.startLink(sup, Broadcaster, { inst, pubsub: opts.pubsub }, { name: `${o.name}.broadcaster` }),
      },
      // transient: a graceful permdown stops it normally, for good
      Tracker.childSpec({ ...trackerOptions(opts), name: o.trackerName, pubsub: opts.pubsub, handleDiff }, { id: "tracker", restart: "transient" }),
    ],
  };
}

function newInstance(ctx: Context, o: ResolvedPresenceOptions, logger: Logger | undefined): Instance {
  const core = coreOf(ctx);
  const owner = core.whereis(o.name);
  if (owner !== undefined) throw new AlreadyStartedError(o.name, owner);
  const inst = new Instance(core, o, logger);
  registerInstance(inst);
  return inst;
}

/** Checks every option now (the tracker's too): throws `PresenceOptionError` / `TrackerOptionError`. */
function validate(opts: PresenceOptions): ResolvedPresenceOptions {
  const o = resolveOptions(opts);
  Tracker.childSpec({ ...trackerOptions(opts), name: o.trackerName, pubsub: opts.pubsub });
  return o;
}

/**
 * Phoenix.Presence for Cinder: who is present on which topic, replicated to every node of the
 * cluster by a tracker, with each change broadcast to the topic's subscribers on every node as a
 * `presence_diff` (`{ joins, leaves }`, CHANNELS.md 6), batched per topic.
 *
 * Writes (`track`, `untrack`, `update`) go to the topic's tracker shard; reads (`list`,
 * `listRaw`, `getByKey`) never wait behind a mailbox. A tracked actor's exit removes its
 * presences. Metas carry `phx_ref` (unique, never reused) and, after an update, `phx_ref_prev`.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Presence, type PresenceBroadcast } from "@cinder/presence";
 * const node = await startNode({ schedulers: 1 });
 * const pubsub = await PubSub.start(node, { name: "doc_pr_ps" });
 * const presence = await Presence.start(node, { name: "doc_pr", pubsub });
 * const watcher = node.process();
 * PubSub.subscribe(watcher, pubsub, "room:lobby");
 * const tab = node.process();
 * const ref = await Presence.track(tab, presence, tab.pid, "room:lobby", "alice", { status: "online" });
 * const joined = (await watcher.receive()) as PresenceBroadcast;
 * console.log([joined.event, Object.keys(joined.payload.joins), joined.payload.leaves]); // ["presence_diff", ["alice"], {}]
 * await Presence.update(tab, presence, tab.pid, "room:lobby", "alice", (m) => ({ ...m, status: "away" }));
 * const { payload } = (await watcher.receive()) as PresenceBroadcast; // an update: one diff, both halves
 * console.log([payload.leaves.alice!.metas[0]!.phx_ref === ref, payload.joins.alice!.metas[0]!.phx_ref_prev === ref]); // [true, true]
 * console.log(Presence.listRaw(node, presence, "room:lobby").alice!.metas.map((m) => m.status)); // ["away"]
 * await node.stop();
 * ```
 */
export const Presence = {
  /**
   * Starts a Presence (its supervisor, registered under `name`, not linked to the caller) and
   * resolves with its handle. Rejects with `PresenceOptionError` / `TrackerOptionError` for a bad
   * option, `NoProcError` if the PubSub is not running, `AlreadyStartedError` if the name is taken.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prs_ps" });
   * const presence = await Presence.start(node, { name: "doc_prs", pubsub, batchMs: 100, broadcastPeriod: 500 });
   * console.log(presence.name); // "doc_prs"
   * await node.stop();
   * ```
   */
  async start(ctx: Context, opts: PresenceOptions): Promise<PresenceRef> {
    const o = validate(opts);
    const inst = newInstance(ctx, o, opts.logger);
    await Supervisor.start(ctx, supervisorOptions(inst, opts), { name: o.name });
    return new PresenceRef(inst.core, o.name);
  },

  /**
   * A child spec starting the Presence under a supervisor (id = the name; a supervisor child).
   * Throws at once for bad options; the PubSub is resolved when the child starts, so it may be a
   * sibling started before it.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * await node.startChild(PubSub.childSpec({ name: "doc_prc_ps" }));
   * const spec = Presence.childSpec({ name: "doc_prc", pubsub: "doc_prc_ps" });
   * console.log([spec.id, spec.type]); // ["doc_prc", "supervisor"]
   * await node.startChild(spec);
   * console.log(Presence.stats(node, "doc_prc").running); // true
   * await node.stop();
   * ```
   */
  childSpec(opts: PresenceOptions, extra?: Partial<ChildSpec>): ChildSpec {
    const o = validate(opts);
    return {
      id: o.name,
      type: "supervisor",
      shutdown: "infinity",
      start: (sup) => {
        const inst = newInstance(sup, o, opts.logger);
        return Supervisor.startLink(sup, supervisorOptions(inst, opts), { name: o.name });
      },
      ...extra,
    };
  },

  /**
   * The handle of the Presence named `name` on the context's node; `NoProcError` if none was started.
   *
   * @example
   * ```ts
   * import { startNode, NoProcError } from "@cinder/runtime";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * try {
   *   Presence.ref(node, "nobody");
   * } catch (e) {
   *   console.log(e instanceof NoProcError); // true
   * }
   * await node.stop();
   * ```
   */
  ref(ctx: Context, name: string): PresenceRef {
    const inst = resolve(ctx, name);
    return new PresenceRef(inst.core, inst.name);
  },

  /**
   * Tracks actor `pid` (of this node) on `topic` under `key` with `meta` (a plain object; any
   * `phx_ref` / `phx_ref_prev` in it are ignored). Resolves with the presence's `phx_ref`.
   * Rejects with `AlreadyTrackedError` if (pid, topic, key) is tracked already, `NotLocalError`
   * for another node's actor. The actor's exit untracks it.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence, AlreadyTrackedError } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prt_ps" });
   * const presence = await Presence.start(node, { name: "doc_prt", pubsub });
   * const phone = node.process(), laptop = node.process();
   * await Presence.track(phone, presence, phone.pid, "room:1", "bob", { device: "phone" });
   * await Presence.track(laptop, presence, laptop.pid, "room:1", "bob", { device: "laptop" });
   * console.log(Presence.listRaw(node, presence, "room:1").bob!.metas.map((m) => m.device)); // ["phone", "laptop"]
   * try {
   *   await Presence.track(phone, presence, phone.pid, "room:1", "bob", {});
   * } catch (e) {
   *   console.log(e instanceof AlreadyTrackedError); // true
   * }
   * await node.stop();
   * ```
   */
  track(ctx: Context, presence: PresenceName, pid: Pid, topic: string, key: string, meta: Record<string, unknown>): Promise<string> {
    const inst = resolve(ctx, presence);
    checkMeta(meta);
    return Tracker.track(ctx, trackerOf(inst), pid, topic, key, appFields(meta) as Meta);
  },

  /**
   * `untrack(ctx, presence, pid, topic, key)` removes that presence; `untrack(ctx, presence, pid)`
   * removes every presence of the actor. Resolves `"ok"`, also when nothing was tracked.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_pru_ps" });
   * const presence = await Presence.start(node, { name: "doc_pru", pubsub });
   * const me = node.process();
   * await Presence.track(me, presence, me.pid, "room:1", "ann", {});
   * await Presence.track(me, presence, me.pid, "room:2", "ann", {});
   * console.log(await Presence.untrack(me, presence, me.pid, "room:1", "ann")); // "ok"
   * console.log([Object.keys(Presence.listRaw(node, presence, "room:1")), Object.keys(Presence.listRaw(node, presence, "room:2"))]); // [[], ["ann"]]
   * await Presence.untrack(me, presence, me.pid);
   * console.log(Object.keys(Presence.listRaw(node, presence, "room:2"))); // []
   * await node.stop();
   * ```
   */
  untrack(ctx: Context, presence: PresenceName, pid: Pid, topic?: string, key?: string): Promise<"ok"> {
    const inst = resolve(ctx, presence);
    return Tracker.untrack(ctx, trackerOf(inst), pid, topic, key);
  },

  /**
   * Replaces a presence's meta and resolves with its new `phx_ref`; the new meta carries
   * `phx_ref_prev` (the old ref). `update` is an object or a function of the current meta (it runs
   * in the caller and is retried if the presence changed meanwhile). Subscribers get one diff:
   * the new meta in `joins`, the old one in `leaves`. Rejects with `NoPresenceError` if absent.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence, NoPresenceError } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prup_ps" });
   * const presence = await Presence.start(node, { name: "doc_prup", pubsub });
   * const me = node.process();
   * const r1 = await Presence.track(me, presence, me.pid, "room:1", "cy", { typing: false });
   * const r2 = await Presence.update(me, presence, me.pid, "room:1", "cy", (m) => ({ ...m, typing: true }));
   * const [meta] = Presence.listRaw(node, presence, "room:1").cy!.metas;
   * console.log([meta!.typing, meta!.phx_ref === r2, meta!.phx_ref_prev === r1]); // [true, true, true]
   * try {
   *   await Presence.update(me, presence, me.pid, "room:1", "nobody", {});
   * } catch (e) {
   *   console.log(e instanceof NoPresenceError); // true
   * }
   * await node.stop();
   * ```
   */
  update(ctx: Context, presence: PresenceName, pid: Pid, topic: string, key: string, update: PresenceUpdate): Promise<string> {
    const inst = resolve(ctx, presence);
    if (typeof update === "function") {
      return Tracker.update(ctx, trackerOf(inst), pid, topic, key, (m) => {
        const next = update(m as PresenceMeta);
        checkMeta(next);
        return appFields(next) as Meta;
      });
    }
    checkMeta(update);
    return Tracker.update(ctx, trackerOf(inst), pid, topic, key, appFields(update) as Meta);
  },

  /**
   * The presences of `topic` grouped by key (`{ key: { metas } }`, metas in a stable order:
   * as this node learnt of them), passed through `fetch` if the Presence has one. What to push as
   * `presence_state` after a join. Presences of peers that are down are not listed.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence, type PresenceState } from "@cinder/presence";
   * const users: Record<string, string> = { u1: "Ann", u2: "Bob" };
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prl_ps" });
   * const presence = await Presence.start(node, {
   *   name: "doc_prl",
   *   pubsub,
   *   fetch: async (_topic, entries) => {
   *     const out: PresenceState = {};
   *     for (const [id, e] of Object.entries(entries)) out[id] = { ...e, user: { name: users[id] } };
   *     return out;
   *   },
   * });
   * const me = node.process();
   * await Presence.track(me, presence, me.pid, "room:1", "u2", {});
   * const state = await Presence.list(me, presence, "room:1");
   * console.log([Object.keys(state), state.u2!.user, state.u2!.metas.length]); // [["u2"], { name: "Bob" }, 1]
   * await node.stop();
   * ```
   */
  async list(ctx: Context, presence: PresenceName, topic: string): Promise<PresenceState> {
    const inst = resolve(ctx, presence);
    const raw = group(Tracker.list(ctx, trackerOf(inst), topic));
    return fetchEntries(inst, topic, raw);
  },

  /**
   * `list` without `fetch`, synchronous: the tracker's presences of `topic` grouped by key, read
   * at once.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prr_ps" });
   * const presence = await Presence.start(node, { name: "doc_prr", pubsub });
   * const me = node.process();
   * const ref = await Presence.track(me, presence, me.pid, "room:1", "__proto__", { n: 1 });
   * const state = Presence.listRaw(node, presence, "room:1");
   * console.log(JSON.stringify(state) === `{"__proto__":{"metas":[{"n":1,"phx_ref":"${ref}"}]}}`); // true
   * await node.stop();
   * ```
   */
  listRaw(ctx: Context, presence: PresenceName, topic: string): PresenceState {
    const inst = resolve(ctx, presence);
    return group(Tracker.list(ctx, trackerOf(inst), topic));
  },

  /**
   * The entry of (`topic`, `key`): `{ metas }` (through `fetch`), or `undefined` if the key has
   * no presence.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prg_ps" });
   * const presence = await Presence.start(node, { name: "doc_prg", pubsub });
   * const me = node.process();
   * await Presence.track(me, presence, me.pid, "room:1", "dee", { mood: "ok" });
   * console.log((await Presence.getByKey(me, presence, "room:1", "dee"))!.metas.map((m) => m.mood)); // ["ok"]
   * console.log(await Presence.getByKey(me, presence, "room:1", "nobody")); // undefined
   * await node.stop();
   * ```
   */
  async getByKey(ctx: Context, presence: PresenceName, topic: string, key: string): Promise<PresenceEntry | undefined> {
    const inst = resolve(ctx, presence);
    const rows = Tracker.getByKey(ctx, trackerOf(inst), topic, key);
    if (rows.length === 0) return undefined;
    const entries = emptyState();
    entries[key] = { metas: rows.map((r) => r.meta as PresenceMeta) };
    return (await fetchEntries(inst, topic, entries))[key];
  },

  /**
   * Broadcasts every pending diff now, without waiting for batching windows, and resolves once
   * done (diffs of calls that resolved before `flush` was called included). For tests and
   * orderly shutdowns.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence, type PresenceBroadcast } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prf_ps" });
   * const presence = await Presence.start(node, { name: "doc_prf", pubsub, batchMs: 60_000 });
   * const watcher = node.process();
   * PubSub.subscribe(watcher, pubsub, "room:1");
   * const me = node.process();
   * const joinsOf = async () => Object.keys(((await watcher.receive()) as PresenceBroadcast).payload.joins);
   * await Presence.track(me, presence, me.pid, "room:1", "a", {});
   * console.log(await joinsOf()); // ["a"] (the topic was quiet: at once)
   * await Presence.track(me, presence, me.pid, "room:1", "b", {});
   * await Presence.track(me, presence, me.pid, "room:1", "c", {}); // within the window: held
   * await Presence.flush(node, presence);
   * console.log(await joinsOf()); // ["b", "c"]
   * console.log(Presence.stats(node, presence).broadcasts); // 2
   * await node.stop();
   * ```
   */
  async flush(ctx: Context, presence: PresenceName): Promise<void> {
    const inst = resolve(ctx, presence);
    const pid = inst.broadcaster;
    if (pid === undefined) throw new NoProcError(`Presence ${inst.name} broadcaster (not running)`);
    await flushNow(ctx, pid, inst.opts.callTimeout);
  },

  /**
   * Counters and backlog of the Presence on this node.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prst_ps" });
   * const presence = await Presence.start(node, { name: "doc_prst", pubsub });
   * const me = node.process();
   * await Presence.track(me, presence, me.pid, "room:1", "eve", {});
   * await Presence.flush(node, presence);
   * const s = Presence.stats(node, presence);
   * console.log([s.joinsIn, s.joinsOut, s.broadcasts, s.pendingTopics]); // [1, 1, 1, 0]
   * await node.stop();
   * ```
   */
  stats(ctx: Context, presence: PresenceName): PresenceStats {
    const inst = resolve(ctx, presence);
    const live = inst.live;
    return {
      name: inst.name,
      ...inst.counters,
      pendingTopics: live?.pendingTopics() ?? 0,
      pendingPresences: live?.pendingPresences() ?? 0,
      running: inst.broadcaster !== undefined,
    };
  },

  /**
   * The Presence's tracker (named `<name>.tracker`), for `Tracker.stats`, `Tracker.dirtyList`
   * and the like.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Tracker } from "@cinder/tracker";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prtr_ps" });
   * const presence = await Presence.start(node, { name: "doc_prtr", pubsub, poolSize: 2 });
   * const tracker = Presence.tracker(node, presence);
   * console.log([tracker.name, Tracker.stats(node, tracker).length]); // ["doc_prtr.tracker", 2]
   * await node.stop();
   * ```
   */
  tracker(ctx: Context, presence: PresenceName): TrackerRef {
    return Tracker.ref(ctx, resolve(ctx, presence).opts.trackerName);
  },

  /**
   * Leaves the cluster on purpose: pending diffs are broadcast, then the tracker tells its
   * peers, which drop this node's presences at once instead of after `downPeriod`, and stops.
   * The last thing a node does before it stops; `track` fails afterwards.
   *
   * @example
   * ```ts
   * import { startNode } from "@cinder/runtime";
   * import { PubSub } from "@cinder/pubsub";
   * import { Presence } from "@cinder/presence";
   * const node = await startNode({ schedulers: 1 });
   * const pubsub = await PubSub.start(node, { name: "doc_prgp_ps" });
   * const presence = await Presence.start(node, { name: "doc_prgp", pubsub });
   * await Presence.gracefulPermdown(node, presence);
   * console.log(node.whereis("doc_prgp.tracker")); // undefined
   * await node.stop();
   * ```
   */
  async gracefulPermdown(ctx: Context, presence: PresenceName): Promise<void> {
    const inst = resolve(ctx, presence);
    if (inst.broadcaster !== undefined) await flushNow(ctx, inst.broadcaster, inst.opts.callTimeout);
    await Tracker.gracefulPermdown(ctx, inst.opts.trackerName);
  },
};
