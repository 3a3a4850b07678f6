/**
 * The PubSub the channels layer needs, as a narrow port.
 *
 * It follows `@cinder/pubsub` (PUBSUB.md): the *calling* process subscribes, a subscriber's death
 * removes its entries, `broadcastFrom` skips the sender, and broadcasts go through the fastlane
 * dispatcher, which encodes each broadcast once per node (`fastlane.ts`). `cinder_pubsub.ts`
 * implements it on `@cinder/pubsub`, for one node or a cluster.
 */
import type { Context, Pid, Process } from "@cinder/runtime";
import type { Broadcast, FastlaneMeta } from "./fastlane.js";

/** What channels need from a PubSub. Every method is synchronous and never throws for delivery. */
export interface ChannelsPubSub {
  /** Subscribes the calling process (a channel) to `topic` with fastlane metadata. */
  subscribe(self: Process<any>, topic: string, meta: FastlaneMeta): void;
  /** Removes every entry of the calling process for `topic`. */
  unsubscribe(self: Process<any>, topic: string): void;
  /** To every subscriber of `topic`, on every node. */
  broadcast(ctx: Context, topic: string, msg: Broadcast): void;
  /** To every subscriber except `from`'s entries (remote nodes: to all). */
  broadcastFrom(ctx: Context, from: Pid, topic: string, msg: Broadcast): void;
  /** To this node's subscribers only (presence diffs: every node reports its own). */
  localBroadcast(ctx: Context, topic: string, msg: Broadcast): void;
  /** Number of local subscription entries for `topic` (introspection). */
  subscriberCount(topic: string): number;
  /** Resolves once the other nodes know this node's subscriptions (immediate on one node). */
  synced?(timeoutMs?: number): Promise<void>;
}
