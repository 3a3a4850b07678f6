/**
 * Remote processes: send, link and monitor pids of other nodes over a `ClusterTransport`.
 *
 * Protocol (channel `"proc"`):
 * - A frame is a batch, encoded with the versioned codec: `[kind, to, payload, …]` with kind 0
 *   = message, 1 = signal; one frame per destination node per turn. FIFO per sender–receiver
 *   pair holds as long as the transport keeps FIFO per node pair (every Cinder transport does).
 * - A pid names its node by `name#incarnation`. The receiver checks the incarnation: an
 *   envelope for a pid of an older incarnation of this node finds no process (message dropped;
 *   link → exit `noproc`; monitor → DOWN `noproc`, sent back).
 * - A node reported `down` by the transport: every local link and monitor to its pids fires once
 *   with `noconnection` (on every scheduler thread of this node); sends to it are dropped, a new
 *   link or monitor answers `noconnection` at once. After a partition heals, pids of that node
 *   work again (Erlang's behaviour after a reconnect), but the links and monitors that fired are
 *   gone: the layers above resync on `up`.
 * - A frame that fails to decode is counted by the transport's decode errors (here: logged and
 *   counted in `decodeErrors`), never a crash.
 */
import { decodeFrame, encodeFrame } from "../cluster/codec.js";
import type { ClusterTransport } from "../cluster/transport.js";
import type { NodeCore, Router } from "./node_core.js";
import type { Pid, Signal } from "./types.js";
import { fireNoconnection } from "./mesh.js";

const CHANNEL = "proc";

/** The node name inside a pid `<name#inc.sched.serial>`. */
export function nodeNameOf(pid: string): string {
  const hash = pid.indexOf("#");
  return hash < 0 ? "" : pid.slice(1, hash);
}

/** The `name#inc` tag inside a pid. */
export function tagOf(pid: string): string {
  const dot = pid.indexOf(".");
  return dot < 0 ? "" : pid.slice(1, dot);
}

export class ClusterRouter implements Router {
  private readonly up = new Set<string>();
  private readonly outbox = new Map<string, unknown[]>();
  private armed = false;
  private readonly offs: Array<() => void> = [];
  decodeErrors = 0;
  sent = 0;
  dropped = 0;
  /** tell worker threads (set by the node when it has worker schedulers) */
  onNodeDown: ((prefix: string) => void) | null = null;

  constructor(
    private readonly core: NodeCore,
    readonly transport: ClusterTransport,
  ) {
    for (const n of transport.members()) this.up.add(n);
    this.offs.push(
      transport.onFrame((from, channel, payload) => {
        if (channel === CHANNEL) this.receive(from, payload);
      }),
      transport.onMembership((ev) => {
        if (ev.type === "up") this.up.add(ev.node);
        else {
          this.up.delete(ev.node);
          this.outbox.delete(ev.node);
          this.nodeDown(ev.node);
        }
      }),
    );
  }

  /** Is `node` currently up? */
  isUp(node: string): boolean {
    return this.up.has(node);
  }

  message(to: Pid, msg: unknown): boolean {
    const node = nodeNameOf(to);
    if (node === "" || node === this.core.name) return false;
    if (!this.up.has(node)) {
      this.dropped++;
      return true; // a message to an unreachable node is lost, as Erlang's send
    }
    this.push(node, 0, to, msg);
    return true;
  }

  signal(to: Pid, sig: Signal): boolean {
    const node = nodeNameOf(to);
    if (node === "" || node === this.core.name) return false;
    if (!this.up.has(node)) {
      if (sig.k === "link") this.core.routeSignal(sig.from, { k: "exit", from: to, reason: "noconnection", link: true });
      else if (sig.k === "monitor") this.core.routeSignal(sig.from, { k: "down", from: to, ref: sig.ref, reason: "noconnection" });
      return true;
    }
    this.push(node, 1, to, sig);
    return true;
  }

  private push(node: string, kind: number, to: Pid, payload: unknown): void {
    let box = this.outbox.get(node);
    if (box === undefined) this.outbox.set(node, (box = []));
    box.push(kind, to, payload);
    if (!this.armed) {
      this.armed = true;
      queueMicrotask(this.flush);
    }
  }

  /** Sends every pending batch now. */
  readonly flush = (): void => {
    this.armed = false;
    for (const [node, box] of this.outbox) {
      this.outbox.delete(node);
      let bytes: Uint8Array;
      try {
        bytes = encodeFrame(box);
      } catch {
        // something in the batch cannot cross nodes: send the rest, drop (and log) the bad ones
        for (let i = 0; i < box.length; i += 3) {
          try {
            this.transport.sendTo(node, CHANNEL, encodeFrame([box[i], box[i + 1], box[i + 2]]));
            this.sent++;
          } catch (e) {
            this.dropped++;
            this.core.logger.error(`message to ${String(box[i + 1])} dropped: cannot be encoded (${(e as Error).message})`);
          }
        }
        continue;
      }
      this.transport.sendTo(node, CHANNEL, bytes);
      this.sent += box.length / 3;
    }
  };

  private receive(from: string, payload: Uint8Array): void {
    let batch: unknown[];
    try {
      batch = decodeFrame(payload) as unknown[];
      if (!Array.isArray(batch) || batch.length % 3 !== 0) throw new Error("not a batch");
    } catch (e) {
      this.decodeErrors++;
      this.core.logger.warn(`proc frame from ${from} dropped: ${(e as Error).message}`);
      return;
    }
    const tag = this.core.tag;
    for (let i = 0; i < batch.length; i += 3) {
      const kind = batch[i];
      const to = batch[i + 1] as Pid;
      if (typeof to !== "string") continue;
      if (tagOf(to) !== tag) {
        // a pid of an older incarnation of this node: dead
        if (kind === 1) this.answerDead(to, batch[i + 2] as Signal);
        continue;
      }
      if (kind === 0) this.core.send(to, batch[i + 2]);
      else this.core.routeSignal(to, batch[i + 2] as Signal);
    }
  }

  private answerDead(to: Pid, sig: Signal): void {
    if (sig.k === "link") this.core.routeSignal(sig.from, { k: "exit", from: to, reason: "noproc", link: true });
    else if (sig.k === "monitor") this.core.routeSignal(sig.from, { k: "down", from: to, ref: sig.ref, reason: "noproc" });
  }

  private nodeDown(node: string): void {
    const prefix = `<${node}#`;
    fireNoconnection(this.core, prefix);
    this.onNodeDown?.(prefix);
  }

  /** Detaches from the transport (does not stop it). */
  close(): void {
    for (const off of this.offs) off();
    this.offs.length = 0;
  }
}
