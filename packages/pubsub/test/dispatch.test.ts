/** Dispatchers (PUBSUB.md 1.4, 2.7): registry, per-scheduler calls, P40 locally and across schedulers. */
import { describe, expect, it } from "vitest";
import { startNode, type Pid } from "@cinder/runtime";
import { PubSub, registerDispatcher } from "@cinder/pubsub";
import { addSchedulers, captureLogger, drain, idleOn, tick } from "./support/harness.js";

const seen: Array<{ scheduler: number; n: number; from: Pid | null }> = [];
registerDispatcher("test.dispatch.per-scheduler", (entries, from, msg, ctx) => {
  seen.push({ scheduler: ctx.scheduler, n: entries.length, from });
  for (const e of entries) if (e.pid !== from) ctx.send(e, msg);
});
registerDispatcher("test.dispatch.throws", (entries, _from, msg, ctx) => {
  if (msg === "boom") throw new Error("dispatcher boom");
  for (const e of entries) ctx.send(e, msg);
});

describe("dispatchers", () => {
  it("is called once per scheduler that has entries, with that scheduler's entries only", async () => {
    const node = await startNode({ schedulers: 1 });
    const [s1, s2] = addSchedulers(node, 2);
    const ps = await PubSub.start(node, { name: "ps" });
    const subs = [node.process(), idleOn(s1!), idleOn(s1!), idleOn(s2!)];
    for (const p of subs) PubSub.subscribe(p, ps, "t");
    seen.length = 0;
    PubSub.broadcast(node, ps, "t", "m", "test.dispatch.per-scheduler");
    await tick();
    expect(seen.sort((x, y) => x.scheduler - y.scheduler)).toEqual([
      { scheduler: 0, n: 1, from: null },
      { scheduler: 1, n: 2, from: null },
      { scheduler: 2, n: 1, from: null },
    ]);
    for (const p of subs) expect(drain(p)).toEqual(["m"]);
    await node.stop();
  });

  it("P40 a dispatcher that throws is counted and logged; broadcaster, hops and schedulers survive", async () => {
    const log = captureLogger();
    const node = await startNode({ schedulers: 1, logger: log });
    const [s1] = addSchedulers(node, 1);
    const ps = await PubSub.start(node, { name: "ps" });
    const here = node.process();
    const there = idleOn(s1!);
    PubSub.subscribe(here, ps, "t");
    PubSub.subscribe(there, ps, "t");
    const broadcaster = node.process();
    expect(PubSub.broadcast(broadcaster, ps, "t", "boom", "test.dispatch.throws")).toBe("ok");
    await tick();
    expect(PubSub.stats(ps).dispatcherErrors).toBe(2); // once per scheduler
    expect(log.lines.filter((l) => l.includes("dispatcher test.dispatch.throws threw"))).toHaveLength(2);
    expect(broadcaster.alive).toBe(true);
    PubSub.broadcast(broadcaster, ps, "t", "fine", "test.dispatch.throws");
    PubSub.broadcast(broadcaster, ps, "t", "plain");
    await tick();
    expect(drain(here)).toEqual(["fine", "plain"]);
    expect(drain(there)).toEqual(["fine", "plain"]);
    await node.stop();
  });

  it("registry: an id names one function; unknown ids are rejected at the broadcaster", () => {
    const f = () => {};
    registerDispatcher("test.dispatch.once", f);
    registerDispatcher("test.dispatch.once", f);
    expect(() => registerDispatcher("test.dispatch.once", () => {})).toThrow(/already registered/);
    expect(() => registerDispatcher("", f)).toThrow(/non-empty/);
  });
});
