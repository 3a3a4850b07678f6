import { describe, it, expect, afterEach } from "vitest";
import {
  startNode,
  Registry,
  GenServer,
  Supervisor,
  AlreadyRegisteredError,
  AlreadyStartedError,
  BadArgError,
  NoProcError,
  CinderError,
  silentLogger,
  type CinderNode,
  type GenServerBehaviour,
  type Pid,
} from "@cinder/runtime";

/** Polls `cond` until it holds or `ms` pass; returns whether it held. */
async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}

let node: CinderNode;
afterEach(async () => {
  await node?.stop();
});

const Echo: GenServerBehaviour<string, string, string> = {
  init: () => "echo",
  handleCall: (req, _from, s) => ({ reply: `${s}:${req}`, state: s }),
};

describe("Registry: unique keys", () => {
  it("N3 unique key: second register fails while the owner lives, freed on exit", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, number>(node, { keys: "unique" });
    const a = node.process();
    const b = node.process();
    Registry.register(a, reg, "k", 1);
    expect(Registry.lookup(reg, "k")).toEqual([[a.pid, 1]]);

    let err: unknown;
    try {
      Registry.register(b, reg, "k", 2);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AlreadyRegisteredError);
    expect((err as AlreadyRegisteredError).code).toBe("already_registered");
    expect((err as AlreadyRegisteredError).pid).toBe(a.pid);
    expect(Registry.lookup(reg, "k")).toEqual([[a.pid, 1]]);

    a.exit("shutdown");
    expect(await until(() => Registry.lookup(reg, "k").length === 0)).toBe(true);
    expect(Registry.keys(reg, a.pid)).toEqual([]);
    Registry.register(b, reg, "k", 2);
    expect(Registry.lookup(reg, "k")).toEqual([[b.pid, 2]]);
    expect(Registry.count(reg)).toBe(1);
  });

  it("N3 unique key: the owner registering its own key again is told it already owns it", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, string>(node, { keys: "unique" });
    const a = node.process();
    Registry.register(a, reg, "k", "v");
    expect(() => Registry.register(a, reg, "k", "w")).toThrow(AlreadyRegisteredError);
    try {
      Registry.register(a, reg, "k", "w");
    } catch (e) {
      expect((e as AlreadyRegisteredError).pid).toBe(a.pid);
    }
    expect(Registry.values(reg, "k", a.pid)).toEqual(["v"]);
  });

  it("N3 a key registered by a process that crashed is free for its successor", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, null>(node, { keys: "unique" });
    const me = node.process();
    const crasher = node.spawn(async (self) => {
      Registry.register(self, reg, "job", null);
      me.send(me.pid, "registered");
      await self.receive();
      throw new Error("boom");
    });
    expect(await me.receive()).toBe("registered");
    expect(Registry.lookup(reg, "job")).toEqual([[crasher, null]]);
    const mon = me.monitor(crasher);
    node.send(crasher, "go");
    const down = await me.receive({ match: (m) => typeof m === "object" && m !== null && (m as { ref?: unknown }).ref === mon });
    expect((down as { reason: unknown }).reason).toBeInstanceOf(Error);
    expect(Registry.lookup(reg, "job")).toEqual([]);
    Registry.register(me, reg, "job", null);
    expect(Registry.lookup(reg, "job")).toEqual([[me.pid, null]]);
  });

  it("updateValue changes only the caller's own unique entry and reports new and old values", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, number>(node, { keys: "unique" });
    const a = node.process();
    const b = node.process();
    Registry.register(a, reg, "k", 1);
    expect(Registry.updateValue(a, reg, "k", (v) => v + 41)).toEqual([42, 1]);
    expect(Registry.updateValue(b, reg, "k", () => 0)).toBeUndefined();
    expect(Registry.updateValue(a, reg, "missing", () => 0)).toBeUndefined();
    expect(Registry.lookup(reg, "k")).toEqual([[a.pid, 42]]);

    const dup = await Registry.start<string, number>(node, { keys: "duplicate" });
    expect(() => Registry.updateValue(a, dup, "k", (v) => v)).toThrow(BadArgError);
  });

  it("a process dead before registering leaves no entry behind", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, number>(node, { keys: "unique" });
    const a = node.process();
    a.exit("normal");
    Registry.register(a, reg, "k", 1);
    expect(Registry.lookup(reg, "k")).toEqual([]);
    expect(Registry.count(reg)).toBe(0);
  });
});

describe("Registry: duplicate keys", () => {
  it("N4 duplicate keys: many entries per key with metadata; dispatch calls back with all entries", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, string>(node, { keys: "duplicate", partitions: 4, meta: { custom: "meta" } });
    expect(Registry.meta(reg, "custom")).toBe("meta");
    Registry.putMeta(reg, "other", { n: 1 });
    expect(Registry.meta(reg, "other")).toEqual({ n: 1 });
    Registry.deleteMeta(reg, "other");
    expect(Registry.meta(reg, "other")).toBeUndefined();

    const procs = Array.from({ length: 20 }, () => node.process());
    procs.forEach((p, i) => Registry.register(p, reg, "topic", `v${i}`));
    Registry.register(procs[0]!, reg, "topic", "again"); // a second entry from the same process
    Registry.register(procs[1]!, reg, "elsewhere", "x");

    const all = Registry.lookup(reg, "topic");
    expect(all).toHaveLength(21);
    expect(Registry.count(reg)).toBe(22);
    expect(Registry.keys(reg, procs[0]!.pid)).toEqual(["topic", "topic"]);
    expect(Registry.values(reg, "topic", procs[0]!.pid).sort()).toEqual(["again", "v0"]);

    const calls: Array<Array<[Pid, string]>> = [];
    Registry.dispatch(reg, "topic", (entries) => calls.push(entries));
    expect(calls.length).toBeGreaterThan(1); // partitioned: one callback per non-empty partition
    expect(calls.length).toBeLessThanOrEqual(4);
    for (const c of calls) expect(c.length).toBeGreaterThan(0);
    const seen = calls.flat().map(([pid, v]) => `${pid}=${v}`).sort();
    expect(seen).toEqual(all.map(([pid, v]) => `${pid}=${v}`).sort());

    let called = false;
    Registry.dispatch(reg, "nobody", () => (called = true));
    expect(called).toBe(false);
  });

  it("N4 dispatch delivers to every subscriber, and an entry unregistered inside dispatch does not break it", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, null>(node, { keys: "duplicate" });
    const subs = Array.from({ length: 5 }, () => node.process());
    for (const s of subs) Registry.register(s, reg, "room", null);
    Registry.dispatch(reg, "room", (entries) => {
      for (const [pid] of entries) {
        Registry.unregister(subs[0]!, reg, "room");
        node.send(pid, "hello");
      }
    });
    for (const s of subs) expect(await s.receive({ timeout: 1000 })).toBe("hello");
    expect(Registry.lookup(reg, "room")).toHaveLength(4);
  });

  it("unregister removes all of the caller's entries for that key and nothing else", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, number>(node, { keys: "duplicate", partitions: 2 });
    const a = node.process();
    const b = node.process();
    Registry.register(a, reg, "t", 1);
    Registry.register(a, reg, "t", 2);
    Registry.register(a, reg, "u", 3);
    Registry.register(b, reg, "t", 4);
    Registry.unregister(a, reg, "t");
    Registry.unregister(a, reg, "never-registered");
    expect(Registry.lookup(reg, "t")).toEqual([[b.pid, 4]]);
    expect(Registry.keys(reg, a.pid)).toEqual(["u"]);
    expect(Registry.count(reg)).toBe(2);
    // registering again after an unregister still cleans up on exit
    Registry.register(a, reg, "t", 5);
    a.exit("shutdown");
    expect(await until(() => Registry.count(reg) === 1)).toBe(true);
    expect(Registry.lookup(reg, "t")).toEqual([[b.pid, 4]]);
  });

  it("a process holding many keys loses them all when it exits", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<number, null>(node, { keys: "duplicate", partitions: 3 });
    const p = node.process();
    const other = node.process();
    for (let i = 0; i < 1000; i++) Registry.register(p, reg, i, null);
    Registry.register(other, reg, 7, null);
    expect(Registry.count(reg)).toBe(1001);
    p.exit("kill");
    expect(await until(() => Registry.count(reg) === 1)).toBe(true);
    expect(Registry.lookup(reg, 7)).toEqual([[other.pid, null]]);
    expect(Registry.lookup(reg, 8)).toEqual([]);
  });

  it("100k entries of one key owned by dying processes are cleaned up", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, number>(node, { keys: "duplicate", partitions: 4 });
    const N = 100_000;
    const procs = [];
    for (let i = 0; i < N; i++) {
      const p = node.process();
      Registry.register(p, reg, "hot", i);
      procs.push(p);
    }
    expect(Registry.count(reg)).toBe(N);
    expect(Registry.lookup(reg, "hot")).toHaveLength(N);
    for (const p of procs) node.exit(p.pid, "kill");
    expect(await until(() => Registry.count(reg) === 0, 20_000)).toBe(true);
    expect(Registry.lookup(reg, "hot")).toEqual([]);
    expect(Registry.keys(reg, procs[0]!.pid)).toEqual([]);
  });
});

describe("Registry: via names", () => {
  it("N3 via: a GenServer started under a via name is reachable by it, a second start fails, the name frees on exit", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string>(node, { keys: "unique" });
    const srv = await GenServer.start(node, Echo, undefined, { name: Registry.via(reg, "echo") });
    expect(Registry.lookup(reg, "echo")).toEqual([[srv, undefined]]);
    expect(await GenServer.call(node, Registry.via(reg, "echo"), "hi")).toBe("echo:hi");
    expect(GenServer.whereis(node, Registry.via(reg, "echo"))).toBe(srv);

    const second = GenServer.start(node, Echo, undefined, { name: Registry.via(reg, "echo") });
    await expect(second).rejects.toBeInstanceOf(AlreadyStartedError);
    await expect(second).rejects.toMatchObject({ pid: srv });

    // send by via name
    const me = node.process();
    const plain = node.spawn(async (self) => {
      const m = await self.receive();
      me.send(me.pid, m);
    });
    expect(reg.registerName("plain", plain)).toBe(true);
    expect(reg.registerName("plain", me.pid)).toBe(false);
    me.send(Registry.via(reg, "plain"), "via-msg");
    expect(await me.receive({ timeout: 1000 })).toBe("via-msg");

    await GenServer.stop(node, srv);
    expect(await until(() => Registry.lookup(reg, "echo").length === 0)).toBe(true);
    await expect(GenServer.call(node, Registry.via(reg, "echo"), "hi")).rejects.toBeInstanceOf(NoProcError);
    expect(() => me.send(Registry.via(reg, "echo"), "x")).toThrow(BadArgError);
  });

  it("via with a value registers the server with that value; unregisterName frees the key", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, { role: string }>(node, { keys: "unique" });
    const srv = await GenServer.start(node, Echo, undefined, { name: Registry.via(reg, "w1", { role: "worker" }) });
    expect(Registry.lookup(reg, "w1")).toEqual([[srv, { role: "worker" }]]);
    reg.unregisterName("w1");
    expect(Registry.lookup(reg, "w1")).toEqual([]);
    expect(Registry.keys(reg, srv)).toEqual([]);
  });

  it("via names are refused on a duplicate registry", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string>(node, { keys: "duplicate" });
    expect(() => Registry.via(reg, "x")).toThrow(BadArgError);
  });
});

describe("Registry: the owning actor", () => {
  it("rejects bad options with a typed error naming the option", async () => {
    node = await startNode({ logger: silentLogger });
    await expect(Registry.start(node, { keys: "both" as never })).rejects.toThrow(/keys/);
    await expect(Registry.start(node, { keys: "unique", partitions: 0 })).rejects.toBeInstanceOf(BadArgError);
  });

  it("a stopped registry's table is gone: operations reject with NoProcError", async () => {
    node = await startNode({ logger: silentLogger });
    const reg = await Registry.start<string, number>(node, { keys: "unique" });
    const a = node.process();
    Registry.register(a, reg, "k", 1);
    const pid = reg.pid!;
    expect(node.isAlive(pid)).toBe(true);
    await Registry.stop(node, reg);
    expect(reg.pid).toBeUndefined();
    expect(() => Registry.lookup(reg, "k")).toThrow(NoProcError);
    expect(() => Registry.register(a, reg, "k", 2)).toThrow(NoProcError);
    expect(reg.whereisName("k")).toBeUndefined();
    await expect(GenServer.start(node, Echo, undefined, { name: Registry.via(reg, "srv") })).rejects.toBeInstanceOf(BadArgError);
    // the owner of an entry of a dead registry exits without trouble
    a.exit("shutdown");
    expect(a.alive).toBe(false);
  });

  it("a supervised named registry restarts empty and its named handle follows it", async () => {
    node = await startNode({ logger: silentLogger });
    const sup = await Supervisor.start(node, { children: [Registry.childSpec({ keys: "unique", name: "reg" })] });
    const reg = Registry.named<string, number>(node, "reg");
    const first = reg.pid!;
    expect(first).toBe(node.whereis("reg"));
    const a = node.process();
    Registry.register(a, reg, "k", 1);
    node.exit(first, "kill");
    expect(await until(() => reg.pid !== undefined && reg.pid !== first)).toBe(true);
    expect(Registry.lookup(reg, "k")).toEqual([]);
    Registry.register(a, reg, "k", 2);
    expect(Registry.lookup(reg, "k")).toEqual([[a.pid, 2]]);
    const kids = await Supervisor.whichChildren(node, sup);
    expect(kids[0]!.pid).toBe(reg.pid);
    await expect(Registry.start(node, { keys: "unique", name: "reg" })).rejects.toBeInstanceOf(CinderError);
  });
});
