/**
 * Chaos: a supervision tree spread over two worker threads under steady message load; random
 * actors and whole threads are killed round after round. Checks: the tree is restored each
 * round, every DOWN arrives exactly once, no orphan process remains after the tree stops, and
 * no message between two live actors is lost or reordered.
 */
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { startNode, spawnOn, startGenServerOn, GenServer, Supervisor, silentLogger, type ChildSpec, type DownMessage, type Pid } from "@cinder/runtime";

const mod = new URL("./fixtures/actors.ts", import.meta.url);
const ref = (e: string) => ({ module: mod, export: e });
const ROUNDS = Number(process.env.CHAOS_ROUNDS ?? 12);

async function until(f: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("chaos", () => {
  it("killing random actors and whole worker threads: tree restored, DOWN exactly once, no orphans, no loss or reorder between live actors", async () => {
    const node = await startNode({ schedulers: 3, logger: silentLogger });
    const report = node.process({ name: "chaos.report" });
    const children: ChildSpec[] = [
      { id: "rcv", start: (s) => startGenServerOn(s, 2, ref("ChaosReceiverServer"), "chaos.report", { link: s, name: "rcv" }) },
      { id: "snd1", start: async (s) => (await spawnOn(s, 1, ref("chaosSender"), ["rcv"], { link: s })).pid },
      { id: "snd2", start: async (s) => (await spawnOn(s, 2, ref("chaosSender"), ["rcv"], { link: s })).pid },
      { id: "c1", start: (s) => startGenServerOn(s, 1, ref("Counter"), 0, { link: s }) },
      { id: "c2", start: (s) => startGenServerOn(s, 2, ref("Counter"), 0, { link: s }) },
      { id: "c3", start: (s) => startGenServerOn(s, 1, ref("Counter"), 0, { link: s }) },
    ];
    const sup = await Supervisor.start(node, { strategy: "one_for_one", maxRestarts: 10_000, maxSeconds: 1, children });
    const watcher = node.process();
    const downs = new Map<string, number>(); // monitor ref → DOWNs seen
    const refOf = new Map<Pid, string>();

    const livePids = async () => (await Supervisor.whichChildren(node, sup)).map((c) => c.pid);
    const watchAll = async () => {
      for (const pid of await livePids()) {
        if (typeof pid === "string" && pid !== "restarting" && !refOf.has(pid)) {
          const r = watcher.monitor(pid);
          refOf.set(pid, r);
          downs.set(r, 0);
        }
      }
    };
    const drainDowns = () => {
      for (const m of watcher.flush((x) => (x as DownMessage).type === "DOWN") as DownMessage[]) downs.set(m.ref, (downs.get(m.ref) ?? 0) + 1);
    };

    await watchAll();
    const rng = fc.sample(fc.tuple(fc.boolean(), fc.nat(5), fc.integer({ min: 1, max: 2 })), { numRuns: ROUNDS, seed: 42 });
    for (const [killThread, child, thread] of rng) {
      if (killThread) await node.killScheduler(thread);
      else {
        const pids = await livePids();
        const victim = pids[child];
        if (typeof victim === "string" && victim !== "restarting") node.exit(victim as Pid, "kill");
      }
      await until(async () => {
        await watchAll();
        drainDowns();
        const pids = await livePids();
        // restored: every listed child is a pid we monitor that has not gone DOWN
        if (!pids.every((p) => typeof p === "string" && p !== "restarting" && refOf.has(p as Pid) && downs.get(refOf.get(p as Pid)!) === 0)) {
          if (process.env.CHAOS_DEBUG) console.log("listed:", pids, pids.map((p) => downs.get(refOf.get(p as Pid)!)));
          return false;
        }
        // a round trip to each server child proves it alive (and lets in-flight DOWNs land)
        try {
          for (const pid of [pids[0], ...pids.slice(3)]) await GenServer.call(node, pid as Pid, pid === pids[0] ? { op: "count" } : "get");
        } catch (e) {
          if (process.env.CHAOS_DEBUG) console.log("not yet:", pids, (e as Error).message);
          return false;
        }
        drainDowns();
        return pids.every((p) => downs.get(refOf.get(p as Pid)!) === 0);
      });
      await watchAll();
      // the restored counters answer
      for (const pid of (await livePids()).slice(3)) expect(await GenServer.call(node, pid as Pid, "get")).toBe(0);
      // load keeps flowing to the (possibly new) receiver
      const before = (await GenServer.call(node, "rcv", { op: "count" })) as { received: number };
      await until(async () => ((await GenServer.call(node, "rcv", { op: "count" })) as { received: number }).received > before.received);
    }
    await new Promise((r) => setTimeout(r, 50));
    drainDowns();
    // exactly once: no monitor saw two DOWNs
    expect([...downs.values()].every((n) => n <= 1)).toBe(true);
    // no message between live actors lost or reordered
    const violations = report.flush((m) => typeof m === "object" && m !== null && "violation" in m);
    expect(violations).toEqual([]);
    // stop the tree: every process on the workers is gone (no orphans), every remaining monitor fires once
    await Supervisor.stop(node, sup, "shutdown");
    await until(async () => {
      const st = await node.stats();
      return st.slice(1).every((s) => s.processes === 0);
    });
    await new Promise((r) => setTimeout(r, 50));
    drainDowns();
    expect([...downs.values()].every((n) => n === 1)).toBe(true);
    await node.stop();
  }, 120_000);
});
