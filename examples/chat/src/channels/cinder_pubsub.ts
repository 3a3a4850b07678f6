/**
 * The channels' PubSub port on `@cinder/pubsub`: subscriptions in its per-scheduler tables,
 * broadcasts through the registered fastlane dispatcher, other nodes through its adapter (the
 * cluster adapter over Redis, say). Each node receives a broadcast once and encodes it once for
 * all of its sockets.
 */
import { PubSub, registerDispatcher, type Dispatcher, type PubSubOptions, type PubSubRef } from "@cinder/pubsub";
import type { CinderNode } from "@cinder/runtime";
import { encodeBroadcast, isBroadcast, type FastlaneMeta, type FrameMsg } from "./fastlane.js";
import type { ChannelsPubSub } from "./pubsub.js";

/** The id the fastlane dispatcher is registered under (on every node and scheduler). */
export const FASTLANE = "cinder.channels.fastlane";

function isFastlane(meta: unknown): meta is FastlaneMeta {
  return typeof meta === "object" && meta !== null && typeof (meta as FastlaneMeta).fastlane === "string";
}

/**
 * Encodes a broadcast at most once per call (one call per scheduler with subscribers) and sends
 * the same frame to every fastlane entry's socket, skipping `from`; other entries get the
 * message itself.
 */
export const fastlaneDispatcher: Dispatcher = (entries, from, message, ctx) => {
  let frame: FrameMsg | undefined;
  for (const e of entries) {
    if (e.pid === from) continue;
    if (isFastlane(e.metadata) && isBroadcast(message)) {
      frame ??= encodeBroadcast(message);
      ctx.send(e, frame, e.metadata.fastlane);
    } else {
      ctx.send(e, message);
    }
  }
};

registerDispatcher(FASTLANE, fastlaneDispatcher);

/** Wraps a running `@cinder/pubsub` instance as the channels' port. */
export function channelsOn(ps: PubSubRef): ChannelsPubSub {
  const log = (what: string, r: unknown) => {
    if (r !== "ok") ps.node.logger.warn(`channels: ${what}: ${String((r as Error).message ?? r)}`);
  };
  return {
    subscribe(self, topic, meta) {
      PubSub.subscribe(self, ps, topic, { metadata: meta });
    },
    unsubscribe(self, topic) {
      PubSub.unsubscribe(self, ps, topic);
    },
    broadcast(ctx, topic, msg) {
      log(`broadcast on ${topic}`, PubSub.broadcast(ctx, ps, topic, msg, FASTLANE));
    },
    broadcastFrom(ctx, from, topic, msg) {
      log(`broadcast on ${topic}`, PubSub.broadcastFrom(ctx, ps, from, topic, msg, FASTLANE));
    },
    localBroadcast(ctx, topic, msg) {
      PubSub.localBroadcast(ctx, ps, topic, msg, FASTLANE);
    },
    subscriberCount(topic) {
      return PubSub.subscribers(ps, topic).length;
    },
    synced(timeoutMs) {
      return PubSub.synced(ps, timeoutMs);
    },
  };
}

/**
 * Starts a `@cinder/pubsub` instance under the node's root supervisor and returns the port.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * const node = await startNode();
 * const pubsub = await startChannelsPubSub(node, { name: "chat.pubsub" });
 * console.log(pubsub.subscriberCount("room:lobby")); // 0
 * await node.stop();
 * ```
 */
export async function startChannelsPubSub(node: CinderNode, opts: PubSubOptions): Promise<ChannelsPubSub> {
  await node.startChild(PubSub.childSpec(opts));
  return channelsOn(PubSub.ref(node, opts.name));
}
