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
import { TrackerPresence } from "./presence/tracker.js";
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
  /** Presence tracker tick and down period, ms (the tracker's defaults). */
  presenceBroadcastMs?: number;
  presenceDownMs?: number;
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
    presence: (node, onDiff) => TrackerPresence.start(node, { pubsub: "chat.pubsub", onDiff, broadcastPeriod: opts.presenceBroadcastMs, downPeriod: opts.presenceDownMs }),
    stop: () => transport.stop(),
  };
}

/** `redisCluster` when `REDIS_URL` is set, else undefined (one node, in memory). */
export async function clusterFromEnv(redisUrl: string | undefined, nodeName: string): Promise<ClusterSetup | undefined> {
  if (!redisUrl) return undefined;
  return redisCluster(redisUrl, nodeName);
}
