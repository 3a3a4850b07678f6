import { describe, it, expect, afterEach } from "vitest";
import {
  startNode,
  Task,
  DynamicSupervisor,
  GenServer,
  ExitError,
  TimeoutError,
  MaxChildrenError,
  silentLogger,
  type CinderNode,
  type DownMessage,
  type ExitMessage,
  type GenServerBehaviour,
  type Pid,
  type Process,
} from "@cinder/runtime";

let node: CinderNode;
afterEach(async () => {
  await node?.stop();
});

function isDown(m: unknown): m is DownMessage {
  return typeof m === "object" && m !== null && (m as DownMessage).type === "DOWN";
}
function isExit(m: unknown): m is ExitMessage {
  return typeof m === "object" && m !== null && (m as ExitMessage).type === "EXIT";
}

/** A promise resolved from outside (lets a test hold a task until it says so). */
function gate<T = void>() {
  let open!: (v: T) => void;
  const p = new Promise<T>((r) => (open = r));
  return { p, open };
}

describe("Task", () => {
  it("K1 Task.async/await returns the value, computed in a process of its own", async () => {
    node = await startNode({ logger: silentLogger });
    const caller = node.process();
    let ranIn: Pid | undefined;
    const t = Task.async(caller, async (self) => {
      ranIn = self.pid;
      await new Promise((r) => setTimeout(r, 5));
      return 42;
    });
    expect(t.owner).toBe(caller.pid);
    expect(await Task.await(t)).toBe(42);
    expect(ranIn).toBe(t.pid);
    expect(ranIn).not.toBe(caller.pid);

    // from a node, and with a synchronous function
    const t2 = Task.async(node, () => "sync");
    expect(t2.owner).toBeUndefined();
    expect(await Task.await(t2)).toBe("sync");
    // a successful task leaves no stray message in the caller's mailbox
    expect(caller.mailboxLength).toBe(0);
  });

  it("K1 Task.await works from inside a GenServer handler", async () => {
    node = await startNode({ logger: silentLogger });
    const S: GenServerBehaviour<null, number, number> = {
      init: () => null,
      async handleCall(n, _from, s, self) {
        const t = Task.async(self, () => n * 2);
        return { reply: await Task.await(t), state: s };
      },
    };
    const srv = await GenServer.start(node, S, undefined);
    expect(await GenServer.call(node, srv, 21)).toBe(42);
  });

  it("K1 a throwing task exits its linked caller with the task's reason", async () => {
    node = await startNode({ logger: silentLogger });
    const me = node.process();
    let taskPid: Pid | undefined;
    const caller = node.spawn(async (self) => {
      const t = Task.async(self, () => {
        throw new Error("task failed");
      });
      taskPid = t.pid;
      await Task.await(t);
      me.send(me.pid, "caller survived"); // must not happen
    });
    const ref = me.monitor(caller);
    const m = await me.receive({ timeout: 2000 });
    expect(isDown(m)).toBe(true);
    const down = m as DownMessage;
    expect(down.ref).toBe(ref);
    expect(down.reason).toBeInstanceOf(Error);
    expect((down.reason as Error).message).toBe("task failed");
    expect(node.isAlive(taskPid!)).toBe(false);
    expect(await me.receive({ timeout: 20 })).toEqual(expect.any(Symbol)); // no "caller survived"
  });

  it("K1 a trapping caller survives a throwing task: await rejects with ExitError and an EXIT message arrives", async () => {
    node = await startNode({ logger: silentLogger });
    const caller = node.process();
    caller.trapExit(true);
    const boom = new Error("task failed");
    const t = Task.async(caller, () => {
      throw boom;
    });
    const err = await Task.await(t).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitError);
    expect((err as ExitError).reason).toBe(boom);
    expect(caller.alive).toBe(true);
    const exit = await caller.receive({ match: isExit, timeout: 1000 });
    expect(exit).toEqual({ type: "EXIT", from: t.pid, reason: boom });
  });

  it("K1 await past its timeout rejects with TimeoutError, stops the linked task and leaves the caller alive", async () => {
    node = await startNode({ logger: silentLogger });
    const caller = node.process();
    const t = Task.async(caller, () => new Promise<never>(() => {}));
    const watcher = node.process();
    const ref = watcher.monitor(t.pid);
    const err = await Task.await(t, 20).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).code).toBe("timeout");
    const down = await watcher.receive({ match: isDown, timeout: 1000 });
    expect(down).toMatchObject({ ref, reason: "killed" });
    expect(caller.alive).toBe(true);
  });

  it("Task.yield returns undefined while the task runs and its result once it is done", async () => {
    node = await startNode({ logger: silentLogger });
    const g = gate<string>();
    const t = Task.async(node, () => g.p);
    expect(await Task.yield(t, 5)).toBeUndefined();
    expect(node.isAlive(t.pid)).toBe(true);
    g.open("done");
    expect(await Task.yield(t, 1000)).toEqual({ ok: "done" });
    const crash = Task.async(node, () => {
      throw new Error("x");
    });
    const r = await Task.yield(crash, 1000);
    expect(r && "exit" in r && r.exit).toBeInstanceOf(Error);
  });

  it("Task.shutdown stops a running task without hurting its owner, and returns a result that came first", async () => {
    node = await startNode({ logger: silentLogger });
    const caller = node.process();
    const t = Task.async(caller, () => new Promise<never>(() => {}));
    expect(await Task.shutdown(t, 100)).toBeUndefined();
    expect(node.isAlive(t.pid)).toBe(false);
    expect(caller.alive).toBe(true);
    const done = Task.async(caller, () => 7);
    await Task.yield(done);
    expect(await Task.shutdown(done)).toEqual({ ok: 7 });
  });

  it("Task.start runs a function in an unlinked process", async () => {
    node = await startNode({ logger: silentLogger });
    const me = node.process();
    const pid = Task.start(me, (self) => me.send(me.pid, self.pid));
    expect(await me.receive({ timeout: 1000 })).toBe(pid);
    const crash = Task.start(me, () => {
      throw new Error("nobody cares");
    });
    const ref = me.monitor(crash);
    await me.receive({ match: (m) => isDown(m) && m.ref === ref, timeout: 1000 });
    expect(me.alive).toBe(true);
  });
});

describe("Task.Supervisor", () => {
  it("K1 asyncNolink: a crashing task fails only its await; the caller and the supervisor live", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await Task.Supervisor.start(node);
    const caller = node.process();
    const t = await Task.Supervisor.asyncNolink(caller, sup, () => {
      throw new Error("nolink crash");
    });
    const err = await Task.await(t).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitError);
    expect(((err as ExitError).reason as Error).message).toBe("nolink crash");
    expect(caller.alive).toBe(true);
    expect(caller.mailboxLength).toBe(0);
    expect(node.isAlive(sup)).toBe(true);
    const ok = await Task.Supervisor.asyncNolink(node, sup, async () => "fine");
    expect(await Task.await(ok)).toBe("fine");
    expect((await DynamicSupervisor.countChildren(node, sup)).specs).toBe(0);
  });

  it("K1 Task.Supervisor.async links the task to its caller: a crash exits the caller", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await Task.Supervisor.start(node);
    const me = node.process();
    const g = gate();
    const caller = node.spawn(async (self: Process<unknown>) => {
      const t = await Task.Supervisor.async(self, sup, async () => {
        await g.p;
        throw new Error("linked crash");
      });
      me.send(me.pid, "started");
      await Task.await(t);
    });
    const ref = me.monitor(caller);
    expect(await me.receive({ timeout: 1000 })).toBe("started");
    g.open();
    const down = (await me.receive({ match: isDown, timeout: 1000 })) as DownMessage;
    expect(down.ref).toBe(ref);
    expect((down.reason as Error).message).toBe("linked crash");
    expect(node.isAlive(sup)).toBe(true);
  });

  it("Task.Supervisor tasks are temporary children bounded by maxChildren; startChild runs fire-and-forget tasks", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await Task.Supervisor.start(node, { maxChildren: 1 });
    const g = gate();
    const me = node.process();
    const pid = await Task.Supervisor.startChild(node, sup, async (self) => {
      await g.p;
      me.send(me.pid, { done: self.pid });
    });
    expect(await Task.Supervisor.children(node, sup)).toEqual([pid]);
    await expect(Task.Supervisor.asyncNolink(node, sup, () => 1)).rejects.toBeInstanceOf(MaxChildrenError);
    const doneRef = me.monitor(pid);
    g.open();
    expect(await me.receive({ timeout: 1000 })).toEqual({ done: pid });
    expect(await me.receive({ match: isDown, timeout: 1000 })).toMatchObject({ ref: doneRef, reason: "normal" });
    // a temporary task is not restarted
    const crashing = await Task.Supervisor.startChild(node, sup, () => {
      throw new Error("once");
    });
    const ref = me.monitor(crashing);
    await me.receive({ match: (m) => isDown(m) && m.ref === ref, timeout: 1000 });
    const deadline = Date.now() + 1000;
    while ((await Task.Supervisor.children(node, sup)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(await Task.Supervisor.children(node, sup)).toEqual([]);
  });

  it("stopping the task supervisor shuts its running tasks down", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await Task.Supervisor.start(node);
    const t = await Task.Supervisor.asyncNolink(node, sup, () => new Promise<never>(() => {}));
    await DynamicSupervisor.stop(node, sup);
    expect(await Task.yield(t, 1000)).toEqual({ exit: "shutdown" });
  });
});
