/**
 * Runs the chat server.
 *
 * Environment: `PORT` (default 4000), `HOST` (default 127.0.0.1), `REDIS_URL` (optional: several
 * nodes share rooms through Redis; without it, one node in memory), `CHAT_TOKEN` (optional: a
 * token every connection must present), `NODE_NAME` (default `chat-<host>-<pid>`; unique per
 * node of a cluster), and the cluster timings of `clusterOptionsFromEnv` (`PRESENCE_DOWN_MS`, …).
 *
 * SIGINT/SIGTERM drain gracefully: sockets close with 1012 over a couple of seconds, so clients
 * reconnect (to this node once restarted, or to another one).
 */
import type { CinderNode } from "@cinder/runtime";
import { startChat } from "./server.js";
import { CinderPresence } from "./presence/cinder.js";
import { clusterFromEnv, clusterOptionsFromEnv, defaultNodeName, type RedisClusterOptions } from "./cluster.js";

const port = Number(process.env.PORT ?? 4000);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid PORT ${process.env.PORT}`);
  process.exit(2);
}
const host = process.env.HOST ?? "127.0.0.1";
const nodeName = process.env.NODE_NAME || defaultNodeName();
let clusterOpts: RedisClusterOptions;
try {
  clusterOpts = clusterOptionsFromEnv(process.env);
} catch (e) {
  console.error(String((e as Error).message));
  process.exit(2);
}
const cluster = await clusterFromEnv(process.env.REDIS_URL, nodeName, clusterOpts);

const presence = cluster?.presence ?? ((node: CinderNode) => CinderPresence.start(node, { batchMs: clusterOpts.presenceBatchMs }));
const chat = await startChat({ port, host, nodeName, token: process.env.CHAT_TOKEN || undefined, pubsub: cluster?.pubsub, presence });
console.log(`chat: listening on ${chat.url} (node ${chat.node.name}${cluster ? `, cluster via ${cluster.description}` : ", single node"})`);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) process.exit(1);
  stopping = true;
  console.log(`chat: ${signal}: draining ${chat.endpoint.connections().length} connections`);
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  await chat.stop({ overMs: 2000 });
  await cluster?.stop();
  process.exit(0);
};
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
