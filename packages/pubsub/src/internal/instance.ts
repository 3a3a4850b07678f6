/**
 * One PubSub instance on one node: its tables (one `LocalTable` per scheduler, a `SchedulerFabric`
 * between them, the node's interest set), its receive lanes and its adapter. The supervision tree
 * (`tree.ts`) opens and closes these; the public API (`index.ts`) reads them synchronously.
 *
 * With worker scheduler threads, the instance on the main thread (the tree, the adapter, the
 * lanes, the main thread's table) has a *part* on every worker thread: an `Instance` of the same
 * name holding that thread's table only (thread_part.ts). The main thread decides the tables'
 * generations; the parts follow. A broadcast from any thread dispatches its own scheduler's
 * entries and hops once to each other scheduler with subscribers (`hops`); a broadcast from a
 * worker that must reach other nodes goes to the main thread's part, which hands it to the
 * adapter (`forward`).
 *
 * The instance outlives restarts of its tree: a handle (`PubSubRef`) stays valid, and between a
 * crash and the restart calls see "no tables" (subscribe throws `NoProcError`, local dispatch
 * finds nobody) or "no adapter" (remote broadcasts return a `transport` BroadcastError).
 */
import { BadArgError, NoProcError, Process, consoleLogger, formatReason, type ExitReason, type Logger, type Pid, type ThreadContext } from "@cinder/runtime";
import type { Adapter, AdapterContext } from "./adapter.js";
import { cloneable } from "./clone.js";
import { BroadcastError } from "./errors.js";
import { SchedulerFabric, type HopEnvelope } from "./fabric.js";
import { LocalTable } from "./local_table.js";
import { NodeInterest } from "./node_interest.js";
import type { ResolvedOptions } from "./options.js";
import { MainParts, OP, type WorkerPart } from "./thread_part.js";

/** @internal the kernel a context belongs to */
export type NodeCore = Process<any>["sched"]["node"];

/** @internal the message a receive lane handles */
export interface LaneMsg {
  readonly topic: string;
  readonly msg: unknown;
  readonly dispatcher: string | null;
}

/** @internal one receive lane (Phoenix's PG2 pool worker) */
export interface Lane {
  readonly index: number;
  readonly proc: Process<LaneMsg>;
  frames: number;
  dropped: number;
}

/** @internal one generation of tables (a restart of the tables child makes a new one) */
export class TablesGen {
  /** generation number, per instance (the worker parts' tables follow it) */
  readonly id: number;
  readonly owner: Pid;
  readonly fabric: SchedulerFabric;
  readonly interest: NodeInterest | null;
  constructor(id: number, owner: Pid, fabric: SchedulerFabric, interest: NodeInterest | null) {
    this.id = id;
    this.owner = owner;
    this.fabric = fabric;
    this.interest = interest;
  }
}

export class Instance {
  readonly name: string;
  readonly core: NodeCore;
  opts: ResolvedOptions;
  gen: TablesGen | null = null;
  adapter: Adapter | null = null;
  lanes: Lane[] = [];
  /** frames that arrived while no lane ran */
  laneless = 0;
  /** remote dispatches whose hop to another scheduler failed (clone) */
  remoteHopFailures = 0;
  /** @internal tests: clone hops between in-thread schedulers as threads would */
  cloneHops = false;
  /** this thread's scheduler index */
  readonly index: number;
  /** thread services (hops to schedulers on other threads); null while the node has one thread */
  link: ThreadContext | null = null;
  /** the thread-service name of this instance */
  readonly svc: string;
  /** main thread: the parts on the worker threads (null without worker threads) */
  parts: MainParts | null = null;
  /** worker thread: this thread's part */
  part: WorkerPart | null = null;
  /** worker thread: broadcasts for other nodes go to the main thread's part */
  forward = false;
  /** `[0]`: 1 while the main thread's adapter runs (shared with the worker parts) */
  status: Int32Array = new Int32Array(new SharedArrayBuffer(4));
  /** broadcasts handed to (worker) or received from (main) another thread's part for other nodes */
  forwardsOut = 0;
  forwardsIn = 0;
  /** forwarded broadcasts the adapter refused (main) or that arrived while it was down */
  forwardErrors = 0;
  /** thread-service messages of this instance sent and received (hops, interest, control) */
  threadMsgsOut = 0;
  threadMsgsIn = 0;
  private genSeq = 0;

  constructor(core: NodeCore, opts: ResolvedOptions) {
    this.core = core;
    this.name = opts.name;
    this.opts = opts;
    this.index = core.main.index;
    this.svc = `cinder.pubsub:${opts.name}`;
  }

  /** Sends a thread-service message of this instance to scheduler `to`. */
  post(to: number, data: unknown[]): boolean {
    const link = this.link;
    if (link === null) return false;
    this.threadMsgsOut++;
    return link.send(to, this.svc, data);
  }

  get logger(): Logger {
    return this.opts.logger ?? this.core.logger ?? consoleLogger;
  }

  get adapterName(): string {
    return `${this.name}.adapter`;
  }

  // ---- tables --------------------------------------------------------------------------

  /** Creates the tables (the tables child's init, on the main thread). */
  openTables(owner: Pid): TablesGen {
    let size = schedulerCount(this.core);
    for (const s of this.core.schedulers) size = Math.max(size, s.index + 1);
    const fabric = new SchedulerFabric(size, this.opts.interestSlots);
    fabric.cloneHops = this.cloneHops;
    const interest = this.opts.adapter?.interestRouting === true ? new NodeInterest(size, () => fabric.tables[this.core.main.index]) : null;
    const events = {
      gained: (s: number, topic: string) => {
        fabric.raise(s, topic);
        interest?.gained(topic, s);
      },
      lost: (s: number, topic: string) => {
        fabric.lower(s, topic);
        interest?.lost(topic, s);
      },
    };
    for (const s of this.core.schedulers) fabric.tables[s.index] = new LocalTable(s, events, this.logger);
    const gen = new TablesGen(++this.genSeq, owner, fabric, interest);
    this.gen = gen;
    return gen;
  }

  /**
   * After `openTables`: the worker threads' parts open their tables of this generation (the
   * first time, the parts are installed on every worker thread, now and on later starts).
   * Resolves once every live worker thread has its table.
   */
  async spreadTables(gen: TablesGen): Promise<void> {
    if (this.parts !== null && this.gen === gen) await this.parts.open(gen);
  }

  /** The tables' owner exited: subscribers get its exit signal; the tables are gone (on every thread). */
  closeTables(gen: TablesGen, reason: ExitReason): void {
    if (this.gen === gen) this.gen = null;
    for (const t of gen.fabric.tables) t?.close(gen.owner, reason);
    this.parts?.close(gen, reason);
  }

  /**
   * Scheduler thread `index` died (the main thread's part hears it from the runtime; tests of
   * in-thread schedulers call it directly). Its table dies with it; the other schedulers stop
   * hopping to it (its column of the shared counters is zeroed) and the node withdraws the
   * topics only it had.
   */
  schedulerDown(index: number): void {
    const gen = this.gen;
    if (gen === null) return;
    gen.fabric.schedulerDown(index);
    gen.interest?.schedulerDown(index);
  }

  /** The main thread's adapter started (`a`) or stopped (null); the worker parts learn it. */
  setAdapter(a: Adapter | null): void {
    this.adapter = a;
    Atomics.store(this.status, 0, a === null ? 0 : 1);
    if (a !== null) this.parts?.adapterUp(a.nodeName());
  }

  /** Does the main thread's adapter run? (any thread) */
  adapterRunning(): boolean {
    return Atomics.load(this.status, 0) === 1;
  }

  /** The table of the scheduler `proc` runs on. Throws NoProcError if the tables are down. */
  tableOf(proc: Process<any>): LocalTable {
    const gen = this.gen;
    if (gen === null) throw new NoProcError(`${this.name}.tables (PubSub ${this.name} is not running)`);
    const t = gen.fabric.tables[proc.sched.index];
    if (t === undefined) throw new NoProcError(`${this.name}.tables on scheduler ${proc.sched.index}`);
    return t;
  }

  /** The tables of this thread (with in-thread test schedulers, several). */
  tables(): LocalTable[] {
    const out: LocalTable[] = [];
    for (const t of this.gen?.fabric.tables ?? []) if (t !== undefined) out.push(t);
    return out;
  }

  hasSubscribers(topic: string): boolean {
    return this.gen?.fabric.anyWithSubscribers(topic) ?? false;
  }

  // ---- dispatch --------------------------------------------------------------------------

  /**
   * Local dispatch on this node, from scheduler `sched`: that scheduler's entries now, one hop to
   * every other scheduler with subscribers. `forwardLane` ≥ 0 (a worker thread's broadcast to
   * other nodes too): the message also goes to the main thread's part for the adapter, on that
   * lane. Returns what could not be reached (clone failures, adapter not running) as an error.
   */
  dispatchLocal(sched: number, topic: string, msg: unknown, from: Pid | null, dispatcher: string | null, forwardLane = -1): BroadcastError | null {
    const gen = this.gen;
    if (gen === null) return forwardLane < 0 ? null : this.notRunning(topic);
    const fabric = gen.fabric;
    fabric.tables[sched]?.dispatch(topic, msg, from, dispatcher);
    if (fabric.size <= 1) return null;
    return this.hops(fabric, sched, topic, msg, from, dispatcher, forwardLane);
  }

  /** The hops of a broadcast (several schedulers); see `dispatchLocal`. */
  private hops(fabric: SchedulerFabric, sched: number, topic: string, msg: unknown, from: Pid | null, dispatcher: string | null, forwardLane: number): BroadcastError | null {
    let failed: number[] | null = null;
    let env: HopEnvelope | null = null;
    /** can the message cross threads? -1: not asked yet (asked once, at the first other thread) */
    let crosses = -1;
    let remoteErr: BroadcastError | null = null;
    let forward = forwardLane >= 0;
    if (forward && !this.adapterRunning()) {
      forward = false;
      remoteErr = this.notRunning(topic);
    }
    if (fabric.othersHaveTopics(sched)) {
      const size = fabric.size;
      const base = fabric.slotOf(topic) * size;
      const c = fabric.counts;
      for (let s = 0; s < size; s++) {
        if (s === sched || Atomics.load(c, base + s) <= 0) continue;
        if (fabric.tables[s] !== undefined) {
          // a scheduler on this thread (tests)
          env ??= { topic, msg, from, dispatcher };
          if (!fabric.hop(s, env)) (failed ??= []).push(s);
          continue;
        }
        if (this.link === null) continue;
        if (crosses < 0) crosses = cloneable(msg) ? 1 : 0;
        if (crosses === 0) {
          fabric.cloneFailures++;
          (failed ??= []).push(s);
          continue;
        }
        if (s === 0 && forward) {
          // the main thread has subscribers and the adapter is there: one envelope for both
          forward = false;
          this.forwardsOut++;
          this.post(0, [OP.HOP_FWD, topic, msg, from, dispatcher, forwardLane]);
        } else this.post(s, [OP.HOP, topic, msg, from, dispatcher]);
        fabric.envelopesOut[s]!++;
      }
    }
    if (forward) {
      if (crosses < 0) crosses = cloneable(msg) ? 1 : 0;
      if (crosses === 1) {
        this.forwardsOut++;
        this.post(0, [OP.FWD, topic, msg, dispatcher, forwardLane]);
      } else remoteErr = new BroadcastError("clone", `message for ${topic} cannot be cloned to the main thread: not sent to other nodes`, {});
    }
    if (failed === null) return remoteErr;
    const local = new BroadcastError("clone", `message for ${topic} cannot be cloned to scheduler(s) ${failed.join(", ")}`, { schedulers: failed });
    return BroadcastError.merge(local, remoteErr);
  }

  /** @internal */
  notRunning(topic: string): BroadcastError {
    return new BroadcastError("transport", `PubSub ${this.name}: the adapter is not running (restarting): ${topic} not sent to other nodes`, {});
  }

  /** Main thread: a worker's broadcast for other nodes (`node` null) or one node. */
  forwardIn(node: string | null, topic: string, msg: unknown, dispatcher: string | null, lane: number): void {
    this.forwardsIn++;
    const a = this.adapter;
    const e = a === null ? this.notRunning(topic) : node === null ? a.broadcast(topic, msg, dispatcher, lane) : a.directBroadcast(node, topic, msg, dispatcher, lane);
    if (e === null) return;
    this.forwardErrors++;
    const now = Date.now();
    if (now - this.lastForwardLog >= 1000) {
      this.lastForwardLog = now;
      this.logger.warn(`pubsub ${this.name}: a broadcast from a worker thread did not reach other nodes (${this.forwardErrors} so far): ${e.message}`);
    }
  }

  private lastForwardLog = -Infinity;

  /** A message from another node: into receive lane `lane mod poolSize` (bounded), or dropped. */
  deliverRemote(lane: number, topic: string, msg: unknown, dispatcher: string | null): void {
    const lanes = this.lanes;
    if (lanes.length === 0) {
      this.laneless++;
      return;
    }
    const l = lanes[lane % lanes.length]!;
    if (l.proc.mailboxLength >= this.opts.laneBound) {
      l.dropped++;
      return;
    }
    l.frames++;
    l.proc.enqueue({ topic, msg, dispatcher } satisfies LaneMsg);
  }

  /** The behaviour of a receive lane. */
  laneHandler() {
    return {
      handle: (m: LaneMsg | unknown, self: Process<LaneMsg>) => {
        const lm = m as LaneMsg;
        if (lm === null || typeof lm !== "object" || typeof lm.topic !== "string") return;
        if (this.dispatchLocal(self.sched.index, lm.topic, lm.msg, null, lm.dispatcher) !== null) this.remoteHopFailures++;
      },
    };
  }

  // ---- adapter ---------------------------------------------------------------------------

  nodeName(): string {
    return this.adapter?.nodeName() ?? this.core.name;
  }

  adapterContext(): AdapterContext {
    const inst = this;
    return {
      name: this.name,
      adapterName: this.adapterName,
      localNode: this.core.name,
      poolSize: this.opts.poolSize,
      broadcastPoolSize: this.opts.broadcastPoolSize,
      options: this.opts.raw,
      logger: this.logger,
      deliver: (lane, topic, msg, dispatcher) => inst.deliverRemote(lane, topic, msg, dispatcher),
      hasSubscribers: (topic) => inst.hasSubscribers(topic),
      localTopics: () => inst.gen?.interest?.topics() ?? [],
      onInterest(fn) {
        const gen = inst.gen;
        if (gen === null || gen.interest === null) return () => {};
        return gen.interest.listen(fn);
      },
      flushInterest: () => inst.gen?.interest?.flush(),
    };
  }

  logError(what: string, e: unknown): void {
    this.logger.error(`pubsub ${this.name}: ${what}: ${formatReason(e)}`, { error: e });
  }
}

/** Scheduler threads the node runs (main thread included); 1 on a worker thread's kernel. */
function schedulerCount(core: NodeCore): number {
  if (core.main.index !== 0) return 1;
  const n = (core as { schedulerCount?: unknown }).schedulerCount;
  return typeof n === "number" && n > 1 ? n : 1;
}

const instances = new WeakMap<NodeCore, Map<string, Instance>>();

/** @internal the instance named `name` on this node, if any */
export function findInstance(core: NodeCore, name: string): Instance | undefined {
  return instances.get(core)?.get(name);
}

/** @internal the instance for these options (reused across restarts, options refreshed) */
export function instanceFor(core: NodeCore, opts: ResolvedOptions): Instance {
  let byName = instances.get(core);
  if (byName === undefined) instances.set(core, (byName = new Map()));
  let inst = byName.get(opts.name);
  if (inst === undefined) {
    byName.set(opts.name, (inst = new Instance(core, opts)));
    if (schedulerCount(core) > 1) inst.parts = new MainParts(inst);
  } else if (inst.part !== null) {
    throw new BadArgError(`PubSub ${opts.name} runs on the main thread of this node (this is scheduler ${inst.index}'s part of it): start it there`);
  } else inst.opts = opts;
  return inst;
}

/** @internal registers a worker thread's part under its name (thread_part.ts) */
export function registerInstance(inst: Instance): void {
  let byName = instances.get(inst.core);
  if (byName === undefined) instances.set(inst.core, (byName = new Map()));
  byName.set(inst.name, inst);
}
