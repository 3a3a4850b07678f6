/**
 * Conformance L1–L8: links and exit signals, in every placement.
 *
 * Each case has a "local" actor (on the driver's scheduler) and a "remote" one (at the
 * placement); both are puppets the driver commands. Cases run both ways round.
 */
import { describe, expect, it } from "vitest";
import { type CinderNode, type Pid, type Process } from "@cinder/runtime";
import { downOf, expectMsg, expectNoMsg, isExit, staysAlive, until } from "./support/deadline.js";
import { ask, forwarded, fwdFrom } from "./support/drive.js";
import { puppet } from "./support/fixtures.js";
import { placements, useNode } from "./support/placements.js";

type Side = "local" | "remote";
const other = (s: Side): Side => (s === "local" ? "remote" : "local");
const SIDES: Side[] = ["local", "remote"];

describe.each(placements)("links and exit signals: $name", (pl) => {
  let node: CinderNode;
  let me: Process<any>;
  useNode(pl, (n, m) => {
    node = n;
    me = m;
  });

  const spawnSide = async (side: Side): Promise<Pid> => (side === "local" ? node.spawn(puppet({ to: me.pid })) : pl.spawnAt(node, "puppet", { to: me.pid }));
  const trapping = async (side: Side): Promise<Pid> => {
    const p = await spawnSide(side);
    await ask(me, p, { cmd: "trap", on: true });
    return p;
  };

  describe("L1 links are bidirectional", () => {
    const cases = SIDES.flatMap((linker) => (["linker", "linked"] as const).flatMap((dies) => (["boom", "shutdown"] as const).map((reason) => ({ linker, dies, reason }))));
    it.each(cases)("L1 link made by the $linker actor: when the $dies side exits with $reason the other exits with it", async ({ linker, dies, reason }) => {
      const a = await spawnSide(linker);
      const b = await spawnSide(other(linker));
      await ask(me, a, { cmd: "link", pid: b });
      const downA = downOf(node, a);
      const downB = downOf(node, b);
      me.send(dies === "linker" ? a : b, { cmd: "exit", reason });
      expect(await downA).toBe(reason);
      expect(await downB).toBe(reason);
    });

    it.each(SIDES)("L1 a %s actor that throws takes its linked partner down with the error", async (side) => {
      const a = await spawnSide(side);
      const b = await spawnSide(other(side));
      await ask(me, b, { cmd: "link", pid: a });
      const downB = downOf(node, b);
      me.send(a, { cmd: "throw", message: "thrown in a" });
      const reason = await downB;
      expect(reason).toBeInstanceOf(Error);
      expect((reason as Error).message).toBe("thrown in a");
    });
  });

  describe("L2 normal exits", () => {
    const cases = SIDES.flatMap((exiting) => (["return", "exit normal"] as const).map((how) => ({ exiting, how })));
    it.each(cases)("L2 a $exiting actor ending normally ($how) does not kill its linked partner", async ({ exiting, how }) => {
      const a = await spawnSide(exiting);
      const b = await spawnSide(other(exiting));
      await ask(me, b, { cmd: "link", pid: a });
      const downA = downOf(node, a);
      me.send(a, how === "return" ? { cmd: "return" } : { cmd: "exit", reason: "normal" });
      expect(await downA).toBe("normal");
      await staysAlive(node, b, 30);
      await ask(me, b, { cmd: "ping" });
    });
  });

  describe("L3 trapping exits", () => {
    it.each(SIDES)("L3 a trapping %s actor gets the exit signal as an EXIT message and lives", async (side) => {
      const t = await trapping(side);
      const x = await spawnSide(other(side));
      await ask(me, x, { cmd: "link", pid: t });
      me.send(x, { cmd: "exit", reason: "boom" });
      expect(await forwarded(me, t, (m) => isExit(m))).toEqual({ type: "EXIT", from: x, reason: "boom" });
      await ask(me, t, { cmd: "ping" });
      await staysAlive(node, t, 5);
    });

    it.each(SIDES)("L3 a trapping %s actor gets an EXIT with reason normal when a linked actor ends normally", async (side) => {
      const t = await trapping(side);
      const x = await spawnSide(other(side));
      await ask(me, t, { cmd: "link", pid: x });
      me.send(x, { cmd: "return" });
      expect(await forwarded(me, t, (m) => isExit(m))).toEqual({ type: "EXIT", from: x, reason: "normal" });
    });
  });

  describe("L4 kill", () => {
    it.each(SIDES)("L4 exit(pid, kill) from the other side kills a trapping %s actor; its links see killed", async (side) => {
      const victim = await trapping(side);
      const watcher = await trapping(other(side)); // trapping linked partner: sees the reason
      const bystander = await spawnSide(other(side)); // non-trapping linked partner: dies with it
      const killer = await spawnSide(other(side));
      await ask(me, watcher, { cmd: "link", pid: victim });
      await ask(me, bystander, { cmd: "link", pid: victim });
      const downVictim = downOf(node, victim);
      const downBystander = downOf(node, bystander);
      await ask(me, killer, { cmd: "exitSignal", pid: victim, reason: "kill" });
      expect(await downVictim).toBe("killed");
      expect(await forwarded(me, watcher, (m) => isExit(m))).toEqual({ type: "EXIT", from: victim, reason: "killed" });
      // `killed`, not `kill`: the untrappable signal does not propagate along links
      expect(await downBystander).toBe("killed");
      await ask(me, watcher, { cmd: "ping" });
    });

    it.each(SIDES)("L4 node.exit(pid, kill) kills a trapping %s actor", async (side) => {
      const victim = await trapping(side);
      const down = downOf(node, victim);
      node.exit(victim, "kill");
      expect(await down).toBe("killed");
    });
  });

  describe("L5 exit(pid, normal)", () => {
    it.each(SIDES)("L5 exit(pid, normal) from the other side is ignored by a non-trapping %s actor", async (side) => {
      const target = await spawnSide(side);
      const sender = await spawnSide(other(side));
      await ask(me, sender, { cmd: "exitSignal", pid: target, reason: "normal" });
      // the sender's next message to the target is ordered after its exit signal
      await ask(me, sender, { cmd: "send", to: target, msg: { cmd: "ping", n: 7 } });
      expect(await expectMsg(me, (m) => m.ack === "ping" && m.from === target)).toMatchObject({ n: 7 });
      await staysAlive(node, target, 5);
    });

    it.each(SIDES)("L5 exit(pid, normal) reaches a trapping %s actor as an EXIT message", async (side) => {
      const target = await trapping(side);
      const sender = await spawnSide(other(side));
      await ask(me, sender, { cmd: "exitSignal", pid: target, reason: "normal" });
      expect(await forwarded(me, target, (m) => isExit(m))).toEqual({ type: "EXIT", from: sender, reason: "normal" });
    });

    it("L5 exit(self, normal) ends the actor itself", async () => {
      const p = await spawnSide("remote");
      const down = downOf(node, p);
      me.send(p, { cmd: "exitSignal", pid: p, reason: "normal" });
      expect(await down).toBe("normal");
    });
  });

  describe("L6 linking to a dead pid", () => {
    const deadPid = async (side: Side): Promise<Pid> => {
      const p = await spawnSide(side);
      const down = downOf(node, p);
      me.send(p, { cmd: "return" });
      await down;
      return p;
    };

    it.each(SIDES)("L6 a trapping %s linker gets an EXIT with noproc", async (side) => {
      const dead = await deadPid(other(side));
      const linker = await trapping(side);
      await ask(me, linker, { cmd: "link", pid: dead });
      expect(await forwarded(me, linker, (m) => isExit(m))).toEqual({ type: "EXIT", from: dead, reason: "noproc" });
      await ask(me, linker, { cmd: "ping" });
    });

    it.each(SIDES)("L6 a non-trapping %s linker exits with noproc", async (side) => {
      const dead = await deadPid(other(side));
      const linker = await spawnSide(side);
      const down = downOf(node, linker);
      me.send(linker, { cmd: "link", pid: dead });
      expect(await down).toBe("noproc");
    });
  });

  describe("L7 unlink", () => {
    const cases = SIDES.flatMap((unlinker) => (["unlinker", "other"] as const).map((dies) => ({ unlinker, dies })));
    it.each(cases)("L7 after the $unlinker actor unlinks, no signal crosses when the $dies side exits", async ({ unlinker, dies }) => {
      const a = await trapping(unlinker);
      const b = await trapping(other(unlinker));
      await ask(me, a, { cmd: "link", pid: b });
      await ask(me, a, { cmd: "unlink", pid: b });
      const [dying, survivor] = dies === "unlinker" ? [a, b] : [b, a];
      const down = downOf(node, dying);
      me.send(dying, { cmd: "exit", reason: "boom" });
      expect(await down).toBe("boom");
      await expectNoMsg(me, fwdFrom(survivor, (m) => isExit(m)), 30, "EXIT across a removed link");
      await ask(me, survivor, { cmd: "ping" });
    });

    it.each(SIDES)("L7 a non-trapping %s actor survives its unlinked partner's crash", async (side) => {
      const a = await spawnSide(side);
      const b = await spawnSide(other(side));
      await ask(me, b, { cmd: "link", pid: a });
      await ask(me, a, { cmd: "unlink", pid: b });
      const down = downOf(node, b);
      me.send(b, { cmd: "exit", reason: "boom" });
      expect(await down).toBe("boom");
      await staysAlive(node, a, 30);
    });

    it("L7 unlink drops an EXIT from that link already queued for a trapping actor", async () => {
      me.trapExit(true);
      const b = await spawnSide("remote");
      me.link(b);
      me.send(b, { cmd: "exit", reason: "boom" });
      await until(() => me.mailboxLength > 0, "the EXIT to arrive");
      me.unlink(b);
      expect(me.flush((m) => isExit(m, b))).toEqual([]);
    });
  });

  describe("L8 spawnLink", () => {
    it("L8 a child that dies at once still delivers its exit to a trapping parent", async () => {
      const parent = node.process({ trapExit: true });
      const child = await pl.spawnLinkAt(parent, "exitAtOnce", { reason: "early death" });
      expect(await expectMsg(parent, (m) => isExit(m, child))).toEqual({ type: "EXIT", from: child, reason: "early death" });
    });

    it("L8 a child that ends normally at once still shows the link to a trapping parent", async () => {
      const parent = node.process({ trapExit: true });
      const child = await pl.spawnLinkAt(parent, "exitAtOnce", { reason: "normal" });
      expect(await expectMsg(parent, (m) => isExit(m, child))).toEqual({ type: "EXIT", from: child, reason: "normal" });
    });

    it("L8 a child that dies at once takes a non-trapping parent down", async () => {
      const parent = node.process();
      const down = downOf(node, parent.pid);
      await pl.spawnLinkAt(parent, "exitAtOnce", { reason: "early death" });
      expect(await down).toBe("early death");
    });

    it.each(SIDES)("L8 a %s parent's spawnLink of a child that dies at once gets the EXIT", async (side) => {
      const parent = await trapping(side);
      const { child } = await ask<{ child: Pid }>(me, parent, { cmd: "spawnLinkCrash", reason: "early death" });
      expect(await forwarded(me, parent, (m) => isExit(m))).toEqual({ type: "EXIT", from: child, reason: "early death" });
    });
  });
});
