/**
 * A PubSub's parts on the worker scheduler threads of a node (PUBSUB.md 2.1, 2.2, 2.6).
 *
 * `PubSub.start` runs on the main thread; its tables child installs a part on every worker
 * thread with `node.everyThread` (module `./thread.ts`/`./thread.js`, export `pubsubThread`),
 * which also runs on every thread started later (lazy start, restart after a crash). A part is
 * an `Instance` of the same name on that thread's kernel, with that thread's `LocalTable` only:
 * a process subscribes and unsubscribes on its own thread, synchronously, and its exit removes
 * its entries there. Every thread maps the generation's shared interest counters
 * (fabric.ts), so a broadcast from any thread sees which schedulers have subscribers without
 * asking anyone.
 *
 * Protocol: thread-service messages (`ThreadContext.send`) named `cinder.pubsub:<name>`, each an
 * array `[op, …]`. They ride the data plane's per-destination batches, in order with the
 * sender's other messages to that scheduler.
 *
 * | op | direction | fields | meaning |
 * |---|---|---|---|
 * | HOP | any → any | topic, msg, from, dispatcher | dispatch on the receiver's table (one per broadcast and destination scheduler) |
 * | HOP_FWD | worker → main | topic, msg, from, dispatcher, lane | HOP, and hand the broadcast to the adapter for other nodes |
 * | FWD | worker → main | topic, msg, dispatcher, lane | hand the broadcast to the adapter (main has no subscriber) |
 * | FWD_DIRECT | worker → main | node, topic, msg, dispatcher, lane | `directBroadcast` to another node |
 * | GAINED / LOST | worker → main | gen, topic | the worker's first / last entry for the topic (only with interest routing: the node's interest set lives on the main thread) |
 * | HELLO | worker → main | — | a part started; the main thread answers OPEN (or NONE without tables) |
 * | OPEN | main → worker | OpenInfo | open the tables of generation `gen` (answered OPENED) |
 * | OPENED | worker → main | gen | — |
 * | NONE | main → worker | — | no tables now |
 * | CLOSE | main → worker | gen, owner, reason | the tables' owner exited: the table closes (subscribers get its exit signal) |
 * | ADAPTER | main → worker | node name | the adapter (re)started |
 * | STATS / STATS_REPLY | main ↔ worker | request id, counters | `PubSub.nodeStats` |
 *
 * Generations: the main thread opens the tables (generation n+1 after a restart of the tables
 * child), sends OPEN to every worker part that said HELLO and waits for OPENED before the
 * tables child has started (so a subscribe on any thread after `PubSub.start` resolved finds its
 * table); a part that starts later gets the current generation in answer to its HELLO.
 *
 * A worker thread that dies: the runtime tells the main thread (`onSchedulerDown`) before it
 * restarts the thread; the main thread's part zeroes the dead scheduler's column of the shared
 * counters (no more hops to it) and withdraws the topics only it had from the node's interest
 * set; the restarted thread gets a fresh part from `everyThread` (and an empty table).
 */
import { formatReason, type ExitReason, type Pid, type ThreadContext } from "@cinder/runtime";
import type { Adapter, AdapterFactory } from "./adapter.js";
import { cloneable } from "./clone.js";
import { BroadcastError } from "./errors.js";
import { SchedulerFabric, type FabricStats } from "./fabric.js";
import { Instance, TablesGen, findInstance, registerInstance, type NodeCore } from "./instance.js";
import { LocalTable, type TableStats } from "./local_table.js";
import type { ResolvedOptions } from "./options.js";

/** @internal op codes of the thread-service messages (see the file comment) */
export const OP = {
  HOP: 0,
  HOP_FWD: 1,
  FWD: 2,
  FWD_DIRECT: 3,
  GAINED: 4,
  LOST: 5,
  HELLO: 6,
  OPEN: 7,
  OPENED: 8,
  NONE: 9,
  CLOSE: 10,
  ADAPTER: 11,
  STATS: 12,
  STATS_REPLY: 13,
} as const;

/** What a worker part needs to open a generation of tables. */
interface OpenInfo {
  gen: number;
  buffer: SharedArrayBuffer;
  size: number;
  slots: number;
  owner: Pid;
  /** broadcasts reach other nodes (forward them to the main thread) */
  remote: boolean;
  /** report gained/lost topics (interest routing) */
  interest: boolean;
  poolSize: number;
  broadcastPoolSize: number;
  status: SharedArrayBuffer;
  node: string;
}

/** One worker thread's counters, as `PubSub.nodeStats` collects them. */
export interface ThreadPartStats {
  scheduler: number;
  table: TableStats | null;
  topics: string[];
  fabric: FabricStats | null;
  forwardsOut: number;
  threadMsgsOut: number;
  threadMsgsIn: number;
}

/** The module every worker thread runs (`pubsubThread`): next to this one, .ts under tsx, .js built. */
const THREAD_MODULE = new URL(import.meta.url.endsWith(".ts") ? "./thread.ts" : "./thread.js", import.meta.url);
const OPEN_TIMEOUT_MS = 10_000;

type Threaded = NodeCore & { threads: ThreadContext; everyThread?: (ref: { module: URL; export: string }, args: unknown[]) => Promise<void> };

/** @internal the main thread's side: the worker parts of one instance */
export class MainParts {
  readonly inst: Instance;
  /** worker schedulers whose (current) part said HELLO */
  readonly ready = new Set<number>();
  private installed: Promise<void> | null = null;
  private opening: { gen: number; waiting: Set<number>; done: () => void } | null = null;
  private readonly statsReqs = new Map<number, { waiting: Set<number>; rows: ThreadPartStats[]; done: () => void }>();
  private statsSeq = 0;

  constructor(inst: Instance) {
    this.inst = inst;
  }

  /** Installs the parts (first generation) or has them open generation `gen`; resolves once they did. */
  async open(gen: TablesGen): Promise<void> {
    if (this.installed === null) {
      // the HELLO of each part is answered with the current generation: no separate OPEN
      this.installed = this.install();
      await this.installed;
      return;
    }
    await this.installed;
    if (this.inst.gen !== gen || this.ready.size === 0) return;
    this.opening?.done();
    const info = this.openInfo(gen);
    await new Promise<void>((resolve) => {
      const waiting = new Set(this.ready);
      const timer = setTimeout(() => {
        this.inst.logger.warn(`pubsub ${this.inst.name}: scheduler(s) ${[...waiting].join(", ")} did not open the tables within ${OPEN_TIMEOUT_MS} ms`);
        done();
      }, OPEN_TIMEOUT_MS);
      timer.unref?.();
      const o = {
        gen: gen.id,
        waiting,
        done: () => {
          clearTimeout(timer);
          if (this.opening === o) this.opening = null;
          resolve();
        },
      };
      const done = o.done;
      this.opening = o;
      for (const i of waiting) this.inst.post(i, [OP.OPEN, info]);
    });
  }

  private async install(): Promise<void> {
    const inst = this.inst;
    const core = inst.core as Threaded;
    inst.link = core.threads;
    core.threads.on(inst.svc, (d, from) => this.onMessage(d as unknown[], from));
    core.threads.onSchedulerDown((i) => this.down(i));
    if (typeof core.everyThread !== "function") return;
    // registered at once (later thread starts run it); a blocked thread must not block the start
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((r) => {
      timer = setTimeout(() => {
        inst.logger.warn(`pubsub ${inst.name}: not every worker thread installed its tables within ${OPEN_TIMEOUT_MS} ms (a blocked thread gets them when it runs again)`);
        r();
      }, OPEN_TIMEOUT_MS);
      timer.unref?.();
    });
    try {
      await Promise.race([core.everyThread({ module: THREAD_MODULE, export: "pubsubThread" }, [inst.name]), late]);
    } catch (e) {
      inst.logError("installing the tables on the worker threads failed", e);
    } finally {
      clearTimeout(timer);
    }
  }

  private openInfo(gen: TablesGen): OpenInfo {
    const inst = this.inst;
    return {
      gen: gen.id,
      buffer: gen.fabric.counts.buffer as SharedArrayBuffer,
      size: gen.fabric.size,
      slots: gen.fabric.slots,
      owner: gen.owner,
      remote: inst.opts.adapter !== undefined,
      interest: gen.interest !== null,
      poolSize: inst.opts.poolSize,
      broadcastPoolSize: inst.opts.broadcastPoolSize,
      status: inst.status.buffer as SharedArrayBuffer,
      node: inst.nodeName(),
    };
  }

  /** The tables' owner exited: the parts close their tables. */
  close(gen: TablesGen, reason: ExitReason): void {
    const r = cloneable(reason) ? reason : formatReason(reason);
    for (const i of this.ready) this.inst.post(i, [OP.CLOSE, gen.id, gen.owner, r]);
  }

  /** The adapter (re)started. */
  adapterUp(node: string): void {
    for (const i of this.ready) this.inst.post(i, [OP.ADAPTER, node]);
  }

  /** Scheduler thread `i` died (the runtime tells every thread; this is the main thread's). */
  private down(i: number): void {
    this.ready.delete(i);
    this.inst.schedulerDown(i);
    const o = this.opening;
    if (o !== null && o.waiting.delete(i) && o.waiting.size === 0) o.done();
    for (const r of this.statsReqs.values()) if (r.waiting.delete(i) && r.waiting.size === 0) r.done();
  }

  /** Every worker part's counters (those that do not answer within `timeoutMs` are left out). */
  collect(timeoutMs = 2000): Promise<ThreadPartStats[]> {
    if (this.ready.size === 0) return Promise.resolve([]);
    const req = ++this.statsSeq;
    return new Promise((resolve) => {
      const rows: ThreadPartStats[] = [];
      const waiting = new Set(this.ready);
      const timer = setTimeout(() => done(), timeoutMs);
      timer.unref?.();
      const done = () => {
        clearTimeout(timer);
        this.statsReqs.delete(req);
        resolve(rows.sort((a, b) => a.scheduler - b.scheduler));
      };
      this.statsReqs.set(req, { waiting, rows, done });
      for (const i of waiting) this.inst.link?.send(i, this.inst.svc, [OP.STATS, req]);
    });
  }

  private onMessage(d: unknown[], from: number): void {
    const inst = this.inst;
    const op = d[0] as number;
    if (op !== OP.STATS_REPLY) inst.threadMsgsIn++;
    switch (op) {
      case OP.HOP:
        inst.gen?.fabric.receive(inst.index, d[1] as string, d[2], d[3] as Pid | null, d[4] as string | null);
        return;
      case OP.HOP_FWD:
        inst.forwardIn(null, d[1] as string, d[2], d[4] as string | null, d[5] as number);
        inst.gen?.fabric.receive(inst.index, d[1] as string, d[2], d[3] as Pid | null, d[4] as string | null);
        return;
      case OP.FWD:
        inst.forwardIn(null, d[1] as string, d[2], d[3] as string | null, d[4] as number);
        return;
      case OP.FWD_DIRECT:
        inst.forwardIn(d[1] as string, d[2] as string, d[3], d[4] as string | null, d[5] as number);
        return;
      case OP.GAINED:
      case OP.LOST: {
        const gen = inst.gen;
        if (gen === null || gen.id !== d[1] || gen.interest === null || !this.ready.has(from)) return;
        if (op === OP.GAINED) gen.interest.gained(d[2] as string, from);
        else gen.interest.lost(d[2] as string, from);
        return;
      }
      case OP.HELLO: {
        this.ready.add(from);
        const gen = inst.gen;
        inst.post(from, gen === null ? [OP.NONE] : [OP.OPEN, this.openInfo(gen)]);
        return;
      }
      case OP.OPENED: {
        const o = this.opening;
        if (o !== null && o.gen === d[1] && o.waiting.delete(from) && o.waiting.size === 0) o.done();
        return;
      }
      case OP.STATS_REPLY: {
        const r = this.statsReqs.get(d[1] as number);
        if (r === undefined || !r.waiting.delete(from)) return;
        r.rows.push(d[2] as ThreadPartStats);
        if (r.waiting.size === 0) r.done();
        return;
      }
    }
  }
}

/** The factory a worker part's options name when broadcasts reach other nodes (never called). */
const FORWARDED: AdapterFactory = () => {
  throw new Error("the adapter runs on the main thread");
};

/** @internal a worker thread's part of one instance */
export class WorkerPart {
  readonly inst: Instance;
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  /** the adapter's node name, as the main thread last told it */
  node: string;

  constructor(inst: Instance, ctx: ThreadContext) {
    this.inst = inst;
    this.node = inst.core.name;
    this.ready = new Promise((r) => (this.resolveReady = r));
    ctx.on(inst.svc, (d) => this.onMessage(d as unknown[]));
  }

  private onMessage(d: unknown[]): void {
    const inst = this.inst;
    const op = d[0] as number;
    if (op !== OP.STATS) inst.threadMsgsIn++;
    switch (op) {
      case OP.HOP:
        inst.gen?.fabric.receive(inst.index, d[1] as string, d[2], d[3] as Pid | null, d[4] as string | null);
        return;
      case OP.OPEN:
        this.open(d[1] as OpenInfo);
        this.resolveReady();
        return;
      case OP.NONE:
        this.resolveReady();
        return;
      case OP.CLOSE: {
        const gen = inst.gen;
        if (gen === null || gen.id !== d[1]) return;
        this.closeGen(gen, d[2] as Pid, d[3] as ExitReason);
        return;
      }
      case OP.ADAPTER:
        this.node = d[1] as string;
        return;
      case OP.STATS: {
        const gen = inst.gen;
        const t = gen?.fabric.tables[inst.index];
        const row: ThreadPartStats = {
          scheduler: inst.index,
          table: t?.stats() ?? null,
          topics: t ? [...t.topics.keys()] : [],
          fabric: gen?.fabric.stats() ?? null,
          forwardsOut: inst.forwardsOut,
          threadMsgsOut: inst.threadMsgsOut,
          threadMsgsIn: inst.threadMsgsIn,
        };
        inst.link?.send(0, inst.svc, [OP.STATS_REPLY, d[1], row]);
        return;
      }
    }
  }

  private closeGen(gen: TablesGen, owner: Pid, reason: ExitReason): void {
    const inst = this.inst;
    if (inst.gen === gen) inst.gen = null; // first: the table's lost events of a closed generation report nothing
    gen.fabric.tables[inst.index]?.close(owner, reason);
  }

  private open(info: OpenInfo): void {
    const inst = this.inst;
    const prev = inst.gen;
    if (prev !== null && prev.id === info.gen) {
      inst.post(0, [OP.OPENED, info.gen]);
      return;
    }
    if (prev !== null) this.closeGen(prev, prev.owner, "shutdown");
    const opts: ResolvedOptions = {
      name: inst.name,
      adapter: info.remote ? FORWARDED : undefined,
      poolSize: info.poolSize,
      broadcastPoolSize: info.broadcastPoolSize,
      registrySize: undefined,
      laneBound: Infinity,
      interestSlots: info.slots,
      logger: undefined,
      raw: { name: inst.name },
    };
    inst.opts = opts;
    inst.status = new Int32Array(info.status);
    inst.forward = info.remote;
    inst.adapter = info.remote ? forwardAdapter(inst, this) : null;
    this.node = info.node;
    const fabric = new SchedulerFabric(info.size, info.slots, info.buffer);
    const id = info.gen;
    let gen: TablesGen | null = null;
    const events = {
      gained: (s: number, topic: string) => {
        fabric.raise(s, topic);
        if (info.interest && inst.gen === gen) inst.post(0, [OP.GAINED, id, topic]);
      },
      lost: (s: number, topic: string) => {
        fabric.lower(s, topic);
        if (info.interest && inst.gen === gen) inst.post(0, [OP.LOST, id, topic]);
      },
    };
    fabric.tables[inst.index] = new LocalTable(inst.core.main, events, inst.logger);
    gen = new TablesGen(id, info.owner, fabric, null);
    inst.gen = gen;
    inst.post(0, [OP.OPENED, id]);
  }
}

/** A worker part's adapter: everything for other nodes goes to the main thread's part. */
function forwardAdapter(inst: Instance, part: WorkerPart): Adapter {
  const send = (data: unknown[], topic: string, msg: unknown, node: string | null): BroadcastError | null => {
    if (!inst.adapterRunning()) return inst.notRunning(topic);
    if (!cloneable(msg)) return new BroadcastError("clone", `message for ${topic} cannot be cloned to the main thread: not sent to ${node ?? "other nodes"}`, { nodes: node === null ? [] : [node] });
    inst.forwardsOut++;
    inst.post(0, data);
    return null;
  };
  return {
    nodeName: () => part.node,
    broadcast: (topic, msg, dispatcher, lane) => send([OP.FWD, topic, msg, dispatcher, lane], topic, msg, null),
    directBroadcast: (node, topic, msg, dispatcher, lane) => send([OP.FWD_DIRECT, node, topic, msg, dispatcher, lane], topic, msg, node),
    stats: () => ({ kind: "forward", node: part.node, forwardsOut: inst.forwardsOut }),
    stop() {},
  };
}

/** @internal the thread init (`everyThread`): this thread's part of the instance `name` */
export async function threadInit(ctx: ThreadContext, name: string): Promise<void> {
  const core = ctx.core as unknown as NodeCore;
  const existing = findInstance(core, name);
  if (existing !== undefined) {
    if (existing.part !== null) return existing.part.ready; // ran twice on one thread
    core.logger.error(`pubsub ${name}: a PubSub of this name was started on scheduler ${ctx.index} itself; its tables stay local to that thread`);
    return;
  }
  const placeholder: ResolvedOptions = { name, adapter: undefined, poolSize: 1, broadcastPoolSize: 1, registrySize: undefined, laneBound: Infinity, interestSlots: 1, logger: undefined, raw: { name } };
  const inst = new Instance(core, placeholder);
  inst.link = ctx;
  const part = new WorkerPart(inst, ctx);
  inst.part = part;
  registerInstance(inst);
  inst.post(0, [OP.HELLO]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((r) => {
    timer = setTimeout(() => {
      core.logger.warn(`pubsub ${name}: scheduler ${ctx.index} got no tables from the main thread within ${OPEN_TIMEOUT_MS} ms`);
      r();
    }, OPEN_TIMEOUT_MS);
    timer.unref?.();
  });
  await Promise.race([part.ready, late]);
  clearTimeout(timer);
}
