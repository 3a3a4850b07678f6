/**
 * Scheduler fairness (docs/semantics.md, "Limits in numbers"): a process handles at most
 * `budget` (200) messages per run, then goes to the back of the run queue; the scheduler yields
 * to the event loop after `turnBudget` (50,000) *messages* in one macrotask, so timers and
 * sockets stay live under a message storm. (A regression: the turn budget used to count
 * process runs, so a flooded actor could handle 50,000 × 200 messages before a timer fired.)
 */
import { describe, it, expect } from "vitest";
import { startNode, silentLogger } from "@cinder/runtime";

describe("scheduler fairness", () => {
  it("a message storm to one actor does not starve timers: a timer fires mid-drain", async () => {
    const node = await startNode({ logger: silentLogger });
    const N = 300_000;
    let handled = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const actor = node.spawn({
      handle() {
        if (++handled === N) done();
      },
    });
    for (let i = 0; i < N; i++) node.send(actor, i);
    // queued after the sends: with a turn budget in messages it runs before the drain ends
    const atTimer = await new Promise<number>((r) => setTimeout(() => r(handled), 0));
    await finished;
    expect(atTimer).toBeGreaterThan(0);
    expect(atTimer).toBeLessThan(N);
    // about one turn budget (50,000 messages, checked every 1,024) per macrotask; a 0 ms
    // timer is due after ≥ 1 ms and the first turn may have begun earlier: up to 3 turns
    expect(atTimer).toBeLessThanOrEqual(3 * (50_000 + 1_024));
    await node.stop();
  });

  it("a flooded actor yields after its per-run budget: another actor's message is handled meanwhile", async () => {
    const node = await startNode({ logger: silentLogger });
    const order: string[] = [];
    let floodHandled = 0;
    const flooded = node.spawn({
      handle() {
        floodHandled++;
      },
    });
    const other = node.spawn({
      handle() {
        order.push(`other after ${floodHandled}`);
      },
    });
    for (let i = 0; i < 10_000; i++) node.send(flooded, i);
    node.send(other, "hi");
    await new Promise((r) => setTimeout(r, 50));
    expect(floodHandled).toBe(10_000);
    // the other actor ran after the flooded one's first run of 200, not after all 10,000
    expect(order).toEqual(["other after 200"]);
    await node.stop();
  });

  it("FIFO holds through partial drains, refills and compaction of a mailbox", async () => {
    const node = await startNode({ logger: silentLogger });
    const me = node.process<number>();
    const got: number[] = [];
    const target = 5_000;
    for (let i = 0; i < 3_000; i++) me.send(me.pid, i);
    for (let i = 0; i < 1_500; i++) got.push((await me.receive()) as number);
    for (let i = 3_000; i < target; i++) me.send(me.pid, i);
    while (got.length < target) got.push((await me.receive()) as number);
    expect(got).toEqual(Array.from({ length: target }, (_, i) => i));
    expect(me.mailboxLength).toBe(0);
    await node.stop();
  });
});
