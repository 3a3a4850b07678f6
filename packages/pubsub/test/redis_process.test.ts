/**
 * PubSub over Redis between two OS processes (PUBSUB.md P42): this process runs nodes a and b,
 * a child `node` process (tsx) runs node c with poolSize 4 / broadcastPoolSize 1.
 * P15–P19, P29, P31–P33 across the process boundary.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { PubSub } from "@cinder/pubsub";
import { createRedisTransport } from "../../redis/src/index.js";
import { startRedis, type RedisServer } from "../../../test/support/redis.js";
import { clusterReady, drain, receiveN, startClusterNode, tick, waitFor, type ClusterNode } from "./support/harness.js";
import { adapterStats } from "./support/cluster_suite.js";
import { spawnPubSubNode, type ChildNode } from "./support/child.js";

let redis: RedisServer;
let child: ChildNode;
let a: ClusterNode;
let b: ClusterNode;
const cluster = `psx-${randomBytes(4).toString("hex")}`;
const quiet = { warn() {}, error() {} };

beforeAll(async () => {
  redis = await startRedis();
  child = spawnPubSubNode({ REDIS_URL: redis.url, NODE_NAME: "c", CLUSTER: cluster, POOL_SIZE: "4", BROADCAST_POOL_SIZE: "1" });
  await child.next((e) => e.event === "ready", "child ready");
  const start = async (name: string) => {
    const t = createRedisTransport({ url: redis.url, nodeName: name, cluster, heartbeatMs: 20, downAfterMs: 1500, reconnect: { initialMs: 20, maxMs: 200 }, logger: quiet });
    await t.start();
    return startClusterNode({ name }, t);
  };
  a = await start("a");
  b = await start("b");
  await clusterReady([a, b]);
  await waitFor(() => [a, b].every((n) => adapterStats(n).peers.some((p) => p.node === "c" && p.known)), { what: "a and b know c", timeoutMs: 15_000 });
}, 60_000);

afterAll(async () => {
  await child?.stop();
  for (const n of [a, b]) if (n) {
    await n.node.stop();
    await n.t.stop();
  }
  await redis?.stop();
});

async function childSynced(): Promise<void> {
  child.send({ op: "synced" });
  await child.next((e) => e.event === "synced" || e.event === "error", "child synced");
}
const childMsgs = async (topic: string, n: number) => {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) out.push((await child.next((e) => e.event === "msg" && e.topic === topic, `child got ${i + 1}/${n} on ${topic}`)).msg);
  return out;
};

describe("PubSub over Redis, two OS processes", () => {
  it("P15 broadcast reaches the other process's subscribers, twice in a row; P19 a pool-1 node reaches the pool-4/1 node", async () => {
    child.send({ op: "subscribe", topic: "x15" });
    await childSynced();
    PubSub.broadcast(a.node, a.ps, "x15", "one");
    PubSub.broadcast(a.node.process(), a.ps, "x15", "two");
    expect(await childMsgs("x15", 2)).toEqual(["one", "two"]);
  });

  it("P18 the pool-4/broadcast-1 node's broadcasts reach pool-1 nodes; P33 no loss in any direction", async () => {
    const sa = a.node.process();
    const sb = b.node.process();
    PubSub.subscribe(sa, a.ps, "x18");
    PubSub.subscribe(sb, b.ps, "x18");
    child.send({ op: "subscribe", topic: "x18" });
    await Promise.all([PubSub.synced(a.ps), PubSub.synced(b.ps), childSynced()]);
    child.send({ op: "broadcast", topic: "x18", msg: "c", n: 50 });
    for (let k = 0; k < 50; k++) PubSub.broadcast(a.node.process(), a.ps, "x18", { m: "a", i: k });
    const want = (who: string) => Array.from({ length: 50 }, (_, i) => ({ m: who, i }));
    const key = (x: unknown) => JSON.stringify(x);
    expect((await receiveN(sb, 100)).map(key).sort()).toEqual([...want("a"), ...want("c")].map(key).sort());
    expect((await receiveN(sa, 100)).map(key).sort()).toEqual([...want("a"), ...want("c")].map(key).sort());
    expect((await childMsgs("x18", 100)).map(key).sort()).toEqual([...want("a"), ...want("c")].map(key).sort());
  });

  it("P16 localBroadcast in the child reaches no other process; P17 directBroadcast reaches only the named node", async () => {
    const sa = a.node.process();
    const sb = b.node.process();
    PubSub.subscribe(sa, a.ps, "x16");
    PubSub.subscribe(sb, b.ps, "x16");
    child.send({ op: "subscribe", topic: "x16" });
    await Promise.all([PubSub.synced(a.ps), PubSub.synced(b.ps), childSynced()]);
    child.send({ op: "local", topic: "x16", msg: "child-local" });
    child.send({ op: "direct", node: "b", topic: "x16", msg: "to-b" });
    PubSub.directBroadcast(a.node, a.ps, "c", "x16", "to-c");
    child.send({ op: "broadcast", topic: "x16", msg: "marker" });
    expect(await receiveN(sb, 2)).toEqual(["to-b", "marker"]);
    expect(await receiveN(sa, 1)).toEqual(["marker"]);
    expect(drain(sa)).toEqual([]);
    // no order across senders: "to-c" comes from a, the others from the child itself
    expect(((await childMsgs("x16", 3)) as string[]).sort()).toEqual(["child-local", "marker", "to-c"]);
  });

  it("P29 a broadcast reaches only the process with subscribers; frames to the others are zero; P31 after it leaves, they stop", async () => {
    child.send({ op: "subscribe", topic: "x29" });
    await childSynced();
    const before = { b: adapterStats(a).peers.find((p) => p.node === "b")!.framesOut, c: adapterStats(a).peers.find((p) => p.node === "c")!.framesOut };
    for (let i = 0; i < 10; i++) PubSub.broadcast(a.node, a.ps, "x29", i);
    expect(await childMsgs("x29", 10)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    const after = { b: adapterStats(a).peers.find((p) => p.node === "b")!.framesOut, c: adapterStats(a).peers.find((p) => p.node === "c")!.framesOut };
    expect(after.b - before.b).toBe(0);
    expect(after.c - before.c).toBe(10);
    child.send({ op: "unsubscribe", topic: "x29" });
    await childSynced();
    PubSub.broadcast(a.node, a.ps, "x29", "nobody");
    expect(adapterStats(a).peers.find((p) => p.node === "c")!.framesOut).toBe(after.c);
  });

  it("P32 directBroadcast reaches the child although it announced no interest", async () => {
    child.send({ op: "stats" });
    const s0 = (await child.next((e) => e.event === "stats", "stats")).stats as { lanes: Array<{ frames: number }> };
    const frames0 = s0.lanes.reduce((n, l) => n + l.frames, 0);
    PubSub.directBroadcast(a.node, a.ps, "c", "x32-none", "void");
    await waitFor(async () => {
      child.send({ op: "stats" });
      const s = (await child.next((e) => e.event === "stats", "stats")).stats as { lanes: Array<{ frames: number }> };
      return s.lanes.reduce((n, l) => n + l.frames, 0) === frames0 + 1;
    }, { what: "the child's lane got the direct frame" });
    await tick();
  });
});
