/**
 * The data plane between the schedulers of one node: a `MessageChannel` between every pair of
 * scheduler threads, carrying batched envelopes.
 *
 * Protocol:
 * - A batch is a flat array of envelopes: `kind, to, payload` where kind 2 = message and
 *   3 = signal to a new destination pid, or `kind, payload` (0 = message, 1 = signal) to the
 *   same pid as the envelope before (a run to one pid writes the pid once). It is posted once
 *   per destination scheduler per turn (flushed in a microtask after the turn
 *   that produced it). Envelopes keep their send order within a batch and batches keep theirs
 *   on a port, so FIFO per sender–receiver pair holds across threads.
 * - Control objects (`{ c: … }`) share the port: name-table replication and scheduler down.
 * - A pid names its scheduler index and the scheduler's incarnation; an envelope for a pid of
 *   an old incarnation (a thread that died and was restarted) finds no process: it is a dead
 *   pid (message dropped, link → `noproc`, monitor → DOWN `noproc`).
 * - When a scheduler thread dies, every other scheduler scans its processes once: each link to
 *   a pid of the dead thread becomes an exit signal `noconnection`, each monitor a DOWN
 *   `noconnection` — exactly once, since a delivered DOWN/EXIT has already removed its entry.
 * - A message that cannot be structured-cloned is dropped and logged (the rest of its batch
 *   still goes).
 * - Registry replication has its own ports (internal/registry_replica.ts); the `registry` hooks
 *   keep it in order with this plane: its pending posts go before a data batch is posted, and
 *   what it received goes before a data batch is handled.
 */
import type { NodeCore, Router } from "./node_core.js";
import type { Pid, Signal } from "./types.js";
import type { MessagePort } from "node:worker_threads";

type Control =
  | { c: "name"; name: string; pid: Pid | undefined }
  | { c: "nodedown"; prefix: string }
  | { c: "down"; index: number; inc: string }
  | { c: "up"; index: number; inc: string };

/** The registry replication plane's hooks (internal/registry_replica.ts). */
export interface MeshRegistryHooks {
  /** Applies registry items posted to this thread before the data batch about to be handled. */
  sync(): void;
  /** Posts pending registry items (before a data batch goes out). */
  flush(): void;
  /** Scheduler `index` (incarnation `inc`) died: drop its registry entries and ports. */
  down(index: number, inc: string): void;
}

/** Parses `<tag.<index><inc>.serial>` → [tag, index, inc]; undefined if not a pid of this shape. */
export function parsePid(pid: string): [string, number, string] | undefined {
  const a = pid.indexOf(".");
  const b = pid.indexOf(".", a + 1);
  if (a < 0 || b < 0) return undefined;
  const part = pid.slice(a + 1, b);
  let i = 0;
  while (i < part.length && part.charCodeAt(i) >= 48 && part.charCodeAt(i) <= 57) i++;
  if (i === 0) return undefined;
  return [pid.slice(1, a), Number(part.slice(0, i)), part.slice(i)];
}

/**
 * Every local link and monitor pointing at a pid that starts with `prefix` (a dead scheduler
 * thread or a node that went down) fires once with `noconnection`.
 */
export function fireNoconnection(core: NodeCore, prefix: string): void {
  const sched = core.main;
  for (const p of [...sched.procs.values()]) {
    if (p.links !== null) {
      for (const l of p.links) if (l.startsWith(prefix)) sched.signal(p.pid, { k: "exit", from: l, reason: "noconnection", link: true });
    }
    if (p.watching !== null) {
      for (const [ref, t] of p.watching) if (t.startsWith(prefix)) sched.signal(p.pid, { k: "down", from: t, ref, reason: "noconnection" });
    }
    if (p.monitoredBy !== null) {
      for (const [ref, w] of p.monitoredBy) if (w.startsWith(prefix)) p.monitoredBy.delete(ref);
    }
  }
}

export class Mesh implements Router {
  readonly core: NodeCore;
  /** ports[i]: the port to scheduler i (null for self and for dead schedulers) */
  readonly ports: Array<MessagePort | null> = [];
  /** current incarnation of each scheduler index ('' when down) */
  readonly incs: string[] = [];
  private readonly outbox: Array<unknown[] | null> = [];
  private armed = false;
  /** envelopes posted, for stats */
  sent = 0;
  dropped = 0;
  /** hook for envelopes to other nodes */
  remote: Router | null = null;
  /** called when a scheduler is reported down (after links/monitors fired) */
  onDown: ((index: number) => void) | null = null;
  /** registry replication (null until installed) */
  registry: MeshRegistryHooks | null = null;

  constructor(core: NodeCore) {
    this.core = core;
  }

  /** Connects the port to scheduler `index` (incarnation `inc`). */
  connect(index: number, inc: string, port: MessagePort): void {
    // a restarted thread's port can arrive (comlink, parent port) before the main thread's
    // `down` for its old incarnation (mesh port): that incarnation is dead, handle it now (the
    // late `down` is then ignored, its incarnation no longer being current)
    const old = this.incs[index];
    if (old && old !== inc && this.ports[index] != null) this.schedulerDown(index, old);
    this.lastTo = undefined;
    this.ports[index] = port;
    this.incs[index] = inc;
    port.on("message", (data: unknown) => this.receive(data, index));
    port.unref?.();
  }

  private lastTo: string | undefined;
  private lastIdx = -1;

  private target(to: Pid): number {
    if (to === this.lastTo) return this.lastIdx;
    const p = parsePid(to);
    let idx: number;
    if (p === undefined || p[0] !== this.core.tag) idx = -2;
    else if (this.ports[p[1]] == null || this.incs[p[1]] !== p[2]) idx = -1;
    else idx = p[1];
    this.lastTo = to;
    this.lastIdx = idx;
    return idx;
  }

  message(to: Pid, msg: unknown): boolean {
    const t = this.target(to);
    if (t === -2) return this.remote?.message(to, msg) ?? false;
    if (t < 0) return false;
    this.push(t, 0, to, msg);
    return true;
  }

  signal(to: Pid, sig: Signal): boolean {
    const t = this.target(to);
    if (t === -2) return this.remote?.signal(to, sig) ?? false;
    if (t < 0) return false;
    this.push(t, 1, to, sig);
    return true;
  }

  /** the last destination pid written in each outbox (runs to one pid write it once) */
  private readonly outTo: Array<string | undefined> = [];

  private push(t: number, kind: number, to: Pid, payload: unknown): void {
    this.sent++;
    let box = this.outbox[t];
    if (box == null) {
      box = this.outbox[t] = [];
      this.outTo[t] = undefined;
    }
    if (this.outTo[t] === to) box.push(kind, payload);
    else {
      box.push(kind + 2, to, payload);
      this.outTo[t] = to;
    }
    if (!this.armed) {
      this.armed = true;
      queueMicrotask(this.flush);
    }
  }

  /** Posts every pending batch now. */
  readonly flush = (): void => {
    this.armed = false;
    if (this.registry !== null) this.registry.flush();
    for (let t = 0; t < this.outbox.length; t++) {
      const box = this.outbox[t];
      if (box == null || box.length === 0) continue;
      this.outbox[t] = null;
      const port = this.ports[t];
      if (port == null) continue;
      try {
        port.postMessage(box);
      } catch {
        // something in the batch is not cloneable: send one by one, drop the bad ones
        let to: unknown;
        for (let i = 0; i < box.length; ) {
          const k = box[i] as number;
          if (k === 6) {
            try {
              port.postMessage([6, box[i + 1], box[i + 2]]);
            } catch (e) {
              this.dropped++;
              this.core.logger.error(`service message ${String(box[i + 1])} dropped: not structured-cloneable (${(e as Error).message})`);
            }
            i += 3;
            continue;
          }
          if (k >= 2) to = box[i + 1];
          const payload = box[k >= 2 ? i + 2 : i + 1];
          i += k >= 2 ? 3 : 2;
          try {
            port.postMessage([k & 1 ? 3 : 2, to, payload]);
          } catch (e) {
            this.dropped++;
            this.sent--;
            this.core.logger.error(`message to ${String(to)} dropped: not structured-cloneable (${(e as Error).message})`);
          }
        }
      }
    }
  };

  /** A router that relays envelopes for other nodes to scheduler `index` (the main thread). */
  relayTo(index: number): Router {
    return {
      message: (to, msg) => {
        if (this.ports[index] == null) return false;
        this.push(index, 0, to, msg);
        return true;
      },
      signal: (to, sig) => {
        if (this.ports[index] == null) return false;
        this.push(index, 1, to, sig);
        return true;
      },
    };
  }

  /** Sends a control object to scheduler `index` (after the pending batch to it). */
  control(index: number, c: Control): void {
    const port = this.ports[index];
    if (port == null) return;
    this.flush();
    port.postMessage(c);
  }

  /** Sends a control object to every connected scheduler. */
  controlAll(c: Control): void {
    for (let i = 0; i < this.ports.length; i++) if (this.ports[i] != null) this.control(i, c);
  }

  /**
   * Sends a service message (see internal/threads.ts) to scheduler `index`, in order with the
   * messages this thread sent there before. Returns false if that scheduler is down.
   */
  service(index: number, name: string, data: unknown): boolean {
    if (this.ports[index] == null) return false;
    let box = this.outbox[index];
    if (box == null) box = this.outbox[index] = [];
    box.push(6, name, data);
    this.outTo[index] = undefined;
    if (!this.armed) {
      this.armed = true;
      queueMicrotask(this.flush);
    }
    return true;
  }

  private receive(data: unknown, fromIndex: number): void {
    if (Array.isArray(data)) {
      if (this.registry !== null) this.registry.sync();
      const sched = this.core.main;
      let to: Pid = "" as Pid;
      let local = false; // is `to` a pid of this thread? (checked once per run of one pid)
      let proc: ReturnType<typeof sched.procs.get>;
      for (let i = 0; i < data.length; ) {
        const k = data[i] as number;
        if (k === 6) {
          this.core.threads.dispatch(data[i + 1] as string, data[i + 2], fromIndex);
          i += 3;
          continue;
        }
        if (k >= 2) {
          to = data[i + 1] as Pid;
          local = to.lastIndexOf(sched.prefix, 0) === 0;
          proc = local ? sched.procs.get(to) : undefined;
          i += 2;
        } else i += 1;
        const payload = data[i++];
        if ((k & 1) === 1) this.core.routeSignal(to, payload as Signal);
        else if (local) {
          // a process that died during this batch has a null mailbox: enqueue drops the message
          if (proc !== undefined) {
            sched.messagesIn++;
            proc.enqueue(payload);
          }
        }
        else this.core.send(to, payload); // relayed (to another node, through the main thread)
      }
      return;
    }
    const c = data as Control;
    if (c.c === "name") this.core.replicateName(c.name, c.pid);
    else if (c.c === "down") this.schedulerDown(c.index, c.inc);
    else if (c.c === "nodedown") fireNoconnection(this.core, c.prefix);
    else if (c.c === "up") {
      this.incs[c.index] = c.inc;
      this.lastTo = undefined;
    }
  }

  /**
   * Scheduler `index` (incarnation `inc`) died: forget its port and fire every local link and
   * monitor that points at it with `noconnection`.
   */
  schedulerDown(index: number, inc: string): void {
    if (this.incs[index] !== inc) return;
    this.incs[index] = "";
    this.lastTo = undefined;
    const port = this.ports[index];
    this.ports[index] = null;
    this.outbox[index] = null;
    try {
      port?.close();
    } catch {
      /* already closed */
    }
    const prefix = `<${this.core.tag}.${index}${inc}.`;
    this.core.dropNamesWithPrefix(prefix);
    this.registry?.down(index, inc);
    fireNoconnection(this.core, prefix);
    this.onDown?.(index);
    this.core.threads.schedulerDown(index);
  }

  /** Indexes of the schedulers this thread is connected to, itself included. */
  live(): number[] {
    const out = [this.core.main.index];
    for (let i = 0; i < this.ports.length; i++) if (this.ports[i] != null) out.push(i);
    return out.sort((a, b) => a - b);
  }

  /** Closes every port. */
  close(): void {
    for (let i = 0; i < this.ports.length; i++) {
      try {
        this.ports[i]?.close();
      } catch {
        /* closed */
      }
      this.ports[i] = null;
    }
  }
}
