/**
 * Remote processes over the cluster transport (memory cluster): send, link, monitor across
 * nodes; a node that goes down fires links and monitors with `noconnection`; a restarted node's
 * old pids are dead (`noproc`); pids of other nodes are reachable from worker threads too.
 */
import { describe, it, expect, afterEach } from "vitest";
import { startNode, spawnOn, MemoryCluster, silentLogger, Timeout, type CinderNode, type ExitMessage, type Pid, type Process } from "@cinder/runtime";

let cluster: MemoryCluster;
const nodes: CinderNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.stop();
  await cluster?.close();
});

async function twoNodes(opts: { schedulers?: number } = {}) {
  cluster = new MemoryCluster({ heartbeatMs: 20, downAfterMs: 200, logger: silentLogger });
  const a = await startNode({ name: "a", schedulers: opts.schedulers ?? 1, logger: silentLogger });
  const b = await startNode({ name: "b", schedulers: 1, logger: silentLogger });
  nodes.push(a, b);
  await a.connect(cluster.node("a"));
  await b.connect(cluster.node("b"));
  await until(() => a.cluster!.isUp("b") && b.cluster!.isUp("a"));
  return { a, b };
}

async function until(f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const echo = () =>
  async (self: Process<{ to: Pid; n: unknown }>) => {
    for (;;) {
      const m = (await self.receive()) as { to: Pid; n: unknown };
      self.send(m.to, m.n);
    }
  };

describe("remote processes", () => {
  it("R1 messages to a pid on another node arrive once, in send order", async () => {
    const { a, b } = await twoNodes();
    const e = b.spawn(echo());
    const me = a.process();
    for (let i = 0; i < 1000; i++) me.send(e, { to: me.pid, n: i });
    for (let i = 0; i < 1000; i++) expect(await me.receive({ timeout: 5000 })).toBe(i);
    expect(await me.receive({ timeout: 50 })).toBe(Timeout);
  });

  it("remote monitor: DOWN carries the exit reason; remote link: exit propagates", async () => {
    const { a, b } = await twoNodes();
    const me = a.process();
    me.trapExit(true);
    const t1 = b.spawn(echo());
    const t2 = b.spawn(echo());
    const ref = me.monitor(t1);
    me.link(t2);
    await new Promise((r) => setTimeout(r, 20));
    b.exit(t1, "bye");
    expect(await me.receive({ timeout: 5000 })).toEqual({ type: "DOWN", ref, pid: t1, reason: "bye" });
    b.exit(t2, "boom");
    expect(await me.receive({ timeout: 5000 })).toEqual({ type: "EXIT", from: t2, reason: "boom" });
  });

  it("M5 a node that goes down: its pids' links and monitors fire once with noconnection", async () => {
    const { a, b } = await twoNodes();
    const me = a.process();
    me.trapExit(true);
    const t = b.spawn(echo());
    const ref = me.monitor(t);
    me.link(t);
    await new Promise((r) => setTimeout(r, 20));
    cluster.kill("b");
    const got = [await me.receive({ timeout: 5000 }), await me.receive({ timeout: 5000 })];
    expect(got).toContainEqual({ type: "DOWN", ref, pid: t, reason: "noconnection" });
    expect(got).toContainEqual({ type: "EXIT", from: t, reason: "noconnection" });
    expect(await me.receive({ timeout: 100 })).toBe(Timeout);
    // monitoring a pid of a node that is down answers at once
    const r2 = me.monitor(t);
    expect(await me.receive({ timeout: 1000 })).toEqual({ type: "DOWN", ref: r2, pid: t, reason: "noconnection" });
  });

  it("pids of a restarted node's old incarnation are dead: monitor answers noproc", async () => {
    const { a, b } = await twoNodes();
    const t = b.spawn(echo());
    await b.stop();
    nodes.splice(nodes.indexOf(b), 1);
    const b2 = await startNode({ name: "b", schedulers: 1, logger: silentLogger });
    nodes.push(b2);
    const tb2 = cluster.restart("b");
    let seenNew = false;
    a.cluster!.transport.onMembership((ev) => {
      if (ev.type === "up" && ev.node === "b" && ev.incarnation === tb2.incarnation) seenNew = true;
    });
    await b2.connect(tb2);
    await until(() => seenNew);
    const me = a.process();
    const ref = me.monitor(t);
    expect(await me.receive({ timeout: 5000 })).toEqual({ type: "DOWN", ref, pid: t, reason: "noproc" });
  });

  it("a process on a worker thread reaches a pid on another node (relayed by the main thread)", async () => {
    const { a, b } = await twoNodes({ schedulers: 2 });
    const target = b.spawn(echo());
    const me = a.process();
    const fwd = await spawnOn(a, 1, { module: new URL("./fixtures/actors.ts", import.meta.url), export: "echo" }, []);
    // me → fwd (worker of a) → echo on b → me
    me.send(fwd.pid, { to: target, msg: { to: me.pid, n: "via worker" } });
    expect(await me.receive({ timeout: 5000 })).toBe("via worker");
  });

  it("a garbage frame on the proc channel is counted, not a crash", async () => {
    const { a, b } = await twoNodes();
    cluster.transport("b")!.sendTo("a", "proc", new Uint8Array([7, 7, 7]));
    await until(() => a.cluster!.decodeErrors === 1);
    const e = b.spawn(echo());
    const me = a.process();
    me.send(e, { to: me.pid, n: "still fine" });
    expect(await me.receive({ timeout: 5000 })).toBe("still fine");
  });
});

export type { ExitMessage };
