/**
 * Conformance X1: node shutdown. node.stop() stops the root tree in reverse start order within
 * the shutdown budgets, and afterwards nothing keeps the OS process alive (checked for real in
 * a child process).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GenServer, Supervisor, silentLogger, type ChildSpec, type GenServerBehaviour, type Pid } from "@cinder/runtime";
import { downOf, expectMsg } from "./support/deadline.js";
import { placements } from "./support/placements.js";

interface WArgs {
  id: string;
  log: string[];
  terminateMs: number;
}
const Worker: GenServerBehaviour<WArgs, "ping", "pong", never, unknown, WArgs> = {
  init: (a) => a,
  handleCall: (_r, _f, st) => ({ reply: "pong", state: st }),
  async terminate(_reason, st) {
    if (st.terminateMs === Infinity) await new Promise(() => {});
    if (st.terminateMs > 0) await new Promise((r) => setTimeout(r, st.terminateMs));
    st.log.push(st.id);
  },
};
const worker = (id: string, log: string[], extra: Partial<ChildSpec> = {}, terminateMs = 0): ChildSpec => ({
  id,
  start: (sup) => GenServer.startLink(sup, Worker, { id, log, terminateMs }, { trapExit: true }),
  ...extra,
});

describe.each(placements)("node shutdown: $name", (pl) => {
  it("X1 node.stop() stops the root tree in reverse start order", async () => {
    const node = await pl.startNode({ logger: silentLogger });
    const log: string[] = [];
    await node.startChild(worker("a", log));
    await node.startChild(Supervisor.childSpec("tree", { children: [worker("tree.1", log), worker("tree.2", log)] }));
    await node.startChild(worker("b", log));
    const root = (await Supervisor.whichChildren(node, node.root)).map((c) => c.pid as Pid);
    await node.stop();
    expect(log).toEqual(["b", "tree.2", "tree.1", "a"]);
    for (const p of root) expect(node.isAlive(p)).toBe(false);
    expect(node.isAlive(node.root)).toBe(false);
  });

  it("X1 node.stop() keeps to the shutdown budgets: an overrunning child is killed after its ms", async () => {
    const node = await pl.startNode({ logger: silentLogger });
    const log: string[] = [];
    await node.startChild(worker("first", log));
    const stubborn = (await node.startChild(worker("stubborn", log, { shutdown: 80 }, Infinity))) as Pid;
    await node.startChild(worker("slowish", log, { shutdown: 2000 }, 30));
    const down = downOf(node, stubborn);
    const t0 = performance.now();
    await node.stop();
    const took = performance.now() - t0;
    expect(await down).toBe("killed");
    expect(log).toEqual(["slowish", "first"]); // stubborn never finished its terminate
    expect(took).toBeGreaterThanOrEqual(100); // 30 ms + 80 ms budget, one after the other
    expect(took).toBeLessThan(1500);
  });

  it("X1 after stop no process is left and no timer is armed", async () => {
    const node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const timers = [node.sendAfter(me.pid, "t1", 60_000), me.sendAfter(me.pid, "t2", 60_000)];
    const waiting = node.spawn(async (self) => {
      await self.receive({ timeout: 60_000 });
    });
    await node.startChild(worker("w", []));
    await node.stop();
    expect(node.main.stats().processes).toBe(0);
    expect(node.isAlive(waiting)).toBe(false);
    for (const t of timers) expect(node.cancelTimer(t)).toBe(false); // already cleared by stop
    expect(node.registered()).toEqual([]);
  });

  it("X1 a call or a start pending when the node stops is rejected, not left hanging", async () => {
    const node = await pl.startNode({ logger: silentLogger });
    const Silent: GenServerBehaviour<null, "hello", never> = { init: () => null, handleCall: (_r, _f, st) => ({ state: st }) };
    const silent = await GenServer.start(node, Silent, undefined); // outside the root tree
    const call = GenServer.call(node, silent, "hello", 60_000).then(
      () => "resolved",
      (e: { code?: string }) => e.code,
    );
    const start = GenServer.start(node, { init: () => new Promise<null>(() => {}) }, undefined, { timeout: 60_000 }).then(
      () => "resolved",
      (e: { code?: string }) => e.code,
    );
    await node.stop();
    const settled = (p: Promise<unknown>) => Promise.race([p, new Promise((r) => setTimeout(() => r("still pending"), 200))]);
    expect(await settled(call)).toBe("shutdown");
    expect(await settled(start)).toBe("init_failed");
  });

  it("X1 a second stop() resolves only once the node has stopped", async () => {
    const node = await pl.startNode({ logger: silentLogger });
    const log: string[] = [];
    await node.startChild(worker("slow", log, {}, 50));
    const first = node.stop();
    await node.stop();
    expect(log).toEqual(["slow"]);
    expect(node.stopping).toBe(true);
    await first;
  });

  it("X1 after stop a message to an old pid is dropped without error", async () => {
    const node = await pl.startNode({ logger: silentLogger });
    const me = node.process();
    const p = await pl.spawnAt(node, "forward", { to: me.pid });
    node.send(p, "before");
    expect(await expectMsg(me)).toBe("before");
    await node.stop();
    expect(() => node.send(p, "after")).not.toThrow();
  });
});

describe("X1 in a real OS process", () => {
  it("X1 after node.stop() nothing keeps the process alive: the child process exits by itself", async () => {
    const root = fileURLToPath(new URL("../../..", import.meta.url));
    const script = fileURLToPath(new URL("./support/x1_child.ts", import.meta.url));
    const tsx = fileURLToPath(new URL("../../../node_modules/.bin/tsx", import.meta.url));
    const child = spawn(tsx, [script], { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CINDER_LOG: "" } });
    let out = "";
    let err = "";
    let reportedAt = 0;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (reportedAt === 0 && out.includes("\n")) reportedAt = performance.now();
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const DEADLINE = 15_000; // tsx start-up included; every armed timer in the script is 60 s
    const code = await new Promise<number | string>((resolve) => {
      const t = setTimeout(() => {
        child.kill("SIGKILL");
        resolve("still running at the deadline");
      }, DEADLINE);
      child.on("exit", (c, sig) => {
        clearTimeout(t);
        resolve(c ?? String(sig));
      });
    });
    const exitedAt = performance.now();
    expect(code, `stdout: ${out}\nstderr: ${err}`).toBe(0);
    const report = JSON.parse(out.trim().split("\n").pop()!) as { order: string[]; stopMs: number; processes: number; call: string; init: string; handles: string[] };
    expect(report.order).toEqual(["last", "tree.b", "tree.a", "first"]); // reverse start order; "stubborn" was killed
    expect(report.stopMs).toBeGreaterThanOrEqual(140); // the stubborn child's 150 ms budget
    expect(report.stopMs).toBeLessThan(3000);
    expect(report.processes).toBe(0);
    expect(report.call).toBe("rejected:shutdown");
    expect(report.init).toBe("rejected:init_failed");
    expect(report.handles).toEqual([]); // no timer armed after stop
    expect(exitedAt - reportedAt).toBeLessThan(2000); // it exits right after stop, on its own
  }, 30_000);
});
