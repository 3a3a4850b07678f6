/**
 * The node handle: start a node, spawn and send from outside any process, supervise
 * top-level services under the root supervisor, and stop everything gracefully.
 */
import { NodeCore, type NodeOptions } from "./internal/node_core.js";
import { Supervisor, type ChildSpec, type SupervisorRef } from "./supervisor.js";
import type { Pid } from "./internal/types.js";
import { availableParallelism } from "node:os";
import { WorkerSchedulers, type WorkerOptions } from "./internal/schedulers.js";
import type { SchedulerStats } from "./internal/scheduler.js";
import { CinderError } from "./internal/errors.js";
import { ClusterRouter } from "./internal/cluster_router.js";
import type { ClusterTransport } from "./cluster/transport.js";
import { moduleUrl, type ModuleRef } from "./internal/remote_spawn.js";

/** Options for `startNode`. */
export interface StartNodeOptions extends NodeOptions {
  /**
   * Number of schedulers (threads), main thread included. Default `os.availableParallelism()`.
   * When given, the worker threads start with the node; when omitted, on first use.
   */
  schedulers?: number;
  /** Worker-thread options: watchdog, resource limits, callbacks. */
  workers?: WorkerOptions;
}

/** Statistics of one scheduler. */
export type NodeSchedulerStats = SchedulerStats & { messagesOut?: number; mailboxes?: Array<{ pid: Pid; length: number; highWater: number }> };

/**
 * A running Cinder node (one OS process). Named `CinderNode` so it does not clash with the
 * DOM's `Node`.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * const node = await startNode({ name: "demo" });
 * const me = node.process();
 * node.send(me.pid, "hello");
 * console.log(await me.receive()); // "hello"
 * await node.stop();
 * ```
 */
export class CinderNode extends NodeCore {
  /** @internal the piscina pool for dirty work (created on first use) */
  dirtyPool: { destroy(): Promise<void> } | undefined;
  /** The root supervisor (one_for_one) that top-level services run under. */
  root!: SupervisorRef;

  /** Number of schedulers (main thread included). */
  readonly schedulerCount: number;
  private readonly workerOpts: WorkerOptions | undefined;
  private pool: WorkerSchedulers | null = null;
  private poolStarting: Promise<WorkerSchedulers | null> | null = null;

  private constructor(opts: StartNodeOptions) {
    super(opts);
    const n = opts.schedulers ?? availableParallelism();
    if (!Number.isInteger(n) || n < 1) throw new CinderError("badarg", `schedulers must be a positive integer, got ${String(opts.schedulers)}`);
    this.schedulerCount = n;
    this.workerOpts = opts.workers;
  }

  /** Starts a node. */
  static async start(opts: StartNodeOptions = {}): Promise<CinderNode> {
    const node = new CinderNode(opts);
    if (opts.schedulers !== undefined && opts.schedulers > 1) await node.workerSchedulers();
    node.root = await Supervisor.start(node, { strategy: "one_for_one", maxRestarts: 3, maxSeconds: 5, children: [] }, { name: "cinder.root" });
    return node;
  }

  /** @internal remote processes over the cluster transport, once connected */
  cluster: ClusterRouter | null = null;
  private ownsTransport = false;

  /**
   * Joins a cluster: pids of other nodes become reachable (send, link, monitor; DOWN and EXIT
   * `noconnection` when a node goes down). The transport's node name must be this node's name.
   * Starts the transport unless `{ start: false }`; `stop()` then stops it too.
   */
  async connect(transport: ClusterTransport, opts: { start?: boolean } = {}): Promise<void> {
    if (this.cluster) throw new CinderError("badarg", "this node is already connected to a cluster");
    if (transport.nodeName !== this.name) throw new CinderError("badarg", `transport node name ${transport.nodeName} differs from the node name ${this.name}`);
    const r = new ClusterRouter(this, transport);
    this.cluster = r;
    if (this.pool) this.attachClusterToPool(this.pool);
    else if (this.router === null) this.router = r;
    if (opts.start !== false) {
      this.ownsTransport = true;
      await transport.start();
    }
  }

  private attachClusterToPool(pool: WorkerSchedulers): void {
    const r = this.cluster;
    if (!r) return;
    pool.mesh.remote = r;
    r.onNodeDown = (prefix) => pool.mesh.controlAll({ c: "nodedown", prefix });
  }

  /** @internal the worker schedulers (started on first use); null with one scheduler */
  workerSchedulers(): Promise<WorkerSchedulers | null> {
    if (this.schedulerCount <= 1 || this.stopped) return Promise.resolve(this.pool);
    this.poolStarting ??= (async () => {
      const pool = new WorkerSchedulers(this, this.schedulerCount, this.workerOpts);
      this.attachClusterToPool(pool);
      for (const t of this.threadInits) void pool.everyThread(t.url, t.export, t.args);
      await pool.start();
      this.pool = pool;
      return pool;
    })();
    return this.poolStarting;
  }

  /** Per-scheduler statistics (processes, run queue, messages in/out, mailboxes), main thread first. */
  async stats(): Promise<NodeSchedulerStats[]> {
    const pool = this.pool;
    if (pool) return pool.stats();
    const mailboxes: Array<{ pid: Pid; length: number; highWater: number }> = [];
    for (const p of this.main.procs.values()) if (p.mailboxLength > 0 || p.highWater > 0) mailboxes.push({ pid: p.pid, length: p.mailboxLength, highWater: p.highWater });
    return [{ ...this.main.stats(), messagesOut: 0, mailboxes: mailboxes.slice(0, 1000) }];
  }

  private readonly threadInits: Array<{ url: string; export: string; args: unknown[] }> = [];

  /**
   * Runs `ref`'s export `(ctx: ThreadContext, ...args)` on every worker scheduler thread, now
   * and on every thread started later (lazy start, restarts): how a node-wide service installs
   * its part on each thread (see `ThreadContext`). The main thread's part is the caller's.
   */
  async everyThread(ref: ModuleRef, args: unknown[] = []): Promise<void> {
    const t = { url: moduleUrl(ref.module), export: ref.export, args };
    this.threadInits.push(t);
    // a pool that is starting took its copy of threadInits already: run it there once it is up
    const pool = this.pool ?? (this.poolStarting ? await this.poolStarting : null);
    if (pool) await pool.everyThread(t.url, t.export, t.args);
  }

  /** Terminates scheduler thread `index` as a crash would (chaos tests); it is restarted. */
  async killScheduler(index: number): Promise<void> {
    const pool = await this.workerSchedulers();
    if (!pool || index === 0) throw new CinderError("badarg", `cannot kill scheduler ${index}`);
    await pool.kill(index);
  }

  /** Resolves once scheduler `index` runs (e.g. after a restart). */
  async schedulerReady(index: number): Promise<void> {
    await (await this.workerSchedulers())?.ready(index);
  }

  /** Starts a child under the root supervisor; resolves with its pid. */
  startChild(spec: ChildSpec): Promise<Pid | undefined> {
    return Supervisor.startChild(this, this.root, spec);
  }

  /** True once `stop` has begun. */
  get stopping(): boolean {
    return this.stopped;
  }

  /**
   * Stops the node gracefully: the root supervisor stops its children in reverse start order
   * within their shutdown budgets; then every other process is ended and every timer cleared,
   * so nothing keeps the OS process alive.
   */
  stop(): Promise<void> {
    // a second (concurrent) stop waits for the first to finish
    return (this.stopDone ??= this.stopOnce());
  }

  private stopDone: Promise<void> | undefined;

  private async stopOnce(): Promise<void> {
    this.stopped = true;
    try {
      await Supervisor.stop(this, this.root, "shutdown");
    } catch {
      // the root is already gone: nothing to stop in order
    }
    this.haltKernel();
    const pool = this.poolStarting ? await this.poolStarting.catch(() => null) : null;
    await pool?.stop();
    await this.dirtyPool?.destroy();
    if (this.cluster) {
      this.cluster.flush();
      this.cluster.close();
      if (this.ownsTransport) await this.cluster.transport.stop();
    }
  }
}

/**
 * Starts a node (same as `CinderNode.start`). Pids carry the node's name; a name with `<`, `>`,
 * `.`, `#` or spaces is refused (`badarg`).
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * const node = await startNode({ name: "web-1", schedulers: 1 });
 * console.log(node.name, node.schedulerCount); // ["web-1", 1]
 * console.log(node.spawn(() => {}).startsWith("<web-1#")); // true
 * await node.stop();
 * console.log(node.stopping); // true
 * console.log(await startNode({ name: "web 1" }).catch((e) => e.code)); // "badarg"
 * ```
 */
export function startNode(opts?: StartNodeOptions): Promise<CinderNode> {
  return CinderNode.start(opts);
}
