/**
 * A chat server on a free loopback port, plus a `test:*` channel whose behaviour the test
 * controls through its join params and push events, and a probe recording what reached the
 * server's handlers.
 */
import { silentLogger, type Logger } from "@cinder/runtime";
import { FrameEncodeError, error, ok, type ChannelBehaviour, type JsonObject } from "../../src/channels/index.js";
import type { Presence } from "../../src/presence/types.js";
import { startChat, type ChatOptions, type ChatServer } from "../../src/server.js";

export interface Call {
  kind: "join" | "in" | "terminate" | "info";
  topic: string;
  event?: string;
  joinRef?: string | null;
  ref?: string | null;
  payload?: unknown;
  reason?: unknown;
}

/** What the test channel saw, and the gates that stall it. */
export class Probe {
  readonly calls: Call[] = [];
  readonly connects: Array<{ params: unknown; authToken: string | undefined }> = [];
  private readonly gates = new Map<string, { promise: Promise<void>; open: () => void }>();

  /** A gate: a join or push naming it waits until `open(name)`. */
  gate(name: string): Promise<void> {
    let g = this.gates.get(name);
    if (!g) {
      let open!: () => void;
      const promise = new Promise<void>((r) => (open = r));
      this.gates.set(name, (g = { promise, open }));
    }
    return g.promise;
  }

  open(name: string): void {
    this.gate(name);
    this.gates.get(name)!.open();
  }

  openAll(): void {
    for (const g of this.gates.values()) g.open();
  }

  of(kind: Call["kind"], topic?: string): Call[] {
    return this.calls.filter((c) => c.kind === kind && (topic === undefined || c.topic === topic));
  }
}

/** The test channel. Join params: `refuse`, `throw`, `stall` (gate name), `user` (track presence). */
export function testChannel(probe: Probe, presence: Presence): ChannelBehaviour {
  return {
    async join(topic, params, socket) {
      probe.calls.push({ kind: "join", topic, joinRef: socket.joinRef, payload: params });
      if (typeof params.stall === "string") await probe.gate(params.stall);
      if (params.throw) throw new Error("join handler blew up (on purpose)");
      if (typeof params.refuse === "string") return { error: { reason: params.refuse } };
      if (typeof params.user === "string") socket.assigns.user = params.user;
      return { ok: { welcome: params.name ?? "anon", join_ref: socket.joinRef } };
    },
    async afterJoin(socket) {
      const user = socket.assigns.user;
      if (typeof user !== "string") return;
      await presence.track(socket.self.pid, socket.topic, user, { online_at: Date.now(), typing: false });
      socket.push("presence_state", presence.list(socket.topic));
    },
    async handleIn(event, payload, socket, ref) {
      probe.calls.push({ kind: "in", topic: socket.topic, event, joinRef: ref.joinRef, ref: ref.ref, payload });
      const p = payload as JsonObject;
      switch (event) {
        case "echo":
          return { reply: ok(p) };
        case "fail":
          return { reply: error(p) };
        case "noreply":
          return;
        case "crash":
          throw new Error("handleIn blew up (on purpose)");
        case "stall":
          await probe.gate(String(p.gate));
          return { reply: ok({ stalled: true }) };
        case "close":
          return { reply: ok(), stop: true };
        case "async":
          setTimeout(() => socket.reply(ref, ok({ late: true })), Number(p.ms ?? 10));
          return;
        case "push":
          socket.push(String(p.event), (p.payload as JsonObject) ?? {});
          return { reply: ok() };
        case "push_bin":
          socket.push("bin", Buffer.from(p.bytes as number[]));
          return { reply: ok() };
        case "broadcast":
          socket.broadcast(String(p.event), (p.payload as JsonObject) ?? {});
          return { reply: ok() };
        case "broadcast_from":
          socket.broadcastFrom(String(p.event), (p.payload as JsonObject) ?? {});
          return { reply: ok() };
        case "broadcast_bin":
          socket.broadcast("blob", Buffer.from(p.bytes as number[]));
          return { reply: ok() };
        case "bin":
          // a binary push: answer with a kind-1 reply of the same bytes
          return { reply: ok(payload as Buffer) };
        case "long_field": {
          try {
            socket.push("e".repeat(300), Buffer.from([1, 2, 3]));
          } catch (e) {
            return { reply: error({ reason: e instanceof FrameEncodeError ? "encode failed" : String(e) }) };
          }
          return { reply: ok() };
        }
        case "typing":
          await presence.update(socket.self.pid, socket.topic, String(socket.assigns.user), (m) => ({ ...m, typing: Boolean(p.typing) }));
          return { reply: ok() };
        default:
          return { reply: error({ reason: "unknown event" }) };
      }
    },
    handleInfo(msg, socket) {
      probe.calls.push({ kind: "info", topic: socket.topic, payload: msg });
      if (msg === "kick") socket.close();
    },
    async terminate(reason, socket) {
      probe.calls.push({ kind: "terminate", topic: socket.topic, joinRef: socket.joinRef, reason });
      if (typeof socket.assigns.user === "string") await presence.untrack(socket.self.pid, socket.topic, socket.assigns.user);
    },
  };
}

export interface TestServer extends ChatServer {
  readonly probe: Probe;
}

/** Starts a chat server with the test channel on a free port; pass `logger` to see crash logs. */
export async function startTestServer(opts: Partial<ChatOptions> & { logger?: Logger } = {}): Promise<TestServer> {
  const probe = new Probe();
  const userConnect = opts.endpoint?.connect;
  const chat = await startChat({
    port: 0,
    logger: silentLogger,
    ...opts,
    channels: ({ presence }) => [["test:*", testChannel(probe, presence)]],
    endpoint: {
      ...opts.endpoint,
      connect: async (info) => {
        probe.connects.push({ params: info.params, authToken: info.authToken });
        return userConnect ? userConnect(info) : {};
      },
    },
  });
  return Object.assign(chat, { probe });
}

/** The pid of the channel process joined to `topic` on the server's only/first matching connection. */
export function channelPids(server: ChatServer, topic: string): string[] {
  const out: string[] = [];
  for (const c of server.endpoint.connections()) {
    const e = c.topics.get(topic);
    if (e) out.push(e.pid);
  }
  return out;
}
