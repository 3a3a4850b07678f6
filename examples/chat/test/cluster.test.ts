/**
 * Two chat nodes sharing rooms through a real redis-server (the `REDIS_URL` setup of main.ts):
 * broadcasts cross nodes, each node encodes a broadcast once for its own sockets, a room with
 * no subscriber on a node is not sent to that node, and presence (on @cinder/presence) is cluster-wide.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@cinder/runtime";
import { PubSub, type ClusterAdapterStats } from "@cinder/pubsub";
import { startRedis, type RedisServer } from "../../../test/support/redis.js";
import { redisCluster, type ClusterSetup } from "../src/cluster.js";
import { startChat, type ChatServer } from "../src/server.js";
import { Presence } from "phoenix";
import { collect, connected, disconnectAll, joinOk, phxSocket, push, waitFor } from "./support/client.js";

let redis: RedisServer;
const clusters: ClusterSetup[] = [];
const chats: ChatServer[] = [];

async function node(name: string): Promise<ChatServer> {
  const c = await redisCluster(redis.url, name, { cluster: "chat-test", heartbeatMs: 50, downAfterMs: 1000, presenceBroadcastMs: 30, presenceDownMs: 1000 });
  clusters.push(c);
  const chat = await startChat({ port: 0, nodeName: name, logger: silentLogger, pubsub: c.pubsub, presence: c.presence });
  chats.push(chat);
  return chat;
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await disconnectAll();
  for (const c of chats) await c.stop();
  for (const c of clusters) await c.stop();
  await redis?.stop();
});

describe("multi-node chat through Redis", () => {
  it("a message in a room reaches the room's users on every node, once each", async () => {
    const a = await node("chat-a");
    const b = await node("chat-b");
    await waitFor(() => clusters.every((c) => c.transport.members().length === 1), "nodes see each other");
    const ann = await connected(phxSocket(a.socketUrl));
    const bob = await connected(phxSocket(b.socketUrl));
    const bea = await connected(phxSocket(b.socketUrl));
    const chAnn = ann.channel("room:multi", { user: "ann" });
    const chBob = bob.channel("room:multi", { user: "bob" });
    const chBea = bea.channel("room:multi", { user: "bea" });
    await Promise.all([joinOk(chAnn), joinOk(chBob), joinOk(chBea)]);
    await Promise.all([a.pubsub.synced!(5000), b.pubsub.synced!(5000)]);
    const got = [chAnn, chBob, chBea].map((ch) => collect(ch, "new_msg"));
    const written = new Map<ChatServer, unknown[]>([
      [a, []],
      [b, []],
    ]);
    for (const [c, list] of written) c.endpoint.hooks = { frameOut: (_conn, data) => void (Buffer.isBuffer(data) && data.includes("from a") && list.push(data)) };
    expect(await push(chAnn, "new_msg", { body: "from a" })).toEqual({ status: "ok", response: {} });
    await waitFor(() => got.every((g) => g.length === 1), "everyone got the first");
    // encoded once per node: node a wrote it to ann, node b wrote one same buffer to bob and bea
    expect(written.get(a)).toHaveLength(1);
    expect(written.get(b)).toHaveLength(2);
    expect(written.get(b)![0]).toBe(written.get(b)![1]);
    expect(written.get(b)![0]).not.toBe(written.get(a)![0]);
    expect(await push(chBob, "new_msg", { body: "from b" })).toEqual({ status: "ok", response: {} });
    await waitFor(() => got.every((g) => g.length === 2), "everyone got both");
    for (const g of got) expect(g.map((m) => m.payload.body).sort()).toEqual(["from a", "from b"]);
    expect(got[1]![0]!.payload).toEqual({ user: expect.any(String), body: expect.any(String), at: expect.any(Number) });
    // a room nobody on node b joined is not sent to b (interest routing)
    const adapterOf = (c: ChatServer) => PubSub.stats(PubSub.ref(c.node, "chat.pubsub")).adapter as ClusterAdapterStats;
    const other = ann.channel("room:only-a", { user: "ann" });
    await joinOk(other);
    const seen = collect(other, "new_msg");
    const saved = adapterOf(a).framesSaved;
    await push(other, "new_msg", { body: "local" });
    await waitFor(() => seen.length === 1, "local room");
    expect(adapterOf(a).framesSaved - saved).toBe(1); // the new_msg: b has no subscriber for the room
  });

  it("presence is cluster-wide: users on either node see everyone, typing updates and leaves included", async () => {
    const [a, b] = chats as [ChatServer, ChatServer];
    const ann = await connected(phxSocket(a.socketUrl));
    const bob = await connected(phxSocket(b.socketUrl));
    const chAnn = ann.channel("room:everyone", { user: "ann" });
    const chBob = bob.channel("room:everyone", { user: "bob" });
    const pa = new Presence(chAnn);
    const pb = new Presence(chBob);
    await joinOk(chAnn);
    await joinOk(chBob);
    const users = (p: Presence) => (p.list((k: string) => k) as string[]).sort();
    await waitFor(() => users(pa).join() === "ann,bob" && users(pb).join() === "ann,bob", "both nodes' users everywhere", 10_000);
    const typing = (p: Presence, who: string) => (p.list((k: string, v: any) => (k === who ? v.metas[0].typing : undefined)) as unknown[]).find((x) => x !== undefined);
    expect(await push(chBob, "typing", { typing: true })).toEqual({ status: "ok", response: {} });
    await waitFor(() => typing(pa, "bob") === true, "ann sees bob typing", 10_000);
    const bea = await connected(phxSocket(b.socketUrl));
    const chBea = bea.channel("room:everyone", { user: "bea" });
    await joinOk(chBea);
    await waitFor(() => users(pa).join() === "ann,bea,bob", "ann sees bea", 10_000);
    bob.disconnect();
    await waitFor(() => users(pa).join() === "ann,bea", "bob left everywhere", 10_000);
    const serverView = (c: ChatServer) => Object.keys(c.presence.list("room:everyone")).sort().join();
    expect(serverView(a)).toBe("ann,bea");
    await waitFor(() => serverView(b) === "ann,bea", "node b agrees", 10_000);
  });
});
