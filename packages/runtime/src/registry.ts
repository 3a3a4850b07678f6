/**
 * Registry: a local, process-keyed key/value store with unique or duplicate keys, partitions,
 * metadata, dispatch and `via` names (Elixir's `Registry`, in Cinder's terms).
 *
 * Design:
 * - A registry is an actor (a GenServer, so it can be supervised and named). It *owns* the
 *   table: the table is created by its `init` and discarded when it exits (as an ETS table dies
 *   with its owner). A supervised, named registry that restarts starts with an empty table.
 * - Reads (`lookup`, `keys`, `values`, `count`, `dispatch`, `meta`) are synchronous reads of the
 *   table: they never queue behind a mailbox.
 * - Writes (`register`, `unregister`, `updateValue`, `putMeta`) are applied synchronously on the
 *   owner's scheduler, one at a time (the thread is single-threaded), so `register` of a
 *   unique key is atomic.
 * - An entry belongs to the process that registered it (the *calling* process). When that
 *   process exits, all its entries go, through one exit hook per (process, registry) and a
 *   pid → keys index: the cost is O(keys of that pid), independent of how many other entries
 *   share its keys (each key holds a `Map` keyed by pid).
 * - Duplicate registries are partitioned by pid: `dispatch` calls back once per non-empty
 *   partition, like Elixir's. Unique registries keep one key space (partitions are accepted).
 * - Keys compare as `Map` keys (SameValueZero): use strings, numbers or other primitives (an
 *   object key matches only itself).
 * - Across scheduler threads (internal/registry_replica.ts): the table above is the *owner's*;
 *   a thread whose processes use a named registry of another thread keeps a replica (a
 *   `RegistryTable` written only by the owner's delta stream), so reads stay synchronous
 *   there; its writes are requests the owner applies, the calling thread blocking until the
 *   answer (a unique key is still claimed atomically, by the owner). A registry used on one
 *   thread only never replicates (`repl === null`, `remote === null`: the fast path).
 */
import { BadArgError, CinderError, NoProcError } from "./internal/errors.js";
import { GenServer, type GenServerBehaviour, type StartOptions } from "./gen_server.js";
import type { ChildSpec } from "./internal/child.js";
import type { NodeCore } from "./internal/node_core.js";
import type { Process } from "./internal/process.js";
import { coreOf, type Context } from "./internal/request.js";
import type { Pid, Via, ViaResolver } from "./internal/types.js";
import { ownedTables, replicaByName, type RemoteLink, type Snapshot, type Subscribers } from "./internal/registry_replica.js";

/** Whether a key has at most one entry (`unique`) or any number (`duplicate`). */
export type RegistryKeys = "unique" | "duplicate";

/** Options for `Registry.start`. */
export interface RegistryOptions {
  /** `unique`: one entry per key; `duplicate`: any number of entries per key. */
  keys: RegistryKeys;
  /** Number of partitions (default 1). A duplicate registry's `dispatch` calls back once per non-empty partition. */
  partitions?: number;
  /** Registers the registry actor under this node-wide name; `Registry.named(ctx, name)` then reaches it across restarts. */
  name?: string;
  /** Initial registry metadata (read with `Registry.meta`). */
  meta?: Record<string, unknown> | ReadonlyArray<readonly [unknown, unknown]>;
}

/** One registry entry: the owning pid and its value. */
export type RegistryEntry<V> = [pid: Pid, value: V];

/**
 * Raised by `Registry.register` when a unique key is taken; `pid` is its live owner. The key
 * frees when its owner exits.
 *
 * @example
 * ```ts
 * import { startNode, Registry, AlreadyRegisteredError } from "@cinder/runtime";
 * const node = await startNode();
 * const sessions = await Registry.start<string, string>(node, { keys: "unique" });
 * const first = node.process(), second = node.process();
 * Registry.register(first, sessions, "user:7", "tab 1");
 * try { Registry.register(second, sessions, "user:7", "tab 2"); }
 * catch (e) { console.log(e instanceof AlreadyRegisteredError && e.pid === first.pid); } // true
 * first.exit("normal");
 * Registry.register(second, sessions, "user:7", "tab 2");
 * console.log(Registry.lookup(sessions, "user:7")[0]![1]); // "tab 2"
 * await node.stop();
 * ```
 */
export class AlreadyRegisteredError extends CinderError {
  /** The live process that holds the key. */
  readonly pid: Pid;
  constructor(key: unknown, pid: Pid) {
    super("already_registered", `key ${describeKey(key)} is already registered by ${pid}`, { already_registered: pid });
    this.name = "AlreadyRegisteredError";
    this.pid = pid;
  }
}

interface UniqueEntry<V> {
  pid: Pid;
  value: V;
}

/** The keys one pid holds in one registry (and, for duplicate keys, its partition). */
interface PidKeys<K> {
  part: number;
  keys: Set<K>;
}

/** @internal The table a registry actor owns (not exported from the package). */
export class RegistryTable<K, V> {
  alive = true;
  readonly unique: boolean;
  readonly partitions: number;
  /** unique keys: key → its one entry */
  uniq = new Map<K, UniqueEntry<V>>();
  /** duplicate keys, per partition: key → pid → values (a pid may register one key twice) */
  parts: Array<Map<K, Map<Pid, V[]>>>;
  /** pid → the keys it holds here */
  byPid = new Map<Pid, PidKeys<K>>();
  /** pids that carry this table's exit hook (kept until they exit, so re-registering adds no hook) */
  hooked = new Set<Pid>();
  size = 0;
  meta = new Map<unknown, unknown>();
  /** Owner side: the threads holding a replica (null while there is none: the fast path). */
  repl: Subscribers | null = null;
  /** Replica side: the link to the owner's thread (null on the owner's own table). */
  remote: RemoteLink | null = null;

  constructor(
    readonly core: NodeCore,
    readonly owner: Pid,
    opts: RegistryOptions,
  ) {
    this.unique = opts.keys === "unique";
    this.partitions = opts.partitions ?? 1;
    this.parts = this.unique ? [] : Array.from({ length: this.partitions }, () => new Map());
    const m = opts.meta;
    if (m !== undefined) {
      const pairs: Iterable<readonly [unknown, unknown]> = Array.isArray(m) ? (m as ReadonlyArray<readonly [unknown, unknown]>) : Object.entries(m);
      for (const [k, v] of pairs) this.meta.set(k, v);
    }
  }

  /** Discards everything: the owner exited. */
  close(): void {
    if (!this.alive) return;
    if (this.repl !== null) this.repl.close();
    this.alive = false;
    this.uniq = new Map();
    this.parts = [];
    this.byPid = new Map();
    this.hooked = new Set();
    this.meta = new Map();
    this.size = 0;
  }

  private hook(p: Process<any>): void {
    if (this.hooked.has(p.pid)) return;
    this.hooked.add(p.pid);
    p.onExit((pid) => {
      if (!this.alive) return;
      this.removePid(pid);
      // a replica: the owner drops the entries too (and tells the other replicas)
      if (this.remote !== null) this.remote.exited(this.owner, pid);
    });
  }

  private isLocal(pid: Pid): boolean {
    return pid.startsWith(this.core.main.prefix);
  }

  /** A replica's answer that is not `ok` (the caller handles `taken` and `none` first). */
  private expectOk(a: { k: string }): void {
    if (a.k === "dead") {
      this.close();
      throw new NoProcError(`registry ${this.owner}`);
    }
  }

  private pidKeys(pid: Pid): PidKeys<K> {
    let rec = this.byPid.get(pid);
    if (rec === undefined) {
      rec = { part: this.unique ? 0 : partitionOf(pid, this.partitions), keys: new Set() };
      this.byPid.set(pid, rec);
    }
    return rec;
  }

  /** Registers live local process `p` (the API's register): on a replica, asks the owner. */
  register(p: Process<any>, key: K, value: V): void {
    if (this.remote !== null) {
      const a = this.remote.call({ q: "reg", reg: this.owner, pid: p.pid, key, value });
      if (a.k === "taken") throw new AlreadyRegisteredError(key, a.pid);
      this.expectOk(a);
    } else {
      const holder = this.tryRegister(p.pid, key, value);
      if (holder !== undefined) throw new AlreadyRegisteredError(key, holder);
    }
    this.hook(p);
  }

  /** Owner side: registers `pid` unless the unique key is held; returns the holder if it is. */
  tryRegister(pid: Pid, key: K, value: V): Pid | undefined {
    if (this.unique) {
      let cur = this.uniq.get(key);
      if (cur !== undefined && cur.pid !== pid && this.repl !== null && !this.isLocal(cur.pid)) {
        // held by another thread's process: its exit notice may be waiting on its port
        this.repl.plane.syncWith(cur.pid);
        cur = this.uniq.get(key);
      }
      if (cur !== undefined) {
        if (cur.pid === pid || !this.isLocal(cur.pid) || this.core.isAlive(cur.pid)) return cur.pid;
        this.removeKey(cur.pid, key); // defensive: an owner that died without its hook running
      }
    }
    this.add(pid, key, value);
    return undefined;
  }

  /** A replica applying the owner's `add` (its view of a unique key may lag: the owner decided). */
  insert(pid: Pid, key: K, value: V): void {
    if (this.unique) {
      const cur = this.uniq.get(key);
      if (cur !== undefined) {
        if (cur.pid === pid) {
          cur.value = value;
          return;
        }
        this.removeKey(cur.pid, key);
      }
    }
    this.add(pid, key, value);
  }

  /** Adds an entry (a unique key is known to be free). */
  private add(pid: Pid, key: K, value: V): void {
    if (this.unique) {
      this.uniq.set(key, { pid, value });
      this.pidKeys(pid).keys.add(key);
    } else {
      const rec = this.pidKeys(pid);
      const part = this.parts[rec.part]!;
      let bucket = part.get(key);
      if (bucket === undefined) part.set(key, (bucket = new Map()));
      const vals = bucket.get(pid);
      if (vals === undefined) bucket.set(pid, [value]);
      else vals.push(value);
      rec.keys.add(key);
    }
    this.size++;
    if (this.repl !== null) this.repl.add(pid, key, value);
  }

  /** Removes the caller's entries under `key` (the API's unregister): on a replica, asks the owner. */
  unregister(pid: Pid, key: K): void {
    if (this.remote === null) {
      this.removeKey(pid, key);
      return;
    }
    if (!(this.byPid.get(pid)?.keys.has(key) ?? false)) return; // only this thread adds this pid's entries
    this.expectOk(this.remote.call({ q: "unreg", reg: this.owner, pid, key }));
  }

  /** Removes whatever process holds unique `key` (`ViaResolver.unregisterName`). */
  unregisterName(key: K): void {
    if (!this.unique) return;
    if (this.remote !== null) {
      this.expectOk(this.remote.call({ q: "unname", reg: this.owner, key }));
      return;
    }
    const e = this.uniq.get(key);
    if (e !== undefined) this.removeKey(e.pid, key);
  }

  /** `Registry.updateValue` on a unique table. */
  update(pid: Pid, key: K, fn: (old: V) => V): [newValue: V, oldValue: V] | undefined {
    const e = this.uniq.get(key);
    if (e === undefined || e.pid !== pid) return undefined;
    const old = e.value;
    const value = fn(old);
    if (this.remote !== null) {
      const a = this.remote.call({ q: "set", reg: this.owner, pid, key, value });
      if (a.k === "none") return undefined;
      this.expectOk(a);
      return [value, old];
    }
    e.value = value;
    if (this.repl !== null) this.repl.set(pid, key, value);
    return [value, old];
  }

  /** Sets a unique entry's value if `pid` holds `key` (owner serving a request; replica delta). */
  setValue(pid: Pid, key: K, value: V): boolean {
    const e = this.uniq.get(key);
    if (e === undefined || e.pid !== pid) return false;
    e.value = value;
    if (this.repl !== null) this.repl.set(pid, key, value);
    return true;
  }

  /** Sets or deletes registry metadata (the API's putMeta/deleteMeta): on a replica, asks the owner. */
  writeMeta(key: unknown, value: unknown, del: boolean): void {
    if (this.remote !== null) this.expectOk(this.remote.call({ q: "meta", reg: this.owner, key, value, del }));
    else this.applyMeta(key, value, del);
  }

  /** Applies a metadata change here (owner; replica delta). */
  applyMeta(key: unknown, value: unknown, del: boolean): void {
    if (del) this.meta.delete(key);
    else this.meta.set(key, value);
    if (this.repl !== null) this.repl.meta(key, value, del);
  }

  /** Drops the entries of every pid starting with `prefix` (a dead scheduler thread). */
  removePrefix(prefix: string): void {
    for (const pid of [...this.byPid.keys()]) if (pid.startsWith(prefix)) this.removePid(pid);
    for (const pid of this.hooked) if (pid.startsWith(prefix)) this.hooked.delete(pid);
  }

  /** Everything a new replica needs. */
  snapshot(): Snapshot {
    const entries: Array<[Pid, unknown, unknown]> = [];
    for (const [pid, rec] of this.byPid) {
      for (const key of rec.keys) {
        if (this.unique) entries.push([pid, key, this.uniq.get(key)!.value]);
        else for (const v of this.parts[rec.part]!.get(key)?.get(pid) ?? []) entries.push([pid, key, v]);
      }
    }
    return { keys: this.unique ? "unique" : "duplicate", partitions: this.partitions, meta: [...this.meta], entries };
  }

  /** Removes `pid`'s entries under `key` (all of them, for duplicate keys). */
  removeKey(pid: Pid, key: K): void {
    const rec = this.byPid.get(pid);
    if (rec === undefined || !rec.keys.delete(key)) return;
    if (rec.keys.size === 0) this.byPid.delete(pid);
    this.dropEntries(pid, rec.part, key);
    if (this.repl !== null) this.repl.removeKey(pid, key);
  }

  /** Removes every entry of `pid`: O(keys of pid). */
  removePid(pid: Pid): void {
    this.hooked.delete(pid);
    const rec = this.byPid.get(pid);
    if (rec === undefined) return;
    this.byPid.delete(pid);
    for (const key of rec.keys) this.dropEntries(pid, rec.part, key);
    if (this.repl !== null) this.repl.removePid(pid);
  }

  private dropEntries(pid: Pid, partIndex: number, key: K): void {
    if (this.unique) {
      const cur = this.uniq.get(key);
      if (cur !== undefined && cur.pid === pid) {
        this.uniq.delete(key);
        this.size--;
      }
      return;
    }
    const part = this.parts[partIndex]!;
    const bucket = part.get(key);
    if (bucket === undefined) return;
    const vals = bucket.get(pid);
    if (vals === undefined) return;
    bucket.delete(pid);
    this.size -= vals.length;
    if (bucket.size === 0) part.delete(key);
  }

  lookup(key: K): RegistryEntry<V>[] {
    if (this.unique) {
      const e = this.uniq.get(key);
      return e === undefined ? [] : [[e.pid, e.value]];
    }
    const out: RegistryEntry<V>[] = [];
    for (const part of this.parts) {
      const bucket = part.get(key);
      if (bucket !== undefined) for (const [pid, vals] of bucket) for (const v of vals) out.push([pid, v]);
    }
    return out;
  }

  keysOf(pid: Pid): K[] {
    const rec = this.byPid.get(pid);
    if (rec === undefined) return [];
    if (this.unique) return [...rec.keys];
    const part = this.parts[rec.part]!;
    const out: K[] = [];
    for (const key of rec.keys) {
      const n = part.get(key)?.get(pid)?.length ?? 0;
      for (let i = 0; i < n; i++) out.push(key);
    }
    return out;
  }

  values(key: K, pid: Pid): V[] {
    if (this.unique) {
      const e = this.uniq.get(key);
      return e !== undefined && e.pid === pid ? [e.value] : [];
    }
    const rec = this.byPid.get(pid);
    if (rec === undefined) return [];
    return [...(this.parts[rec.part]!.get(key)?.get(pid) ?? [])];
  }

  dispatch(key: K, fn: (entries: RegistryEntry<V>[]) => void): void {
    if (this.unique) {
      const e = this.uniq.get(key);
      if (e !== undefined) fn([[e.pid, e.value]]);
      return;
    }
    for (const part of this.parts) {
      const bucket = part.get(key);
      if (bucket === undefined) continue;
      const entries: RegistryEntry<V>[] = [];
      for (const [pid, vals] of bucket) for (const v of vals) entries.push([pid, v]);
      if (entries.length > 0) fn(entries);
    }
  }
}

/** FNV-1a over the pid string: a pid's duplicate entries all live in one partition. */
function partitionOf(pid: Pid, n: number): number {
  if (n === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < pid.length; i++) h = Math.imul(h ^ pid.charCodeAt(i), 0x01000193);
  return (h >>> 0) % n;
}

function describeKey(key: unknown): string {
  if (typeof key === "string") return JSON.stringify(key);
  try {
    return JSON.stringify(key) ?? String(key);
  } catch {
    return String(key);
  }
}

/** Named registries' current tables, per node (a restarted registry replaces its entry). */
const namedTables = new WeakMap<NodeCore, Map<string, RegistryTable<any, any>>>();
function tablesOf(core: NodeCore): Map<string, RegistryTable<any, any>> {
  let m = namedTables.get(core);
  if (m === undefined) namedTables.set(core, (m = new Map()));
  return m;
}

/**
 * A handle on a registry, typed with its keys `K` and values `V`. A handle from a named
 * registry follows the name across restarts; an unnamed one is bound to one registry's life.
 * It is also a `ViaResolver` (its unique keys name processes: see `Registry.via`).
 *
 * @example
 * ```ts
 * import { startNode, silentLogger, Registry, Supervisor, type Pid } from "@cinder/runtime";
 * const node = await startNode({ logger: silentLogger });
 * await node.startChild(Registry.childSpec({ keys: "unique", name: "workers" }));
 * const workers = Registry.named<string, number>(node, "workers"); // follows restarts
 * const w = node.process();
 * Registry.register(w, workers, "w1", 1);
 * console.log(workers.whereisName("w1") === w.pid); // true
 * const me = node.process();
 * const before = workers.pid as Pid;
 * me.monitor(before);
 * me.exit(before, "kill"); // the registry crashes; its supervisor restarts it, empty
 * await me.receive();
 * await Supervisor.whichChildren(node, node.root); // answered after the restart
 * console.log(workers.pid !== undefined && workers.pid !== before, Registry.count(workers)); // [true, 0]
 * await node.stop();
 * ```
 */
export class RegistryRef<K = unknown, V = unknown> implements ViaResolver {
  /** @internal */ readonly core: NodeCore;
  /** The registry's node-wide name, if it has one. */
  readonly name: string | undefined;
  /** @internal */ private readonly fixed: RegistryTable<K, V> | undefined;

  /** @internal use `Registry.start` / `Registry.named` */
  constructor(core: NodeCore, name: string | undefined, fixed: RegistryTable<K, V> | undefined) {
    this.core = core;
    this.name = name;
    this.fixed = fixed;
  }

  /** @internal the live table, or undefined when the registry is not running */
  current(): RegistryTable<K, V> | undefined {
    let t = this.fixed ?? (this.name !== undefined ? (tablesOf(this.core).get(this.name) as RegistryTable<K, V> | undefined) : undefined);
    // a named registry of another scheduler thread: this thread's replica (made on first use)
    if (t === undefined && this.name !== undefined) t = replicaByName(this.core, this.name, makeReplica) as RegistryTable<K, V> | undefined;
    if (t === undefined || !t.alive) return undefined;
    return t.remote === null || t.remote.live() ? t : undefined;
  }

  /** @internal the live table; `NoProcError` when the registry is not running */
  table(): RegistryTable<K, V> {
    const t = this.current();
    if (t === undefined) throw new NoProcError(`registry ${this.name ?? "(unnamed)"}`);
    return t;
  }

  /** The pid of the registry actor, or `undefined` when it is not running. */
  get pid(): Pid | undefined {
    return this.current()?.owner;
  }

  /** `ViaResolver`: the pid under a unique key, or `undefined`. */
  whereisName(key: unknown): Pid | undefined {
    const t = this.current();
    if (t === undefined || !t.unique) return undefined;
    return t.uniq.get(key as K)?.pid;
  }

  /** `ViaResolver`: registers a live local `pid` under a unique key (value `undefined`); false if taken. */
  registerName(key: unknown, pid: Pid): boolean {
    return viaRegister(this, key as K, pid, undefined as V);
  }

  /** `ViaResolver`: removes a unique key. */
  unregisterName(key: unknown): void {
    this.current()?.unregisterName(key as K);
  }
}

/** A replica of a registry owned by another thread, from the owner's snapshot. */
function makeReplica(reg: Pid, snap: Snapshot, link: RemoteLink): RegistryTable<unknown, unknown> {
  const t = new RegistryTable<unknown, unknown>(link.plane.core, reg, { keys: snap.keys, partitions: snap.partitions, meta: snap.meta });
  t.remote = link;
  for (const [pid, key, value] of snap.entries) t.insert(pid, key, value);
  return t;
}

function viaRegister<K, V>(reg: RegistryRef<K, V>, key: K, pid: Pid, value: V): boolean {
  const t = reg.current();
  if (t === undefined || !t.unique) return false;
  const p = reg.core.lookup(pid);
  if (p === undefined || !p.alive) return false;
  try {
    t.register(p, key, value);
    return true;
  } catch (e) {
    if (e instanceof AlreadyRegisteredError) return false;
    throw e;
  }
}

/** @internal registers the table of a starting registry actor; drops it when the actor exits */
function registryBehaviour<K, V>(core: NodeCore, opts: RegistryOptions, out: { table?: RegistryTable<K, V> }): GenServerBehaviour<RegistryTable<K, V>, never, never, never, unknown, void> {
  return {
    name: "Registry",
    init(_args, self) {
      const t = new RegistryTable<K, V>(core, self.pid, opts);
      const name = opts.name;
      if (name !== undefined) tablesOf(core).set(name, t);
      ownedTables(core).set(self.pid, t as RegistryTable<unknown, unknown>); // other threads' requests find it here
      self.onExit(() => {
        if (name !== undefined && tablesOf(core).get(name) === t) tablesOf(core).delete(name);
        ownedTables(core).delete(self.pid);
        t.close();
      });
      out.table = t;
      return t;
    },
    handleInfo: (_msg, t) => ({ state: t }),
  };
}

function checkOptions(opts: RegistryOptions): void {
  if (opts === null || typeof opts !== "object" || (opts.keys !== "unique" && opts.keys !== "duplicate")) {
    throw new BadArgError(`Registry: option keys must be "unique" or "duplicate", got ${describeKey((opts as Partial<RegistryOptions> | null)?.keys)}`);
  }
  const p = opts.partitions;
  if (p !== undefined && (!Number.isInteger(p) || p < 1)) throw new BadArgError(`Registry: option partitions must be a positive integer, got ${String(p)}`);
  if (opts.name !== undefined && (typeof opts.name !== "string" || opts.name.length === 0)) throw new BadArgError(`Registry: option name must be a non-empty string`);
}

async function startRegistry<K, V>(ctx: Context, parent: Process<any> | null, opts: RegistryOptions): Promise<RegistryRef<K, V>> {
  checkOptions(opts);
  const core = coreOf(ctx);
  const out: { table?: RegistryTable<K, V> } = {};
  const spec = registryBehaviour<K, V>(core, opts, out);
  const startOpts: StartOptions | undefined = opts.name !== undefined ? { name: opts.name } : undefined;
  if (parent !== null) await GenServer.startLink(parent, spec, undefined, startOpts);
  else await GenServer.start(ctx, spec, undefined, startOpts);
  return new RegistryRef<K, V>(core, opts.name, opts.name === undefined ? out.table : undefined);
}

/**
 * Registry functions. `register` and `unregister` act for the *calling* process (`self`);
 * reads are synchronous table reads, on every scheduler thread. From a thread other than the
 * registry's (reach it there with `Registry.named`), a write blocks that thread for one round
 * trip to the registry's thread, which decides it (docs/ARCHITECTURE-NOTES.md).
 *
 * @example
 * ```ts
 * import { startNode, Registry, GenServer } from "@cinder/runtime";
 * const node = await startNode();
 * const rooms = await Registry.start<string, { joined: number }>(node, { keys: "duplicate", partitions: 2 });
 * const alice = node.process();
 * const bob = node.process();
 * Registry.register(alice, rooms, "lobby", { joined: 1 });
 * Registry.register(bob, rooms, "lobby", { joined: 2 });
 * console.log(Registry.lookup(rooms, "lobby").length); // 2
 * Registry.dispatch(rooms, "lobby", (entries) => { for (const [pid] of entries) node.send(pid, "hello"); });
 * console.log(await alice.receive()); // "hello"
 *
 * // unique keys name processes: `via`
 * const names = await Registry.start<string>(node, { keys: "unique", name: "names" });
 * const echo = await GenServer.start(node, { init: () => null, handleCall: (r: string, _f, s) => ({ reply: r, state: s }) }, undefined, { name: Registry.via(names, "echo") });
 * console.log(Registry.lookup(names, "echo")[0]![0] === echo); // true
 * console.log(await GenServer.call(node, Registry.via(names, "echo"), "hi")); // "hi"
 * await node.stop();
 * ```
 */
export const Registry = {
  /** Starts a registry actor (not linked); resolves with its handle once its table exists. */
  start<K = unknown, V = unknown>(ctx: Context, opts: RegistryOptions): Promise<RegistryRef<K, V>> {
    return startRegistry<K, V>(ctx, null, opts);
  },

  /** Starts a registry linked to `parent` (a supervisor's child spec `start`). */
  startLink<K = unknown, V = unknown>(parent: Process<any>, opts: RegistryOptions): Promise<RegistryRef<K, V>> {
    return startRegistry<K, V>(parent, parent, opts);
  },

  /**
   * A child spec for a named registry (the name is how its users reach it, also after a
   * restart: `Registry.named(ctx, name)`). The id defaults to the name.
   */
  childSpec(opts: RegistryOptions & { name: string }, extra?: Partial<ChildSpec>): ChildSpec {
    checkOptions(opts);
    return {
      id: opts.name,
      type: "worker",
      start: async (sup) => (await Registry.startLink(sup, opts)).pid,
      ...extra,
    };
  },

  /**
   * A handle on the registry registered as `name`, following it across restarts. Operations
   * throw `NoProcError` while no registry of that name is running. This is how processes on
   * other scheduler threads reach a registry (a handle is an object of one thread).
   */
  named<K = unknown, V = unknown>(ctx: Context, name: string): RegistryRef<K, V> {
    return new RegistryRef<K, V>(coreOf(ctx), name, undefined);
  },

  /**
   * Registers the calling process `self` under `key` with `value`. A unique key that is taken
   * (by a live process, `self` included) throws `AlreadyRegisteredError` naming the owner;
   * duplicate keys accept any number of entries, including several from one process. The
   * entry goes when `self` exits. A process that is no longer alive registers nothing.
   */
  register<K, V>(self: Process<any>, registry: RegistryRef<K, V>, key: K, value: V): void {
    const t = registry.table();
    if (self.node !== t.core) throw new BadArgError(`Registry.register: ${self.pid} is not a process of the registry handle's scheduler (get a handle on its own thread: Registry.named)`);
    if (!self.alive) return;
    t.register(self, key, value);
  },

  /** Removes the calling process's entries under `key` (all of them for duplicate keys); a no-op if none. */
  unregister<K>(self: Process<any>, registry: RegistryRef<K, any>, key: K): void {
    registry.table().unregister(self.pid, key);
  },

  /** The entries under `key`: `[pid, value]` pairs. Synchronous. */
  lookup<K, V>(registry: RegistryRef<K, V>, key: K): RegistryEntry<V>[] {
    return registry.table().lookup(key);
  },

  /** The keys `pid` holds (a duplicate key appears once per entry). */
  keys<K>(registry: RegistryRef<K, any>, pid: Pid): K[] {
    return registry.table().keysOf(pid);
  },

  /** The values `pid` registered under `key`. */
  values<K, V>(registry: RegistryRef<K, V>, key: K, pid: Pid): V[] {
    return registry.table().values(key, pid);
  },

  /** The number of entries in the registry. */
  count(registry: RegistryRef<any, any>): number {
    return registry.table().size;
  },

  /**
   * Calls `fn` with the entries under `key`: once per non-empty partition of a duplicate
   * registry, once for a unique key that is registered, never when there is none. Entries are
   * a snapshot, so `fn` may register or unregister.
   */
  dispatch<K, V>(registry: RegistryRef<K, V>, key: K, fn: (entries: RegistryEntry<V>[]) => void): void {
    registry.table().dispatch(key, fn);
  },

  /**
   * Updates the value of the unique `key` owned by `self`: returns `[newValue, oldValue]`, or
   * `undefined` when `self` does not own the key. `BadArgError` on a duplicate registry.
   */
  updateValue<K, V>(self: Process<any>, registry: RegistryRef<K, V>, key: K, fn: (old: V) => V): [newValue: V, oldValue: V] | undefined {
    const t = registry.table();
    if (!t.unique) throw new BadArgError("Registry.updateValue: only for unique registries");
    return t.update(self.pid, key, fn);
  },

  /** Registry metadata under `key`, or `undefined`. */
  meta(registry: RegistryRef<any, any>, key: unknown): unknown {
    return registry.table().meta.get(key);
  },

  /** Sets registry metadata. */
  putMeta(registry: RegistryRef<any, any>, key: unknown, value: unknown): void {
    registry.table().writeMeta(key, value, false);
  },

  /** Removes registry metadata. */
  deleteMeta(registry: RegistryRef<any, any>, key: unknown): void {
    registry.table().writeMeta(key, undefined, true);
  },

  /**
   * A `via` name: `key` in a unique registry. Pass it as `GenServer.start(…, { name })`, to
   * `GenServer.call`, `send` and every other destination. With `value`, a server started under
   * it is registered with that value.
   */
  via<K, V>(registry: RegistryRef<K, V>, key: K, value?: V): Via {
    const t = registry.current();
    if (t !== undefined && !t.unique) throw new BadArgError("Registry.via: only unique registries can name processes");
    if (value === undefined) return { via: registry, name: key };
    const resolver: ViaResolver = {
      whereisName: (k) => registry.whereisName(k),
      registerName: (k, pid) => viaRegister(registry, k as K, pid, value),
      unregisterName: (k) => registry.unregisterName(k),
    };
    return { via: resolver, name: key };
  },

  /** Stops the registry (its table goes with it). */
  async stop(ctx: Context, registry: RegistryRef<any, any>, reason: unknown = "normal"): Promise<void> {
    const pid = registry.pid;
    if (pid === undefined) throw new NoProcError(`registry ${registry.name ?? "(unnamed)"}`);
    await GenServer.stop(ctx, pid, reason);
  },
};
