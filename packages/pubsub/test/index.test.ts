/**
 * The public API on one node (PUBSUB.md P3–P13, P20, P21, P24): every item runs with poolSize 1
 * and 8, and with the subscribers on the broadcaster's scheduler and on another scheduler.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { silentLogger, startNode, type CinderNode, type Pid, type Process } from "@cinder/runtime";
import { BroadcastError, PubSub, registerDispatcher, type PubSubRef, type SubscriberEntry } from "@cinder/pubsub";
import { addSchedulers, drain, idleOn, tick } from "./support/harness.js";

type Call = { entries: Array<{ pid: Pid; metadata: unknown }>; from: Pid | null; msg: unknown };
const calls: Call[] = [];
registerDispatcher("test.index.capture", (entries, from, msg, ctx) => {
  calls.push({ entries: entries.map((e: SubscriberEntry) => ({ pid: e.pid, metadata: e.metadata })), from, msg });
  for (const e of entries) if (e.pid !== from) ctx.send(e, msg);
});

for (const poolSize of [1, 8]) {
  for (const placement of ["same scheduler", "other scheduler"] as const) {
    describe(`PubSub on one node (poolSize ${poolSize}, subscribers on the ${placement})`, () => {
      let node: CinderNode;
      let ps: PubSubRef;
      let sub: () => Process<any>;
      let broadcaster: Process<any>;

      beforeEach(async () => {
        node = await startNode({ name: "solo", schedulers: 1, logger: silentLogger });
        const [other] = addSchedulers(node, 1);
        ps = await PubSub.start(node, { name: "ps", poolSize });
        broadcaster = node.process();
        sub = () => (placement === "same scheduler" ? node.process() : idleOn(other!));
        calls.length = 0;
      });
      afterEach(async () => {
        await node.stop();
      });

      it("P3 nodeName returns a non-empty string", () => {
        const n = PubSub.nodeName(ps);
        expect(typeof n).toBe("string");
        expect(n).toBe("solo");
      });

      it("P4 after subscribe the table lists exactly (pid, null); after unsubscribe nothing", () => {
        const p = sub();
        expect(PubSub.subscribe(p, ps, "topic4")).toBe("ok");
        expect(PubSub.subscribers(ps, "topic4")).toEqual([{ pid: p.pid, metadata: null }]);
        expect(PubSub.unsubscribe(p, ps, "topic4")).toBe("ok");
        expect(PubSub.subscribers(ps, "topic4")).toEqual([]);
        expect(PubSub.topicsOf(ps, p.pid)).toEqual([]);
      });

      it("P5 broadcast and its throwing form deliver the message to each subscriber", async () => {
        const a = sub();
        const b = sub();
        PubSub.subscribe(a, ps, "topic5");
        PubSub.subscribe(b, ps, "topic5");
        expect(PubSub.broadcast(broadcaster, ps, "topic5", { n: 1 })).toBe("ok");
        expect(PubSub.broadcastOrThrow(broadcaster, ps, "topic5", { n: 2 })).toBe("ok");
        await tick();
        expect(drain(a)).toEqual([{ n: 1 }, { n: 2 }]);
        expect(drain(b)).toEqual([{ n: 1 }, { n: 2 }]);
      });

      it("P6 broadcast does not reach subscribers of other topics (11 subscribers, receiver on another topic)", async () => {
        const eleven = Array.from({ length: 11 }, () => sub());
        for (const p of eleven) PubSub.subscribe(p, ps, "topic6");
        const other = sub();
        PubSub.subscribe(other, ps, "topic6-other");
        PubSub.broadcast(broadcaster, ps, "topic6", "six");
        await tick();
        for (const p of eleven) expect(drain(p)).toEqual(["six"]);
        expect(drain(other)).toEqual([]);
      });

      it("P7 broadcastFrom and its throwing form skip the sender", async () => {
        const me = sub();
        const you = sub();
        PubSub.subscribe(me, ps, "topic7");
        PubSub.subscribe(you, ps, "topic7");
        expect(PubSub.broadcastFrom(me, ps, me.pid, "topic7", 1)).toBe("ok");
        expect(PubSub.broadcastFromOrThrow(broadcaster, ps, me.pid, "topic7", 2)).toBe("ok");
        await tick();
        expect(drain(me)).toEqual([]);
        expect(drain(you)).toEqual([1, 2]);
      });

      it("P8 unsubscribe from a topic never subscribed returns ok and registers nothing", () => {
        const p = sub();
        expect(PubSub.unsubscribe(p, ps, "never")).toBe("ok");
        expect(PubSub.subscribers(ps, "never")).toEqual([]);
        expect(PubSub.stats(ps).subscriptions).toBe(0);
      });

      it("P9 directBroadcast (both forms) to the own node delivers", async () => {
        const p = sub();
        PubSub.subscribe(p, ps, "topic9");
        expect(PubSub.directBroadcast(broadcaster, ps, PubSub.nodeName(ps), "topic9", "d1")).toBe("ok");
        expect(PubSub.directBroadcastOrThrow(broadcaster, ps, PubSub.nodeName(ps), "topic9", "d2")).toBe("ok");
        await tick();
        expect(drain(p)).toEqual(["d1", "d2"]);
      });

      it("P10 directBroadcast (both forms) to an unknown node returns ok and delivers nothing locally", async () => {
        const p = sub();
        PubSub.subscribe(p, ps, "topic10");
        expect(PubSub.directBroadcast(broadcaster, ps, "nowhere", "topic10", "x")).toBe("ok");
        expect(PubSub.directBroadcastOrThrow(broadcaster, ps, "nowhere", "topic10", "y")).toBe("ok");
        await tick();
        expect(drain(p)).toEqual([]);
      });

      it("P11 localBroadcast delivers on the current node", async () => {
        const p = sub();
        PubSub.subscribe(p, ps, "topic11");
        expect(PubSub.localBroadcast(broadcaster, ps, "topic11", "l")).toBe("ok");
        await tick();
        expect(drain(p)).toEqual(["l"]);
      });

      it("P12 localBroadcastFrom skips the sender", async () => {
        const me = sub();
        const you = sub();
        PubSub.subscribe(me, ps, "topic12");
        PubSub.subscribe(you, ps, "topic12");
        expect(PubSub.localBroadcastFrom(broadcaster, ps, me.pid, "topic12", "lf")).toBe("ok");
        await tick();
        expect(drain(me)).toEqual([]);
        expect(drain(you)).toEqual(["lf"]);
      });

      it("P13 a custom dispatcher gets both entries of a pid subscribed twice, with metadata and the right from", async () => {
        const p = sub();
        PubSub.subscribe(p, ps, "topic13");
        PubSub.subscribe(p, ps, "topic13", { metadata: { fastlane: true } });
        const both = [
          { pid: p.pid, metadata: null },
          { pid: p.pid, metadata: { fastlane: true } },
        ];
        const variants: Array<[string, () => unknown, Pid | null]> = [
          ["broadcast", () => PubSub.broadcast(broadcaster, ps, "topic13", "m", "test.index.capture"), null],
          ["broadcastFrom", () => PubSub.broadcastFrom(broadcaster, ps, p.pid, "topic13", "m", "test.index.capture"), p.pid],
          ["localBroadcast", () => PubSub.localBroadcast(broadcaster, ps, "topic13", "m", "test.index.capture"), null],
          ["localBroadcastFrom", () => PubSub.localBroadcastFrom(broadcaster, ps, p.pid, "topic13", "m", "test.index.capture"), p.pid],
          ["directBroadcast", () => PubSub.directBroadcast(broadcaster, ps, PubSub.nodeName(ps), "topic13", "m", "test.index.capture"), null],
        ];
        for (const [name, run, from] of variants) {
          calls.length = 0;
          expect(run(), name).toBe("ok");
          await tick();
          expect(calls, name).toEqual([{ entries: both, from, msg: "m" }]);
          expect(drain(p), name).toEqual(from === null ? ["m", "m"] : []);
        }
      });

      it("P20 duplicate subscriptions deliver one message per entry; one unsubscribe removes them all", async () => {
        const p = sub();
        PubSub.subscribe(p, ps, "topic20");
        PubSub.subscribe(p, ps, "topic20");
        PubSub.subscribe(p, ps, "topic20", { metadata: 3 });
        PubSub.broadcast(broadcaster, ps, "topic20", "dup");
        await tick();
        expect(drain(p)).toEqual(["dup", "dup", "dup"]);
        expect(PubSub.subscribers(ps, "topic20")).toHaveLength(3);
        PubSub.unsubscribe(p, ps, "topic20");
        PubSub.broadcast(broadcaster, ps, "topic20", "gone");
        await tick();
        expect(drain(p)).toEqual([]);
        expect(PubSub.subscribers(ps, "topic20")).toEqual([]);
      });

      it("P21 a subscriber that exits is removed from every topic; nothing is delivered to it after its exit", async () => {
        const p = sub();
        const q = sub();
        for (const t of ["a21", "b21", "c21"]) {
          PubSub.subscribe(p, ps, t);
          PubSub.subscribe(q, ps, t);
        }
        let after = 0;
        p.onExit(() => {
          // the exit is processed: a broadcast now must not reach p (its mailbox is gone anyway)
          PubSub.broadcast(broadcaster, ps, "a21", "after-exit");
          after = PubSub.subscribers(ps, "a21").filter((e) => e.pid === p.pid).length;
        });
        p.exit("normal");
        expect(after).toBe(0);
        for (const t of ["a21", "b21", "c21"]) expect(PubSub.subscribers(ps, t)).toEqual([{ pid: q.pid, metadata: null }]);
        expect(PubSub.topicsOf(ps, p.pid)).toEqual([]);
        await tick();
        expect(drain(q)).toEqual(["after-exit"]);
        expect(PubSub.stats(ps).subscribers).toBe(1);
      });

      it("P24 broadcast returns without waiting for delivery and regardless of subscribers", async () => {
        expect(PubSub.broadcast(broadcaster, ps, "nobody-here", "x")).toBe("ok");
        // a subscriber that never takes its messages does not hold the broadcaster
        const stalled = sub();
        PubSub.subscribe(stalled, ps, "topic24");
        for (let i = 0; i < 1000; i++) expect(PubSub.broadcast(broadcaster, ps, "topic24", i)).toBe("ok");
        await tick();
        expect(stalled.mailboxLength).toBe(1000);
      });

      it("rejects a topic that is not a string and an unknown dispatcher (typed errors, nothing sent)", async () => {
        const p = sub();
        PubSub.subscribe(p, ps, "t");
        expect(() => PubSub.broadcast(broadcaster, ps, 42 as unknown as string, "x")).toThrow(/topic must be a string/);
        expect(() => PubSub.broadcast(broadcaster, ps, "t", "x", "no.such.dispatcher")).toThrow(/unknown dispatcher/);
        await tick();
        expect(drain(p)).toEqual([]);
        expect(PubSub.broadcast(broadcaster, "ps", "t", "by name")).toBe("ok");
        await tick();
        expect(drain(p)).toEqual(["by name"]);
        expect(BroadcastError).toBeDefined();
      });
    });
  }
}
