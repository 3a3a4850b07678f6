import { afterEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { MemoryCluster, PeerTable } from "@cinder/runtime";
import type { MemoryClusterOptions, MemoryTransport, MembershipEvent, TransportLogger } from "@cinder/runtime";
import { holdsFor, sleep, waitFor } from "../../../test/support/wait.js";

const HB = 20;
const DOWN = 120;

interface Received {
  from: string;
  channel: string;
  payload: Uint8Array;
  at: number;
}

interface Node {
  t: MemoryTransport;
  frames: Received[];
  events: Array<MembershipEvent & { at: number }>;
}

const clusters: MemoryCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

function quietLogger(): TransportLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (m) => void lines.push(m), error: (m) => void lines.push(m) };
}

function cluster(opts: MemoryClusterOptions = {}): MemoryCluster {
  const c = new MemoryCluster({ heartbeatMs: HB, downAfterMs: DOWN, logger: quietLogger(), ...opts });
  clusters.push(c);
  return c;
}

function attach(t: MemoryTransport): Node {
  const n: Node = { t, frames: [], events: [] };
  t.onFrame((from, channel, payload) => n.frames.push({ from, channel, payload, at: performance.now() }));
  t.onMembership((e) => n.events.push({ ...e, at: performance.now() }));
  return n;
}

async function startNodes(c: MemoryCluster, ...names: string[]): Promise<Node[]> {
  const nodes = names.map((name) => attach(c.node(name)));
  for (const n of nodes) await n.t.start();
  for (const n of nodes) {
    const others = names.filter((x) => x !== n.t.nodeName);
    await waitFor(() => others.every((o) => n.t.members().includes(o)), { timeoutMs: 1000, what: `${n.t.nodeName} sees ${others}` });
  }
  return nodes;
}

const bytes = (...xs: number[]) => new Uint8Array(xs);
const seqs = (n: Node, channel?: string) => n.frames.filter((f) => channel === undefined || f.channel === channel).map((f) => f.payload[0]!);
const countOf = (n: Node, type: "up" | "down", node: string) => n.events.filter((e) => e.type === type && e.node === node).length;

describe("MemoryCluster membership", () => {
  it("a started peer is seen up within one heartbeat, with its incarnation", async () => {
    const c = cluster();
    const a = attach(c.node("a"));
    await a.t.start();
    const b = attach(c.node("b"));
    const t0 = performance.now();
    await b.t.start();
    const up = await waitFor(() => a.events.find((e) => e.type === "up" && e.node === "b"), { timeoutMs: 1000, what: "a sees b up" });
    expect(up.incarnation).toBe(b.t.incarnation);
    expect(up.at - t0).toBeLessThan(HB + 50);
    await waitFor(() => b.t.members().includes("a"), { timeoutMs: 1000, what: "b sees a up" });
    expect(a.t.members()).toEqual(["b"]);
    expect(b.t.members()).toEqual(["a"]);
  });

  it("a stopped peer is reported down once, after downAfterMs and not before", async () => {
    const c = cluster();
    const [a, b] = await startNodes(c, "a", "b");
    const t0 = performance.now();
    await b!.t.stop();
    const down = await waitFor(() => a!.events.find((e) => e.type === "down" && e.node === "b"), { timeoutMs: 2000, what: "a sees b down" });
    const elapsed = down.at - t0;
    // last heartbeat was heard at most HB before the stop
    expect(elapsed).toBeGreaterThanOrEqual(DOWN - HB - 5);
    expect(elapsed).toBeLessThan(DOWN + 200);
    expect(down.incarnation).toBe(b!.t.incarnation);
    expect(a!.t.members()).toEqual([]);
    await holdsFor(() => countOf(a!, "down", "b") === 1, 2 * DOWN, "exactly one down for b");
    expect(b!.t.members()).toEqual([]); // a stopped transport reports nothing
  });

  it("a live peer is never reported down while heartbeats flow", async () => {
    const c = cluster();
    const [a, b] = await startNodes(c, "a", "b");
    await holdsFor(() => a!.events.every((e) => e.type === "up") && b!.events.every((e) => e.type === "up"), 3 * DOWN, "no down while up");
  });
});

describe("MemoryCluster delivery", () => {
  it("node-addressed and broadcast frames arrive asynchronously; broadcast skips self; sendTo(self) delivers locally", async () => {
    const c = cluster();
    const [a, b, d] = await startNodes(c, "a", "b", "d");
    let inside = false;
    for (const n of [a!, b!, d!]) n.t.onFrame(() => expect(inside).toBe(false));
    inside = true;
    a!.t.sendTo("b", "direct", bytes(1));
    a!.t.broadcast("all", bytes(2));
    a!.t.sendTo("a", "self", bytes(3));
    inside = false;
    expect(b!.frames).toHaveLength(0); // nothing synchronous
    await waitFor(() => b!.frames.length === 2 && d!.frames.length === 1 && a!.frames.length === 1, { what: "deliveries" });
    expect(b!.frames.map((f) => [f.from, f.channel, f.payload[0]])).toEqual([["a", "direct", 1], ["a", "all", 2]]);
    expect(d!.frames.map((f) => [f.from, f.channel, f.payload[0]])).toEqual([["a", "all", 2]]);
    expect(a!.frames.map((f) => [f.from, f.channel, f.payload[0]])).toEqual([["a", "self", 3]]);
    await sleep(20);
    expect(a!.frames).toHaveLength(1); // broadcast did not come back to a
    expect(a!.t.stats()).toMatchObject({ framesOut: 3, framesIn: 1, dropped: 0 });
    expect(b!.t.stats()).toMatchObject({ framesIn: 2 });
  });

  it("sendTo an unknown or down node is dropped and counted, never thrown", async () => {
    const c = cluster();
    const [a] = await startNodes(c, "a", "b");
    a!.t.sendTo("nobody", "x", bytes(1));
    expect(a!.t.stats().dropped).toBe(1);
    c.kill("b");
    await waitFor(() => !a!.t.members().includes("b"), { timeoutMs: 2000, what: "b down" });
    a!.t.sendTo("b", "x", bytes(1));
    expect(a!.t.stats().dropped).toBe(2);
    expect(a!.t.stats().framesOut).toBe(0);
  });

  it("the payload is copied: the sender may reuse its buffer, each receiver gets its own bytes", async () => {
    const c = cluster();
    const [a, b, d] = await startNodes(c, "a", "b", "d");
    const buf = bytes(7, 7);
    a!.t.broadcast("x", buf);
    buf[0] = 0;
    await waitFor(() => b!.frames.length === 1 && d!.frames.length === 1);
    expect(b!.frames[0]!.payload).toEqual(bytes(7, 7));
    b!.frames[0]!.payload[1] = 9;
    expect(d!.frames[0]!.payload).toEqual(bytes(7, 7));
  });

  it("FIFO per pair across channels and sendTo/broadcast, with delay and jitter", async () => {
    const c = cluster({ faults: { delayMs: 2, jitterMs: 15 } });
    const [a, b] = await startNodes(c, "a", "b");
    for (let i = 0; i < 200; i++) {
      if (i % 3 === 0) a!.t.broadcast("bc", bytes(i));
      else a!.t.sendTo("b", `ch${i % 2}`, bytes(i));
    }
    await waitFor(() => b!.frames.length === 200, { what: "200 frames" });
    expect(seqs(b!)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it("a handler that throws is logged; other handlers still get the frame", async () => {
    const logger = quietLogger();
    const c = cluster({ logger });
    const [a, b] = await startNodes(c, "a", "b");
    b!.t.onFrame(() => {
      throw new Error("boom");
    });
    a!.t.sendTo("b", "x", bytes(1));
    a!.t.sendTo("b", "x", bytes(2));
    await waitFor(() => b!.frames.length === 2);
    expect(logger.lines.some((l) => l.includes("frame handler") && l.includes('"b"'))).toBe(true);
  });

  it("an unsubscribed handler gets nothing more", async () => {
    const c = cluster();
    const [a, b] = await startNodes(c, "a", "b");
    const got: number[] = [];
    const off = b!.t.onFrame((_f, _c, p) => got.push(p[0]!));
    a!.t.sendTo("b", "x", bytes(1));
    await waitFor(() => got.length === 1);
    off();
    a!.t.sendTo("b", "x", bytes(2));
    await waitFor(() => b!.frames.length === 2);
    expect(got).toEqual([1]);
  });
});

describe("MemoryCluster faults", () => {
  it("partition: frames across the cut are lost, both sides see each other down; heal: up again and frames flow", async () => {
    const c = cluster();
    const [a, b, d] = await startNodes(c, "a", "b", "d");
    c.partition(["a", "b"], ["d"]);
    a!.t.sendTo("d", "x", bytes(1)); // d is still up in a's view: sent, then lost in the network
    a!.t.sendTo("b", "x", bytes(2)); // same side: delivered
    await waitFor(() => countOf(a!, "down", "d") === 1 && countOf(d!, "down", "a") === 1 && countOf(d!, "down", "b") === 1, {
      timeoutMs: 2000,
      what: "both sides see the other down",
    });
    expect(countOf(a!, "down", "b")).toBe(0);
    expect(d!.frames).toHaveLength(0);
    expect(b!.frames.map((f) => f.payload[0])).toEqual([2]);
    expect(c.stats().lostToPartition).toBeGreaterThan(0);
    expect(a!.t.members()).toEqual(["b"]);
    expect(d!.t.members()).toEqual([]);

    c.heal();
    await waitFor(() => countOf(a!, "up", "d") === 2 && countOf(d!, "up", "a") === 2 && countOf(d!, "up", "b") === 2, {
      timeoutMs: 1000,
      what: "up again after heal",
    });
    // same incarnation: it was only unreachable
    expect(a!.events.filter((e) => e.node === "d").map((e) => [e.type, e.incarnation])).toEqual([
      ["up", d!.t.incarnation],
      ["down", d!.t.incarnation],
      ["up", d!.t.incarnation],
    ]);
    a!.t.sendTo("d", "x", bytes(3));
    await waitFor(() => d!.frames.length === 1);
    expect(d!.frames[0]!.payload[0]).toBe(3);
  });

  it("partition cuts frames already in flight (a short cut: nobody is reported down)", async () => {
    // downAfterMs well above cut + delay + heartbeat, so the peers stay up throughout
    const c = cluster({ faults: { delayMs: 40 }, downAfterMs: 1000 });
    const [a, b] = await startNodes(c, "a", "b");
    a!.t.sendTo("b", "x", bytes(1));
    c.partition(["a"], ["b"]);
    await sleep(80);
    expect(b!.frames).toHaveLength(0);
    c.heal();
    a!.t.sendTo("b", "x", bytes(2));
    await waitFor(() => b!.frames.length === 1);
    expect(b!.frames[0]!.payload[0]).toBe(2);
    expect([...a!.events, ...b!.events].every((e) => e.type === "up")).toBe(true);
  });

  it("delay: no frame arrives before delayMs on a slow link; other links stay fast", async () => {
    const c = cluster();
    const [a, b, d] = await startNodes(c, "a", "b", "d");
    c.setLink("a", "b", { delayMs: 60 });
    const t0 = performance.now();
    a!.t.sendTo("b", "x", bytes(1));
    a!.t.sendTo("d", "x", bytes(1));
    await waitFor(() => b!.frames.length === 1 && d!.frames.length === 1);
    expect(b!.frames[0]!.at - t0).toBeGreaterThanOrEqual(59);
    expect(d!.frames[0]!.at - t0).toBeLessThan(40);
    expect(c.faultsOf("b", "a").delayMs).toBe(0); // links are directional
  });

  it("drop: about the given share of frames is lost, counted, and the same seed loses the same frames", async () => {
    const run = async () => {
      const c = cluster({ seed: 42 });
      const [a, b] = await startNodes(c, "a", "b");
      c.setFaults({ drop: 0.3 });
      for (let i = 0; i < 250; i++) a!.t.sendTo("b", "x", bytes(i));
      await waitFor(() => b!.frames.length + c.stats().lostToDrop === 250, { what: "all accounted" });
      expect(seqs(b!)).toEqual([...seqs(b!)].sort((x, y) => x - y)); // loss keeps order
      return { got: seqs(b!), lost: c.stats().lostToDrop };
    };
    const r1 = await run();
    const r2 = await run();
    expect(r1.lost).toBeGreaterThan(40);
    expect(r1.lost).toBeLessThan(110);
    expect(r2.got).toEqual(r1.got);
  });

  it("drop applies to data frames only, unless heartbeats: true (then peers go down)", async () => {
    const c = cluster();
    const [a, b] = await startNodes(c, "a", "b");
    c.setFaults({ drop: 1 });
    a!.t.sendTo("b", "x", bytes(1));
    await holdsFor(() => countOf(a!, "down", "b") === 0 && countOf(b!, "down", "a") === 0, DOWN + 3 * HB, "still up without data");
    expect(b!.frames).toHaveLength(0);
    c.setFaults({ drop: 1, heartbeats: true });
    await waitFor(() => countOf(a!, "down", "b") === 1 && countOf(b!, "down", "a") === 1, { timeoutMs: 2000, what: "down" });
  });

  it("duplicate: with probability 1 every frame arrives twice, back to back, as separate buffers", async () => {
    const c = cluster();
    const [a, b] = await startNodes(c, "a", "b");
    c.setFaults({ duplicate: 1 });
    for (let i = 0; i < 5; i++) a!.t.sendTo("b", "x", bytes(i));
    await waitFor(() => b!.frames.length === 10);
    expect(seqs(b!)).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    expect(b!.frames[0]!.payload).not.toBe(b!.frames[1]!.payload);
    expect(c.stats().duplicated).toBe(5);
    expect(b!.t.stats().framesIn).toBe(10);
  });

  it("reorder: with probability 1, 1 2 3 4 5 arrives as 2 1 4 3 5 (the last one after reorderHoldMs)", async () => {
    const c = cluster();
    const [a, b] = await startNodes(c, "a", "b");
    c.setFaults({ reorder: 1, reorderHoldMs: 30 });
    const t0 = performance.now();
    for (let i = 1; i <= 5; i++) a!.t.sendTo("b", "x", bytes(i));
    await waitFor(() => b!.frames.length === 5);
    expect(seqs(b!)).toEqual([2, 1, 4, 3, 5]);
    expect(b!.frames[4]!.at - t0).toBeGreaterThanOrEqual(29);
    expect(c.stats().reordered).toBe(2);
  });

  it("reorder with a probability below 1 permutes some frames and loses none", async () => {
    const c = cluster({ seed: 7 });
    const [a, b] = await startNodes(c, "a", "b");
    c.setFaults({ reorder: 0.3, reorderHoldMs: 5 });
    for (let i = 0; i < 100; i++) a!.t.sendTo("b", "x", bytes(i));
    await waitFor(() => b!.frames.length === 100);
    const got = seqs(b!);
    expect([...got].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(got).not.toEqual([...got].sort((x, y) => x - y));
  });

  it("fault settings are validated", () => {
    const c = cluster();
    expect(() => c.setFaults({ drop: 1.5 })).toThrow(RangeError);
    expect(() => c.setLink("a", "b", { delayMs: -1 })).toThrow(RangeError);
    expect(() => new MemoryCluster({ heartbeatMs: 100, downAfterMs: 50 })).toThrow(/downAfterMs/);
  });
});

describe("MemoryCluster kill and restart", () => {
  it("kill: the node goes silent at once, is reported down exactly once, and frames to it are lost", async () => {
    const c = cluster();
    const [a, b, d] = await startNodes(c, "a", "b", "d");
    const inc = b!.t.incarnation;
    const t0 = performance.now();
    c.kill("b");
    expect(b!.t.running).toBe(false);
    a!.t.sendTo("b", "x", bytes(1)); // still up in a's view: sent and lost
    await waitFor(() => countOf(a!, "down", "b") === 1 && countOf(d!, "down", "b") === 1, { timeoutMs: 2000, what: "b down" });
    const down = a!.events.find((e) => e.type === "down")!;
    expect(down.incarnation).toBe(inc);
    expect(down.at - t0).toBeGreaterThanOrEqual(DOWN - HB - 5);
    await holdsFor(() => countOf(a!, "down", "b") === 1 && countOf(d!, "down", "b") === 1, 3 * DOWN, "one down per node");
    expect(b!.frames).toHaveLength(0);
    expect(c.stats().lostToDeadNode).toBeGreaterThan(0);
    expect(c.nodes().sort()).toEqual(["a", "d"]);
  });

  it("restart faster than downAfterMs: peers see down(old incarnation) then up(new), nothing else", async () => {
    const c = cluster();
    const [a] = await startNodes(c, "a", "b");
    const old = c.transport("b")!.incarnation;
    const b2 = attach(c.restart("b"));
    expect(b2.t.incarnation).not.toBe(old);
    await b2.t.start();
    await waitFor(() => countOf(a!, "up", "b") === 2, { timeoutMs: 1000, what: "new b up" });
    expect(a!.events.map((e) => [e.type, e.incarnation])).toEqual([
      ["up", old],
      ["down", old],
      ["up", b2.t.incarnation],
    ]);
    await holdsFor(() => a!.events.length === 3, 2 * DOWN, "no late down for the old incarnation");
    a!.t.sendTo("b", "x", bytes(5));
    await waitFor(() => b2.frames.length === 1);
  });

  it("restart after the down was reported: only up(new)", async () => {
    const c = cluster();
    const [a] = await startNodes(c, "a", "b");
    const old = c.transport("b")!.incarnation;
    c.kill("b");
    await waitFor(() => countOf(a!, "down", "b") === 1, { timeoutMs: 2000 });
    const b2 = c.restart("b");
    await b2.start();
    await waitFor(() => countOf(a!, "up", "b") === 2, { timeoutMs: 1000 });
    expect(a!.events.map((e) => [e.type, e.incarnation])).toEqual([
      ["up", old],
      ["down", old],
      ["up", b2.incarnation],
    ]);
  });

  it("a stopped transport cannot start again; a running name cannot be created twice", async () => {
    const c = cluster();
    const [a] = await startNodes(c, "a");
    expect(() => c.node("a")).toThrow(/already running/);
    await a!.t.stop();
    await expect(a!.t.start()).rejects.toThrow(/restart/);
    a!.t.sendTo("a", "x", bytes(1));
    a!.t.broadcast("x", bytes(1));
    expect(a!.t.stats().dropped).toBe(2);
  });
});

describe("PeerTable (membership rules shared by every transport)", () => {
  function table(downAfterMs = 100) {
    let now = 0;
    const events: string[] = [];
    const t = new PeerTable({ downAfterMs, now: () => now, onEvent: (e) => events.push(`${e.type} ${e.node}@${e.incarnation}`) });
    return { t, events, advance: (ms: number) => ((now += ms), t.sweep()) };
  }

  it("frames from a node reported down are dropped until a heartbeat revives it", () => {
    const { t, events, advance } = table();
    expect(t.frame("b", "1")).toBe(true); // first frame = up
    advance(100);
    expect(events).toEqual(["up b@1", "down b@1"]);
    expect(t.frame("b", "1")).toBe(false);
    expect(t.isUp("b")).toBe(false);
    t.heartbeat("b", "1");
    expect(t.frame("b", "1")).toBe(true);
    expect(events).toEqual(["up b@1", "down b@1", "up b@1"]);
  });

  it("a superseded incarnation is dropped forever; a new one replaces it with down then up", () => {
    const { t, events } = table();
    t.heartbeat("b", "1");
    t.heartbeat("b", "2");
    expect(t.frame("b", "1")).toBe(false);
    t.heartbeat("b", "1");
    expect(t.members()).toEqual(["b"]);
    expect(t.incarnationOf("b")).toBe("2");
    expect(events).toEqual(["up b@1", "down b@1", "up b@2"]);
  });

  it("a new connection epoch of an up peer is reported as down then up (same incarnation)", () => {
    const { t, events } = table();
    t.heartbeat("b", "1", 1);
    t.heartbeat("b", "1", 1);
    expect(t.frame("b", "1", 2)).toBe(true);
    expect(events).toEqual(["up b@1", "down b@1", "up b@1"]);
  });

  it("markAllDown reports every up peer down once", () => {
    const { t, events } = table();
    t.heartbeat("b", "1");
    t.heartbeat("c", "1");
    t.markAllDown();
    t.markAllDown();
    expect(events).toEqual(["up b@1", "up c@1", "down b@1", "down c@1"]);
    expect(t.members()).toEqual([]);
  });

  it("property: per node, events alternate up/down starting with up, and each down names the incarnation last up", () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("hb" as const), node: fc.constantFrom("b", "c"), inc: fc.constantFrom("1", "2", "3"), epoch: fc.option(fc.constantFrom(1, 2), { nil: undefined }) }),
      fc.record({ k: fc.constant("frame" as const), node: fc.constantFrom("b", "c"), inc: fc.constantFrom("1", "2", "3"), epoch: fc.option(fc.constantFrom(1, 2), { nil: undefined }) }),
      fc.record({ k: fc.constant("time" as const), ms: fc.integer({ min: 0, max: 150 }) }),
      fc.record({ k: fc.constant("allDown" as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        let now = 0;
        const log: MembershipEvent[] = [];
        const t = new PeerTable({ downAfterMs: 100, now: () => now, onEvent: (e) => log.push(e) });
        for (const o of ops) {
          if (o.k === "hb") t.heartbeat(o.node, o.inc, o.epoch);
          else if (o.k === "frame") t.frame(o.node, o.inc, o.epoch);
          else if (o.k === "time") {
            now += o.ms;
            t.sweep();
          } else t.markAllDown();
        }
        for (const node of ["b", "c"]) {
          const mine = log.filter((e) => e.node === node);
          let up: string | undefined;
          for (const e of mine) {
            if (e.type === "up") {
              expect(up).toBeUndefined();
              up = e.incarnation;
            } else {
              expect(e.incarnation).toBe(up);
              up = undefined;
            }
          }
          expect(t.isUp(node)).toBe(up !== undefined);
        }
      }),
      { numRuns: 500 },
    );
  });
});
