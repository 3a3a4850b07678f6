/**
 * Trackers on several nodes over a MemoryCluster (TRACKER.md sections 0, 3, 5, 6): first
 * contact and transfers, peers suspended / resumed / killed / restarted, graceful permdown,
 * rolling updates (F3), netsplits and heals without ghosts (F1, 5.3, 5.4), restart races (F10),
 * crash-driven untracking across nodes, and a randomized cluster property with transport faults
 * (T48). Periods are short (broadcast 20 ms, down 300 ms, permdown 1.2 s); every wait is on an
 * event, with timeouts well above the periods.
 */
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger, startNode, type Process } from "@cinder/runtime";
import { PubSub, clusterAdapter } from "@cinder/pubsub";
import { Tracker, shardTopic, type ReplicaId } from "@cinder/tracker";
import { findPool } from "../src/internal/registry.js";
import type { ShardHandle } from "../src/internal/shard.js";
import { actor, listView, trackerCluster, trackersMet, waitFor, holdsFor, type TCluster, type TNode } from "./support/cluster.js";

const DOWN = 300;
const PERMDOWN = 1200;

const clusters: TCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

async function cluster(names: string[], extra = {}): Promise<TCluster> {
  const c = await trackerCluster(names, extra);
  clusters.push(c);
  await trackersMet(c.nodes);
  return c;
}

const replicaOf = (n: TNode, shard = 0): ReplicaId => Tracker.stats(n.node, n.tracker).find((s) => s.shard === shard)!.replica;
const stats = (n: TNode, shard = 0) => Tracker.stats(n.node, n.tracker).find((s) => s.shard === shard)!;
const eventsOf = (n: TNode, replica: ReplicaId) => n.events.filter((e) => e.replica === replica).map((e) => e.event);

/** Collects the protocol messages published on a shard's topic on node `n`. */
function spy(n: TNode, shard = 0): { msgs: () => any[] } {
  const p: Process<any> = n.node.process();
  PubSub.subscribe(p, n.ps, shardTopic("tr", shard));
  const got: any[] = [];
  return {
    msgs() {
      got.push(...p.flush());
      return got;
    },
  };
}

/** Checks that every node's diffs add up to exactly what it lists, for `topics`. */
function diffsMatchLists(nodes: TNode[], topics: Iterable<string>): void {
  for (const n of nodes) {
    expect(n.diffs.problems, `${n.name}'s diffs`).toEqual([]);
    for (const t of topics) expect(n.diffs.view(t), `${n.name} ${t}: diffs vs list`).toEqual(listView(n, t));
  }
}

describe("first contact and transfers (T29, T30, T55)", () => {
  it("T29 a heartbeat from an unseen replica marks it up; it is ahead, so the receiver sends it a transfer_req, gets the matching ack and lists its presence", async () => {
    const c = await cluster(["a"]);
    const a = c.byName("a");
    const pa = actor(a);
    const ref = await Tracker.track(a.me, a.tracker, pa.pid, "room", "alice", { v: 1 });
    await waitFor(() => stats(a).pending === 0, { what: "a's delta went out (to nobody)" });
    const spyA = spy(a);
    const b = await c.start("b");
    await waitFor(() => listView(b, "room").join() === `alice ${ref}`, { what: "b lists alice" });
    const bRep = replicaOf(b);
    expect(eventsOf(b, replicaOf(a))).toEqual(["up"]);
    expect(stats(b).peers).toMatchObject([{ node: "a", status: "up", replica: replicaOf(a) }]);
    const reqs = spyA.msgs().filter((m) => m.$tracker === "req" && m.from === bRep);
    expect(reqs.length).toBeGreaterThanOrEqual(1);
    expect(reqs[0]).toMatchObject({ to: replicaOf(a) });
    expect(stats(a).transferReqsReceived).toBeGreaterThanOrEqual(1);
    expect(stats(b).acksMerged).toBeGreaterThanOrEqual(1);
    expect(stats(b).acksDropped).toBe(0);
    expect(b.diffs.history("room", "alice")).toEqual([`+${ref}`]);
  });

  it("T52 with every frame duplicated, duplicate heartbeats are dropped and a duplicated transfer ack is merged once", async () => {
    const c = await cluster(["a"]);
    const a = c.byName("a");
    const ref = await Tracker.track(a.me, a.tracker, actor(a).pid, "room", "alice", {});
    await waitFor(() => stats(a).pending === 0);
    c.cluster.setFaults({ duplicate: 1 });
    const b = await c.start("b");
    await waitFor(() => listView(b, "room").length === 1, { what: "b lists alice" });
    await waitFor(() => stats(b).acksDropped >= 1 && stats(b).heartbeatsDropped >= 1, { what: "duplicates dropped" });
    expect(stats(b).acksMerged).toBeGreaterThanOrEqual(1);
    expect(stats(b).acksMerged + stats(b).acksDropped).toBeGreaterThanOrEqual(2 * stats(b).acksMerged);
    expect(b.diffs.history("room", "alice")).toEqual([`+${ref}`]);
    diffsMatchLists([a, b], ["room"]);
  });

  it("T30 with two peers ahead and one dominating, exactly one transfer_req goes, to the dominating peer; all three presences are then joined and listed", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const rx = await Tracker.track(a.me, a.tracker, actor(a).pid, "room", "x", {});
    const ry = await Tracker.track(b.me, b.tracker, actor(b).pid, "room", "y", {});
    await waitFor(() => listView(a, "room").length === 2 && listView(b, "room").length === 2);
    // b moves ahead of a: a does not see z
    c.cluster.partition(["a"], ["b"]);
    const rz = await Tracker.track(b.me, b.tracker, actor(b).pid, "room", "z", {});
    const spyA = spy(a);
    const spyB = spy(b);
    // c samples clocks after it has heard both (10 ticks), so both clocks are in its set
    const cn = await c.start("c", { clockSamplePeriods: 10 });
    await waitFor(() => listView(cn, "room").length === 3, { what: "c lists x, y and z" });
    await holdsFor(() => stats(cn).transferReqsSent === 1, 300, "a single transfer request from c"); // more sample periods: nothing more
    const cRep = replicaOf(cn);
    expect(spyA.msgs().filter((m) => m.$tracker === "req" && m.from === cRep)).toEqual([]);
    expect(spyB.msgs().filter((m) => m.$tracker === "req" && m.from === cRep)).toHaveLength(1);
    expect(stats(cn).transferReqsSent).toBe(1);
    expect(listView(cn, "room")).toEqual([`x ${rx}`, `y ${ry}`, `z ${rz}`].sort());
    expect(cn.diffs.joins).toBe(3);
    diffsMatchLists([cn], ["room"]);
  });

  it("T55 (F2) two nodes holding N presences each meet for the first time and both list 2N, for N = 51, 150, 1,500 and 15,000 (delta windows and full state)", async () => {
    const sent = { window: 0, full: 0 };
    for (const N of [51, 150, 1500, 15_000]) {
      // big merges block the thread for a while: periods that tolerate it (5.5)
      const c = await trackerCluster([], { downPeriod: 2000, permdownPeriod: 6000 }, { downAfterMs: 1500 });
      clusters.push(c);
      c.cluster.partition(["a"], ["b"]);
      const [a, b] = [await c.start("a"), await c.start("b")];
      const topics = Array.from({ length: 10 }, (_, i) => `t${i}`);
      for (const n of [a, b]) {
        const p = actor(n);
        await Promise.all(Array.from({ length: Math.min(N, 200) }, (_, i) => Tracker.track(n.me, n.tracker, p.pid, topics[i % 10]!, `${n.name}${i}`, {})));
        if (N > 200) {
          const { floodTracks } = await import("./support/cluster.js");
          expect(await floodTracks(n, N - 200, (i) => ({ pid: p.pid, topic: topics[i % 10]!, key: `${n.name}${i + 200}` })).done).toBe(0);
        }
      }
      await waitFor(() => stats(a).heartbeatsSent > 3 && stats(b).heartbeatsSent > 3); // the deltas went out (into the void)
      c.cluster.heal();
      const total = (n: TNode) => topics.reduce((s, t) => s + Tracker.list(n.node, n.tracker, t).length, 0);
      await waitFor(() => total(a) === 2 * N && total(b) === 2 * N, { timeoutMs: 15_000, what: `both list ${2 * N}` });
      await holdsFor(() => total(a) === 2 * N && total(b) === 2 * N, 100);
      expect(a.diffs.joins).toBe(2 * N);
      expect(b.diffs.joins).toBe(2 * N);
      diffsMatchLists([a, b], topics);
      for (const n of [a, b]) {
        sent.window += stats(n).windowTransfersSent;
        sent.full += stats(n).fullTransfersSent;
      }
      clusters.splice(clusters.indexOf(c), 1);
      await c.close();
    }
    expect(sent.window).toBeGreaterThan(0);
    expect(sent.full).toBeGreaterThan(0);
  });
});

describe("peers going away and coming back (T31–T34, T42, T43, T63)", () => {
  it("T32 suspended: leave and down (same vsn); resumed: join and up (same vsn); killed: leave and down; restarted: new vsn, new presence joins, old not listed; killed again: leave; gone from the peer map after permdownPeriod", async () => {
    const c = await cluster(["a", "b"]);
    const a = c.byName("a");
    let b = c.byName("b");
    const ref1 = await Tracker.track(b.me, b.tracker, actor(b).pid, "room", "bob", {});
    await waitFor(() => listView(a, "room").length === 1);
    const v1 = replicaOf(b);
    // suspended
    c.cluster.partition(["a"], ["b"]);
    await waitFor(() => eventsOf(a, v1).join() === "up,down", { what: "b down on a" });
    expect(listView(a, "room")).toEqual([]);
    expect(a.diffs.history("room", "bob")).toEqual([`+${ref1}`, `-${ref1}`]);
    // resumed: same vsn
    c.cluster.heal();
    await waitFor(() => eventsOf(a, v1).join() === "up,down,up", { what: "b up again on a" });
    expect(listView(a, "room")).toEqual([`bob ${ref1}`]);
    expect(a.diffs.history("room", "bob")).toEqual([`+${ref1}`, `-${ref1}`, `+${ref1}`]);
    // killed
    await c.kill("b");
    await waitFor(() => eventsOf(a, v1).join() === "up,down,up,down", { what: "b down after the kill" });
    expect(listView(a, "room")).toEqual([]);
    // restarted: a new incarnation
    b = await c.start("b");
    const v2 = replicaOf(b);
    expect(v2).not.toBe(v1);
    const ref2 = await Tracker.track(b.me, b.tracker, actor(b).pid, "room", "bob2", {});
    await waitFor(() => listView(a, "room").join() === `bob2 ${ref2}`, { what: "the new presence on a" });
    expect(eventsOf(a, v1)).toEqual(["up", "down", "up", "down", "permdown"]);
    expect(eventsOf(a, v2)).toEqual(["up"]);
    expect(Tracker.dirtyList(a.node, a.tracker, "room").map((r) => r.replica)).toEqual([v2]);
    // killed again, then gone
    await c.kill("b");
    await waitFor(() => eventsOf(a, v2).join() === "up,down");
    expect(listView(a, "room")).toEqual([]);
    await waitFor(() => stats(a).peers.length === 0, { timeoutMs: PERMDOWN + 2000, what: "b purged" });
    expect(eventsOf(a, v2)).toEqual(["up", "down", "permdown"]);
    diffsMatchLists([a], ["room"]);
  });

  it("T33 a remote track reports a join and the peer is up; a killed tracked actor reports a leave locally and on the other node", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const pa = actor(a);
    const ref = await Tracker.track(pa, a.tracker, pa.pid, "room", "alice", { n: 1 });
    await waitFor(() => b.diffs.joins === 1);
    expect(b.diffs.calls.at(-1)).toEqual([{ topic: "room", joins: [{ key: "alice", meta: { n: 1, phx_ref: ref } }], leaves: [] }]);
    expect(stats(b).peers).toMatchObject([{ node: "a", status: "up" }]);
    pa.exit("kill");
    await waitFor(() => a.diffs.leaves === 1 && b.diffs.leaves === 1, { what: "both report the leave" });
    expect(b.diffs.calls.at(-1)).toEqual([{ topic: "room", joins: [], leaves: [{ key: "alice", meta: { n: 1, phx_ref: ref } }] }]);
    expect(listView(b, "room")).toEqual([]);
  });

  it("T34 a killed peer gives a leave and status down after downPeriod; list hides its presence while dirtyList keeps it; after permdownPeriod plus two ticks dirtyList no longer has it", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    await Tracker.track(b.me, b.tracker, actor(b).pid, "room", "bob", {});
    await waitFor(() => listView(a, "room").length === 1);
    const vb = replicaOf(b);
    const t0 = performance.now();
    await c.kill("b");
    await waitFor(() => eventsOf(a, vb).includes("down"), { timeoutMs: DOWN + 2000 });
    const downAfter = performance.now() - t0;
    // silence is counted from b's last heartbeat (at most 3 ticks before the kill), detected on a tick
    expect(downAfter).toBeGreaterThan(DOWN - 3 * 20 - 20);
    expect(downAfter).toBeLessThan(DOWN + 250);
    expect(listView(a, "room")).toEqual([]);
    expect(a.diffs.leaves).toBe(1);
    expect(Tracker.dirtyList(a.node, a.tracker, "room").map((r) => r.key)).toEqual(["bob"]);
    expect(stats(a).peers).toMatchObject([{ node: "b", status: "down" }]);
    await waitFor(() => Tracker.dirtyList(a.node, a.tracker, "room").length === 0, { timeoutMs: PERMDOWN + 2000 });
    const goneAfter = performance.now() - t0;
    expect(goneAfter).toBeGreaterThan(PERMDOWN - 3 * 20 - 20);
    expect(goneAfter).toBeLessThan(PERMDOWN + 2 * 20 + 250);
    expect(eventsOf(a, vb)).toEqual(["up", "down", "permdown"]);
    expect(a.diffs.leaves).toBe(1); // permdown reports nothing more
    // (F8) nothing of b is left in a's state or delta windows
    const st = (findPool(a.node, "tr")!.shards[0] as ShardHandle).st;
    expect(st.state.context.has(vb)).toBe(false);
    expect(st.state.replicas.has(vb)).toBe(false);
    for (const w of st.gens) {
      expect([...w.values.keys(), ...w.clouds.keys(), ...w.range.start.keys(), ...w.range.end.keys()]).not.toContain(vb);
    }
  });

  it("T42 gracefulPermdown on a peer makes the other node report the leave at once, list nothing and drop the peer", async () => {
    const c = await cluster(["a", "b"], { poolSize: 2 });
    const [a, b] = [c.byName("a"), c.byName("b")];
    const topics = ["t1", "t2", "t3", "t4"];
    const pb = actor(b);
    for (const t of topics) await Tracker.track(b.me, b.tracker, pb.pid, t, "bob", {});
    await waitFor(() => topics.every((t) => listView(a, t).length === 1));
    const t0 = performance.now();
    await Tracker.gracefulPermdown(b.me, b.tracker);
    await waitFor(() => topics.every((t) => listView(a, t).length === 0));
    expect(performance.now() - t0).toBeLessThan(DOWN / 2);
    expect(a.diffs.leaves).toBe(4);
    for (const t of topics) expect(Tracker.dirtyList(a.node, a.tracker, t)).toEqual([]);
    expect(Tracker.stats(a.node, a.tracker).map((s) => s.peers)).toEqual([[], []]);
    expect(a.events.filter((e) => e.node === "b").map((e) => e.event).sort()).toEqual(["down", "down", "permdown", "permdown", "up", "up"]);
    expect(b.node.whereis("tr")).toBeUndefined(); // the pool stopped
  });

  it("3.10 permdownOnShutdown: an orderly node shutdown announces a graceful permdown (peers drop its presences at once); a restart of the pool by its supervisor does not", async () => {
    const c = await cluster(["a"]);
    const a = c.byName("a");
    const t = c.cluster.node("b");
    await t.start();
    const bNode = await startNode({ name: "b", schedulers: 1, logger: silentLogger });
    await bNode.startChild(PubSub.childSpec({ name: "ps", adapter: clusterAdapter(t, { interestSyncMs: 40 }) }));
    await bNode.startChild(Tracker.childSpec({ name: "tr", pubsub: "ps", broadcastPeriod: 20, maxSilentPeriods: 2, downPeriod: DOWN, permdownPeriod: PERMDOWN, permdownOnShutdown: true }));
    const user = bNode.process();
    await Tracker.track(user, "tr", user.pid, "room", "bob", {});
    await waitFor(() => listView(a, "room").length === 1, { what: "a lists bob" });
    const v1 = Tracker.stats(bNode, "tr")[0]!.replica;
    // the pool restarted by its parent: peers see a new vsn, not a graceful permdown
    bNode.exit(bNode.whereis("tr")!, "kill");
    await waitFor(() => Tracker.stats(bNode, "tr").length === 1 && Tracker.stats(bNode, "tr")[0]!.replica !== v1);
    const v2 = Tracker.stats(bNode, "tr")[0]!.replica;
    const u2 = bNode.process();
    await Tracker.track(u2, "tr", u2.pid, "room", "bob2", {});
    await waitFor(() => listView(a, "room").length === 1 && listView(a, "room")[0]!.startsWith("bob2"));
    expect(stats(a).peers).toMatchObject([{ replica: v2, status: "up" }]);
    // an orderly shutdown: a drops b at once
    const t0 = performance.now();
    await bNode.stop();
    c.cluster.kill("b");
    await waitFor(() => listView(a, "room").length === 0 && stats(a).peers.length === 0, { what: "a drops b" });
    expect(performance.now() - t0).toBeLessThan(DOWN);
    expect(eventsOf(a, v2)).toEqual(["up", "down", "permdown"]);
  });

  it("T43 (F3) rolling update: a killed peer is kept down during the grace period; a new node that never knew it sends exactly one transfer_req and no more; the peer is permdowned later", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const ra = await Tracker.track(a.me, a.tracker, actor(a).pid, "room", "alice", {});
    await Tracker.track(b.me, b.tracker, actor(b).pid, "room", "bob", {});
    await waitFor(() => listView(a, "room").length === 2);
    const vb = replicaOf(b);
    await c.kill("b");
    await waitFor(() => eventsOf(a, vb).includes("down"), { timeoutMs: DOWN + 2000 });
    expect(Tracker.dirtyList(a.node, a.tracker, "room")).toHaveLength(2); // kept while down
    const spyA = spy(a);
    const cn = await c.start("c");
    await waitFor(() => listView(cn, "room").join() === `alice ${ra}`, { what: "c lists a's presence" });
    const cRep = replicaOf(cn);
    await waitFor(() => eventsOf(a, vb).includes("permdown"), { timeoutMs: PERMDOWN + 2000 });
    await holdsFor(() => stats(cn).transferReqsSent === 1, 100, "a single transfer request from c");
    expect(spyA.msgs().filter((m) => m.$tracker === "req" && m.from === cRep)).toHaveLength(1);
    expect(stats(cn).transferReqsSent).toBe(1);
    expect(stats(cn).peers.map((p) => p.node)).toEqual(["a"]);
    expect(listView(cn, "room")).toEqual([`alice ${ra}`]);
  });

  it("T31 after a peer's shard is killed (purged on the restarted shard's first heartbeat) and the new incarnation tracks again, no node holds a row of the old incarnation's pid", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const old = actor(b);
    old.trapExit(true); // survives the shard's exit signal
    await Tracker.track(b.me, b.tracker, old.pid, "room", "bob", {});
    await waitFor(() => listView(a, "room").length === 1);
    const v1 = replicaOf(b);
    b.node.exit(stats(b).pid, "kill");
    await waitFor(() => Tracker.stats(b.node, b.tracker).length === 1 && replicaOf(b) !== v1, { what: "b's shard restarted" });
    const fresh = actor(b);
    await Tracker.track(b.me, b.tracker, fresh.pid, "room", "bob", {});
    await waitFor(() => eventsOf(a, v1).includes("permdown") && listView(a, "room").length === 1);
    for (const n of [a, b]) {
      const rows = Tracker.dirtyList(n.node, n.tracker, "room");
      expect(rows.map((r) => r.pid)).toEqual([fresh.pid]);
      expect(rows.some((r) => r.replica === v1)).toBe(false);
    }
    expect(eventsOf(a, v1)).toEqual(["up", "down", "permdown"]);
    diffsMatchLists([a], ["room"]); // (b's crashed shard reported no leave for its rows: like Phoenix's, they died with it)
  });

  it("T63 (F10) a crashed shard restarts with a new vsn; its tracked actors are told; peers purge the old incarnation on the new one's first heartbeat", async () => {
    const c = await cluster(["a", "b"], { onShardExit: "notify" });
    const [a, b] = [c.byName("a"), c.byName("b")];
    const user = actor(b);
    await Tracker.track(b.me, b.tracker, user.pid, "room", "bob", {});
    await waitFor(() => listView(a, "room").length === 1);
    const v1 = replicaOf(b);
    const t0 = performance.now();
    b.node.exit(stats(b).pid, "kill");
    expect(await user.receive({ timeout: 1000 })).toMatchObject({ type: "tracker_shard_down", tracker: "tr", shard: 0, reason: "killed" });
    await waitFor(() => eventsOf(a, v1).includes("permdown"), { what: "a purges the old incarnation" });
    expect(performance.now() - t0).toBeLessThan(DOWN); // not by silence: by the new vsn
    const v2 = replicaOf(b);
    expect(v2).not.toBe(v1);
    expect(eventsOf(a, v1)).toEqual(["up", "down", "permdown"]);
    expect(eventsOf(a, v2)).toEqual(["up"]);
    expect(listView(a, "room")).toEqual([]);
    // the actor re-tracks against the restarted shard
    await Tracker.track(user, b.tracker, user.pid, "room", "bob", {});
    await waitFor(() => listView(a, "room").length === 1);
    // default (as Phoenix's link): the actors get an exit signal with the shard's reason
    const d = await trackerCluster(["x"]);
    clusters.push(d);
    const x = d.byName("x");
    const victim = actor(x);
    const watcher = actor(x);
    watcher.monitor(victim.pid);
    await Tracker.track(x.me, x.tracker, victim.pid, "room", "v", {});
    x.node.exit(stats(x).pid, "kill");
    expect(await watcher.receive({ timeout: 1000 })).toMatchObject({ type: "DOWN", pid: victim.pid, reason: "killed" });
  });

  it("F10 rolling restart: each node in turn is killed and restarted within downPeriod as a new incarnation; every node converges on the live presences and holds no row of an old incarnation", async () => {
    const c = await cluster(["a", "b", "c"]);
    const topics = ["r1", "r2", "r3"];
    const trackAll = async (n: TNode) => {
      const p = actor(n);
      for (const t of topics) await Tracker.track(n.me, n.tracker, p.pid, t, n.name, {});
    };
    for (const n of c.nodes) await trackAll(n);
    const converged = () => {
      const live = new Set(c.nodes.map((n) => replicaOf(n)));
      return c.nodes.every((n) =>
        topics.every((t) => {
          const rows = Tracker.dirtyList(n.node, n.tracker, t);
          return rows.length === 3 && rows.every((r) => live.has(r.replica)) && listView(n, t).length === 3;
        }),
      );
    };
    await waitFor(converged, { what: "initial convergence" });
    for (const name of ["a", "b", "c"]) {
      await c.kill(name);
      const n = await c.start(name);
      await trackAll(n);
      await waitFor(converged, { timeoutMs: 5000, what: `convergence after restarting ${name}` });
    }
    diffsMatchLists(c.nodes.filter((n) => n.name === "c"), topics);
  });
});

describe("netsplits (T53, T54, F1)", () => {
  it("T53 (5.3) after a split healed within permdownPeriod, a presence that left during the split is never reported as joined again", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const pb = actor(b);
    const rx = await Tracker.track(b.me, b.tracker, pb.pid, "room", "x", {});
    await waitFor(() => listView(a, "room").length === 1);
    const vb = replicaOf(b);
    c.cluster.partition(["a"], ["b"]);
    await waitFor(() => eventsOf(a, vb).join() === "up,down");
    await Tracker.untrack(b.me, b.tracker, pb.pid, "room", "x");
    const ry = await Tracker.track(b.me, b.tracker, pb.pid, "room", "y", {});
    await waitFor(() => stats(b).pending === 0, { what: "b's delta went out (into the void)" });
    const reqsBefore = stats(a).transferReqsSent;
    c.cluster.heal();
    await waitFor(() => eventsOf(a, vb).join() === "up,down,up", { what: "b up again" });
    expect(listView(a, "room")).toEqual([`y ${ry}`]);
    await holdsFor(() => listView(a, "room").join() === `y ${ry}`, 150);
    expect(a.diffs.history("room", "x")).toEqual([`+${rx}`, `-${rx}`]);
    expect(a.diffs.history("room", "y")).toEqual([`+${ry}`]);
    expect(stats(a).transferReqsSent).toBeGreaterThan(reqsBefore); // caught up by a transfer from b first
    diffsMatchLists([a, b], ["room"]);
  });

  it("T53 (5.3) a peer back from a split during which it changed nothing is shown again at once, from its heartbeat clock", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const rx = await Tracker.track(b.me, b.tracker, actor(b).pid, "room", "x", {});
    await waitFor(() => listView(a, "room").length === 1);
    const vb = replicaOf(b);
    c.cluster.partition(["a"], ["b"]);
    await waitFor(() => eventsOf(a, vb).join() === "up,down");
    const acks = stats(a).acksMerged;
    c.cluster.heal();
    await waitFor(() => eventsOf(a, vb).join() === "up,down,up");
    expect(stats(a).acksMerged).toBe(acks);
    expect(a.diffs.history("room", "x")).toEqual([`+${rx}`, `-${rx}`, `+${rx}`]);
  });

  it("T54 (5.4) no join or leave reaches handleDiff for rows of a replica flagged down (removals relayed by a third node, catch-up transfers)", async () => {
    const c = await cluster(["a", "b", "c"]);
    const [a, b, cn] = [c.byName("a"), c.byName("b"), c.byName("c")];
    const pa = actor(a);
    const r1 = await Tracker.track(a.me, a.tracker, pa.pid, "room", "x1", {});
    await waitFor(() => listView(cn, "room").length === 1 && listView(b, "room").length === 1);
    const va = replicaOf(a);
    c.cluster.partition(["a"], ["c"]); // a–b and b–c stay up
    await waitFor(() => eventsOf(cn, va).join() === "up,down");
    await Tracker.untrack(a.me, a.tracker, pa.pid, "room", "x1");
    const r2 = await Tracker.track(a.me, a.tracker, pa.pid, "room", "x2", {});
    await waitFor(() => listView(b, "room").join() === `x2 ${r2}`);
    // b relays the removal of x1 to c, which drops its hidden copy without reporting it
    await waitFor(() => Tracker.dirtyList(cn.node, cn.tracker, "room").length === 0, { what: "c applies the relayed removal" });
    await holdsFor(() => listView(cn, "room").length === 0, 150);
    expect(cn.diffs.history("room", "x1")).toEqual([`+${r1}`, `-${r1}`]);
    expect(cn.diffs.history("room", "x2")).toEqual([]);
    c.cluster.heal();
    await waitFor(() => listView(cn, "room").join() === `x2 ${r2}`, { what: "c shows x2 after the heal" });
    await holdsFor(() => listView(cn, "room").length === 1, 100);
    expect(cn.diffs.history("room", "x1")).toEqual([`+${r1}`, `-${r1}`]);
    expect(cn.diffs.history("room", "x2")).toEqual([`+${r2}`]);
    diffsMatchLists([a, b, cn], ["room"]);
  });
});

describe("cluster property (T48)", () => {
  function mulberry32(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it("T48 (F1, F9) random tracks, untracks, updates and exits on 3–5 nodes, with partitions, heals, loss, duplicates and reordering, converge: no ghost, no missing row, one row per presence, diffs equal the observable change", async () => {
    for (const seed of [11, 29]) {
      const rnd = mulberry32(seed);
      const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      const names = ["a", "b", "c", "d", "e"].slice(0, 3 + Math.floor(rnd() * 3));
      const c = await cluster(names, { poolSize: 2, permdownPeriod: 900 });
      const topics = ["t0", "t1", "t2", "t3"];
      const keys = ["k0", "k1", "k2"];
      const actors = new Map<string, Process<any>[]>(c.nodes.map((n) => [n.name, [actor(n), actor(n), actor(n)]]));
      let split = false;
      for (let step = 0; step < 70; step++) {
        const r = rnd();
        const n = pick(c.nodes);
        const mine = actors.get(n.name)!;
        const p = pick(mine);
        const topic = pick(topics);
        const key = pick(keys);
        if (r < 0.35) await Tracker.track(n.me, n.tracker, p.pid, topic, key, { s: step }).catch((e) => expect(e.code).toBe("already_tracked"));
        else if (r < 0.5) await Tracker.untrack(n.me, n.tracker, p.pid, topic, key);
        else if (r < 0.65) await Tracker.update(n.me, n.tracker, p.pid, topic, key, { s: step, u: true }).catch((e) => expect(e.code).toBe("nopresence"));
        else if (r < 0.7) {
          p.exit("kill");
          mine[mine.indexOf(p)] = actor(n);
        } else if (r < 0.75) await Tracker.untrack(n.me, n.tracker, p.pid);
        else if (r < 0.8 && !split) {
          const shuffled = [...names].sort(() => rnd() - 0.5);
          const k = 1 + Math.floor(rnd() * (names.length - 1));
          c.cluster.partition(shuffled.slice(0, k), shuffled.slice(k));
          split = true;
        } else if (r < 0.87 && split) {
          c.cluster.heal();
          split = false;
        } else if (r < 0.9) {
          c.cluster.setFaults(pick([{ drop: 0.2 }, { duplicate: 0.3 }, { reorder: 0.3 }, { drop: 0.1, duplicate: 0.1, reorder: 0.1, delayMs: 2, jitterMs: 5 }, {}]));
        }
        await new Promise((res) => setTimeout(res, 5 + Math.floor(rnd() * 40)));
      }
      c.cluster.heal();
      c.cluster.clearFaults();
      // the truth: what each node tracks itself
      const truth = (topic: string) =>
        c.nodes
          .flatMap((n) => Tracker.dirtyList(n.node, n.tracker, topic).filter((row) => row.replica === replicaOf(n, Tracker.shardOf(n.node, n.tracker, topic))))
          .map((row) => `${row.key} ${String(row.meta.phx_ref)}`)
          .sort();
      const agreed = () => topics.every((t) => c.nodes.every((n) => listView(n, t).join("|") === truth(t).join("|")));
      await waitFor(agreed, { timeoutMs: 15_000, what: `convergence (seed ${seed})` });
      await holdsFor(agreed, 200, "convergence");
      for (const n of c.nodes) {
        for (const t of topics) {
          const rows = Tracker.dirtyList(n.node, n.tracker, t);
          const triples = rows.map((row) => `${row.pid} ${row.key}`);
          expect(new Set(triples).size, `${n.name} ${t}: one row per presence`).toBe(triples.length);
          expect(rows.length, `${n.name} ${t}: nothing hidden`).toBe(listView(n, t).length);
        }
      }
      diffsMatchLists(c.nodes, topics);
      clusters.splice(clusters.indexOf(c), 1);
      await c.close();
    }
  });
});
