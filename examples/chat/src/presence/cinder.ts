/**
 * The chat's presence on `@cinder/presence`: presences replicated to every node by its tracker
 * over the channels' PubSub, so each node's clients see the users of the whole cluster (on one
 * node, the same code with nobody to replicate to). Each node broadcasts the diffs it sees to its
 * own subscribers, batched per topic, through the channels' fastlane (encoded once per node):
 * the very message the server's `DiffHandler` would send, so this implementation needs none.
 */
import { AlreadyTrackedError, NoPresenceError, Presence as CinderPresenceApi, type PresenceRef } from "@cinder/presence";
import type { CinderNode, Pid } from "@cinder/runtime";
import { FASTLANE, broadcastMsg } from "../channels/index.js";
import { PresenceError, type Meta, type Presence, type PresenceState } from "./types.js";

export interface CinderPresenceOptions {
  /** The Presence's name (equal on every node). Default `"chat.presence"`. */
  name?: string;
  /** Name of the running `@cinder/pubsub` instance (the channels' PubSub). Default `"chat.pubsub"`. */
  pubsub?: string;
  /** Tracker tick, ms (default the tracker's, 1500). */
  broadcastPeriod?: number;
  /** Silence after which a peer node's presences leave, ms (default the tracker's: 30 s with the default tick). */
  downPeriod?: number;
  /** Per-topic batching window of presence diffs, ms (default @cinder/presence's, 50). */
  batchMs?: number;
}

/**
 * Starts a `@cinder/presence` under the node's root supervisor and wraps it as the chat's `Presence`.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { startChannelsPubSub } from "../channels/index.js";
 * const node = await startNode();
 * await startChannelsPubSub(node, { name: "chat.pubsub" });
 * const presence = await CinderPresence.start(node);
 * const me = node.process();
 * await presence.track(me.pid, "room:lobby", "ann", { online_at: 1, typing: false });
 * console.log(Object.keys(presence.list("room:lobby"))); // ["ann"]
 * await node.stop();
 * ```
 */
export class CinderPresence implements Presence {
  private constructor(
    private readonly node: CinderNode,
    private readonly presence: PresenceRef,
  ) {}

  static async start(node: CinderNode, opts: CinderPresenceOptions = {}): Promise<CinderPresence> {
    const name = opts.name ?? "chat.presence";
    await node.startChild(
      CinderPresenceApi.childSpec({
        name,
        pubsub: opts.pubsub ?? "chat.pubsub",
        broadcastPeriod: opts.broadcastPeriod,
        downPeriod: opts.downPeriod,
        batchMs: opts.batchMs,
        // a node stopping on purpose tells its peers, which drop its presences at once
        permdownOnShutdown: true,
        message: (topic, diff) => broadcastMsg(topic, "presence_diff", diff),
        dispatcher: FASTLANE,
      }),
    );
    return new CinderPresence(node, CinderPresenceApi.ref(node, name));
  }

  async track(pid: Pid, topic: string, key: string, meta: Record<string, unknown>): Promise<string> {
    try {
      return await CinderPresenceApi.track(this.node, this.presence, pid, topic, String(key), meta);
    } catch (e) {
      if (e instanceof AlreadyTrackedError) throw new PresenceError("already_tracked", e.message);
      throw e;
    }
  }

  async untrack(pid: Pid, topic: string, key: string): Promise<void> {
    await CinderPresenceApi.untrack(this.node, this.presence, pid, topic, String(key));
  }

  async untrackAll(pid: Pid): Promise<void> {
    await CinderPresenceApi.untrack(this.node, this.presence, pid);
  }

  async update(pid: Pid, topic: string, key: string, meta: Record<string, unknown> | ((current: Meta) => Record<string, unknown>)): Promise<string> {
    try {
      return await CinderPresenceApi.update(this.node, this.presence, pid, topic, String(key), meta);
    } catch (e) {
      if (e instanceof NoPresenceError) throw new PresenceError("nopresence", e.message);
      throw e;
    }
  }

  list(topic: string): PresenceState {
    return CinderPresenceApi.listRaw(this.node, this.presence, topic) as PresenceState;
  }
}
