/**
 * `@cinder/redis`: the cluster transport over Redis pub/sub.
 *
 * Every node subscribes to two channels of its cluster: its own (`<cluster>:node:<name>`, for
 * node-addressed frames) and the cluster's broadcast channel (`<cluster>:all`, for broadcasts
 * and heartbeats). Frames are binary envelopes (see `internal/envelope.ts`) published as Buffers
 * over a dedicated publisher connection; a second connection only subscribes.
 *
 * Failure behaviour:
 * - Redis unreachable: nothing throws and no error escapes; frames sent meanwhile are dropped
 *   and counted; both connections reconnect with exponential backoff; errors are logged
 *   (throttled) and counted. After reconnecting the node reports its peers down (it may have
 *   missed frames) and they come back up at their next heartbeat; peers see it the same way.
 * - A message on our channels that does not decode is counted (`decodeErrors`) and logged.
 * - Nothing is replayed: pub/sub is at most once, FIFO per (sender, receiver) pair because each
 *   node publishes everything on one connection and receives everything on one connection.
 *
 * @example
 * ```ts
 * import { createRedisTransport } from "@cinder/redis";
 *
 * // In production e.g. url: "rediss://redis.internal:6380" and
 * // redisOptions: { username: "cinder", password: process.env.REDIS_PASSWORD, tls: { ca } }.
 * const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
 * const web1 = createRedisTransport({ url, nodeName: "web-1", cluster: "chat", heartbeatMs: 50 });
 * const web2 = createRedisTransport({ url, nodeName: "web-2", cluster: "chat", heartbeatMs: 50 });
 * const up = (t: typeof web1) => new Promise((r) => t.onMembership((e) => e.type === "up" && r(e.node)));
 * const seen = Promise.all([up(web1), up(web2)]);
 * const frame = new Promise((r) => web2.onFrame((from, channel, payload) => r([from, channel, [...payload]])));
 * await web1.start();
 * await web2.start();
 * console.log(await seen); // ["web-2", "web-1"]
 * web1.broadcast("pubsub", new Uint8Array([7]));
 * console.log(await frame); // ["web-1", "pubsub", [7]]
 * await web1.stop();
 * await web2.stop();
 * ```
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { RedisOptions } from "ioredis";
import { PeerTable, FrameDecodeError, TransportHandlers } from "@cinder/runtime";
import type { ClusterTransport, MembershipEvent, TransportLogger, TransportStats } from "@cinder/runtime";
import { decodeEnvelope, encodeFrameEnvelope, encodeHeartbeat, shortString } from "./internal/envelope.js";
import { backoff } from "./internal/backoff.js";
import type { BackoffOptions } from "./internal/backoff.js";
import { ThrottledLog } from "./internal/throttle.js";

export type { BackoffOptions } from "./internal/backoff.js";
export { ENVELOPE_VERSION } from "./internal/envelope.js";

/** Options of {@link createRedisTransport}: where Redis is, who this node is, and timing. */
export interface RedisTransportOptions {
  /** Redis URL: `redis://[[user]:password@]host[:port][/db]`, `rediss://` for TLS. Default `redis://127.0.0.1:6379`. */
  url?: string;
  /** This node's name, unique in the cluster, 1 to 255 bytes of UTF-8. */
  nodeName: string;
  /** Cluster name: prefix of every Redis channel; clusters sharing a Redis never see each other. Default `"cinder"`. */
  cluster?: string;
  /** Heartbeat period, ms. Default 1000. */
  heartbeatMs?: number;
  /** A node not heard from for this long is reported down, ms. Default 5000. */
  downAfterMs?: number;
  /**
   * Passed to both ioredis connections (after the transport's own defaults, so they win):
   * `username`, `password`, `tls`, `db`, `connectTimeout`, `retryStrategy`...
   */
  redisOptions?: RedisOptions;
  /** Reconnection backoff (ignored if `redisOptions.retryStrategy` is given). */
  reconnect?: BackoffOptions;
  /** How long `start()` waits for Redis before failing, ms. Default 10000. */
  startTimeoutMs?: number;
  /** Where trouble is reported (throttled). Default: console. */
  logger?: TransportLogger;
}

/** The counters of a {@link RedisTransport}: the transport's own, plus the connections'. */
export interface RedisTransportStats extends TransportStats {
  /** Both connections up and subscribed. */
  connected: boolean;
  /** Successful reconnections after the first connection. */
  reconnects: number;
  /** Errors reported by the Redis connections (refused, reset, auth...). */
  connectionErrors: number;
  /** Exceptions thrown by frame or membership handlers (caught). */
  handlerErrors: number;
}

/**
 * `start()` could not reach Redis in time (the transport is then stopped). The message names
 * the URL with its password masked.
 *
 * @example
 * ```ts
 * import { silentLogger } from "@cinder/runtime";
 * import { createRedisTransport, RedisTransportError } from "@cinder/redis";
 * const t = createRedisTransport({ url: "redis://:secret@127.0.0.1:1", nodeName: "lonely", startTimeoutMs: 100, logger: silentLogger });
 * const e = await t.start().catch((e: unknown) => e);
 * console.log(e instanceof RedisTransportError, t.stats().connectionErrors > 0); // [true, true]
 * console.log((e as Error).message.includes("secret"), (e as Error).message.includes(":***@")); // [false, true]
 * ```
 */
export class RedisTransportError extends Error {
  override readonly name = "RedisTransportError";
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
  }
}

/**
 * The Redis channel names of a cluster: a node's own channel and the cluster's broadcast one.
 *
 * @example
 * ```ts
 * import { redisChannels } from "@cinder/redis";
 * console.log(redisChannels("chat", "web-1")); // { node: "chat:node:web-1", all: "chat:all" }
 * ```
 */
export function redisChannels(cluster: string, nodeName: string): { node: string; all: string } {
  return { node: `${cluster}:node:${nodeName}`, all: `${cluster}:all` };
}

/**
 * Creates the transport of one node (not started: `start()` it, or hand it to
 * `CinderNode.connect`, which starts it). Throws for a bad `nodeName`, `cluster` or timing.
 *
 * @example
 * ```ts
 * import { createRedisTransport } from "@cinder/redis";
 * const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
 * const t = createRedisTransport({ url, nodeName: "n1", cluster: "doc_create", heartbeatMs: 50 });
 * await t.start();
 * console.log(t.isConnected, t.members()); // [true, []]
 * t.sendTo("nobody", "x", new Uint8Array([1])); // not up: dropped
 * const echo = new Promise((r) => t.onFrame((from, channel, payload) => r([from, channel, [...payload]])));
 * t.sendTo("n1", "x", new Uint8Array([2])); // to itself: delivered locally, asynchronously
 * console.log(await echo); // ["n1", "x", [2]]
 * const { framesIn, framesOut, dropped } = t.stats();
 * console.log({ framesIn, framesOut, dropped }); // { framesIn: 1, framesOut: 1, dropped: 1 }
 * await t.stop();
 * console.log(t.isConnected); // false
 * ```
 */
export function createRedisTransport(opts: RedisTransportOptions): RedisTransport {
  return new RedisTransport(opts);
}

const consoleLogger: TransportLogger = {
  warn: (m, meta) => console.warn(`[cinder:redis] ${m}`, ...(meta ? [meta] : [])),
  error: (m, meta) => console.error(`[cinder:redis] ${m}`, ...(meta ? [meta] : [])),
};

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable url)";
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The Redis `ClusterTransport` of one node (see the package documentation for the failure
 * behaviour). One incarnation per object: a stopped transport does not start again.
 *
 * @example
 * ```ts
 * import { createRedisTransport } from "@cinder/redis";
 * const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
 * const t = createRedisTransport({ url, nodeName: "n1", cluster: "doc_life" });
 * await t.start();
 * await t.stop();
 * console.log(await t.start().catch((e: Error) => e.message)); // transport of "n1" was stopped; create a new one (new incarnation)
 * try { createRedisTransport({ nodeName: "n2", heartbeatMs: 1000, downAfterMs: 500 }); }
 * catch (e) { console.log(e instanceof RangeError); } // true
 * ```
 */
export class RedisTransport implements ClusterTransport {
  readonly nodeName: string;
  readonly incarnation: string;
  readonly cluster: string;
  readonly heartbeatMs: number;
  readonly downAfterMs: number;
  private readonly url: string;
  private readonly channels: { node: string; all: string };
  private readonly redisOptions: RedisOptions;
  private readonly startTimeoutMs: number;
  private readonly log: ThrottledLog;
  private readonly logger: TransportLogger;
  private readonly fromBytes: Buffer;
  private readonly incBytes: Buffer;

  private state: "new" | "starting" | "running" | "stopped" = "new";
  private pub: Redis | undefined;
  private sub: Redis | undefined;
  private pubReady = false;
  private subReady = false;
  private connected = false;
  /** Connection number, sent in every envelope; 0 until the first connection. */
  private epoch = 0;
  private lastError: unknown;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private onConnected: (() => void) | undefined;
  private readonly peers: PeerTable;
  private readonly handlers: TransportHandlers;
  private readonly selfQueue: Array<{ channel: string; payload: Uint8Array }> = [];
  private selfFlush: ReturnType<typeof setImmediate> | undefined;
  private readonly counters: RedisTransportStats = {
    framesIn: 0,
    framesOut: 0,
    dropped: 0,
    decodeErrors: 0,
    connected: false,
    reconnects: 0,
    connectionErrors: 0,
    handlerErrors: 0,
  };

  constructor(opts: RedisTransportOptions) {
    if (typeof opts.nodeName !== "string" || opts.nodeName.length === 0) throw new TypeError("nodeName must be a non-empty string");
    this.nodeName = opts.nodeName;
    this.incarnation = randomUUID();
    this.cluster = opts.cluster ?? "cinder";
    if (this.cluster.length === 0) throw new TypeError("cluster must be a non-empty string");
    this.heartbeatMs = opts.heartbeatMs ?? 1000;
    this.downAfterMs = opts.downAfterMs ?? 5000;
    if (!(this.heartbeatMs > 0)) throw new RangeError(`heartbeatMs must be > 0, got ${this.heartbeatMs}`);
    if (!(this.downAfterMs > this.heartbeatMs)) {
      throw new RangeError(`downAfterMs (${this.downAfterMs}) must be greater than heartbeatMs (${this.heartbeatMs})`);
    }
    this.url = opts.url ?? "redis://127.0.0.1:6379";
    this.channels = redisChannels(this.cluster, this.nodeName);
    this.startTimeoutMs = opts.startTimeoutMs ?? 10_000;
    this.logger = opts.logger ?? consoleLogger;
    this.log = new ThrottledLog(this.logger);
    this.fromBytes = shortString("nodeName", this.nodeName);
    this.incBytes = shortString("incarnation", this.incarnation);
    this.redisOptions = {
      retryStrategy: backoff(opts.reconnect),
      // At most once: never queue a frame while disconnected, never resend one after reconnecting.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      // We resubscribe ourselves, to know when the subscription is live again.
      autoResubscribe: false,
      // ioredis keeps a (ref'd) timer this long after disconnect() when the socket had failed,
      // which delays process exit after stop(). Half a second is plenty on a closing socket.
      disconnectTimeout: 500,
      ...opts.redisOptions,
      lazyConnect: true,
    };
    this.peers = new PeerTable({ downAfterMs: this.downAfterMs, onEvent: (e) => this.emitMembership(e) });
    this.handlers = new TransportHandlers(this.nodeName, (kind, message, error) => {
      this.counters.handlerErrors++;
      this.log.error(`${kind}-handler`, message, { error });
    });
  }

  /**
   * Connects, subscribes and starts heartbeating. Resolves once both connections are up; rejects
   * with {@link RedisTransportError} after `startTimeoutMs` without Redis (the transport is then
   * stopped: create a new one to retry).
   */
  async start(): Promise<void> {
    if (this.state === "running") return;
    if (this.state === "starting") throw new Error("start() already in progress");
    if (this.state === "stopped") throw new Error(`transport of "${this.nodeName}" was stopped; create a new one (new incarnation)`);
    this.state = "starting";
    const ready = new Promise<void>((resolve) => (this.onConnected = resolve));
    this.pub = this.connection("pub");
    this.sub = this.connection("sub");
    this.sub.on("messageBuffer", (channel: Buffer, message: Buffer) => this.onMessage(channel, message));
    this.pub.connect().catch(() => {}); // failures surface as "error" events and retries
    this.sub.connect().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), this.startTimeoutMs)));
    const outcome = await Promise.race([ready.then(() => "ready" as const), timedOut]);
    clearTimeout(timer);
    if (this.state !== "starting") throw new RedisTransportError(`transport of "${this.nodeName}" was stopped while starting`);
    if (outcome === "timeout") {
      await this.stop();
      const last = this.lastError === undefined ? "" : `; last error: ${describe(this.lastError)}`;
      throw new RedisTransportError(
        `could not connect node "${this.nodeName}" to ${redact(this.url)} within ${this.startTimeoutMs} ms${last}`,
        { cause: this.lastError },
      );
    }
    this.state = "running";
    this.peers.start();
    this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), this.heartbeatMs);
    this.heartbeatTimer.unref?.();
    this.sendHeartbeat();
  }

  /** Stops heartbeating and closes both connections. Peers see this node down after their `downAfterMs`. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.connected = false;
    const wakeStart = this.onConnected; // a start() in progress fails at once
    this.onConnected = undefined;
    wakeStart?.();
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    if (this.selfFlush !== undefined) clearImmediate(this.selfFlush);
    this.selfFlush = undefined;
    this.selfQueue.length = 0;
    this.peers.stop();
    this.peers.clear();
    await Promise.all([close(this.pub), close(this.sub)]);
  }

  sendTo(node: string, channel: string, payload: Uint8Array): void {
    if (this.state !== "running") {
      this.counters.dropped++;
      return;
    }
    if (node === this.nodeName) {
      this.counters.framesOut++;
      this.selfQueue.push({ channel, payload: new Uint8Array(payload) });
      this.selfFlush ??= setImmediate(() => this.flushSelf());
      return;
    }
    if (!this.peers.isUp(node)) {
      this.counters.dropped++;
      return;
    }
    const env = encodeFrameEnvelope(this.fromBytes, this.incBytes, this.epoch, channel, payload);
    this.publish(redisChannels(this.cluster, node).node, env, true);
  }

  broadcast(channel: string, payload: Uint8Array): void {
    if (this.state !== "running") {
      this.counters.dropped++;
      return;
    }
    const env = encodeFrameEnvelope(this.fromBytes, this.incBytes, this.epoch, channel, payload);
    this.publish(this.channels.all, env, false);
  }

  onFrame(handler: (from: string, channel: string, payload: Uint8Array) => void): () => void {
    return this.handlers.onFrame(handler);
  }

  onMembership(handler: (event: MembershipEvent) => void): () => void {
    return this.handlers.onMembership(handler);
  }

  members(): string[] {
    return this.state === "running" ? this.peers.members() : [];
  }

  /** True while both connections are up and subscribed. */
  get isConnected(): boolean {
    return this.connected;
  }

  stats(): RedisTransportStats {
    return { ...this.counters, connected: this.connected };
  }

  // ---- connections ----------------------------------------------------------------------

  private connection(role: "pub" | "sub"): Redis {
    const conn = new Redis(this.url, {
      connectionName: `cinder:${this.cluster}:${this.nodeName}:${role}`,
      ...this.redisOptions,
    });
    conn.on("error", (err: unknown) => {
      this.counters.connectionErrors++;
      this.lastError = err;
      if (this.state === "stopped") return;
      this.log.warn(`error:${role}`, `Redis ${role} connection of node "${this.nodeName}" (${redact(this.url)}): ${describe(err)}`);
    });
    conn.on("ready", () => {
      if (this.state === "stopped") return;
      if (role === "pub") {
        this.pubReady = true;
        this.checkConnected();
      } else {
        conn.subscribe(this.channels.node, this.channels.all).then(
          () => {
            if (conn.status !== "ready" || this.state === "stopped") return;
            this.subReady = true;
            this.checkConnected();
          },
          (err: unknown) => {
            this.counters.connectionErrors++;
            this.lastError = err;
            this.log.warn("subscribe", `node "${this.nodeName}" could not subscribe: ${describe(err)}; reconnecting`);
            conn.disconnect(true);
          },
        );
      }
    });
    conn.on("close", () => {
      if (role === "pub") this.pubReady = false;
      else this.subReady = false;
      this.checkDisconnected();
    });
    conn.on("end", () => {
      if (this.state === "stopped") return;
      this.log.error(`end:${role}`, `Redis ${role} connection of node "${this.nodeName}" gave up reconnecting (retryStrategy); the transport stays disconnected`);
    });
    return conn;
  }

  private checkConnected(): void {
    if (this.connected || !this.pubReady || !this.subReady) return;
    this.connected = true;
    this.epoch = (this.epoch + 1) >>> 0 || 1;
    if (this.epoch > 1) {
      this.counters.reconnects++;
      this.log.warn("reconnected", `node "${this.nodeName}" reconnected to Redis; peers reported down until their next heartbeat`);
      // We were deaf for a while: we cannot vouch for anything we may have missed.
      this.peers.markAllDown();
    }
    if (this.state === "running") this.sendHeartbeat();
    const resolve = this.onConnected;
    this.onConnected = undefined;
    resolve?.();
  }

  private checkDisconnected(): void {
    if (!this.connected || (this.pubReady && this.subReady)) return;
    this.connected = false;
    if (this.state !== "running") return;
    this.log.warn("disconnected", `node "${this.nodeName}" lost Redis (${redact(this.url)}); frames are dropped until it is back`);
  }

  private publish(redisChannel: string, env: Buffer, addressed: boolean): void {
    const pub = this.pub;
    if (!this.connected || pub === undefined || pub.status !== "ready") {
      this.counters.dropped++;
      return;
    }
    this.counters.framesOut++;
    pub.publish(redisChannel, env).then(
      (receivers) => {
        // Nobody subscribed to that node's channel: it is gone.
        if (addressed && receivers === 0) this.counters.dropped++;
      },
      (err: unknown) => {
        this.counters.dropped++;
        this.log.warn("publish", `node "${this.nodeName}" lost a frame to a failed publish: ${describe(err)}`);
      },
    );
  }

  private sendHeartbeat(): void {
    if (this.state !== "running") return;
    const pub = this.pub;
    if (!this.connected || pub === undefined || pub.status !== "ready") return;
    pub.publish(this.channels.all, encodeHeartbeat(this.fromBytes, this.incBytes, this.epoch)).catch(() => {
      // the connection error is reported by the "error" event
    });
  }

  // ---- receiving ------------------------------------------------------------------------

  private onMessage(_channel: Buffer, message: Buffer): void {
    if (this.state === "stopped") return;
    let env;
    try {
      env = decodeEnvelope(message);
    } catch (err) {
      this.counters.decodeErrors++;
      const why = err instanceof FrameDecodeError ? err.message : describe(err);
      this.log.warn("decode", `node "${this.nodeName}" dropped an undecodable message (${message.length} bytes) on ${_channel.toString()}: ${why}`);
      return;
    }
    if (env.from === this.nodeName) {
      if (env.incarnation !== this.incarnation) {
        this.log.error("same-name", `another node uses the name "${this.nodeName}" in cluster "${this.cluster}" (incarnation ${env.incarnation}); its messages are ignored`);
      }
      return; // our own broadcast or heartbeat
    }
    if (env.kind === "heartbeat") {
      this.peers.heartbeat(env.from, env.incarnation, env.epoch);
      return;
    }
    if (!this.peers.frame(env.from, env.incarnation, env.epoch)) {
      this.counters.dropped++;
      return;
    }
    // Own the bytes: the envelope is a view into the socket's read chunk.
    this.deliver(env.from, env.channel, new Uint8Array(env.payload));
  }

  private flushSelf(): void {
    this.selfFlush = undefined;
    const batch = this.selfQueue.splice(0);
    for (const f of batch) {
      if (this.state !== "running") return;
      this.deliver(this.nodeName, f.channel, f.payload);
    }
  }

  private deliver(from: string, channel: string, payload: Uint8Array): void {
    this.counters.framesIn++;
    this.handlers.emitFrame(from, channel, payload);
  }

  private emitMembership(e: MembershipEvent): void {
    if (this.state === "stopped") return;
    this.handlers.emitMembership(e);
  }
}

/** Closes a connection politely if it is up (flushing what was published), else at once. */
async function close(conn: Redis | undefined): Promise<void> {
  if (conn === undefined) return;
  if (conn.status === "ready") {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      conn.quit().catch(() => {}),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000))),
    ]);
    clearTimeout(timer);
  }
  conn.disconnect(false);
}
