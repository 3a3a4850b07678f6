/**
 * Peer records (TRACKER.md 3.4 step 3 and 3.5): what a shard remembers about each node of its
 * replication group, and the replica events (up, down, permdown) that heartbeats and silence
 * cause. Pure: the caller passes the current monotonic time and applies the events to its State
 * (`replicaUp`, `replicaDown`, `removeDownReplica` plus pruning its generations).
 */
import { replicaId, replicaName, replicaVsn, type ReplicaId } from "./replica.js";

/** What a shard knows about one peer node (one incarnation at a time). */
export interface PeerRecord {
  readonly replica: ReplicaId;
  /** Monotonic time (ms) the last heartbeat from this incarnation arrived. */
  readonly lastHeartbeat: number;
  readonly status: "up" | "down";
}

/** A change of a replica's status that the shard must apply to its State and report. */
export type PeerEvent =
  | { readonly type: "up"; readonly replica: ReplicaId }
  | { readonly type: "down"; readonly replica: ReplicaId }
  | { readonly type: "permdown"; readonly replica: ReplicaId };

/** Peer records by node name. Mutated in place by the functions below. */
export type PeerTable = Map<string, PeerRecord>;

/** An empty peer table. */
export function createPeers(): PeerTable {
  return new Map();
}

/**
 * Records a heartbeat from `replica` arriving at `now` and returns the events it causes, in
 * the order to apply them:
 *
 * | before                   | events                                   |
 * |--------------------------|------------------------------------------|
 * | node unknown             | up(new)                                  |
 * | same vsn, up             | none (arrival time refreshed)            |
 * | same vsn, down           | up                                       |
 * | other vsn, old one up    | down(old), permdown(old), up(new)        |
 * | other vsn, old one down  | permdown(old), up(new)                   |
 *
 * In every case the record ends up as `replica`, up, last heard at `now`.
 */
export function heartbeat(peers: PeerTable, replica: ReplicaId, now: number): PeerEvent[] {
  const name = replicaName(replica);
  const known = peers.get(name);
  peers.set(name, { replica, lastHeartbeat: now, status: "up" });
  if (known === undefined) return [{ type: "up", replica }];
  if (known.replica === replica) return known.status === "up" ? [] : [{ type: "up", replica }];
  const events: PeerEvent[] = [];
  if (known.status === "up") events.push({ type: "down", replica: known.replica });
  events.push({ type: "permdown", replica: known.replica }, { type: "up", replica });
  return events;
}

/**
 * Applies silence (run on every tick): a peer unheard for more than `permdownPeriod` is
 * permdowned and removed from the table (downed first if it was up); one unheard for more than
 * `downPeriod` and still up goes down; any other is left alone.
 */
export function detectDowns(
  peers: PeerTable,
  now: number,
  periods: { readonly downPeriod: number; readonly permdownPeriod: number },
): PeerEvent[] {
  const events: PeerEvent[] = [];
  for (const [name, rec] of peers) {
    const silence = now - rec.lastHeartbeat;
    if (silence > periods.permdownPeriod) {
      if (rec.status === "up") events.push({ type: "down", replica: rec.replica });
      events.push({ type: "permdown", replica: rec.replica });
      peers.delete(name);
    } else if (silence > periods.downPeriod && rec.status === "up") {
      peers.set(name, { ...rec, status: "down" });
      events.push({ type: "down", replica: rec.replica });
    }
  }
  return events;
}

/**
 * Handles a peer's `graceful_permdown`: if the table holds exactly that incarnation it is
 * downed (if up) and permdowned at once and removed; an unknown or other-vsn id is ignored.
 */
export function gracefulPermdown(peers: PeerTable, replica: ReplicaId): PeerEvent[] {
  const name = replicaName(replica);
  const rec = peers.get(name);
  if (rec === undefined || rec.replica !== replica) return [];
  peers.delete(name);
  const events: PeerEvent[] = [];
  if (rec.status === "up") events.push({ type: "down", replica });
  events.push({ type: "permdown", replica });
  return events;
}

/**
 * A source of shard vsns for one node incarnation: each call returns a new vsn, distinct from
 * every earlier one of this source; sources of different incarnations never collide provided
 * the incarnation tokens differ (the runtime's incarnation is unique per node start).
 * @example const nextVsn = createVsnSource(node.incarnation); const me = replicaId(node.name, nextVsn());
 */
export function createVsnSource(incarnation: string): () => string {
  const base = incarnation.replaceAll("#", "_");
  let n = 0;
  return () => `${base}.${(++n).toString(36)}`;
}

export { replicaId, replicaName, replicaVsn };
