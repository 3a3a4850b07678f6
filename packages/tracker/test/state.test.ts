import { describe, expect, it } from "vitest";
import { Peers, State } from "@cinder/tracker";
import type { Clock, Delta, ReplicaId, Row, TrackerState } from "@cinder/tracker";
import { canonDelta, canonRows, Cluster, diffProblems, snapshot } from "./model.js";

const rid = (name: string, vsn = "1"): ReplicaId => State.replicaId(name, vsn);
const clock = (entries: Record<string, number>): Clock => new Map(Object.entries(entries).map(([k, v]) => [rid(k), v]));

/** States that have met each other (as first heartbeats would make them). */
function group(...names: string[]): TrackerState[] {
  const states = names.map((n) => State.create(rid(n)));
  for (const a of states) for (const b of states) if (a !== b) State.replicaUp(a, b.replica);
  return states;
}

/** The pending delta of `s`, as a tick would send it; the delta is reset. */
function flush(s: TrackerState): Delta {
  const d = s.delta;
  State.resetDelta(s);
  State.compact(s);
  return d;
}

/** A full transfer from `from` to `to`, computed against `to`'s whole context. */
function transfer(from: TrackerState, to: TrackerState) {
  return State.merge(to, State.extract(from, to.replica, to.context));
}

const keys = (s: TrackerState, topic: string) => State.getByTopic(s, topic).map((p) => p.key).sort();
const brief = (rows: readonly Row[]) => rows.map((r) => `${r.topic}/${r.key}/${r.pid}=${JSON.stringify(r.meta)}`).sort();
const sound = (...states: TrackerState[]) => {
  for (const s of states) expect(State.checkInvariants(s)).toEqual([]);
};
const dots = (d: Delta) => (canonDelta(d) as { dots: string[] }).dots;
const vals = (d: Delta) => [...d.values].flatMap(([r, m]) => [...m].map(([n, v]) => `${r}/${n}:${v.key}`)).sort();

describe("State: local operations and reads", () => {
  it("T1 a fresh state's full extract for itself contains no values", () => {
    const a = State.create(rid("a"));
    const full = State.extract(a, a.replica, a.context);
    expect(full.kind).toBe("full");
    expect(full.values.size).toBe(0);
    expect([...full.context]).toEqual([[a.replica, 0]]);
    expect(State.onlineList(a)).toEqual([]);
  });

  it("T2 after join the key appears in getByTopic; after leave it is gone", () => {
    const a = State.create(rid("a"));
    State.join(a, "p1", "lobby", "alice", { n: 1 });
    expect(State.getByTopic(a, "lobby")).toEqual([{ key: "alice", meta: { n: 1 } }]);
    expect(State.leave(a, "p1", "lobby", "alice")).toHaveLength(1);
    expect(State.getByTopic(a, "lobby")).toEqual([]);
    expect(State.leave(a, "p1", "lobby", "alice")).toEqual([]); // absent: no-op
    sound(a);
  });

  it("T11 getByPid: empty, then the row with tag (replica, 1); the 4-argument form finds only that topic and key", () => {
    const a = State.create(rid("a"));
    expect(State.getByPid(a, "p1")).toEqual([]);
    State.join(a, "p1", "lobby", "alice", { n: 1 });
    expect(State.getByPid(a, "p1")).toEqual([{ topic: "lobby", pid: "p1", key: "alice", meta: { n: 1 }, replica: a.replica, counter: 1 }]);
    expect(State.getByPid(a, "p1", "lobby", "alice")).toEqual({ topic: "lobby", pid: "p1", key: "alice", meta: { n: 1 }, replica: a.replica, counter: 1 });
    expect(State.getByPid(a, "p1", "other", "alice")).toBeUndefined();
    expect(State.getByPid(a, "p1", "lobby", "bob")).toBeUndefined();
    expect(State.getByPid(a, "p2", "lobby", "alice")).toBeUndefined();
  });

  it("T12 getByKey returns (pid, meta) for every pid holding the topic+key, and nothing for another topic or key", () => {
    const a = State.create(rid("a"));
    State.join(a, "p1", "lobby", "alice", { tab: 1 });
    State.join(a, "p2", "lobby", "alice", { tab: 2 });
    State.join(a, "p3", "lobby", "alice", { tab: 3 });
    State.join(a, "p4", "lobby", "bob", {});
    State.join(a, "p1", "other", "alice", {});
    const byPid = (xs: { pid: string }[]) => [...xs].sort((x, y) => x.pid.localeCompare(y.pid));
    expect(byPid(State.getByKey(a, "lobby", "alice"))).toEqual([
      { pid: "p1", meta: { tab: 1 } },
      { pid: "p2", meta: { tab: 2 } },
      { pid: "p3", meta: { tab: 3 } },
    ]);
    expect(State.getByKey(a, "lobby", "carol")).toEqual([]);
    expect(State.getByKey(a, "nowhere", "alice")).toEqual([]);
    // removing pids one by one keeps the key's index exact
    State.leave(a, "p2", "lobby", "alice");
    State.leave(a, "p1", "lobby", "alice");
    expect(State.getByKey(a, "lobby", "alice")).toEqual([{ pid: "p3", meta: { tab: 3 } }]);
    sound(a);
  });

  it("leave(pid) removes every presence of the pid, in every topic, and nothing else", () => {
    const a = State.create(rid("a"));
    State.join(a, "p1", "t1", "k", {});
    State.join(a, "p1", "t2", "k", {});
    State.join(a, "p1", "t2", "k2", {});
    State.join(a, "p2", "t1", "k", {});
    const gone = State.leave(a, "p1");
    expect(brief(gone)).toEqual(["t1/k/p1={}", "t2/k/p1={}", "t2/k2/p1={}"]);
    expect(State.getByPid(a, "p1")).toEqual([]);
    expect(brief(State.onlineList(a))).toEqual(["t1/k/p2={}"]);
    // 4 joins and 3 removals: 7 own dots, removals tombstone the 3 tags in the pending delta
    expect(a.context.get(a.replica)).toBe(7);
    expect(vals(a.delta)).toEqual([`${a.replica}/4:k`]);
    sound(a);
  });

  it("joining a triple twice is refused loudly and changes nothing", () => {
    const a = State.create(rid("a"));
    State.join(a, "p1", "t", "k", { v: 1 });
    const before = snapshot(a);
    expect(() => State.join(a, "p1", "t", "k", { v: 2 })).toThrow(/already stored/);
    expect(snapshot(a)).toEqual(before);
    expect(() => State.leaveJoin(a, "p9", "t", "k", {})).toThrow(/absent/);
  });

  it("leaveJoin rewrites in place with a new tag; the pid index and the reader's view have no gap", () => {
    const a = State.create(rid("a"));
    State.join(a, "p1", "t", "k", { v: 1 });
    const { leave, join } = State.leaveJoin(a, "p1", "t", "k", { v: 2 });
    expect(leave).toMatchObject({ meta: { v: 1 }, counter: 1 });
    expect(join).toMatchObject({ meta: { v: 2 }, counter: 3 }); // one dot for the removal, one for the add
    expect(State.getByPid(a, "p1")).toEqual([join]);
    expect(vals(a.delta)).toEqual([`${a.replica}/3:k`]);
    expect(dots(a.delta)).toEqual([`${a.replica}/1`, `${a.replica}/2`, `${a.replica}/3`]);
    sound(a);
  });

  it("returned rows are snapshots: later updates do not change them", () => {
    const a = State.create(rid("a"));
    const row = State.join(a, "p1", "t", "k", { v: 1 });
    const read = State.getByPid(a, "p1", "t", "k");
    State.leaveJoin(a, "p1", "t", "k", { v: 2 });
    expect(row.meta).toEqual({ v: 1 });
    expect(read).toMatchObject({ meta: { v: 1 }, counter: 1 });
  });
});

describe("State: merge", () => {
  it("T3 replicas that met via replicaUp: merging one's extract into the other reports exactly the remote join", () => {
    const [a, b] = group("a", "b");
    State.join(a, "pa", "lobby", "alice", { n: 1 });
    State.join(b, "pb", "lobby", "bob", { n: 2 });
    const { joins, leaves } = transfer(a, b);
    expect(leaves).toEqual([]);
    expect(joins).toEqual([{ topic: "lobby", pid: "pa", key: "alice", meta: { n: 1 }, replica: a!.replica, counter: 1 }]);
    expect(brief(State.onlineList(b!))).toEqual(["lobby/alice/pa={\"n\":1}", "lobby/bob/pb={\"n\":2}"]);
    sound(a!, b!);
  });

  it("values of a replica the receiver never met are skipped silently", () => {
    const a = State.create(rid("a"));
    const b = State.create(rid("b"));
    State.replicaUp(a, b.replica); // a knows b, b does not know a
    State.join(a, "pa", "t", "k", {});
    expect(State.merge(b, a.delta)).toEqual({ joins: [], leaves: [] });
    expect(State.size(b)).toBe(0);
    expect(b.context.has(a.replica)).toBe(false);
  });

  it("T4 merging the same payload again reports nothing and leaves state and pid index identical", () => {
    const [a, b] = group("a", "b");
    State.join(a, "p1", "t", "k1", { v: 1 });
    State.join(a, "p1", "t", "k2", { v: 1 });
    State.join(a, "p2", "t", "k1", { v: 1 });
    const delta = flush(a);
    const first = State.merge(b!, delta);
    expect(first.joins).toHaveLength(3);
    const snap = snapshot(b!);
    expect(State.merge(b!, delta)).toEqual({ joins: [], leaves: [] });
    expect(snapshot(b!)).toEqual(snap);
    // same for a full payload
    State.leave(a!, "p1", "t", "k1");
    const full = State.extract(a!, b!.replica, b!.context);
    expect(State.merge(b!, full).leaves).toHaveLength(1);
    const snap2 = snapshot(b!);
    expect(State.merge(b!, full)).toEqual({ joins: [], leaves: [] });
    expect(snapshot(b!)).toEqual(snap2);
    sound(b!);
  });

  it("T5 a leave at the origin arrives as exactly one leave, and the pid index entry is removed", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "p1", "t", "k", { v: 1 });
    State.merge(b!, flush(a!));
    expect(State.getByPid(b!, "p1")).toHaveLength(1);
    State.leave(a!, "p1", "t", "k");
    const { joins, leaves } = State.merge(b!, flush(a!));
    expect(joins).toEqual([]);
    expect(leaves).toEqual([{ topic: "t", pid: "p1", key: "k", meta: { v: 1 }, replica: a!.replica, counter: 1 }]);
    expect(State.getByPid(b!, "p1")).toEqual([]);
    expect(State.getByPid(b!, "p1", "t", "k")).toBeUndefined();
    sound(b!);
  });

  it("T6 a later join propagates and both online lists converge", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "pa", "t", "alice", {});
    transfer(a!, b!);
    transfer(b!, a!);
    State.join(b!, "pb", "t", "bob", {});
    State.join(a!, "pa2", "t", "carol", {});
    expect(State.merge(a!, flush(b!)).joins.map((r) => r.key)).toEqual(["bob"]);
    expect(State.merge(b!, flush(a!)).joins.map((r) => r.key)).toEqual(["carol"]);
    expect(canonRows(State.onlineList(a!))).toEqual(canonRows(State.onlineList(b!)));
    expect(keys(a!, "t")).toEqual(["alice", "bob", "carol"]);
  });

  it("T7 an update arrives as one join with the new meta and one leave with the old; a repeat is a no-op; pid index unchanged", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "p1", "t", "k", { v: 1 });
    State.merge(b!, flush(a!));
    State.leaveJoin(a!, "p1", "t", "k", { v: 2 });
    const d = flush(a!);
    const { joins, leaves } = State.merge(b!, d);
    expect(leaves).toEqual([{ topic: "t", pid: "p1", key: "k", meta: { v: 1 }, replica: a!.replica, counter: 1 }]);
    expect(joins).toEqual([{ topic: "t", pid: "p1", key: "k", meta: { v: 2 }, replica: a!.replica, counter: 3 }]);
    expect(State.getByPid(b!, "p1")).toEqual(joins);
    expect(State.merge(b!, d)).toEqual({ joins: [], leaves: [] });
    expect(State.getByPid(b!, "p1")).toEqual(joins);
    sound(b!);
  });

  it("T15 deltas of join, leave, join merge as join, leave, join; the receiver's clock reads 1, 2, 3; clouds end empty", () => {
    const [a, b] = group("a", "b");
    const seen: string[] = [];
    const clocks: number[] = [];
    const step = () => {
      const { joins, leaves } = State.merge(b!, flush(a!));
      seen.push(...leaves.map((r) => `leave ${r.key}`), ...joins.map((r) => `join ${r.key}`));
      clocks.push(b!.context.get(a!.replica)!);
    };
    State.join(a!, "p1", "t", "k", {});
    step();
    State.leave(a!, "p1", "t", "k");
    step();
    State.join(a!, "p1", "t", "k", {});
    step();
    expect(seen).toEqual(["join k", "leave k", "join k"]);
    expect(clocks).toEqual([1, 2, 3]);
    expect(b!.clouds.size).toBe(0);
    expect(a!.clouds.size).toBe(0);
  });

  it("a lost heartbeat leaves a gap in the clouds that the next transfer closes", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "p1", "t", "k1", {});
    flush(a!); // lost
    State.join(a!, "p2", "t", "k2", {});
    expect(State.merge(b!, flush(a!)).joins.map((r) => r.key)).toEqual(["k2"]);
    expect(b!.context.get(a!.replica)).toBe(0);
    expect([...b!.clouds.get(a!.replica)!]).toEqual([2]);
    expect(transfer(a!, b!).joins.map((r) => r.key)).toEqual(["k1"]);
    expect(b!.context.get(a!.replica)).toBe(2);
    expect(b!.clouds.size).toBe(0);
    sound(b!);
  });

  it("rows of the local replica are never removed by a merge", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "p1", "t", "k", {});
    State.merge(b!, flush(a!));
    // b relays nothing about a's row; a full payload from b that has seen a's dot and holds it
    // is harmless, and even a forged one that drops it does not delete a's own row
    const forged = { kind: "full" as const, context: new Map([[a!.replica, 5]]), clouds: new Map(), values: new Map() };
    expect(State.merge(a!, forged)).toEqual({ joins: [], leaves: [] });
    expect(State.size(a!)).toBe(1);
  });

  it("rule B within one payload: two values of one replica for one triple keep only the newer", () => {
    const a = State.create(rid("a"));
    const b = State.create(rid("b"));
    State.replicaUp(b, a.replica);
    const v = (meta: Record<string, unknown>) => ({ pid: "p", topic: "t", key: "k", meta });
    const payload: Delta = {
      kind: "delta",
      values: new Map([[a.replica, new Map([[4, v({ n: 4 })], [2, v({ n: 2 })]])]]),
      clouds: new Map([[a.replica, new Set([2, 3, 4])]]),
      range: { start: new Map(), end: new Map() },
    };
    const { joins, leaves } = State.merge(b, payload);
    expect(leaves).toEqual([]);
    expect(joins).toMatchObject([{ meta: { n: 4 }, counter: 4 }]);
    expect(State.getByPid(b, "p")).toMatchObject([{ meta: { n: 4 } }]);
    sound(b);
  });
});

describe("State: replicas and partitions", () => {
  it("T8 replicaDown reports and hides a replica's rows (pid index kept); merging old data while down reports nothing; replicaUp shows them again", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "p1", "t", "k", { v: 1 });
    const d = flush(a!);
    State.merge(b!, d);
    const leaves = State.replicaDown(b!, a!.replica);
    expect(brief(leaves)).toEqual(['t/k/p1={"v":1}']);
    expect(State.getByTopic(b!, "t")).toEqual([]);
    expect(State.getByKey(b!, "t", "k")).toEqual([]);
    expect(State.onlineList(b!)).toEqual([]);
    expect(State.getByPid(b!, "p1")).toHaveLength(1);
    expect(State.dirtyByTopic(b!, "t")).toHaveLength(1);
    expect(State.replicaStatus(b!, a!.replica)).toBe("down");
    expect(State.clocks(b!).clock.has(a!.replica)).toBe(false);
    expect(State.merge(b!, d)).toEqual({ joins: [], leaves: [] });
    expect(transfer(a!, b!)).toEqual({ joins: [], leaves: [] });
    const joins = State.replicaUp(b!, a!.replica);
    expect(brief(joins)).toEqual(['t/k/p1={"v":1}']);
    expect(keys(b!, "t")).toEqual(["k"]);
    expect(State.clocks(b!).clock.get(a!.replica)).toBe(1);
    sound(b!);
  });

  it("T9 with a–c split, c learns a's new join through b's extract (with c's full context) and reports only that join", () => {
    const [a, b, c] = group("a", "b", "c");
    State.join(a!, "pa", "t", "alice", {});
    const d1 = flush(a!);
    State.merge(b!, d1);
    State.merge(c!, d1);
    State.replicaDown(c!, a!.replica); // the split, seen from c
    State.join(a!, "pa2", "t", "bob", {});
    State.merge(b!, flush(a!));
    const { joins, leaves } = State.merge(c!, State.extract(b!, c!.replica, c!.context));
    expect(leaves).toEqual([]);
    expect(brief(joins)).toEqual(["t/bob/pa2={}"]);
    expect(joins[0]!.replica).toBe(a!.replica);
    // still hidden while a is down; the shard filters such reports (TRACKER.md 5.4)
    expect(keys(c!, "t")).toEqual([]);
    expect(brief(State.replicaUp(c!, a!.replica))).toEqual(["t/alice/pa={}", "t/bob/pa2={}"]);
  });

  it("T10 with a–c split, a's leave reaches c through b and is reported there as a leave", () => {
    const [a, b, c] = group("a", "b", "c");
    State.join(a!, "pa", "t", "alice", { v: 1 });
    const d1 = flush(a!);
    State.merge(b!, d1);
    State.merge(c!, d1);
    State.leave(a!, "pa", "t", "alice");
    const viaB = State.merge(b!, flush(a!));
    expect(viaB.leaves).toHaveLength(1);
    // b relays the removal in its own pending delta …
    expect(dots(b!.delta)).toEqual([`${a!.replica}/1`]);
    const { joins, leaves } = State.merge(c!, State.extract(b!.delta, c!.replica, c!.context));
    expect(joins).toEqual([]);
    expect(brief(leaves)).toEqual(['t/alice/pa={"v":1}']);
    // … and through a full extract as well
    const c2 = group("c2")[0]!;
    State.replicaUp(c2, a!.replica);
    State.merge(c2, d1);
    State.replicaUp(c2, b!.replica);
    expect(brief(State.merge(c2, State.extract(b!, c2.replica, c2.context)).leaves)).toEqual(['t/alice/pa={"v":1}']);
  });

  it("F1 (T53 at State level) a leave crossing a partition does not come back after heal (no ghost)", () => {
    const [a, b, c] = group("a", "b", "c");
    State.join(a!, "pa", "t", "alice", {});
    const d1 = flush(a!);
    State.merge(b!, d1);
    State.merge(c!, d1);
    const staleFromC = State.extract(c!, b!.replica, b!.context); // c is cut off from a
    State.leave(a!, "pa", "t", "alice");
    State.merge(b!, flush(a!));
    expect(keys(b!, "t")).toEqual([]);
    // heal: c's stale view reaches b; rule A keeps the removed dot, so it does not rejoin
    expect(State.merge(b!, staleFromC)).toEqual({ joins: [], leaves: [] });
    expect(keys(b!, "t")).toEqual([]);
    // and c learns the removal from b
    expect(State.merge(c!, State.extract(b!, c!.replica, c!.context)).leaves).toHaveLength(1);
    expect(keys(c!, "t")).toEqual([]);
  });

  it("T13 after mutual replicaUp every context lists all three at 0; rows of one, then two down replicas are filtered", () => {
    const [a, b, c] = group("a", "b", "c");
    for (const s of [a!, b!, c!]) {
      expect([...s.context.entries()].sort()).toEqual([[a!.replica, 0], [b!.replica, 0], [c!.replica, 0]].sort());
    }
    State.join(a!, "pa", "t", "ka", {});
    State.join(b!, "pb", "t", "kb", {});
    State.join(c!, "pc", "t", "kc", {});
    transfer(a!, c!);
    transfer(b!, c!);
    expect(keys(c!, "t")).toEqual(["ka", "kb", "kc"]);
    State.replicaDown(c!, a!.replica);
    expect(keys(c!, "t")).toEqual(["kb", "kc"]);
    State.replicaDown(c!, b!.replica);
    expect(keys(c!, "t")).toEqual(["kc"]);
    expect(brief(State.onlineList(c!))).toEqual(["t/kc/pc={}"]);
    expect(State.getByTopic(c!, "unknown")).toEqual([]);
    expect(State.dirtyByTopic(c!, "t")).toHaveLength(3);
  });

  it("T14 removeDownReplica deletes the replica's rows and pid entries; a later replicaUp of the same id does not bring them back", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "p1", "t", "k1", {});
    State.join(a!, "p1", "t", "k2", {});
    State.join(b!, "pb", "t", "kb", {});
    State.merge(b!, flush(a!));
    State.leave(b!, "pb", "t", "kb");
    State.join(b!, "pb", "t", "kb2", {});
    // b's pending delta mentions a through a relayed tombstone? not here: add one
    State.replicaDown(b!, a!.replica);
    State.removeDownReplica(b!, a!.replica);
    expect(State.getByPid(b!, "p1")).toEqual([]);
    expect(State.dirtyByTopic(b!, "t").map((r) => r.key)).toEqual(["kb2"]);
    expect(b!.context.has(a!.replica)).toBe(false);
    expect(b!.replicas.has(a!.replica)).toBe(false);
    expect(State.replicaStatus(b!, a!.replica)).toBeUndefined();
    expect(State.replicaUp(b!, a!.replica)).toEqual([]);
    expect(State.getByPid(b!, "p1")).toEqual([]);
    expect(b!.context.get(a!.replica)).toBe(0);
    sound(b!);
  });

  it("removeDownReplica removes the replica from the pending delta (range, clouds, values)", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "p1", "t", "k1", {});
    State.merge(b!, flush(a!));
    State.leave(a!, "p1", "t", "k1");
    State.merge(b!, flush(a!)); // b now relays a's tombstone
    expect(b!.delta.clouds.has(a!.replica)).toBe(true);
    State.removeDownReplicas(b!, [a!.replica]);
    expect(b!.delta.clouds.has(a!.replica)).toBe(false);
    expect(b!.delta.range.start.has(a!.replica) || b!.delta.range.end.has(a!.replica)).toBe(false);
    expect(State.hasDelta(b!)).toBe(false);
  });

  it("T17 a full extract's context contains only replicas present in the requester's context", () => {
    const [a, b] = group("a", "b");
    const c = State.create(rid("c"));
    State.replicaUp(c, a!.replica);
    State.replicaUp(a!, c.replica);
    State.join(b!, "pb", "t", "kb", {});
    State.join(a!, "pa", "t", "ka", {});
    transfer(b!, a!);
    const full = State.extract(a!, c.replica, c.context);
    expect([...full.context.keys()].sort()).toEqual([a!.replica, c.replica].sort());
    expect([...full.values.keys()]).toEqual([a!.replica]);
    expect(State.merge(c, full).joins.map((r) => r.key)).toEqual(["ka"]);
  });

  it("extract: a full payload leaves out the requester's own rows; a delta extract keeps them (no false tombstones)", () => {
    const [a, b] = group("a", "b");
    State.join(b!, "pb", "t", "kb", {});
    State.merge(a!, flush(b!));
    State.join(a!, "pa", "t", "ka", {});
    const full = State.extract(a!, b!.replica, b!.context);
    expect([...full.values.keys()]).toEqual([a!.replica]);
    // a delta (e.g. a generation window holding b's own heartbeat) sent back to b keeps b's
    // values: without them, b's dots would look removed to whoever b relays the window to
    let gens: State.Generations = [];
    State.join(b!, "pb2", "t", "kb2", {});
    const db = flush(b!);
    State.merge(a!, db);
    gens = State.pushGeneration(gens, a!.delta, State.knownDelta(a!, db), [100]);
    const back = State.extract(gens[0]!, b!.replica, b!.context);
    expect(vals(back)).toContain(`${b!.replica}/2:kb2`);
    const c = State.create(rid("c"));
    State.replicaUp(c, b!.replica);
    State.merge(c, State.extract(b!, c.replica, c.context));
    expect(State.merge(c, back).leaves).toEqual([]);
    expect(keys(c, "t")).toEqual(["kb", "kb2"]);
  });

  it("knownDelta keeps only what concerns replicas the state knows", () => {
    const [a, b] = group("a", "b");
    const x = State.create(rid("x"));
    State.replicaUp(b!, x.replica);
    State.join(x, "px", "t", "kx", {});
    State.merge(b!, flush(x));
    State.leave(x, "px", "t", "kx");
    State.merge(b!, flush(x)); // b relays x's tombstone
    State.join(b!, "pb", "t", "kb", {});
    const d = flush(b!);
    expect(d.clouds.has(x.replica)).toBe(true);
    const known = State.knownDelta(a!, d);
    expect(known.clouds.has(x.replica) || known.values.has(x.replica) || known.range.end.has(x.replica)).toBe(false);
    expect(vals(known)).toEqual([`${b!.replica}/1:kb`]);
  });

  it("clocks() leaves out replicas flagged down (F3: a newcomer does not look behind forever)", () => {
    const [a, b] = group("a", "b");
    State.join(b!, "pb", "t", "k", {});
    transfer(b!, a!);
    expect(State.clocks(a!)).toEqual({ replica: a!.replica, clock: new Map([[a!.replica, 0], [b!.replica, 1]]) });
    State.replicaDown(a!, b!.replica);
    expect(State.clocks(a!)).toEqual({ replica: a!.replica, clock: new Map([[a!.replica, 0]]) });
    expect(a!.context.get(b!.replica)).toBe(1); // the knowledge is kept
  });
});

describe("State: mergeDeltas", () => {
  it("T16 mergeDeltas of two deltas with a gap returns not_contiguous in both argument orders", () => {
    const a = State.create(rid("a"));
    State.join(a, "p1", "t", "k1", {});
    const d1 = flush(a);
    State.join(a, "p2", "t", "k2", {});
    flush(a); // d2, skipped
    State.join(a, "p3", "t", "k3", {});
    const d3 = flush(a);
    expect(State.mergeDeltas(d1, d3)).toBe(State.NOT_CONTIGUOUS);
    expect(State.mergeDeltas(d3, d1)).toBe("not_contiguous");
  });

  it("T18 mergeDeltas of two independent deltas unions their values and clouds", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "pa", "t", "ka", {});
    State.join(b!, "pb", "t", "kb", {});
    const da = flush(a!);
    const db = flush(b!);
    const m = State.mergeDeltas(da, db);
    expect(m).not.toBe(State.NOT_CONTIGUOUS);
    const merged = m as Delta;
    expect(vals(merged)).toEqual([`${a!.replica}/1:ka`, `${b!.replica}/1:kb`].sort());
    expect(dots(merged)).toEqual([`${a!.replica}/1`, `${b!.replica}/1`].sort());
    expect(canonDelta(State.mergeDeltas(db, da) as Delta)).toEqual(canonDelta(merged));
    expect([...merged.range.start].sort()).toEqual([[a!.replica, 0], [b!.replica, 0]].sort());
    expect([...merged.range.end].sort()).toEqual([[a!.replica, 1], [b!.replica, 1]].sort());
  });

  it("T19 mergeDeltas with removes: a concurrent add wins, tombstones stay, duplicates change nothing, an observed remove drops the value and keeps every dot", () => {
    const [a, b] = group("a", "b");
    State.join(a!, "pa", "t", "x", {});
    const d1 = flush(a!); // a/1 = x
    State.merge(b!, d1);
    State.leave(a!, "pa", "t", "x");
    State.join(a!, "pa", "t", "y", {});
    const d2 = flush(a!); // tombstone a/1, removal dot a/2, a/3 = y
    State.join(b!, "pb", "t", "z", {}); // concurrent with d2
    const db = flush(b!);
    // observed remove: x is dropped; every dot, the removal's own (a/2) included, stays
    const m12 = State.mergeDeltas(d1, d2) as Delta;
    expect(vals(m12)).toEqual([`${a!.replica}/3:y`]);
    expect(dots(m12)).toEqual([`${a!.replica}/1`, `${a!.replica}/2`, `${a!.replica}/3`]);
    expect(canonDelta(State.mergeDeltas(d2, d1) as Delta)).toEqual(canonDelta(m12));
    // a concurrent add (a dot the remover never saw) wins
    const all = State.mergeDeltas(m12, db) as Delta;
    expect(vals(all)).toEqual([`${a!.replica}/3:y`, `${b!.replica}/1:z`].sort());
    // merging a duplicate changes nothing
    expect(canonDelta(State.mergeDeltas(all, db) as Delta)).toEqual(canonDelta(all));
    expect(canonDelta(State.mergeDeltas(all, d2) as Delta)).toEqual(canonDelta(all));
    expect(canonDelta(State.mergeDeltas(all, all) as Delta)).toEqual(canonDelta(all));
    // and the combined delta does to a receiver what its parts do
    const c1 = State.create(rid("c"));
    const c2 = State.create(rid("c"));
    for (const s of [c1, c2]) for (const r of [a!.replica, b!.replica]) State.replicaUp(s, r);
    State.merge(c1, d1);
    State.merge(c1, d2);
    State.merge(c1, db);
    State.merge(c2, all);
    expect(canonRows(State.onlineList(c2))).toEqual(canonRows(State.onlineList(c1)));
  });

  it("mergeDeltas does not modify its inputs", () => {
    const a = State.create(rid("a"));
    State.join(a, "p1", "t", "k1", {});
    const d1 = flush(a);
    State.leave(a, "p1", "t", "k1");
    const d2 = flush(a);
    const before = [canonDelta(d1), canonDelta(d2)];
    State.mergeDeltas(d1, d2);
    expect([canonDelta(d1), canonDelta(d2)]).toEqual(before);
  });
});

describe("State: clocks", () => {
  it("T20 dominates, dominatesOrEqual, upperbound, lowerbound, filter and replicas behave as specified", () => {
    const E = clock({});
    const cases: Array<[string, Clock, Clock, boolean, boolean]> = [
      // name, a, b, dominates(a,b), dominatesOrEqual(a,b)
      ["both empty", E, E, true, true],
      ["a empty, b not", E, clock({ x: 1 }), false, false],
      ["b empty, a not", clock({ x: 1 }), E, true, true],
      ["equal", clock({ x: 1, y: 2 }), clock({ x: 1, y: 2 }), true, true],
      ["a ahead", clock({ x: 2, y: 2 }), clock({ x: 1, y: 2 }), true, true],
      ["a behind", clock({ x: 1, y: 2 }), clock({ x: 2, y: 2 }), false, false],
      ["concurrent", clock({ x: 2, y: 1 }), clock({ x: 1, y: 2 }), false, false],
      ["a has fewer entries", clock({ x: 5 }), clock({ x: 1, y: 1 }), false, true],
      ["key only in a (b counts 0)", clock({ x: 1, y: 1 }), clock({ x: 1 }), true, true],
      ["b at 0 on a key a lacks", clock({ x: 1 }), clock({ y: 0 }), true, true],
      ["a's key missing in b", clock({ y: 3 }), clock({ x: 9 }), false, true],
    ];
    for (const [name, a, b, dom, domEq] of cases) {
      expect([name, State.dominates(a, b)]).toEqual([name, dom]);
      expect([name, State.dominatesOrEqual(a, b)]).toEqual([name, domEq]);
    }
    const sorted = (c: Clock) => [...c].sort();
    expect(sorted(State.upperbound(clock({ x: 1, y: 5 }), clock({ x: 3, z: 2 })))).toEqual(sorted(clock({ x: 3, y: 5, z: 2 })));
    expect(sorted(State.lowerbound(clock({ x: 1, y: 5 }), clock({ x: 3, z: 2 })))).toEqual(sorted(clock({ x: 1, y: 5, z: 2 })));
    expect(sorted(State.upperbound(E, E))).toEqual([]);
    expect(sorted(State.lowerbound(E, clock({ x: 4 })))).toEqual(sorted(clock({ x: 4 })));
    expect(sorted(State.filter(clock({ x: 1, y: 2, z: 3 }), new Set([rid("x"), rid("z"), rid("w")])))).toEqual(sorted(clock({ x: 1, z: 3 })));
    expect(sorted(State.filter(clock({ x: 1, y: 2 }), clock({ y: 0 })))).toEqual(sorted(clock({ y: 2 })));
    expect(State.replicas(clock({ x: 1, y: 2 })).sort()).toEqual([rid("x"), rid("y")].sort());
    expect(State.replicas(E)).toEqual([]);
  });

  it("T21 appendClock keeps only non-dominated clocks", () => {
    const n = (name: string, c: Clock) => ({ replica: rid(name), clock: c });
    let set: State.ClockSet = [];
    set = State.appendClock(set, n("a", E0()));
    expect(set).toEqual([]); // an empty clock changes nothing
    set = State.appendClock(set, n("a", clock({ a: 1, b: 1 })));
    expect(set.map((e) => e.replica)).toEqual([rid("a")]);
    set = State.appendClock(set, n("b", clock({ a: 1, b: 0 }))); // dominated: ignored
    expect(set.map((e) => e.replica)).toEqual([rid("a")]);
    set = State.appendClock(set, n("c", clock({ a: 0, b: 2 }))); // incomparable: joins
    expect(set.map((e) => e.replica)).toEqual([rid("a"), rid("c")]);
    set = State.appendClock(set, n("d", clock({ a: 2, b: 1 }))); // dominates a only: a dropped
    expect(set.map((e) => e.replica)).toEqual([rid("c"), rid("d")]);
    set = State.appendClock(set, n("e", clock({ a: 5, b: 5 }))); // dominates everything: replaces
    expect(set.map((e) => e.replica)).toEqual([rid("e")]);
    function E0(): Clock {
      return new Map();
    }
  });

  it("replica ids round-trip (node names may contain '#', vsns may not)", () => {
    const id = State.replicaId("a#b@host", "k9.1");
    expect(State.replicaName(id)).toBe("a#b@host");
    expect(State.replicaVsn(id)).toBe("k9.1");
    expect(() => State.replicaId("a", "x#y")).toThrow(TypeError);
    expect(() => State.replicaId("a", "")).toThrow(TypeError);
  });
});

describe("State: delta generations", () => {
  const describeWindows = (gens: State.Generations) => gens.map((w) => ({ values: vals(w), dots: dots(w) }));

  it("T22 generations with sizes [2, 5, 6] hold the expected values and dots for local, remote and tombstone deltas; a duplicate push changes nothing", () => {
    const sizes = [2, 5, 6];
    const [a, b] = group("a", "b");
    const A = a!.replica;
    const B = b!.replica;
    let gens: State.Generations = [];
    const tick = () => {
      const d = flush(a!);
      gens = State.pushGeneration(gens, a!.delta, d, sizes);
    };
    State.join(a!, "p1", "t", "k1", {});
    tick();
    const w1 = { values: [`${A}/1:k1`], dots: [`${A}/1`] };
    expect(describeWindows(gens)).toEqual([w1, w1, w1]);

    State.join(a!, "p2", "t", "k2", {});
    tick();
    const w12 = { values: [`${A}/1:k1`, `${A}/2:k2`], dots: [`${A}/1`, `${A}/2`] };
    expect(describeWindows(gens)).toEqual([{ values: [`${A}/2:k2`], dots: [`${A}/2`] }, w12, w12]);

    State.leave(a!, "p1", "t", "k1"); // tombstone a/1, removal dot a/3
    tick();
    const w123 = { values: [`${A}/2:k2`], dots: [`${A}/1`, `${A}/2`, `${A}/3`] };
    expect(describeWindows(gens)).toEqual([{ values: [], dots: [`${A}/1`, `${A}/3`] }, w123, w123]);

    State.join(b!, "pb", "t", "kb", {}); // a remote delta, merged by a and pushed
    const db = flush(b!);
    State.merge(a!, db);
    gens = State.pushGeneration(gens, a!.delta, State.knownDelta(a!, db), sizes);
    const expected = [
      { values: [`${B}/1:kb`], dots: [`${B}/1`] },
      { values: [`${B}/1:kb`], dots: [`${A}/1`, `${A}/3`, `${B}/1`] }, // the merge outgrew 5: previous window's merge
      { values: [`${A}/2:k2`, `${B}/1:kb`], dots: [`${A}/1`, `${A}/2`, `${A}/3`, `${B}/1`] },
    ];
    expect(describeWindows(gens)).toEqual(expected);
    const before = gens.map(canonDelta);
    gens = State.pushGeneration(gens, a!.delta, State.knownDelta(a!, db), sizes);
    expect(gens.map(canonDelta)).toEqual(before);
  });

  it("T23 a non-contiguous delta is not merged into any generation", () => {
    const a = State.create(rid("a"));
    let gens: State.Generations = [];
    State.join(a, "p1", "t", "k1", {});
    gens = State.pushGeneration(gens, a.delta, flush(a), [2, 5, 6]);
    State.join(a, "p2", "t", "k2", {});
    flush(a); // never pushed
    State.join(a, "p3", "t", "k3", {});
    const before = gens.map(canonDelta);
    gens = State.pushGeneration(gens, a.delta, flush(a), [2, 5, 6]);
    expect(gens.map(canonDelta)).toEqual(before);
  });

  it("T24 permdown prunes a replica from every generation; merging a pruned window elsewhere yields none of its rows", () => {
    const [a, b, c] = group("a", "b", "c");
    let gens: State.Generations = [];
    State.join(a!, "pa", "t", "ka", {});
    const da = flush(a!);
    State.merge(b!, da);
    gens = State.pushGeneration(gens, b!.delta, State.knownDelta(b!, da), [2, 5, 6]);
    State.join(b!, "pb", "t", "kb", {});
    const db = flush(b!);
    gens = State.pushGeneration(gens, b!.delta, db, [2, 5, 6]);
    expect(gens.some((w) => w.values.has(a!.replica))).toBe(true);
    State.replicaDown(b!, a!.replica);
    State.removeDownReplica(b!, a!.replica);
    gens = State.pruneGenerations(gens, a!.replica);
    for (const w of gens) {
      expect(w.values.has(a!.replica) || w.clouds.has(a!.replica) || w.range.start.has(a!.replica) || w.range.end.has(a!.replica)).toBe(false);
    }
    for (const w of gens) {
      const fresh = State.clone(c!);
      State.merge(fresh, State.extract(w, fresh.replica, fresh.context));
      expect(State.dirtyList(fresh).filter((r) => r.replica === a!.replica)).toEqual([]);
    }
  });

  it("T25 extractFor: no generations → full state; the first covering window is chosen; empty or unreachable windows are skipped", () => {
    const [a, b] = group("a", "b");
    const A = a!.replica;
    expect(State.extractFor([], a!, b!.replica, b!.context).source).toBe("full");

    let gens: State.Generations = [];
    const sizes = [2, 5, 20];
    const push = () => (gens = State.pushGeneration(gens, a!.delta, flush(a!), sizes));
    State.join(a!, "p1", "t", "k1", {});
    push(); // a:0 → 1
    State.join(a!, "p2", "t", "k2", {});
    push(); // windows: [1→2], [0→2], [0→2]
    State.join(a!, "p3", "t", "k3", {});
    State.join(a!, "p4", "t", "k4", {});
    push(); // window 0 takes the new delta; window 1 outgrows 5 and takes window 0's merge
    const ranges = gens.map((w) => [w.range.start.get(A), w.range.end.get(A)]);
    expect(ranges).toEqual([[2, 4], [1, 4], [0, 4]]);

    const ask = (ctx: Record<string, number>) => State.extractFor(gens, a!, b!.replica, clock(ctx)).source;
    expect(ask({ a: 2, b: 0 })).toBe(0); // smallest window starting where b is
    expect(ask({ a: 1, b: 0 })).toBe(1); // window 0 starts after b: skipped
    expect(ask({ a: 0, b: 0 })).toBe(2);
    expect(ask({ a: 4, b: 0 })).toBe("full"); // b already has everything: every window skipped
    // a window whose range, restricted to the requester's replicas, is empty is skipped
    expect(State.extractFor(gens, a!, rid("z"), clock({ z: 0 })).source).toBe("full");
    // the chosen window is extracted for the requester
    const { payload } = State.extractFor(gens, a!, b!.replica, clock({ a: 2, b: 0 }));
    expect(payload.kind).toBe("delta");
    expect(vals(payload as Delta)).toEqual([`${A}/3:k3`, `${A}/4:k4`]);
  });
});

describe("State: peer records", () => {
  it("T26 peer records: vsn unique per start; heartbeats create or refresh records; silence downs, then permdowns and removes", () => {
    const next = Peers.createVsnSource("inc1");
    const vsns = new Set(Array.from({ length: 1000 }, () => next()));
    expect(vsns.size).toBe(1000);
    const other = Peers.createVsnSource("inc2");
    expect(vsns.has(other())).toBe(false);
    for (const v of vsns) expect(() => State.replicaId("n", v)).not.toThrow();

    const peers = Peers.createPeers();
    const b1 = State.replicaId("b", "v1");
    const b2 = State.replicaId("b", "v2");
    expect(Peers.heartbeat(peers, b1, 100)).toEqual([{ type: "up", replica: b1 }]);
    expect(peers.get("b")).toEqual({ replica: b1, lastHeartbeat: 100, status: "up" });
    expect(Peers.heartbeat(peers, b1, 200)).toEqual([]);
    expect(peers.get("b")!.lastHeartbeat).toBe(200);

    const periods = { downPeriod: 1000, permdownPeriod: 5000 };
    expect(Peers.detectDowns(peers, 1200, periods)).toEqual([]); // silence = down period: unchanged
    expect(Peers.detectDowns(peers, 1201, periods)).toEqual([{ type: "down", replica: b1 }]);
    expect(peers.get("b")!.status).toBe("down");
    expect(Peers.detectDowns(peers, 3000, periods)).toEqual([]); // already down
    expect(Peers.heartbeat(peers, b1, 3000)).toEqual([{ type: "up", replica: b1 }]); // same vsn: up again
    expect(Peers.heartbeat(peers, b2, 3100)).toEqual([
      { type: "down", replica: b1 },
      { type: "permdown", replica: b1 },
      { type: "up", replica: b2 },
    ]);
    expect(Peers.detectDowns(peers, 3100 + 1001, periods)).toEqual([{ type: "down", replica: b2 }]);
    const b3 = State.replicaId("b", "v3");
    expect(Peers.heartbeat(peers, b3, 4200)).toEqual([
      { type: "permdown", replica: b2 },
      { type: "up", replica: b3 },
    ]);
    expect(Peers.detectDowns(peers, 4200 + 5001, periods)).toEqual([
      { type: "down", replica: b3 },
      { type: "permdown", replica: b3 },
    ]);
    expect(peers.has("b")).toBe(false);
    // graceful permdown: only the exact incarnation
    Peers.heartbeat(peers, b1, 0);
    expect(Peers.gracefulPermdown(peers, b2)).toEqual([]);
    expect(Peers.gracefulPermdown(peers, b1)).toEqual([
      { type: "down", replica: b1 },
      { type: "permdown", replica: b1 },
    ]);
    expect(peers.size).toBe(0);
  });
});

describe("State: Cinder failure modes", () => {
  it("T50 (F11, rule A) scenario A: b ends without y, and stays so after clock-driven transfers", () => {
    const cl = new Cluster(["a", "b", "c"], { sizes: [100, 1000, 10000] });
    cl.converge();
    const [A, B, C] = [0, 1, 2];
    cl.join(A, 1, "t", "x", {});
    cl.tick(A);
    cl.deliver(A, B, "drop"); // b misses the heartbeat with x
    cl.deliver(A, C);
    cl.join(A, 2, "t", "y", {});
    cl.tick(A);
    cl.deliver(A, B); // b gets y
    cl.deliver(A, C);
    // c heartbeats its clock (equal to a's), so b's clock sampling asks c, not a
    cl.tick(C);
    cl.deliver(C, B);
    cl.sample(B);
    expect(cl.links.get(`${B}>${C}`)?.map((m) => m.t)).toEqual(["req"]);
    expect(cl.links.get(`${B}>${A}`) ?? []).toEqual([]);
    cl.deliver(B, C); // c answers now (with y); the answer waits on the link
    expect(cl.links.get(`${C}>${B}`)?.map((m) => m.t)).toEqual(["ack"]);
    cl.leave(A, 2, "t", "y");
    cl.tick(A);
    cl.deliver(A, B); // b merges the removal of y
    expect(State.getByTopic(cl.nodes[B]!.state, "t").map((p) => p.key)).not.toContain("y");
    cl.drain(); // the stale transfer from c (it still has y) arrives
    expect(State.getByTopic(cl.nodes[B]!.state, "t").map((p) => p.key).sort()).toEqual(["x"]);
    cl.converge();
    expect(cl.convergenceProblems()).toEqual([]);
    expect(State.getByTopic(cl.nodes[B]!.state, "t").map((p) => p.key).sort()).toEqual(["x"]);
  });

  it("T50 (F11, rule A) scenario A by hand: the stale full transfer computed before c saw the removal does not re-add y", () => {
    const [a, b, c] = group("a", "b", "c");
    State.join(a!, "px", "t", "x", {});
    const dx = flush(a!);
    State.merge(c!, dx); // b misses it
    State.join(a!, "py", "t", "y", {});
    const dy = flush(a!);
    State.merge(b!, dy);
    State.merge(c!, dy);
    const stale = State.extract(c!, b!.replica, b!.context); // computed now, delivered later
    State.leave(a!, "py", "t", "y");
    expect(State.merge(b!, flush(a!)).leaves.map((r) => r.key)).toEqual(["y"]);
    const late = State.merge(b!, stale);
    expect(late.joins.map((r) => r.key)).toEqual(["x"]);
    expect(keys(b!, "t")).toEqual(["x"]);
    // clocks agree with a's, and b is right, so no further transfer is needed
    expect(b!.context.get(a!.replica)).toBe(a!.context.get(a!.replica));
  });

  it("T51 (F11, rule B) scenario B: b lists X with the newest meta, before and after clock-driven transfers", () => {
    const [a, b, c] = group("a", "b", "c");
    State.join(a!, "p", "t", "X", { v: 1 });
    const d1 = flush(a!);
    State.merge(c!, d1);
    State.leave(a!, "p", "t", "X");
    flush(a!); // lost everywhere
    State.join(a!, "p", "t", "X", { v: 3 });
    const d3 = flush(a!);
    State.merge(b!, d3); // b gets only the third
    expect(State.getByKey(b!, "t", "X")).toEqual([{ pid: "p", meta: { v: 3 } }]);
    // a transfer from c that still has the first value
    expect(State.merge(b!, State.extract(c!, b!.replica, b!.context))).toEqual({ joins: [], leaves: [] });
    expect(State.getByKey(b!, "t", "X")).toEqual([{ pid: "p", meta: { v: 3 } }]);
    // clock-driven transfer from a: nothing changes, still the newest
    expect(transfer(a!, b!).joins).toEqual([]);
    expect(State.getByKey(b!, "t", "X")).toEqual([{ pid: "p", meta: { v: 3 } }]);
    expect(State.getByPid(b!, "p")).toHaveLength(1);
    // c catches up: its old row is replaced by the new one, reported as leave + join
    const up = transfer(a!, c!);
    expect(up.leaves.map((r) => r.meta)).toEqual([{ v: 1 }]);
    expect(up.joins.map((r) => r.meta)).toEqual([{ v: 3 }]);
    sound(b!, c!);
  });

  it("T51 (F11, rule B) scenario B in the shard model with clock-driven transfers", () => {
    const cl = new Cluster(["a", "b", "c"], { sizes: [100, 1000, 10000] });
    cl.converge();
    const [A, B, C] = [0, 1, 2];
    cl.join(A, 1, "t", "X", { v: 1 });
    cl.tick(A);
    cl.deliver(A, C);
    cl.deliver(A, B, "drop");
    cl.leave(A, 1, "t", "X");
    cl.tick(A);
    cl.deliver(A, B, "drop");
    cl.deliver(A, C, "drop");
    cl.join(A, 1, "t", "X", { v: 3 });
    cl.tick(A);
    cl.deliver(A, B);
    expect(State.getByKey(cl.nodes[B]!.state, "t", "X").map((p) => p.meta)).toEqual([{ v: 3 }]);
    cl.converge();
    expect(cl.convergenceProblems()).toEqual([]);
    for (const n of cl.nodes) expect(State.getByKey(n.state, "t", "X").map((p) => p.meta)).toEqual([{ v: 3 }]);
  });

  it("T61 (F8) after permdown of a on b, a transfer from c that still holds a's rows leaves b without them; no index or generation on b mentions a", () => {
    const [a, b, c] = group("a", "b", "c");
    State.join(a!, "pa", "t", "ka", {});
    State.join(c!, "pc", "t", "kc", {});
    const da = flush(a!);
    State.merge(b!, da);
    State.merge(c!, da);
    let gens: State.Generations = [];
    gens = State.pushGeneration(gens, b!.delta, State.knownDelta(b!, da), [100, 1000, 10000]);
    State.replicaDown(b!, a!.replica);
    State.removeDownReplica(b!, a!.replica);
    gens = State.pruneGenerations(gens, a!.replica);
    // c still has a: its full state and its pending delta both mention a
    State.leave(c!, "pc", "t", "kc");
    const full = State.extract(c!, b!.replica, b!.context);
    expect(State.merge(b!, full).joins).toEqual([]);
    const dc = flush(c!);
    State.merge(b!, dc);
    gens = State.pushGeneration(gens, b!.delta, State.knownDelta(b!, dc), [100, 1000, 10000]);
    expect(State.getByPid(b!, "pa")).toEqual([]);
    expect(State.dirtyList(b!).some((r) => r.replica === a!.replica)).toBe(false);
    expect(b!.context.has(a!.replica) || b!.clouds.has(a!.replica) || b!.replicas.has(a!.replica)).toBe(false);
    const mentions = (d: Delta) => d.values.has(a!.replica) || d.clouds.has(a!.replica) || d.range.start.has(a!.replica) || d.range.end.has(a!.replica);
    expect(mentions(b!.delta)).toBe(false);
    expect(gens.some(mentions)).toBe(false);
    sound(b!);
  });

  it("T62 (F9) after remote updates each replica holds one row per (topic, pid, key) with the latest meta", () => {
    const cl = new Cluster(["a", "b", "c"], { sizes: [2, 5, 20] });
    cl.converge();
    cl.join(0, 1, "t", "k", { v: 0 });
    for (let v = 1; v <= 12; v++) {
      cl.update(0, 1, "t", "k", { v });
      cl.tick(0);
      // lose, duplicate or deliver, differently on each link
      cl.deliver(0, 1, v % 3 === 0 ? "drop" : "fifo");
      cl.deliver(0, 2, v % 4 === 0 ? "dup" : v % 5 === 0 ? "drop" : "fifo");
      if (v % 4 === 0) cl.deliver(0, 2);
      if (v % 3 === 1) {
        cl.sample(1);
        cl.drain();
      }
    }
    cl.converge();
    expect(cl.convergenceProblems()).toEqual([]);
    for (const n of cl.nodes) {
      expect(State.getByPid(n.state, cl.nodes[0]!.pid(1)).map((r) => r.meta)).toEqual([{ v: 12 }]);
    }
  });

  it("T55 (F2, State level) two replicas holding N presences each meet for the first time and both list 2N", () => {
    const sizes = [100, 1000, 10000];
    for (const N of [51, 150, 1500, 15000]) {
      const [a, b] = [State.create(rid("a")), State.create(rid("b"))];
      const gens = new Map<TrackerState, State.Generations>([
        [a, []],
        [b, []],
      ]);
      const history = new Map<TrackerState, Delta>(); // every heartbeat merged: an unbounded window
      const batch = Math.ceil(N / 20);
      for (const s of [a, b]) {
        for (let i = 0; i < N; i++) {
          State.join(s, `${s.replica}.p${i}`, "lobby", `${s.replica}.u${i}`, { i });
          if ((i + 1) % batch === 0 || i === N - 1) {
            const d = flush(s); // one heartbeat per batch
            gens.set(s, State.pushGeneration(gens.get(s)!, s.delta, d, sizes));
            const h = history.get(s);
            history.set(s, h === undefined ? d : (State.mergeDeltas(h, d) as Delta));
          }
        }
      }
      State.replicaUp(a, b.replica);
      State.replicaUp(b, a.replica);
      // each asks the other, which answers from the smallest window holding its whole history
      // (2N dots and values), or with its full state when no window does
      const ab = State.extractFor(gens.get(b)!, b, a.replica, State.clocks(a).clock);
      const ba = State.extractFor(gens.get(a)!, a, b.replica, State.clocks(b).clock);
      const expectedSource = 2 * N <= 100 ? 0 : 2 * N <= 1000 ? 1 : 2 * N <= 10000 ? 2 : "full";
      expect([N, ab.source, ba.source]).toEqual([N, expectedSource, expectedSource]);
      expect(State.merge(a, ab.payload).joins).toHaveLength(N);
      expect(State.merge(b, ba.payload).joins).toHaveLength(N);
      expect([N, State.getByTopic(a, "lobby").length, State.getByTopic(b, "lobby").length]).toEqual([N, 2 * N, 2 * N]);
      expect(canonRows(State.onlineList(a))).toEqual(canonRows(State.onlineList(b)));
      // the delta path and the full-state path agree
      const viaFull = State.create(rid("c"));
      const viaDelta = State.create(rid("c"));
      for (const c of [viaFull, viaDelta]) for (const r of [a.replica, b.replica]) State.replicaUp(c, r);
      for (const s of [a, b]) {
        State.merge(viaFull, State.extract(s, viaFull.replica, viaFull.context));
        State.merge(viaDelta, State.extract(history.get(s)!, viaDelta.replica, viaDelta.context));
      }
      expect(canonRows(State.onlineList(viaDelta))).toEqual(canonRows(State.onlineList(viaFull)));
      expect(State.size(viaFull)).toBe(2 * N);
    }
  });

  it("a restarted replica (new vsn) leaves no row of its old incarnation anywhere (F10, State level)", () => {
    const cl = new Cluster(["a", "b", "c"]);
    cl.join(0, 1, "t", "k", {});
    cl.converge();
    expect(State.size(cl.nodes[2]!.state)).toBe(1);
    cl.restart(0);
    cl.join(0, 1, "t", "k2", {});
    cl.converge();
    expect(cl.convergenceProblems()).toEqual([]);
    for (const n of cl.nodes) expect(State.dirtyList(n.state).map((r) => r.key)).toEqual(["k2"]);
  });
});

describe("State: reported diffs", () => {
  it("the diff checker itself rejects a wrong report", () => {
    const row = (key: string, counter: number): Row => ({ topic: "t", pid: "p", key, meta: {}, replica: rid("a"), counter });
    expect(diffProblems([], [row("k", 1)], [row("k", 1)], [])).toEqual([]);
    expect(diffProblems([], [row("k", 1)], [], [])).not.toEqual([]);
    expect(diffProblems([row("k", 1)], [], [], [row("k", 2)])).not.toEqual([]);
  });

  it("the package example works as documented", () => {
    const a = State.create(State.replicaId("node-a", "v1"));
    const b = State.create(State.replicaId("node-b", "v1"));
    State.replicaUp(a, b.replica);
    State.replicaUp(b, a.replica);
    State.join(a, "pid-1", "room:lobby", "alice", { status: "away" });
    const { joins } = State.merge(b, State.extract(a.delta, b.replica, b.context));
    State.resetDelta(a);
    expect(joins).toMatchObject([{ topic: "room:lobby", key: "alice", pid: "pid-1" }]);
    expect(State.getByTopic(b, "room:lobby")).toEqual([{ key: "alice", meta: { status: "away" } }]);
  });
});
