/**
 * X1 child process: starts a node with a supervision tree, timers and pending requests, stops
 * it, prints one JSON line, and must then exit by itself (nothing may keep the event loop
 * alive). Run with `node_modules/.bin/tsx`; it imports the runtime from source.
 */
import { GenServer, Supervisor, silentLogger, startNode, type ChildSpec, type GenServerBehaviour, type Process } from "../../src/index.js";

const LONG = 60_000; // far beyond the test's deadline: any of these left armed would be noticed
const order: string[] = [];

const Worker: GenServerBehaviour<{ id: string; terminateMs: number }, "ping", "pong", never, unknown, { id: string; terminateMs: number }> = {
  init: (args) => args,
  handleCall: (_r, _f, st) => ({ reply: "pong", state: st }),
  async terminate(_reason, st) {
    // a terminate that never finishes (and holds no timer of its own)
    if (st.terminateMs > 0) await new Promise(() => {});
    order.push(st.id);
  },
};
const worker = (id: string, extra: Partial<ChildSpec> = {}, terminateMs = 0): ChildSpec => ({
  id,
  start: (sup) => GenServer.startLink(sup, Worker, { id, terminateMs }, { trapExit: true }),
  ...extra,
});

/** A server that never answers (its callers wait on their own timeouts). */
const Silent: GenServerBehaviour<null, "hello", never> = { init: () => null, handleCall: (_r, _f, st) => ({ state: st }) };

const node = await startNode({ name: "x1", logger: silentLogger });
await node.startChild(worker("first"));
await node.startChild(Supervisor.childSpec("tree", { children: [worker("tree.a"), worker("tree.b")] }));
// a child that ignores `shutdown` past its budget: killed after 150 ms (its terminate never logs)
await node.startChild(worker("stubborn", { shutdown: 150 }, 1));
await node.startChild(worker("last"));

// timers and waits that must not outlive the node
const me: Process<unknown> = node.process();
node.sendAfter(me.pid, "tick", LONG);
me.sendAfter(me.pid, "tock", LONG);
node.spawn(async (self) => {
  await self.receive({ timeout: LONG });
});
const silent = await GenServer.start(node, Silent, undefined);
const pendingCall = GenServer.call(node, silent, "hello", LONG).then(
  () => "resolved",
  (e: { code?: string }) => `rejected:${e.code}`,
);
const pendingInit = GenServer.start(node, { init: () => new Promise<null>(() => {}) }, undefined, { timeout: LONG }).then(
  () => "resolved",
  (e: { code?: string }) => `rejected:${e.code}`,
);

const t0 = performance.now();
await node.stop();
const stopMs = Math.round(performance.now() - t0);
const call = await Promise.race([pendingCall, new Promise((r) => setImmediate(() => r("pending")))]);
const init = await Promise.race([pendingInit, new Promise((r) => setImmediate(() => r("pending")))]);
const handles = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((h) => h === "Timeout");
process.stdout.write(`${JSON.stringify({ order, stopMs, processes: node.main.stats().processes, call, init, handles })}\n`);
