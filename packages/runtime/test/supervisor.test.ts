/**
 * Conformance S1–S8: Supervisor (S9 DynamicSupervisor lives with its own suite; S10 is
 * supervisor.model.test.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  CinderError,
  GenServer,
  InitError,
  Supervisor,
  silentLogger,
  type ChildSpec,
  type CinderNode,
  type ExitReason,
  type GenServerBehaviour,
  type Pid,
  type Process,
  type Restart,
  type SupervisorRef,
} from "@cinder/runtime";
import { downOf, eventually, sleep, staysAlive, until } from "./support/deadline.js";
import { placements } from "./support/placements.js";

// ---- a worker that logs its start and its terminate -----------------------------------------

interface WArgs {
  id: string;
  log: string[];
  /** terminate takes this long (ms) before logging */
  terminateMs?: number;
}
type WCall = "ping" | "crash" | { exit: ExitReason };

const Worker: GenServerBehaviour<WArgs, WCall, unknown, never, unknown, WArgs> = {
  name: "worker",
  init(args) {
    args.log.push(`start:${args.id}`);
    return args;
  },
  handleCall(req, _from, st) {
    if (req === "ping") return { reply: "pong", state: st };
    if (req === "crash") throw new Error(`${st.id} crashed`);
    return { reply: "ok", state: st, stop: req.exit };
  },
  async terminate(_reason, st) {
    if (st.terminateMs) await sleep(st.terminateMs);
    st.log.push(`stop:${st.id}`);
  },
};

/** A child spec for a logging worker (it traps exits, so it sees `shutdown` and logs terminate). */
function worker(id: string, log: string[], extra: Partial<ChildSpec> = {}, terminateMs = 0): ChildSpec {
  return { id, start: (sup) => GenServer.startLink(sup, Worker, { id, log, terminateMs }, { trapExit: true }), ...extra };
}

/** A child spec for a plain body child that lives until told otherwise. */
function idle(id: string, extra: Partial<ChildSpec> = {}): ChildSpec {
  return { id, start: (sup) => sup.spawnLink(() => new Promise<void>(() => {})), ...extra };
}

async function kids(node: CinderNode, sup: SupervisorRef) {
  return Supervisor.whichChildren(node, sup);
}

async function pidOf(node: CinderNode, sup: SupervisorRef, id: string): Promise<Pid | "restarting" | undefined> {
  const k = (await kids(node, sup)).find((c) => c.id === id);
  if (!k) throw new Error(`no child ${id}`);
  return k.pid;
}

/** Kills `pid` and waits until the supervisor shows `id` running under a new pid. */
async function killAndAwaitRestart(node: CinderNode, sup: SupervisorRef, id: string): Promise<Pid> {
  const old = (await pidOf(node, sup, id)) as Pid;
  const down = downOf(node, old);
  node.exit(old, "kill");
  await down;
  return eventually(async () => {
    const p = await pidOf(node, sup, id);
    expect(typeof p === "string" && p !== old && p !== "restarting").toBe(true);
    return p as Pid;
  });
}

async function rejection(p: Promise<unknown>): Promise<CinderError> {
  try {
    await p;
  } catch (e) {
    return e as CinderError;
  }
  throw new Error("expected a rejection");
}

describe.each(placements)("Supervisor: $name", (pl) => {
  let node: CinderNode;
  let log: string[];
  beforeEach(async () => {
    node = await pl.startNode({ logger: silentLogger });
    log = [];
  });
  afterEach(() => node.stop());

  describe("S1 start", () => {
    it("S1 children start in spec order", async () => {
      const sup = await Supervisor.start(node, { children: [worker("a", log), worker("b", log), worker("c", log)] });
      expect(log).toEqual(["start:a", "start:b", "start:c"]);
      const ks = await kids(node, sup);
      expect(ks.map((k) => k.id)).toEqual(["a", "b", "c"]);
      for (const k of ks) expect(node.isAlive(k.pid as Pid)).toBe(true);
    });

    it("S1 a child that fails to start stops those started (in reverse) and fails the supervisor start with its reason", async () => {
      const boom = new Error("c cannot start");
      const spawned: Pid[] = [];
      const track = (spec: ChildSpec): ChildSpec => ({
        ...spec,
        start: async (sup) => {
          const p = (await spec.start(sup)) as Pid;
          spawned.push(p);
          return p;
        },
      });
      const e = await rejection(
        Supervisor.start(
          node,
          {
            children: [
              track(worker("a", log)),
              track(worker("b", log)),
              {
                id: "c",
                start: () => {
                  throw boom;
                },
              },
              worker("d", log),
            ],
          },
          { name: "s1sup" },
        ),
      );
      expect(e).toBeInstanceOf(InitError);
      expect(e.reason).toBe(boom);
      expect(log).toEqual(["start:a", "start:b", "stop:b", "stop:a"]);
      for (const p of spawned) expect(node.isAlive(p)).toBe(false);
      expect(node.whereis("s1sup")).toBeUndefined();
    });

    it("S1 a child whose GenServer init fails fails the supervisor start", async () => {
      const bad: ChildSpec = { id: "bad", start: (sup) => GenServer.startLink(sup, { init: () => Promise.reject(new Error("no db")) }, undefined) };
      const e = await rejection(Supervisor.start(node, { children: [worker("a", log), bad] }));
      expect(e).toBeInstanceOf(InitError);
      expect(log).toEqual(["start:a", "stop:a"]);
    });
  });

  describe("S2 strategies", () => {
    it("S2 one_for_one restarts only the failed child", async () => {
      const sup = await Supervisor.start(node, { strategy: "one_for_one", children: [worker("a", log), worker("b", log), worker("c", log)] });
      const before = await kids(node, sup);
      log.length = 0;
      await killAndAwaitRestart(node, sup, "b");
      const after = await kids(node, sup);
      expect(after[0]!.pid).toBe(before[0]!.pid);
      expect(after[1]!.pid).not.toBe(before[1]!.pid);
      expect(after[2]!.pid).toBe(before[2]!.pid);
      expect(log).toEqual(["start:b"]);
    });

    it("S2 one_for_all stops the others in reverse order and restarts all in order", async () => {
      const sup = await Supervisor.start(node, { strategy: "one_for_all", children: [worker("a", log), worker("b", log), worker("c", log), worker("d", log)] });
      const before = await kids(node, sup);
      log.length = 0;
      await killAndAwaitRestart(node, sup, "b");
      expect(log).toEqual(["stop:d", "stop:c", "stop:a", "start:a", "start:b", "start:c", "start:d"]);
      const after = await kids(node, sup);
      for (let i = 0; i < 4; i++) {
        expect(after[i]!.pid).not.toBe(before[i]!.pid);
        expect(node.isAlive(before[i]!.pid as Pid)).toBe(false);
        expect(node.isAlive(after[i]!.pid as Pid)).toBe(true);
      }
    });

    it("S2 rest_for_one stops those after the failed child in reverse and restarts it and them in order", async () => {
      const sup = await Supervisor.start(node, { strategy: "rest_for_one", children: [worker("a", log), worker("b", log), worker("c", log), worker("d", log)] });
      const before = await kids(node, sup);
      log.length = 0;
      await killAndAwaitRestart(node, sup, "b");
      expect(log).toEqual(["stop:d", "stop:c", "start:b", "start:c", "start:d"]);
      const after = await kids(node, sup);
      expect(after[0]!.pid).toBe(before[0]!.pid);
      for (let i = 1; i < 4; i++) expect(after[i]!.pid).not.toBe(before[i]!.pid);
    });

    it("S2 rest_for_one: the failure of the last child restarts only that child", async () => {
      const sup = await Supervisor.start(node, { strategy: "rest_for_one", children: [worker("a", log), worker("b", log)] });
      const before = await kids(node, sup);
      log.length = 0;
      await killAndAwaitRestart(node, sup, "b");
      expect(log).toEqual(["start:b"]);
      expect((await kids(node, sup))[0]!.pid).toBe(before[0]!.pid);
    });
  });

  describe("S3 restart types", () => {
    const cases: Array<{ restart: Restart; reason: ExitReason; restarted: boolean }> = [
      { restart: "permanent", reason: "normal", restarted: true },
      { restart: "permanent", reason: "shutdown", restarted: true },
      { restart: "permanent", reason: "boom", restarted: true },
      { restart: "transient", reason: "normal", restarted: false },
      { restart: "transient", reason: "shutdown", restarted: false },
      { restart: "transient", reason: { shutdown: "done" }, restarted: false },
      { restart: "transient", reason: "boom", restarted: true },
      { restart: "temporary", reason: "normal", restarted: false },
      { restart: "temporary", reason: "boom", restarted: false },
    ];
    it.each(cases)("S3 a $restart child exiting with $reason is restarted: $restarted", async ({ restart, reason, restarted }) => {
      const sup = await Supervisor.start(node, { children: [worker("x", log, { restart }), worker("y", log)] });
      const old = (await pidOf(node, sup, "x")) as Pid;
      const down = downOf(node, old);
      expect(await GenServer.call(node, old, { exit: reason })).toBe("ok");
      expect(await down).toEqual(reason);
      if (restarted) {
        const now = await eventually(async () => {
          const p = await pidOf(node, sup, "x");
          expect(p).not.toBe(old);
          return p as Pid;
        });
        expect(await GenServer.call(node, now, "ping")).toBe("pong");
      } else {
        // the EXIT was handled before this call: nothing was or will be restarted
        const ks = await kids(node, sup);
        if (restart === "temporary") expect(ks.map((k) => k.id)).toEqual(["y"]);
        else expect(ks.find((k) => k.id === "x")!.pid).toBeUndefined();
        expect(log.filter((l) => l === "start:x")).toHaveLength(1);
      }
    });
  });

  describe("S4 restart intensity", () => {
    it("S4 more than maxRestarts in maxSeconds stops all children and exits the supervisor with shutdown", async () => {
      const sup = await Supervisor.start(node, { maxRestarts: 2, maxSeconds: 5, children: [worker("stable", log), idle("flaky")] });
      const stable = (await pidOf(node, sup, "stable")) as Pid;
      const supDown = downOf(node, sup);
      await killAndAwaitRestart(node, sup, "flaky");
      await killAndAwaitRestart(node, sup, "flaky");
      node.exit((await pidOf(node, sup, "flaky")) as Pid, "kill");
      expect(await supDown).toBe("shutdown");
      expect(node.isAlive(stable)).toBe(false);
      expect(log).toContain("stop:stable"); // stopped in order, not just killed
    });

    it("S4 the default intensity is 3 restarts in 5 seconds", async () => {
      const sup = await Supervisor.start(node, { children: [idle("flaky")] });
      const supDown = downOf(node, sup);
      for (let i = 0; i < 3; i++) await killAndAwaitRestart(node, sup, "flaky");
      expect(node.isAlive(sup)).toBe(true);
      node.exit((await pidOf(node, sup, "flaky")) as Pid, "kill");
      expect(await supDown).toBe("shutdown");
    });

    it("S4 restarts further apart than maxSeconds do not accumulate", async () => {
      const sup = await Supervisor.start(node, { maxRestarts: 1, maxSeconds: 0.05, children: [idle("flaky")] });
      for (let i = 0; i < 4; i++) {
        await killAndAwaitRestart(node, sup, "flaky");
        await sleep(70); // let the 50 ms window slide past this restart
      }
      expect(node.isAlive(sup)).toBe(true);
    });

    it("S4 nested supervisor that exhausts its intensity escalates to its parent, which restarts it", async () => {
      const inner = Supervisor.childSpec("inner", { maxRestarts: 1, maxSeconds: 5, children: [worker("x", log), idle("y")] });
      const outer = await Supervisor.start(node, { maxRestarts: 3, children: [worker("before", log), inner] });
      const innerPid = (await pidOf(node, outer, "inner")) as SupervisorRef;
      const innerDown = downOf(node, innerPid);
      await killAndAwaitRestart(node, innerPid, "y");
      node.exit((await pidOf(node, innerPid, "y")) as Pid, "kill");
      expect(await innerDown).toBe("shutdown");
      const newInner = await eventually(async () => {
        const p = await pidOf(node, outer, "inner");
        expect(p !== innerPid && typeof p === "string" && p !== "restarting").toBe(true);
        return p as SupervisorRef;
      });
      const ks = await kids(node, newInner);
      expect(ks.map((k) => k.id)).toEqual(["x", "y"]);
      for (const k of ks) expect(node.isAlive(k.pid as Pid)).toBe(true);
      expect(log.filter((l) => l === "start:before")).toHaveLength(1); // one_for_one: sibling untouched
    });

    it("S4 escalation climbs: a parent with no restarts left exits with shutdown too", async () => {
      const inner = Supervisor.childSpec("inner", { maxRestarts: 0, children: [idle("y")] });
      const outer = await Supervisor.start(node, { maxRestarts: 0, children: [worker("sibling", log), inner] });
      const outerDown = downOf(node, outer);
      const innerPid = (await pidOf(node, outer, "inner")) as SupervisorRef;
      node.exit((await pidOf(node, innerPid, "y")) as Pid, "kill");
      expect(await outerDown).toBe("shutdown");
      expect(log).toEqual(["start:sibling", "stop:sibling"]);
    });
  });

  describe("S5 shutdown", () => {
    it("S5 children stop in reverse start order when the supervisor stops", async () => {
      const sup = await Supervisor.start(node, { children: [worker("a", log), worker("b", log), worker("c", log)] });
      const pids = (await kids(node, sup)).map((k) => k.pid as Pid);
      await Supervisor.stop(node, sup);
      expect(log).toEqual(["start:a", "start:b", "start:c", "stop:c", "stop:b", "stop:a"]);
      for (const p of pids) expect(node.isAlive(p)).toBe(false);
    });

    it("S5 a child that does not stop within its shutdown ms is killed", async () => {
      const sup = await Supervisor.start(node, { children: [worker("slow", log, { shutdown: 50 }, 2000)] });
      const child = (await pidOf(node, sup, "slow")) as Pid;
      const down = downOf(node, child);
      const t0 = performance.now();
      await Supervisor.stop(node, sup);
      const took = performance.now() - t0;
      expect(await down).toBe("killed");
      expect(took).toBeGreaterThanOrEqual(45);
      expect(took).toBeLessThan(1000);
      expect(log).not.toContain("stop:slow");
    });

    it("S5 a child that stops within its shutdown ms exits with shutdown, not killed", async () => {
      const sup = await Supervisor.start(node, { children: [worker("polite", log, { shutdown: 1000 }, 30)] });
      const child = (await pidOf(node, sup, "polite")) as Pid;
      const down = downOf(node, child);
      const t0 = performance.now();
      await Supervisor.stop(node, sup);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
      expect(await down).toBe("shutdown");
      expect(log).toContain("stop:polite");
    });

    it("S5 brutal_kill kills the child at once, without terminate", async () => {
      const sup = await Supervisor.start(node, { children: [worker("victim", log, { shutdown: "brutal_kill" }, 2000)] });
      const child = (await pidOf(node, sup, "victim")) as Pid;
      const down = downOf(node, child);
      const t0 = performance.now();
      await Supervisor.stop(node, sup);
      expect(performance.now() - t0).toBeLessThan(500);
      expect(await down).toBe("killed");
      expect(log).not.toContain("stop:victim");
    });

    it("S5 infinity waits for a child supervisor to stop its own children", async () => {
      const inner = Supervisor.childSpec("inner", { children: [worker("deep", log, { shutdown: 5000 }, 120)] });
      expect(inner.shutdown).toBe("infinity");
      const sup = await Supervisor.start(node, { children: [inner, worker("last", log)] });
      const t0 = performance.now();
      await Supervisor.stop(node, sup);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(110);
      expect(log).toEqual(["start:deep", "start:last", "stop:last", "stop:deep"]);
    });

    it("S5 a supervisor stopped by its parent's shutdown stops its children first", async () => {
      const parent = node.process({ trapExit: true });
      const sup = await Supervisor.startLink(parent, { children: [worker("a", log), worker("b", log)] });
      const down = downOf(node, sup);
      parent.exit(sup, "shutdown");
      expect(await down).toBe("shutdown");
      expect(log).toEqual(["start:a", "start:b", "stop:b", "stop:a"]);
    });
  });

  describe("S6 early deaths", () => {
    it("S6 child that dies between spawn and monitor is still restarted", async () => {
      let starts = 0;
      const spec: ChildSpec = {
        id: "early",
        start: async (sup) => {
          starts++;
          if (starts > 1) return sup.spawnLink(() => new Promise<void>(() => {}));
          const pid = sup.spawnLink(() => Promise.reject(new Error("died at once")));
          // the child is gone before the start function returns its pid
          await until(() => !node.isAlive(pid), "the first child to die");
          return pid;
        },
      };
      const sup = await Supervisor.start(node, { children: [] });
      const first = (await Supervisor.startChild(node, sup, spec)) as Pid;
      expect(node.isAlive(first)).toBe(false);
      const now = await eventually(async () => {
        const p = await pidOf(node, sup, "early");
        expect(p !== first && typeof p === "string" && p !== "restarting").toBe(true);
        return p as Pid;
      });
      expect(node.isAlive(now)).toBe(true);
      expect(starts).toBe(2);
    });

    it("S6 a child that dies while its siblings are still starting is restarted after the supervisor's init", async () => {
      let starts = 0;
      const early: ChildSpec = {
        id: "early",
        start: (sup) => {
          starts++;
          return sup.spawnLink(starts === 1 ? (self) => self.exit("early death") : () => new Promise<void>(() => {}));
        },
      };
      const slow: ChildSpec = {
        id: "slow",
        start: async (sup) => {
          await sleep(10); // "early" dies meanwhile; its EXIT waits in the supervisor's mailbox
          return sup.spawnLink(() => new Promise<void>(() => {}));
        },
      };
      const sup = await Supervisor.start(node, { children: [early, slow] });
      await eventually(async () => {
        const p = await pidOf(node, sup, "early");
        expect(typeof p === "string" && p !== "restarting" && node.isAlive(p as Pid)).toBe(true);
      });
      expect(starts).toBe(2);
    });

    it("S6 a GenServer child that crashes right after init is restarted", async () => {
      let starts = 0;
      const Fragile: GenServerBehaviour<null, never, never, "die"> = {
        init: (_a, self) => {
          starts++;
          if (starts === 1) GenServer.cast(self, self.pid, "die");
          return null;
        },
        handleCast: () => {
          throw new Error("fragile");
        },
      };
      const sup = await Supervisor.start(node, { children: [{ id: "fragile", start: (s) => GenServer.startLink(s, Fragile, undefined) }] });
      await eventually(async () => {
        expect(starts).toBe(2);
        const p = await pidOf(node, sup, "fragile");
        expect(typeof p === "string" && node.isAlive(p as Pid)).toBe(true);
      });
    });
  });

  describe("S7 failing restarts", () => {
    /** A child whose start fails on the attempts listed in `failOn` (1-based). */
    function flaky(failOn: number[]): { spec: ChildSpec; attempts: () => number } {
      let n = 0;
      return {
        attempts: () => n,
        spec: {
          id: "flaky",
          start: (sup) => {
            n++;
            if (failOn.includes(n)) throw new Error(`start ${n} failed`);
            return sup.spawnLink(() => new Promise<void>(() => {}));
          },
        },
      };
    }

    it("S7 a restart that fails counts towards intensity and does not crash the supervisor", async () => {
      const f = flaky([2, 3]);
      const sup = await Supervisor.start(node, { maxRestarts: 3, maxSeconds: 5, children: [f.spec, worker("sibling", log)] });
      const first = (await pidOf(node, sup, "flaky")) as Pid;
      node.exit(first, "kill");
      const now = await eventually(async () => {
        const p = await pidOf(node, sup, "flaky");
        expect(typeof p === "string" && p !== "restarting" && p !== first).toBe(true);
        return p as Pid;
      });
      expect(f.attempts()).toBe(4);
      expect(node.isAlive(now)).toBe(true);
      await staysAlive(node, sup, 5);
      expect(log).toEqual(["start:sibling"]);
    });

    it("S7 each failed restart counts: one more than maxRestarts exits the supervisor with shutdown", async () => {
      const f = flaky([2, 3]);
      const sup = await Supervisor.start(node, { maxRestarts: 2, maxSeconds: 5, children: [f.spec, worker("sibling", log)] });
      const down = downOf(node, sup);
      node.exit((await pidOf(node, sup, "flaky")) as Pid, "kill");
      expect(await down).toBe("shutdown");
      expect(f.attempts()).toBe(3);
      expect(log).toEqual(["start:sibling", "stop:sibling"]);
    });

    it("S7 a child shown as restarting can be terminated, and is then not restarted behind the caller's back", async () => {
      let failing = true;
      const spec: ChildSpec = {
        id: "r",
        start: (sup) => {
          if (failing && started) throw new Error("still failing");
          return sup.spawnLink(() => new Promise<void>(() => {}));
        },
      };
      let started = false;
      const sup = await Supervisor.start(node, { maxRestarts: 1_000_000, maxSeconds: 1, children: [spec] });
      started = true;
      node.exit((await pidOf(node, sup, "r")) as Pid, "kill");
      await eventually(async () => expect(await pidOf(node, sup, "r")).toBe("restarting"));
      await Supervisor.terminateChild(node, sup, "r");
      expect(await pidOf(node, sup, "r")).toBeUndefined();
      failing = false; // a pending retry would now succeed: it must not happen
      await sleep(20);
      expect(await pidOf(node, sup, "r")).toBeUndefined();
      expect(await Supervisor.countChildren(node, sup)).toMatchObject({ specs: 1, active: 0 });
      const p = (await Supervisor.restartChild(node, sup, "r")) as Pid;
      expect(node.isAlive(p)).toBe(true);
    });

    it("S7 deleteChild of a restarting child is refused with restarting", async () => {
      let started = false;
      let failing = true;
      const spec: ChildSpec = {
        id: "r",
        start: (sup) => {
          if (failing && started) throw new Error("still failing");
          return sup.spawnLink(() => new Promise<void>(() => {}));
        },
      };
      const sup = await Supervisor.start(node, { maxRestarts: 1_000_000, maxSeconds: 1, children: [spec] });
      started = true;
      node.exit((await pidOf(node, sup, "r")) as Pid, "kill");
      await eventually(async () => expect(await pidOf(node, sup, "r")).toBe("restarting"));
      const e = await rejection(Supervisor.deleteChild(node, sup, "r"));
      expect(e.code).toBe("restarting");
      const e2 = await rejection(Supervisor.restartChild(node, sup, "r"));
      expect(e2.code).toBe("restarting");
      failing = false;
      await eventually(async () => {
        const p = await pidOf(node, sup, "r");
        expect(typeof p === "string" && p !== "restarting").toBe(true);
      });
    });
  });

  describe("S8 child management", () => {
    it("S8 terminateChild stops the child and keeps its spec; countChildren follows", async () => {
      const sup = await Supervisor.start(node, { children: [worker("a", log), worker("b", log), Supervisor.childSpec("inner", { children: [] })] });
      expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 3, active: 3, supervisors: 1, workers: 2 });
      const b = (await pidOf(node, sup, "b")) as Pid;
      const down = downOf(node, b);
      await Supervisor.terminateChild(node, sup, "b");
      expect(await down).toBe("shutdown");
      expect(log).toContain("stop:b");
      const ks = await kids(node, sup);
      expect(ks.map((k) => [k.id, k.type])).toEqual([
        ["a", "worker"],
        ["b", "worker"],
        ["inner", "supervisor"],
      ]);
      expect(ks[1]!.pid).toBeUndefined();
      expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 3, active: 2, supervisors: 1, workers: 2 });
      // terminating a stopped child is fine; an unknown id is not_found
      await Supervisor.terminateChild(node, sup, "b");
      expect((await rejection(Supervisor.terminateChild(node, sup, "zz"))).code).toBe("not_found");
    });

    it("S8 terminateChild of a temporary child removes its spec", async () => {
      const sup = await Supervisor.start(node, { children: [worker("t", log, { restart: "temporary" }), worker("p", log)] });
      await Supervisor.terminateChild(node, sup, "t");
      expect((await kids(node, sup)).map((k) => k.id)).toEqual(["p"]);
      expect((await rejection(Supervisor.restartChild(node, sup, "t"))).code).toBe("not_found");
    });

    it("S8 restartChild starts a stopped child again; refuses a running or unknown one", async () => {
      const sup = await Supervisor.start(node, { children: [worker("a", log), worker("b", log)] });
      const old = (await pidOf(node, sup, "a")) as Pid;
      expect((await rejection(Supervisor.restartChild(node, sup, "a"))).code).toBe("running");
      expect((await rejection(Supervisor.restartChild(node, sup, "zz"))).code).toBe("not_found");
      await Supervisor.terminateChild(node, sup, "a");
      const now = (await Supervisor.restartChild(node, sup, "a")) as Pid;
      expect(now).not.toBe(old);
      expect(await pidOf(node, sup, "a")).toBe(now);
      expect(await GenServer.call(node, now, "ping")).toBe("pong");
      expect((await kids(node, sup)).map((k) => k.id)).toEqual(["a", "b"]); // keeps its place
    });

    it("S8 restartChild whose start fails rejects and leaves the child stopped", async () => {
      let fail = false;
      const spec: ChildSpec = {
        id: "x",
        start: (sup) => {
          if (fail) throw new Error("cannot");
          return sup.spawnLink(() => new Promise<void>(() => {}));
        },
      };
      const sup = await Supervisor.start(node, { children: [spec] });
      await Supervisor.terminateChild(node, sup, "x");
      fail = true;
      const e = await rejection(Supervisor.restartChild(node, sup, "x"));
      expect(e.code).toBe("init_failed");
      expect(await pidOf(node, sup, "x")).toBeUndefined();
      await staysAlive(node, sup, 5);
    });

    it("S8 deleteChild removes a stopped child's spec; refuses a running or unknown one", async () => {
      const sup = await Supervisor.start(node, { children: [worker("a", log), worker("b", log)] });
      expect((await rejection(Supervisor.deleteChild(node, sup, "a"))).code).toBe("running");
      expect((await rejection(Supervisor.deleteChild(node, sup, "zz"))).code).toBe("not_found");
      await Supervisor.terminateChild(node, sup, "a");
      await Supervisor.deleteChild(node, sup, "a");
      expect((await kids(node, sup)).map((k) => k.id)).toEqual(["b"]);
      expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 1, active: 1, supervisors: 0, workers: 1 });
    });

    it("S8 startChild adds and starts a child at the end; refuses a duplicate id", async () => {
      const sup = await Supervisor.start(node, { children: [worker("a", log)] });
      const b = (await Supervisor.startChild(node, sup, worker("b", log))) as Pid;
      expect(node.isAlive(b)).toBe(true);
      expect((await kids(node, sup)).map((k) => [k.id, k.pid])).toEqual([
        ["a", await pidOf(node, sup, "a")],
        ["b", b],
      ]);
      const dup = await rejection(Supervisor.startChild(node, sup, worker("b", log)));
      expect(dup.code).toBe("already_started");
      expect(dup.reason).toEqual({ already_started: b });
      await Supervisor.terminateChild(node, sup, "b");
      const present = await rejection(Supervisor.startChild(node, sup, worker("b", log)));
      expect(present.code).toBe("badarg");
      expect(present.reason).toBe("already_present");
      expect(log).toEqual(["start:a", "start:b", "stop:b"]);
    });

    it("S8 startChild whose start fails rejects with the error and adds nothing", async () => {
      const sup = await Supervisor.start(node, { children: [] });
      const e = await rejection(
        Supervisor.startChild(node, sup, {
          id: "bad",
          start: () => {
            throw new Error("nope");
          },
        }),
      );
      expect(e.code).toBe("init_failed");
      expect((e.reason as Error).message).toBe("nope");
      expect(await kids(node, sup)).toEqual([]);
      const e2 = await rejection(Supervisor.startChild(node, sup, { id: "bad2", start: (s) => GenServer.startLink(s, { init: () => Promise.reject(new Error("bad init")) }, undefined) }));
      expect(e2).toBeInstanceOf(CinderError);
      expect(await kids(node, sup)).toEqual([]);
    });

    it("S8 a child whose start returns undefined is kept (not running) unless temporary", async () => {
      const sup = await Supervisor.start(node, { children: [] });
      expect(await Supervisor.startChild(node, sup, { id: "ignored", start: () => undefined })).toBeUndefined();
      expect(await Supervisor.startChild(node, sup, { id: "gone", restart: "temporary", start: () => undefined })).toBeUndefined();
      expect(await kids(node, sup)).toEqual([{ id: "ignored", pid: undefined, type: "worker" }]);
    });

    it("S8 a stray message sent to a supervisor is ignored: no crash, children untouched", async () => {
      const sup = await Supervisor.start(node, { children: [worker("a", log)] });
      const a = await pidOf(node, sup, "a");
      for (const m of ["hello", 42, null, { type: "EXIT", from: "<nobody>", reason: "x" }, { $sup: "retry", ids: ["zz"] }, [1, 2]]) node.send(sup, m as never);
      expect(await pidOf(node, sup, "a")).toBe(a);
      await staysAlive(node, sup, 5);
      expect(log).toEqual(["start:a"]);
    });
  });
});
