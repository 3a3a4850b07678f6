/**
 * Unit tests of the per-scheduler seam (PUBSUB.md 2.1, 2.2, 2.6) on in-thread schedulers
 * (`addSchedulers`): real tables, real shared interest counters, real batched hops, all on one
 * thread, so counts and timings are exact and every step can be observed synchronously (a
 * hop in flight, an exit racing it). The same checklist items on real worker threads are in
 * threads.test.ts; these stay as the seam's unit tests (P21, P23, P26, P27, P28, P38, P41 (clone),
 * marked "in-thread seam").
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger, startNode, type CinderNode, type Process } from "@cinder/runtime";
import { BroadcastError, PubSub, type PubSubRef } from "@cinder/pubsub";
import { addSchedulers, drain, idleOn, receiveN, tick } from "./support/harness.js";
import type { Scheduler } from "../../runtime/src/internal/scheduler.js";

describe("scheduler fabric seam (in-thread schedulers 0–3)", () => {
  let node: CinderNode;
  let ps: PubSubRef;
  let s: Scheduler[];
  beforeEach(async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    s = [node.main as unknown as Scheduler, ...addSchedulers(node, 3)];
    ps = await PubSub.start(node, { name: "ps" });
  });
  afterEach(async () => {
    await node.stop();
  });
  const fab = () => ps.inst.gen!.fabric;
  const messagesIn = () => s.map((x) => x.messagesIn);

  it("P26 (in-thread seam) subscribe and unsubscribe send no cross-thread message", async () => {
    const before = { env: [...fab().envelopesOut], msgs: messagesIn() };
    const ps1 = idleOn(s[1]!);
    const ps2 = idleOn(s[2]!);
    for (let i = 0; i < 100; i++) {
      PubSub.subscribe(ps1, ps, `t${i}`);
      PubSub.subscribe(ps2, ps, `t${i}`, { metadata: i });
    }
    for (let i = 0; i < 100; i += 2) PubSub.unsubscribe(ps1, ps, `t${i}`);
    await tick();
    expect(fab().envelopesOut).toEqual(before.env);
    expect(messagesIn()).toEqual(before.msgs);
    // each subscription landed in its own scheduler's table only
    expect(ps.inst.tables().map((t) => t.subscriptions)).toEqual([0, 50, 100, 0]);
  });

  it("P27 (in-thread seam) a broadcast to subscribers on k other schedulers sends exactly k envelopes, whatever their number; none elsewhere", async () => {
    const subs: Process<any>[] = [];
    for (let i = 0; i < 300; i++) subs.push(idleOn(s[1 + (i % 2)]!)); // schedulers 1 and 2
    for (const p of subs) PubSub.subscribe(p, ps, "fan");
    const other = idleOn(s[3]!);
    PubSub.subscribe(other, ps, "elsewhere");
    const out0 = [...fab().envelopesOut];
    PubSub.broadcast(node, ps, "fan", "x"); // from scheduler 0, which has no subscriber
    await tick();
    expect(fab().envelopesOut.map((n, i) => n - out0[i]!)).toEqual([0, 1, 1, 0]);
    expect(fab().envelopesIn.map((n, i) => n - out0[i]!)).toEqual([0, 1, 1, 0]);
    for (const p of subs) expect(drain(p)).toEqual(["x"]);
    expect(drain(other)).toEqual([]);
    // from scheduler 1: its own subscribers synchronously, one envelope to scheduler 2
    const b1 = idleOn(s[1]!);
    const out1 = [...fab().envelopesOut];
    PubSub.broadcast(b1, ps, "fan", "y");
    expect(subs.filter((p) => p.sched.index === 1).every((p) => p.mailboxLength === 1)).toBe(true);
    expect(subs.filter((p) => p.sched.index === 2).every((p) => p.mailboxLength === 0)).toBe(true);
    await tick();
    expect(fab().envelopesOut.map((n, i) => n - out1[i]!)).toEqual([0, 0, 1, 0]);
    for (const p of subs) expect(drain(p)).toEqual(["y"]);
    expect(fab().wastedHops).toEqual([0, 0, 0, 0]);
  });

  it("P28 (in-thread seam) stress: subscribe on scheduler A, signal the broadcaster on B through C: the broadcast is always delivered", async () => {
    const A = s[1]!;
    const B = s[2]!;
    const C = s[3]!;
    const N = 2000;
    const got: number[] = [];
    const broadcaster = B.spawn<{ topic: string; i: number }>({ handle: (m, self) => void PubSub.broadcast(self, ps, (m as { topic: string }).topic, (m as { i: number }).i) }, undefined, null, false);
    const relay = C.spawn<{ topic: string; i: number }>({ handle: (m, self) => self.send(broadcaster.pid, m as { topic: string; i: number }) }, undefined, null, false);
    for (let i = 0; i < N; i++) {
      A.spawn<number>(
        {
          init(self) {
            PubSub.subscribe(self, ps, `race:${i}`);
            self.send(relay.pid, { topic: `race:${i}`, i });
          },
          handle(m, self) {
            got.push(m as number);
            self.exit("normal");
          },
        },
        undefined,
        null,
        false,
      );
    }
    for (let k = 0; k < 100 && got.length < N; k++) await tick();
    expect(got.length).toBe(N);
    expect(new Set(got).size).toBe(N);
  });

  it("P21 (in-thread seam) a subscriber that exits is removed on every scheduler; nothing reaches it after its exit", async () => {
    const p = idleOn(s[2]!);
    const q = idleOn(s[3]!);
    for (const t of ["x", "y"]) {
      PubSub.subscribe(p, ps, t);
      PubSub.subscribe(q, ps, t);
    }
    PubSub.broadcast(node, ps, "x", "before"); // envelope in flight to schedulers 2 and 3
    p.exit("kill");
    expect(PubSub.subscribers(ps, "x")).toEqual([{ pid: q.pid, metadata: null }]);
    await tick();
    expect(drain(q)).toEqual(["before"]);
    expect(p.mailboxLength).toBe(0);
    // scheduler 2 has no entry left: its interest is gone, so no more envelopes go there
    const out = [...fab().envelopesOut];
    PubSub.broadcast(node, ps, "y", "after");
    await tick();
    expect(fab().envelopesOut[2]! - out[2]!).toBe(0);
    expect(fab().interestOf(2)).toBe(0);
    expect(drain(q)).toEqual(["after"]);
  });

  it("P23 (in-thread seam) one sender's messages reach a subscriber in send order across broadcast, broadcastFrom and directBroadcast, locally and across schedulers", async () => {
    const here = node.process();
    const there = idleOn(s[2]!);
    const sender = idleOn(s[1]!);
    for (const p of [here, there]) PubSub.subscribe(p, ps, "order");
    const self = PubSub.nodeName(ps);
    const N = 600;
    for (let i = 0; i < N; i++) {
      const k = i % 4;
      if (k === 0) PubSub.broadcast(sender, ps, "order", i);
      else if (k === 1) PubSub.broadcastFrom(sender, ps, sender.pid, "order", i);
      else if (k === 2) PubSub.directBroadcast(sender, ps, self, "order", i);
      else PubSub.localBroadcast(sender, ps, "order", i);
    }
    const want = Array.from({ length: N }, (_, i) => i);
    expect(await receiveN(here, N)).toEqual(want);
    expect(await receiveN(there, N)).toEqual(want);
  });

  it("P38 (in-thread seam) a scheduler that dies takes its subscriptions with it; others stop hopping to it and keep their own subscribers", async () => {
    const doomed = [idleOn(s[2]!), idleOn(s[2]!)];
    const alive = [idleOn(s[1]!), idleOn(s[3]!), node.process()];
    for (const p of [...doomed, ...alive]) PubSub.subscribe(p, ps, "room");
    PubSub.subscribe(doomed[0]!, ps, "only-on-2");
    // the thread dies: its processes are gone without running anything here, its table with them
    ps.inst.schedulerDown(2);
    const out = [...fab().envelopesOut];
    PubSub.broadcast(node, ps, "room", "still");
    PubSub.broadcast(node, ps, "only-on-2", "nobody");
    await tick();
    expect(fab().envelopesOut.map((n, i) => n - out[i]!)).toEqual([0, 1, 0, 1]);
    for (const p of alive) expect(drain(p)).toEqual(["still"]);
    for (const p of doomed) expect(p.mailboxLength).toBe(0);
    expect(fab().interestOf(2)).toBe(0);
  });

  it("P41 (in-thread seam) a message that cannot be cloned: a typed error names the schedulers; the sender's scheduler still gets it; nothing is half-sent", async () => {
    ps.inst.gen!.fabric.cloneHops = true; // as across threads
    const local = node.process();
    const remote1 = idleOn(s[1]!);
    const remote3 = idleOn(s[3]!);
    for (const p of [local, remote1, remote3]) PubSub.subscribe(p, ps, "fn");
    const fnMsg = { run: () => 1 };
    const r = PubSub.broadcast(node, ps, "fn", fnMsg);
    expect(r).toBeInstanceOf(BroadcastError);
    const e = r as BroadcastError;
    expect(e.failure).toBe("clone");
    expect([...e.schedulers].sort()).toEqual([1, 3]);
    expect(e.remoteOnly).toBe(true);
    expect(() => PubSub.broadcastOrThrow(node, ps, "fn", fnMsg)).toThrow(BroadcastError);
    await tick();
    expect(drain(local)).toEqual([fnMsg, fnMsg]);
    expect(remote1.mailboxLength + remote3.mailboxLength).toBe(0);
    expect(fab().stats().cloneFailures).toBe(4);
    // a clonable message is cloned once per destination scheduler, shared by its subscribers
    const twin = idleOn(s[1]!);
    PubSub.subscribe(twin, ps, "fn");
    PubSub.broadcast(node, ps, "fn", { ok: true });
    await tick();
    const [a] = drain(remote1);
    const [b] = drain(twin);
    expect(a).toEqual({ ok: true });
    expect(a).toBe(b);
  });
});
