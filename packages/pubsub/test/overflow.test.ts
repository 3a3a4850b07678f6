/** Slow-consumer policies (PUBSUB.md 2.5): P34, P35. */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger, startNode, type CinderNode, type DownMessage, type Process } from "@cinder/runtime";
import { PubSub, registerDispatcher, type PubSubRef } from "@cinder/pubsub";
import { addSchedulers, drain, idleOn, receiveN, tick } from "./support/harness.js";

registerDispatcher("test.overflow.socket", (entries, from, msg, ctx) => {
  // fastlane-like: deliver to the "socket" pid named in the metadata
  for (const e of entries) if (e.pid !== from) ctx.send(e, { frame: msg }, (e.metadata as { socket: Process<any>["pid"] }).socket);
});

for (const placement of ["same scheduler", "other scheduler"] as const) {
  describe(`overflow policies (subscriber on the ${placement})`, () => {
    let node: CinderNode;
    let ps: PubSubRef;
    let sub: () => Process<any>;
    beforeEach(async () => {
      node = await startNode({ schedulers: 1, logger: silentLogger });
      const [other] = addSchedulers(node, 1);
      ps = await PubSub.start(node, { name: "ps" });
      sub = () => (placement === "same scheduler" ? node.process() : idleOn(other!));
    });
    afterEach(async () => {
      await node.stop();
    });

    it("P34 dropNewest(n) keeps the first n undelivered messages and counts the rest", async () => {
      const p = sub();
      PubSub.subscribe(p, ps, "t", { overflow: { dropNewest: 3 } });
      for (let i = 1; i <= 10; i++) PubSub.broadcast(node, ps, "t", i);
      await tick();
      expect(PubSub.topicStats(ps, "t")).toMatchObject({ delivered: 3, droppedNewest: 7, droppedOldest: 0, highWater: 3 });
      expect(await p.receive()).toBe(1); // one taken: room for one more
      for (let i = 11; i <= 12; i++) PubSub.broadcast(node, ps, "t", i);
      await tick();
      expect(drain(p)).toEqual([2, 3, 11]);
      expect(PubSub.stats(ps).droppedNewest).toBe(8);
    });

    it("P34 dropOldest(n) keeps the latest n and counts evictions; other messages in the mailbox stay", async () => {
      const p = sub();
      PubSub.subscribe(p, ps, "t", { overflow: { dropOldest: 3 } });
      for (let i = 1; i <= 10; i++) {
        PubSub.broadcast(node, ps, "t", i);
        await tick();
        if (i % 4 === 0) node.send(p.pid, `other${i}`);
      }
      expect(PubSub.topicStats(ps, "t")).toMatchObject({ delivered: 10, droppedOldest: 7 });
      expect(await receiveN(p, 5)).toEqual(["other4", 8, "other8", 9, 10]);
      expect(drain(p)).toEqual([]);
      // after the subscriber caught up, nothing is evicted
      for (let i = 11; i <= 13; i++) PubSub.broadcast(node, ps, "t", i);
      await tick();
      expect(drain(p)).toEqual([11, 12, 13]);
      expect(PubSub.stats(ps).droppedOldest).toBe(7);
    });

    it("P34 exit(n) makes the subscriber exit with slow_consumer", async () => {
      const p = sub();
      const watcher = node.process();
      watcher.monitor(p.pid);
      PubSub.subscribe(p, ps, "t", { overflow: { exit: 5 } });
      for (let i = 1; i <= 5; i++) PubSub.broadcast(node, ps, "t", i);
      await tick();
      expect(p.alive).toBe(true);
      PubSub.broadcast(node, ps, "t", 6);
      const down = (await watcher.receive({ timeout: 1000 })) as DownMessage;
      expect(down).toMatchObject({ type: "DOWN", pid: p.pid, reason: "slow_consumer" });
      expect(PubSub.stats(ps)).toMatchObject({ slowConsumerExits: 1, subscriptions: 0 });
    });

    it("P34 unbounded drops nothing", async () => {
      const p = sub();
      PubSub.subscribe(p, ps, "t");
      for (let i = 0; i < 5000; i++) PubSub.broadcast(node, ps, "t", i);
      await tick();
      expect(p.mailboxLength).toBe(5000);
      expect(PubSub.stats(ps)).toMatchObject({ delivered: 5000, droppedNewest: 0, droppedOldest: 0, slowConsumerExits: 0 });
    });

    it("P35 a stalled subscriber neither delays delivery to other subscribers nor blocks the broadcaster", async () => {
      const stalled = sub();
      const stalled2 = sub();
      const fast: Process<any>[] = [sub(), sub()];
      PubSub.subscribe(stalled, ps, "t", { overflow: { dropNewest: 5 } });
      PubSub.subscribe(stalled2, ps, "t");
      for (const f of fast) PubSub.subscribe(f, ps, "t");
      const broadcaster = node.process();
      for (let i = 0; i < 2000; i++) expect(PubSub.broadcast(broadcaster, ps, "t", i)).toBe("ok");
      for (const f of fast) expect(await receiveN(f, 2000, 2000)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
      expect(stalled.mailboxLength).toBe(5);
      expect(stalled2.mailboxLength).toBe(2000);
    });

    it("a fastlane dispatcher's policy applies to the socket actor that receives the frame", async () => {
      const channel = sub();
      const socket = node.process();
      PubSub.subscribe(channel, ps, "room", { metadata: { socket: socket.pid }, overflow: { dropOldest: 2 } });
      for (let i = 1; i <= 5; i++) PubSub.broadcast(node, ps, "room", i, "test.overflow.socket");
      await tick();
      expect(drain(channel)).toEqual([]);
      expect(drain(socket)).toEqual(placement === "same scheduler" ? [{ frame: 4 }, { frame: 5 }] : [1, 2, 3, 4, 5].map((frame) => ({ frame })));
    });
  });
}

describe("overflow with several bounded subscriptions on one mailbox", () => {
  it("keeps each subscription's count exact when another one evicts", async () => {
    const node = await startNode({ schedulers: 1, logger: silentLogger });
    const ps = await PubSub.start(node, { name: "ps" });
    const p = node.process();
    PubSub.subscribe(p, ps, "a", { overflow: { dropOldest: 2 } });
    PubSub.subscribe(p, ps, "b", { overflow: { dropNewest: 3 } });
    PubSub.broadcast(node, ps, "b", "b1");
    PubSub.broadcast(node, ps, "a", "a1");
    PubSub.broadcast(node, ps, "b", "b2");
    PubSub.broadcast(node, ps, "a", "a2");
    PubSub.broadcast(node, ps, "a", "a3"); // evicts a1
    PubSub.broadcast(node, ps, "b", "b3");
    PubSub.broadcast(node, ps, "b", "b4"); // dropped: 3 pending on b
    expect(p.flush()).toEqual(["b1", "b2", "a2", "a3", "b3"]);
    PubSub.broadcast(node, ps, "b", "b5");
    PubSub.broadcast(node, ps, "a", "a4");
    expect(p.flush()).toEqual(["b5", "a4"]);
    expect(PubSub.stats(ps)).toMatchObject({ droppedOldest: 1, droppedNewest: 1 });
    await node.stop();
  });

  it("rejects an invalid policy with a typed error", async () => {
    const node = await startNode({ schedulers: 1, logger: silentLogger });
    const ps = await PubSub.start(node, { name: "ps" });
    const p = node.process();
    expect(() => PubSub.subscribe(p, ps, "t", { overflow: { dropNewest: 0 } })).toThrow(/invalid overflow policy/);
    expect(() => PubSub.subscribe(p, ps, "t", { overflow: "bounded" as never })).toThrow(/invalid overflow policy/);
    expect(PubSub.stats(ps).subscriptions).toBe(0);
    await node.stop();
  });
});
