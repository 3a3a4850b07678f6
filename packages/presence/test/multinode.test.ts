/**
 * Presence on several nodes over a MemoryCluster: each node lists the whole cluster's presences
 * and broadcasts every change once to its own subscribers; a killed node's presences leave the
 * other nodes' lists (and their subscribers get the leaves) within the down period; a restarted
 * node's presences come back with fresh refs; a netsplit hides and then restores the other side.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Presence, type PresenceState } from "@cinder/presence";
import { applyDiff, applyState, holdsFor, presenceCluster, size, view, waitFor, Watcher, type PCluster, type POpts } from "./support.js";

const DOWN = 300;
const BROADCAST = 20;

const clusters: PCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

async function cluster(names: string[], extra: POpts = {}): Promise<PCluster> {
  const c = await presenceCluster(names, { broadcastPeriod: BROADCAST, downPeriod: DOWN, batchMs: 20, ...extra });
  clusters.push(c);
  return c;
}

const keys = (s: PresenceState) => Object.keys(s).sort();

describe("multi-node presence (MemoryCluster)", () => {
  it("a presence tracked on one node is listed on every node, and each node's subscribers get its join once", async () => {
    const c = await cluster(["a", "b", "c"]);
    const [a, b, cn] = [c.byName("a"), c.byName("b"), c.byName("c")];
    const ws = [a, b, cn].map((n) => new Watcher(n, "room"));
    const ann = a.node.process();
    const bob = b.node.process();
    const ra = await Presence.track(ann, a.presence, ann.pid, "room", "ann", { at: "a" });
    const rb = await Presence.track(bob, b.presence, bob.pid, "room", "bob", { at: "b" });
    for (const n of [a, b, cn]) await waitFor(() => keys(Presence.listRaw(n.node, n.presence, "room")).join() === "ann,bob", { what: `${n.name} lists both` });
    for (const w of ws) await waitFor(() => w.view().length === 2, { what: "each watcher sees both" });
    await holdsFor(() => true, 3 * BROADCAST);
    for (const w of ws) {
      // once each: no node broadcasts another node's view to it
      expect(w.diffs.reduce((k, d) => k + size(d.joins), 0)).toBe(2);
      expect(w.view()).toEqual([
        ["ann", [ra]],
        ["bob", [rb]],
      ]);
    }
    expect(Presence.listRaw(cn.node, cn.presence, "room").ann!.metas[0]).toEqual({ at: "a", phx_ref: ra });
  });

  it("an update on one node reaches the other node's subscribers as one diff with both halves", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const wb = new Watcher(b, "room");
    const p = a.node.process();
    const r1 = await Presence.track(p, a.presence, p.pid, "room", "ann", { typing: false });
    await waitFor(() => wb.diffs.length === 1, { what: "b sees the join" });
    const r2 = await Presence.update(p, a.presence, p.pid, "room", "ann", { typing: true });
    await waitFor(() => wb.diffs.length === 2, { what: "b sees the update" });
    await holdsFor(() => wb.diffs.length === 2, 3 * BROADCAST, "one diff for the update");
    const d = JSON.parse(JSON.stringify(wb.diffs[1]));
    expect(d).toEqual({ joins: { ann: { metas: [{ typing: true, phx_ref: r2, phx_ref_prev: r1 }] } }, leaves: { ann: { metas: [{ typing: false, phx_ref: r1 }] } } });
  });

  it("a node killed: its presences leave the other node's list, and that node's subscribers get the leaves, within the down period", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const wb = new Watcher(b, "room");
    const local = b.node.process();
    await Presence.track(local, b.presence, local.pid, "room", "bea", {});
    const ps = Array.from({ length: 20 }, () => a.node.process());
    await Promise.all(ps.map((p, i) => Presence.track(p, a.presence, p.pid, "room", `a${i % 7}`, { i })));
    await waitFor(() => size(Presence.listRaw(b.node, b.presence, "room")) === 21, { what: "b lists a's 20 and its own" });
    await waitFor(() => wb.view().length === 8, { what: "b's subscriber sees everyone" });
    // a client of b that joined just before the crash
    const client = applyState({}, await Presence.list(b.me, b.presence, "room"));
    const before = wb.diffs.length;
    const t0 = performance.now();
    await c.kill("a");
    await waitFor(() => keys(Presence.listRaw(b.node, b.presence, "room")).join() === "bea", { what: "a's presences left b's list", timeoutMs: 5000 });
    const gone = performance.now() - t0;
    await waitFor(() => wb.view().map(([k]) => k).join() === "bea", { what: "b's subscriber got the leaves", timeoutMs: 5000 });
    const seen = performance.now() - t0;
    // down period, plus at most one tick to notice it and one batching window
    expect(gone).toBeLessThan(DOWN + 2 * BROADCAST + 150);
    expect(seen).toBeLessThan(DOWN + 2 * BROADCAST + 20 + 200);
    expect(gone).toBeGreaterThanOrEqual(DOWN - 2 * BROADCAST);
    const leaves = wb.diffs.slice(before);
    expect(leaves.reduce((k, d) => k + size(d.leaves), 0)).toBe(20);
    expect(leaves.every((d) => size(d.joins) === 0)).toBe(true);
    expect(view(leaves.reduce((s, d) => applyDiff(s, d), client))).toEqual(view(Presence.listRaw(b.node, b.presence, "room")));
  });

  it("a restarted node (new incarnation) tracks again: its presences come back with fresh refs; the old ones never reappear", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const wb = new Watcher(b, "room");
    const p = a.node.process();
    const old = await Presence.track(p, a.presence, p.pid, "room", "ann", {});
    await waitFor(() => wb.view().length === 1);
    await c.kill("a");
    await waitFor(() => wb.view().length === 0, { what: "ann left", timeoutMs: 5000 });
    const a2 = await c.start("a");
    const p2 = a2.node.process();
    const neu = await Presence.track(p2, a2.presence, p2.pid, "room", "ann", {});
    await waitFor(() => JSON.stringify(wb.view()) === JSON.stringify([["ann", [neu]]]), { what: "ann is back with a fresh ref", timeoutMs: 5000 });
    expect(neu).not.toBe(old);
    expect(Presence.listRaw(b.node, b.presence, "room").ann!.metas.map((m) => m.phx_ref)).toEqual([neu]);
  });

  it("a netsplit hides the other side's presences after the down period; after the heal they are listed and joined again, and every client view matches its node's list", async () => {
    const c = await cluster(["a", "b"]);
    const [a, b] = [c.byName("a"), c.byName("b")];
    const wa = new Watcher(a, "room"), wb = new Watcher(b, "room");
    const pa = a.node.process(), pb = b.node.process();
    await Presence.track(pa, a.presence, pa.pid, "room", "ann", {});
    await Presence.track(pb, b.presence, pb.pid, "room", "bob", {});
    await waitFor(() => wa.view().length === 2 && wb.view().length === 2);
    c.cluster.partition(["a"], ["b"]);
    await waitFor(() => wa.view().map(([k]) => k).join() === "ann" && wb.view().map(([k]) => k).join() === "bob", { what: "each side alone", timeoutMs: 5000 });
    const pb2 = b.node.process();
    await Presence.track(pb2, b.presence, pb2.pid, "room", "bea", {}); // during the split
    await Presence.untrack(pa, a.presence, pa.pid); // ann leaves during the split
    c.cluster.heal();
    await waitFor(() => wa.view().map(([k]) => k).join() === "bea,bob" && wb.view().map(([k]) => k).join() === "bea,bob", { what: "healed views", timeoutMs: 5000 });
    for (const [n, w] of [
      [a, wa],
      [b, wb],
    ] as const) {
      await Presence.flush(n.node, n.presence);
      expect(w.view()).toEqual(view(Presence.listRaw(n.node, n.presence, "room")));
    }
  });
});
