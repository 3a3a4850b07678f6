/**
 * Registry across scheduler threads (CONFORMANCE N3/N4 "in both placements"): the registry
 * lives on the main thread or on a worker, and processes on every scheduler register, read,
 * dispatch and exit. Agents (test/fixtures/registry.ts) run on each scheduler: on workers by
 * module reference, on the main thread spawned directly; they report to the test's driver
 * process `me` by message.
 *
 * Where the design orders things (see internal/registry_replica.ts), the assertions are exact,
 * with no polling: a write is visible on a thread that receives a message sent after the write
 * returned; a process's entries are gone on the owner's thread before its DOWN is handled
 * there; a claim made after seeing a holder's DOWN finds the key free.
 */
import { describe, it, expect, afterEach } from "vitest";
import {
  startNode,
  spawnOn,
  Registry,
  GenServer,
  AlreadyRegisteredError,
  AlreadyStartedError,
  NoProcError,
  silentLogger,
  type CinderNode,
  type Pid,
  type Process,
  type RegistryEntry,
  type RegistryOptions,
  type RegistryRef,
  type BlockedReport,
} from "@cinder/runtime";
import { regAgent, type RegCmd } from "./fixtures/registry.js";
import { planeOf } from "../src/internal/registry_replica.js";
import { expectMsg, isDown, until, eventually } from "./support/deadline.js";

const FIX = new URL("./fixtures/registry.ts", import.meta.url);

let node: CinderNode | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

type Ack = { ack: string; from: Pid; ok: boolean; code?: string; holder?: Pid; [k: string]: any };

/** Sends `cmd` to `agent` and waits for its ack. */
async function ask(me: Process<any>, agent: Pid, cmd: RegCmd): Promise<Ack> {
  me.send(agent, cmd);
  return expectMsg<Ack>(me, (m) => m?.ack === cmd.cmd && m.from === agent, `ack of ${cmd.cmd} from ${agent}`, 10_000);
}

/** An agent on scheduler `index` (0: the main thread). */
async function agentOn(n: CinderNode, me: Process<any>, index: number): Promise<Pid> {
  if (index === 0) return n.spawn(regAgent(me.pid));
  return (await spawnOn(n, index, { module: FIX, export: "regAgent" }, [me.pid])).pid;
}

interface World {
  node: CinderNode;
  me: Process<any>;
  /** agents[i] runs on scheduler i */
  agents: Pid[];
}

async function world(schedulers = 3, extra: Parameters<typeof startNode>[0] = {}): Promise<World> {
  node = await startNode({ schedulers, logger: silentLogger, ...extra });
  const me = node.process();
  const agents: Pid[] = [];
  for (let i = 0; i < schedulers; i++) agents.push(await agentOn(node, me, i));
  return { node, me, agents };
}

/** Starts a named registry on scheduler `at` (from its agent, or directly on the main thread). */
async function startRegistryAt<K = unknown, V = unknown>(w: World, at: number, opts: RegistryOptions & { name: string }): Promise<RegistryRef<K, V>> {
  if (at === 0) await Registry.start(w.node, opts);
  else {
    const a = await ask(w.me, w.agents[at]!, { cmd: "startRegistry", opts });
    expect(a.ok).toBe(true);
  }
  const reg = Registry.named<K, V>(w.node, opts.name);
  expect(reg.pid).toBeDefined();
  expect(reg.pid!.split(".")[1]!.startsWith(String(at))).toBe(true);
  return reg;
}

const sortEntries = (es: Array<RegistryEntry<unknown>>) => es.map(([p, v]) => `${p}=${JSON.stringify(v)}`).sort();

const placements = [
  { name: "registry on the main thread", at: 0 },
  { name: "registry on a worker thread", at: 1 },
];

describe.each(placements)("Registry across schedulers: $name", ({ at }) => {
  it("N3 a unique key claimed from three threads at once: exactly one wins, the others are told the winner", async () => {
    const w = await world();
    const reg = await startRegistryAt<string, Pid>(w, at, { keys: "unique", name: "reg" });
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
    // every agent races for every key, at the same time
    for (const a of w.agents) w.me.send(a, { cmd: "registerMany", reg: "reg", keys } satisfies RegCmd);
    const results = new Map<Pid, Array<{ ok: boolean; holder?: Pid }>>();
    for (let i = 0; i < w.agents.length; i++) {
      const ack = await expectMsg<Ack>(w.me, (m) => m?.ack === "registerMany", "registerMany acks", 20_000);
      expect(ack.ok).toBe(true);
      results.set(ack.from, ack.results);
    }
    const winners: Pid[] = [];
    keys.forEach((_, i) => {
      const won = w.agents.filter((a) => results.get(a)![i]!.ok);
      expect(won).toHaveLength(1);
      winners.push(won[0]!);
      for (const a of w.agents) if (a !== won[0]) expect(results.get(a)![i]!.holder).toBe(won[0]);
    });
    // every thread reads the same table, synchronously (each read follows the acks above)
    expect(Registry.count(reg)).toBe(keys.length);
    keys.forEach((k, i) => expect(Registry.lookup(reg, k)).toEqual([[winners[i], winners[i]]]));
    for (const a of w.agents) {
      const r = await ask(w.me, a, { cmd: "lookupAll", reg: "reg", keys });
      expect(r.count).toBe(keys.length);
      keys.forEach((_, i) => expect(r.entries[i]).toEqual([[winners[i], winners[i]]]));
    }
    // a second register of a held key fails on the winner's own thread too, naming the holder
    const first = winners[0]!;
    const again = await ask(w.me, first, { cmd: "register", reg: "reg", key: "k0" });
    expect(again).toMatchObject({ ok: false, code: "already_registered", holder: first });
    // and from the main thread, as a typed error
    const other = w.me;
    expect(() => Registry.register(other, reg, "k0", other.pid)).toThrow(AlreadyRegisteredError);
  });

  it("N3 writes from a worker: updateValue, unregister, metadata; reads follow them everywhere", async () => {
    const w = await world();
    const reg = await startRegistryAt<string, number>(w, at, { keys: "unique", name: "reg", meta: { custom: "meta" } });
    const [a0, a1, a2] = w.agents as [Pid, Pid, Pid];
    expect((await ask(w.me, a2, { cmd: "register", reg: "reg", key: "u", value: 1 })).ok).toBe(true);
    expect(Registry.lookup(reg, "u")).toEqual([[a2, 1]]);
    expect(await ask(w.me, a2, { cmd: "updateValue", reg: "reg", key: "u", add: 41 })).toMatchObject({ ok: true, result: [42, 1] });
    expect(await ask(w.me, a1, { cmd: "updateValue", reg: "reg", key: "u", add: 1 })).toMatchObject({ ok: true, result: null }); // not its key
    expect(Registry.lookup(reg, "u")).toEqual([[a2, 42]]);
    expect(Registry.values(reg, "u", a2)).toEqual([42]);
    for (const a of [a0, a1]) expect(await ask(w.me, a, { cmd: "read", reg: "reg", key: "u", pid: a2 })).toMatchObject({ entries: [[a2, 42]], keys: ["u"], values: [42], count: 1, meta: "meta" });

    expect((await ask(w.me, a1, { cmd: "putMeta", reg: "reg", key: "custom", value: { changed: true } })).ok).toBe(true);
    expect(Registry.meta(reg, "custom")).toEqual({ changed: true });
    expect(await ask(w.me, a2, { cmd: "read", reg: "reg", key: "u" })).toMatchObject({ meta: { changed: true } });

    expect((await ask(w.me, a2, { cmd: "unregister", reg: "reg", key: "u" })).ok).toBe(true);
    expect(Registry.lookup(reg, "u")).toEqual([]);
    expect(Registry.count(reg)).toBe(0);
    for (const a of [a0, a1]) expect(await ask(w.me, a, { cmd: "read", reg: "reg", key: "u", pid: a2 })).toMatchObject({ entries: [], keys: [], count: 0 });
    // the key is free for anyone
    Registry.register(w.me, reg, "u", 7);
    expect(await ask(w.me, a2, { cmd: "lookup", reg: "reg", key: "u" })).toMatchObject({ entries: [[w.me.pid, 7]] });
    // a value that cannot cross threads: a typed error on a replica, a normal entry on the owner
    const owner = w.agents[at]!;
    const replica = w.agents[at === 0 ? 2 : 0]!;
    expect(await ask(w.me, replica, { cmd: "registerUncloneable", reg: "reg", key: "fn" })).toMatchObject({ ok: false, code: "badarg" });
    expect(await ask(w.me, owner, { cmd: "registerUncloneable", reg: "reg", key: "fn" })).toMatchObject({ ok: true });
    expect(await ask(w.me, replica, { cmd: "lookup", reg: "reg", key: "fn" })).toMatchObject({ entries: [[owner, undefined]] });
  });

  it("N4 duplicate keys from several threads, with metadata; dispatch from any thread sees every entry", async () => {
    const w = await world();
    const reg = await startRegistryAt<string, string>(w, at, { keys: "duplicate", partitions: 4, name: "dup", meta: { custom: "meta" } });
    for (const [i, a] of w.agents.entries()) {
      expect((await ask(w.me, a, { cmd: "register", reg: "dup", key: "topic", value: `${i}a` })).ok).toBe(true);
      expect((await ask(w.me, a, { cmd: "register", reg: "dup", key: "topic", value: `${i}b` })).ok).toBe(true);
    }
    Registry.register(w.me, reg, "topic", "me");
    const want = sortEntries([...w.agents.flatMap((a, i) => [[a, `${i}a`], [a, `${i}b`]] as Array<RegistryEntry<string>>), [w.me.pid, "me"]]);
    expect(sortEntries(Registry.lookup(reg, "topic"))).toEqual(want);
    expect(Registry.count(reg)).toBe(7);
    expect(Registry.meta(reg, "custom")).toBe("meta");
    for (const [i, a] of w.agents.entries()) {
      const r = await ask(w.me, a, { cmd: "read", reg: "dup", key: "topic", pid: a });
      expect(sortEntries(r.entries)).toEqual(want);
      expect(r).toMatchObject({ count: 7, keys: ["topic", "topic"], meta: "meta" });
      expect(r.values.sort()).toEqual([`${i}a`, `${i}b`]);
    }
    // dispatch from every thread: one callback per non-empty partition, all entries seen, each
    // registered process gets the message once per entry
    for (const [i, a] of w.agents.entries()) {
      const d = await ask(w.me, a, { cmd: "dispatch", reg: "dup", key: "topic", msg: { hello: i } });
      const calls = d.calls as Array<Array<RegistryEntry<string>>>;
      expect(calls.length).toBeGreaterThanOrEqual(1);
      expect(calls.length).toBeLessThanOrEqual(4);
      for (const c of calls) expect(c.length).toBeGreaterThan(0);
      expect(sortEntries(calls.flat())).toEqual(want);
      expect(await w.me.receive({ match: (m: any) => m?.hello === i, timeout: 5000 })).toEqual({ hello: i });
      for (const b of w.agents) {
        for (let n = 0; n < 2; n++) await expectMsg(w.me, (m) => m?.fwd === b && m.m?.hello === i, `hello ${i} at ${b}`);
      }
    }
    let called = false;
    Registry.dispatch(reg, "nobody", () => (called = true));
    expect(called).toBe(false);
  });

  it("N3/N4 a process that exits on a worker loses its entries everywhere; its key is free at once", async () => {
    const w = await world();
    const uniq = await startRegistryAt<string, number>(w, at, { keys: "unique", name: "u" });
    const dup = await startRegistryAt<string, number>(w, at, { keys: "duplicate", partitions: 2, name: "d" });
    const [, a1, a2] = w.agents as [Pid, Pid, Pid];
    expect((await ask(w.me, a2, { cmd: "register", reg: "u", key: "k", value: 1 })).ok).toBe(true);
    expect((await ask(w.me, a2, { cmd: "register", reg: "u", key: "k2", value: 2 })).ok).toBe(true);
    expect((await ask(w.me, a2, { cmd: "register", reg: "d", key: "topic", value: 3 })).ok).toBe(true);
    expect((await ask(w.me, a1, { cmd: "register", reg: "d", key: "topic", value: 4 })).ok).toBe(true);
    const mon = w.me.monitor(a2);
    w.me.send(a2, { cmd: "exit", reason: "shutdown" } satisfies RegCmd);
    expect(await expectMsg(w.me, (m) => isDown(m) && m.ref === mon, "DOWN of the holder")).toMatchObject({ reason: "shutdown" });
    // claimed right after the DOWN, from the main thread: free
    Registry.register(w.me, uniq, "k", 5);
    expect(Registry.lookup(uniq, "k")).toEqual([[w.me.pid, 5]]);
    expect(Registry.keys(uniq, a2)).toEqual([]);
    expect(Registry.lookup(dup, "topic")).toEqual([[a1, 4]]);
    expect(Registry.count(uniq)).toBe(1);
    const r = await ask(w.me, a1, { cmd: "read", reg: "d", key: "topic", pid: a2 });
    expect(r).toMatchObject({ entries: [[a1, 4]], keys: [], count: 1 });
    expect(await ask(w.me, a1, { cmd: "lookupAll", reg: "u", keys: ["k", "k2"] })).toMatchObject({ entries: [[[w.me.pid, 5]], []], count: 1 });
    // and a claim from a worker right after it saw the DOWN (the agent on scheduler 1 claims k2)
    expect((await ask(w.me, a1, { cmd: "register", reg: "u", key: "k2", value: 6 })).ok).toBe(true);
    expect(Registry.lookup(uniq, "k2")).toEqual([[a1, 6]]);
  });

  it("M5 a killed worker thread frees its processes' keys (noconnection)", async () => {
    const w = await world();
    const uniq = await startRegistryAt<string, number>(w, at, { keys: "unique", name: "u" });
    const dup = await startRegistryAt<string, number>(w, at, { keys: "duplicate", name: "d" });
    const [, a1, a2] = w.agents as [Pid, Pid, Pid];
    expect((await ask(w.me, a2, { cmd: "register", reg: "u", key: "k", value: 1 })).ok).toBe(true);
    expect((await ask(w.me, a2, { cmd: "register", reg: "d", key: "topic", value: 2 })).ok).toBe(true);
    expect((await ask(w.me, a1, { cmd: "register", reg: "d", key: "topic", value: 3 })).ok).toBe(true);
    const mon = w.me.monitor(a2);
    await w.node.killScheduler(2);
    expect(await expectMsg(w.me, (m) => isDown(m) && m.ref === mon, "DOWN of the killed thread's agent", 10_000)).toMatchObject({ reason: "noconnection" });
    expect(Registry.lookup(uniq, "k")).toEqual([]);
    expect(Registry.lookup(dup, "topic")).toEqual([[a1, 3]]);
    Registry.register(w.me, uniq, "k", 4);
    expect(Registry.lookup(uniq, "k")).toEqual([[w.me.pid, 4]]);
    expect(await ask(w.me, a1, { cmd: "lookupAll", reg: "d", keys: ["topic"] })).toMatchObject({ entries: [[[a1, 3]]], count: 1 });
    expect(await ask(w.me, a1, { cmd: "lookup", reg: "u", key: "k" })).toMatchObject({ entries: [[w.me.pid, 4]] });
    // the restarted thread's processes use the registry from scratch
    await w.node.schedulerReady(2);
    const fresh = await agentOn(w.node, w.me, 2);
    expect((await ask(w.me, fresh, { cmd: "register", reg: "d", key: "topic", value: 5 })).ok).toBe(true);
    expect(sortEntries(Registry.lookup(dup, "topic"))).toEqual(sortEntries([[a1, 3], [fresh, 5]]));
  });

  it("via names across threads: a GenServer started on a worker under a via name is called from the main thread", async () => {
    const w = await world();
    const reg = await startRegistryAt<string, unknown>(w, at, { keys: "unique", name: "vias" });
    const [, a1, a2] = w.agents as [Pid, Pid, Pid];
    const started = await ask(w.me, a2, { cmd: "startVia", reg: "vias", key: "ctr", start: 5 });
    expect(started.ok).toBe(true);
    const srv = started.pid as Pid;
    const via = Registry.via(reg, "ctr");
    expect(GenServer.whereis(w.node, via)).toBe(srv);
    expect(await GenServer.call(w.node, via, "inc")).toBe(6);
    expect(await ask(w.me, a1, { cmd: "lookup", reg: "vias", key: "ctr" })).toMatchObject({ entries: [[srv, undefined]] });
    // a second start under the same via name fails, from any thread, naming the holder
    const second = GenServer.start(w.node, { init: () => 0 }, undefined, { name: via });
    await expect(second).rejects.toBeInstanceOf(AlreadyStartedError);
    await expect(second).rejects.toMatchObject({ pid: srv });
    expect(await ask(w.me, a1, { cmd: "startVia", reg: "vias", key: "ctr", start: 0 })).toMatchObject({ ok: false, code: "already_started" });
    // send by via name from the main thread
    const other = await ask(w.me, a1, { cmd: "startVia", reg: "vias", key: "w1", start: 0, value: { role: "worker" } });
    expect(Registry.lookup(reg, "w1")).toEqual([[other.pid, { role: "worker" }]]);
    expect(await GenServer.call(w.node, Registry.via(reg, "w1"), "get")).toBe(0);
    // unregisterName from another thread frees the key for everyone
    expect((await ask(w.me, a2, { cmd: "unregisterName", reg: "vias", key: "w1" })).ok).toBe(true);
    expect(Registry.lookup(reg, "w1")).toEqual([]);
    // the name goes with the server
    await GenServer.stop(w.node, srv);
    await until(() => Registry.lookup(reg, "ctr").length === 0, "the via name to free");
    await expect(GenServer.call(w.node, via, "get")).rejects.toBeInstanceOf(NoProcError);
  });

  it("a write is visible on a third thread to any message sent after it returned", async () => {
    const w = await world();
    await startRegistryAt<string, number>(w, at, { keys: "duplicate", name: "seen" });
    // writer and reader: the two schedulers that do not own the registry
    const [writer, reader] = [0, 1, 2].filter((i) => i !== at).map((i) => w.agents[i]!) as [Pid, Pid];
    for (let i = 0; i < 30; i++) {
      const key = `k${i}`;
      w.me.send(writer, { cmd: "registerThen", reg: "seen", key, value: i, next: reader, nextCmd: { cmd: "lookup", reg: "seen", key } } satisfies RegCmd);
      const seen = await expectMsg<Ack>(w.me, (m) => m?.ack === "lookup" && m.from === reader, "the reader's lookup");
      expect(seen.entries).toEqual([[writer, i]]);
      await expectMsg(w.me, (m) => m?.ack === "registerThen" && m.from === writer, "the writer's ack");
    }
  });
});

describe("Registry across schedulers: threads", () => {
  it("registries on two workers written from each other's thread (and the main thread) at once: no deadlock", async () => {
    const w = await world();
    const ra = await startRegistryAt<string, Pid>(w, 1, { keys: "unique", name: "ra" });
    const rb = await startRegistryAt<string, Pid>(w, 2, { keys: "unique", name: "rb" });
    const rm = await startRegistryAt<string, Pid>(w, 0, { keys: "unique", name: "rm" });
    const keys = (p: string) => Array.from({ length: 200 }, (_, i) => `${p}${i}`);
    const plan: Array<[number, string]> = [
      [1, "rb"], [1, "rm"],
      [2, "ra"], [2, "rm"],
      [0, "ra"], [0, "rb"],
    ];
    for (const [i, r] of plan) w.me.send(w.agents[i]!, { cmd: "registerMany", reg: r, keys: keys(`s${i}-`) } satisfies RegCmd);
    for (let n = 0; n < plan.length; n++) {
      const ack = await expectMsg<Ack>(w.me, (m) => m?.ack === "registerMany", "registerMany acks", 20_000);
      expect(ack.results.every((x: { ok: boolean }) => x.ok)).toBe(true);
    }
    expect([Registry.count(ra), Registry.count(rb), Registry.count(rm)]).toEqual([400, 400, 400]);
    expect(Registry.lookup(ra, "s2-7")).toEqual([[w.agents[2], w.agents[2]]]);
    expect(Registry.lookup(rb, "s0-199")).toEqual([[w.agents[0], w.agents[0]]]);
  });

  it("a registry whose thread dies is gone everywhere; a claim waiting on it fails with noproc", async () => {
    const reports: BlockedReport[] = [];
    const w = await world(3, { workers: { watchdog: { blockedAfterMs: 150, heartbeatMs: 20 }, onBlocked: (r) => reports.push(r) } });
    const reg = await startRegistryAt<string, number>(w, 1, { keys: "unique", name: "doomed" });
    const [, a1, a2] = w.agents as [Pid, Pid, Pid];
    expect((await ask(w.me, a2, { cmd: "register", reg: "doomed", key: "a", value: 1 })).ok).toBe(true);
    expect(Registry.lookup(reg, "a")).toEqual([[a2, 1]]);
    // the owner's thread hangs; a claim from scheduler 2 waits on it (its thread blocks)
    w.me.send(a1, { cmd: "spin" } satisfies RegCmd);
    await until(() => reports.some((r) => r.scheduler === 1), "scheduler 1 to be reported blocked");
    w.me.send(a2, { cmd: "register", reg: "doomed", key: "b", value: 2 } satisfies RegCmd);
    await until(() => reports.some((r) => r.scheduler === 2), "scheduler 2 to block in its claim");
    await w.node.killScheduler(1);
    // the claimer wakes up with noproc: the registry died with its thread
    expect(await expectMsg<Ack>(w.me, (m) => m?.ack === "register" && m.from === a2, "the claim's answer", 10_000)).toMatchObject({ ok: false, code: "noproc" });
    await eventually(() => expect(() => Registry.lookup(reg, "a")).toThrow(NoProcError));
    expect(reg.pid).toBeUndefined();
    expect(await ask(w.me, a2, { cmd: "lookup", reg: "doomed", key: "a" })).toMatchObject({ ok: false, code: "noproc" });
  });

  it("the single-thread fast path: a registry used only on its own thread posts nothing to other threads", async () => {
    const w = await world(2);
    const plane = planeOf(w.node)!;
    const before = plane.posted;
    const reg = await Registry.start<number, null>(w.node, { keys: "unique", name: "local" });
    const procs = Array.from({ length: 200 }, () => w.node.process());
    procs.forEach((p, i) => Registry.register(p, reg, i, null));
    for (const p of procs) p.exit("kill");
    await until(() => Registry.count(reg) === 0, "entries to go");
    expect(plane.posted).toBe(before);
    // once another thread reads it, that thread's replica is fed
    expect(await ask(w.me, w.agents[1]!, { cmd: "read", reg: "local", key: 1 })).toMatchObject({ ok: true, count: 0 });
    Registry.register(w.me, reg, 1, null);
    expect(await ask(w.me, w.agents[1]!, { cmd: "lookup", reg: "local", key: 1 })).toMatchObject({ entries: [[w.me.pid, null]] });
    expect(plane.posted).toBeGreaterThan(before);
  });
});
