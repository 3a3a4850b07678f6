/**
 * The node handle: start a node, spawn and send from outside any process, supervise
 * top-level services under the root supervisor, and stop everything gracefully.
 */
import { NodeCore, type NodeOptions } from "./internal/node_core.js";
import { Supervisor, type ChildSpec, type SupervisorRef } from "./supervisor.js";
import type { Pid } from "./internal/types.js";

/** Options for `startNode`. */
export interface StartNodeOptions extends NodeOptions {
  /** Number of schedulers (threads), main thread included. Default 1 until worker schedulers are enabled. */
  schedulers?: number;
}

/**
 * A running Cinder node (one OS process). Named `CinderNode` so it does not clash with the
 * DOM's `Node`.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * const node = await startNode({ name: "demo" });
 * const me = node.process();
 * node.send(me.pid, "hello");
 * console.log(await me.receive()); // "hello"
 * await node.stop();
 * ```
 */
export class CinderNode extends NodeCore {
  /** The root supervisor (one_for_one) that top-level services run under. */
  root!: SupervisorRef;

  /** Starts a node. */
  static async start(opts: StartNodeOptions = {}): Promise<CinderNode> {
    const node = new CinderNode(opts);
    node.root = await Supervisor.start(node, { strategy: "one_for_one", maxRestarts: 3, maxSeconds: 5, children: [] }, { name: "cinder.root" });
    return node;
  }

  /** Starts a child under the root supervisor; resolves with its pid. */
  startChild(spec: ChildSpec): Promise<Pid | undefined> {
    return Supervisor.startChild(this, this.root, spec);
  }

  /** True once `stop` has begun. */
  get stopping(): boolean {
    return this.stopped;
  }

  /**
   * Stops the node gracefully: the root supervisor stops its children in reverse start order
   * within their shutdown budgets; then every other process is ended and every timer cleared,
   * so nothing keeps the OS process alive.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await Supervisor.stop(this, this.root, "shutdown");
    } catch {
      // the root is already gone: nothing to stop in order
    }
    this.haltKernel();
  }
}

/** Starts a node (same as `CinderNode.start`). */
export function startNode(opts?: StartNodeOptions): Promise<CinderNode> {
  return CinderNode.start(opts);
}
