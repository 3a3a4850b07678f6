import { it, expect, afterEach } from "vitest";
import { startNode, spawnOn, silentLogger, type BlockedReport, type CinderNode } from "@cinder/runtime";
import { appendFileSync } from "node:fs";
const log = (...a: unknown[]) => appendFileSync("/tmp/wd.log", (performance.now()|0) + " " + a.map(String).join(" ") + "\n");
const mod = new URL("./fixtures/actors.ts", import.meta.url);
let node: CinderNode | undefined;
afterEach(async () => { log("afterEach"); await node?.stop(); log("afterEach done"); node = undefined; });
async function until(f: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
it("wd", async () => {
  const reports: BlockedReport[] = [];
  log("start");
  node = await startNode({ schedulers: 2, logger: silentLogger, workers: { watchdog: { blockedAfterMs: 200, heartbeatMs: 20, action: "restart" }, onBlocked: (r) => reports.push(r) } });
  log("started");
  const { pid } = await spawnOn(node, 1, { module: mod, export: "spinner" }, []);
  log("spawned", pid);
  const me = node.process();
  const mref = me.monitor(pid);
  node.send(pid, "spin");
  await until(() => reports.length > 0);
  log("reported");
  expect(reports[0]).toMatchObject({ scheduler: 1, pid });
  log(JSON.stringify(await me.receive({ timeout: 5000 })));
});
