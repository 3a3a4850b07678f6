/**
 * Trackers in two OS processes over a real Redis (the Redis cluster transport): this process
 * runs node "a", a child process (`fixtures/tracker-node.ts`) runs node "b". Covers replication
 * both ways, crash-driven untracking across processes, graceful permdown, and a SIGKILLed node
 * whose presences drop after downPeriod and are purged after permdownPeriod; and the topic hash
 * computed by the other node (T47).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { silentLogger, startNode, type CinderNode } from "@cinder/runtime";
import { PubSub, clusterAdapter, type PubSubRef } from "@cinder/pubsub";
import { createRedisTransport, type RedisTransport } from "@cinder/redis";
import { Tracker, shardOf, topicHash, type ReplicaEvent, type TrackerRef } from "@cinder/tracker";
import { startRedis, type RedisServer } from "../../../test/support/redis.js";
import { DiffLog, waitFor } from "./support/cluster.js";
import { spawnTsxChild } from "../../../test/support/child.js";

const HB = 50;
const TRANSPORT_DOWN = 500;
const OPTS = { broadcastPeriod: 30, maxSilentPeriods: 3, downPeriod: 800, permdownPeriod: 2000 };

let redis: RedisServer;
let seq = 0;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

interface Child {
  proc: ChildProcessWithoutNullStreams;
  lines: Array<Record<string, any>>;
  stderr: () => string;
  call(cmd: Record<string, unknown>): Promise<Record<string, any>>;
}

const children: ChildProcessWithoutNullStreams[] = [];
const locals: Array<{ node: CinderNode; t: RedisTransport }> = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const l of locals.splice(0)) {
    await l.node.stop();
    await l.t.stop();
  }
});

function spawnChild(nodeName: string, cluster: string): Child {
  const { proc, lines, stderr } = spawnTsxChild<Record<string, any>>(new URL("./fixtures/tracker-node.ts", import.meta.url), {
    REDIS_URL: redis.url,
    NODE_NAME: nodeName,
    CLUSTER: cluster,
    HEARTBEAT_MS: String(HB),
    DOWN_AFTER_MS: String(TRANSPORT_DOWN),
    TRACKER_OPTS: JSON.stringify(OPTS),
  });
  children.push(proc);
  let id = 0;
  return {
    proc,
    lines,
    stderr,
    async call(cmd) {
      const my = ++id;
      proc.stdin.write(`${JSON.stringify({ ...cmd, id: my })}\n`);
      const r = await waitFor(() => lines.find((l) => l.id === my), { timeoutMs: 15_000, what: `child answer to ${String(cmd.cmd)}` }).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\nchild stderr:\n${stderr()}`);
      });
      if (r.error !== undefined) throw new Error(`child: ${r.error}`);
      return r;
    },
  };
}

async function childReady(c: Child): Promise<Record<string, any>> {
  return waitFor(() => c.lines.find((l) => l.event === "ready") ?? (c.proc.exitCode !== null ? { exited: c.proc.exitCode } : undefined), { timeoutMs: 20_000, what: "child node ready" }).then(
    (r) => {
      if (r.exited !== undefined) throw new Error(`child exited (${r.exited as number}) before ready:\n${c.stderr()}`);
      return r;
    },
    (e: unknown) => {
      throw new Error(`${(e as Error).message}\nchild stderr:\n${c.stderr()}`);
    },
  );
}

interface Local {
  node: CinderNode;
  ps: PubSubRef;
  tracker: TrackerRef;
  diffs: DiffLog;
  events: ReplicaEvent[];
}

async function startLocal(cluster: string): Promise<Local> {
  const t = createRedisTransport({ url: redis.url, nodeName: "a", cluster, heartbeatMs: HB, downAfterMs: TRANSPORT_DOWN, reconnect: { initialMs: 20, maxMs: 200 }, logger: { warn() {}, error() {} } });
  await t.start();
  const node = await startNode({ name: "a", schedulers: 1, logger: silentLogger });
  locals.push({ node, t });
  const ps = await PubSub.start(node, { name: "ps", adapter: clusterAdapter(t, { interestSyncMs: 100 }) });
  const diffs = new DiffLog();
  const events: ReplicaEvent[] = [];
  const sink = node.spawn({ handle: (m: unknown) => void events.push(m as ReplicaEvent) });
  const tracker = await Tracker.start(node, {
    name: "tr",
    pubsub: ps,
    reportEventsTo: sink,
    ...OPTS,
    handleDiff: (diff, state) => {
      diffs.apply(diff);
      return { state };
    },
  });
  return { node, ps, tracker, diffs, events };
}

const topics = ["t:0", "t:1", "t:2", "t:3"];
const listed = (l: Local) => topics.reduce((s, t) => s + Tracker.list(l.node, l.tracker, t).length, 0);

describe("two OS processes over Redis", () => {
  it("presences replicate both ways; the child's actors dying untrack them on this node; the other node's hash agrees (T47)", async () => {
    const cluster = `tracker-${process.pid}-${++seq}`;
    const a = await startLocal(cluster);
    const b = spawnChild("b", cluster);
    const ready = await childReady(b);
    await waitFor(() => a.events.some((e) => e.event === "up" && e.replica === ready.replica), { timeoutMs: 10_000, what: "a meets b" });
    // b → a
    await b.call({ cmd: "track", n: 200, topics: 4, prefix: "b" });
    await waitFor(() => listed(a) === 200, { timeoutMs: 10_000, what: "a lists b's 200" });
    // a → b
    const user = a.node.process();
    for (const t of topics) await Tracker.track(user, a.tracker, user.pid, t, "alice", {});
    await waitFor(async () => (await b.call({ cmd: "list", topics })).counts.reduce((x: number, y: number) => x + y, 0) === 204, { timeoutMs: 10_000, what: "b lists 204" });
    const bl = await b.call({ cmd: "list", topics: ["t:0"] });
    expect(bl.keys).toContain("alice");
    // crash-driven untrack across processes
    await b.call({ cmd: "kill" });
    await waitFor(() => listed(a) === 4, { timeoutMs: 10_000, what: "b's leaves reach a" });
    expect(a.diffs.joins).toBe(204);
    expect(a.diffs.leaves).toBe(200);
    for (const t of topics) expect(a.diffs.view(t)).toEqual(Tracker.list(a.node, a.tracker, t).map((p) => `${p.key} ${String(p.meta.phx_ref)}`).sort());
    const bs = await b.call({ cmd: "stats" });
    expect(bs.joins).toBe(204);
    expect(bs.leaves).toBe(200);
    // T47: the other OS process maps topics to shards exactly as this one
    const probe = ["", "a", "room:lobby", "héllo", "日本語", "🔥 fire", "t:999"];
    const h = await b.call({ cmd: "hash", topics: probe });
    expect(h.hashes).toEqual(probe.map((t) => [topicHash(t), shardOf(t, 8), shardOf(t, 512)]));
  });

  it("a SIGKILLed node's presences drop after downPeriod and are purged after permdownPeriod; a graceful permdown drops them at once", async () => {
    const cluster = `tracker-${process.pid}-${++seq}`;
    const a = await startLocal(cluster);
    const b = spawnChild("b", cluster);
    const ready = await childReady(b);
    await b.call({ cmd: "track", n: 100, topics: 4, prefix: "b" });
    await waitFor(() => listed(a) === 100, { timeoutMs: 10_000, what: "a lists b's 100" });
    const t0 = performance.now();
    b.proc.kill("SIGKILL");
    await waitFor(() => listed(a) === 0, { timeoutMs: 10_000, what: "b's presences drop" });
    const dropped = performance.now() - t0;
    expect(dropped).toBeGreaterThan(OPTS.downPeriod - OPTS.broadcastPeriod * (OPTS.maxSilentPeriods + 2));
    expect(dropped).toBeLessThan(OPTS.downPeriod + 1000);
    expect(topics.reduce((s, t) => s + Tracker.dirtyList(a.node, a.tracker, t).length, 0)).toBe(100);
    await waitFor(() => topics.every((t) => Tracker.dirtyList(a.node, a.tracker, t).length === 0), { timeoutMs: 10_000, what: "permdown purge" });
    expect(performance.now() - t0).toBeGreaterThan(OPTS.permdownPeriod - OPTS.broadcastPeriod * (OPTS.maxSilentPeriods + 2));
    expect(a.events.filter((e) => e.replica === ready.replica).map((e) => e.event)).toEqual(["up", "down", "permdown"]);
    // a new child process: a new incarnation, then a graceful exit
    const b2 = spawnChild("b", cluster);
    const ready2 = await childReady(b2);
    expect(ready2.replica).not.toBe(ready.replica);
    await b2.call({ cmd: "track", n: 50, topics: 4, prefix: "c" });
    await waitFor(() => listed(a) === 50, { timeoutMs: 10_000, what: "a lists the new incarnation's 50" });
    const t1 = performance.now();
    await b2.call({ cmd: "graceful" });
    await waitFor(() => listed(a) === 0 && topics.every((t) => Tracker.dirtyList(a.node, a.tracker, t).length === 0), { timeoutMs: 5000, what: "graceful permdown" });
    expect(performance.now() - t1).toBeLessThan(OPTS.downPeriod);
    expect(a.events.filter((e) => e.replica === ready2.replica).map((e) => e.event)).toEqual(["up", "down", "permdown"]);
    expect(a.diffs.problems).toEqual([]);
  });
});
