/** Thread services: a node-wide service with a part on every scheduler thread. */
import { describe, it, expect, afterEach } from "vitest";
import { startNode, silentLogger, type CinderNode } from "@cinder/runtime";

const mod = new URL("./fixtures/actors.ts", import.meta.url);
let node: CinderNode | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

async function until(f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("thread services", () => {
  it("everyThread installs a part on every worker, including one restarted later; service messages reach it in order", async () => {
    node = await startNode({ schedulers: 3, logger: silentLogger });
    const replies: Array<{ from: number; echo: unknown; live: number[] }> = [];
    node.threads.on("svc.reply", (d) => replies.push(d as never));
    await node.everyThread({ module: mod, export: "pingService" }, ["svc"]);
    expect(node.threads.schedulers()).toEqual([0, 1, 2]);
    for (let i = 0; i < 5; i++) node.threads.send(1, "svc", i);
    node.threads.broadcast("svc", "all");
    await until(() => replies.length === 7);
    expect(replies.filter((r) => r.from === 1).map((r) => r.echo)).toEqual([0, 1, 2, 3, 4, "all"]);
    expect(replies.filter((r) => r.from === 2).map((r) => r.echo)).toEqual(["all"]);
    expect(replies[0]!.live).toEqual([0, 1, 2]);
    // a thread that dies: parts hear about it; its restart gets the init again
    const downs: number[] = [];
    node.threads.onSchedulerDown((i) => downs.push(i));
    await node.killScheduler(2);
    await until(() => downs.includes(2));
    await node.schedulerReady(2);
    replies.length = 0;
    node.threads.send(2, "svc", "after restart");
    await until(() => replies.length === 1);
    expect(replies[0]).toMatchObject({ from: 2, echo: "after restart" });
  });
});
