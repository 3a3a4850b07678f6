/**
 * Test support: a replication group of States driven the way TRACKER.md section 3 says a Shard
 * drives its State (heartbeats with sequence numbers, clock sampling, transfer requests answered
 * from delta generations, peer records), over a simulated network whose links can be cut and
 * can lose, duplicate and reorder messages. Every State call that reports a diff is checked
 * against the observable change of the state, and every state's invariants after each step.
 *
 * Not a test file (no `.test.ts`): imported by state.test.ts and state.property.test.ts.
 */
import { Peers, State } from "@cinder/tracker";
import type { Clock, Delta, Generations, Meta, Payload, ReplicaId, Row, TrackerState } from "@cinder/tracker";

export type Msg =
  | { readonly t: "hb"; readonly from: ReplicaId; readonly seq: number; readonly delta: Delta | null; readonly clock: Clock }
  | { readonly t: "req"; readonly from: ReplicaId; readonly ref: string; readonly clock: Clock }
  | { readonly t: "ack"; readonly from: ReplicaId; readonly ref: string; readonly payload: Payload };

export const tripleKey = (topic: string, pid: string, key: string): string => `${topic}\u0000${pid}\u0000${key}`;
const tagKey = (r: Row): string => `${r.replica}/${r.counter}`;

/** Sorted, comparable rendering of rows. */
export function canonRows(rows: readonly Row[]): string[] {
  return rows.map((r) => `${r.topic}|${r.pid}|${r.key}|${JSON.stringify(r.meta)}|${r.replica}/${r.counter}`).sort();
}

/** A comparable rendering of everything a state holds (rows, pid index, knowledge, flags, delta). */
export function snapshot(s: TrackerState): unknown {
  const rows = State.dirtyList(s);
  const pids = [...new Set(rows.map((r) => r.pid))].sort();
  return {
    replica: s.replica,
    rows: canonRows(rows),
    byPid: pids.map((p) => [p, canonRows(State.getByPid(s, p))]),
    context: [...s.context].sort(),
    clouds: [...s.clouds].map(([r, c]) => [r, [...c].sort((a, b) => a - b)]).sort(),
    replicas: [...s.replicas].sort(),
    delta: canonDelta(s.delta),
  };
}

/** A comparable rendering of a delta. */
export function canonDelta(d: Delta): unknown {
  return {
    values: [...d.values].flatMap(([r, m]) => [...m].map(([n, v]) => `${r}/${n}=${v.topic}|${v.pid}|${v.key}|${JSON.stringify(v.meta)}`)).sort(),
    dots: [...d.clouds].flatMap(([r, c]) => [...c].map((n) => `${r}/${n}`)).sort(),
    start: [...d.range.start].sort(),
    end: [...d.range.end].sort(),
  };
}

/**
 * Checks a reported diff against the change between two lists of rows (keyed by tag): every
 * leave was there before with the same content, every join was not there (after the leaves),
 * and before − leaves + joins is exactly after. Returns problems (empty when exact).
 */
export function diffProblems(before: readonly Row[], after: readonly Row[], joins: readonly Row[], leaves: readonly Row[]): string[] {
  const problems: string[] = [];
  const cur = new Map(before.map((r) => [tagKey(r), r]));
  const show = (r: Row) => canonRows([r])[0];
  for (const l of leaves) {
    const had = cur.get(tagKey(l));
    if (had === undefined || show(had) !== show(l)) problems.push(`leave of a row that was not there: ${show(l)}`);
    cur.delete(tagKey(l));
  }
  for (const j of joins) {
    if (cur.has(tagKey(j))) problems.push(`join of a row already there: ${show(j)}`);
    cur.set(tagKey(j), j);
  }
  const expected = canonRows([...cur.values()]);
  const actual = canonRows(after);
  if (JSON.stringify(expected) !== JSON.stringify(actual)) {
    problems.push(`diff does not match the change: expected ${JSON.stringify(expected)} got ${JSON.stringify(actual)}`);
  }
  return problems;
}

export class ModelNode {
  incarnation = 0;
  state!: TrackerState;
  gens: Generations = [];
  seq = 0;
  lastSeq = new Map<ReplicaId, number>();
  clockset: State.ClockSet = [];
  refs = new Set<string>();
  peers = Peers.createPeers();
  /** What this node's own presences are (the ground truth its State must hold). */
  truth = new Map<string, { topic: string; pid: string; key: string; meta: Meta }>();
  /** Tags this incarnation saw removed (reported leaves of merges and local leaves). */
  gone = new Set<string>();
  stats = { full: 0, window: 0, merged: 0, droppedStale: 0 };

  constructor(readonly name: string, readonly sizes: readonly number[]) {
    this.start();
  }

  start(): void {
    this.incarnation++;
    this.state = State.create(State.replicaId(this.name, `v${this.incarnation}`));
    this.gens = [];
    this.seq = 0;
    this.lastSeq = new Map();
    this.clockset = [];
    this.refs = new Set();
    this.peers = Peers.createPeers();
    this.truth = new Map();
    this.gone = new Set();
  }

  pid(p: number): string {
    return `${this.name}.${this.incarnation}.p${p}`;
  }
}

export interface ClusterOptions {
  /** generation window sizes (default [2, 5, 20]: small, so windows and full transfers both happen) */
  sizes?: readonly number[];
  /** structured-clone every message on send, as a thread or node boundary would */
  clone?: boolean;
  /** check diffs and invariants at every step (default true) */
  check?: boolean;
}

export type DeliveryMode = "fifo" | "drop" | "dup" | "reorder";

export class Cluster {
  readonly nodes: ModelNode[];
  readonly links = new Map<string, Msg[]>();
  readonly cut = new Set<string>();
  readonly log: string[] = [];
  private nextRef = 0;
  private readonly clone: boolean;
  private readonly check: boolean;

  constructor(names: readonly string[], opts: ClusterOptions = {}) {
    const sizes = opts.sizes ?? [2, 5, 20];
    this.nodes = names.map((n) => new ModelNode(n, sizes));
    this.clone = opts.clone ?? true;
    this.check = opts.check ?? true;
  }

  // ---- local operations ------------------------------------------------------------------

  join(i: number, p: number, topic: string, key: string, meta: Meta): void {
    const node = this.nodes[i]!;
    const pid = node.pid(p);
    const k = tripleKey(topic, pid, key);
    if (node.truth.has(k)) return;
    this.checked(node, `join ${node.name} ${pid} ${topic}/${key}`, () => {
      const row = State.join(node.state, pid, topic, key, meta);
      return { joins: [row], leaves: [] };
    });
    node.truth.set(k, { topic, pid, key, meta });
  }

  leave(i: number, p: number, topic: string, key: string): void {
    const node = this.nodes[i]!;
    const pid = node.pid(p);
    this.checked(node, `leave ${node.name} ${pid} ${topic}/${key}`, () => ({ joins: [], leaves: State.leave(node.state, pid, topic, key) }));
    node.truth.delete(tripleKey(topic, pid, key));
  }

  leavePid(i: number, p: number): void {
    const node = this.nodes[i]!;
    const pid = node.pid(p);
    this.checked(node, `leavePid ${node.name} ${pid}`, () => ({ joins: [], leaves: State.leave(node.state, pid) }));
    for (const [k, v] of node.truth) if (v.pid === pid) node.truth.delete(k);
  }

  update(i: number, p: number, topic: string, key: string, meta: Meta): void {
    const node = this.nodes[i]!;
    const pid = node.pid(p);
    const k = tripleKey(topic, pid, key);
    if (!node.truth.has(k)) return;
    this.checked(node, `update ${node.name} ${pid} ${topic}/${key}`, () => {
      const r = State.leaveJoin(node.state, pid, topic, key, meta);
      return { joins: [r.join], leaves: [r.leave] };
    });
    node.truth.set(k, { topic, pid, key, meta });
  }

  // ---- shard protocol ----------------------------------------------------------------------

  /** The shard's tick, step 1: a heartbeat (always sent here, with the delta if any). */
  tick(i: number): void {
    const node = this.nodes[i]!;
    let delta: Delta | null = null;
    if (State.hasDelta(node.state)) {
      delta = node.state.delta;
      State.resetDelta(node.state);
      State.compact(node.state);
      node.gens = State.pushGeneration(node.gens, node.state.delta, delta, node.sizes);
    }
    const msg: Msg = { t: "hb", from: node.state.replica, seq: ++node.seq, delta, clock: State.clocks(node.state).clock };
    this.log.push(`tick ${node.name} seq ${node.seq}${delta ? ` delta ${State.deltaSize(delta)}` : ""}`);
    this.broadcast(i, msg);
  }

  /** The shard's tick, step 2: clock sampling and transfer requests. */
  sample(i: number): void {
    const node = this.nodes[i]!;
    const set = State.appendClock(node.clockset, State.clocks(node.state));
    node.clockset = [];
    for (const { replica } of set) {
      if (replica === node.state.replica) continue;
      const j = this.nodes.findIndex((n) => n.state.replica === replica);
      if (j < 0) continue; // that incarnation is gone
      const ref = `r${++this.nextRef}`;
      node.refs.add(ref);
      this.log.push(`sample ${node.name}: transfer_req ${ref} to ${this.nodes[j]!.name}`);
      this.send(i, j, { t: "req", from: node.state.replica, ref, clock: State.clocks(node.state).clock });
    }
  }

  /** Delivers (or mistreats) the next message on link i → j. Returns false if none is queued. */
  deliver(i: number, j: number, mode: DeliveryMode = "fifo", pick = 0): boolean {
    const q = this.links.get(`${i}>${j}`);
    if (q === undefined || q.length === 0) return false;
    let msg: Msg;
    if (mode === "drop") {
      this.log.push(`drop ${i}>${j} ${q[0]!.t}`);
      q.shift();
      return true;
    } else if (mode === "dup") {
      msg = q[0]!;
      this.log.push(`dup ${i}>${j}`);
    } else if (mode === "reorder") {
      msg = q.splice(pick % q.length, 1)[0]!;
      this.log.push(`reorder ${i}>${j} #${pick % q.length}`);
    } else {
      msg = q.shift()!;
    }
    this.receive(j, msg);
    return true;
  }

  /** i flags its peer j down (as silence longer than downPeriod would). */
  down(i: number, j: number): void {
    const node = this.nodes[i]!;
    const name = this.nodes[j]!.name;
    const rec = node.peers.get(name);
    if (rec === undefined || rec.status === "down") return;
    node.peers.set(name, { ...rec, status: "down" });
    this.apply(node, [{ type: "down", replica: rec.replica }]);
  }

  /** i permdowns its peer j (as silence longer than permdownPeriod would). */
  permdown(i: number, j: number): void {
    const node = this.nodes[i]!;
    const name = this.nodes[j]!.name;
    const rec = node.peers.get(name);
    if (rec === undefined) return;
    node.peers.delete(name);
    const events: Peers.PeerEvent[] = rec.status === "up" ? [{ type: "down", replica: rec.replica }] : [];
    events.push({ type: "permdown", replica: rec.replica });
    this.apply(node, events);
  }

  /** Node i's shard crashes and restarts as a new replica; its presences die with it. */
  restart(i: number): void {
    const node = this.nodes[i]!;
    this.log.push(`restart ${node.name}`);
    for (let j = 0; j < this.nodes.length; j++) this.links.get(`${i}>${j}`)?.splice(0);
    node.start();
  }

  cutLink(i: number, j: number): void {
    if (i !== j) this.cut.add(pairKey(i, j));
  }

  healLink(i: number, j: number): void {
    this.cut.delete(pairKey(i, j));
  }

  // ---- convergence ---------------------------------------------------------------------

  /** Delivers everything in flight, in order, until the network is empty. */
  drain(): void {
    for (let moved = true; moved; ) {
      moved = false;
      for (let i = 0; i < this.nodes.length; i++) {
        for (let j = 0; j < this.nodes.length; j++) while (this.deliver(i, j)) moved = true;
      }
    }
  }

  /**
   * Heals every link and runs lossless rounds (heartbeat, clock sampling, transfers) until no
   * node has a pending delta and all clocks agree, plus one more round. Returns the rounds used.
   */
  converge(maxRounds = 30): number {
    this.cut.clear();
    this.drain();
    let calm = 0;
    for (let round = 1; round <= maxRounds; round++) {
      for (let i = 0; i < this.nodes.length; i++) this.tick(i);
      this.drain();
      for (let i = 0; i < this.nodes.length; i++) this.sample(i);
      this.drain();
      const clocks = this.nodes.map((n) => JSON.stringify([...n.state.context].sort()));
      const quiet = this.nodes.every((n) => !State.hasDelta(n.state)) && clocks.every((c) => c === clocks[0]);
      calm = quiet ? calm + 1 : 0;
      if (calm === 2) return round;
    }
    return maxRounds;
  }

  /**
   * Problems with the group after convergence: every node holds, for every live replica,
   * exactly that replica's own presences (no ghost, none missing, latest meta), nothing of dead
   * incarnations, and each node's own rows equal its ground truth.
   */
  convergenceProblems(): string[] {
    const problems: string[] = [];
    const live = new Map(this.nodes.map((n) => [n.state.replica, n]));
    for (const n of this.nodes) {
      const own = State.dirtyList(n.state).filter((r) => r.replica === n.state.replica);
      const truth = [...n.truth.values()].map((t) => `${t.topic}|${t.pid}|${t.key}|${JSON.stringify(t.meta)}`).sort();
      const held = own.map((r) => `${r.topic}|${r.pid}|${r.key}|${JSON.stringify(r.meta)}`).sort();
      if (JSON.stringify(truth) !== JSON.stringify(held)) problems.push(`${n.name} own rows ${JSON.stringify(held)} != truth ${JSON.stringify(truth)}`);
    }
    for (const n of this.nodes) {
      for (const r of State.dirtyList(n.state)) {
        if (!live.has(r.replica)) problems.push(`${n.name} holds a row of dead incarnation ${r.replica}: ${canonRows([r])[0]}`);
      }
      for (const r of n.state.context.keys()) if (!live.has(r)) problems.push(`${n.name} context mentions dead ${r}`);
      if (n.state.replicas.size !== this.nodes.length) problems.push(`${n.name} knows ${n.state.replicas.size} replicas`);
      for (const [r, st] of n.state.replicas) if (st !== "up") problems.push(`${n.name} still flags ${r} ${st}`);
      for (const [owner, o] of live) {
        const want = canonRows(State.dirtyList(o.state).filter((r) => r.replica === owner));
        const got = canonRows(State.dirtyList(n.state).filter((r) => r.replica === owner));
        if (JSON.stringify(want) !== JSON.stringify(got)) {
          problems.push(`${n.name}'s view of ${o.name}: ${JSON.stringify(got)} but ${o.name} holds ${JSON.stringify(want)}`);
        }
      }
    }
    const lists = this.nodes.map((n) => JSON.stringify(canonRows(State.onlineList(n.state))));
    if (lists.some((l) => l !== lists[0])) problems.push(`online lists differ`);
    return problems;
  }

  // ---- internals ---------------------------------------------------------------------------

  private broadcast(i: number, msg: Msg): void {
    for (let j = 0; j < this.nodes.length; j++) if (j !== i) this.send(i, j, msg);
  }

  private send(i: number, j: number, msg: Msg): void {
    if (this.cut.has(pairKey(i, j))) return;
    const key = `${i}>${j}`;
    let q = this.links.get(key);
    if (q === undefined) {
      q = [];
      this.links.set(key, q);
    }
    q.push(this.clone ? structuredClone(msg) : msg);
  }

  private receive(j: number, msg: Msg): void {
    const node = this.nodes[j]!;
    if (msg.t === "hb") {
      this.apply(node, Peers.heartbeat(node.peers, msg.from, 0));
      const last = node.lastSeq.get(msg.from) ?? 0;
      if (msg.seq <= last) {
        node.stats.droppedStale++;
        this.log.push(`${node.name} drops stale heartbeat ${msg.seq} from ${msg.from}`);
        return;
      }
      node.lastSeq.set(msg.from, msg.seq);
      if (msg.delta !== null) {
        const delta = msg.delta;
        this.checked(node, `${node.name} merges heartbeat ${msg.seq} from ${msg.from}`, () => State.merge(node.state, delta));
        node.gens = State.pushGeneration(node.gens, node.state.delta, State.knownDelta(node.state, delta), node.sizes);
        node.stats.merged++;
      }
      node.clockset = State.appendClock(node.clockset, { replica: msg.from, clock: msg.clock });
    } else if (msg.t === "req") {
      const i = this.nodes.findIndex((n) => n.state.replica === msg.from);
      const answer = State.extractFor(node.gens, node.state, msg.from, msg.clock);
      if (answer.source === "full") node.stats.full++;
      else node.stats.window++;
      this.log.push(`${node.name} answers ${msg.ref} with ${answer.source}`);
      if (i >= 0) this.send(j, i, { t: "ack", from: node.state.replica, ref: msg.ref, payload: answer.payload });
    } else {
      if (!node.refs.delete(msg.ref)) {
        this.log.push(`${node.name} ignores ack ${msg.ref}`);
        return;
      }
      const payload = msg.payload;
      this.checked(node, `${node.name} merges ack ${msg.ref} (${payload.kind}) from ${msg.from}`, () => State.merge(node.state, payload));
      node.gens = payload.kind === "full" ? [] : State.pushGeneration(node.gens, node.state.delta, State.knownDelta(node.state, payload), node.sizes);
    }
  }

  private apply(node: ModelNode, events: readonly Peers.PeerEvent[]): void {
    for (const ev of events) {
      this.log.push(`${node.name}: ${ev.type} ${ev.replica}`);
      if (ev.type === "up") {
        this.checkedVisible(node, `${node.name} replicaUp ${ev.replica}`, () => ({ joins: State.replicaUp(node.state, ev.replica), leaves: [] }));
      } else if (ev.type === "down") {
        this.checkedVisible(node, `${node.name} replicaDown ${ev.replica}`, () => ({ joins: [], leaves: State.replicaDown(node.state, ev.replica) }));
      } else {
        State.removeDownReplica(node.state, ev.replica);
        // purged: it may be met again from scratch, so its old tags may legitimately return
        for (const t of node.gone) if (t.startsWith(`${ev.replica}/`)) node.gone.delete(t);
        node.gens = State.pruneGenerations(node.gens, ev.replica);
        node.lastSeq.delete(ev.replica);
        if (this.check) this.expectSound(node, `${node.name} permdown ${ev.replica}`);
      }
    }
  }

  /** Runs a State call that reports a diff of stored rows, and checks the diff and invariants. */
  private checked(node: ModelNode, what: string, fn: () => { joins: readonly Row[]; leaves: readonly Row[] }): void {
    this.log.push(what);
    if (!this.check) {
      fn();
      return;
    }
    const before = State.dirtyList(node.state);
    const visibleBefore = State.onlineList(node.state);
    const { joins, leaves } = fn();
    const after = State.dirtyList(node.state);
    const problems = diffProblems(before, after, joins, leaves);
    // No resurrection: a tag once seen removed never joins again (the per-step form of F1).
    for (const j of joins) if (node.gone.has(tagKey(j))) problems.push(`ghost: ${canonRows([j])[0]} joined again after its removal`);
    for (const l of leaves) node.gone.add(tagKey(l));
    // What a shard would hand to handleDiff: reports of replicas it does not flag down.
    const shown = (r: Row) => node.state.replicas.get(r.replica) !== "down";
    problems.push(...diffProblems(visibleBefore, State.onlineList(node.state), joins.filter(shown), leaves.filter(shown)));
    if (problems.length > 0) throw new Error(`${what}: ${problems.join("; ")}\n${this.log.slice(-40).join("\n")}`);
    this.expectSound(node, what);
  }

  /** Runs a replica status change (which reports a change of visible rows) and checks it. */
  private checkedVisible(node: ModelNode, what: string, fn: () => { joins: readonly Row[]; leaves: readonly Row[] }): void {
    if (!this.check) {
      fn();
      return;
    }
    const before = State.onlineList(node.state);
    const dirty = canonRows(State.dirtyList(node.state));
    const { joins, leaves } = fn();
    const problems = diffProblems(before, State.onlineList(node.state), joins, leaves);
    if (JSON.stringify(dirty) !== JSON.stringify(canonRows(State.dirtyList(node.state)))) problems.push("stored rows changed");
    if (problems.length > 0) throw new Error(`${what}: ${problems.join("; ")}\n${this.log.slice(-40).join("\n")}`);
    this.expectSound(node, what);
  }

  private expectSound(node: ModelNode, what: string): void {
    const problems = State.checkInvariants(node.state);
    if (problems.length > 0) throw new Error(`${what}: broken invariants: ${problems.join("; ")}\n${this.log.slice(-40).join("\n")}`);
  }
}

function pairKey(i: number, j: number): string {
  return i < j ? `${i}|${j}` : `${j}|${i}`;
}
