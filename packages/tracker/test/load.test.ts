/**
 * Two nodes under load (TRACKER.md F5, F7): a backlog of 100k track calls must not stop
 * heartbeats (T58), and 100k tracked actors of one topic dying together cost linear work on
 * both nodes (T60).
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Pid } from "@cinder/runtime";
import { Tracker } from "@cinder/tracker";
import { floodTracks, trackerCluster, trackersMet, waitFor, type TCluster, type TNode } from "./support/cluster.js";

const clusters: TCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

const stats = (n: TNode) => Tracker.stats(n.node, n.tracker)[0]!;
const total = (n: TNode, topics: readonly string[]) => topics.reduce((s, t) => s + Tracker.list(n.node, n.tracker, t).length, 0);

describe("load", () => {
  it("T58 (F5, 5.5) with broadcastPeriod 50 ms and downPeriod 1 s, a backlog of 100k track calls on one node makes neither node mark the other down", async () => {
    // the transport's own failure detector is set wide: this is about the tracker's heartbeats
    const c = await trackerCluster(["a", "b"], { broadcastPeriod: 50, maxSilentPeriods: 10, downPeriod: 1000, permdownPeriod: 3000 }, { downAfterMs: 5000 });
    clusters.push(c);
    await trackersMet(c.nodes);
    const [a, b] = c.nodes as [TNode, TNode];
    // Both nodes share this thread: a scheduler yields to the event loop only every turnBudget
    // messages (50k by default), which would starve the idle node's timers for as long as the
    // busy one works (on its own machine it would not be). Yield more often, as two nodes would.
    for (const n of [a, b]) {
      n.node.main.turnBudget = 2000;
      n.diffs.countOnly = true;
    }
    const topics = Array.from({ length: 1000 }, (_, i) => `t:${i}`);
    const user = a.node.process();
    const N = 100_000;
    const before = { a: stats(a), b: stats(b) };
    const t0 = performance.now();
    const flood = floodTracks(a, N, (i) => ({ pid: user.pid, topic: topics[i % 1000]!, key: `u:${i}` }));
    expect(stats(a).mailbox).toBeGreaterThanOrEqual(N);
    expect(await flood.done).toBe(0);
    const tracked = performance.now() - t0;
    await waitFor(() => total(b, topics) === N, { timeoutMs: 20_000, what: "b lists the 100k" });
    const during = { a: stats(a), b: stats(b) };
    // heartbeats kept flowing both ways while the backlog was worked off
    expect(during.a.heartbeatsSent - before.a.heartbeatsSent).toBeGreaterThan(Math.floor(tracked / 1000));
    expect(during.a.heartbeatsReceived).toBeGreaterThan(before.a.heartbeatsReceived);
    for (const n of [a, b]) {
      expect(n.events.filter((e) => e.event !== "up"), `${n.name}'s replica events`).toEqual([]);
      expect(stats(n).downs).toBe(0);
      expect(stats(n).peers).toMatchObject([{ status: "up" }]);
    }
    expect(b.diffs.joins).toBe(N);
    expect(b.diffs.leaves).toBe(0);
  });

  it("T60 (F7) 100k tracked actors of one topic die together: both nodes report every leave and list 0, with work linear in 100k (operation counts)", async () => {
    const c = await trackerCluster(["a", "b"], { broadcastPeriod: 20, downPeriod: 3000, permdownPeriod: 9000 }, { downAfterMs: 5000 });
    clusters.push(c);
    await trackersMet(c.nodes);
    const [a, b] = c.nodes as [TNode, TNode];
    for (const n of [a, b]) n.diffs.countOnly = true;
    const N = 100_000;
    const pids: Pid[] = [];
    for (let i = 0; i < N; i++) pids.push(a.node.spawn({ handle() {} }));
    expect(await floodTracks(a, N, (i) => ({ pid: pids[i]!, topic: "hot", key: `u:${i}` })).done).toBe(0);
    await waitFor(() => Tracker.list(b.node, b.tracker, "hot").length === N, { timeoutMs: 20_000, what: "b lists the 100k" });
    const before = { a: stats(a), b: stats(b), aMsgs: a.node.main.stats().messagesIn, bMsgs: b.node.main.stats().messagesIn };
    for (const pid of pids) a.node.exit(pid, "kill");
    await waitFor(() => Tracker.list(a.node, a.tracker, "hot").length === 0, { timeoutMs: 20_000, what: "a lists 0" });
    await waitFor(() => Tracker.list(b.node, b.tracker, "hot").length === 0, { timeoutMs: 20_000, what: "b lists 0" });
    await waitFor(() => a.diffs.leaves === N && b.diffs.leaves === N, { what: "every leave reported" });
    const after = { a: stats(a), b: stats(b), aMsgs: a.node.main.stats().messagesIn, bMsgs: b.node.main.stats().messagesIn };
    // a: one DOWN per actor, the leaves of consecutive exits coalesced into few diffs
    expect(after.a.exits - before.a.exits).toBe(N);
    expect(after.a.diffLeaves - before.a.diffLeaves).toBe(N);
    expect(after.a.diffCalls - before.a.diffCalls).toBeLessThan(50);
    expect(after.a.monitors).toBe(0);
    expect(after.aMsgs - before.aMsgs).toBeLessThan(2 * N); // DOWNs plus a bounded number of others
    // b: the leaves arrive in a handful of heartbeats, one diff each; no per-leave messages
    const hbs = after.b.heartbeatsReceived - before.b.heartbeatsReceived;
    expect(after.b.diffLeaves - before.b.diffLeaves).toBe(N);
    expect(after.b.diffCalls - before.b.diffCalls).toBeLessThanOrEqual(hbs);
    expect(after.bMsgs - before.bMsgs).toBeLessThan(2000);
    expect(Tracker.dirtyList(b.node, b.tracker, "hot")).toEqual([]);
  });
});
