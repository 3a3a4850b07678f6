/** The supervision tree (PUBSUB.md 1.1): P25, child spec, restarts keep the handle valid. */
import { afterEach, describe, expect, it } from "vitest";
import { AlreadyStartedError, Supervisor, silentLogger, startNode, type CinderNode, type DownMessage } from "@cinder/runtime";
import { PubSub } from "@cinder/pubsub";
import { drain, tick, waitFor } from "./support/harness.js";

describe("supervision tree", () => {
  let node: CinderNode;
  afterEach(async () => {
    await node?.stop();
  });

  it("P25 the PubSub supervisor restarts the adapter when the tables restart (rest_for_one)", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    const ps = await PubSub.start(node, { name: "p25", poolSize: 2 });
    const kids = await Supervisor.whichChildren(node, "p25");
    expect(kids.map((k) => k.id)).toEqual(["tables", "adapter"]);
    const tables1 = node.whereis("p25.tables")!;
    const adapter1 = node.whereis("p25.adapter")!;
    const lane1 = node.whereis("p25.adapter.lane1")!;

    // a subscriber (trapping exits, like a process linked to Phoenix's Registry)
    const s = node.process({ trapExit: true });
    PubSub.subscribe(s, ps, "t");

    node.exit(tables1, "kill");
    await waitFor(() => node.whereis("p25.adapter") !== undefined && node.whereis("p25.adapter") !== adapter1 && node.whereis("p25.tables") !== undefined, { what: "tables and adapter restarted" });
    expect(node.whereis("p25.tables")).not.toBe(tables1);
    expect(node.whereis("p25.adapter.lane1")).not.toBe(lane1);
    expect(node.isAlive(adapter1)).toBe(false);
    // the subscriber got the table owner's exit signal and its subscription is gone
    expect(drain(s)).toEqual([{ type: "EXIT", from: tables1, reason: "killed" }]);
    expect(PubSub.subscribers(ps, "t")).toEqual([]);
    // the handle still works with the new tables
    PubSub.subscribe(s, ps, "t");
    PubSub.broadcast(node, ps, "t", "again");
    expect(drain(s)).toEqual(["again"]);
  });

  it("an adapter crash restarts only the adapter: subscriptions survive", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    const ps = await PubSub.start(node, { name: "p25b" });
    const tables = node.whereis("p25b.tables")!;
    const adapter = node.whereis("p25b.adapter")!;
    const s = node.process();
    PubSub.subscribe(s, ps, "t");
    node.exit(node.whereis("p25b.adapter.lane1")!, "boom");
    await waitFor(() => node.whereis("p25b.adapter") !== undefined && node.whereis("p25b.adapter") !== adapter, { what: "adapter restarted" });
    expect(node.whereis("p25b.tables")).toBe(tables);
    PubSub.broadcast(node, ps, "t", "still here");
    expect(drain(s)).toEqual(["still here"]);
  });

  it("childSpec starts the tree under a supervisor; ref() finds it; a second start of the name fails", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    await node.startChild(PubSub.childSpec({ name: "cs" }));
    const ps = PubSub.ref(node, "cs");
    const s = node.process();
    PubSub.subscribe(s, ps, "x");
    PubSub.broadcast(node, "cs", "x", 1);
    expect(drain(s)).toEqual([1]);
    await expect(PubSub.start(node, { name: "cs" })).rejects.toBeInstanceOf(AlreadyStartedError);
    expect(() => PubSub.ref(node, "nope")).toThrow(/PubSub nope/);
  });

  it("stop: the tree goes, subscribers get its exit signal, subscribe then fails with noproc", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    const ps = await PubSub.start(node, { name: "st" });
    const s = node.process();
    const watcher = node.process();
    watcher.monitor(s.pid);
    PubSub.subscribe(s, ps, "x");
    await PubSub.stop(node, ps);
    const down = (await watcher.receive({ timeout: 1000 })) as DownMessage;
    expect(down.reason).toBe("shutdown");
    const t = node.process();
    expect(() => PubSub.subscribe(t, ps, "x")).toThrow(/not running/);
    expect(PubSub.broadcast(node, ps, "x", 1)).toBe("ok");
    await tick();
  });
});
