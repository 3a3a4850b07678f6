/**
 * Conformance G1–G8: GenServer, with the server in every placement (callers on the driver's
 * scheduler).
 */
import { describe, expect, it } from "vitest";
import {
  AlreadyStartedError,
  CinderError,
  ExitError,
  GenServer,
  InitError,
  NoProcError,
  TimeoutError,
  type CinderNode,
  type Pid,
  type Process,
  type ViaResolver,
} from "@cinder/runtime";
import { DEADLINE_MS, downOf, expectMsg, expectNoMsg, sleep, staysAlive, until, within } from "./support/deadline.js";
import { placements, useNode } from "./support/placements.js";

/** A minimal `via` registry: a map, with no exit hooks of its own. */
function mapRegistry(): ViaResolver & { names: Map<unknown, Pid> } {
  const names = new Map<unknown, Pid>();
  return {
    names,
    whereisName: (n) => names.get(n),
    registerName: (n, pid) => (names.has(n) ? false : (names.set(n, pid), true)),
    unregisterName: (n) => void names.delete(n),
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe.each(placements)("GenServer: $name", (pl) => {
  let node: CinderNode;
  let me: Process<any>;
  useNode(pl, (n, m) => {
    node = n;
    me = m;
  });

  describe("G1 call", () => {
    it("G1 call returns the handler's reply, by ref, by name and from a process", async () => {
      const s = await pl.startServerAt(node, "counter", { start: 5 }, { name: "ctr" });
      expect(await GenServer.call(node, s, "get")).toBe(5);
      expect(await GenServer.call(node, "ctr", "inc")).toBe(6);
      expect(await GenServer.call(me, s, { add: 4 })).toBe(10);
    });

    it("G1 calls from one caller are handled in order, even when issued together", async () => {
      const s = await pl.startServerAt(node, "counter", {});
      const reqs = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? { sleep: 1, then: "inc" as const } : ("inc" as const)));
      const replies = await Promise.all(reqs.map((r) => GenServer.call(me, s, r)));
      expect(replies).toEqual(reqs.map((_, i) => i + 1));
    });
  });

  describe("G2 call to a dead or missing server", () => {
    it("G2 call to a dead server rejects with a NoProcError (code noproc)", async () => {
      const s = await pl.startServerAt(node, "counter", {});
      await GenServer.stop(node, s);
      const e = await rejection(GenServer.call(node, s, "get"));
      expect(e).toBeInstanceOf(NoProcError);
      expect((e as CinderError).code).toBe("noproc");
      expect(String((e as Error).message)).toContain("no process");
    });

    it("G2 call to an unregistered name rejects with noproc", async () => {
      const e = await rejection(GenServer.call(node, "no_such_server", "get"));
      expect(e).toBeInstanceOf(NoProcError);
      expect((e as CinderError).code).toBe("noproc");
    });

    it("G2 a server that dies during the call rejects the caller with its exit reason", async () => {
      const s = await pl.startServerAt(node, "counter", {});
      const e = await rejection(GenServer.call(node, s, "crash"));
      expect(e).toBeInstanceOf(ExitError);
      expect((e as CinderError).code).toBe("exit");
      expect(((e as CinderError).reason as Error).message).toBe("counter crashed");
    });

    it("G2 a failed call leaves no helper process behind", async () => {
      const baseline = node.main.stats().processes;
      await rejection(GenServer.call(node, "no_such_server", "get"));
      const s = await pl.startServerAt(node, "counter", {});
      await GenServer.stop(node, s);
      await rejection(GenServer.call(node, s, "get"));
      await until(() => node.main.stats().processes === baseline, "helper processes to exit");
    });
  });

  describe("G3 call timeouts", () => {
    it("G3 call past its timeout rejects with a TimeoutError (code timeout)", async () => {
      const s = await pl.startServerAt(node, "deferred", {});
      const t0 = performance.now();
      const e = await rejection(GenServer.call(node, s, { hold: "k" }, 30));
      expect(performance.now() - t0).toBeGreaterThanOrEqual(28);
      expect(e).toBeInstanceOf(TimeoutError);
      expect((e as CinderError).code).toBe("timeout");
    });

    it("G3 late reply after a call timeout is discarded, not a stray message", async () => {
      const s = await pl.startServerAt(node, "deferred", {});
      const baseline = node.main.stats().processes;
      await rejection(GenServer.call(me, s, { hold: "late" }, 20));
      // now the server answers the call that timed out
      expect(await GenServer.call(me, s, { release: "late", value: "too late" })).toBe("ok");
      expect(await GenServer.call(me, s, "held")).toEqual([]);
      await expectNoMsg(me, undefined, 20, "stray late reply");
      expect(me.mailboxLength).toBe(0);
      await until(() => node.main.stats().processes === baseline, "reply slots to be gone");
    });

    it("G3 a reply arriving after the timeout (from a timer) reaches no one and the server lives", async () => {
      const s = await pl.startServerAt(node, "deferred", {});
      await rejection(GenServer.call(me, s, { replyAfter: 40, value: "late" }, 10));
      await sleep(60); // the late reply has been sent by now
      expect(me.mailboxLength).toBe(0);
      expect(await GenServer.call(me, s, "held")).toEqual([]);
    });
  });

  describe("G4 deferred replies", () => {
    it("G4 a deferred reply answers the right caller", async () => {
      const s = await pl.startServerAt(node, "deferred", {});
      const c1 = node.process();
      const c2 = node.process();
      const p1 = GenServer.call(c1, s, { hold: "one" });
      const p2 = GenServer.call(c2, s, { hold: "two" });
      await until(async () => ((await GenServer.call(node, s, "held")) as string[]).length === 2, "both callers parked");
      expect(await GenServer.call(node, s, { release: "two", value: "for two" })).toBe("ok");
      expect(await p2).toBe("for two");
      expect(await GenServer.call(node, s, { release: "one", value: "for one" })).toBe("ok");
      expect(await p1).toBe("for one");
    });
  });

  describe("G5 cast", () => {
    it("G5 cast returns at once while the server is busy, and is handled after", async () => {
      const s = await pl.startServerAt(node, "counter", {});
      const busy = GenServer.call(node, s, { sleep: 40, then: "get" });
      const t0 = performance.now();
      expect(GenServer.cast(node, s, { add: 5 })).toBeUndefined();
      expect(performance.now() - t0).toBeLessThan(20);
      expect(await busy).toBe(0);
      expect(await GenServer.call(node, s, "get")).toBe(5);
    });

    it("G5 cast never throws for a dead server, a dead pid or a missing name", async () => {
      const s = await pl.startServerAt(node, "counter", {}, { name: "gone_soon" });
      await GenServer.stop(node, s);
      expect(() => GenServer.cast(node, s, { add: 1 })).not.toThrow();
      expect(() => GenServer.cast(node, "gone_soon", { add: 1 })).not.toThrow();
      expect(() => GenServer.cast(me, "never_registered", { add: 1 })).not.toThrow();
      expect(me.alive).toBe(true);
    });

    it("G5 a cast that crashes the server does not reach the caster", async () => {
      const s = await pl.startServerAt(node, "counter", {});
      const down = downOf(node, s);
      GenServer.cast(me, s, "crash");
      expect(((await down) as Error).message).toBe("counter crashed in cast");
      expect(me.alive).toBe(true);
    });
  });

  describe("G6 init failures", () => {
    it.each(["throw", "reject", "exit"] as const)("G6 init that fails (%s) makes start reject with the reason; nothing stays registered", async (mode) => {
      const baseline = node.main.stats().processes;
      const e = await rejection(pl.startServerAt(node, "failingInit", { mode, message: "no resources" }, { name: "g6" }));
      expect(e).toBeInstanceOf(CinderError);
      if (mode === "exit") {
        expect((e as CinderError).reason).toBe("no resources");
      } else {
        expect(e).toBeInstanceOf(InitError);
        expect((e as CinderError).code).toBe("init_failed");
        expect(((e as CinderError).reason as Error).message).toBe("no resources");
      }
      expect(node.whereis("g6")).toBeUndefined();
      await until(() => node.main.stats().processes === baseline, "the failed server to be gone");
    });

    it("G6 a server killed during init makes start reject; the name is freed", async () => {
      const started = pl.startServerAt(node, "failingInit", { mode: "hang" }, { name: "g6k" });
      await until(() => node.whereis("g6k") !== undefined, "the server to be spawned");
      node.exit(node.whereis("g6k")!, "kill");
      const e = await rejection(within(started, DEADLINE_MS, "start to settle"));
      expect(e).toBeInstanceOf(CinderError);
      expect((e as CinderError).reason).toBe("killed");
      expect(node.whereis("g6k")).toBeUndefined();
    });

    it("G6 an init past its start timeout rejects with a timeout error; nothing stays registered", async () => {
      const e = await rejection(pl.startServerAt(node, "failingInit", { mode: "hang" }, { name: "g6t", timeout: 20 }));
      expect((e as CinderError).code).toBe("timeout");
      expect(node.whereis("g6t")).toBeUndefined();
    });

    it("G6 a failing init leaves nothing registered under a via name", async () => {
      const reg = mapRegistry();
      const e = await rejection(pl.startServerAt(node, "failingInit", { mode: "throw" }, { name: { via: reg, name: "svc" } }));
      expect(e).toBeInstanceOf(InitError);
      expect(reg.names.size).toBe(0);
      // and the via name can be used by the next start
      const s = await pl.startServerAt(node, "counter", { start: 1 }, { name: { via: reg, name: "svc" } });
      expect(reg.whereisName("svc")).toBe(s);
      expect(await GenServer.call(node, { via: reg, name: "svc" }, "get")).toBe(1);
    });

    it("G6 start with a taken name rejects already_started with the owner's pid", async () => {
      const s = await pl.startServerAt(node, "counter", {}, { name: "taken" });
      const e = await rejection(pl.startServerAt(node, "counter", {}, { name: "taken" }));
      expect(e).toBeInstanceOf(AlreadyStartedError);
      expect((e as AlreadyStartedError).pid).toBe(s);
      expect((e as CinderError).code).toBe("already_started");
    });

    it("G6 a failing startLink rejects; the linked parent is not left holding a dead link", async () => {
      const parent = node.process({ trapExit: true });
      const e = await rejection(pl.startServerLinkAt(parent, "failingInit", { mode: "throw" }));
      expect(e).toBeInstanceOf(InitError);
      await expectNoMsg(parent, (m) => m?.type === "EXIT", 20, "EXIT from the failed server");
      expect(parent.links === null || parent.links.size === 0).toBe(true);
    });
  });

  describe("G7 terminate", () => {
    it("G7 terminate runs on a trapped shutdown from the parent", async () => {
      const parent = node.process({ trapExit: true });
      const s = await pl.startServerLinkAt(parent, "reporter", { to: me.pid }, { trapExit: true });
      const down = downOf(node, s);
      parent.exit(s, "shutdown");
      expect(await expectMsg(me, (m) => "terminated" in m)).toEqual({ terminated: "shutdown", pid: s });
      expect(await down).toBe("shutdown");
    });

    it("G7 terminate runs on stop, with the stop reason, before stop resolves", async () => {
      const s = await pl.startServerAt(node, "reporter", { to: me.pid });
      const down = downOf(node, s);
      await GenServer.stop(node, s, "bye");
      expect(await expectMsg(me, (m) => "terminated" in m)).toEqual({ terminated: "bye", pid: s });
      expect(await down).toBe("bye");
    });

    it("G7 terminate runs when a handler asks to stop", async () => {
      const s = await pl.startServerAt(node, "reporter", { to: me.pid });
      expect(await GenServer.call(node, s, { stop: "done" })).toBe("ok");
      expect(await expectMsg(me, (m) => "terminated" in m)).toEqual({ terminated: "done", pid: s });
    });

    it("G7 terminate runs when a handler throws, with the error", async () => {
      const s = await pl.startServerAt(node, "reporter", { to: me.pid });
      await rejection(GenServer.call(node, s, "crash"));
      const m = await expectMsg(me, (x) => "terminated" in x);
      expect((m.terminated as Error).message).toBe("reporter crashed");
    });

    it("G7 terminate does not run on kill, even when trapping exits", async () => {
      const parent = node.process({ trapExit: true });
      const s = await pl.startServerLinkAt(parent, "reporter", { to: me.pid }, { trapExit: true });
      const down = downOf(node, s);
      node.exit(s, "kill");
      expect(await down).toBe("killed");
      await expectNoMsg(me, (m) => "terminated" in m, 30, "terminate on kill");
    });

    it("G7 a server that does not trap exits dies on its parent's shutdown without terminate", async () => {
      const parent = node.process({ trapExit: true });
      const s = await pl.startServerLinkAt(parent, "reporter", { to: me.pid });
      const down = downOf(node, s);
      parent.exit(s, "shutdown");
      expect(await down).toBe("shutdown");
      await expectNoMsg(me, (m) => "terminated" in m, 30, "terminate without trapping");
    });

    it("G7 an EXIT from a linked process that is not the parent is an info message, not a stop", async () => {
      const parent = node.process({ trapExit: true });
      const s = await pl.startServerLinkAt(parent, "reporter", { to: me.pid }, { trapExit: true });
      const other = node.process();
      other.link(s);
      other.exit("boom");
      expect(await expectMsg(me, (m) => "info" in m)).toEqual({ info: { type: "EXIT", from: other.pid, reason: "boom" }, pid: s });
      expect(await GenServer.call(node, s, "ping")).toBe("pong");
    });
  });

  describe("G8 async handlers", () => {
    it("G8 an async handler suspends the server, not the scheduler", async () => {
      const s = await pl.startServerAt(node, "counter", {});
      const local = node.spawn({ handle: (m: Pid, self) => self.send(m, "pong") });
      let slowDone = false;
      const slow = GenServer.call(node, s, { sleep: 200, then: "inc" }).then((v) => ((slowDone = true), v));
      const queued = GenServer.call(node, s, "get"); // waits behind the suspended handler
      // other actors and servers on the scheduler answer while the handler is suspended
      me.send(local, me.pid);
      expect(await expectMsg(me)).toBe("pong");
      const other = await pl.startServerAt(node, "counter", { start: 7 });
      expect(await GenServer.call(node, other, "get")).toBe(7);
      expect(slowDone).toBe(false);
      expect(await slow).toBe(1);
      expect(await queued).toBe(1); // handled after the async handler settled, with its state
      await staysAlive(node, s, 1);
    });
  });
});
