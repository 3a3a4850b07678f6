import { describe, it, expect } from "vitest";
import { startNode, GenServer, Supervisor, Timeout, silentLogger, type GenServerBehaviour, type Process } from "@cinder/runtime";

describe("smoke", () => {
  it("ping-pong between a body process and the outside", async () => {
    const node = await startNode({ logger: silentLogger });
    const echo = node.spawn(async (self: Process<{ from: string; n: number }>) => {
      for (;;) {
        const m = (await self.receive()) as { from: string; n: number };
        self.send(m.from, m.n + 1);
      }
    });
    const me = node.process();
    me.send(echo, { from: me.pid, n: 1 });
    expect(await me.receive()).toBe(2);
    expect(await me.receive({ timeout: 10 })).toBe(Timeout);
    await node.stop();
  });

  it("supervised genserver restarts after a crash", async () => {
    const node = await startNode({ logger: silentLogger });
    const Counter: GenServerBehaviour<number, "inc" | "boom", number> = {
      init: () => 0,
      handleCall: (r, _f, n) => {
        if (r === "boom") throw new Error("boom");
        return { reply: n + 1, state: n + 1 };
      },
    };
    const sup = await Supervisor.start(node, { children: [{ id: "c", start: (s) => GenServer.startLink(s, Counter, undefined, { name: "c" }) }] });
    expect(await GenServer.call(node, "c", "inc")).toBe(1);
    const before = node.whereis("c");
    await expect(GenServer.call(node, "c", "boom")).rejects.toThrow();
    for (let i = 0; i < 100 && (node.whereis("c") === undefined || node.whereis("c") === before); i++) await new Promise((r) => setTimeout(r, 5));
    expect(node.whereis("c")).not.toBe(before);
    expect(await GenServer.call(node, "c", "inc")).toBe(1);
    const kids = await Supervisor.whichChildren(node, sup);
    expect(kids[0]!.pid).toBe(node.whereis("c"));
    await node.stop();
  });
});
