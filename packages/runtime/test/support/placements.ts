/**
 * Where the two ends of a conformance case live. Each case runs its driver (a `node.process()`)
 * and any local actors on the main scheduler, and puts the actor or server under test "at the
 * placement" through these functions, by fixture name and structured-clonable args.
 *
 * Spawns are async (a spawn on another scheduler is), so cases `await` them.
 *
 * Today one placement runs: the same scheduler. `otherScheduler` (below) puts the fixture on
 * worker scheduler 1 by module + export (`spawnOn` / `startGenServerOn`); adding it to
 * `placements` runs every case across threads, unchanged.
 */
import { beforeEach, afterEach } from "vitest";
import { AlreadyStartedError, silentLogger, GenServer, spawnOn, startGenServerOn, startNode, type CinderNode, type Context, type Pid, type Process, type ServerRef, type SpawnOptions, type StartNodeOptions, type StartOptions } from "@cinder/runtime";
import { actors, servers, type ActorArgs, type ActorName, type ServerArgs, type ServerFixture } from "./fixtures.js";

export interface Placement {
  readonly name: string;
  /** Starts a node able to host this placement. */
  startNode(opts?: StartNodeOptions): Promise<CinderNode>;
  /** Spawns actor fixture `actor` at the placement (not linked). */
  spawnAt<K extends ActorName>(node: CinderNode, actor: K, args: ActorArgs<K>, opts?: SpawnOptions): Promise<Pid>;
  /** Spawns actor fixture `actor` at the placement, linked to `parent` atomically. */
  spawnLinkAt<K extends ActorName>(parent: Process<any>, actor: K, args: ActorArgs<K>, opts?: SpawnOptions): Promise<Pid>;
  /** Starts GenServer fixture `server` at the placement (not linked). */
  startServerAt<K extends ServerFixture>(ctx: Context, server: K, args: ServerArgs<K>, opts?: StartOptions): Promise<ServerRef>;
  /** Starts GenServer fixture `server` at the placement, linked to `parent`. */
  startServerLinkAt<K extends ServerFixture>(parent: Process<any>, server: K, args: ServerArgs<K>, opts?: StartOptions): Promise<ServerRef>;
}

const build = <K extends ActorName>(actor: K, args: ActorArgs<K>) => (actors[actor] as (a: ActorArgs<K>) => any)(args);

export const sameScheduler: Placement = {
  name: "same scheduler",
  startNode: (opts) => startNode({ schedulers: 1, ...opts }),
  spawnAt: async (node, actor, args, opts) => node.spawn(build(actor, args), opts),
  spawnLinkAt: async (parent, actor, args, opts) => parent.spawnLink(build(actor, args), opts),
  startServerAt: (ctx, server, args, opts) => GenServer.start(ctx, servers[server] as any, args, opts),
  startServerLinkAt: (parent, server, args, opts) => GenServer.startLink(parent, servers[server] as any, args, opts),
};

/** The fixtures module's URL, for placements that spawn by module + export. */
export const FIXTURES = new URL("./fixtures.ts", import.meta.url).href;

/**
 * The far end on worker scheduler 1 (needs `pnpm build`: workers run dist). Not enabled yet:
 * it is the worker-threads step's to turn on. Tried once against the suite: links, processes
 * and monitors pass; what still fails is listed in that step's notes (typed errors lose their
 * class across threads, a GenServer started on a worker has no parent for trapped shutdowns,
 * name replicas lag a DOWN, and `startGenServerOn` has no init timeout or via names).
 */
export const otherScheduler: Placement = {
  name: "other scheduler",
  startNode: (opts) => startNode({ ...opts, schedulers: 2 }),
  spawnAt: async (node, actor, args, opts) => (await spawnOn(node, 1, { module: FIXTURES, export: actor }, [args], { name: opts?.name, trapExit: opts?.trapExit })).pid,
  spawnLinkAt: async (parent, actor, args, opts) => (await spawnOn(parent, 1, { module: FIXTURES, export: actor }, [args], { link: parent, name: opts?.name, trapExit: opts?.trapExit })).pid,
  // a via registry is an object of the caller's thread: the server starts on the worker, then
  // the caller registers it with the via registry (what GenServer.start does locally)
  startServerAt: async (ctx, server, args, opts) => {
    const pid = await startGenServerOn(ctx, 1, { module: FIXTURES, export: server }, args, { name: typeof opts?.name === "string" ? opts.name : undefined, trapExit: opts?.trapExit, timeout: opts?.timeout });
    const via = opts?.name;
    if (via !== undefined && typeof via === "object" && !via.via.registerName(via.name, pid)) {
      const core = "pid" in ctx ? ctx.node : ctx;
      core.exit(pid, "kill");
      throw new AlreadyStartedError(String(via.name), via.via.whereisName(via.name)!);
    }
    return pid;
  },
  startServerLinkAt: (parent, server, args, opts) => startGenServerOn(parent, 1, { module: FIXTURES, export: server }, args, { link: parent, name: typeof opts?.name === "string" ? opts.name : undefined, trapExit: opts?.trapExit, timeout: opts?.timeout }),
};

export const placements: Placement[] = [sameScheduler, otherScheduler];

/**
 * Per-test fixture of the conformance cases: a fresh node for the placement (silent logger)
 * and a driver process on it, handed to `set` before each test; the node stops after it.
 */
export function useNode(pl: Placement, set: (node: CinderNode, me: Process<any>) => void): void {
  let node: CinderNode | undefined;
  beforeEach(async () => {
    node = await pl.startNode({ logger: silentLogger });
    set(node, node.process());
  });
  afterEach(async () => {
    await node?.stop();
    node = undefined;
  });
}
