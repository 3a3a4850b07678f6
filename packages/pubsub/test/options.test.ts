/** Start options (PUBSUB.md 1.1): P1, P2, P14. */
import { afterEach, describe, expect, it } from "vitest";
import { MemoryCluster, silentLogger, startNode, type CinderNode } from "@cinder/runtime";
import { PubSub, PubSubOptionError, clusterAdapter, type PubSubOptions } from "@cinder/pubsub";

describe("options", () => {
  let node: CinderNode;
  afterEach(async () => {
    await node?.stop();
  });

  it("P1 starting without a name fails with a typed error that names the option", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    const err = await PubSub.start(node, {} as PubSubOptions).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PubSubOptionError);
    expect((err as PubSubOptionError).option).toBe("name");
    expect((err as Error).message).toMatch(/name/);
    expect(() => PubSub.childSpec({ poolSize: 2 } as unknown as PubSubOptions)).toThrow(PubSubOptionError);
    expect(node.whereis("undefined")).toBeUndefined();
  });

  it("P2 poolSize 1 with broadcastPoolSize 2 fails to start: poolSize must be ≥ broadcastPoolSize", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    const err = await PubSub.start(node, { name: "p2", poolSize: 1, broadcastPoolSize: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PubSubOptionError);
    expect((err as PubSubOptionError).option).toBe("broadcastPoolSize");
    expect((err as Error).message).toMatch(/poolSize must be greater than or equal to broadcastPoolSize/);
    expect(node.whereis("p2")).toBeUndefined();
  });

  it("P14 poolSize 4 with registrySize 2 gives 4 lanes (1–4); poolSize 3 alone gives 3; broadcastPoolSize defaults to poolSize", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    const cluster = new MemoryCluster({ heartbeatMs: 10, downAfterMs: 100 });
    const t = cluster.node("n14");
    await t.start();
    const four = await PubSub.start(node, { name: "p14a", poolSize: 4, registrySize: 2, adapter: clusterAdapter(t) });
    const s4 = PubSub.stats(four);
    expect(s4.lanes.map((l) => l.lane)).toEqual([1, 2, 3, 4]);
    for (const i of [1, 2, 3, 4]) expect(node.whereis(`p14a.adapter.lane${i}`)).toBe(s4.lanes[i - 1]!.pid);
    expect(s4.broadcastPoolSize).toBe(4);
    const three = await PubSub.start(node, { name: "p14b", poolSize: 3 });
    const s3 = PubSub.stats(three);
    expect(s3.lanes.map((l) => l.lane)).toEqual([1, 2, 3]);
    expect(s3.poolSize).toBe(3);
    expect(s3.broadcastPoolSize).toBe(3);
    expect(PubSub.stats(await PubSub.start(node, { name: "p14c" })).lanes).toHaveLength(1);
    await node.stop();
    await cluster.close();
  });

  it("rejects bad values with the option's name", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    const cases: Array<[Partial<PubSubOptions>, string]> = [
      [{ poolSize: 0 }, "poolSize"],
      [{ poolSize: 1.5 }, "poolSize"],
      [{ broadcastPoolSize: -1 }, "broadcastPoolSize"],
      [{ laneBound: 0 }, "laneBound"],
      [{ interestSlots: 1000 }, "interestSlots"],
      [{ adapter: 5 as never }, "adapter"],
    ];
    for (const [o, option] of cases) {
      const err = await PubSub.start(node, { name: "bad", ...o }).catch((e: unknown) => e);
      expect(err, option).toBeInstanceOf(PubSubOptionError);
      expect((err as PubSubOptionError).option).toBe(option);
    }
    // unknown options pass through to the adapter and are otherwise ignored
    const ok = await PubSub.start(node, { name: "good", somethingElse: { x: 1 } });
    expect(PubSub.stats(ok).running).toEqual({ tables: true, adapter: true });
  });
});
