/**
 * Conformance R1–R7: processes and messages (CONFORMANCE.md), in every placement.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BadArgError, Timeout, silentLogger, startNode, type CinderNode, type Pid, type Process } from "@cinder/runtime";
import { capturingLogger, downOf, expectMsg, expectNoMsg, staysAlive, until } from "./support/deadline.js";
import { placements } from "./support/placements.js";

describe.each(placements)("processes and messages: $name", (pl) => {
  let node: CinderNode | undefined;
  afterEach(async () => {
    await node?.stop();
    node = undefined;
  });

  it("R1 each message to a live actor is delivered exactly once and in send order", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const fwd = await pl.spawnAt(node, "forward", { to: me.pid });
    const N = 2000;
    for (let i = 0; i < N; i++) me.send(fwd, { n: i });
    for (let i = 0; i < N; i++) expect(await expectMsg(me, undefined, `message ${i}`)).toEqual({ n: i });
    await expectNoMsg(me, undefined, 20, "duplicate delivery");
  });

  it("R1 order holds per sender-receiver pair when two senders interleave", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const fwd = await pl.spawnAt(node, "forward", { to: me.pid });
    const a = node.process();
    const b = node.process();
    const N = 500;
    for (let i = 0; i < N; i++) {
      a.send(fwd, { s: "a", i });
      b.send(fwd, { s: "b", i });
      if (i % 7 === 0) b.send(fwd, { s: "b", i: -1 }); // uneven interleaving
    }
    const next = { a: 0, b: 0 };
    for (let k = 0; k < 2 * N + Math.ceil(N / 7); k++) {
      const m = await expectMsg<{ s: "a" | "b"; i: number }>(me);
      if (m.i === -1) continue;
      expect(m.i).toBe(next[m.s]);
      next[m.s]++;
    }
    expect(next).toEqual({ a: N, b: N });
  });

  it("R2 sending to a dead pid does not throw, from the node or from a process", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const dead = await pl.spawnAt(node, "exitAtOnce", { reason: "normal" });
    await downOf(node, dead);
    expect(() => node!.send(dead, "hello")).not.toThrow();
    expect(() => me.send(dead, "hello")).not.toThrow();
    // and a pid from a node that no longer exists
    const other = await pl.startNode({ logger: silentLogger });
    const stale = other.process().pid;
    await other.stop();
    expect(() => node!.send(stale, "hello")).not.toThrow();
    expect(() => me.send(stale, "hello")).not.toThrow();
    expect(me.alive).toBe(true);
  });

  it("R2 sending by name to an unregistered name is a typed badarg error", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    expect(() => node!.send("nobody_here", 1)).toThrow(BadArgError);
    let err: unknown;
    try {
      me.send("nobody_here", 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadArgError);
    expect((err as BadArgError).code).toBe("badarg");
    expect(me.alive).toBe(true);
    // a name whose actor exited is unregistered, so it is badarg too
    const p = await pl.spawnAt(node, "puppet", { to: me.pid }, { name: "short_lived" });
    me.send(p, { cmd: "return" });
    await downOf(node, p);
    expect(() => node!.send("short_lived", 1)).toThrow(BadArgError);
  });

  it("R3 selective receive takes the first match and leaves the others queued in order", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const fwd = await pl.spawnAt(node, "forward", { to: me.pid });
    for (const m of ["a1", "b1", "a2", "b2", "a3"]) me.send(fwd, m);
    await until(() => me.mailboxLength === 5, "5 queued messages");
    expect(await me.receive({ match: (m) => typeof m === "string" && m.startsWith("b") })).toBe("b1");
    expect(await me.receive({ match: (m) => m === "a3" })).toBe("a3");
    const rest: unknown[] = [];
    for (let i = 0; i < 3; i++) rest.push(await me.receive());
    expect(rest).toEqual(["a1", "a2", "b2"]);
    expect(me.mailboxLength).toBe(0);
  });

  it("R3 a waiting selective receive skips non-matching arrivals and keeps them in order", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const fwd = await pl.spawnAt(node, "forward", { to: me.pid });
    const got = me.receive({ match: (m) => m === "wanted" });
    me.send(fwd, "x1");
    me.send(fwd, "x2");
    await until(() => me.mailboxLength === 2, "2 non-matching messages queued");
    me.send(fwd, "x3");
    me.send(fwd, "wanted");
    expect(await got).toBe("wanted");
    expect([await me.receive(), await me.receive(), await me.receive()]).toEqual(["x1", "x2", "x3"]);
  });

  it("R3 a waiting selective receive still finds its match after the mailbox was flushed meanwhile", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const fwd = await pl.spawnAt(node, "forward", { to: me.pid });
    const got = me.receive({ match: (m) => m === "wanted", timeout: 2000 });
    for (const m of ["x1", "x2", "x3"]) me.send(fwd, m);
    await until(() => me.mailboxLength === 3, "3 non-matching messages queued");
    expect(me.flush((m) => m !== "x3")).toEqual(["x1", "x2"]);
    me.send(fwd, "wanted");
    expect(await got).toBe("wanted");
    expect(await me.receive()).toBe("x3");
  });

  it("R4 a receive with a timeout resolves to Timeout after the timeout", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const t0 = performance.now();
    expect(await me.receive({ timeout: 40 })).toBe(Timeout);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(35);
    expect(await me.receive({ timeout: 0 })).toBe(Timeout);
  });

  it("R4 a message arriving before the timeout wins; a later one stays queued", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const fwd = await pl.spawnAt(node, "forward", { to: me.pid });
    const t0 = performance.now();
    const r = me.receive({ timeout: 5000 });
    me.send(fwd, "first");
    expect(await r).toBe("first");
    expect(performance.now() - t0).toBeLessThan(1000);
    // a selective receive times out; the message that did not match is still there
    me.send(fwd, "other");
    expect(await me.receive({ match: (m) => m === "never", timeout: 20 })).toBe(Timeout);
    expect(await me.receive({ timeout: 1000 })).toBe("other");
    // a message arriving after a timed-out receive is kept for the next receive
    expect(await me.receive({ timeout: 5 })).toBe(Timeout);
    me.send(fwd, "late");
    expect(await expectMsg(me, (m) => m === "late")).toBe("late");
  });

  it("R5 an async handler handles one message at a time, in order", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const h = await pl.spawnAt(node, "slowHandler", { to: me.pid, delayMs: 3 });
    for (let n = 0; n < 10; n++) me.send(h, { n });
    for (let n = 0; n < 10; n++) expect(await expectMsg(me)).toEqual({ done: n, active: 1 });
  });

  it("R5 messages that arrive during an async init wait for it, then are handled in order", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const seen: string[] = [];
    const h = node.spawn<string>({
      async init() {
        await new Promise((r) => setTimeout(r, 10));
        seen.push("init done");
      },
      handle(m, self) {
        seen.push(m as string);
        if (m === "last") self.send(me.pid, "handled");
      },
    });
    for (const m of ["one", "two", "last"]) me.send(h, m);
    expect(await expectMsg(me)).toBe("handled");
    expect(seen).toEqual(["init done", "one", "two", "last"]);
  });

  it("R5 a body process is suspended at its awaits, not re-entered", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    let inside = 0;
    let maxInside = 0;
    const p = node.spawn(async (self: Process<number>) => {
      for (;;) {
        const m = await self.receive();
        inside++;
        maxInside = Math.max(maxInside, inside);
        await new Promise((r) => setTimeout(r, 1));
        inside--;
        self.send(me.pid, m);
      }
    });
    for (let i = 0; i < 5; i++) me.send(p, i);
    for (let i = 0; i < 5; i++) expect(await expectMsg(me)).toBe(i);
    expect(maxInside).toBe(1);
  });

  it("R6 a handler that throws kills only its actor; the others and the scheduler go on", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const victim = await pl.spawnAt(node, "crashOn", { to: me.pid });
    const bystander = await pl.spawnAt(node, "crashOn", { to: me.pid });
    const local = node.spawn({ handle: (m: unknown, self) => self.send(me.pid, { local: m }) });
    const down = downOf(node, victim);
    me.send(victim, { type: "boom" });
    expect(String(await down)).toContain("boom");
    me.send(bystander, { type: "still there?" });
    expect(await expectMsg(me, (m) => m.from === bystander)).toEqual({ echo: { type: "still there?" }, from: bystander });
    me.send(local, 1);
    expect(await expectMsg(me, (m) => "local" in m)).toEqual({ local: 1 });
    await staysAlive(node, bystander, 5);
  });

  it("R6 an async handler whose promise rejects kills only its actor", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const victim = await pl.spawnAt(node, "crashOn", { to: me.pid });
    const bystander = await pl.spawnAt(node, "crashOn", { to: me.pid });
    const down = downOf(node, victim);
    me.send(victim, { type: "reject" });
    expect(await down).toBeInstanceOf(Error);
    me.send(bystander, { type: "hello" });
    await expectMsg(me, (m) => m.from === bystander);
  });

  it("R6 the crash log line names the actor and the kind of message it was handling", async () => {
    const log = capturingLogger();
    node = await pl.startNode({ logger: log });
    const me = node.process();
    const victim = node.spawn(
      {
        handle(m: { type: string }) {
          if (m.type === "explode") throw new Error("kaboom");
        },
      },
      { label: "Detonator", name: "detonator" },
    );
    const down = downOf(node, victim);
    me.send(victim, { type: "explode", payload: 42 });
    await down;
    const line = log.lines.find((l) => l.level === "error" && l.message.includes("kaboom"));
    expect(line, JSON.stringify(log.lines)).toBeDefined();
    expect(line!.message).toContain(victim);
    expect(line!.message).toContain("Detonator");
    expect(line!.message).toContain("detonator");
    expect(line!.message).toContain("type=explode");
    expect(line!.meta).toMatchObject({ pid: victim, label: "Detonator", message: "type=explode" });
  });

  it("R7 pids are unique and never reused within the node's life", async () => {
    node = await pl.startNode({ logger: silentLogger });
    const seen = new Set<Pid>();
    for (let round = 0; round < 5; round++) {
      const batch: Pid[] = [];
      for (let i = 0; i < 1000; i++) batch.push(await pl.spawnAt(node, "exitAtOnce", { reason: "normal" }));
      await until(() => batch.every((p) => !node!.isAlive(p)), "the batch to exit");
      for (const p of batch) {
        expect(seen.has(p)).toBe(false);
        seen.add(p);
      }
    }
    expect(seen.size).toBe(5000);
  });

  it("R7 a restarted node has a new incarnation: no pid aliases one of the old node", async () => {
    const first = await pl.startNode({ logger: silentLogger });
    const oldPids = [first.process().pid, first.process().pid, first.process().pid];
    await first.stop();
    node = await pl.startNode({ logger: silentLogger });
    expect(node.incarnation).not.toBe(first.incarnation);
    const me = node.process();
    const fwds = await Promise.all([0, 1, 2, 3].map(() => pl.spawnAt(node!, "forward", { to: me.pid })));
    for (const p of fwds) expect(oldPids).not.toContain(p);
    // a message to a pid of the old incarnation never reaches a process of the new one
    for (const p of oldPids) node.send(p, "for the old node");
    await expectNoMsg(me, undefined, 20, "message delivered through a stale pid");
    // nor does a monitor or a link on it find a live process
    me.trapExit(true);
    const ref = me.monitor(oldPids[0]!);
    expect(await expectMsg(me, (m) => m.type === "DOWN")).toEqual({ type: "DOWN", ref, pid: oldPids[0], reason: "noproc" });
    me.link(oldPids[1]!);
    expect(await expectMsg(me, (m) => m.type === "EXIT")).toEqual({ type: "EXIT", from: oldPids[1], reason: "noproc" });
  });
});

describe("R7 incarnations", () => {
  it("R7 two nodes started in the same millisecond still get different incarnations", async () => {
    const nodes = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(() => startNode({ logger: silentLogger })));
    try {
      expect(new Set(nodes.map((n) => n.incarnation)).size).toBe(nodes.length);
      expect(new Set(nodes.map((n) => n.process().pid)).size).toBe(nodes.length);
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});
