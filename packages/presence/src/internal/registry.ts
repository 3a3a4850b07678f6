/**
 * The per-node table of Presences: name → {@link Instance} (options, the broadcaster's pid and
 * counters). An instance outlives restarts of its supervision tree.
 */
import type { Logger, Pid, Process } from "@cinder/runtime";
import type { PubSubRef } from "@cinder/pubsub";
import type { ResolvedPresenceOptions } from "./options.js";

/** @internal the kernel a context belongs to */
export type NodeCore = Process<any>["sched"]["node"];

/** Counters of a Presence on this node (see `Presence.stats`). */
export interface PresenceCounters {
  /** tracker diffs received (one per tracker `handleDiff` call) */
  diffsIn: number;
  /** presences joined / left in those diffs */
  joinsIn: number;
  leavesIn: number;
  /** `presence_diff` messages broadcast (one per topic per flush) */
  broadcasts: number;
  /** metas in the broadcast joins / leaves */
  joinsOut: number;
  leavesOut: number;
  /** `fetch` calls that threw or returned a bad shape (their entries went out unfetched) */
  fetchErrors: number;
}

/** What the broadcaster publishes for stats. */
export interface LiveView {
  pendingTopics(): number;
  pendingPresences(): number;
}

/** @internal one Presence on one node */
export class Instance {
  readonly name: string;
  readonly core: NodeCore;
  readonly opts: ResolvedPresenceOptions;
  /** Where fetch and message-builder failures are logged. */
  readonly logger: Logger;
  /** The running broadcaster, if any (set by its init, cleared at its exit). */
  broadcaster: Pid | undefined;
  live: LiveView | undefined;
  pubsub: PubSubRef | undefined;
  readonly counters: PresenceCounters = { diffsIn: 0, joinsIn: 0, leavesIn: 0, broadcasts: 0, joinsOut: 0, leavesOut: 0, fetchErrors: 0 };

  constructor(core: NodeCore, opts: ResolvedPresenceOptions, logger: Logger | undefined) {
    this.core = core;
    this.name = opts.name;
    this.opts = opts;
    this.logger = logger ?? core.logger;
  }
}

const instances = new WeakMap<NodeCore, Map<string, Instance>>();

/** @internal the instance named `name` on this node, if one was started */
export function findInstance(core: NodeCore, name: string): Instance | undefined {
  return instances.get(core)?.get(name);
}

/** @internal records a new instance (replacing a dead one of the same name) */
export function registerInstance(inst: Instance): void {
  let byName = instances.get(inst.core);
  if (byName === undefined) instances.set(inst.core, (byName = new Map()));
  byName.set(inst.name, inst);
}
