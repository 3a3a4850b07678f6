/**
 * Cluster transport: the contract between a Cinder node and the other nodes of its cluster.
 *
 * A transport carries opaque binary *frames*, node-addressed or broadcast, on named
 * *channels* (e.g. "pubsub", "tracker", "proc"), and reports membership.
 *
 * Protocol (every implementation):
 * - Identity: a node has a `name` (stable across restarts) and an `incarnation` (new on every
 *   start). A peer is identified by `name`; a changed incarnation for a known name is reported
 *   as `down` for the old incarnation followed by `up` for the new one. Once a newer incarnation
 *   has been seen, anything still arriving from an older one is dropped.
 * - Membership: each node broadcasts a heartbeat every `heartbeatMs`; a peer is `up` at its
 *   first heartbeat (or first frame) and `down` after `downAfterMs` without hearing from it.
 *   `down` is reported exactly once per `up` of a (name, incarnation): never twice in a row.
 *   Frames from a node reported down are dropped (and counted) until a *heartbeat* from it is
 *   heard again; then it is reported `up` again, with the same incarnation if it only was
 *   unreachable (partition, broker outage), so layers above must treat every `up` as "resync".
 * - Reconnection (transports that go through a broker): a transport that lost its connection
 *   and got it back may have missed frames in both directions, so it reports every peer `down`
 *   on reconnecting (each comes back `up` at its next heartbeat), and its peers, which may not
 *   have noticed the gap, report it `down` then `up` at its first heartbeat after reconnecting.
 * - Delivery: best effort, at most once per frame *per transport guarantee*; FIFO per
 *   (sender, receiver) pair while both stay up, across channels and across `sendTo`/`broadcast`.
 *   No ordering across senders. A partition loses frames silently; layers above detect it
 *   through `down` and repair (the Tracker by full state transfer).
 * - Frames to self are not delivered by `broadcast` (callers handle their own node locally);
 *   `sendTo(self)` delivers locally (asynchronously).
 * - No method throws because of the network, and no frame or membership handler is ever called
 *   synchronously from inside `sendTo`/`broadcast`. An exception thrown by a handler is caught
 *   and logged; it does not stop delivery to the other handlers.
 * - The payload is copied (or written out) before `sendTo`/`broadcast` returns: the caller may
 *   reuse its buffer.
 */
/** A peer came up or went down (see the membership rules above). */
export interface MembershipEvent {
  type: "up" | "down";
  node: string;
  incarnation: string;
}

/**
 * What a node needs from its network: named frames to one node or to all, and membership
 * (protocol above). Implementations: `MemoryCluster` (in-process, with faults), `@cinder/redis`.
 * `CinderNode.connect(transport)` makes other nodes' pids reachable; `@cinder/pubsub`'s
 * `clusterAdapter(transport)` carries broadcasts.
 *
 * @example
 * ```ts
 * import { startNode, MemoryCluster, type DownMessage, type Pid, type Process } from "@cinder/runtime";
 * const cluster = new MemoryCluster({ heartbeatMs: 20, downAfterMs: 100 });
 * const ta = cluster.node("a"), tb = cluster.node("b");
 * const bUp = new Promise((r) => ta.onMembership((e) => e.type === "up" && r(e.node)));
 * const a = await startNode({ name: "a", schedulers: 1 }), b = await startNode({ name: "b", schedulers: 1 });
 * await a.connect(ta); // starts the transport (and a.stop() stops it)
 * await b.connect(tb);
 * console.log(await bUp); // "b"
 * const echo = b.spawn(async (self: Process<{ to: Pid; text: string }>) => {
 *   for (;;) { const m = await self.receive(); if ("text" in m) self.send(m.to, m.text); }
 * });
 * const me = a.process();
 * me.send(echo, { to: me.pid, text: "hi from a" });
 * console.log(await me.receive()); // "hi from a"
 * me.monitor(echo);
 * cluster.kill("b"); // b goes silent: a reports it down after 100 ms
 * console.log(((await me.receive()) as DownMessage).reason); // "noconnection"
 * await a.stop(); await b.stop(); await cluster.close();
 * ```
 */
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

/** Counters of one transport. Heartbeats are not counted as frames. */
export interface TransportStats {
  /** Frames handed to `onFrame` handlers (once per frame, whatever the number of handlers). */
  framesIn: number;
  /** `sendTo`/`broadcast` calls accepted for sending (a broadcast counts once). */
  framesOut: number;
  /**
   * Frames lost where the transport could see it: `sendTo` an unknown or down node, sends
   * while stopped or disconnected, failed writes, and incoming frames from a node reported
   * down or from a superseded incarnation. (Losses inside the network are invisible.)
   */
  dropped: number;
  /** Incoming frames that could not be decoded (garbage, unknown version). */
  decodeErrors: number;
}

/**
 * Where transports report what they survive (errors never escape as exceptions). The node's
 * `Logger` fits.
 */
export interface TransportLogger {
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}
