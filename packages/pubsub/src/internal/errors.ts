/**
 * Typed errors of `@cinder/pubsub`: a bad start option (names the option) and a broadcast that
 * could not reach every destination (names the destinations that failed).
 */
import { CinderError } from "@cinder/runtime";

/**
 * A PubSub start option is missing or invalid. `option` names it.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub, PubSubOptionError } from "@cinder/pubsub";
 * const node = await startNode({ schedulers: 1 });
 * try { await PubSub.start(node, {} as never); }
 * catch (e) { if (e instanceof PubSubOptionError) console.log(e.option); } // "name"
 * await node.stop();
 * ```
 */
export class PubSubOptionError extends CinderError {
  /** The option at fault (`name`, `poolSize`, `broadcastPoolSize`, …). */
  readonly option: string;
  constructor(option: string, message: string) {
    super("badarg", `PubSub option ${option}: ${message}`, { option });
    this.name = "PubSubOptionError";
    this.option = option;
  }
}

/** Why a broadcast did not reach every destination. */
export type BroadcastFailure =
  /** the cluster transport is down, or the adapter is not running (restarting) */
  | "transport"
  /** the message could not be encoded by the cluster codec (other nodes) */
  | "encode"
  /** the message could not be structured-cloned (other schedulers) */
  | "clone";

/**
 * A broadcast reached only part of its destinations. Local subscribers that needed no copy were
 * still delivered to (Cinder differs from Phoenix here, PUBSUB.md 2.7); `nodes` and `schedulers`
 * name what was not reached. Returned by `broadcast` and friends, thrown by their `…OrThrow`
 * forms.
 *
 * @example
 * ```ts
 * import { startNode, MemoryCluster } from "@cinder/runtime";
 * import { PubSub, BroadcastError, clusterAdapter } from "@cinder/pubsub";
 * const cluster = new MemoryCluster();
 * const transport = cluster.node("a");
 * await transport.start();
 * const node = await startNode({ name: "a", schedulers: 1 });
 * const ps = await PubSub.start(node, { name: "doc_err", adapter: clusterAdapter(transport) });
 * const me = node.process();
 * PubSub.subscribe(me, ps, "t");
 * console.log(PubSub.broadcast(node, ps, "t", "one")); // "ok"
 * cluster.kill("a"); // the transport is down: other nodes cannot be reached
 * const r = PubSub.broadcast(node, ps, "t", "two");
 * console.log(r instanceof BroadcastError && [r.failure, r.code, r.remoteOnly]); // ["transport", "noconnection", true]
 * console.log(me.flush()); // ["one", "two"]: local delivery still happened
 * await node.stop();
 * await cluster.close();
 * ```
 */
export class BroadcastError extends CinderError {
  /** What failed: the transport, encoding for other nodes, or cloning for other schedulers. */
  readonly failure: BroadcastFailure;
  /** True when local dispatch happened and only other nodes/schedulers were missed. */
  readonly remoteOnly: boolean;
  /** Nodes the message did not reach (by name). */
  readonly nodes: readonly string[];
  /** Schedulers of this node the message did not reach (by index). */
  readonly schedulers: readonly number[];
  constructor(failure: BroadcastFailure, message: string, opts: { nodes?: readonly string[]; schedulers?: readonly number[]; cause?: unknown; remoteOnly?: boolean }) {
    super(failure === "transport" ? "noconnection" : "badarg", message, opts.cause ?? failure);
    this.name = "BroadcastError";
    this.failure = failure;
    this.remoteOnly = opts.remoteOnly ?? true;
    this.nodes = opts.nodes ?? [];
    this.schedulers = opts.schedulers ?? [];
  }

  /** @internal combine two partial failures of one broadcast */
  static merge(a: BroadcastError | null, b: BroadcastError | null): BroadcastError | null {
    if (a === null) return b;
    if (b === null) return a;
    return new BroadcastError(a.failure, `${a.message}; ${b.message}`, {
      nodes: [...a.nodes, ...b.nodes],
      schedulers: [...a.schedulers, ...b.schedulers],
      cause: a.reason,
      remoteOnly: a.remoteOnly && b.remoteOnly,
    });
  }
}
