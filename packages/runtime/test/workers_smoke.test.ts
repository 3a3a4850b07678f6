import { describe, it, expect } from "vitest";
import { startNode, spawnOn, startGenServerOn, GenServer, Dirty, silentLogger } from "@cinder/runtime";

const mod = new URL("./fixtures/actors.ts", import.meta.url);
describe("workers smoke", () => {
  it("spawns on a worker and exchanges messages", async () => {
    const node = await startNode({ schedulers: 2, logger: silentLogger });
    const { pid, scheduler } = await spawnOn(node, 1, { module: mod, export: "echo" }, []);
    expect(scheduler).toBe(1);
    const me = node.process();
    for (let i = 0; i < 100; i++) me.send(pid, { to: me.pid, msg: i });
    for (let i = 0; i < 100; i++) expect(await me.receive()).toBe(i);
    const c = await startGenServerOn(node, 1, { module: mod, export: "Counter" }, 5, { name: "ctr" });
    expect(await GenServer.call(node, "ctr", "inc")).toBe(6);
    expect(node.whereis("ctr")).toBe(c);
    expect(await Dirty.run(node, { module: mod, export: "fib" }, [20])).toBe(6765);
    await node.stop();
  });
});
