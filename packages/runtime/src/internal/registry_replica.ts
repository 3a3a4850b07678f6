/**
 * Registry replication across the scheduler threads of one node: the machinery behind
 * `Registry` (../registry.ts) when its users are not all on the registry's thread.
 *
 * Model
 * - A registry's table lives on ONE thread, the *owner*: the thread its actor runs on. Every
 *   write is applied there, one at a time, so a unique key is claimed atomically. Another
 *   thread that uses the registry keeps a *replica*: a table of the same class, written only by
 *   the owner's delta stream, so `lookup`, `count`, `keys`, `values`, `meta` and `dispatch` are
 *   synchronous map reads on every thread.
 * - Replicas are lazy: a thread subscribes to a registry the first time one of its processes
 *   uses it (a named registry, `Registry.named`, resolved through the node-wide name table: the
 *   only handle that can reach another thread). A registry used on one thread only never posts
 *   anything: the owner's write path costs one `repl !== null` test (no subscriber).
 * - Each pair of schedulers has a dedicated *registry port* (a `MessageChannel`, wired next to
 *   the data-plane mesh by schedulers.ts), and the node shares one `Int32Array` over a
 *   `SharedArrayBuffer` (`ctl`): `ctl[i]` is scheduler i's *bell*, `ctl[S + i]` the *generation*
 *   of scheduler i's current thread (0 while it is down; only the main thread writes it).
 *
 * Wire (a post on a registry port is an array of items, batched per destination and flushed in
 * a microtask, before any data-plane batch of the same turn: see `flush`; every post rings the
 * receiver's bell):
 * - requests, replica → owner: `{ q: "sub" | "reg" | "unreg" | "set" | "unname" | "meta", id, reg, … }`
 *   (`reg` is the registry actor's pid), answered by `{ a: id, r }` with `r.k` = `ok`, `taken`
 *   (with the holder's pid), `none` (nothing to update), `dead` (no such registry: it exited,
 *   or the pid is not a registry) or `snap` (the subscription's snapshot).
 * - notices, replica → owner, never answered: `{ q: "exit", reg, pid }`: a process of the
 *   sending thread that held entries exited (sent from its exit hook, after the sending
 *   thread has already dropped the entries from its own replica).
 * - deltas, owner → every subscriber: `{ d: "add" | "rmkey" | "rmpid" | "set" | "meta" | "close", reg, … }`.
 *   The owner pushes the deltas of a write to every subscriber (the writer included) BEFORE it
 *   answers, and posts the other subscribers' batches before the writer's: so when the writer
 *   sees its answer, its replica already holds the write, and any thread that later receives
 *   a message the writer sent after the call also sees it (next point).
 *
 * Synchronous writes from a replica (the claim)
 * - `register`, `unregister`, `updateValue`, `putMeta`/`deleteMeta`, `unregisterName` on a
 *   replica post a request and block the calling thread (`Atomics.wait` on its own bell) until
 *   the answer arrives. While it waits, the thread keeps draining ALL its registry ports with
 *   `receiveMessageOnPort`: it applies deltas and serves requests for the registries it owns.
 *   So two threads that claim in each other's registries at once cannot deadlock, and a
 *   thread never blocks on the data plane (nothing but registry items is read while blocked).
 *   The main thread also serves worker name claims while it waits (`extraServe`; a worker's
 *   name claim rings the main bell), since a worker blocked on a name claim does not serve.
 * - Ordering with the data plane: a thread drains its registry ports (if its bell moved) before
 *   it handles each data-plane batch (`sync`, called by mesh.ts), and flushes its registry
 *   outboxes before posting data-plane batches. So registry traffic a thread posted before a
 *   message is applied at the receiver before that message. Consequences: a process that sees
 *   a DOWN/EXIT of an exited holder, on the owner's thread, sees its entries gone; a claim made
 *   after such a DOWN, from any thread, finds the key free (the owner drains the holder's
 *   thread's port before it refuses a claim: `syncWith`).
 * - Unique claims are decided by the owner alone: exactly one of several concurrent claimers
 *   wins; the others get `taken` with the winner's pid.
 *
 * Exits and dead threads
 * - A process's entries go when it exits: its own thread drops them from its replica at once
 *   (exit hook) and posts an exit notice to the owner, which removes them and sends `rmpid` to
 *   the other subscribers.
 * - When a scheduler thread dies (`noconnection`), every thread (mesh `down`) drops the
 *   entries of that incarnation's pids from the tables it owns (sending `rmpid`s) and from its
 *   replicas, forgets the dead thread as a subscriber, and closes the replicas of registries
 *   the dead thread owned (the registry died with its thread: operations on it throw
 *   `NoProcError`, as for a stopped registry). The main thread zeroes the dead thread's
 *   generation first, so a replica read anywhere sees the registry gone even before its
 *   thread has processed the `down`; an owner refusing a claim because of a holder on a thread
 *   whose generation moved drops that incarnation's entries first (`syncWith`); a restarted
 *   thread's port arriving before the old incarnation's `down` counts as that `down`.
 * - A thread dies mid-claim:
 *   - the OWNER dies while a claimer waits: the main thread zeroes its generation and rings
 *     every bell; the claimer wakes, sees the generation moved and throws `NoProcError`
 *     (`noconnection`) — the registry is gone, so whether the claim landed does not matter;
 *   - the CLAIMER dies: its request may still be applied by the owner (it is in the port's
 *     queue) or dropped (the owner closes the port on `down`); if applied, the entry belongs to
 *     a pid of the dead incarnation and is removed when the owner handles the `down` (an
 *     incarnation's port is never reused, so no request of a dead thread lands after it).
 * - A request unanswered for `REQUEST_TIMEOUT_MS` (an owner thread stuck in an endless loop)
 *   throws a `TimeoutError`.
 *
 * Not guaranteed (see docs/ARCHITECTURE-NOTES.md): a third thread (neither the writer's nor the
 * owner's) sees a write one hop later unless it heard of it through a message sent after the
 * write; keys must be primitives and values structured-clonable to cross threads.
 */
import { receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { CinderError, NoProcError, TimeoutError } from "./errors.js";
import type { NodeCore } from "./node_core.js";
import { parsePid, type Mesh } from "./mesh.js";
import type { Pid } from "./types.js";
import type { RegistryTable } from "../registry.js";

/** A request unanswered for this long throws (the owner thread is stuck). */
export const REQUEST_TIMEOUT_MS = 10_000;

/** What a subscriber receives to build its replica. */
export interface Snapshot {
  keys: "unique" | "duplicate";
  partitions: number;
  meta: Array<[unknown, unknown]>;
  /** `[pid, key, value]`, a pid's duplicate values in registration order */
  entries: Array<[Pid, unknown, unknown]>;
}

/** An owner's answer to a request. */
export type Answer = { k: "ok" } | { k: "taken"; pid: Pid } | { k: "none" } | { k: "dead" } | { k: "snap"; snap: Snapshot };

/** A request from a replica to the owner (`id` is set by `request`). */
export type Request =
  | { q: "sub"; reg: Pid }
  | { q: "reg"; reg: Pid; pid: Pid; key: unknown; value: unknown }
  | { q: "unreg"; reg: Pid; pid: Pid; key: unknown }
  | { q: "set"; reg: Pid; pid: Pid; key: unknown; value: unknown }
  | { q: "unname"; reg: Pid; key: unknown }
  | { q: "meta"; reg: Pid; key: unknown; value: unknown; del: boolean };

type Delta =
  | { d: "add"; reg: Pid; pid: Pid; key: unknown; value: unknown }
  | { d: "rmkey"; reg: Pid; pid: Pid; key: unknown }
  | { d: "rmpid"; reg: Pid; pid: Pid }
  | { d: "set"; reg: Pid; pid: Pid; key: unknown; value: unknown }
  | { d: "meta"; reg: Pid; key: unknown; value: unknown; del: boolean }
  | { d: "close"; reg: Pid };

type Item = (Request & { id: number }) | { q: "exit"; reg: Pid; pid: Pid } | { a: number; r: Answer } | Delta;

const OK: Answer = { k: "ok" };
const NONE: Answer = { k: "none" };
const DEAD: Answer = { k: "dead" };

type AnyTable = RegistryTable<unknown, unknown>;

/** Tables owned by each thread's kernel, by registry pid (kept by registry.ts; read to serve requests). */
const owned = new WeakMap<NodeCore, Map<Pid, AnyTable>>();
export function ownedTables(core: NodeCore): Map<Pid, AnyTable> {
  let m = owned.get(core);
  if (m === undefined) owned.set(core, (m = new Map()));
  return m;
}

const planes = new WeakMap<NodeCore, RegistryPlane>();
/** The replication plane of a kernel; undefined on a node with one scheduler. */
export function planeOf(core: NodeCore): RegistryPlane | undefined {
  return planes.get(core);
}

/**
 * The replica of the registry registered under `name` on another thread of this node, or
 * undefined (no such name, a name of this thread, not a registry, its thread is down).
 */
export function replicaByName(core: NodeCore, name: string, make: (reg: Pid, snap: Snapshot, link: RemoteLink) => AnyTable): AnyTable | undefined {
  const plane = planes.get(core);
  if (plane === undefined) return undefined;
  const pid = core.whereis(name);
  if (pid === undefined || pid.startsWith(core.main.prefix)) return undefined;
  return plane.replica(pid, make);
}

/** Owner side: the threads holding a replica of one table; writes become deltas to each. */
export class Subscribers {
  readonly subs = new Set<number>();
  constructor(
    readonly plane: RegistryPlane,
    readonly reg: Pid,
  ) {}
  add(pid: Pid, key: unknown, value: unknown): void {
    this.emit({ d: "add", reg: this.reg, pid, key, value });
  }
  removeKey(pid: Pid, key: unknown): void {
    this.emit({ d: "rmkey", reg: this.reg, pid, key });
  }
  removePid(pid: Pid): void {
    this.emit({ d: "rmpid", reg: this.reg, pid });
  }
  set(pid: Pid, key: unknown, value: unknown): void {
    this.emit({ d: "set", reg: this.reg, pid, key, value });
  }
  meta(key: unknown, value: unknown, del: boolean): void {
    this.emit({ d: "meta", reg: this.reg, key, value, del });
  }
  close(): void {
    this.emit({ d: "close", reg: this.reg });
  }
  /** @internal also called by the plane to recover items whose value would not clone */
  emit(item: Delta): void {
    for (const i of this.subs) this.plane.push(i, item);
    this.plane.arm();
  }
}

/** Replica side: how a replica reaches its owner. */
export class RemoteLink {
  constructor(
    readonly plane: RegistryPlane,
    /** the owner's scheduler index */
    readonly index: number,
    /** the owner thread's generation when the replica was made */
    readonly gen: number,
  ) {}
  /** False once the owner's thread has died (read from shared memory: no message needed). */
  live(): boolean {
    return Atomics.load(this.plane.ctl, this.plane.size + this.index) === this.gen;
  }
  /** Sends a request to the owner and blocks until it answers (see the module comment). */
  call(req: Request): Answer {
    return this.plane.request(this.index, this.gen, req);
  }
  /** An entry holder of this thread exited: drop it at the owner (asynchronous notice). */
  exited(reg: Pid, pid: Pid): void {
    this.plane.push(this.index, { q: "exit", reg, pid });
    this.plane.arm();
  }
}

interface Peer {
  port: MessagePort;
  inc: string;
  gen: number;
}

interface Pending {
  answer: Answer | undefined;
  on: ((a: Answer) => void) | undefined;
}

/** One thread's end of registry replication: its registry ports, outboxes, replicas. */
export class RegistryPlane {
  readonly core: NodeCore;
  readonly index: number;
  /** number of schedulers (the layout of `ctl`) */
  readonly size: number;
  readonly shared: SharedArrayBuffer;
  /** [0, size): bells; [size, 2·size): thread generations */
  readonly ctl: Int32Array;
  private readonly peers: Array<Peer | null> = [];
  private readonly out: Array<Item[] | null> = [];
  private readonly inBatch: boolean[] = [];
  private armed = false;
  private lastBell = 0;
  private serial = 0;
  private nextGen = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly replicas = new Map<Pid, AnyTable>();
  /** registry pids that answered `dead` (pids are never reused) */
  private readonly noRegistry = new Set<Pid>();
  /** main thread: serves worker name claims while this thread blocks */
  extraServe: (() => void) | null = null;
  /** batches posted on registry ports (stats, tests) */
  posted = 0;

  private constructor(core: NodeCore, index: number, shared: SharedArrayBuffer) {
    this.core = core;
    this.index = index;
    this.shared = shared;
    this.ctl = new Int32Array(shared);
    this.size = this.ctl.length / 2;
  }

  /**
   * Installs the plane of one thread and hooks it into its mesh. The main thread creates the
   * shared control words (`schedulers` of them); a worker passes the buffer it was given.
   */
  static install(core: NodeCore, mesh: Mesh, index: number, shared: SharedArrayBuffer | number): RegistryPlane {
    const buf = typeof shared === "number" ? new SharedArrayBuffer(8 * shared) : shared;
    const plane = new RegistryPlane(core, index, buf);
    if (index === 0) Atomics.store(plane.ctl, plane.size, plane.nextGen++);
    planes.set(core, plane);
    mesh.registry = plane;
    return plane;
  }

  private gen(index: number): number {
    return Atomics.load(this.ctl, this.size + index);
  }

  /**
   * Connects the registry port to scheduler `index` (incarnation `inc`). On the main thread
   * this also starts the thread's new generation, before the thread or any peer can read it.
   */
  connect(index: number, inc: string, port: MessagePort): void {
    const old = this.peers[index];
    if (old != null && old.inc !== inc) this.down(index, old.inc); // its `down` has not arrived yet
    if (this.index === 0) Atomics.store(this.ctl, this.size + index, this.nextGen++);
    this.peers[index] = { port, inc, gen: this.gen(index) };
    this.out[index] = null;
    port.on("message", (batch: Item[]) => {
      this.handleBatch(index, batch);
      this.flush(index);
    });
    port.unref?.();
  }

  /** Rings scheduler `index`'s bell (wakes it if it is blocked in a request). */
  ring(index: number): void {
    Atomics.add(this.ctl, index, 1);
    Atomics.notify(this.ctl, index, 1);
  }

  // ---- outboxes ----------------------------------------------------------------------------

  /** @internal queue an item for scheduler `index` (posted at the next flush) */
  push(index: number, item: Item): void {
    if (this.peers[index] == null) return;
    let box = this.out[index];
    if (box == null) box = this.out[index] = [];
    box.push(item);
  }

  /** @internal flush in a microtask (or earlier: before the mesh's next data-plane post) */
  arm(): void {
    if (this.armed) return;
    this.armed = true;
    queueMicrotask(this.flushArmed);
  }

  private readonly flushArmed = (): void => {
    if (this.armed) this.flush(-1);
  };

  /** Posts every outbox; `last`'s (a requester's, holding its answer) goes after the others. */
  flush(last = -1): void {
    this.armed = false;
    for (let i = 0; i < this.out.length; i++) if (i !== last) this.post(i);
    if (last >= 0) this.post(last);
  }

  private post(i: number): void {
    const box = this.out[i];
    if (box == null || box.length === 0) return;
    this.out[i] = null;
    const peer = this.peers[i];
    if (peer == null) return;
    try {
      peer.port.postMessage(box);
    } catch {
      // an item that does not clone (a value registered on the owner with subscribers): send
      // the others; the bad one goes without its value, and is logged
      for (const item of box) {
        try {
          peer.port.postMessage([item]);
        } catch (e) {
          this.core.logger.error(`Registry: an entry could not be replicated to scheduler ${i}, its value is not structured-cloneable (${(e as Error).message})`);
          const it = item as { value?: unknown; r?: Answer };
          try {
            if (it.r !== undefined && it.r.k === "snap") peer.port.postMessage([{ ...it, r: { k: "snap", snap: cloneableSnapshot(it.r.snap) } }]);
            else peer.port.postMessage([{ ...it, value: undefined }]);
          } catch {
            /* a key that does not clone either: dropped */
          }
        }
      }
    }
    this.posted++;
    this.ring(i);
  }

  // ---- receiving ---------------------------------------------------------------------------

  private handleBatch(from: number, batch: Item[]): void {
    this.inBatch[from] = true;
    try {
      for (const item of batch) {
        if ("d" in item) this.apply(item);
        else if ("a" in item) {
          const p = this.pending.get(item.a);
          if (p !== undefined) {
            p.answer = item.r;
            p.on?.(item.r);
          }
        } else this.serve(from, item);
      }
    } finally {
      this.inBatch[from] = false;
    }
  }

  /** Reads everything queued on the port from `from` (not while a batch of it is being handled). */
  private drainFrom(from: number): void {
    if (this.inBatch[from]) return;
    const peer = this.peers[from];
    if (peer == null) return;
    for (let m = receiveMessageOnPort(peer.port); m !== undefined; m = receiveMessageOnPort(peer.port)) {
      this.handleBatch(from, m.message as Item[]);
      if (this.peers[from] !== peer) return;
    }
  }

  private drainAll(): void {
    for (let i = 0; i < this.peers.length; i++) if (this.peers[i] != null) this.drainFrom(i);
  }

  /**
   * Called by the mesh before it handles a data-plane batch: if anything was posted to this
   * thread's registry ports since the last drain (its bell moved), apply it first.
   */
  sync(): void {
    const bell = Atomics.load(this.ctl, this.index);
    if (bell === this.lastBell) return;
    this.lastBell = bell;
    this.drainAll();
    this.flush(-1);
  }

  /**
   * Owner side: before refusing a unique key to a claimer because `holder` (a pid of another
   * thread) has it, read what `holder`'s thread has posted: its exit notice may be there.
   */
  syncWith(holder: Pid): void {
    const p = parsePid(holder);
    if (p === undefined || p[0] !== this.core.tag || p[1] === this.index) return;
    const peer = this.peers[p[1]];
    // its thread is dead (the main thread zeroed its generation) but the mesh has not told this
    // thread yet: drop that incarnation's entries now
    if (peer != null && peer.inc === p[2] && this.gen(p[1]) !== peer.gen) this.down(p[1], p[2]);
    else this.drainFrom(p[1]);
    this.flush(-1);
  }

  private apply(m: Delta): void {
    const t = this.replicas.get(m.reg);
    if (t === undefined) return;
    switch (m.d) {
      case "add":
        t.insert(m.pid, m.key, m.value);
        return;
      case "rmkey":
        t.removeKey(m.pid, m.key);
        return;
      case "rmpid":
        t.removePid(m.pid);
        return;
      case "set":
        t.setValue(m.pid, m.key, m.value);
        return;
      case "meta":
        t.applyMeta(m.key, m.value, m.del);
        return;
      case "close":
        this.replicas.delete(m.reg);
        t.close();
        return;
    }
  }

  private serve(from: number, m: (Request & { id: number }) | { q: "exit"; reg: Pid; pid: Pid }): void {
    const t = ownedTables(this.core).get(m.reg);
    if (m.q === "exit") {
      if (t !== undefined && t.alive) t.removePid(m.pid);
      return;
    }
    let r: Answer;
    if (t === undefined || !t.alive) r = DEAD;
    else {
      switch (m.q) {
        case "sub":
          (t.repl ??= new Subscribers(this, t.owner)).subs.add(from);
          r = { k: "snap", snap: t.snapshot() };
          break;
        case "reg": {
          const holder = t.tryRegister(m.pid, m.key, m.value);
          r = holder === undefined ? OK : { k: "taken", pid: holder };
          break;
        }
        case "unreg":
          t.removeKey(m.pid, m.key);
          r = OK;
          break;
        case "set":
          r = t.setValue(m.pid, m.key, m.value) ? OK : NONE;
          break;
        case "unname":
          t.unregisterName(m.key);
          r = OK;
          break;
        case "meta":
          t.applyMeta(m.key, m.value, m.del);
          r = OK;
          break;
      }
    }
    this.push(from, { a: m.id, r });
  }

  // ---- requests (the blocking side) --------------------------------------------------------

  /**
   * Sends `req` to the owner at scheduler `owner` (generation `gen`) and blocks until it answers,
   * serving this thread's registry ports meanwhile. `on` runs as soon as the answer is read,
   * before any later item of the owner's stream (a subscription installs its replica there).
   */
  request(owner: number, gen: number, req: Request, on?: (a: Answer) => void): Answer {
    const peer = this.peers[owner];
    if (peer == null || peer.gen !== gen || this.gen(owner) !== gen) throw lostOwner(owner);
    const id = ++this.serial;
    const p: Pending = { answer: undefined, on };
    this.pending.set(id, p);
    try {
      this.flush(-1); // notices queued earlier go first (FIFO on the port)
      try {
        peer.port.postMessage([{ ...req, id }]);
      } catch (e) {
        throw new CinderError("badarg", `Registry: a key or value that crosses threads must be structured-cloneable (${(e as Error).message})`);
      }
      this.posted++;
      this.ring(owner);
      const deadline = performance.now() + REQUEST_TIMEOUT_MS;
      for (;;) {
        const bell = Atomics.load(this.ctl, this.index);
        this.lastBell = bell;
        this.drainAll();
        this.flush(-1);
        if (p.answer !== undefined) return p.answer;
        if (this.peers[owner] !== peer || this.gen(owner) !== gen) throw lostOwner(owner);
        this.extraServe?.();
        const left = deadline - performance.now();
        if (left <= 0) throw new TimeoutError(`Registry request to scheduler ${owner}`, REQUEST_TIMEOUT_MS);
        Atomics.wait(this.ctl, this.index, bell, Math.min(left, 50));
      }
    } finally {
      this.pending.delete(id);
    }
  }

  /**
   * The replica of registry `reg` (a pid of another thread of this node), subscribing on first
   * use (a blocking request); undefined if `reg` is not a live registry.
   */
  replica(reg: Pid, make: (reg: Pid, snap: Snapshot, link: RemoteLink) => AnyTable): AnyTable | undefined {
    const have = this.replicas.get(reg);
    if (have !== undefined) return have;
    if (this.noRegistry.has(reg)) return undefined;
    const p = parsePid(reg);
    if (p === undefined || p[0] !== this.core.tag) return undefined;
    const peer = this.peers[p[1]];
    if (peer == null || peer.inc !== p[2]) return undefined; // its thread is down (or not yet known here)
    const link = new RemoteLink(this, p[1], peer.gen);
    let made: AnyTable | undefined;
    let a: Answer;
    try {
      a = this.request(p[1], peer.gen, { q: "sub", reg }, (ans) => {
        if (ans.k !== "snap") return;
        made = make(reg, ans.snap, link);
        this.replicas.set(reg, made);
      });
    } catch (e) {
      if (e instanceof NoProcError) return undefined;
      throw e;
    }
    if (a.k !== "snap") {
      if (this.noRegistry.size > 10_000) this.noRegistry.clear();
      this.noRegistry.add(reg);
    }
    return made;
  }

  // ---- thread death ------------------------------------------------------------------------

  /** Scheduler `index` (incarnation `inc`) died: called by the mesh before links and monitors fire. */
  down(index: number, inc: string): void {
    const peer = this.peers[index];
    if (this.index === 0) {
      Atomics.store(this.ctl, this.size + index, 0);
      for (let i = 0; i < this.size; i++) this.ring(i);
    }
    if (peer != null && peer.inc === inc) {
      this.peers[index] = null;
      this.out[index] = null;
      try {
        peer.port.close();
      } catch {
        /* closed */
      }
    }
    const prefix = `<${this.core.tag}.${index}${inc}.`;
    for (const t of ownedTables(this.core).values()) {
      t.repl?.subs.delete(index);
      t.removePrefix(prefix);
    }
    for (const [reg, t] of this.replicas) {
      if (reg.startsWith(prefix)) {
        this.replicas.delete(reg);
        t.close();
      } else t.removePrefix(prefix);
    }
    this.flush(-1);
  }

  /** Closes every registry port (thread shutdown). */
  close(): void {
    for (let i = 0; i < this.peers.length; i++) {
      try {
        this.peers[i]?.port.close();
      } catch {
        /* closed */
      }
      this.peers[i] = null;
    }
  }
}

function lostOwner(owner: number): NoProcError {
  return new NoProcError(`registry on scheduler ${owner}: its thread is down (noconnection)`);
}

function cloneableSnapshot(s: Snapshot): Snapshot {
  const ok = (v: unknown) => {
    try {
      structuredClone(v);
      return true;
    } catch {
      return false;
    }
  };
  return {
    keys: s.keys,
    partitions: s.partitions,
    meta: s.meta.filter(([k, v]) => ok(k) && ok(v)),
    entries: s.entries.filter(([, k]) => ok(k)).map(([pid, k, v]) => [pid, k, ok(v) ? v : undefined]),
  };
}
