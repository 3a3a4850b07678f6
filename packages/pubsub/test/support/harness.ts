/**
 * Test support: nodes with extra in-thread schedulers (the per-scheduler seam exercised without
 * worker threads), clusters of nodes over MemoryCluster or Redis, and small helpers.
 */
import { MemoryCluster, silentLogger, startNode, type CinderNode, type ClusterTransport, type Logger, type Pid, type Process } from "@cinder/runtime";
import { Scheduler } from "../../../runtime/src/internal/scheduler.js";
import { PubSub, clusterAdapter, type ClusterAdapterStats, type PubSubOptions, type PubSubRef } from "@cinder/pubsub";
import { waitFor } from "../../../../test/support/wait.js";

export { waitFor };

/** Resolves after pending microtasks and one macrotask (hops flush in a microtask). */
export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A logger that records lines. */
export function captureLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, error: (m) => void lines.push(`error: ${m}`), warn: (m) => void lines.push(`warn: ${m}`), info: () => {} };
}

/**
 * Adds `n` in-thread schedulers to a one-scheduler node (indices 1..n). They run processes on
 * this thread but have their own pids, tables and hops, like worker schedulers would.
 */
export function addSchedulers(node: CinderNode, n: number): Scheduler[] {
  const out: Scheduler[] = [];
  const core = node as unknown as ConstructorParameters<typeof Scheduler>[0];
  for (let i = 0; i < n; i++) {
    const s = new Scheduler(core, node.schedulers.length, "v");
    node.schedulers.push(s);
    out.push(s);
  }
  return out;
}

/** A process that never receives by itself (a test drives it) on `sched`. */
export function idleOn(sched: Scheduler | Process<any>["sched"]): Process<any> {
  return sched.spawn(() => new Promise<void>(() => {}), undefined, null, false) as Process<any>;
}

/** Everything queued in a test process's mailbox, taken out. */
export function drain(p: Process<any>): unknown[] {
  return p.flush();
}

export interface ClusterNode {
  name: string;
  node: CinderNode;
  ps: PubSubRef;
  t: ClusterTransport;
}

/** Waits until every node's adapter knows every other node's interest and was acknowledged. */
export async function clusterReady(nodes: ClusterNode[], timeoutMs = 10_000): Promise<void> {
  await waitFor(
    () =>
      nodes.every((n) => {
        const a = PubSub.stats(n.ps).adapter as ClusterAdapterStats | null;
        if (a === null) return false;
        const others = nodes.filter((m) => m !== n).map((m) => m.name);
        return others.every((o) => a.peers.some((p) => p.node === o && p.known && p.acked >= 0));
      }),
    { timeoutMs, what: "every adapter knows every peer" },
  );
  await Promise.all(nodes.map((n) => PubSub.synced(n.ps, timeoutMs)));
}

export interface NodeSpec {
  name: string;
  poolSize?: number;
  broadcastPoolSize?: number;
}

/** Starts one node with a PubSub named "ps" over `t`. */
export async function startClusterNode(spec: NodeSpec, t: ClusterTransport, extra: Partial<PubSubOptions> = {}, logger: Logger = silentLogger): Promise<ClusterNode> {
  const node = await startNode({ name: spec.name, schedulers: 1, logger });
  const ps = await PubSub.start(node, {
    name: "ps",
    adapter: clusterAdapter(t, { interestSyncMs: 40 }),
    poolSize: spec.poolSize,
    broadcastPoolSize: spec.broadcastPoolSize,
    ...extra,
  });
  return { name: spec.name, node, ps, t };
}

/** Nodes over one MemoryCluster (fast heartbeats), ready (interest exchanged). */
export async function memoryCluster(specs: Array<NodeSpec | string>, opts: { downAfterMs?: number } = {}): Promise<{ cluster: MemoryCluster; nodes: ClusterNode[]; close(): Promise<void> }> {
  const cluster = new MemoryCluster({ heartbeatMs: 10, downAfterMs: opts.downAfterMs ?? 1000, logger: { warn() {}, error() {} } });
  const nodes: ClusterNode[] = [];
  for (const s of specs) {
    const spec = typeof s === "string" ? { name: s } : s;
    const t = cluster.node(spec.name);
    await t.start();
    nodes.push(await startClusterNode(spec, t));
  }
  await clusterReady(nodes);
  return {
    cluster,
    nodes,
    async close() {
      for (const n of nodes) await n.node.stop();
      await cluster.close();
    },
  };
}

/** Takes messages from `p` until `n` arrived (or fails after `timeoutMs`). */
export async function receiveN(p: Process<any>, n: number, timeoutMs = 5000): Promise<unknown[]> {
  const out: unknown[] = [];
  const deadline = performance.now() + timeoutMs;
  while (out.length < n) {
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`received ${out.length} of ${n} messages: ${JSON.stringify(out.slice(-5))}`);
    const m = await p.receive({ timeout: left });
    if (typeof m === "symbol") throw new Error(`received ${out.length} of ${n} messages: ${JSON.stringify(out.slice(-5))}`);
    out.push(m);
  }
  return out;
}

/** pid equality helper for typed refs */
export const same = (a: Pid, b: Pid): boolean => a === b;
