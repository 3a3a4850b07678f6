/**
 * Conformance S10: a model-based property test of Supervisor.
 *
 * fast-check drives random sequences of startChild / crash / terminateChild / restartChild /
 * deleteChild against a real supervisor (random strategy, restart types, initial children and
 * intensity) and, after every command, compares whichChildren, countChildren and liveness with
 * a small model of the rules (S2–S4, S8):
 * - a crash of a temporary child forgets it; a transient child's normal exit (`normal`,
 *   `shutdown`, `{ shutdown }`) leaves it stopped; anything else counts one restart;
 * - more restarts than `maxRestarts` (window far longer than the run) kills the supervisor and
 *   all its children;
 * - one_for_one restarts the child; one_for_all every child (temporary siblings are dropped,
 *   stopped ones started again); rest_for_one the child and those after it;
 * - a child restarted gets a new pid, one left alone keeps its pid, every old pid is dead.
 *
 * Runs: FC_RUNS (default 200, about a second). Seed: FC_SEED to replay a failure.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Supervisor, silentLogger, startNode, type ChildSpec, type CinderError, type CinderNode, type ExitReason, type Pid, type Process, type Restart, type Strategy, type SupervisorRef } from "@cinder/runtime";
import { downOf, until } from "./support/deadline.js";

const IDS = ["a", "b", "c", "d", "e"] as const;
const RESTARTS: Restart[] = ["permanent", "transient", "temporary"];
const STRATEGIES: Strategy[] = ["one_for_one", "one_for_all", "rest_for_one"];
type CrashHow = "normal" | "shutdown" | "shutdown_tuple" | "boom" | "kill";
const CRASHES: CrashHow[] = ["normal", "shutdown", "shutdown_tuple", "boom", "kill"];

// ---- model ---------------------------------------------------------------------------------

interface MChild {
  id: string;
  restart: Restart;
  running: boolean;
  /** a fresh number on every (re)start: a changed gen means a new pid */
  gen: number;
}
interface Model {
  strategy: Strategy;
  maxRestarts: number;
  restarts: number;
  dead: boolean;
  nextGen: number;
  children: MChild[];
}

function isNormal(how: CrashHow): boolean {
  return how === "normal" || how === "shutdown" || how === "shutdown_tuple";
}

/** The model's reaction to child `c` exiting as `how`. */
function modelExit(m: Model, c: MChild, how: CrashHow): void {
  c.running = false;
  if (c.restart === "temporary") {
    m.children.splice(m.children.indexOf(c), 1);
    return;
  }
  if (c.restart === "transient" && isNormal(how)) return;
  m.restarts++;
  if (m.restarts > m.maxRestarts) {
    m.dead = true;
    for (const x of m.children) x.running = false;
    return;
  }
  const i = m.children.indexOf(c);
  const group = m.strategy === "one_for_one" ? [c] : m.strategy === "one_for_all" ? m.children.slice() : m.children.slice(i);
  for (const x of group) {
    if (x !== c && x.restart === "temporary") m.children.splice(m.children.indexOf(x), 1);
    else {
      x.running = true;
      x.gen = ++m.nextGen;
    }
  }
}

// ---- the real system -----------------------------------------------------------------------

interface Real {
  node: CinderNode;
  sup: SupervisorRef;
  /** per id: the gen and pid seen at the last check */
  seen: Map<string, { gen: number; pid: Pid | undefined }>;
  everSeen: Set<Pid>;
  /** ids whose next start must fail */
  failNext: Set<string>;
}

type ChildMsg = { die: ExitReason };

/** A child: lives until told to exit with a reason (or killed). */
const childBody = async (self: Process<ChildMsg>) => {
  const m = (await self.receive()) as ChildMsg;
  if (m.die !== "normal") self.exit(m.die);
};

function childSpec(real: Real, id: string, restart: Restart, alwaysFails = false): ChildSpec {
  return {
    id,
    restart,
    start: (sup) => {
      if (alwaysFails || real.failNext.delete(id)) throw new Error(`start of ${id} refused`);
      return sup.spawnLink(childBody);
    },
  };
}

async function outcome<T>(p: Promise<T>): Promise<{ ok: T } | { error: string }> {
  try {
    return { ok: await p };
  } catch (e) {
    return { error: (e as CinderError).code ?? String(e) };
  }
}

/** Compares the real supervisor with the model. */
async function verify(m: Model, r: Real): Promise<void> {
  if (m.dead) {
    await until(() => !r.node.isAlive(r.sup), "the supervisor to exit");
    const res = await outcome(Supervisor.whichChildren(r.node, r.sup));
    expect(res).toEqual({ error: "noproc" });
    for (const p of r.everSeen) expect(r.node.isAlive(p), `child ${p} of a dead supervisor`).toBe(false);
    return;
  }
  const kids = await Supervisor.whichChildren(r.node, r.sup);
  expect(kids.map((k) => k.id)).toEqual(m.children.map((c) => c.id));
  const current = new Set<Pid>();
  m.children.forEach((c, i) => {
    const k = kids[i]!;
    const prev = r.seen.get(c.id);
    if (!c.running) {
      expect(k.pid, `child ${c.id} should be stopped`).toBeUndefined();
      r.seen.set(c.id, { gen: c.gen, pid: undefined });
      return;
    }
    expect(typeof k.pid === "string" && k.pid !== "restarting", `child ${c.id} should run, is ${String(k.pid)}`).toBe(true);
    const pid = k.pid as Pid;
    expect(r.node.isAlive(pid), `child ${c.id} pid alive`).toBe(true);
    if (prev !== undefined && prev.gen === c.gen) expect(pid, `child ${c.id} was not restarted`).toBe(prev.pid);
    if (prev !== undefined && prev.gen !== c.gen && prev.pid !== undefined) expect(pid, `child ${c.id} was restarted`).not.toBe(prev.pid);
    r.seen.set(c.id, { gen: c.gen, pid });
    current.add(pid);
    r.everSeen.add(pid);
  });
  for (const p of r.everSeen) if (!current.has(p)) expect(r.node.isAlive(p), `old pid ${p} dead`).toBe(false);
  const active = m.children.filter((c) => c.running).length;
  expect(await Supervisor.countChildren(r.node, r.sup)).toEqual({ specs: m.children.length, active, supervisors: 0, workers: m.children.length });
}

// ---- commands ------------------------------------------------------------------------------

class StartChild implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly id: string,
    readonly restart: Restart,
    readonly fails: boolean,
  ) {}
  check = (m: Readonly<Model>) => !m.dead;
  async run(m: Model, r: Real): Promise<void> {
    const existing = m.children.find((c) => c.id === this.id);
    const res = await outcome(Supervisor.startChild(r.node, r.sup, childSpec(r, this.id, this.restart, this.fails)));
    if (existing) expect(res).toEqual({ error: existing.running ? "already_started" : "badarg" });
    else if (this.fails) expect(res).toEqual({ error: "init_failed" });
    else {
      expect("ok" in res && typeof res.ok === "string").toBe(true);
      m.children.push({ id: this.id, restart: this.restart, running: true, gen: ++m.nextGen });
    }
    await verify(m, r);
  }
  toString = () => `startChild(${this.id}, ${this.restart}${this.fails ? ", failing" : ""})`;
}

class Crash implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly how: CrashHow,
  ) {}
  check = (m: Readonly<Model>) => !m.dead && m.children.some((c) => c.running);
  async run(m: Model, r: Real): Promise<void> {
    const running = m.children.filter((c) => c.running);
    const c = running[this.pick % running.length]!;
    const pid = r.seen.get(c.id)!.pid!;
    const down = downOf(r.node, pid);
    if (this.how === "kill") r.node.exit(pid, "kill");
    else r.node.send(pid, { die: this.how === "shutdown_tuple" ? { shutdown: "bye" } : this.how } satisfies ChildMsg);
    await down; // its EXIT is now queued at the supervisor, ahead of the next call
    modelExit(m, c, this.how);
    await verify(m, r);
  }
  toString = () => `crash(#${this.pick}, ${this.how})`;
}

class TerminateChild implements fc.AsyncCommand<Model, Real> {
  constructor(readonly id: string) {}
  check = (m: Readonly<Model>) => !m.dead;
  async run(m: Model, r: Real): Promise<void> {
    const c = m.children.find((x) => x.id === this.id);
    const res = await outcome(Supervisor.terminateChild(r.node, r.sup, this.id));
    if (!c) expect(res).toEqual({ error: "not_found" });
    else {
      expect(res).toEqual({ ok: true });
      c.running = false;
      if (c.restart === "temporary") m.children.splice(m.children.indexOf(c), 1);
    }
    await verify(m, r);
  }
  toString = () => `terminateChild(${this.id})`;
}

class RestartChild implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly id: string,
    readonly fails: boolean,
  ) {}
  check = (m: Readonly<Model>) => !m.dead;
  async run(m: Model, r: Real): Promise<void> {
    const c = m.children.find((x) => x.id === this.id);
    if (this.fails) r.failNext.add(this.id);
    const res = await outcome(Supervisor.restartChild(r.node, r.sup, this.id));
    r.failNext.delete(this.id);
    if (!c) expect(res).toEqual({ error: "not_found" });
    else if (c.running) expect(res).toEqual({ error: "running" });
    else if (this.fails) expect(res).toEqual({ error: "init_failed" });
    else {
      expect("ok" in res && typeof res.ok === "string").toBe(true);
      c.running = true;
      c.gen = ++m.nextGen;
    }
    await verify(m, r);
  }
  toString = () => `restartChild(${this.id}${this.fails ? ", failing" : ""})`;
}

class DeleteChild implements fc.AsyncCommand<Model, Real> {
  constructor(readonly id: string) {}
  check = (m: Readonly<Model>) => !m.dead;
  async run(m: Model, r: Real): Promise<void> {
    const c = m.children.find((x) => x.id === this.id);
    const res = await outcome(Supervisor.deleteChild(r.node, r.sup, this.id));
    if (!c) expect(res).toEqual({ error: "not_found" });
    else if (c.running) expect(res).toEqual({ error: "running" });
    else {
      expect(res).toEqual({ ok: true });
      m.children.splice(m.children.indexOf(c), 1);
      r.seen.delete(c.id);
    }
    await verify(m, r);
  }
  toString = () => `deleteChild(${this.id})`;
}

const id = fc.constantFrom(...IDS);
const restart = fc.constantFrom(...RESTARTS);
/** true one time in four (a start that fails) */
const rarely = fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 });
const commands = fc.commands(
  [
    fc.tuple(id, restart, rarely).map(([i, rt, f]) => new StartChild(i, rt, f)),
    fc.tuple(fc.nat(), fc.constantFrom(...CRASHES)).map(([p, h]) => new Crash(p, h)),
    fc.tuple(fc.nat(), fc.constantFrom(...CRASHES)).map(([p, h]) => new Crash(p, h)), // crashes twice as often
    id.map((i) => new TerminateChild(i)),
    fc.tuple(id, rarely).map(([i, f]) => new RestartChild(i, f)),
    id.map((i) => new DeleteChild(i)),
  ],
  { maxCommands: 40 },
);

const config = fc.record({
  strategy: fc.constantFrom(...STRATEGIES),
  maxRestarts: fc.constantFrom(0, 1, 3, 1000),
  initial: fc.uniqueArray(fc.tuple(id, restart), { maxLength: 4, selector: ([i]) => i }),
});

describe("Supervisor model", () => {
  it("S10 random start/crash/terminate/restart/delete sequences agree with the model of the restart rules", async () => {
    await fc.assert(
      fc.asyncProperty(config, commands, async (cfg, cmds) => {
        const node = await startNode({ logger: silentLogger, schedulers: 1 });
        try {
          const real: Real = { node, sup: undefined as unknown as SupervisorRef, seen: new Map(), everSeen: new Set(), failNext: new Set() };
          real.sup = await Supervisor.start(node, {
            strategy: cfg.strategy,
            maxRestarts: cfg.maxRestarts,
            maxSeconds: 3600,
            children: cfg.initial.map(([i, rt]) => childSpec(real, i, rt)),
          });
          const model: Model = { strategy: cfg.strategy, maxRestarts: cfg.maxRestarts, restarts: 0, dead: false, nextGen: 0, children: [] };
          for (const [i, rt] of cfg.initial) model.children.push({ id: i, restart: rt, running: true, gen: ++model.nextGen });
          await verify(model, real);
          await fc.asyncModelRun(() => ({ model, real }), cmds);
          if (!model.dead) {
            await Supervisor.stop(node, real.sup);
            for (const p of real.everSeen) expect(node.isAlive(p)).toBe(false);
          }
        } finally {
          await node.stop();
        }
      }),
      {
        numRuns: Number(process.env.FC_RUNS ?? 200),
        ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}),
      },
    );
  });
});
