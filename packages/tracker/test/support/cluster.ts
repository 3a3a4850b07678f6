/**
 * Test support for the tracker: nodes running PubSub and a tracker, alone or over a
 * MemoryCluster, with a recorder of every diff and replica event, and a mirror of the
 * presences built from the diffs alone (to check that diffs equal the observable change).
 */
import { MemoryCluster, silentLogger, startNode, type CinderNode, type ClusterTransport, type Logger, type Pid, type Process } from "@cinder/runtime";
import { PubSub, clusterAdapter, type ClusterAdapterStats, type PubSubRef } from "@cinder/pubsub";
import { Tracker, type ReplicaEvent, type TrackerDiff, type TrackerOptions, type TrackerRef } from "@cinder/tracker";
import { waitFor } from "../../../../test/support/wait.js";

export { waitFor };
export { holdsFor, sleep } from "../../../../test/support/wait.js";

/** Every diff a tracker reported on one node, and the presences they add up to. */
export class DiffLog {
  calls: Array<{ topic: string; joins: Array<{ key: string; meta: any }>; leaves: Array<{ key: string; meta: any }> }[]> = [];
  joins = 0;
  leaves = 0;
  /** topic → `${key} ${phx_ref}` → meta, from diffs only */
  readonly mirror = new Map<string, Map<string, any>>();
  /** diffs that did not fit the mirror (a leave of something not shown, a join shown twice) */
  readonly problems: string[] = [];

  /** Only count (for load tests): no mirror, no history. */
  countOnly = false;

  apply(diff: TrackerDiff): void {
    if (this.countOnly) {
      for (const d of diff.values()) {
        this.joins += d.joins.length;
        this.leaves += d.leaves.length;
      }
      this.calls.length = 0;
      return;
    }
    const call = [];
    for (const [topic, { joins, leaves }] of diff) {
      call.push({ topic, joins: [...joins], leaves: [...leaves] });
      let m = this.mirror.get(topic);
      if (m === undefined) this.mirror.set(topic, (m = new Map()));
      for (const l of leaves) {
        const k = `${l.key} ${String(l.meta.phx_ref)}`;
        if (!m.delete(k)) this.problems.push(`leave of ${topic} ${k} not shown`);
        this.leaves++;
      }
      for (const j of joins) {
        const k = `${j.key} ${String(j.meta.phx_ref)}`;
        if (m.has(k)) this.problems.push(`join of ${topic} ${k} already shown`);
        m.set(k, j.meta);
        this.joins++;
      }
      if (m.size === 0) this.mirror.delete(topic);
    }
    this.calls.push(call);
  }

  /** The mirror of `topic` as sorted `key ref` strings. */
  view(topic: string): string[] {
    return [...(this.mirror.get(topic)?.keys() ?? [])].sort();
  }

  /** Every join/leave reported for `topic` and `key`, in order: "+" join, "-" leave. */
  history(topic: string, key: string): string[] {
    const out: string[] = [];
    for (const call of this.calls) {
      for (const d of call) {
        if (d.topic !== topic) continue;
        for (const l of d.leaves) if (l.key === key) out.push(`-${String(l.meta.phx_ref)}`);
        for (const j of d.joins) if (j.key === key) out.push(`+${String(j.meta.phx_ref)}`);
      }
    }
    return out;
  }
}

/** `list` rendered like `DiffLog.view`. */
export function listView(n: TNode, topic: string): string[] {
  return Tracker.list(n.node, n.tracker, topic)
    .map((p) => `${p.key} ${String(p.meta.phx_ref)}`)
    .sort();
}

export interface TNode {
  name: string;
  node: CinderNode;
  ps: PubSubRef;
  t: ClusterTransport | null;
  tracker: TrackerRef;
  diffs: DiffLog;
  events: ReplicaEvent[];
  /** a process of the node, for calls */
  me: Process<any>;
}

export type TOpts = Partial<TrackerOptions<unknown, unknown>>;

/** Tracker options for tests: fast periods unless overridden. */
export function fastOpts(extra: TOpts = {}): TOpts {
  return { broadcastPeriod: 20, maxSilentPeriods: 2, downPeriod: 300, permdownPeriod: 1200, ...extra };
}

/** Starts a node with PubSub "ps" (over `t`, or alone) and tracker "tr" recording its diffs. */
export async function startTrackerNode(name: string, t: ClusterTransport | null, extra: TOpts = {}, logger: Logger = silentLogger): Promise<TNode> {
  const node = await startNode({ name, schedulers: 1, logger });
  const ps = await PubSub.start(node, t === null ? { name: "ps" } : { name: "ps", adapter: clusterAdapter(t, { interestSyncMs: 40 }) });
  const diffs = new DiffLog();
  const events: ReplicaEvent[] = [];
  const sink = node.spawn({ handle: (m: unknown) => void events.push(m as ReplicaEvent) });
  const userDiff = extra.handleDiff;
  const tracker = await Tracker.start(node, {
    name: "tr",
    pubsub: ps,
    reportEventsTo: sink,
    ...fastOpts(extra),
    handleDiff: (diff, state) => {
      diffs.apply(diff);
      return userDiff ? userDiff(diff, state) : { state };
    },
  });
  return { name, node, ps, t, tracker, diffs, events, me: node.process() };
}

export interface TCluster {
  cluster: MemoryCluster;
  nodes: TNode[];
  byName(name: string): TNode;
  /** Starts (or restarts, with a new incarnation) node `name`. */
  start(name: string, extra?: TOpts): Promise<TNode>;
  /** Kills node `name` like SIGKILL (transport silent at once, its processes halted). */
  kill(name: string): Promise<void>;
  close(): Promise<void>;
}

/** Nodes over one MemoryCluster, each with PubSub and tracker "tr". */
export async function trackerCluster(names: string[], extra: TOpts = {}, opts: { downAfterMs?: number; heartbeatMs?: number } = {}): Promise<TCluster> {
  const cluster = new MemoryCluster({ heartbeatMs: opts.heartbeatMs ?? 10, downAfterMs: opts.downAfterMs ?? 150, logger: { warn() {}, error() {} } });
  const nodes: TNode[] = [];
  const c: TCluster = {
    cluster,
    nodes,
    byName(name) {
      const n = nodes.find((x) => x.name === name);
      if (n === undefined) throw new Error(`no node ${name}`);
      return n;
    },
    async start(name, more = {}) {
      const old = nodes.findIndex((x) => x.name === name);
      const t = cluster.transport(name) === undefined ? cluster.node(name) : cluster.restart(name);
      await t.start();
      const n = await startTrackerNode(name, t, { ...extra, ...more });
      if (old >= 0) nodes[old] = n;
      else nodes.push(n);
      return n;
    },
    async kill(name) {
      const n = c.byName(name);
      cluster.kill(name);
      await n.node.stop();
    },
    async close() {
      for (const n of nodes) await n.node.stop();
      await cluster.close();
    },
  };
  for (const name of names) await c.start(name);
  await peersReady(nodes);
  return c;
}

/** Waits until every node's PubSub adapter knows every other node (interest exchanged). */
export async function peersReady(nodes: TNode[], timeoutMs = 10_000): Promise<void> {
  await waitFor(
    () =>
      nodes.every((n) => {
        const a = PubSub.stats(n.ps).adapter as ClusterAdapterStats | null;
        return a !== null && nodes.every((m) => m === n || a.peers.some((p) => p.node === m.name && p.known && p.acked >= 0));
      }),
    { timeoutMs, what: "every PubSub adapter knows every peer" },
  );
}

/** Waits until every shard of every node sees every other node's shard up. */
export async function trackersMet(nodes: TNode[], timeoutMs = 10_000): Promise<void> {
  await waitFor(
    () =>
      nodes.every((n) =>
        Tracker.stats(n.node, n.tracker).every((s) => nodes.every((m) => m === n || s.peers.some((p) => p.node === m.name && p.status === "up" && !p.catchingUp))),
      ),
    { timeoutMs, what: "every shard sees every peer up" },
  );
}

/** Spawns an idle actor on `n` (lives until killed). */
export function actor(n: TNode): Process<any> {
  return n.node.process();
}

/** The sum of `list` sizes over `topics` on `n`. */
export function listed(n: TNode, topics: Iterable<string>): number {
  let s = 0;
  for (const t of topics) s += Tracker.list(n.node, n.tracker, t).length;
  return s;
}

export const pidOf = (p: Process<any>): Pid => p.pid;

/**
 * Queues `count` track calls in the mailboxes of the shards at once, as `count` concurrent
 * callers would (call i tracks `what(i)`), using GenServer's call envelope
 * (`{ $gen: "call", req, from }`, see gen_server.ts) with one collector as the reply ref, so the
 * backlog costs no reply slot per call. `done` resolves with the number of error replies once
 * every reply has arrived.
 */
export function floodTracks(n: TNode, count: number, what: (i: number) => { pid: Pid; topic: string; key: string; meta?: Record<string, unknown> }): { done: Promise<number> } {
  const shards = new Map(Tracker.stats(n.node, n.tracker).map((s) => [s.shard, s.pid]));
  let replies = 0;
  let errors = 0;
  let resolve!: (n: number) => void;
  const done = new Promise<number>((r) => (resolve = r));
  const collector = n.node.spawn({
    handle(m: any) {
      if (m && "$reply" in m) {
        replies++;
        if (!("ok" in m.$reply)) errors++;
        if (replies === count) resolve(errors);
      }
    },
  });
  for (let i = 0; i < count; i++) {
    const { pid, topic, key, meta } = what(i);
    const shard = shards.get(Tracker.shardOf(n.node, n.tracker, topic));
    if (shard === undefined) throw new Error(`no shard for ${topic}`);
    n.node.send(shard, { $gen: "call", req: { op: "track", pid, topic, key, meta: meta ?? {} }, from: collector });
  }
  return { done };
}
