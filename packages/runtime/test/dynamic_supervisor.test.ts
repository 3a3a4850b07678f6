import { describe, it, expect, afterEach } from "vitest";
import {
  startNode,
  DynamicSupervisor,
  Supervisor,
  GenServer,
  MaxChildrenError,
  CinderError,
  silentLogger,
  type CinderNode,
  type GenServerBehaviour,
  type DynamicChildSpec,
  type DownMessage,
  type Pid,
  type Process,
  type Restart,
} from "@cinder/runtime";

async function until(cond: () => boolean | Promise<boolean>, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}

let node: CinderNode;
afterEach(async () => {
  await node?.stop();
});

type WorkerCall = "ping" | "crash" | "quit";
const Worker: GenServerBehaviour<null, WorkerCall, string> = {
  init: () => null,
  handleCall: (req, _from, s) => {
    if (req === "crash") throw new Error("crash on request");
    if (req === "quit") return { reply: "bye", state: s, stop: "normal" };
    return { reply: "pong", state: s };
  },
};

const worker = (restart?: Restart, extra?: Partial<DynamicChildSpec>): DynamicChildSpec => ({
  start: (sup) => GenServer.startLink(sup, Worker, undefined),
  ...(restart ? { restart } : {}),
  ...extra,
});

function isDown(m: unknown): m is DownMessage {
  return typeof m === "object" && m !== null && (m as DownMessage).type === "DOWN";
}

describe("DynamicSupervisor", () => {
  it("S9 children started at run time are supervised and listed", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node);
    expect(await DynamicSupervisor.whichChildren(node, sup)).toEqual([]);
    const a = await DynamicSupervisor.startChild(node, sup, worker());
    const b = await DynamicSupervisor.startChild(node, sup, worker("temporary", { id: "b", type: "worker" }));
    expect(await GenServer.call(node, a!, "ping")).toBe("pong");
    expect(await DynamicSupervisor.whichChildren(node, sup)).toEqual([
      { id: undefined, pid: a, type: "worker" },
      { id: "b", pid: b, type: "worker" },
    ]);
    expect(await DynamicSupervisor.countChildren(node, sup)).toEqual({ specs: 2, active: 2, supervisors: 0, workers: 2 });
  });

  it("S9 maxChildren is enforced with a typed max_children error, and a freed slot can be reused", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node, { maxChildren: 2 });
    const a = await DynamicSupervisor.startChild(node, sup, worker());
    await DynamicSupervisor.startChild(node, sup, worker());
    const third = DynamicSupervisor.startChild(node, sup, worker());
    await expect(third).rejects.toBeInstanceOf(MaxChildrenError);
    await expect(third).rejects.toMatchObject({ code: "max_children" });
    expect((await DynamicSupervisor.countChildren(node, sup)).specs).toBe(2);
    await DynamicSupervisor.terminateChild(node, sup, a!);
    expect(node.isAlive(a!)).toBe(false);
    expect(await DynamicSupervisor.startChild(node, sup, worker())).toBeDefined();
  });

  // S9: each child's restart type is honoured (table-driven)
  const cases: Array<{ restart: Restart; exit: "crash" | "quit"; restarted: boolean }> = [
    { restart: "permanent", exit: "crash", restarted: true },
    { restart: "permanent", exit: "quit", restarted: true },
    { restart: "transient", exit: "crash", restarted: true },
    { restart: "transient", exit: "quit", restarted: false },
    { restart: "temporary", exit: "crash", restarted: false },
    { restart: "temporary", exit: "quit", restarted: false },
  ];
  for (const c of cases) {
    it(`S9 restart type ${c.restart}: after ${c.exit === "crash" ? "a crash" : "a normal exit"} the child is ${c.restarted ? "restarted" : "not restarted and forgotten"}`, async () => {
      node = await startNode({ logger: silentLogger });
      const sup = await DynamicSupervisor.start(node);
      const pid = (await DynamicSupervisor.startChild(node, sup, worker(c.restart)))!;
      const me = node.process();
      me.monitor(pid);
      await GenServer.call(node, pid, c.exit).catch(() => undefined);
      expect(isDown(await me.receive({ timeout: 1000 }))).toBe(true);
      if (c.restarted) {
        expect(
          await until(async () => {
            const kids = await DynamicSupervisor.whichChildren(node, sup);
            return kids.length === 1 && typeof kids[0]!.pid === "string" && kids[0]!.pid !== pid && kids[0]!.pid !== "restarting";
          }),
        ).toBe(true);
        const [kid] = await DynamicSupervisor.whichChildren(node, sup);
        expect(await GenServer.call(node, kid!.pid as Pid, "ping")).toBe("pong");
      } else {
        expect(await until(async () => (await DynamicSupervisor.countChildren(node, sup)).specs === 0)).toBe(true);
      }
      expect(node.isAlive(sup)).toBe(true);
    });
  }

  it("S9 more than maxRestarts in maxSeconds stops every child and exits the supervisor with shutdown", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node, { maxRestarts: 2, maxSeconds: 60 });
    const bystander = (await DynamicSupervisor.startChild(node, sup, worker()))!;
    const me = node.process();
    const supMon = me.monitor(sup);
    const byMon = me.monitor(bystander);
    let pid = (await DynamicSupervisor.startChild(node, sup, worker()))!;
    for (let i = 0; i < 3; i++) {
      await GenServer.call(node, pid, "crash").catch(() => undefined);
      if (i === 2) break;
      expect(
        await until(async () => {
          const kids = await DynamicSupervisor.whichChildren(node, sup);
          const next = kids.find((k) => k.pid !== bystander && k.pid !== pid && k.pid !== "restarting");
          if (next) pid = next.pid as Pid;
          return next !== undefined;
        }),
      ).toBe(true);
    }
    const downs = new Map<string, unknown>();
    while (downs.size < 2) {
      const m = await me.receive({ match: isDown, timeout: 2000 });
      if (typeof m === "symbol") break;
      downs.set(m.ref, m.reason);
    }
    expect(downs.get(supMon)).toBe("shutdown");
    expect(downs.get(byMon)).toBe("shutdown");
  });

  it("S9 a restart that fails counts towards intensity and is retried; the supervisor does not crash on it", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node, { maxRestarts: 10, maxSeconds: 60 });
    let starts = 0;
    const flaky: DynamicChildSpec = {
      start: (s) => {
        starts++;
        // 1st start ok, 2nd and 3rd fail, then ok again
        if (starts === 2 || starts === 3) throw new Error("cannot start now");
        return GenServer.startLink(s, Worker, undefined);
      },
    };
    const pid = (await DynamicSupervisor.startChild(node, sup, flaky))!;
    await GenServer.call(node, pid, "crash").catch(() => undefined);
    expect(
      await until(async () => {
        const kids = await DynamicSupervisor.whichChildren(node, sup);
        return kids.length === 1 && kids[0]!.pid !== pid && kids[0]!.pid !== "restarting";
      }),
    ).toBe(true);
    expect(starts).toBe(4);
    expect(node.isAlive(sup)).toBe(true);
  });

  it("S9 a child that dies right after its start returns is still restarted", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node);
    let starts = 0;
    const me = node.process();
    const spec: DynamicChildSpec = {
      start: (s: Process<any>) => {
        starts++;
        const first = starts === 1;
        return s.spawnLink(async (self) => {
          if (first) throw new Error("dies at once");
          me.send(me.pid, { alive: self.pid });
          await self.receive();
        });
      },
    };
    await DynamicSupervisor.startChild(node, sup, spec);
    const m = (await me.receive({ timeout: 2000 })) as { alive: Pid };
    expect(typeof m.alive).toBe("string");
    expect(starts).toBe(2);
    const kids = await DynamicSupervisor.whichChildren(node, sup);
    expect(kids.map((k) => k.pid)).toEqual([m.alive]);
  });

  it("startChild rejects with the start's error and adds nothing; a start that ignores adds nothing", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node);
    const failing = DynamicSupervisor.startChild(node, sup, {
      start: (s) => GenServer.startLink(s, { init: () => { throw new Error("bad init"); } }, undefined),
    });
    await expect(failing).rejects.toMatchObject({ code: "init_failed" });
    expect(await DynamicSupervisor.startChild(node, sup, { start: () => undefined })).toBeUndefined();
    expect(await DynamicSupervisor.countChildren(node, sup)).toEqual({ specs: 0, active: 0, supervisors: 0, workers: 0 });
    expect(node.isAlive(sup)).toBe(true);
  });

  it("terminateChild stops a child with shutdown, is not restarted, and rejects not_found for a stranger", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node);
    const me = node.process();
    const pid = (await DynamicSupervisor.startChild(node, sup, worker("permanent")))!;
    const ref = me.monitor(pid);
    await DynamicSupervisor.terminateChild(node, sup, pid);
    const down = await me.receive({ match: isDown, timeout: 1000 });
    expect(down).toMatchObject({ ref, reason: "shutdown" });
    expect(await DynamicSupervisor.countChildren(node, sup)).toMatchObject({ specs: 0, active: 0 });
    const err = await DynamicSupervisor.terminateChild(node, sup, me.pid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CinderError);
    expect((err as CinderError).code).toBe("not_found");
  });

  it("a child that ignores shutdown is killed after its budget; brutal_kill kills at once", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node);
    const me = node.process();
    const stubborn = (await DynamicSupervisor.startChild(node, sup, {
      shutdown: 30,
      start: (s) => s.spawnLink(async (self) => {
        self.trapExit(true);
        for (;;) await self.receive();
      }),
    }))!;
    const brutal = (await DynamicSupervisor.startChild(node, sup, { shutdown: "brutal_kill", start: (s) => s.spawnLink(async (self) => void (await self.receive())) }))!;
    const r1 = me.monitor(stubborn);
    const r2 = me.monitor(brutal);
    await DynamicSupervisor.terminateChild(node, sup, stubborn);
    await DynamicSupervisor.terminateChild(node, sup, brutal);
    const downs = [await me.receive({ match: isDown, timeout: 1000 }), await me.receive({ match: isDown, timeout: 1000 })] as DownMessage[];
    expect(downs.find((d) => d.ref === r1)?.reason).toBe("killed");
    expect(downs.find((d) => d.ref === r2)?.reason).toBe("killed");
  });

  it("stopping the supervisor stops all its children", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await DynamicSupervisor.start(node, {}, { name: "dyn" });
    const pids: Pid[] = [];
    for (let i = 0; i < 20; i++) pids.push((await DynamicSupervisor.startChild(node, "dyn", worker()))!);
    await DynamicSupervisor.stop(node, "dyn");
    expect(node.isAlive(sup)).toBe(false);
    for (const p of pids) expect(node.isAlive(p)).toBe(false);
    expect(node.whereis("dyn")).toBeUndefined();
  });

  it("nested under a Supervisor through childSpec, it restarts empty after a crash", async () => {
    node = await startNode({ logger: silentLogger });
    await Supervisor.start(node, { children: [DynamicSupervisor.childSpec("dyn", { maxChildren: 5 }, { name: "dyn" })] });
    const first = node.whereis("dyn")!;
    const child = (await DynamicSupervisor.startChild(node, "dyn", worker()))!;
    node.exit(first, "kill");
    expect(await until(() => node.whereis("dyn") !== undefined && node.whereis("dyn") !== first)).toBe(true);
    expect(node.isAlive(child)).toBe(false);
    expect(await DynamicSupervisor.countChildren(node, "dyn")).toMatchObject({ specs: 0 });
  });
});
