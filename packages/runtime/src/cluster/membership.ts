/**
 * Heartbeat membership shared by every transport: which peers are up, under which incarnation,
 * and whether a frame from a peer may be delivered. Implements the membership rules of
 * `transport.ts`; the transport feeds it what it hears and forwards the events it emits.
 */
import type { MembershipEvent } from "./transport.js";

/** Options of a {@link PeerTable}. */
export interface PeerTableOptions {
  /** A peer not heard from for this long is reported down. */
  downAfterMs: number;
  /** How often silent peers are looked for. Default: downAfterMs / 10, between 5 and 250 ms. */
  checkEveryMs?: number;
  /** Monotonic clock in ms. Default: `performance.now()`. */
  now?: () => number;
  /** Receives every membership change, synchronously. */
  onEvent: (event: MembershipEvent) => void;
  /** How many superseded incarnations to remember per node name. Default 16. */
  retiredPerNode?: number;
}

interface Peer {
  incarnation: string;
  /** Connection number of the peer's transport, when it sends one. */
  epoch: number | undefined;
  up: boolean;
  lastSeen: number;
  /** Older incarnations of this name: anything still arriving from them is dropped. */
  retired: string[];
}

/**
 * The peers one transport hears: up or down, under which incarnation, and whether a frame from
 * one may be delivered. A transport calls `heartbeat`/`frame` for what it receives and forwards
 * `onEvent`'s events to its membership handlers.
 *
 * @example
 * ```ts
 * import { PeerTable, type MembershipEvent } from "@cinder/runtime";
 * const events: MembershipEvent[] = [];
 * const peers = new PeerTable({ downAfterMs: 100, onEvent: (e) => events.push(e) });
 * peers.start();                       // begins checking for silent peers
 * peers.heartbeat("b", "inc-1");       // -> { type: "up", node: "b", incarnation: "inc-1" }
 * console.log(peers.frame("b", "inc-1")); // true: deliver
 * await new Promise((r) => setTimeout(r, 300)); // 100 ms+ without hearing from b -> down
 * console.log(peers.frame("b", "inc-1")); // false: drop until a heartbeat revives it
 * peers.heartbeat("b", "inc-2");       // restarted -> { type: "up", ..., incarnation: "inc-2" }
 * peers.stop();
 * console.log(events.map((e) => `${e.type} ${e.incarnation}`)); // ["up inc-1", "down inc-1", "up inc-2"]
 * ```
 */
export class PeerTable {
  readonly downAfterMs: number;
  readonly checkEveryMs: number;
  private readonly now: () => number;
  private readonly onEvent: (event: MembershipEvent) => void;
  private readonly retiredPerNode: number;
  private readonly peers = new Map<string, Peer>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: PeerTableOptions) {
    if (!(opts.downAfterMs > 0)) throw new RangeError(`downAfterMs must be > 0, got ${opts.downAfterMs}`);
    this.downAfterMs = opts.downAfterMs;
    this.checkEveryMs = opts.checkEveryMs ?? Math.min(250, Math.max(5, Math.floor(opts.downAfterMs / 10)));
    this.now = opts.now ?? (() => performance.now());
    this.onEvent = opts.onEvent;
    this.retiredPerNode = opts.retiredPerNode ?? 16;
  }

  /** Starts the periodic check for silent peers. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.sweep(), this.checkEveryMs);
    this.timer.unref?.();
  }

  /** Stops checking. Emits nothing. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Forgets every peer. Emits nothing. */
  clear(): void {
    this.peers.clear();
  }

  /**
   * A heartbeat was heard from (node, incarnation). May emit up (and down for a replaced
   * incarnation). `epoch` is optional: a transport that reconnects to its network numbers its
   * connections; a new epoch of an up peer is reported as down then up (same incarnation),
   * because frames may have been lost in between.
   */
  heartbeat(node: string, incarnation: string, epoch?: number): void {
    this.observe(node, incarnation, true, epoch);
  }

  /**
   * A frame was heard from (node, incarnation). Returns true if it must be delivered, false if it
   * must be dropped (the node is reported down, or the incarnation is superseded).
   */
  frame(node: string, incarnation: string, epoch?: number): boolean {
    return this.observe(node, incarnation, false, epoch);
  }

  /**
   * Reports every up peer down at once (a transport that was cut off from its network and may
   * have missed frames). Each comes back up at its next heartbeat.
   */
  markAllDown(): void {
    for (const [node, p] of this.peers) {
      if (p.up) {
        p.up = false;
        this.onEvent({ type: "down", node, incarnation: p.incarnation });
      }
    }
  }

  /** Is `node` currently up? */
  isUp(node: string): boolean {
    return this.peers.get(node)?.up === true;
  }

  /** The incarnation last seen for `node` (up or down), if any. */
  incarnationOf(node: string): string | undefined {
    return this.peers.get(node)?.incarnation;
  }

  /** Names of the peers currently up. */
  members(): string[] {
    const out: string[] = [];
    for (const [name, p] of this.peers) if (p.up) out.push(name);
    return out;
  }

  /** Reports down every up peer not heard from for `downAfterMs`. Called by the timer. */
  sweep(): void {
    const now = this.now();
    for (const [node, p] of this.peers) {
      if (p.up && now - p.lastSeen >= this.downAfterMs) {
        p.up = false;
        this.onEvent({ type: "down", node, incarnation: p.incarnation });
      }
    }
  }

  private observe(node: string, incarnation: string, isHeartbeat: boolean, epoch: number | undefined): boolean {
    const now = this.now();
    const p = this.peers.get(node);
    if (p === undefined) {
      this.peers.set(node, { incarnation, epoch, up: true, lastSeen: now, retired: [] });
      this.onEvent({ type: "up", node, incarnation });
      return true;
    }
    if (p.incarnation === incarnation) {
      if (p.up) {
        p.lastSeen = now;
        if (epoch !== undefined && p.epoch !== undefined && epoch !== p.epoch) {
          // Same process, new connection: it may have lost frames in between. Report the gap.
          p.epoch = epoch;
          this.onEvent({ type: "down", node, incarnation });
          this.onEvent({ type: "up", node, incarnation });
        } else if (epoch !== undefined) {
          p.epoch = epoch;
        }
        return true;
      }
      if (!isHeartbeat) return false;
      p.up = true;
      p.lastSeen = now;
      p.epoch = epoch;
      this.onEvent({ type: "up", node, incarnation });
      return true;
    }
    if (p.retired.includes(incarnation)) return false;
    // A new incarnation of a known name: the old one is gone for good.
    const old = p.incarnation;
    const wasUp = p.up;
    p.retired.push(old);
    if (p.retired.length > this.retiredPerNode) p.retired.shift();
    p.incarnation = incarnation;
    p.epoch = epoch;
    p.up = true;
    p.lastSeen = now;
    if (wasUp) this.onEvent({ type: "down", node, incarnation: old });
    this.onEvent({ type: "up", node, incarnation });
    return true;
  }
}
