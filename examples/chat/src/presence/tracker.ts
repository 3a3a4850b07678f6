/**
 * Presence on `@cinder/tracker`: presences replicated to every node over PubSub, so each node's
 * clients see the users of the whole cluster. Phoenix.Presence's thin layer, kept here until
 * `@cinder/presence` provides it: the tracker's diffs become `{joins, leaves}` in the wire shape
 * (grouped by key, metas carrying `phx_ref`, and `phx_ref_prev` after an update), reported per
 * topic in the order the shard produced them; each node reports the diffs it sees to its own
 * subscribers.
 */
import { AlreadyTrackedError, NoPresenceError, Tracker, type TrackerDiff, type TrackerRef } from "@cinder/tracker";
import type { CinderNode, Pid } from "@cinder/runtime";
import { PresenceError, emptyState, type DiffHandler, type Meta, type Presence, type PresenceState } from "./types.js";

export interface TrackerPresenceOptions {
  /** The tracker's name (equal on every node). Default `"chat.presence"`. */
  name?: string;
  /** Name of the running `@cinder/pubsub` instance the tracker replicates over. */
  pubsub: string;
  onDiff: DiffHandler;
  /** Tracker tick, ms (default the tracker's, 1500). */
  broadcastPeriod?: number;
  /** Silence after which a peer node's presences are hidden, ms (default the tracker's). */
  downPeriod?: number;
}

/** Metas of one key in a stable order: by `online_at`, then by `phx_ref`. */
function byJoinTime(a: Meta, b: Meta): number {
  const x = Number(a.online_at ?? 0),
    y = Number(b.online_at ?? 0);
  return x !== y ? x - y : a.phx_ref < b.phx_ref ? -1 : a.phx_ref > b.phx_ref ? 1 : 0;
}

function group(presences: ReadonlyArray<{ key: string; meta: Record<string, unknown> }>): PresenceState {
  const out = emptyState();
  for (const p of presences) (out[p.key] ??= { metas: [] }).metas.push(p.meta as Meta);
  for (const k of Object.keys(out)) out[k]!.metas.sort(byJoinTime);
  return out;
}

/**
 * Starts a tracker under the node's root supervisor and wraps it as the chat's `Presence`.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { startChannelsPubSub } from "../channels/index.js";
 * const node = await startNode();
 * await startChannelsPubSub(node, { name: "chat.pubsub" });
 * const presence = await TrackerPresence.start(node, { pubsub: "chat.pubsub", onDiff: () => {} });
 * const me = node.process();
 * await presence.track(me.pid, "room:lobby", "ann", { online_at: 1, typing: false });
 * console.log(Object.keys(presence.list("room:lobby"))); // ["ann"]
 * await node.stop();
 * ```
 */
export class TrackerPresence implements Presence {
  private constructor(
    private readonly node: CinderNode,
    private readonly tracker: TrackerRef,
  ) {}

  static async start(node: CinderNode, opts: TrackerPresenceOptions): Promise<TrackerPresence> {
    const name = opts.name ?? "chat.presence";
    const onDiff = opts.onDiff;
    await node.startChild(
      Tracker.childSpec({
        name,
        pubsub: opts.pubsub,
        broadcastPeriod: opts.broadcastPeriod,
        downPeriod: opts.downPeriod,
        // a node stopping on purpose tells its peers, which drop its presences at once
        permdownOnShutdown: true,
        handleDiff: (diff: TrackerDiff, state: unknown) => {
          for (const [topic, d] of diff) {
            try {
              onDiff(topic, { joins: group(d.joins), leaves: group(d.leaves) });
            } catch (e) {
              node.logger.error(`presence: diff handler threw on ${topic}: ${String(e)}`);
            }
          }
          return { state };
        },
      }),
    );
    return new TrackerPresence(node, Tracker.ref(node, name));
  }

  async track(pid: Pid, topic: string, key: string, meta: Record<string, unknown>): Promise<string> {
    try {
      return await Tracker.track(this.node, this.tracker, pid, topic, String(key), meta);
    } catch (e) {
      if (e instanceof AlreadyTrackedError) throw new PresenceError("already_tracked", e.message);
      throw e;
    }
  }

  async untrack(pid: Pid, topic: string, key: string): Promise<void> {
    await Tracker.untrack(this.node, this.tracker, pid, topic, String(key));
  }

  async untrackAll(pid: Pid): Promise<void> {
    await Tracker.untrack(this.node, this.tracker, pid);
  }

  async update(pid: Pid, topic: string, key: string, meta: Record<string, unknown> | ((current: Meta) => Record<string, unknown>)): Promise<string> {
    const strip = (m: Record<string, unknown>) => {
      const { phx_ref: _r, phx_ref_prev: _p, ...fields } = m;
      return fields;
    };
    try {
      return await Tracker.update(this.node, this.tracker, pid, topic, String(key), typeof meta === "function" ? (m) => strip(meta(m as Meta)) : strip(meta));
    } catch (e) {
      if (e instanceof NoPresenceError) throw new PresenceError("nopresence", e.message);
      throw e;
    }
  }

  list(topic: string): PresenceState {
    return group(Tracker.list(this.node, this.tracker, topic));
  }
}
