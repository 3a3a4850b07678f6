/**
 * PubSub start options: defaults and validation (PUBSUB.md 1.1). A violated rule fails the
 * start with a {@link PubSubOptionError} naming the option.
 */
import type { Logger } from "@cinder/runtime";
import { PubSubOptionError } from "./errors.js";
import type { AdapterFactory } from "./adapter.js";

/** Options of `PubSub.start` / `PubSub.childSpec`. Unknown keys pass through to the adapter. */
export interface PubSubOptions {
  /** Required: the instance's name, unique on the node (the supervisor registers under it). */
  name: string;
  /** How broadcasts reach other nodes. Default: `localAdapter()` (a node on its own). */
  adapter?: AdapterFactory;
  /** Receive lanes on this node (Phoenix's PG2 pool). Default 1. */
  poolSize?: number;
  /** Lanes senders spread over (≤ poolSize). Default `poolSize`. See PUBSUB.md 1.5. */
  broadcastPoolSize?: number;
  /** Accepted for compatibility with Phoenix; partitioning is per scheduler here. */
  registrySize?: number;
  /** Bound on the frames queued per receive lane; beyond it frames are dropped and counted. Default unbounded. */
  laneBound?: number;
  /** Slots of the shared per-scheduler interest table (a power of two). Default 4096. */
  interestSlots?: number;
  /** Logger (default: the node's). */
  logger?: Logger;
  /** Anything else is handed to the adapter. */
  [adapterOption: string]: unknown;
}

/** @internal options after defaults */
export interface ResolvedOptions {
  name: string;
  adapter: AdapterFactory | undefined;
  poolSize: number;
  broadcastPoolSize: number;
  registrySize: number | undefined;
  laneBound: number;
  interestSlots: number;
  logger: Logger | undefined;
  raw: PubSubOptions;
}

function positiveInt(opts: Record<string, unknown>, key: string, dflt: number): number {
  const v = opts[key];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new PubSubOptionError(key, `must be a positive integer, got ${String(v)}`);
  return v;
}

/** @internal validates and fills defaults; throws PubSubOptionError */
export function resolveOptions(opts: PubSubOptions | undefined): ResolvedOptions {
  if (opts === null || typeof opts !== "object") throw new PubSubOptionError("name", "the required option name is missing (no options given)");
  const name = opts.name;
  if (name === undefined) throw new PubSubOptionError("name", "the required option name is missing");
  if (typeof name !== "string" || name.length === 0 || name.charCodeAt(0) === 60) throw new PubSubOptionError("name", `must be a non-empty string not starting with '<', got ${JSON.stringify(name)}`);
  const poolSize = positiveInt(opts, "poolSize", 1);
  const broadcastPoolSize = positiveInt(opts, "broadcastPoolSize", poolSize);
  if (broadcastPoolSize > poolSize) {
    throw new PubSubOptionError("broadcastPoolSize", `poolSize must be greater than or equal to broadcastPoolSize (poolSize ${poolSize}, broadcastPoolSize ${broadcastPoolSize})`);
  }
  const registrySize = opts.registrySize === undefined ? undefined : positiveInt(opts, "registrySize", 1);
  const laneBound = opts.laneBound === undefined ? Infinity : positiveInt(opts, "laneBound", 1);
  const interestSlots = positiveInt(opts, "interestSlots", 4096);
  if ((interestSlots & (interestSlots - 1)) !== 0) throw new PubSubOptionError("interestSlots", `must be a power of two, got ${interestSlots}`);
  if (opts.adapter !== undefined && typeof opts.adapter !== "function") throw new PubSubOptionError("adapter", "must be an adapter factory (e.g. clusterAdapter(transport))");
  return { name, adapter: opts.adapter, poolSize, broadcastPoolSize, registrySize, laneBound, interestSlots, logger: opts.logger, raw: opts };
}
