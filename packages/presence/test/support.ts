/**
 * Test support for @cinder/presence: nodes with a PubSub and a Presence, alone or over a
 * MemoryCluster; subscribers that record the diffs they get; and a phoenix.js client model
 * (the real `Presence.syncState` / `syncDiff` of phoenix 1.8.16) to apply them to.
 */
import { MemoryCluster, silentLogger, startNode, type CinderNode, type ClusterTransport, type Logger, type Process } from "@cinder/runtime";
import { PubSub, clusterAdapter, type ClusterAdapterStats, type PubSubRef } from "@cinder/pubsub";
import { Tracker } from "@cinder/tracker";
import { Presence, isPresenceBroadcast, type PresenceDiff, type PresenceOptions, type PresenceRef, type PresenceState } from "@cinder/presence";
import { Presence as PhxPresence } from "phoenix";
import { waitFor } from "../../../test/support/wait.js";

export { waitFor };
export { holdsFor } from "../../../test/support/wait.js";

export type POpts = Partial<Omit<PresenceOptions, "name" | "pubsub">>;

export interface PNode {
  name: string;
  node: CinderNode;
  ps: PubSubRef;
  presence: PresenceRef;
  /** a process of the node, for calls */
  me: Process<any>;
}

/** Fast tracker periods for tests, unless overridden. */
export function fastOpts(extra: POpts = {}): POpts {
  return { broadcastPeriod: 20, maxSilentPeriods: 2, downPeriod: 300, permdownPeriod: 1200, ...extra };
}

/** A node with PubSub "ps" (over `t`, or alone) and Presence "pr". */
export async function startPresenceNode(name: string, t: ClusterTransport | null, extra: POpts = {}, logger: Logger = silentLogger): Promise<PNode> {
  const node = await startNode({ name, schedulers: 1, logger });
  const ps = await PubSub.start(node, t === null ? { name: "ps" } : { name: "ps", adapter: clusterAdapter(t, { interestSyncMs: 40 }) });
  const presence = await Presence.start(node, { name: "pr", pubsub: ps, ...fastOpts(extra) });
  return { name, node, ps, presence, me: node.process() };
}

/** A subscriber of `topic` on `n` that records every diff broadcast to it. */
export class Watcher {
  readonly proc: Process<any>;
  private readonly got: PresenceDiff[] = [];
  readonly others: unknown[] = [];
  constructor(n: PNode, readonly topic: string) {
    this.proc = n.node.process();
    PubSub.subscribe(this.proc, n.ps, topic);
  }
  /** Every diff received so far, in order. */
  get diffs(): PresenceDiff[] {
    for (const m of this.proc.flush()) {
      if (isPresenceBroadcast(m) && m.topic === this.topic) this.got.push(m.payload);
      else this.others.push(m);
    }
    return this.got;
  }
  /** The state the diffs add up to on a phoenix.js client that started empty. */
  view(): Array<[string, string[]]> {
    return view(this.diffs.reduce((s, d) => applyDiff(s, d), {} as PresenceState));
  }
}

/** phoenix.js applies a `presence_state` (reconciling with what it has). */
export function applyState(client: PresenceState, state: PresenceState): PresenceState {
  return PhxPresence.syncState(client as any, JSON.parse(JSON.stringify(state))) as unknown as PresenceState;
}

/** phoenix.js applies a `presence_diff` (joins, then leaves). */
export function applyDiff(client: PresenceState, diff: PresenceDiff): PresenceState {
  return PhxPresence.syncDiff(client as any, JSON.parse(JSON.stringify(diff))) as unknown as PresenceState;
}

/**
 * A state as sorted `[key, sorted phx_refs]` pairs, for comparisons (pairs, not an object, so
 * keys such as `__proto__` compare as keys).
 */
export function view(state: PresenceState): Array<[string, string[]]> {
  return Object.keys(state)
    .sort()
    .map((k) => [k, state[k]!.metas.map((m) => m.phx_ref).sort()]);
}

/** Metas in a state. */
export function size(state: PresenceState): number {
  let n = 0;
  for (const k of Object.keys(state)) n += state[k]!.metas.length;
  return n;
}

export interface PCluster {
  cluster: MemoryCluster;
  nodes: PNode[];
  byName(name: string): PNode;
  start(name: string, extra?: POpts): Promise<PNode>;
  /** Kills node `name` like SIGKILL: its transport goes silent at once, then its processes stop. */
  kill(name: string): Promise<void>;
  close(): Promise<void>;
}

/** Nodes over one MemoryCluster, each with PubSub "ps" and Presence "pr". */
export async function presenceCluster(names: string[], extra: POpts = {}): Promise<PCluster> {
  const cluster = new MemoryCluster({ heartbeatMs: 10, downAfterMs: 150, logger: { warn() {}, error() {} } });
  const nodes: PNode[] = [];
  const c: PCluster = {
    cluster,
    nodes,
    byName(name) {
      const n = nodes.find((x) => x.name === name);
      if (n === undefined) throw new Error(`no node ${name}`);
      return n;
    },
    async start(name, more = {}) {
      const t = cluster.transport(name) === undefined ? cluster.node(name) : cluster.restart(name);
      await t.start();
      const n = await startPresenceNode(name, t, { ...extra, ...more });
      const old = nodes.findIndex((x) => x.name === name);
      if (old >= 0) nodes[old] = n;
      else nodes.push(n);
      return n;
    },
    async kill(name) {
      const n = c.byName(name);
      cluster.kill(name);
      nodes.splice(nodes.indexOf(n), 1);
      await n.node.stop();
    },
    async close() {
      for (const n of nodes.splice(0)) await n.node.stop();
      await cluster.close();
    },
  };
  for (const name of names) await c.start(name);
  await waitFor(
    () =>
      nodes.every((n) => {
        const a = PubSub.stats(n.ps).adapter as ClusterAdapterStats | null;
        return a !== null && nodes.every((m) => m === n || a.peers.some((p) => p.node === m.name && p.known && p.acked >= 0));
      }),
    { timeoutMs: 10_000, what: "every PubSub adapter knows every peer" },
  );
  await waitFor(
    () =>
      nodes.every((n) =>
        Tracker.stats(n.node, Presence.tracker(n.node, n.presence)).every((s) => nodes.every((m) => m === n || s.peers.some((p) => p.node === m.name && p.status === "up" && !p.catchingUp))),
      ),
    { timeoutMs: 10_000, what: "every tracker shard sees every peer up" },
  );
  return c;
}
