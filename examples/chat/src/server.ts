/**
 * The chat server: a Cinder node, a PubSub, presence, the Channels endpoint with the room
 * channel, and an HTTP server for the web page (and phoenix.js, served from node_modules).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { timingSafeEqual } from "node:crypto";
import { startNode, type CinderNode, type Logger } from "@cinder/runtime";
import { Endpoint, broadcastMsg, startChannelsPubSub, type ChannelBehaviour, type ChannelsPubSub, type EndpointOptions } from "./channels/index.js";
import { CinderPresence } from "./presence/cinder.js";
import type { DiffHandler, Presence } from "./presence/types.js";
import { roomChannel } from "./room.js";

export interface ChatOptions {
  /** TCP port (default 4000; 0 picks a free one). */
  readonly port?: number;
  /** Bind address (default 127.0.0.1). */
  readonly host?: string;
  /** Node name (default `"chat"`). */
  readonly nodeName?: string;
  readonly logger?: Logger;
  /**
   * If set, every connection must present this token (the client's `authToken`, or a `token`
   * socket param); otherwise connections are accepted as they come.
   */
  readonly token?: string;
  /** More channel routes, tried before `room:*` (tests add their own); a function gets the services. */
  readonly channels?: ReadonlyArray<readonly [string, ChannelBehaviour]> | ((deps: { node: CinderNode; presence: Presence; pubsub: ChannelsPubSub }) => ReadonlyArray<readonly [string, ChannelBehaviour]>);
  /** Endpoint options (limits, timeouts, hooks, origin check). */
  readonly endpoint?: Partial<Omit<EndpointOptions, "node" | "pubsub" | "channels">>;
  /** How to start the channels' PubSub (default: `@cinder/pubsub` named `chat.pubsub`, this node alone). */
  readonly pubsub?: (node: CinderNode) => ChannelsPubSub | Promise<ChannelsPubSub>;
  /**
   * How to start presence, given where diffs go (default: `@cinder/presence` on the PubSub named
   * `chat.pubsub`, which is the default PubSub's name). Runs after the PubSub.
   */
  readonly presence?: (node: CinderNode, onDiff: DiffHandler) => Presence | Promise<Presence>;
}

export interface ChatServer {
  readonly node: CinderNode;
  readonly endpoint: Endpoint;
  readonly presence: Presence;
  readonly pubsub: ChannelsPubSub;
  readonly http: Server;
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
  /** `ws://host:port/socket`: what phoenix.js' `Socket` is given. */
  readonly socketUrl: string;
  /** Graceful stop: close every socket with 1012 (spread over `overMs`), then stop the node. */
  stop(opts?: { overMs?: number }): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
/** `public/` sits beside `src/` and `dist/`. */
const publicDir = join(here, "..", "public");
const require = createRequire(import.meta.url);
/** phoenix.js' built files (`priv/static`), resolved from the installed package. */
const phoenixDir = dirname(require.resolve("phoenix"));

const STATIC: Record<string, { file: string; type: string }> = {
  "/": { file: join(publicDir, "index.html"), type: "text/html; charset=utf-8" },
  "/index.html": { file: join(publicDir, "index.html"), type: "text/html; charset=utf-8" },
  "/app.js": { file: join(publicDir, "app.js"), type: "text/javascript; charset=utf-8" },
  "/style.css": { file: join(publicDir, "style.css"), type: "text/css; charset=utf-8" },
  "/vendor/phoenix.mjs": { file: join(phoenixDir, "phoenix.mjs"), type: "text/javascript; charset=utf-8" },
  "/vendor/phoenix.js": { file: join(phoenixDir, "phoenix.js"), type: "text/javascript; charset=utf-8" },
  "/favicon.ico": { file: join(phoenixDir, "favicon.ico"), type: "image/x-icon" },
};

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a),
    y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Starts the chat server.
 *
 * @example
 * ```ts
 * import { startChat } from "./server.js";
 * const chat = await startChat({ port: 0 });
 * console.log(chat.url); // http://127.0.0.1:<port>
 * await chat.stop();
 * ```
 */
export async function startChat(opts: ChatOptions = {}): Promise<ChatServer> {
  const node = await startNode({ name: opts.nodeName ?? "chat", logger: opts.logger });
  const pubsub = opts.pubsub ? await opts.pubsub(node) : await startChannelsPubSub(node, { name: "chat.pubsub" });
  // every node reports the diffs of its own view to its own subscribers
  const onDiff: DiffHandler = (topic, diff) => pubsub.localBroadcast(node, topic, broadcastMsg(topic, "presence_diff", diff));
  const presence = opts.presence ? await opts.presence(node, onDiff) : await CinderPresence.start(node);
  const token = opts.token;
  const endpoint = new Endpoint({
    node,
    pubsub,
    channels: [...(typeof opts.channels === "function" ? opts.channels({ node, presence, pubsub }) : opts.channels ?? []), ["room:*", roomChannel({ presence })]],
    connect: token === undefined ? undefined : ({ authToken, params }) => {
      const given = authToken ?? (typeof params.token === "string" ? params.token : undefined);
      return given !== undefined && sameToken(given, token) ? {} : false;
    },
    ...opts.endpoint,
  });

  const http = createServer((req, res) => {
    serve(endpoint, req, res).catch((e) => {
      node.logger.error(`http: ${String(e)}`);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  endpoint.attach(http);
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(opts.port ?? 4000, host, () => {
      http.off("error", reject);
      resolve();
    });
  });
  const port = (http.address() as { port: number }).port;
  const hostInUrl = host.includes(":") ? `[${host}]` : host;
  let stopping: Promise<void> | undefined;
  return {
    node,
    endpoint,
    presence,
    pubsub,
    http,
    port,
    url: `http://${hostInUrl}:${port}`,
    socketUrl: `ws://${hostInUrl}:${port}/socket`,
    stop(o) {
      stopping ??= (async () => {
        await endpoint.stop({ overMs: o?.overMs ?? 0 });
        await new Promise<void>((r) => {
          http.close(() => r());
          http.closeAllConnections();
        });
        await node.stop();
      })();
      return stopping;
    },
  };
}

async function serve(endpoint: Endpoint, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (endpoint.handleRequest(req, res)) return;
  const path = new URL(req.url ?? "/", "http://x").pathname;
  if (path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    return;
  }
  const s = STATIC[path];
  if (s === undefined || (req.method !== "GET" && req.method !== "HEAD")) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  const body = await readFile(s.file);
  res.writeHead(200, { "content-type": s.type, "content-length": body.length, "cache-control": "no-cache" });
  res.end(req.method === "HEAD" ? undefined : body);
}
