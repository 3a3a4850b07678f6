/**
 * Conformance M1–M4: monitors, in every placement (watcher and target on either side).
 */
import { describe, expect, it } from "vitest";
import { type CinderNode, type MonitorRef, type Pid, type Process } from "@cinder/runtime";
import { downOf, expectMsg, expectNoMsg, isDown, until } from "./support/deadline.js";
import { ask, forwarded, fwdFrom } from "./support/drive.js";
import { puppet } from "./support/fixtures.js";
import { placements, useNode } from "./support/placements.js";

type Side = "local" | "remote";
const other = (s: Side): Side => (s === "local" ? "remote" : "local");
const SIDES: Side[] = ["local", "remote"];

describe.each(placements)("monitors: $name", (pl) => {
  let node: CinderNode;
  let me: Process<any>;
  useNode(pl, (n, m) => {
    node = n;
    me = m;
  });

  const spawnSide = async (side: Side): Promise<Pid> => (side === "local" ? node.spawn(puppet({ to: me.pid })) : pl.spawnAt(node, "puppet", { to: me.pid }));
  const monitorFrom = async (watcher: Pid, target: Pid): Promise<MonitorRef> => (await ask<{ ref: MonitorRef }>(me, watcher, { cmd: "monitor", pid: target })).ref;
  const downFor = (ref: MonitorRef) => (m: unknown) => isDown(m) && m.ref === ref;

  describe("M1 one DOWN per monitor", () => {
    const cases = SIDES.flatMap((watcher) => (["boom", "normal", "kill"] as const).map((how) => ({ watcher, how })));
    it.each(cases)("M1 a $watcher watcher gets exactly one DOWN(ref, pid, reason) when the target exits ($how)", async ({ watcher, how }) => {
      const w = await spawnSide(watcher);
      const t = await spawnSide(other(watcher));
      const ref = await monitorFrom(w, t);
      expect(typeof ref).toBe("string");
      if (how === "kill") node.exit(t, "kill");
      else me.send(t, how === "normal" ? { cmd: "return" } : { cmd: "exit", reason: how });
      const reason = how === "kill" ? "killed" : how;
      expect(await forwarded(me, w, downFor(ref), "DOWN")).toEqual({ type: "DOWN", ref, pid: t, reason });
      // a sentinel monitor on the dead target answers noproc after any duplicate DOWN would have come
      const sentinel = await monitorFrom(w, t);
      await forwarded(me, w, downFor(sentinel), "sentinel DOWN");
      await expectNoMsg(me, fwdFrom(w, downFor(ref)), 5, "second DOWN");
    });

    it("M1 monitor from the driver: the DOWN carries the ref monitor returned and the exit reason", async () => {
      const t = await spawnSide("remote");
      const ref = me.monitor(t);
      me.send(t, { cmd: "throw", message: "target failed" });
      const down = await expectMsg(me, downFor(ref), "DOWN");
      expect(down.pid).toBe(t);
      expect(down.reason).toBeInstanceOf(Error);
      expect((down.reason as Error).message).toBe("target failed");
    });

    it("M1 a monitor is one-way: the watcher dying does not touch the target", async () => {
      const w = await spawnSide("local");
      const t = await spawnSide("remote");
      await monitorFrom(w, t);
      const down = downOf(node, w);
      me.send(w, { cmd: "exit", reason: "boom" });
      expect(await down).toBe("boom");
      await ask(me, t, { cmd: "ping" });
    });
  });

  describe("M2 monitoring a dead pid", () => {
    it.each(SIDES)("M2 a %s watcher monitoring a dead pid gets an immediate DOWN with noproc", async (watcher) => {
      const t = await spawnSide(other(watcher));
      const gone = downOf(node, t);
      me.send(t, { cmd: "return" });
      await gone;
      const w = await spawnSide(watcher);
      const ref = await monitorFrom(w, t);
      expect(await forwarded(me, w, downFor(ref), "DOWN noproc")).toEqual({ type: "DOWN", ref, pid: t, reason: "noproc" });
    });
  });

  describe("M3 demonitor", () => {
    it.each(SIDES)("M3 after demonitor a %s watcher gets no DOWN when the target exits", async (watcher) => {
      const w = await spawnSide(watcher);
      const t = await spawnSide(other(watcher));
      const ref = await monitorFrom(w, t);
      const kept = await monitorFrom(w, t); // a second monitor, still active: the sentinel
      const r = await ask<{ result: boolean }>(me, w, { cmd: "demonitor", ref });
      expect(r.result).toBe(true);
      me.send(t, { cmd: "exit", reason: "boom" });
      await forwarded(me, w, downFor(kept), "DOWN of the kept monitor");
      await expectNoMsg(me, fwdFrom(w, downFor(ref)), 20, "DOWN after demonitor");
    });

    it("M3 demonitor with flush removes a DOWN already queued; without flush it stays", async () => {
      const t1 = await spawnSide("remote");
      const t2 = await spawnSide("remote");
      const r1 = me.monitor(t1);
      const r2 = me.monitor(t2);
      const s1 = me.monitor(t1);
      const s2 = me.monitor(t2);
      me.send(t1, { cmd: "exit", reason: "boom" });
      me.send(t2, { cmd: "exit", reason: "boom" });
      await expectMsg(me, downFor(s1), "sentinel DOWN 1");
      await expectMsg(me, downFor(s2), "sentinel DOWN 2");
      await until(() => me.mailboxLength >= 2, "both DOWNs queued");
      // the monitors have fired: demonitor reports false, flush still removes the DOWN
      expect(me.demonitor(r1, { flush: true })).toBe(false);
      expect(me.demonitor(r2)).toBe(false);
      const left = me.flush(isDown);
      expect(left).toEqual([{ type: "DOWN", ref: r2, pid: t2, reason: "boom" }]);
    });

    it("M3 demonitor with flush on a live target removes the monitor and returns true", async () => {
      const t = await spawnSide("remote");
      const ref = me.monitor(t);
      expect(me.demonitor(ref, { flush: true })).toBe(true);
      const sentinel = me.monitor(t);
      me.send(t, { cmd: "return" });
      await expectMsg(me, downFor(sentinel), "sentinel DOWN");
      await expectNoMsg(me, downFor(ref), 5, "DOWN after demonitor");
    });
  });

  describe("M4 several monitors", () => {
    it.each(SIDES)("M4 several monitors on one target (watchers local and %s) give one DOWN each", async (side) => {
      const t = await spawnSide(other(side));
      const w = await spawnSide(side);
      const mine = [me.monitor(t), me.monitor(t), me.monitor(t)];
      const theirs = [await monitorFrom(w, t), await monitorFrom(w, t)];
      expect(new Set([...mine, ...theirs]).size).toBe(5);
      me.send(t, { cmd: "exit", reason: "boom" });
      for (const ref of mine) expect(await expectMsg(me, downFor(ref), "DOWN")).toEqual({ type: "DOWN", ref, pid: t, reason: "boom" });
      for (const ref of theirs) expect(await forwarded(me, w, downFor(ref), "DOWN")).toEqual({ type: "DOWN", ref, pid: t, reason: "boom" });
      const sentinel = me.monitor(t);
      await expectMsg(me, downFor(sentinel), "sentinel DOWN");
      expect(me.flush(isDown)).toEqual([]);
    });
  });
});
