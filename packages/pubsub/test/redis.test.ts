/**
 * PubSub over Redis, two nodes in one process (PUBSUB.md P42 with the shared checklist), and
 * P39/P30 with Redis restarted mid-test: local delivery goes on with a typed error while Redis is
 * down, nothing crashes, and broadcasts resume after the reconnect.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { BroadcastError, PubSub } from "@cinder/pubsub";
import { createRedisTransport } from "../../redis/src/index.js";
import { startRedis, type RedisServer } from "../../../test/support/redis.js";
import { clusterReady, drain, receiveN, startClusterNode, waitFor, type ClusterNode, type NodeSpec } from "./support/harness.js";
import { adapterStats, clusterSuite } from "./support/cluster_suite.js";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
}, 30_000);
afterAll(async () => {
  await redis?.stop();
});

const quiet = { warn() {}, error() {} };

async function redisNodes(specs: Array<NodeSpec | string>, opts: { downAfterMs?: number } = {}) {
  const cluster = `ps-${randomBytes(4).toString("hex")}`;
  const nodes: ClusterNode[] = [];
  for (const s of specs) {
    const spec = typeof s === "string" ? { name: s } : s;
    const t = createRedisTransport({ url: redis.url, nodeName: spec.name, cluster, heartbeatMs: 20, downAfterMs: opts.downAfterMs ?? 1500, reconnect: { initialMs: 20, maxMs: 200 }, logger: quiet });
    await t.start();
    nodes.push(await startClusterNode(spec, t));
  }
  await clusterReady(nodes);
  return {
    nodes,
    async close() {
      for (const n of nodes) {
        await n.node.stop();
        await n.t.stop();
      }
    },
  };
}

clusterSuite("Redis, two nodes in one process", (specs) => redisNodes(specs));

describe("PubSub over Redis: Redis restarted mid-test", () => {
  it("P39 with Redis down, broadcast still delivers locally and returns a typed remote error; P30 after the reconnect broadcasts resume", async () => {
    const { nodes, close } = await redisNodes(["a", "b"], { downAfterMs: 400 });
    try {
      const [a, b] = nodes as [ClusterNode, ClusterNode];
      const sa = a.node.process();
      const sb = b.node.process();
      PubSub.subscribe(sa, a.ps, "r39");
      PubSub.subscribe(sb, b.ps, "r39");
      await Promise.all([PubSub.synced(a.ps), PubSub.synced(b.ps)]);
      PubSub.broadcast(a.node, a.ps, "r39", "before");
      expect(await receiveN(sb, 1)).toEqual(["before"]);
      drain(sa);

      await redis.kill();
      await waitFor(() => !adapterStats(a).connected, { what: "a sees Redis down" });
      const r = PubSub.broadcast(a.node, a.ps, "r39", "during");
      expect(r).toBeInstanceOf(BroadcastError);
      expect((r as BroadcastError).failure).toBe("transport");
      expect(drain(sa)).toEqual(["during"]); // local users keep talking
      // b subscribes to a new topic while Redis is down: its announcement is lost
      PubSub.subscribe(sb, b.ps, "r39-new");

      await redis.start();
      await waitFor(() => adapterStats(a).connected && adapterStats(b).connected, { what: "both reconnected", timeoutMs: 10_000 });
      await clusterReady(nodes);
      expect(PubSub.broadcast(a.node, a.ps, "r39", "after")).toBe("ok");
      PubSub.broadcast(a.node, a.ps, "r39-new", "new after");
      expect(await receiveN(sb, 2)).toEqual(["after", "new after"]);
      expect(PubSub.stats(a.ps).running).toEqual({ tables: true, adapter: true });
      expect(PubSub.stats(b.ps).running).toEqual({ tables: true, adapter: true });
    } finally {
      await close();
    }
  }, 30_000);
});
