/**
 * Single-node, in-memory presence: a GenServer owns the writes (track, untrack, update, and
 * untrack-on-exit through monitors) and produces the diffs in order; reads (`list`) go straight
 * to the table it writes, so they never queue behind its mailbox.
 */
import { GenServer, type GenServerBehaviour, type CinderNode, type Context, type DownMessage, type MonitorRef, type Pid, type ServerRef } from "@cinder/runtime";
import { PresenceError, emptyState, type DiffHandler, type Meta, type Presence, type PresenceDiff, type PresenceState } from "./types.js";

interface Row {
  readonly pid: Pid;
  meta: Meta;
}

type Call =
  | { op: "track"; pid: Pid; topic: string; key: string; meta: Record<string, unknown> }
  | { op: "untrack"; pid: Pid; topic: string; key: string }
  | { op: "untrack_all"; pid: Pid }
  | { op: "update"; pid: Pid; topic: string; key: string; meta: Record<string, unknown>; expect: string | undefined };

type CallReply = { ok: string } | { error: PresenceError } | { conflict: true };

const CONFLICT = Symbol("conflict");

/** topic → key → rows in join order */
type Table = Map<string, Map<string, Row[]>>;

export interface MemoryPresenceOptions {
  /** Register the server under this name (default `"chat.presence"`). */
  name?: string;
  onDiff: DiffHandler;
}

/**
 * Starts the in-memory presence under the node's root supervisor.
 *
 * @example
 * ```ts
 * import { startNode } from "@cinder/runtime";
 * import { MemoryPresence } from "./memory.js";
 * const node = await startNode();
 * const presence = await MemoryPresence.start(node, { onDiff: (topic, d) => console.log(topic, d) });
 * const me = node.process();
 * await presence.track(me.pid, "room:lobby", "ann", { online_at: Date.now() });
 * console.log(Object.keys(presence.list("room:lobby"))); // ["ann"]
 * await node.stop();
 * ```
 */
export class MemoryPresence implements Presence {
  private readonly node: CinderNode;
  private readonly server: ServerRef<Call, CallReply, never>;
  private readonly table: Table;

  private constructor(node: CinderNode, server: ServerRef<Call, CallReply, never>, table: Table) {
    this.node = node;
    this.server = server;
    this.table = table;
  }

  static async start(node: CinderNode, opts: MemoryPresenceOptions): Promise<MemoryPresence> {
    const name = opts.name ?? "chat.presence";
    const table: Table = new Map();
    await node.startChild({ id: name, start: (sup) => GenServer.startLink(sup, behaviour(node, table, opts.onDiff), undefined, { name }) });
    return new MemoryPresence(node, name as unknown as ServerRef<Call, CallReply, never>, table);
  }

  private async call(ctx: Context, req: Call): Promise<string> {
    const r = await GenServer.call(ctx, this.server, req);
    if ("error" in r) throw r.error;
    if ("conflict" in r) throw CONFLICT;
    return r.ok;
  }

  track(pid: Pid, topic: string, key: string, meta: Record<string, unknown>): Promise<string> {
    return this.call(this.node, { op: "track", pid, topic, key: String(key), meta });
  }

  async untrack(pid: Pid, topic: string, key: string): Promise<void> {
    await this.call(this.node, { op: "untrack", pid, topic, key: String(key) });
  }

  async untrackAll(pid: Pid): Promise<void> {
    await this.call(this.node, { op: "untrack_all", pid });
  }

  async update(pid: Pid, topic: string, key: string, meta: Record<string, unknown> | ((current: Meta) => Record<string, unknown>)): Promise<string> {
    // a function runs here on the current meta; the server applies the result only if the
    // presence is still the one read (its phx_ref), else we read again (bounded)
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = this.table.get(topic)?.get(String(key))?.find((r) => r.pid === pid)?.meta;
      if (current === undefined) throw new PresenceError("nopresence", `no presence of ${pid} under ${key} on ${topic}`);
      const next = typeof meta === "function" ? meta(current) : meta;
      try {
        return await this.call(this.node, { op: "update", pid, topic, key: String(key), meta: next, expect: current.phx_ref });
      } catch (e) {
        if (e !== CONFLICT) throw e; // else: changed meanwhile, read again
      }
    }
    throw new PresenceError("nopresence", `presence of ${pid} under ${key} on ${topic} kept changing`);
  }

  list(topic: string): PresenceState {
    const out = emptyState();
    const keys = this.table.get(topic);
    if (keys === undefined) return out;
    for (const [key, rows] of keys) out[key] = { metas: rows.map((r) => r.meta) };
    return out;
  }
}

function behaviour(node: CinderNode, table: Table, onDiff: DiffHandler): GenServerBehaviour<null, Call, CallReply, never, unknown, undefined> {
  let serial = 0;
  const monitors = new Map<Pid, MonitorRef>();
  /** pid → "topic\0key" of its rows */
  const byPid = new Map<Pid, Set<string>>();
  const newRef = () => `${node.incarnation}${(++serial).toString(36).padStart(4, "0")}`;

  const emit = (topic: string, diff: PresenceDiff) => {
    try {
      onDiff(topic, diff);
    } catch (e) {
      node.logger.error(`presence: diff handler threw on ${topic}: ${String(e)}`);
    }
  };
  const one = (key: string, meta: Meta): PresenceState => {
    const s = emptyState();
    s[key] = { metas: [meta] };
    return s;
  };

  const removeRow = (pid: Pid, topic: string, key: string): Meta | undefined => {
    const keys = table.get(topic);
    const rows = keys?.get(key);
    if (!keys || !rows) return undefined;
    const i = rows.findIndex((r) => r.pid === pid);
    if (i < 0) return undefined;
    const [row] = rows.splice(i, 1);
    if (rows.length === 0) keys.delete(key);
    if (keys.size === 0) table.delete(topic);
    byPid.get(pid)?.delete(`${topic}\0${key}`);
    return row!.meta;
  };

  const dropMonitorIfIdle = (self: { demonitor(ref: MonitorRef): boolean }, pid: Pid) => {
    if ((byPid.get(pid)?.size ?? 0) > 0) return;
    byPid.delete(pid);
    const ref = monitors.get(pid);
    if (ref !== undefined) self.demonitor(ref);
    monitors.delete(pid);
  };

  const removeAll = (pid: Pid) => {
    const entries = [...(byPid.get(pid) ?? [])];
    const leavesByTopic = new Map<string, PresenceState>();
    for (const tk of entries) {
      const i = tk.indexOf("\0");
      const topic = tk.slice(0, i),
        key = tk.slice(i + 1);
      const meta = removeRow(pid, topic, key);
      if (meta === undefined) continue;
      let leaves = leavesByTopic.get(topic);
      if (!leaves) leavesByTopic.set(topic, (leaves = emptyState()));
      (leaves[key] ??= { metas: [] }).metas.push(meta);
    }
    byPid.delete(pid);
    for (const [topic, leaves] of leavesByTopic) emit(topic, { joins: emptyState(), leaves });
  };

  return {
    name: "MemoryPresence",
    init: () => null,
    handleCall(req, _from, st, self) {
      switch (req.op) {
        case "track": {
          const keys = table.get(req.topic) ?? new Map<string, Row[]>();
          const rows = keys.get(req.key) ?? [];
          if (rows.some((r) => r.pid === req.pid)) return { reply: { error: new PresenceError("already_tracked", `${req.pid} already tracked under ${req.key} on ${req.topic}`) }, state: st };
          const meta: Meta = { ...req.meta, phx_ref: newRef() };
          rows.push({ pid: req.pid, meta });
          keys.set(req.key, rows);
          table.set(req.topic, keys);
          let mine = byPid.get(req.pid);
          if (!mine) byPid.set(req.pid, (mine = new Set()));
          mine.add(`${req.topic}\0${req.key}`);
          if (!monitors.has(req.pid)) monitors.set(req.pid, self.monitor(req.pid));
          emit(req.topic, { joins: one(req.key, meta), leaves: emptyState() });
          return { reply: { ok: meta.phx_ref }, state: st };
        }
        case "untrack": {
          const meta = removeRow(req.pid, req.topic, req.key);
          if (meta !== undefined) {
            dropMonitorIfIdle(self, req.pid);
            emit(req.topic, { joins: emptyState(), leaves: one(req.key, meta) });
          }
          return { reply: { ok: "" }, state: st };
        }
        case "untrack_all": {
          removeAll(req.pid);
          const ref = monitors.get(req.pid);
          if (ref !== undefined) self.demonitor(ref);
          monitors.delete(req.pid);
          return { reply: { ok: "" }, state: st };
        }
        case "update": {
          const row = table.get(req.topic)?.get(req.key)?.find((r) => r.pid === req.pid);
          if (row === undefined) return { reply: { error: new PresenceError("nopresence", `no presence of ${req.pid} under ${req.key} on ${req.topic}`) }, state: st };
          if (req.expect !== undefined && row.meta.phx_ref !== req.expect) return { reply: { conflict: true as const }, state: st };
          const old = row.meta;
          const { phx_ref: _r, phx_ref_prev: _p, ...fields } = req.meta as Record<string, unknown>;
          const meta: Meta = { ...fields, phx_ref: newRef(), phx_ref_prev: old.phx_ref };
          row.meta = meta;
          emit(req.topic, { joins: one(req.key, meta), leaves: one(req.key, old) });
          return { reply: { ok: meta.phx_ref }, state: st };
        }
      }
    },
    handleInfo(msg, st) {
      const m = msg as DownMessage;
      if (m && typeof m === "object" && m.type === "DOWN" && monitors.get(m.pid) === m.ref) {
        monitors.delete(m.pid);
        removeAll(m.pid);
      }
      return { state: st };
    },
  };
}
