/**
 * The cluster adapter over MemoryCluster: the shared multi-node checklist (support/cluster_suite)
 * plus what needs fault injection: P30 (join, partition heals, lost/duplicated announcements),
 * P39 (transport down), bad frames, interest state size.
 */
import { describe, expect, it } from "vitest";
import { MemoryCluster, encodeFrame, silentLogger, type Process } from "@cinder/runtime";
import { BroadcastError, PubSub } from "@cinder/pubsub";
import { captureLogger, clusterReady, drain, memoryCluster, receiveN, startClusterNode, waitFor, type ClusterNode } from "./support/harness.js";
import { adapterStats, clusterSuite } from "./support/cluster_suite.js";

clusterSuite("MemoryCluster", (specs) => memoryCluster(specs));

const peerOf = (n: ClusterNode, other: string) => adapterStats(n).peers.find((p) => p.node === other);

describe("cluster adapter over MemoryCluster: faults", () => {
  it("P30 after a node joins, broadcasts reach its existing subscribers, and it reaches theirs", async () => {
    const { cluster, nodes, close } = await memoryCluster(["a", "b"]);
    try {
      const [a] = nodes as [ClusterNode];
      const sa = a.node.process();
      PubSub.subscribe(sa, a.ps, "p30");
      await PubSub.synced(a.ps);
      const t = cluster.node("c");
      await t.start();
      const c = await startClusterNode({ name: "c" }, t);
      nodes.push(c);
      const sc = c.node.process();
      PubSub.subscribe(sc, c.ps, "p30");
      await clusterReady(nodes);
      PubSub.broadcast(c.node, c.ps, "p30", "from c");
      PubSub.broadcast(a.node, a.ps, "p30", "from a");
      expect(((await receiveN(sa, 2)) as string[]).sort()).toEqual(["from a", "from c"]);
      expect(((await receiveN(sc, 2)) as string[]).sort()).toEqual(["from a", "from c"]);
    } finally {
      await close();
    }
  });

  it("P30 after a partition heals, broadcasts reach subscribers made during the split (the lost announcement is repaired)", async () => {
    const { cluster, nodes, close } = await memoryCluster(["a", "b"], { downAfterMs: 300 });
    try {
      const [a, b] = nodes as [ClusterNode, ClusterNode];
      const sb = b.node.process();
      PubSub.subscribe(sb, b.ps, "before");
      await PubSub.synced(b.ps);
      cluster.partition(["a"], ["b"]);
      PubSub.broadcast(a.node, a.ps, "before", "lost in the split"); // at most once: gone
      PubSub.subscribe(sb, b.ps, "during"); // its announcement is lost too
      await waitFor(() => peerOf(a, "b") === undefined && peerOf(b, "a") === undefined, { what: "both sides see the other down" });
      expect(PubSub.broadcast(a.node, a.ps, "before", "not sent")).toBe("ok");
      cluster.heal();
      await clusterReady(nodes);
      expect(peerOf(a, "b")!.topics).toBe(2);
      PubSub.broadcast(a.node, a.ps, "during", "healed");
      PubSub.broadcast(a.node, a.ps, "before", "healed too");
      expect(await receiveN(sb, 2)).toEqual(["healed", "healed too"]);
      expect(drain(sb)).toEqual([]);
    } finally {
      await close();
    }
  });

  it("P30 lost, duplicated and reordered interest announcements are repaired (digest and resync)", async () => {
    const { cluster, nodes, close } = await memoryCluster(["a", "b"]);
    try {
      const [a, b] = nodes as [ClusterNode, ClusterNode];
      cluster.setLink("b", "a", { drop: 0.3, duplicate: 0.3, reorder: 0.2 });
      const sb = b.node.process();
      const topics: string[] = [];
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 10; i++) {
          const t = `r${round}-${i}`;
          PubSub.subscribe(sb, b.ps, t);
          topics.push(t);
        }
        if (round % 3 === 0) for (let i = 0; i < 5; i++) PubSub.unsubscribe(sb, b.ps, `r${round}-${i}`);
        await new Promise((r) => setImmediate(r));
      }
      cluster.clearFaults();
      const want = PubSub.stats(b.ps).topics;
      await waitFor(() => peerOf(a, "b")?.known && peerOf(a, "b")!.topics === want && peerOf(a, "b")!.acked >= 0, { what: "a's view of b's interest converges", timeoutMs: 10_000 });
      await PubSub.synced(b.ps);
      expect(peerOf(a, "b")!.topics).toBe(want);
      // routing uses the repaired view: every topic b has reaches b, the withdrawn ones do not go
      const out = peerOf(a, "b")!.framesOut;
      PubSub.broadcast(a.node, a.ps, "r0-0", "withdrawn");
      expect(peerOf(a, "b")!.framesOut).toBe(out);
      PubSub.broadcast(a.node, a.ps, "r19-9", "kept");
      expect(await receiveN(sb, 1)).toEqual(["kept"]);
    } finally {
      await close();
    }
  });

  it("P39 with the transport down, broadcast still delivers locally and returns a typed remote error", async () => {
    const { cluster, nodes, close } = await memoryCluster(["a", "b"]);
    try {
      const [a, b] = nodes as [ClusterNode, ClusterNode];
      const sa = a.node.process();
      PubSub.subscribe(sa, a.ps, "p39");
      PubSub.subscribe(b.node.process(), b.ps, "p39");
      await PubSub.synced(b.ps);
      cluster.kill("a");
      const r = PubSub.broadcast(a.node, a.ps, "p39", "local only");
      expect(r).toBeInstanceOf(BroadcastError);
      expect((r as BroadcastError).failure).toBe("transport");
      expect((r as BroadcastError).remoteOnly).toBe(true);
      expect((r as BroadcastError).code).toBe("noconnection");
      expect(() => PubSub.broadcastOrThrow(a.node, a.ps, "p39", "again")).toThrow(/transport of node a is down/);
      expect(PubSub.localBroadcast(a.node, a.ps, "p39", "plain local")).toBe("ok");
      expect(drain(sa)).toEqual(["local only", "again", "plain local"]);
    } finally {
      await close();
    }
  });

  it("a frame that fails to decode is counted and logged, never a crash", async () => {
    const cluster = new MemoryCluster({ heartbeatMs: 10, downAfterMs: 150 });
    const t = cluster.node("a");
    const raw = cluster.node("raw");
    await t.start();
    await raw.start();
    const log = captureLogger();
    const a = await startClusterNode({ name: "a" }, t, { logger: log }, silentLogger);
    try {
      const sa = a.node.process();
      PubSub.subscribe(sa, a.ps, "t");
      await waitFor(() => raw.members().includes("a"));
      raw.sendTo("a", "pubsub:ps", new Uint8Array([1, 255, 0, 3])); // codec version 1, garbage body
      raw.sendTo("a", "pubsub:ps", new Uint8Array([77, 1, 2])); // unknown codec version
      raw.sendTo("a", "pubsub:ps", encodeFrame({ not: "a pubsub frame" }));
      raw.sendTo("a", "pubsub:ps", encodeFrame(["b", -1, "t", "x", null])); // bad lane
      raw.sendTo("a", "pubsub:ps", encodeFrame(["b", 0, "t", "valid", null]));
      expect(await receiveN(sa, 1)).toEqual(["valid"]);
      expect(adapterStats(a).decodeErrors).toBe(4);
      expect(log.lines.filter((l) => l.includes("does not decode"))).toHaveLength(4);
      expect(PubSub.stats(a.ps).running).toEqual({ tables: true, adapter: true });
    } finally {
      await a.node.stop();
      await cluster.close();
    }
  });

  it("a node restart (new incarnation) resyncs: its new subscribers are reached, its old interest is forgotten", async () => {
    const { cluster, nodes, close } = await memoryCluster(["a", "b"], { downAfterMs: 300 });
    try {
      const [a, b] = nodes as [ClusterNode, ClusterNode];
      PubSub.subscribe(b.node.process(), b.ps, "old-topic");
      await PubSub.synced(b.ps);
      await b.node.stop();
      const t2 = cluster.restart("b");
      await t2.start();
      const b2 = await startClusterNode({ name: "b" }, t2);
      nodes[1] = b2;
      const s2 = b2.node.process();
      PubSub.subscribe(s2, b2.ps, "new-topic");
      await clusterReady(nodes);
      expect(peerOf(a, "b")!.topics).toBe(1);
      PubSub.broadcast(a.node, a.ps, "new-topic", "hello again");
      expect(await receiveN(s2, 1)).toEqual(["hello again"]);
      const out = peerOf(a, "b")!.framesOut;
      PubSub.broadcast(a.node, a.ps, "old-topic", "nobody");
      expect(peerOf(a, "b")!.framesOut).toBe(out);
    } finally {
      await close();
    }
  });

  it("interest of 20k topics crosses in parts and stays one map entry per topic", async () => {
    const { nodes, close } = await memoryCluster(["a", "b", "c"]);
    try {
      const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
      const pb: Process<any> = b.node.process();
      const pc: Process<any> = c.node.process();
      for (let i = 0; i < 20_000; i++) {
        PubSub.subscribe(pb, b.ps, `topic:${i}`);
        PubSub.subscribe(pc, c.ps, `topic:${i}`);
      }
      await Promise.all([PubSub.synced(b.ps, 10_000), PubSub.synced(c.ps, 10_000)]);
      await waitFor(() => adapterStats(a).peers.every((p) => p.known && p.topics === 20_000), { what: "a knows both sets", timeoutMs: 10_000 });
      const s = adapterStats(a);
      expect(s.interestTopics).toBe(20_000);
      expect(s.peers.map((p) => p.topics).sort()).toEqual([20_000, 20_000]);
      PubSub.broadcast(a.node, a.ps, "topic:19999", "last");
      expect(await receiveN(pb, 1)).toEqual(["last"]);
      expect(await receiveN(pc, 1)).toEqual(["last"]);
    } finally {
      await close();
    }
  });
});
