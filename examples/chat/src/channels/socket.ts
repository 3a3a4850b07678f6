/**
 * One WebSocket connection: the connection layer (frames in and out, heartbeats, limits, close
 * codes) and the socket actor (the per-connection topic table and routing to channel actors).
 *
 * Connection layer, in the `ws` callbacks: every inbound frame is size-limited (`ws`
 * `maxPayload`: 1009), UTF-8-checked (`ws`: 1007), rate-limited (token bucket: 1013), decoded
 * (malformed: 1007 "malformed frame"), and its JSON payload checked (not an object: error reply
 * `"invalid payload"`). Heartbeats are answered right there, never behind a mailbox. Everything
 * else goes to the socket actor. No exception escapes: a bug here closes with 1011.
 *
 * Socket actor: keeps `topic → { joinRef, state: joining | joined | closing, channel pid }` and
 * processes each topic's frames in arrival order. While a topic is joining or closing, its
 * frames wait in a per-topic queue (other topics and heartbeats go on); they are replayed once
 * the join or teardown has settled, so a leave sent after a slow join leaves it, and a second
 * join of a joined topic closes the first (`phx_close` with the old join_ref) before joining.
 * Channel exits become frames: left → ok reply + `phx_close`; closed → `phx_close`;
 * duplicate → `phx_close` (old join_ref); crash → `phx_error`.
 */
import type { CinderNode, ExitReason, Pid, Process, Ref, TimerRef } from "@cinder/runtime";
import type { WebSocket } from "ws";
import { EXIT, shutdownKind, spawnChannel, type ChannelBehaviour, type ConnectionInfo, type FromChannel, type ToChannel } from "./channel.js";
import { rawSocket, type Corked, type WriteCoalescer } from "./coalesce.js";
import type { FrameMsg } from "./fastlane.js";
import { CLOSE, EVENTS, MalformedFrameError, PHOENIX_TOPIC, decodeBinary, decodeText, encodeText, isJsonObject, type JsonObject, type Message } from "./protocol.js";
import type { ChannelsPubSub } from "./pubsub.js";

/** Limits and timings of a connection (see `EndpointOptions`). */
export interface ConnectionLimits {
  maxChannels: number;
  idleTimeoutMs: number;
  maxBufferedBytes: number;
  /** Sustained inbound frames per second, and the bucket size (burst). */
  ratePerSecond: number;
  rateBurst: number;
  closeTimeoutMs: number;
  /** After the transport closes, channels still alive after this are killed. */
  channelShutdownMs: number;
}

/** Hooks for tests and instrumentation. */
export interface ConnectionHooks {
  /** Return false to withhold the reply to this heartbeat (forces a client heartbeat timeout). */
  heartbeat?(conn: Connection): boolean;
  /** Sees every frame written (the same object for every recipient of a broadcast). */
  frameOut?(conn: Connection, data: string | Buffer, binary: boolean): void;
  /** Sees every decoded inbound frame handed to the socket actor. */
  frameIn?(conn: Connection, msg: Message): void;
}

/** Counters shared by an endpoint's connections. */
export interface EndpointStats {
  accepted: number;
  rejected: Record<number, number>;
  /** Closes the server started, by code. */
  closes: Record<number, number>;
  /** Connections ended, by the close code of the close event (1005 none given, 1006 dropped). */
  ended: Record<number, number>;
  malformed: number;
  invalidPayload: number;
  heartbeats: number;
  framesIn: number;
  framesOut: number;
  rateLimited: number;
  slowConsumers: number;
  internalErrors: number;
}

/** What the socket actor needs from its endpoint. */
export interface SocketContext {
  readonly node: CinderNode;
  readonly pubsub: ChannelsPubSub;
  readonly route: (topic: string) => ChannelBehaviour | undefined;
  readonly limits: ConnectionLimits;
  readonly hooks: ConnectionHooks;
  readonly stats: EndpointStats;
  readonly onClosed: (conn: Connection) => void;
  /** Corks each socket's writes and flushes them together (see coalesce.ts); none: every frame is written at once. */
  readonly coalescer?: WriteCoalescer;
}

/** Socket actor messages. */
export type SocketMsg =
  | { readonly k: "in"; readonly msg: Message }
  | { readonly k: "transport_closed" }
  | { readonly k: "teardown_timeout"; readonly pid: Pid }
  | FrameMsg
  | FromChannel;

interface TopicEntry {
  readonly topic: string;
  readonly joinRef: string | null;
  /** The ref of the `phx_join` (normally equal to joinRef). */
  readonly joinMsgRef: string | null;
  readonly pid: Pid;
  state: "joining" | "joined" | "closing";
  closeKind: "leave" | "dup" | undefined;
  leaveRef: { joinRef: string | null; ref: string | null } | undefined;
  /** The kill timer of a teardown in progress. */
  timer: TimerRef | undefined;
  /** Frames for this topic that arrived while it was joining or closing, in order. */
  readonly queue: Message[];
}

const OPEN = 1;
let connSerial = 0;

/** The close code `ws` used for a receive error (stored under its `status-code` symbol). */
function wsCloseCode(e: Error): number | undefined {
  for (const sym of Object.getOwnPropertySymbols(e)) {
    if (sym.description === "status-code") {
      const v = (e as unknown as Record<symbol, unknown>)[sym];
      if (typeof v === "number") return v;
    }
  }
  return undefined;
}

/**
 * A live connection. Created by the endpoint after a successful upgrade; public for tests and
 * admin tools (`terminate` drops the TCP connection, `close` closes with a code).
 */
export class Connection implements ConnectionInfo, Corked {
  readonly id: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly assigns: Readonly<Record<string, unknown>>;
  readonly ws: WebSocket;
  /** The socket actor. */
  readonly pid: Ref<SocketMsg>;
  private readonly ctx: SocketContext;
  private lastIn = performance.now();
  private tokens: number;
  private lastRefill = performance.now();
  private closing = false;
  /** Frames are being held in the corked socket until the coalescer flushes it. */
  private corked = false;
  /** The topic table, also readable by tests (topic → join_ref and state). */
  readonly topics = new Map<string, TopicEntry>();

  constructor(ctx: SocketContext, ws: WebSocket, params: Record<string, unknown>, assigns: Record<string, unknown>) {
    this.ctx = ctx;
    this.ws = ws;
    this.params = params;
    this.assigns = assigns;
    this.id = `${ctx.node.incarnation}:${++connSerial}`;
    this.tokens = ctx.limits.rateBurst;
    this.pid = ctx.node.spawn<SocketMsg>(socketActor(this, ctx), { label: `socket ${this.id}`, trapExit: true });
    ws.on("message", (data, isBinary) => this.onMessage(data as Buffer | ArrayBuffer | Buffer[], isBinary));
    ws.on("close", (code) => this.onClose(code));
    ws.on("error", (e) => {
      // ws closes the connection itself (1009 too big, 1007 bad UTF-8, 1002 protocol errors)
      const code = wsCloseCode(e);
      if (code === CLOSE.malformed) ctx.stats.malformed++;
      if (code !== undefined) this.count(code);
      this.closing = true;
    });
  }

  /** Milliseconds since the last inbound frame. */
  idleMs(now = performance.now()): number {
    return now - this.lastIn;
  }

  /** True once a close has been started (by either side). */
  get isClosing(): boolean {
    return this.closing || this.ws.readyState !== OPEN;
  }

  /** Writes a frame; closes the connection with 1013 when its send buffer passes the limit. */
  write(data: string | Buffer, binary: boolean): void {
    if (this.ws.readyState !== OPEN || this.closing) return;
    this.ctx.hooks.frameOut?.(this, data, binary);
    this.ctx.stats.framesOut++;
    const co = this.ctx.coalescer;
    if (co !== undefined && !this.corked) {
      const sock = rawSocket(this.ws);
      if (sock !== undefined) {
        sock.cork();
        this.corked = true;
        co.add(this);
      }
    }
    this.ws.send(data, { binary });
    if (this.ws.bufferedAmount > this.ctx.limits.maxBufferedBytes) {
      this.ctx.stats.slowConsumers++;
      this.close(CLOSE.tryAgainLater, "slow consumer");
    }
  }

  /** The socket actor's queue is empty: write what it corked, unless the coalescer holds frames. */
  flushQueued(): void {
    if (this.corked && this.ctx.coalescer?.holds === false) this.uncork();
  }

  /** Writes the frames held since the last flush (one `writev`). */
  uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    const sock = rawSocket(this.ws);
    if (sock !== undefined && !sock.destroyed) sock.uncork();
  }

  /** Closes with `code` (never 1000) and drops the TCP connection if the handshake stalls. */
  close(code: number, reason: string): void {
    if (code === 1000) throw new Error("the server never closes with 1000 (old clients would not reconnect)");
    if (this.closing) return;
    this.closing = true;
    this.count(code);
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), this.ctx.limits.closeTimeoutMs).unref();
  }

  /** Drops the TCP connection without a close handshake (the client sees 1006). */
  terminate(): void {
    this.closing = true;
    this.ws.terminate();
  }

  private count(code: number): void {
    this.ctx.stats.closes[code] = (this.ctx.stats.closes[code] ?? 0) + 1;
  }

  private onMessage(raw: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    try {
      if (this.closing) return;
      const now = performance.now();
      this.lastIn = now;
      this.ctx.stats.framesIn++;
      const L = this.ctx.limits;
      this.tokens = Math.min(L.rateBurst, this.tokens + ((now - this.lastRefill) * L.ratePerSecond) / 1000);
      this.lastRefill = now;
      if (--this.tokens < 0) {
        this.ctx.stats.rateLimited++;
        this.close(CLOSE.tryAgainLater, "rate limit");
        return;
      }
      const data = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
      let msg: Message;
      try {
        msg = isBinary ? decodeBinary(data) : decodeText(data.toString("utf8"));
      } catch (e) {
        if (!(e instanceof MalformedFrameError)) throw e;
        this.ctx.stats.malformed++;
        this.close(CLOSE.malformed, "malformed frame");
        return;
      }
      if (!msg.binary && !isJsonObject(msg.payload)) {
        this.ctx.stats.invalidPayload++;
        if (msg.ref !== null) this.write(encodeText(msg.joinRef, msg.ref, msg.topic, EVENTS.reply, { status: "error", response: { reason: "invalid payload" } }), false);
        return;
      }
      if (msg.topic === PHOENIX_TOPIC && msg.event === EVENTS.heartbeat) {
        this.ctx.stats.heartbeats++;
        if (this.ctx.hooks.heartbeat?.(this) === false) return;
        if (msg.ref !== null) this.write(encodeText(null, msg.ref, PHOENIX_TOPIC, EVENTS.reply, { status: "ok", response: {} }), false);
        return;
      }
      this.ctx.hooks.frameIn?.(this, msg);
      this.ctx.node.send(this.pid, { k: "in", msg });
    } catch (e) {
      this.internalError(e);
    }
  }

  /** A bug in the connection layer: log it and close with 1011. */
  internalError(e: unknown): void {
    this.ctx.stats.internalErrors++;
    this.ctx.node.logger.error(`socket ${this.id}: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    this.close(CLOSE.internalError, "internal error");
  }

  private onClose(code: number): void {
    this.closing = true;
    this.ctx.stats.ended[code] = (this.ctx.stats.ended[code] ?? 0) + 1;
    this.ctx.onClosed(this);
    this.ctx.node.send(this.pid, { k: "transport_closed" });
  }
}

/** The socket actor's behaviour for one connection. */
function socketActor(conn: Connection, ctx: SocketContext) {
  const { node, pubsub, limits } = ctx;
  const topics = conn.topics;
  const byPid = new Map<Pid, TopicEntry>();
  let self!: Process<SocketMsg>;

  const reply = (joinRef: string | null, ref: string | null, topic: string, status: string, response: JsonObject) => {
    if (ref === null) return;
    conn.write(encodeText(joinRef, ref, topic, EVENTS.reply, { status, response }), false);
  };
  const unmatched = (m: Message) => reply(null, m.ref, m.topic, "error", { reason: "unmatched topic" });

  const forget = (e: TopicEntry) => {
    if (topics.get(e.topic) === e) topics.delete(e.topic);
    byPid.delete(e.pid);
  };

  /** Replays the frames queued while `e` was joining or closing. */
  const drain = (e: TopicEntry) => {
    const q = e.queue.splice(0);
    for (const m of q) route(m);
  };

  const join = (m: Message) => {
    const behaviour = m.topic === PHOENIX_TOPIC ? undefined : ctx.route(m.topic);
    if (behaviour === undefined) return unmatched(m);
    if (topics.size >= limits.maxChannels) return reply(m.joinRef, m.ref, m.topic, "error", { reason: "too many channels joined" });
    const joinRef = m.joinRef ?? m.ref;
    const pid = spawnChannel(self, {
      node,
      pubsub,
      behaviour,
      topic: m.topic,
      joinRef,
      socketPid: self.pid,
      connection: conn,
    });
    const e: TopicEntry = { topic: m.topic, joinRef, joinMsgRef: m.ref, pid, state: "joining", closeKind: undefined, leaveRef: undefined, timer: undefined, queue: [] };
    topics.set(m.topic, e);
    byPid.set(pid, e);
    self.send(pid as Ref<ToChannel>, { k: "join", params: m.payload as JsonObject });
  };

  /**
   * Asks a channel to tear down; one stuck in a handler is killed after `channelShutdownMs`
   * (its presence and subscriptions go with it), so the topic's queue never blocks for good.
   */
  const teardown = (e: TopicEntry, msg: ToChannel) => {
    self.send(e.pid as Ref<ToChannel>, msg);
    e.timer = self.sendAfter(self.pid, { k: "teardown_timeout", pid: e.pid }, limits.channelShutdownMs);
  };

  /** One inbound frame, by the table of CHANNELS.md §4.1. */
  const route = (m: Message) => {
    const e = topics.get(m.topic);
    if (e !== undefined && e.state !== "joined") {
      e.queue.push(m);
      return;
    }
    if (m.event === EVENTS.join) {
      if (e === undefined) return join(m);
      // duplicate join: close the old channel first, then join again (queued)
      e.state = "closing";
      e.closeKind = "dup";
      e.queue.push(m);
      teardown(e, { k: "dup" });
      return;
    }
    if (e === undefined) {
      if (m.event === EVENTS.leave) return reply(m.joinRef, m.ref, m.topic, "ok", {});
      return unmatched(m);
    }
    if (m.joinRef !== null && m.joinRef !== e.joinRef) return; // stale join_ref: ignored silently
    if (m.event === EVENTS.leave) {
      e.state = "closing";
      e.closeKind = "leave";
      e.leaveRef = { joinRef: m.joinRef, ref: m.ref };
      teardown(e, { k: "leave" });
      return;
    }
    self.send(e.pid as Ref<ToChannel>, { k: "in", msg: m });
  };

  const channelExited = (pid: Pid, reason: ExitReason) => {
    const e = byPid.get(pid);
    if (e === undefined) return;
    forget(e);
    if (e.timer !== undefined) node.cancelTimer(e.timer);
    const kind = shutdownKind(reason);
    if (e.state === "joining") {
      reply(e.joinRef, e.joinMsgRef, e.topic, "error", { reason: "join crashed" });
    } else if (e.closeKind === "leave" && e.leaveRef) {
      // left (or killed while leaving: the client asked to leave either way)
      reply(e.leaveRef.joinRef, e.leaveRef.ref, e.topic, "ok", {});
      conn.write(encodeText(e.joinRef, e.joinRef, e.topic, EVENTS.close, {}), false);
    } else if (e.closeKind === "dup" || kind === "closed" || kind === "left") {
      conn.write(encodeText(e.joinRef, e.joinRef, e.topic, EVENTS.close, {}), false);
    } else {
      conn.write(encodeText(e.joinRef, e.joinRef, e.topic, EVENTS.error, {}), false);
    }
    drain(e);
  };

  const fromChannel = (m: FromChannel) => {
    const e = byPid.get(m.pid);
    if (e === undefined) return; // that join has ended: drop
    switch (m.k) {
      case "joined":
        e.state = "joined";
        reply(e.joinRef, e.joinMsgRef, e.topic, "ok", m.response);
        drain(e);
        return;
      case "join_error":
        forget(e);
        reply(e.joinRef, e.joinMsgRef, e.topic, "error", m.response);
        drain(e);
        return;
      case "out":
        conn.write(m.data, m.binary);
        return;
    }
  };

  return {
    init(p: Process<SocketMsg>) {
      self = p;
      p.onExit((_pid, reason) => {
        const kind = shutdownKind(reason);
        if (kind === "transport_closed") {
          // the connection is gone already
        } else if (reason === "shutdown" || kind !== undefined) {
          conn.close(CLOSE.serviceRestart, "service restart"); // the node is stopping
        } else {
          conn.internalError(reason);
        }
        const left = [...byPid.keys()];
        if (left.length > 0) {
          setTimeout(() => {
            for (const pid of left) if (node.isAlive(pid)) node.exit(pid, "kill");
          }, limits.channelShutdownMs).unref();
        }
      });
    },
    handle(m: SocketMsg | { type: "EXIT"; from: Pid; reason: ExitReason } | { type: "DOWN" }) {
      handleMsg(m);
      // the frames queued for this socket are written: one write for all of them
      if (self.mailboxLength === 0) conn.flushQueued();
    },
  };

  function handleMsg(m: SocketMsg | { type: "EXIT"; from: Pid; reason: ExitReason } | { type: "DOWN" }): void {
    if (m === null || typeof m !== "object") return; // not ours: ignore
    if ("type" in m) {
      if (m.type === "EXIT") channelExited(m.from, m.reason);
      return;
    }
    switch (m.k) {
      case "in":
        return route(m.msg);
      case "frame":
        return conn.write(m.data, m.binary);
      case "transport_closed":
        return self.exit(EXIT.transport);
      case "teardown_timeout": {
        const e = byPid.get(m.pid);
        if (e !== undefined && e.state === "closing") {
          node.logger.warn(`socket ${conn.id}: channel ${e.topic} (${m.pid}) did not stop within ${limits.channelShutdownMs} ms: killing it`);
          self.exit(m.pid, "kill");
        }
        return;
      }
      default:
        return fromChannel(m);
    }
  }
}
