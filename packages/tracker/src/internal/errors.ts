/**
 * Typed errors of `@cinder/tracker`. Each is a `CinderError` with a stable `code`:
 *
 * | class | code | when |
 * |---|---|---|
 * | {@link TrackerOptionError} | `badarg` | a start option breaks a rule (`option` names it) |
 * | {@link AlreadyTrackedError} | `already_tracked` | `track` of a (pid, topic, key) already present |
 * | {@link NoPresenceError} | `nopresence` | `update` of an absent presence |
 * | {@link UpdateConflictError} | `conflict` | `update` with a function kept losing to concurrent updates |
 * | {@link NotLocalError} | `badarg` | `track` of an actor of another node |
 */
import { CinderError, type Pid } from "@cinder/runtime";

/**
 * A tracker start option is missing or breaks a rule (TRACKER.md 3.1). `option` names it.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, TrackerOptionError } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const pubsub = await PubSub.start(node, { name: "doc_opt_ps" });
 * try {
 *   await Tracker.start(node, { name: "doc_opt", pubsub, broadcastPeriod: 100, downPeriod: 150 });
 * } catch (e) {
 *   if (e instanceof TrackerOptionError) console.log(e.option); // "downPeriod"
 * }
 * await node.stop();
 * ```
 */
export class TrackerOptionError extends CinderError {
  /** The option at fault. */
  readonly option: string;
  constructor(option: string, message: string) {
    super("badarg", `Tracker option ${option}: ${message}`, { option });
    this.name = "TrackerOptionError";
    this.option = option;
  }
}

/**
 * `track` of a presence that already exists: one pid may hold many presences, but each
 * (topic, key) once.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, AlreadyTrackedError } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const pubsub = await PubSub.start(node, { name: "doc_at_ps" });
 * const tracker = await Tracker.start(node, { name: "doc_at", pubsub });
 * const me = node.process();
 * await Tracker.track(me, tracker, me.pid, "room:1", "alice", {});
 * try {
 *   await Tracker.track(me, tracker, me.pid, "room:1", "alice", {});
 * } catch (e) {
 *   if (e instanceof AlreadyTrackedError) console.log([e.code, e.topic, e.key]); // ["already_tracked", "room:1", "alice"]
 * }
 * await node.stop();
 * ```
 */
export class AlreadyTrackedError extends CinderError {
  readonly pid: Pid;
  readonly topic: string;
  readonly key: string;
  constructor(pid: Pid, topic: string, key: string) {
    super("already_tracked", `already tracked: ${pid} on ${JSON.stringify(topic)} as ${JSON.stringify(key)}`, { already_tracked: { pid, topic, key } });
    this.name = "AlreadyTrackedError";
    this.pid = pid;
    this.topic = topic;
    this.key = key;
  }
}

/**
 * `update` of a presence that does not exist.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { PubSub } from "@cinder/pubsub";
 * import { Tracker, NoPresenceError } from "@cinder/tracker";
 * const node = await startNode({ schedulers: 1 });
 * const pubsub = await PubSub.start(node, { name: "doc_np_ps" });
 * const tracker = await Tracker.start(node, { name: "doc_np", pubsub });
 * const me = node.process();
 * try {
 *   await Tracker.update(me, tracker, me.pid, "room:1", "alice", { away: true });
 * } catch (e) {
 *   if (e instanceof NoPresenceError) console.log(e.code); // "nopresence"
 * }
 * await node.stop();
 * ```
 */
export class NoPresenceError extends CinderError {
  readonly pid: Pid;
  readonly topic: string;
  readonly key: string;
  constructor(pid: Pid, topic: string, key: string) {
    super("nopresence", `no presence: ${pid} on ${JSON.stringify(topic)} as ${JSON.stringify(key)}`, "nopresence");
    this.name = "NoPresenceError";
    this.pid = pid;
    this.topic = topic;
    this.key = key;
  }
}

/**
 * `update` with a function lost to concurrent updates of the same presence `attempts` times in
 * a row (TRACKER.md 5.2): the function runs in the caller on the meta it read, and the shard
 * applies its result only if the presence's `phx_ref` has not changed meanwhile.
 *
 * @example
 * ```ts
 * import type { Pid } from "@cinder/runtime";
 * import { UpdateConflictError } from "@cinder/tracker";
 * const e = new UpdateConflictError("<a#x.0a.1>" as Pid, "room:1", "alice", 5);
 * console.log([e.code, e.attempts]); // ["conflict", 5]
 * ```
 */
export class UpdateConflictError extends CinderError {
  readonly pid: Pid;
  readonly topic: string;
  readonly key: string;
  readonly attempts: number;
  constructor(pid: Pid, topic: string, key: string, attempts: number) {
    super("conflict", `update of ${pid} on ${JSON.stringify(topic)} as ${JSON.stringify(key)} lost to concurrent updates ${attempts} times`, "conflict");
    this.name = "UpdateConflictError";
    this.pid = pid;
    this.topic = topic;
    this.key = key;
    this.attempts = attempts;
  }
}

/**
 * `track` of an actor that does not run on this node: each presence has exactly one owning
 * replica, the shard of the actor's own node (TRACKER.md 3.7).
 *
 * @example
 * ```ts
 * import type { Pid } from "@cinder/runtime";
 * import { NotLocalError } from "@cinder/tracker";
 * const e = new NotLocalError("<b#y.0a.7>" as Pid, "a");
 * console.log([e.code, e.pid]); // ["badarg", "<b#y.0a.7>"]
 * ```
 */
export class NotLocalError extends CinderError {
  readonly pid: Pid;
  constructor(pid: Pid, node: string) {
    super("badarg", `only actors of this node (${node}) can be tracked here, not ${pid}`, { not_local: pid });
    this.name = "NotLocalError";
    this.pid = pid;
  }
}
