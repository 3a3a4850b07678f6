/**
 * Channels: one actor per joined topic per connection, linked to its socket actor.
 *
 * An application writes a `ChannelBehaviour` (join, afterJoin, handleIn, handleInfo, terminate)
 * and routes topics to it. The channel actor runs the join, subscribes its topic with fastlane
 * metadata and sends the join result to its socket actor *in the same synchronous step*, so no
 * broadcast can reach the socket ahead of the join reply. Then it handles the client's pushes in
 * arrival order, one at a time; a slow handler delays only its own topic.
 *
 * The channel traps exits: when its socket actor ends (the connection closed, whatever the
 * code), it runs `terminate` and exits, which removes its subscriptions; a presence backend
 * monitoring it untracks it. A handler that throws kills only this channel: the socket sends
 * `phx_error` and the client rejoins.
 */
import type { CinderNode, ExitReason, Pid, Process, Ref, SystemMessage } from "@cinder/runtime";
import { broadcastMsg, isBroadcast } from "./fastlane.js";
import {
  EVENTS,
  FrameEncodeError,
  encodeBinaryPush,
  encodeBinaryReply,
  encodeText,
  isJsonObject,
  isReservedEvent,
  type JsonObject,
  type Message,
  type OutPayload,
} from "./protocol.js";
import type { ChannelsPubSub } from "./pubsub.js";

/** A reply: `status` is matched literally by the client's `receive(status)`. Never "timeout". */
export interface Reply {
  readonly status: string;
  readonly response?: OutPayload;
}

/** `{ reply: ok(response) }` */
export function ok(response: OutPayload = {}): Reply {
  return { status: "ok", response };
}

/** `{ reply: error(response) }` */
export function error(response: OutPayload = {}): Reply {
  return { status: "error", response };
}

/** Where an asynchronous reply goes: the push's own join_ref and ref. */
export interface ReplyRef {
  readonly joinRef: string | null;
  readonly ref: string | null;
}

/** What `join` returns: accept (with a response, default `{}`) or refuse (`{reason}` by convention). */
export type JoinResult = { readonly ok?: JsonObject; readonly error?: undefined } | { readonly error: JsonObject; readonly ok?: undefined };

/**
 * What `handleIn` returns: nothing (no reply: the client's push times out, or reply later with
 * `socket.reply`), a reply, and optionally `stop` to close the channel afterwards (`phx_close`).
 */
export type InResult = void | undefined | { readonly reply?: Reply; readonly stop?: true };

/** Why a channel ends, as given to `terminate`. */
export type TerminateReason = "leave" | "closed" | "duplicate_join" | "transport_closed" | { readonly error: unknown };

/** Connection-level information every channel of a connection shares. */
export interface ConnectionInfo {
  /** A node-unique id of the connection. */
  readonly id: string;
  /** The socket params as the client sent them (every leaf a string). */
  readonly params: Readonly<Record<string, unknown>>;
  /** What the connect handler returned for this connection. */
  readonly assigns: Readonly<Record<string, unknown>>;
}

/**
 * A channel as its callbacks see it. `assigns` is the channel's own mutable state (it starts as a
 * copy of the connection's assigns).
 */
export interface ChannelSocket {
  readonly topic: string;
  /**
   * The join_ref of this join. Each join is its own channel actor, and the socket drops frames
   * from an actor whose join has ended, so a frame never carries a stale join_ref.
   */
  readonly joinRef: string | null;
  /** The channel actor. */
  readonly self: Process<any>;
  /** The socket actor of the connection. */
  readonly socketPid: Pid;
  readonly connection: ConnectionInfo;
  readonly assigns: Record<string, unknown>;
  readonly node: CinderNode;
  /** Pushes `[J, null, topic, event, payload]` to this client only (bytes: a kind-0 binary frame). */
  push(event: string, payload: OutPayload): void;
  /** Broadcasts to every subscriber of the topic, this client included, on every node. */
  broadcast(event: string, payload: OutPayload): void;
  /** Broadcasts to every subscriber of the topic except this channel. */
  broadcastFrom(event: string, payload: OutPayload): void;
  /** Sends an asynchronous reply to a push (dropped if this join has ended meanwhile). */
  reply(ref: ReplyRef, reply: Reply): void;
  /** Closes the channel from the server once the current callback returns: `phx_close`, no rejoin. */
  close(): void;
}

/**
 * A channel module. Only `join` is required.
 *
 * @example
 * ```ts
 * import { ok, type ChannelBehaviour } from "./channel.js";
 * export const Echo: ChannelBehaviour = {
 *   join: (_topic, params) => (typeof params.name === "string" ? { ok: { welcome: params.name } } : { error: { reason: "name required" } }),
 *   handleIn: (event, payload, socket) => {
 *     if (event === "shout") socket.broadcast("shout", payload); // bytes too: a kind-2 frame
 *     return { reply: ok({ echoed: event }) };
 *   },
 * };
 * ```
 */
export interface ChannelBehaviour {
  /** Accept or refuse the join. Throwing refuses with `"join crashed"`. */
  join(topic: string, params: JsonObject, socket: ChannelSocket): JoinResult | Promise<JoinResult>;
  /** Runs after the ok reply is written (track presence, push `presence_state` here). */
  afterJoin?(socket: ChannelSocket): void | Promise<void>;
  /** A push from the client: JSON object payload, or a Buffer for a binary push. */
  handleIn?(event: string, payload: JsonObject | Buffer, socket: ChannelSocket, ref: ReplyRef): InResult | Promise<InResult>;
  /** Any other message sent to the channel actor. */
  handleInfo?(msg: unknown, socket: ChannelSocket): void | Promise<void>;
  /** The channel ends (not on a crash of its own). */
  terminate?(reason: TerminateReason, socket: ChannelSocket): void | Promise<void>;
}

// ---- messages between socket and channel actors ------------------------------------------

/** Socket → channel. */
export type ToChannel =
  | { readonly k: "join"; readonly params: JsonObject }
  | { readonly k: "in"; readonly msg: Message }
  | { readonly k: "leave" }
  | { readonly k: "dup" };

/** Channel → socket. */
export type FromChannel =
  | { readonly k: "joined"; readonly pid: Pid; readonly response: JsonObject }
  | { readonly k: "join_error"; readonly pid: Pid; readonly response: JsonObject }
  /** An encoded push or reply of this join (dropped by the socket if the join has ended). */
  | { readonly k: "out"; readonly pid: Pid; readonly data: string | Buffer; readonly binary: boolean };

/** Exit reasons a channel ends with; the socket turns them into frames. */
export const EXIT = {
  left: { shutdown: "left" },
  closed: { shutdown: "closed" },
  duplicate: { shutdown: "duplicate_join" },
  refused: { shutdown: "join_refused" },
  transport: { shutdown: "transport_closed" },
} as const;

/** The `shutdown` kind of an exit reason (`normal` counts as `closed`), or undefined. */
export function shutdownKind(reason: ExitReason): string | undefined {
  if (reason === "normal") return "closed";
  if (typeof reason === "object" && reason !== null && "shutdown" in reason && typeof (reason as { shutdown: unknown }).shutdown === "string") return (reason as { shutdown: string }).shutdown;
  return undefined;
}

export class ChannelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChannelError";
  }
}

/** Everything a channel actor needs at spawn. */
export interface ChannelInit {
  readonly node: CinderNode;
  readonly pubsub: ChannelsPubSub;
  readonly behaviour: ChannelBehaviour;
  readonly topic: string;
  readonly joinRef: string | null;
  readonly socketPid: Pid;
  readonly connection: ConnectionInfo;
}

/**
 * Spawns a channel actor linked to `socket` (the socket actor process). The join runs when the
 * `{k: "join"}` message arrives, which the socket sends right after spawning.
 */
export function spawnChannel(socket: Process<any>, init: ChannelInit): Ref<ToChannel> {
  const { node, pubsub, behaviour: b, topic, joinRef, socketPid } = init;
  let self!: Process<any>;
  let joined = false;
  let closing = false;
  let ended = false;

  const toSocket = (m: FromChannel) => self.send(socketPid, m);
  const checkEvent = (event: string) => {
    if (typeof event !== "string" || event.length === 0) throw new ChannelError("event must be a non-empty string");
    if (isReservedEvent(event)) throw new ChannelError(`event ${JSON.stringify(event)} is reserved`);
  };
  const checkPayload = (payload: OutPayload) => {
    if (!isJsonObject(payload) && !(payload instanceof Uint8Array)) throw new ChannelError("payload must be a JSON object or bytes");
  };
  const checkBinaryBroadcast = (event: string, payload: OutPayload) => {
    if (!(payload instanceof Uint8Array)) return;
    const t = Buffer.byteLength(topic),
      e = Buffer.byteLength(event);
    if (t > 255) throw new FrameEncodeError("topic", t);
    if (e > 255) throw new FrameEncodeError("event", e);
  };

  const sock: ChannelSocket = {
    topic,
    joinRef,
    get self() {
      return self;
    },
    socketPid,
    connection: init.connection,
    assigns: { ...init.connection.assigns },
    node,
    push(event, payload) {
      checkEvent(event);
      checkPayload(payload);
      const binary = payload instanceof Uint8Array;
      const data = binary ? encodeBinaryPush(joinRef ?? "", topic, event, payload) : encodeText(joinRef, null, topic, event, payload);
      if (!ended) toSocket({ k: "out", pid: self.pid, data, binary });
    },
    broadcast(event, payload) {
      checkEvent(event);
      checkPayload(payload);
      checkBinaryBroadcast(event, payload);
      pubsub.broadcast(self, topic, broadcastMsg(topic, event, payload));
    },
    broadcastFrom(event, payload) {
      checkEvent(event);
      checkPayload(payload);
      checkBinaryBroadcast(event, payload);
      pubsub.broadcastFrom(self, self.pid, topic, broadcastMsg(topic, event, payload));
    },
    reply(ref, reply) {
      if (typeof reply.status !== "string" || reply.status.length === 0 || reply.status === "timeout") throw new ChannelError(`invalid reply status ${JSON.stringify(reply.status)}`);
      const response = reply.response ?? {};
      checkPayload(response);
      if (ref.ref === null || ended) return;
      const binary = response instanceof Uint8Array;
      const data = binary ? encodeBinaryReply(ref.joinRef, ref.ref, topic, reply.status, response) : encodeText(ref.joinRef, ref.ref, topic, EVENTS.reply, { status: reply.status, response });
      toSocket({ k: "out", pid: self.pid, data, binary });
    },
    close() {
      closing = true;
    },
  };

  /** Runs `terminate`, unsubscribes and exits with `reason`. */
  const end = async (why: TerminateReason, reason: ExitReason): Promise<void> => {
    if (ended) return;
    ended = true;
    if (joined) pubsub.unsubscribe(self, topic);
    if (b.terminate) {
      try {
        await b.terminate(why, sock);
      } catch (e) {
        node.logger.error(`channel ${topic} (${self.pid}) terminate threw: ${String(e)}`);
      }
    }
    self.exit(reason);
  };

  const afterCallback = async (): Promise<void> => {
    if (closing && !ended) await end("closed", EXIT.closed);
  };

  const doJoin = async (params: JsonObject): Promise<void> => {
    let result: JoinResult;
    try {
      result = await b.join(topic, params, sock);
    } catch (e) {
      node.logger.error(`channel ${topic}: join crashed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      ended = true;
      toSocket({ k: "join_error", pid: self.pid, response: { reason: "join crashed" } });
      self.exit(EXIT.refused);
      return;
    }
    if (result === null || typeof result !== "object" || (result.error === undefined && result.ok !== undefined && !isJsonObject(result.ok))) {
      ended = true;
      toSocket({ k: "join_error", pid: self.pid, response: { reason: "join crashed" } });
      self.exit(EXIT.refused);
      return;
    }
    if (result.error !== undefined) {
      ended = true;
      toSocket({ k: "join_error", pid: self.pid, response: isJsonObject(result.error) ? result.error : { reason: "refused" } });
      self.exit(EXIT.refused);
      return;
    }
    // subscribe and hand over the reply in one synchronous step: no broadcast can precede it
    pubsub.subscribe(self, topic, { fastlane: socketPid });
    joined = true;
    toSocket({ k: "joined", pid: self.pid, response: result.ok ?? {} });
    if (closing) return afterCallback();
    if (b.afterJoin) await b.afterJoin(sock);
    await afterCallback();
  };

  const handleIn = async (msg: Message): Promise<void> => {
    if (!b.handleIn) return;
    const ref: ReplyRef = { joinRef: msg.joinRef, ref: msg.ref };
    const r = await b.handleIn(msg.event, msg.payload as JsonObject | Buffer, sock, ref);
    if (r && typeof r === "object") {
      if (r.reply) sock.reply(ref, r.reply);
      if (r.stop) closing = true;
    }
    await afterCallback();
  };

  const handle = (m: ToChannel | SystemMessage | unknown): void | Promise<void> => {
    if (ended) return;
    const msg = m as { k?: string; type?: string };
    if (msg !== null && typeof msg === "object") {
      if (msg.type === "EXIT") {
        const ex = m as { from: Pid; reason: ExitReason };
        if (ex.from === socketPid) return end("transport_closed", EXIT.transport);
        // a linked helper died abnormally: crash like an unlinked process would
        if (ex.reason !== "normal") throw new ChannelError(`linked process ${ex.from} exited: ${String(ex.reason)}`);
        return;
      }
      switch (msg.k) {
        case "join":
          return doJoin((m as { params: JsonObject }).params);
        case "in":
          return handleIn((m as { msg: Message }).msg);
        case "leave":
          return end("leave", EXIT.left);
        case "dup":
          return end("duplicate_join", EXIT.duplicate);
      }
      if (isBroadcast(m)) return; // plain broadcasts reach channels only without fastlane
    }
    if (b.handleInfo) {
      const r = b.handleInfo(m, sock);
      if (r && typeof (r as Promise<void>).then === "function") return (r as Promise<void>).then(afterCallback);
      return afterCallback();
    }
  };

  const pid = socket.spawnLink<ToChannel>(
    {
      init(p) {
        self = p;
      },
      handle,
    },
    { label: `channel ${topic}`, trapExit: true },
  );
  return pid;
}
