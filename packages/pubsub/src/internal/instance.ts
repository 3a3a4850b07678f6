/**
 * One PubSub instance on one node: its tables (one `LocalTable` per scheduler, a `SchedulerFabric`
 * between them, the node's interest set), its receive lanes and its adapter. The supervision tree
 * (`tree.ts`) opens and closes these; the public API (`index.ts`) reads them synchronously.
 *
 * The instance outlives restarts of its tree: a handle (`PubSubRef`) stays valid, and between a
 * crash and the restart calls see "no tables" (subscribe throws `NoProcError`, local dispatch
 * finds nobody) or "no adapter" (remote broadcasts return a `transport` BroadcastError).
 */
import { NoProcError, Process, consoleLogger, formatReason, type ExitReason, type Logger, type Pid } from "@cinder/runtime";
import type { Adapter, AdapterContext } from "./adapter.js";
import { BroadcastError } from "./errors.js";
import { SchedulerFabric, type HopEnvelope } from "./fabric.js";
import { LocalTable } from "./local_table.js";
import { NodeInterest } from "./node_interest.js";
import type { ResolvedOptions } from "./options.js";

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
  readonly owner: Pid;
  readonly fabric: SchedulerFabric;
  readonly interest: NodeInterest | null;
  constructor(owner: Pid, fabric: SchedulerFabric, interest: NodeInterest | null) {
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

  constructor(core: NodeCore, opts: ResolvedOptions) {
    this.core = core;
    this.name = opts.name;
    this.opts = opts;
  }

  get logger(): Logger {
    return this.opts.logger ?? this.core.logger ?? consoleLogger;
  }

  get adapterName(): string {
    return `${this.name}.adapter`;
  }

  // ---- tables --------------------------------------------------------------------------

  /** Creates the tables (the tables child's init). */
  openTables(owner: Pid): TablesGen {
    let size = 0;
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
    const gen = new TablesGen(owner, fabric, interest);
    this.gen = gen;
    return gen;
  }

  /** The tables' owner exited: subscribers get its exit signal; the tables are gone. */
  closeTables(gen: TablesGen, reason: ExitReason): void {
    if (this.gen === gen) this.gen = null;
    for (const t of gen.fabric.tables) t?.close(gen.owner, reason);
  }

  /**
   * Scheduler thread `index` died (seam for the worker-threads runtime: call it on every
   * thread when the runtime reports a scheduler down). Its table dies with it; the other
   * schedulers stop hopping to it and the node withdraws the topics only it had.
   */
  schedulerDown(index: number): void {
    const gen = this.gen;
    if (gen === null) return;
    gen.fabric.schedulerDown(index);
    gen.interest?.schedulerDown(index);
  }

  /** The table of the scheduler `proc` runs on. Throws NoProcError if the tables are down. */
  tableOf(proc: Process<any>): LocalTable {
    const gen = this.gen;
    if (gen === null) throw new NoProcError(`${this.name}.tables (PubSub ${this.name} is not running)`);
    const t = gen.fabric.tables[proc.sched.index];
    if (t === undefined) throw new NoProcError(`${this.name}.tables on scheduler ${proc.sched.index}`);
    return t;
  }

  /** In-thread tables (all of them today). */
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
   * every other scheduler with subscribers. Returns the schedulers a clone failed for, as an error.
   */
  dispatchLocal(sched: number, topic: string, msg: unknown, from: Pid | null, dispatcher: string | null): BroadcastError | null {
    const gen = this.gen;
    if (gen === null) return null;
    const fabric = gen.fabric;
    fabric.tables[sched]?.dispatch(topic, msg, from, dispatcher);
    if (fabric.size <= 1) return null;
    let failed: number[] | null = null;
    let env: HopEnvelope | null = null;
    fabric.forEachSchedulerWithSubscribers(topic, sched, (k) => {
      env ??= { topic, msg, from, dispatcher };
      if (!fabric.hop(k, env)) (failed ??= []).push(k);
    });
    if (failed === null) return null;
    return new BroadcastError("clone", `message for ${topic} cannot be cloned to scheduler(s) ${(failed as number[]).join(", ")}`, { schedulers: failed });
  }

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
  if (inst === undefined) byName.set(opts.name, (inst = new Instance(core, opts)));
  else inst.opts = opts;
  return inst;
}
