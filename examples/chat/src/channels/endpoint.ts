/**
 * The Channels endpoint: the WebSocket upgrade at `<prefix>/websocket`, checked before any 101
 * (path 404, vsn 400, origin and connect auth 403, draining 503), the subprotocol selection, the
 * idle sweep, and graceful drain.
 *
 * Each accepted connection gets a socket actor (`socket.ts`); each joined topic a channel actor
 * linked to it (`channel.ts`); broadcasts reach sockets through the fastlane (`fastlane.ts`).
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { CinderNode } from "@cinder/runtime";
import type { ChannelBehaviour } from "./channel.js";
import { CLOSE, authTokenFrom, parseParams, type Params } from "./protocol.js";
import type { ChannelsPubSub } from "./pubsub.js";
import { WriteCoalescer } from "./coalesce.js";
import { Connection, type ConnectionHooks, type ConnectionLimits, type EndpointStats, type SocketContext } from "./socket.js";

/** What the connect handler sees. `params` leaves are strings; `authToken` comes from the subprotocol. */
export interface ConnectInfo {
  readonly params: Params;
  readonly authToken: string | undefined;
  readonly origin: string | undefined;
  readonly remoteAddress: string | undefined;
}

/** Accept with assigns (shared by the connection's channels), or refuse (403). */
export type ConnectResult = { readonly assigns?: Record<string, unknown> } | false | null | undefined;

export interface EndpointOptions {
  readonly node: CinderNode;
  readonly pubsub: ChannelsPubSub;
  /** Topic routes: `"room:*"` matches by prefix, anything else exactly. First match wins. */
  readonly channels: ReadonlyArray<readonly [pattern: string, behaviour: ChannelBehaviour]>;
  /** Authenticates every connection from scratch. Default: accept with no assigns. */
  readonly connect?: (info: ConnectInfo) => ConnectResult | Promise<ConnectResult>;
  /** Path prefix (default `/socket`): only `<prefix>/websocket` is served. */
  readonly path?: string;
  /**
   * Allowed browser origins (exact `scheme://host:port`), or a predicate. A missing Origin
   * (non-browser clients) is always allowed. Default: allow all.
   */
  readonly checkOrigin?: ReadonlyArray<string> | ((origin: string) => boolean);
  /** Largest inbound frame in bytes (default 1 MiB); larger closes with 1009. */
  readonly maxFrameBytes?: number;
  /** Joined topics per connection (default 100); more get `"too many channels joined"`. */
  readonly maxChannels?: number;
  /** Close after this long without an inbound frame, with 1001 (default 60 000 ms). */
  readonly idleTimeoutMs?: number;
  /** Close with 1013 when a socket's send buffer passes this (default 8 MiB). */
  readonly maxBufferedBytes?: number;
  /** Inbound frames per second sustained (default 200) and burst (default 1000); more: 1013. */
  readonly ratePerSecond?: number;
  readonly rateBurst?: number;
  /** Drop the TCP connection when a close handshake has not finished in this time (default 3000). */
  readonly closeTimeoutMs?: number;
  /** A channel asked to leave (or replaced by a duplicate join) that has not stopped in this time is killed (default 5000). */
  readonly channelShutdownMs?: number;
  readonly hooks?: ConnectionHooks;
  /**
   * Write coalescing (coalesce.ts): frames to a socket are corked and written together at the end
   * of the event-loop turn (one `writev` per socket per turn), and with a window > 0 at most every
   * `coalesceMs` while writes keep coming. Default 0 (per turn); `false`: every frame at once.
   */
  readonly coalesceMs?: number | false;
}

/**
 * A Channels endpoint attached to an HTTP server.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { startNode } from "@cinder/runtime";
 * import { Endpoint, ok, startChannelsPubSub } from "./index.js";
 * const node = await startNode();
 * const endpoint = new Endpoint({
 *   node,
 *   pubsub: await startChannelsPubSub(node, { name: "demo.pubsub" }),
 *   channels: [["echo:*", { join: () => ({ ok: {} }), handleIn: (ev, payload) => ({ reply: ok({ ev }) }) }]],
 * });
 * const server = createServer((req, res) => endpoint.handleRequest(req, res) || res.writeHead(404).end());
 * endpoint.attach(server);
 * server.listen(4000, "127.0.0.1");
 * // later: await endpoint.drain(); server.close(); await node.stop();
 * ```
 */
export class Endpoint {
  readonly node: CinderNode;
  readonly pubsub: ChannelsPubSub;
  readonly path: string;
  readonly stats: EndpointStats = {
    accepted: 0,
    rejected: {},
    closes: {},
    ended: {},
    malformed: 0,
    invalidPayload: 0,
    heartbeats: 0,
    framesIn: 0,
    framesOut: 0,
    rateLimited: 0,
    slowConsumers: 0,
    internalErrors: 0,
  };
  /** Hooks may be set or replaced at run time (tests). */
  hooks: ConnectionHooks;
  private readonly opts: EndpointOptions;
  private readonly limits: ConnectionLimits;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<Connection>();
  private readonly closedWaiters = new Set<() => void>();
  private sweep: ReturnType<typeof setInterval> | undefined;
  /** Corks and flushes the connections' writes (undefined: coalescing off). */
  readonly coalescer: WriteCoalescer | undefined;
  private draining = false;

  constructor(opts: EndpointOptions) {
    this.opts = opts;
    this.node = opts.node;
    this.pubsub = opts.pubsub;
    this.path = (opts.path ?? "/socket").replace(/\/+$/, "");
    this.hooks = opts.hooks ?? {};
    this.coalescer = opts.coalesceMs === false ? undefined : new WriteCoalescer(Math.max(0, opts.coalesceMs ?? 0));
    this.limits = {
      maxChannels: opts.maxChannels ?? 100,
      idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
      maxBufferedBytes: opts.maxBufferedBytes ?? 8 * 1024 * 1024,
      ratePerSecond: opts.ratePerSecond ?? 200,
      rateBurst: opts.rateBurst ?? 1000,
      closeTimeoutMs: opts.closeTimeoutMs ?? 3000,
      channelShutdownMs: opts.channelShutdownMs ?? 5000,
    };
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxFrameBytes ?? 1024 * 1024,
      perMessageDeflate: false,
      // select `phoenix` when offered (the client aborts otherwise); never the token entry
      handleProtocols: (protocols) => (protocols.has("phoenix") ? "phoenix" : false),
    });
  }

  /** Handles upgrades on `server` and starts the idle sweep. */
  attach(server: Server): this {
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.handleUpgrade(req, socket, head).catch((e) => {
        this.node.logger.error(`endpoint: upgrade failed: ${String(e)}`);
        reject(socket, 500);
      });
    });
    const every = Math.max(10, Math.min(1000, Math.floor(this.limits.idleTimeoutMs / 4)));
    this.sweep ??= setInterval(() => this.sweepIdle(), every);
    this.sweep.unref();
    return this;
  }

  /**
   * Answers plain HTTP requests on the socket paths (returns true if it did): `<prefix>/longpoll`
   * is 404 (not implemented), `<prefix>/websocket` without an upgrade is 400.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === `${this.path}/websocket`) {
      res.writeHead(400, { "content-type": "text/plain" }).end("expected a WebSocket upgrade\n");
      return true;
    }
    if (path === `${this.path}/longpoll`) {
      res.writeHead(404, { "content-type": "text/plain" }).end("long polling is not supported\n");
      return true;
    }
    return false;
  }

  /** The live connections. */
  connections(): Connection[] {
    return [...this.conns];
  }

  /** Routes a topic to its channel behaviour. */
  route(topic: string): ChannelBehaviour | undefined {
    for (const [pattern, b] of this.opts.channels) {
      if (pattern.endsWith("*") ? topic.startsWith(pattern.slice(0, -1)) : topic === pattern) return b;
    }
    return undefined;
  }

  private count(status: number): void {
    this.stats.rejected[status] = (this.stats.rejected[status] ?? 0) + 1;
  }

  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on("error", () => {});
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== `${this.path}/websocket`) return this.refuse(socket, 404);
    if (this.draining) return this.refuse(socket, 503);
    const params = parseParams(url.search.slice(1));
    if (params.vsn !== "2.0.0") return this.refuse(socket, 400);
    delete params.vsn;
    const origin = req.headers.origin;
    if (origin !== undefined && !this.originAllowed(origin)) return this.refuse(socket, 403);
    const offered = (req.headers["sec-websocket-protocol"] ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    let result: ConnectResult;
    try {
      result = this.opts.connect ? await this.opts.connect({ params, authToken: authTokenFrom(offered), origin, remoteAddress: req.socket.remoteAddress }) : {};
    } catch (e) {
      this.node.logger.error(`endpoint: connect handler threw: ${String(e)}`);
      result = false;
    }
    if (!result) return this.refuse(socket, 403);
    if (socket.destroyed) return;
    if (this.draining) return this.refuse(socket, 503);
    const assigns = result.assigns ?? {};
    const endpoint = this;
    const ctx: SocketContext = {
      node: this.node,
      pubsub: this.pubsub,
      route: (t) => this.route(t),
      limits: this.limits,
      get hooks() {
        return endpoint.hooks;
      },
      stats: this.stats,
      coalescer: this.coalescer,
      onClosed: (c) => {
        this.conns.delete(c);
        if (this.conns.size === 0) for (const w of [...this.closedWaiters]) w();
      },
    };
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.stats.accepted++;
      this.conns.add(new Connection(ctx, ws, params, assigns));
    });
  }

  private refuse(socket: Duplex, status: number): void {
    this.count(status);
    reject(socket, status);
  }

  private originAllowed(origin: string): boolean {
    const c = this.opts.checkOrigin;
    if (c === undefined) return true;
    if (typeof c === "function") return c(origin);
    return c.includes(origin);
  }

  private sweepIdle(): void {
    const now = performance.now();
    for (const c of this.conns) if (!c.isClosing && c.idleMs(now) > this.limits.idleTimeoutMs) c.close(CLOSE.goingAway, "idle timeout");
  }

  /**
   * Closes every connection with `code` (default 1012, "service restart"), in batches spread
   * over `overMs` so the reconnecting clients do not all arrive at once, and refuses new ones
   * (503) meanwhile. Resolves when every connection has closed.
   */
  async drain(opts: { code?: number; reason?: string; overMs?: number; batches?: number } = {}): Promise<void> {
    this.draining = true;
    const code = opts.code ?? CLOSE.serviceRestart;
    const reason = opts.reason ?? "service restart";
    const all = [...this.conns];
    const batches = Math.max(1, Math.min(opts.batches ?? 10, all.length));
    const per = Math.ceil(all.length / batches);
    const gap = (opts.overMs ?? 0) / batches;
    for (let i = 0; i < all.length; i += per) {
      for (const c of all.slice(i, i + per)) c.close(code, reason);
      if (gap > 0 && i + per < all.length) await new Promise((r) => setTimeout(r, gap));
    }
    if (this.conns.size > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.closedWaiters.delete(done);
          resolve();
        };
        this.closedWaiters.add(done);
      });
    }
  }

  /** Drains (see `drain`) and stops the idle sweep. The HTTP server is the caller's to close. */
  async stop(opts?: { code?: number; reason?: string; overMs?: number }): Promise<void> {
    await this.drain(opts);
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    this.wss.close();
  }
}

const STATUS_TEXT: Record<number, string> = { 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable" };

/** Answers an upgrade request with an HTTP error, before any 101. */
function reject(socket: Duplex, status: number): void {
  if (socket.destroyed) return;
  const body = `${STATUS_TEXT[status] ?? "Error"}\n`;
  socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), 1000).unref();
}
