/**
 * The multi-node checklist items that must pass over every transport (PUBSUB.md P42):
 * P15–P19, P22–P24, P29, P31–P33, P40 (remote), P41 (encode), P43. Registered by
 * cluster_adapter.test.ts (MemoryCluster) and redis.test.ts (Redis, two nodes in one process).
 */
import { describe, expect, it } from "vitest";
import type { Pid, Process } from "@cinder/runtime";
import { BroadcastError, PubSub, registerDispatcher, type ClusterAdapterStats } from "@cinder/pubsub";
import { drain, receiveN, tick, waitFor, type ClusterNode, type NodeSpec } from "./harness.js";

export interface ClusterFactory {
  (specs: Array<NodeSpec | string>): Promise<{ nodes: ClusterNode[]; close(): Promise<void> }>;
}

const remoteFrom: Array<{ at: string; from: Pid | null }> = [];
registerDispatcher("test.cluster.from", (entries, from, msg, ctx) => {
  remoteFrom.push({ at: String((msg as { at?: string }).at), from });
  for (const e of entries) if (e.pid !== from) ctx.send(e, msg);
});
registerDispatcher("test.cluster.throws", (entries, from, msg, ctx) => {
  if ((msg as { boom?: boolean }).boom) throw new Error("dispatcher boom");
  for (const e of entries) if (e.pid !== from) ctx.send(e, msg);
});

export const adapterStats = (n: ClusterNode): ClusterAdapterStats => PubSub.stats(n.ps).adapter as ClusterAdapterStats;
const peer = (n: ClusterNode, other: string) => adapterStats(n).peers.find((p) => p.node === other)!;

export function clusterSuite(label: string, make: ClusterFactory): void {
  describe(`cluster (${label})`, () => {
    it("P15 broadcast reaches subscribers on every other node, twice in a row; P24 without waiting for them", async () => {
      const { nodes, close } = await make(["a", "b", "c"]);
      try {
        const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
        const sb = b.node.process();
        const sc = c.node.process();
        PubSub.subscribe(sb, b.ps, "p15");
        PubSub.subscribe(sc, c.ps, "p15");
        await Promise.all([PubSub.synced(b.ps), PubSub.synced(c.ps)]);
        const sender = a.node.process();
        expect(PubSub.broadcast(sender, a.ps, "p15", "one")).toBe("ok");
        expect(sb.mailboxLength + sc.mailboxLength).toBe(0); // P24: nothing awaited
        expect(PubSub.broadcastOrThrow(sender, a.ps, "p15", "two")).toBe("ok");
        expect(await receiveN(sb, 2)).toEqual(["one", "two"]);
        expect(await receiveN(sc, 2)).toEqual(["one", "two"]);
        expect(PubSub.broadcast(sender, a.ps, "p15-nobody", "x")).toBe("ok");
      } finally {
        await close();
      }
    });

    it("P16 localBroadcast reaches no other node; P17 directBroadcast reaches only the named node", async () => {
      const { nodes, close } = await make(["a", "b", "c"]);
      try {
        const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
        const subs = nodes.map((n) => n.node.process());
        nodes.forEach((n, i) => PubSub.subscribe(subs[i]!, n.ps, "p16"));
        await Promise.all(nodes.map((n) => PubSub.synced(n.ps)));
        PubSub.localBroadcast(a.node, a.ps, "p16", "local");
        expect(PubSub.directBroadcast(a.node, a.ps, "b", "p16", "direct-b")).toBe("ok");
        PubSub.broadcast(a.node, a.ps, "p16", "marker");
        expect(await receiveN(subs[0]!, 2)).toEqual(["local", "marker"]);
        expect(await receiveN(subs[1]!, 2)).toEqual(["direct-b", "marker"]);
        expect(await receiveN(subs[2]!, 1)).toEqual(["marker"]); // c got no local, no direct-b
        expect(drain(subs[2]!)).toEqual([]);
        expect(b.name).toBe("b");
        expect(c.name).toBe("c");
      } finally {
        await close();
      }
    });

    it("P18 a node with poolSize 4 and broadcastPoolSize 1 receives broadcasts from pool-1 nodes; P19 its broadcasts reach all nodes", async () => {
      const { nodes, close } = await make([{ name: "a" }, { name: "b", poolSize: 4, broadcastPoolSize: 1 }, { name: "c" }]);
      try {
        const subs = nodes.map((n) => n.node.process());
        nodes.forEach((n, i) => PubSub.subscribe(subs[i]!, n.ps, "p18"));
        await Promise.all(nodes.map((n) => PubSub.synced(n.ps)));
        const senders = (n: ClusterNode) => Array.from({ length: 8 }, () => n.node.process());
        for (const s of senders(nodes[0]!)) PubSub.broadcastFrom(s, nodes[0]!.ps, s.pid, "p18", "from-a");
        for (const s of senders(nodes[1]!)) PubSub.broadcastFrom(s, nodes[1]!.ps, s.pid, "p18", "from-b");
        for (const [i, p] of subs.entries()) {
          const got = (await receiveN(p, 16)).sort();
          expect(got, nodes[i]!.name).toEqual([...Array(8).fill("from-a"), ...Array(8).fill("from-b")]);
        }
      } finally {
        await close();
      }
    });

    it("P22 remote dispatch always gets from = none, also for broadcastFrom", async () => {
      const { nodes, close } = await make(["a", "b"]);
      try {
        const [a, b] = nodes as [ClusterNode, ClusterNode];
        const sa = a.node.process();
        const sb = b.node.process();
        PubSub.subscribe(sa, a.ps, "p22");
        PubSub.subscribe(sb, b.ps, "p22");
        await Promise.all([PubSub.synced(a.ps), PubSub.synced(b.ps)]);
        remoteFrom.length = 0;
        // from = b's subscriber: skipped locally on a (it is not there), but b dispatches with from = none
        PubSub.broadcastFrom(sa, a.ps, sb.pid, "p22", { at: "x" }, "test.cluster.from");
        PubSub.broadcastFrom(sa, a.ps, sa.pid, "p22", { at: "y" }, "test.cluster.from");
        expect(await receiveN(sb, 2)).toEqual([{ at: "x" }, { at: "y" }]);
        expect(drain(sa)).toEqual([{ at: "x" }]);
        // a dispatched with the given from; b (remote) with none
        const key = (r: { at: string; from: Pid | null }) => `${r.at}:${r.from ?? "none"}`;
        expect(remoteFrom.map(key).sort()).toEqual([`x:${sb.pid}`, "x:none", `y:${sa.pid}`, "y:none"].sort());
      } finally {
        await close();
      }
    });

    it("P23 one sender's messages reach a remote subscriber in send order across broadcast, broadcastFrom and directBroadcast", async () => {
      const { nodes, close } = await make([{ name: "a", poolSize: 4 }, { name: "b", poolSize: 3 }]);
      try {
        const [a, b] = nodes as [ClusterNode, ClusterNode];
        const sb = b.node.process();
        PubSub.subscribe(sb, b.ps, "p23");
        await PubSub.synced(b.ps);
        const senders = Array.from({ length: 3 }, () => a.node.process());
        const N = 300;
        for (let i = 0; i < N; i++) {
          for (const [k, s] of senders.entries()) {
            const m = { s: k, i };
            if (i % 3 === 0) PubSub.broadcast(s, a.ps, "p23", m);
            else if (i % 3 === 1) PubSub.broadcastFrom(s, a.ps, s.pid, "p23", m);
            else PubSub.directBroadcast(s, a.ps, "b", "p23", m);
          }
        }
        const got = (await receiveN(sb, N * 3, 10_000)) as Array<{ s: number; i: number }>;
        for (let k = 0; k < 3; k++) expect(got.filter((m) => m.s === k).map((m) => m.i)).toEqual(Array.from({ length: N }, (_, i) => i));
      } finally {
        await close();
      }
    });

    it("P29 a broadcast reaches only nodes with subscribers; frames to the others are zero", async () => {
      const { nodes, close } = await make(["a", "b", "c"]);
      try {
        const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
        const sb = b.node.process();
        PubSub.subscribe(sb, b.ps, "p29");
        await PubSub.synced(b.ps);
        const before = { b: peer(a, "b").framesOut, c: peer(a, "c").framesOut, cLanes: PubSub.stats(c.ps).lanes[0]!.frames };
        for (let i = 0; i < 20; i++) PubSub.broadcast(a.node, a.ps, "p29", i);
        expect(await receiveN(sb, 20)).toHaveLength(20);
        expect(peer(a, "b").framesOut - before.b).toBe(20);
        expect(peer(a, "c").framesOut - before.c).toBe(0);
        expect(peer(a, "c").framesSaved).toBeGreaterThanOrEqual(20);
        await tick();
        expect(PubSub.stats(c.ps).lanes[0]!.frames - before.cLanes).toBe(0);
        expect(adapterStats(c).staleFrames).toBe(0);
      } finally {
        await close();
      }
    });

    it("P31 after the last subscriber on a node leaves, broadcasts stop reaching it after one announcement; a stale frame is dropped and counted", async () => {
      const { nodes, close } = await make(["a", "b"]);
      try {
        const [a, b] = nodes as [ClusterNode, ClusterNode];
        const sb = b.node.process();
        PubSub.subscribe(sb, b.ps, "p31");
        await PubSub.synced(b.ps);
        // b leaves and a broadcasts before the announcement can arrive: a stale frame at b
        PubSub.unsubscribe(sb, b.ps, "p31");
        PubSub.broadcast(a.node, a.ps, "p31", "stale");
        await waitFor(() => adapterStats(b).staleFrames === 1, { what: "b drops the stale frame" });
        await PubSub.synced(b.ps); // the withdrawal has been delivered (one announcement)
        const out = peer(a, "b").framesOut;
        PubSub.broadcast(a.node, a.ps, "p31", "after");
        expect(peer(a, "b").framesOut).toBe(out);
        expect(drain(sb)).toEqual([]);
      } finally {
        await close();
      }
    });

    it("P32 directBroadcast reaches a node whose interest is not announced (its dispatch then finds none, or the fresh subscriber)", async () => {
      const { nodes, close } = await make(["a", "b"]);
      try {
        const [a, b] = nodes as [ClusterNode, ClusterNode];
        const lanes0 = PubSub.stats(b.ps).lanes[0]!.frames;
        PubSub.directBroadcast(a.node, a.ps, "b", "p32-none", "into the void");
        await waitFor(() => PubSub.stats(b.ps).lanes[0]!.frames === lanes0 + 1, { what: "b's lane got the frame" });
        const sb = b.node.process();
        PubSub.subscribe(sb, b.ps, "p32"); // a has not heard of it yet
        PubSub.directBroadcast(a.node, a.ps, "b", "p32", "direct");
        expect(await receiveN(sb, 1)).toEqual(["direct"]);
      } finally {
        await close();
      }
    });

    it("P33 nodes with different poolSize and broadcastPoolSize lose no message in any direction", async () => {
      const specs: NodeSpec[] = [
        { name: "a", poolSize: 1 },
        { name: "b", poolSize: 4, broadcastPoolSize: 1 },
        { name: "c", poolSize: 4, broadcastPoolSize: 4 },
        { name: "d", poolSize: 2, broadcastPoolSize: 2 },
      ];
      const { nodes, close } = await make(specs);
      try {
        const subs = nodes.map((n) => n.node.process());
        nodes.forEach((n, i) => PubSub.subscribe(subs[i]!, n.ps, "p33"));
        await Promise.all(nodes.map((n) => PubSub.synced(n.ps)));
        const perNode = 10;
        for (const n of nodes) for (let k = 0; k < perNode; k++) PubSub.broadcast(n.node.process(), n.ps, "p33", `${n.name}${k}`);
        const all = nodes.flatMap((n) => Array.from({ length: perNode }, (_, k) => `${n.name}${k}`)).sort();
        for (const p of subs) expect(((await receiveN(p, all.length)) as string[]).sort()).toEqual(all);
      } finally {
        await close();
      }
    });

    it("P40 a dispatcher that throws on the receiving node is counted and logged; the lane survives", async () => {
      const { nodes, close } = await make(["a", "b"]);
      try {
        const [a, b] = nodes as [ClusterNode, ClusterNode];
        const sb = b.node.process();
        PubSub.subscribe(sb, b.ps, "p40");
        await PubSub.synced(b.ps);
        const lane = PubSub.stats(b.ps).lanes[0]!.pid;
        expect(PubSub.broadcast(a.node, a.ps, "p40", { boom: true }, "test.cluster.throws")).toBe("ok");
        PubSub.broadcast(a.node, a.ps, "p40", { boom: false }, "test.cluster.throws");
        expect(await receiveN(sb, 1)).toEqual([{ boom: false }]);
        expect(PubSub.stats(b.ps).dispatcherErrors).toBe(1);
        expect(PubSub.stats(b.ps).lanes[0]!.pid).toBe(lane);
        expect(b.node.isAlive(lane)).toBe(true);
      } finally {
        await close();
      }
    });

    it("P41 a message the codec cannot encode: typed error naming the nodes; local subscribers still get it; nothing half-encoded is sent", async () => {
      const { nodes, close } = await make(["a", "b"]);
      try {
        const [a, b] = nodes as [ClusterNode, ClusterNode];
        const sa = a.node.process();
        const sb = b.node.process();
        PubSub.subscribe(sa, a.ps, "p41");
        PubSub.subscribe(sb, b.ps, "p41");
        await Promise.all([PubSub.synced(a.ps), PubSub.synced(b.ps)]);
        const inB = adapterStats(b).framesIn;
        const msg = { f: () => 1 };
        const r = PubSub.broadcast(a.node, a.ps, "p41", msg);
        expect(r).toBeInstanceOf(BroadcastError);
        expect((r as BroadcastError).failure).toBe("encode");
        expect((r as BroadcastError).nodes).toEqual(["b"]);
        expect(() => PubSub.directBroadcastOrThrow(a.node, a.ps, "b", "p41", msg)).toThrow(BroadcastError);
        expect(drain(sa)).toEqual([msg]);
        PubSub.broadcast(a.node, a.ps, "p41", "fine");
        expect(await receiveN(sb, 1)).toEqual(["fine"]);
        expect(adapterStats(b).framesIn - inB).toBe(1);
        expect(adapterStats(b).decodeErrors).toBe(0);
      } finally {
        await close();
      }
    });

    it("P43 Tracker shard topics through interest routing: heartbeats reach every node running the tracker, transfers reach the named node", async () => {
      const { nodes, close } = await make(["a", "b", "c"]);
      try {
        const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
        const topic = "phx_presence:tracker_shard0";
        // the shards on a and b (c runs no tracker)
        const shard = (n: ClusterNode): Process<any> => {
          const p = n.node.process();
          PubSub.subscribe(p, n.ps, topic);
          return p;
        };
        const sa = shard(a);
        const sb = shard(b);
        await Promise.all([PubSub.synced(a.ps), PubSub.synced(b.ps)]);
        const cFrames = PubSub.stats(c.ps).lanes[0]!.frames;
        for (let i = 0; i < 5; i++) {
          PubSub.broadcastFrom(sa, a.ps, sa.pid, topic, { hb: "a", i });
          PubSub.broadcastFrom(sb, b.ps, sb.pid, topic, { hb: "b", i });
        }
        PubSub.directBroadcast(sa, a.ps, "b", topic, { transfer_req: "a" });
        PubSub.directBroadcast(sb, b.ps, "a", topic, { transfer_ack: "b" });
        expect(await receiveN(sb, 6)).toEqual([...Array.from({ length: 5 }, (_, i) => ({ hb: "a", i })), { transfer_req: "a" }]);
        expect(await receiveN(sa, 6)).toEqual([...Array.from({ length: 5 }, (_, i) => ({ hb: "b", i })), { transfer_ack: "b" }]);
        await tick();
        expect(PubSub.stats(c.ps).lanes[0]!.frames).toBe(cFrames);
        expect(peer(a, "c").framesOut).toBe(0);
      } finally {
        await close();
      }
    });
  });
}
