/**
 * Multi-node wiring: with `REDIS_URL`, the channels' PubSub runs `@cinder/pubsub`'s cluster
 * adapter over the Redis transport, so a broadcast in a room reaches the room's sockets on every
 * node (each node that has subscribers gets it once and encodes it once), and presence runs on
 * `@cinder/tracker` over that PubSub, so every node lists the users of the whole cluster.
 */
import { hostname } from "node:os";
import { clusterAdapter } from "@cinder/pubsub";
import { createRedisTransport, type RedisTransport } from "@cinder/redis";
import type { CinderNode } from "@cinder/runtime";
import { startChannelsPubSub, type ChannelsPubSub } from "./channels/index.js";
import { CinderPresence } from "./presence/cinder.js";
import type { DiffHandler, Presence } from "./presence/types.js";

export interface ClusterSetup {
  readonly description: string;
  readonly transport: RedisTransport;
  readonly pubsub: (node: CinderNode) => Promise<ChannelsPubSub>;
  readonly presence: (node: CinderNode, onDiff: DiffHandler) => Promise<Presence>;
  stop(): Promise<void>;
}

/** A node name the runtime and the transport accept: letters, digits, `-` and `_`. */
export function defaultNodeName(): string {
  return `chat-${hostname().replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 40)}-${process.pid}`;
}

/** Connects to Redis (`start` fails after a few seconds if it is unreachable). */
export interface RedisClusterOptions {
  /** Redis channel prefix: clusters sharing a Redis never see each other. Default `"cinder-chat"`. */
  cluster?: string;
  /** Transport heartbeat and down detection, ms (the transport's defaults: 1000 and 5000). */
  heartbeatMs?: number;
  downAfterMs?: number;
  /** Presence tracker tick and down period, ms (the tracker's defaults), and diff batching window. */
  presenceBroadcastMs?: number;
  presenceDownMs?: number;
  presenceBatchMs?: number;
}

export async function redisCluster(url: string, nodeName: string, opts: RedisClusterOptions = {}): Promise<ClusterSetup> {
  const transport = createRedisTransport({ url, nodeName, cluster: opts.cluster ?? "cinder-chat", heartbeatMs: opts.heartbeatMs, downAfterMs: opts.downAfterMs });
  await transport.start();
  const safe = (() => {
    try {
      const u = new URL(url);
      if (u.password) u.password = "***";
      return u.toString();
    } catch {
      return "redis";
    }
  })();
  return {
    description: safe,
    transport,
    pubsub: (node) => startChannelsPubSub(node, { name: "chat.pubsub", adapter: clusterAdapter(transport) }),
    // @cinder/presence broadcasts its diffs itself (the message the DiffHandler would send)
    presence: (node) => CinderPresence.start(node, { pubsub: "chat.pubsub", broadcastPeriod: opts.presenceBroadcastMs, downPeriod: opts.presenceDownMs, batchMs: opts.presenceBatchMs }),
    stop: () => transport.stop(),
  };
}

/**
 * Cluster timings from the environment (ms, positive integers): `PRESENCE_DOWN_MS` (how long a
 * silent node's users stay listed; default the tracker's, 30 s), `PRESENCE_BROADCAST_MS` (tracker
 * tick; default 1500, or `PRESENCE_DOWN_MS / 20` when only that is set), `PRESENCE_BATCH_MS`
 * (presence diff batching window), `CLUSTER_HEARTBEAT_MS` and `CLUSTER_DOWN_MS` (the Redis
 * transport's). Throws on a malformed value.
 *
 * @example
 * ```ts
 * console.log(clusterOptionsFromEnv({ PRESENCE_DOWN_MS: "2000" })); // { presenceDownMs: 2000, presenceBroadcastMs: 100 }
 * ```
 */
export function clusterOptionsFromEnv(env: Record<string, string | undefined>): RedisClusterOptions {
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === "") return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer (ms), got ${JSON.stringify(v)}`);
    return n;
  };
  const out: RedisClusterOptions = {};
  const down = num("PRESENCE_DOWN_MS");
  let tick = num("PRESENCE_BROADCAST_MS");
  if (down !== undefined) {
    out.presenceDownMs = down;
    tick ??= Math.max(10, Math.min(1500, Math.floor(down / 20)));
  }
  if (tick !== undefined) out.presenceBroadcastMs = tick;
  const batch = num("PRESENCE_BATCH_MS");
  if (batch !== undefined) out.presenceBatchMs = batch;
  const hb = num("CLUSTER_HEARTBEAT_MS");
  if (hb !== undefined) out.heartbeatMs = hb;
  const cd = num("CLUSTER_DOWN_MS");
  if (cd !== undefined) out.downAfterMs = cd;
  return out;
}

/** `redisCluster` when `REDIS_URL` is set, else undefined (one node, in memory). */
export async function clusterFromEnv(redisUrl: string | undefined, nodeName: string, opts: RedisClusterOptions = {}): Promise<ClusterSetup | undefined> {
  if (!redisUrl) return undefined;
  return redisCluster(redisUrl, nodeName, opts);
}
