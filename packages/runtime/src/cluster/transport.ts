/**
 * Cluster transport: the contract between a Cinder node and the other nodes of its cluster.
 *
 * A transport carries opaque binary *frames*, node-addressed or broadcast, on named
 * *channels* (e.g. "pubsub", "tracker", "proc"), and reports membership.
 *
 * Protocol (every implementation):
 * - Identity: a node has a `name` (stable across restarts) and an `incarnation` (new on every
 *   start). A peer is identified by `name`; a changed incarnation for a known name is reported
 *   as `down` for the old incarnation followed by `up` for the new one.
 * - Membership: each node broadcasts a heartbeat every `heartbeatMs`; a peer is `up` at its
 *   first heartbeat (or first frame) and `down` after `downAfterMs` without hearing from it.
 *   `down` is reported exactly once per (name, incarnation); frames from a node reported down
 *   are dropped until it is seen `up` again.
 * - Delivery: best effort, at most once per frame *per transport guarantee*; FIFO per
 *   (sender, receiver) pair while both stay up. No ordering across senders. A partition loses
 *   frames silently; layers above detect it through `down` and repair (the Tracker by full
 *   state transfer).
 * - Frames to self are not delivered by `broadcast` (callers handle their own node locally);
 *   `sendTo(self)` delivers locally (asynchronously).
 */
export interface MembershipEvent {
  type: "up" | "down";
  node: string;
  incarnation: string;
}

export interface ClusterTransport {
  /** This node's name. */
  readonly nodeName: string;
  /** This node's incarnation (changes every start). */
  readonly incarnation: string;
  /** Connect and begin heartbeating. */
  start(): Promise<void>;
  /** Stop heartbeating, disconnect; peers see this node `down` after their `downAfterMs`. */
  stop(): Promise<void>;
  /** Send one frame to one node (by name). Unknown or down node: dropped, counted. */
  sendTo(node: string, channel: string, payload: Uint8Array): void;
  /** Send one frame to every other node. */
  broadcast(channel: string, payload: Uint8Array): void;
  /** Subscribe to incoming frames; returns an unsubscribe function. */
  onFrame(handler: (from: string, channel: string, payload: Uint8Array) => void): () => void;
  /** Subscribe to membership changes; returns an unsubscribe function. */
  onMembership(handler: (event: MembershipEvent) => void): () => void;
  /** Names of the nodes currently up (excluding self). */
  members(): string[];
  /** Counters: frames in/out, dropped, decode errors. */
  stats(): TransportStats;
}

export interface TransportStats {
  framesIn: number;
  framesOut: number;
  dropped: number;
  decodeErrors: number;
}
