/**
 * The adapter contract (PUBSUB.md 1.6): an adapter moves broadcasts between nodes; local
 * delivery is never its job. It runs under the PubSub supervisor after the tables (a table
 * restart restarts it), is created by an {@link AdapterFactory} with an {@link AdapterContext},
 * and hands what arrives from other nodes to `ctx.deliver` (local dispatch with `from` = none).
 */
import type { Logger } from "@cinder/runtime";
import type { BroadcastError } from "./errors.js";

/** What an adapter gets from its PubSub instance. */
export interface AdapterContext {
  /** The PubSub's name. */
  readonly name: string;
  /** The adapter's reserved name space (`<name>.adapter`). */
  readonly adapterName: string;
  /** The local node's name (the kernel's). */
  readonly localNode: string;
  readonly poolSize: number;
  readonly broadcastPoolSize: number;
  /** Every PubSub option, unknown ones included. */
  readonly options: Readonly<Record<string, unknown>>;
  readonly logger: Logger;
  /** Hands a message from another node to local dispatch through receive lane `lane mod poolSize`. */
  deliver(lane: number, topic: string, msg: unknown, dispatcher: string | null): void;
  /** Has any scheduler of this node a subscriber for `topic`? */
  hasSubscribers(topic: string): boolean;
  /** Topics with subscribers on this node (a snapshot is taken by iterating). */
  localTopics(): Iterable<string>;
  /** Node interest changes, batched per turn. Returns an unsubscribe function. */
  onInterest(fn: (added: string[], removed: string[]) => void): () => void;
  /** Announces pending interest changes now instead of at the end of the turn. */
  flushInterest(): void;
}

/** A running adapter. Calls are synchronous and never throw because of the network. */
export interface Adapter {
  /** This node's name in the cluster (unique). */
  nodeName(): string;
  /** Sends to every other node that needs it; null, or the error (nothing half-sent). */
  broadcast(topic: string, msg: unknown, dispatcher: string | null, lane: number): BroadcastError | null;
  /** Sends to `node` only (never the local node: the caller dispatches that itself). Unknown node: null. */
  directBroadcast(node: string, topic: string, msg: unknown, dispatcher: string | null, lane: number): BroadcastError | null;
  /** Resolves once every node currently up has acknowledged this node's interest. */
  synced?(timeoutMs: number): Promise<void>;
  /** Counters (adapter-specific). */
  stats(): AdapterStats;
  /** Stops (the PubSub's adapter child exits). */
  stop(): void | Promise<void>;
}

/** Counters every adapter reports; cluster adapters add their own. */
export interface AdapterStats {
  kind: string;
  node: string;
  [key: string]: unknown;
}

/**
 * Creates the adapter when the PubSub's adapter child starts (again after every restart).
 * `interestRouting: true` asks the tables to keep the node's interest set for it.
 */
export type AdapterFactory = ((ctx: AdapterContext) => Adapter | Promise<Adapter>) & { readonly interestRouting?: boolean };

/**
 * The adapter of a node on its own: other nodes do not exist, so `broadcast` sends nothing and
 * `directBroadcast` to another name delivers nothing (Phoenix's PG2 adapter on a node that is not
 * distributed). The default.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub, localAdapter } from "@cinder/pubsub";
 * const node = await startNode({ name: "solo", schedulers: 1 });
 * const ps = await PubSub.start(node, { name: "doc_local", adapter: localAdapter() });
 * console.log(PubSub.nodeName(ps)); // "solo"
 * await node.stop();
 * ```
 */
export function localAdapter(): AdapterFactory {
  return (ctx) => ({
    nodeName: () => ctx.localNode,
    broadcast: () => null,
    directBroadcast: () => null,
    synced: async () => {},
    stats: () => ({ kind: "local", node: ctx.localNode }),
    stop() {},
  });
}
