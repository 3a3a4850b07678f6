/**
 * Actors across worker threads: cross-thread links and monitors, thread death (`noconnection`),
 * restart under a new incarnation, the watchdog, supervisors with children on other
 * schedulers, dirty work, stats.
 */
import { describe, it, expect, afterEach } from "vitest";
import {
  startNode,
  spawnOn,
  startGenServerOn,
  GenServer,
  Supervisor,
  Dirty,
  silentLogger,
  type CinderNode,
  type ExitMessage,
  type DownMessage,
  type BlockedReport,
  Timeout,
} from "@cinder/runtime";

const mod = new URL("./fixtures/actors.ts", import.meta.url);
const ref = (e: string) => ({ module: mod, export: e });
let node: CinderNode | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

async function until(f: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("worker schedulers", () => {
  it("FIFO per sender-receiver pair holds across threads (10k messages, two senders)", async () => {
    node = await startNode({ schedulers: 3, logger: silentLogger });
    const me = node.process();
    const a = await spawnOn(node, 1, ref("sender"), [me.pid, 5000]);
    const b = await spawnOn(node, 2, ref("sender"), [me.pid, 5000]);
    const next = new Map<string, number>([[a.pid, 0], [b.pid, 0]]);
    for (let i = 0; i < 10_000; i++) {
      const m = (await me.receive()) as { from: string; seq: number };
      expect(m.seq).toBe(next.get(m.from));
      next.set(m.from, m.seq + 1);
    }
    expect(await me.receive({ timeout: 20 })).toBe(Timeout);
  });

  it("a crash on a worker reaches a linked trapping process on the main thread as EXIT", async () => {
    node = await startNode({ schedulers: 2, logger: silentLogger });
    const me = node.process();
    me.trapExit(true);
    const { pid } = await spawnOn(node, 1, ref("worker"), [], { link: me });
    me.send(pid, { op: "boom" });
    const m = (await me.receive({ match: (x) => (x as ExitMessage).type === "EXIT" })) as ExitMessage;
    expect(m.from).toBe(pid);
    expect((m.reason as Error).message).toBe("boom");
  });

  it("child spawn-linked on another scheduler that dies at once still signals the parent", async () => {
    node = await startNode({ schedulers: 2, logger: silentLogger });
    const me = node.process();
    me.trapExit(true);
    // the factory's process exits immediately with reason "early"
    const data = "data:text/javascript,export const quick = () => (self) => { self.exit('early'); };";
    const { pid } = await spawnOn(node, 1, { module: data, export: "quick" }, [], { link: me });
    const m = (await me.receive({ match: (x) => (x as ExitMessage).type === "EXIT", timeout: 5000 })) as ExitMessage;
    expect(m).toMatchObject({ type: "EXIT", from: pid, reason: "early" });
  });

  it("M1/M4 monitors across threads: one DOWN per monitor", async () => {
    node = await startNode({ schedulers: 2, logger: silentLogger });
    const me = node.process();
    const { pid } = await spawnOn(node, 1, ref("worker"), []);
    const r1 = me.monitor(pid);
    const r2 = me.monitor(pid);
    me.send(pid, { op: "exit", reason: "bye" });
    const downs: DownMessage[] = [];
    for (let i = 0; i < 2; i++) downs.push((await me.receive()) as DownMessage);
    expect(new Set(downs.map((d) => d.ref))).toEqual(new Set([r1, r2]));
    expect(downs.every((d) => d.reason === "bye" && d.pid === pid)).toBe(true);
    expect(await me.receive({ timeout: 30 })).toBe(Timeout);
  });

  it("M5 a killed thread: links and monitors fire once with noconnection; old pids never alias new ones", async () => {
    node = await startNode({ schedulers: 2, logger: silentLogger });
    const me = node.process();
    me.trapExit(true);
    const { pid } = await spawnOn(node, 1, ref("worker"), [], { link: me });
    const mref = me.monitor(pid);
    await node.killScheduler(1);
    const got: unknown[] = [await me.receive({ timeout: 5000 }), await me.receive({ timeout: 5000 })];
    expect(got).toContainEqual({ type: "EXIT", from: pid, reason: "noconnection" });
    expect(got).toContainEqual({ type: "DOWN", ref: mref, pid, reason: "noconnection" });
    expect(await me.receive({ timeout: 50 })).toBe(Timeout);
    await node.schedulerReady(1);
    const again = await spawnOn(node, 1, ref("worker"), []);
    expect(again.pid).not.toBe(pid);
    expect(again.pid.split(".")[1]).not.toBe(pid.split(".")[1]); // new incarnation letter
    // the old pid is dead for good: monitor says noproc, send is dropped silently
    const r = me.monitor(pid);
    expect(await me.receive({ timeout: 5000 })).toEqual({ type: "DOWN", ref: r, pid, reason: "noproc" });
    me.send(pid, { op: "echo", to: me.pid });
  });

  it("an uncaught error outside any actor kills only its thread; actors elsewhere go on", async () => {
    node = await startNode({ schedulers: 2, logger: silentLogger });
    const me = node.process();
    const { pid } = await spawnOn(node, 1, ref("bomb"), []);
    const mref = me.monitor(pid);
    const survivor = node.spawn({ handle: (m: { to: string }, self) => self.send(m.to, "alive") });
    me.send(pid, "throw-outside");
    expect(await me.receive({ timeout: 5000 })).toEqual({ type: "DOWN", ref: mref, pid, reason: "noconnection" });
    me.send(survivor, { to: me.pid });
    expect(await me.receive({ timeout: 1000 })).toBe("alive");
  });

  it("a thread that exceeds its resourceLimits dies with noconnection for its actors", async () => {
    node = await startNode({ schedulers: 2, logger: silentLogger, workers: { resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } } });
    const me = node.process();
    const { pid } = await spawnOn(node, 1, ref("bomb"), []);
    const mref = me.monitor(pid);
    me.send(pid, "hog");
    expect(await me.receive({ timeout: 20_000 })).toEqual({ type: "DOWN", ref: mref, pid, reason: "noconnection" });
  });

  it("the watchdog reports a blocked thread with the pid of the spinning actor", async () => {
    const reports: BlockedReport[] = [];
    node = await startNode({ schedulers: 2, logger: silentLogger, workers: { watchdog: { blockedAfterMs: 600, heartbeatMs: 20, action: "restart" }, onBlocked: (r) => reports.push(r) } });
    await spawnOn(node, 1, ref("worker"), []); // loads the fixture module (tsx) before the clock matters
    const { pid } = await spawnOn(node, 1, ref("spinner"), []);
    const me = node.process();
    const mref = me.monitor(pid);
    node.send(pid, "spin");
    await until(() => reports.length > 0);
    expect(reports[0]).toMatchObject({ scheduler: 1, pid });
    // action "restart": the thread is replaced, its actors are dead with noconnection
    expect(await me.receive({ timeout: 5000 })).toEqual({ type: "DOWN", ref: mref, pid, reason: "noconnection" });
  });

  it("N2 whereis is synchronous on every scheduler and follows register and exit", async () => {
    node = await startNode({ schedulers: 3, logger: silentLogger });
    const me = node.process();
    const reporter = await spawnOn(node, 2, ref("whereisReporter"), []);
    const named = await spawnOn(node, 1, ref("namer"), ["svc", me.pid]);
    expect(await me.receive()).toEqual({ registered: "svc", pid: named.pid });
    expect(node.whereis("svc")).toBe(named.pid);
    await until(async () => {
      me.send(reporter.pid, { name: "svc", to: me.pid });
      return ((await me.receive()) as { pid: string | null }).pid === named.pid;
    });
    // a second registration of the same name from another thread fails
    await spawnOn(node, 2, ref("namer"), ["svc", me.pid]);
    expect(await me.receive()).toMatchObject({ failed: "svc" });
    node.exit(named.pid, "kill");
    await until(() => node!.whereis("svc") === undefined);
    await until(async () => {
      me.send(reporter.pid, { name: "svc", to: me.pid });
      return ((await me.receive()) as { pid: string | null }).pid === null;
    });
  });

  it("supervisor on the main thread restarts a GenServer child on a worker after a crash and after its thread dies", async () => {
    node = await startNode({ schedulers: 2, logger: silentLogger });
    const sup = await Supervisor.start(node, {
      strategy: "one_for_one",
      maxRestarts: 10,
      children: [{ id: "ctr", start: (s) => startGenServerOn(s, 1, ref("Counter"), 0, { link: s, name: "ctr" }) }],
    });
    expect(await GenServer.call(node, "ctr", "inc")).toBe(1);
    const first = node.whereis("ctr")!;
    await expect(GenServer.call(node, "ctr", "boom")).rejects.toThrow();
    await until(() => node!.whereis("ctr") !== undefined && node!.whereis("ctr") !== first);
    expect(await GenServer.call(node, "ctr", "get")).toBe(0);
    const second = node.whereis("ctr")!;
    await node.killScheduler(1);
    await until(() => node!.whereis("ctr") !== undefined && node!.whereis("ctr") !== second);
    expect(await GenServer.call(node, "ctr", "inc")).toBe(1);
    const kids = await Supervisor.whichChildren(node, sup);
    expect(kids[0]!.pid).toBe(node.whereis("ctr"));
  });

  it("K2 dirty work runs off the schedulers: the main scheduler stays responsive; a failing job fails alone", async () => {
    node = await startNode({ schedulers: 1, logger: silentLogger });
    const job = Dirty.run<number>(node, ref("fib"), [32]);
    const bad = Dirty.run(node, ref("failing"), []).then(
      () => "resolved",
      (e: Error) => e.message,
    );
    let settled = false;
    void job.then(() => (settled = true));
    // ping-pong on the main scheduler while the job runs
    const echo = node.spawn({ handle: (m: { to: string; n: number }, self) => self.send(m.to, m.n) });
    const me = node.process();
    let rounds = 0;
    while (!settled && rounds < 1_000_000) {
      me.send(echo, { to: me.pid, n: rounds });
      expect(await me.receive()).toBe(rounds);
      rounds++;
      if (rounds % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(await job).toBe(2178309);
    expect(await bad).toContain("dirty failure");
    expect(rounds).toBeGreaterThan(100); // the scheduler kept answering while fib(32) ran
    expect(await Dirty.run(node, ref("fib"), [10])).toBe(55);
  });

  it("stats: per scheduler processes, messages in/out and mailbox high-water", async () => {
    node = await startNode({ schedulers: 2, logger: silentLogger });
    const { pid } = await spawnOn(node, 1, ref("spinner"), []);
    for (let i = 0; i < 10; i++) node.send(pid, "not-spin");
    const me = node.process();
    await until(async () => {
      const st = await node!.stats();
      return st.length === 2 && st[1]!.messagesIn >= 10;
    });
    const st = await node.stats();
    expect(st[0]!.index).toBe(0);
    expect(st[1]!.index).toBe(1);
    expect(st[1]!.processes).toBeGreaterThanOrEqual(1);
    expect(st[0]!.messagesOut).toBeGreaterThanOrEqual(10);
    expect(st[1]!.mailboxes!.some((m) => m.pid === pid && m.highWater >= 1)).toBe(true);
    me.exit("normal");
  });
});
