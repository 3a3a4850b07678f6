/**
 * Conformance TM1 (timers) and N1–N2 (registered names), in every placement.
 */
import { describe, expect, it } from "vitest";
import { BadArgError, type CinderNode, type Pid, type Process, type TimerRef } from "@cinder/runtime";
import { downOf, expectMsg, expectNoMsg } from "./support/deadline.js";
import { ask } from "./support/drive.js";
import { placements, useNode } from "./support/placements.js";

describe.each(placements)("timers: $name", (pl) => {
  let node: CinderNode;
  let me: Process<any>;
  useNode(pl, (n, m) => {
    node = n;
    me = m;
  });

  it("TM1 sendAfter delivers after the delay, to a pid and to a name", async () => {
    const fwd = await pl.spawnAt(node, "forward", { to: me.pid }, { name: "timer_target" });
    const t0 = performance.now();
    node.sendAfter(fwd, "by pid", 30);
    node.sendAfter("timer_target", "by name", 30);
    me.sendAfter(me.pid, "to self", 30);
    const got = [await expectMsg(me), await expectMsg(me), await expectMsg(me)];
    expect(performance.now() - t0).toBeGreaterThanOrEqual(28);
    expect(got.sort()).toEqual(["by name", "by pid", "to self"]);
  });

  it("TM1 cancelTimer before the delay prevents delivery and reports the time left", async () => {
    const fwd = await pl.spawnAt(node, "forward", { to: me.pid });
    const ref = node.sendAfter(fwd, "cancelled", 200);
    const sentinel = node.sendAfter(fwd, "sentinel", 30);
    const left = node.cancelTimer(ref);
    expect(typeof left).toBe("number");
    expect(left as number).toBeGreaterThan(100);
    expect(left as number).toBeLessThanOrEqual(200);
    expect(await expectMsg(me)).toBe("sentinel");
    expect(node.cancelTimer(sentinel)).toBe(false); // already fired
    expect(node.cancelTimer(ref)).toBe(false); // already cancelled
    await expectNoMsg(me, (m) => m === "cancelled", 20);
  });

  it("TM1 cancelTimer of a timer that already fired reports false and the message is there once", async () => {
    const ref = me.sendAfter(me.pid, "fired", 1);
    expect(await expectMsg(me)).toBe("fired");
    expect(node.cancelTimer(ref)).toBe(false);
    expect(node.cancelTimer(123456 as TimerRef)).toBe(false);
    expect(me.mailboxLength).toBe(0);
  });

  it("TM1 a timer to a name that is gone when it fires is dropped without an error", async () => {
    const p = await pl.spawnAt(node, "puppet", { to: me.pid }, { name: "leaving" });
    node.sendAfter("leaving", { cmd: "ping" }, 20);
    const down = downOf(node, p);
    me.send(p, { cmd: "return" });
    await down;
    const sentinel = node.sendAfter(me.pid, "sentinel", 25);
    expect(await expectMsg(me)).toBe("sentinel");
    expect(node.cancelTimer(sentinel)).toBe(false);
  });
});

describe.each(placements)("names: $name", (pl) => {
  let node: CinderNode;
  let me: Process<any>;
  useNode(pl, (n, m) => {
    node = n;
    me = m;
  });

  const spawnPuppet = (): Promise<Pid> => pl.spawnAt(node, "puppet", { to: me.pid });

  it("N1 register fails for a taken name", async () => {
    const a = await spawnPuppet();
    const b = await spawnPuppet();
    expect(await ask(me, a, { cmd: "register", name: "svc" })).toMatchObject({ ok: true });
    expect(await ask(me, b, { cmd: "register", name: "svc" })).toMatchObject({ ok: false, code: "badarg" });
    expect(() => node.register("svc", me.pid)).toThrow(BadArgError);
    expect(node.whereis("svc")).toBe(a);
  });

  it("N1 register fails for an actor that already has a name", async () => {
    const a = await spawnPuppet();
    expect(await ask(me, a, { cmd: "register", name: "first" })).toMatchObject({ ok: true });
    expect(await ask(me, a, { cmd: "register", name: "second" })).toMatchObject({ ok: false, code: "badarg" });
    expect(node.whereis("second")).toBeUndefined();
    expect(node.whereis("first")).toBe(a);
  });

  it("N1 register fails for a dead pid and for an invalid name", async () => {
    const a = await spawnPuppet();
    const down = downOf(node, a);
    me.send(a, { cmd: "return" });
    await down;
    expect(() => node.register("ghost", a)).toThrow(BadArgError);
    expect(node.whereis("ghost")).toBeUndefined();
    expect(() => node.register("", me.pid)).toThrow(BadArgError);
    expect(() => node.register("<looks.like.a.pid>", me.pid)).toThrow(BadArgError);
  });

  it.each(["returns", "crashes", "is killed"] as const)("N1 a name frees when its actor %s, and can be taken again", async (how) => {
    const a = await spawnPuppet();
    expect(await ask(me, a, { cmd: "register", name: "svc" })).toMatchObject({ ok: true });
    const down = downOf(node, a);
    if (how === "returns") me.send(a, { cmd: "return" });
    else if (how === "crashes") me.send(a, { cmd: "throw", message: "boom" });
    else node.exit(a, "kill");
    await down;
    expect(node.whereis("svc")).toBeUndefined();
    expect(node.registered()).not.toContain("svc");
    expect(() => node.send("svc", "x")).toThrow(BadArgError);
    const b = await spawnPuppet();
    expect(await ask(me, b, { cmd: "register", name: "svc" })).toMatchObject({ ok: true });
    expect(node.whereis("svc")).toBe(b);
  });

  it("N1 spawn with a taken name throws and leaves no process behind", async () => {
    const a = await spawnPuppet();
    await ask(me, a, { cmd: "register", name: "svc" });
    const before = node.main.stats().processes;
    await expect(pl.spawnAt(node, "puppet", { to: me.pid }, { name: "svc" })).rejects.toThrow(BadArgError);
    expect(node.main.stats().processes).toBe(before);
    expect(node.whereis("svc")).toBe(a);
  });

  it("N2 whereis is synchronous: a name registered or unregistered by an actor is visible at once to the others", async () => {
    const owner = await spawnPuppet();
    const reader = await spawnPuppet();
    await ask(me, owner, { cmd: "register", name: "svc" });
    // the owner acked after registering: the name is already there for every reader
    expect(node.whereis("svc")).toBe(owner);
    expect(await ask(me, reader, { cmd: "whereis", name: "svc" })).toMatchObject({ pid: owner });
    me.send("svc", { cmd: "ping", n: 1 });
    expect(await expectMsg(me, (m) => m.ack === "ping")).toMatchObject({ from: owner, n: 1 });
    await ask(me, owner, { cmd: "unregister", name: "svc" });
    expect(node.whereis("svc")).toBeUndefined();
    expect(await ask(me, reader, { cmd: "whereis", name: "svc" })).toMatchObject({ pid: undefined });
    // the same actor may register again under another name
    expect(await ask(me, owner, { cmd: "register", name: "svc2" })).toMatchObject({ ok: true });
    expect(await ask(me, reader, { cmd: "whereis", name: "svc2" })).toMatchObject({ pid: owner });
  });

  it("N2 when a watcher sees the DOWN of a named actor, whereis already answers undefined", async () => {
    const owner = await spawnPuppet();
    await ask(me, owner, { cmd: "register", name: "svc" });
    const ref = me.monitor(owner);
    me.send(owner, { cmd: "throw", message: "bye" });
    await expectMsg(me, (m) => m.type === "DOWN" && m.ref === ref);
    expect(node.whereis("svc")).toBeUndefined();
  });

  it("N2 unregister of a name that is not registered is a badarg error", () => {
    expect(() => node.unregister("never_registered")).toThrow(BadArgError);
  });
});
