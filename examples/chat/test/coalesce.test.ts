/**
 * Write coalescing in the endpoint (src/channels/coalesce.ts): the frames queued for a socket go
 * out in one write, a lone frame is not held back, order is kept, and a window > 0 holds frames
 * across turns. Writes are counted on the server side of each TCP connection.
 */
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "@cinder/runtime";
import { ok, type ChannelBehaviour, type Connection } from "../src/channels/index.js";
import { rawSocket } from "../src/channels/coalesce.js";
import { startChat, type ChatServer } from "../src/server.js";
import { RawClient, waitFor } from "./support/client.js";

let server: ChatServer | undefined;
const clients: RawClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.stop();
  server = undefined;
});

/** `burst:*`: push `{ n }` pushes n frames from one handler call; `tick` pushes one. */
const burstChannel: ChannelBehaviour = {
  join: () => ({ ok: {} }),
  handleIn(event, p, socket) {
    if (event === "burst") {
      for (let i = 0; i < Number((p as { n: number }).n); i++) socket.push("b", { i });
      return { reply: ok() };
    }
    socket.push("b", { i: -1 });
    return;
  },
};

async function setup(coalesceMs?: number | false): Promise<{ c: RawClient; writes: () => number; conn: Connection }> {
  server = await startChat({ port: 0, logger: silentLogger, channels: [["burst:*", burstChannel]], endpoint: coalesceMs === undefined ? {} : { coalesceMs } });
  const c = await RawClient.open(`${server.socketUrl}/websocket?vsn=2.0.0`);
  clients.push(c);
  expect((await c.call(["1", "1", "burst:x", "phx_join", {}]))[4]).toMatchObject({ status: "ok" });
  const conn = server.endpoint.connections()[0]!;
  const sock = rawSocket(conn.ws)! as unknown as { _write: (...a: unknown[]) => unknown; _writev: (...a: unknown[]) => unknown };
  let n = 0;
  for (const k of ["_write", "_writev"] as const) {
    const orig = sock[k].bind(sock);
    sock[k] = (...a: unknown[]) => (n++, orig(...a));
  }
  return { c, writes: () => n, conn };
}

const pushes = (c: RawClient) => c.matching((f) => f[3] === "b").map((f) => (f[4] as { i: number }).i);

describe("write coalescing", () => {
  it("the frames queued for a socket go out in one write: 200 pushes and their reply from one handler are one or two writes, in order", async () => {
    const { c, writes } = await setup();
    c.send(["1", "2", "burst:x", "burst", { n: 200 }]);
    await waitFor(() => c.matching((f) => f[3] === "phx_reply" && f[1] === "2").length === 1, "the reply");
    expect(pushes(c)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(writes()).toBeLessThanOrEqual(2);
  });

  it("without coalescing (coalesceMs: false) each frame is its own write", async () => {
    const { c, writes } = await setup(false);
    c.send(["1", "2", "burst:x", "burst", { n: 200 }]);
    await waitFor(() => c.matching((f) => f[3] === "phx_reply" && f[1] === "2").length === 1, "the reply");
    expect(pushes(c)).toHaveLength(200);
    expect(writes()).toBeGreaterThanOrEqual(200);
  });

  it("a lone frame is not held back: each of a sequence of single pushes is written before the next is asked for", async () => {
    const { c, writes } = await setup();
    for (let k = 1; k <= 5; k++) {
      c.send(["1", String(10 + k), "burst:x", "tick", {}]);
      await waitFor(() => pushes(c).length === k, `push ${k}`, 1000);
      expect(writes()).toBe(k);
    }
  });

  it("a window > 0 holds frames across turns: pushes asked for one by one within the window share a write", async () => {
    const { c, writes } = await setup(300);
    c.send(["1", "20", "burst:x", "tick", {}]); // after a quiet spell: at the end of the turn
    await waitFor(() => pushes(c).length === 1, "the first push");
    const t1 = performance.now();
    const w1 = writes();
    for (let k = 0; k < 5; k++) {
      c.send(["1", String(21 + k), "burst:x", "tick", {}]);
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => pushes(c).length === 6, "the held pushes", 3000);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(200); // held until the window closed
    expect(writes() - w1).toBeLessThanOrEqual(2);
    expect(server!.endpoint.coalescer!.flushes).toBeGreaterThanOrEqual(2);
  });
});
