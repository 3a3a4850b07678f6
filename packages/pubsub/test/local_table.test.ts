/** Per-scheduler tables and dead-subscriber cleanup (PUBSUB.md 2.1, 2.6): P36, P37. */
import { afterEach, describe, expect, it } from "vitest";
import { MemoryCluster, silentLogger, startNode, type CinderNode, type Process } from "@cinder/runtime";
import { PubSub, clusterAdapter, type PubSubRef } from "@cinder/pubsub";
import { addSchedulers } from "./support/harness.js";

const handler = { handle() {} };

function emptiness(ps: PubSubRef) {
  const inst = ps.inst;
  const tables = inst.tables();
  return {
    topics: tables.reduce((n, t) => n + t.topics.size, 0),
    reverse: tables.reduce((n, t) => n + t.byPid.size, 0),
    subscriptions: tables.reduce((n, t) => n + t.subscriptions, 0),
    // the row totals and the per-slot counters of the shared interest table
    interestCounters: tables.reduce((n, t) => n + inst.gen!.fabric.interestOf(t.scheduler) + inst.gen!.fabric.slotSum(t.scheduler), 0),
    nodeInterest: inst.gen!.interest?.size ?? 0,
  };
}
const EMPTY = { topics: 0, reverse: 0, subscriptions: 0, interestCounters: 0, nodeInterest: 0 };

describe("cleanup of exited subscribers", () => {
  let node: CinderNode;
  let cluster: MemoryCluster | undefined;
  afterEach(async () => {
    await node?.stop();
    await cluster?.close();
    cluster = undefined;
  });

  async function setup(schedulers: number, interest: boolean) {
    node = await startNode({ name: "clean", schedulers: 1, logger: silentLogger });
    const scheds = [node.main, ...addSchedulers(node, schedulers - 1)];
    let adapter;
    if (interest) {
      cluster = new MemoryCluster({ heartbeatMs: 10, downAfterMs: 100 });
      const t = cluster.node("clean");
      await t.start();
      adapter = clusterAdapter(t);
    }
    const ps = await PubSub.start(node, { name: "ps", adapter });
    return { ps, scheds };
  }

  it("P36 100k subscribers of one topic exit: tables and interest counters end empty; removal work per subscriber is independent of the topic's size", async () => {
    const { ps, scheds } = await setup(2, true);
    const visitsPer: number[] = [];
    for (const n of [1_000, 100_000]) {
      const procs: Process<any>[] = [];
      for (let i = 0; i < n; i++) {
        const p = scheds[i % 2]!.spawn(handler, undefined, null, false) as Process<any>;
        PubSub.subscribe(p, ps, "hot");
        procs.push(p);
      }
      expect(PubSub.topicStats(ps, "hot").subscribers).toBe(n);
      const before = PubSub.stats(ps).removalVisits;
      const t0 = performance.now();
      for (const p of procs) p.exit("kill");
      const ms = performance.now() - t0;
      visitsPer.push((PubSub.stats(ps).removalVisits - before) / n);
      expect(emptiness(ps)).toEqual(EMPTY);
      expect(ms).toBeLessThan(1000);
    }
    // one entry visited per removed subscription, at 1k as at 100k: never a scan of the topic
    expect(visitsPer).toEqual([1, 1]);
  });

  it("P37 100k subscribe/exit cycles on one topic and on 100k topics leave every table, reverse index and interest map empty", async () => {
    const { ps, scheds } = await setup(2, true);
    for (let i = 0; i < 100_000; i++) {
      const p = scheds[i % 2]!.spawn(handler, undefined, null, false) as Process<any>;
      PubSub.subscribe(p, ps, "one");
      PubSub.subscribe(p, ps, `t${i}`);
      p.exit("normal");
    }
    expect(emptiness(ps)).toEqual(EMPTY);
    await new Promise((r) => setImmediate(r));
    expect(ps.inst.gen!.interest!.pendingChanges).toBe(0);
  });

  it("100k subscribe/exit cycles leave the tables empty", async () => {
    const { ps } = await setup(1, false);
    for (let i = 0; i < 100_000; i++) {
      const p = node.main.spawn(handler, undefined, null, false) as Process<any>;
      PubSub.subscribe(p, ps, i % 2 === 0 ? "same" : `topic:${i}`, { metadata: i });
      PubSub.subscribe(p, ps, "same");
      if (i % 3 === 0) PubSub.unsubscribe(p, ps, "same");
      node.exit(p.pid, "kill");
    }
    expect(emptiness(ps)).toEqual(EMPTY);
    expect(PubSub.stats(ps).subscribers).toBe(0);
  });

  it("a process that subscribes and unsubscribes in a loop registers one exit hook per table", async () => {
    const { ps } = await setup(1, false);
    const p = node.process();
    for (let i = 0; i < 1000; i++) {
      PubSub.subscribe(p, ps, "loop");
      PubSub.unsubscribe(p, ps, "loop");
    }
    expect(p.exitHooks?.length).toBe(1);
    expect(emptiness(ps)).toEqual(EMPTY);
  });

  it("removes a subscriber from many topics in O(its topics), other subscribers untouched", async () => {
    const { ps } = await setup(1, false);
    const keep = node.process();
    const go = node.process();
    for (let i = 0; i < 500; i++) {
      PubSub.subscribe(keep, ps, `m${i}`);
      PubSub.subscribe(go, ps, `m${i}`);
      PubSub.subscribe(go, ps, `m${i}`); // a duplicate
    }
    const before = PubSub.stats(ps).removalVisits;
    go.exit("normal");
    expect(PubSub.stats(ps).removalVisits - before).toBe(500);
    expect(PubSub.stats(ps).subscriptions).toBe(500);
    expect(PubSub.topicsOf(ps, keep.pid)).toHaveLength(500);
  });
});
