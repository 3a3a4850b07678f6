/**
 * Two chat servers as two OS processes (`node src/main.ts` through tsx, as `npm start` runs
 * dist/main.js), joined through a real redis-server (REDIS_URL), with presence on
 * @cinder/presence. Users (phoenix.js clients) on different nodes chat and see each other's
 * presence; when one node is killed with SIGKILL, its users leave the other node's presence
 * within the down period, set short through PRESENCE_DOWN_MS.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createInterface } from "node:readline";
import { Presence, type Channel } from "phoenix";
import { freePort, startRedis, type RedisServer } from "../../../test/support/redis.js";
import { collect, connected, disconnectAll, joinOk, phxSocket, push, waitFor } from "./support/client.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const DOWN_MS = 1500;

interface ChatProcess {
  readonly name: string;
  readonly proc: ChildProcessWithoutNullStreams;
  readonly socketUrl: string;
  readonly output: string[];
  readonly exited: Promise<void>;
}

const procs: ChatProcess[] = [];
let redis: RedisServer;

/** Starts `node src/main.ts` with the cluster env; resolves once it listens. */
async function startChatProcess(name: string): Promise<ChatProcess> {
  const port = await freePort();
  const tsx = createRequire(join(root, "package.json")).resolve("tsx");
  const proc = spawn(process.execPath, ["--conditions=source", "--import", pathToFileURL(tsx).href, main], {
    cwd: root,
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      NODE_NAME: name,
      PORT: String(port),
      HOST: "127.0.0.1",
      PRESENCE_DOWN_MS: String(DOWN_MS),
      CLUSTER_HEARTBEAT_MS: "100",
      CLUSTER_DOWN_MS: "1000",
    },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const output: string[] = [];
  createInterface({ input: proc.stdout }).on("line", (l) => void output.push(l));
  proc.stderr.on("data", (d: Buffer) => void output.push(d.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const p: ChatProcess = { name, proc, socketUrl: `ws://127.0.0.1:${port}/socket`, output, exited };
  procs.push(p);
  await waitFor(() => output.some((l) => l.startsWith("chat: listening on")) || proc.exitCode !== null, `${name} listening`, 30_000);
  if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}:\n${output.join("\n")}`);
  expect(output.find((l) => l.startsWith("chat: listening on"))).toContain(`node ${name}, cluster via redis://127.0.0.1:${redis.port}`);
  return p;
}

async function kill(p: ChatProcess, signal: NodeJS.Signals): Promise<void> {
  if (p.proc.exitCode === null && p.proc.signalCode === null) {
    p.proc.kill(signal);
    await p.exited;
  }
}

beforeAll(async () => {
  redis = await startRedis();
}, 30_000);

afterAll(async () => {
  await disconnectAll();
  for (const p of procs) await kill(p, "SIGKILL");
  await redis?.stop();
});

const users = (p: Presence) => (p.list((k: string) => k) as string[]).sort().join();

describe("two chat processes through Redis", () => {
  it("users on different nodes chat and see each other's presence; a node killed with SIGKILL: its users leave the other node's presence within the down period", async () => {
    const [a, b] = await Promise.all([startChatProcess("chat-a"), startChatProcess("chat-b")]);
    const ann = await connected(phxSocket(a.socketUrl));
    const bob = await connected(phxSocket(b.socketUrl));
    const bea = await connected(phxSocket(b.socketUrl));
    const chAnn = ann.channel("room:two", { user: "ann" });
    const chBob = bob.channel("room:two", { user: "bob" });
    const chBea = bea.channel("room:two", { user: "bea" });
    const [pa, pb] = [new Presence(chAnn), new Presence(chBob)];
    await Promise.all([joinOk(chAnn), joinOk(chBob), joinOk(chBea)]);

    // presence: each node lists the other's users
    await waitFor(() => users(pa) === "ann,bea,bob" && users(pb) === "ann,bea,bob", "everyone sees everyone", 15_000);

    // chat across nodes (the first messages may go out before the other node's interest in
    // the room has reached this one: resend until one arrives, then check ordering of the rest)
    const gotBob = collect(chBob, "new_msg");
    const gotAnn = collect(chAnn, "new_msg");
    const deliver = async (from: Channel, got: Array<{ payload: any }>, body: string) => {
      for (let i = 0; !got.some((m) => m.payload.body === body); i++) {
        if (i % 20 === 0) expect((await push(from, "new_msg", { body })).status).toBe("ok");
        if (i > 200) throw new Error(`${body} never arrived`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    await deliver(chAnn, gotBob, "hi from a");
    await deliver(chBob, gotAnn, "hi from b");
    for (let i = 0; i < 5; i++) await push(chAnn, "new_msg", { body: `m${i}` });
    await waitFor(() => gotBob.filter((m) => /^m\d$/.test(m.payload.body)).length === 5, "bob gets ann's 5 messages", 5000);
    expect(gotBob.filter((m) => /^m\d$/.test(m.payload.body)).map((m) => m.payload.body)).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    expect(gotBob.find((m) => m.payload.body === "m0")!.payload).toEqual({ user: "ann", body: "m0", at: expect.any(Number) });

    // typing on node b shows on node a (one presence update)
    expect(await push(chBob, "typing", { typing: true })).toEqual({ status: "ok", response: {} });
    const typing = (p: Presence, who: string) => (p.list((k: string, v: any) => (k === who ? v.metas[0].typing : undefined)) as unknown[]).find((x) => x !== undefined);
    await waitFor(() => typing(pa, "bob") === true, "ann sees bob typing", 10_000);

    // node b dies without a word (its clients stop retrying only afterwards)
    const t0 = performance.now();
    await kill(b, "SIGKILL");
    bob.disconnect();
    bea.disconnect();
    await waitFor(() => users(pa) === "ann", "bob and bea left ann's view", DOWN_MS * 4);
    const elapsed = performance.now() - t0;
    // the down period after b's last heartbeat (an idle shard heartbeats every 11 ticks, so that
    // may be up to 11 ticks before the kill), plus a tick to notice: not a socket close, b never
    // said goodbye
    const tick = DOWN_MS / 20;
    expect(elapsed).toBeGreaterThanOrEqual(DOWN_MS - 12 * tick);
    expect(elapsed).toBeLessThan(DOWN_MS + 2 * tick + 1000);

    // node a carries on
    expect((await push(chAnn, "new_msg", { body: "still here" })).status).toBe("ok");
    await waitFor(() => gotAnn.some((m) => m.payload.body === "still here"), "ann's own broadcast", 5000);
    expect(a.proc.exitCode).toBeNull();
  }, 90_000);
});
