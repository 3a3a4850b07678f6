/**
 * Agent: a process that holds a state, read and changed with functions (Elixir's `Agent`),
 * built on GenServer.
 *
 * The functions run *inside* the agent, one at a time, in the order the agent receives them
 * (so calls from one caller apply in call order). A function that throws crashes the agent
 * (its supervisor restarts it); the caller of `get` / `update` / `getAndUpdate` then rejects
 * with an `ExitError` carrying the error. Functions may be async: the agent waits for them.
 * Functions are closures, so the caller and the agent must share a thread.
 */
import { GenServer, type GenServerBehaviour, type ServerRef, type StartOptions } from "./gen_server.js";
import type { ChildSpec } from "./internal/child.js";
import type { Process } from "./internal/process.js";
import type { Context } from "./internal/request.js";
import type { ExitReason, Via } from "./internal/types.js";

type MaybePromise<T> = T | Promise<T>;

type AgentCall<S> =
  | { readonly op: "get"; readonly fn: (state: S) => unknown }
  | { readonly op: "update"; readonly fn: (state: S) => MaybePromise<S> }
  | { readonly op: "get_and_update"; readonly fn: (state: S) => MaybePromise<readonly [unknown, S]> };

type AgentCast<S> = { readonly op: "cast"; readonly fn: (state: S) => MaybePromise<S> };

/** An agent's ref, typed with its state `S`. */
export type AgentRef<S> = ServerRef<AgentCall<S>, unknown, AgentCast<S>>;

/** Where an agent can be reached: its ref, a registered name or a via name. */
export type AgentName<S> = AgentRef<S> | string | Via;

function isPromise<T>(x: MaybePromise<T>): x is Promise<T> {
  return x !== null && typeof x === "object" && typeof (x as Promise<T>).then === "function";
}

const behaviour: GenServerBehaviour<any, AgentCall<any>, unknown, AgentCast<any>, unknown, () => unknown> = {
  name: "Agent",
  init: (initFn) => initFn() as MaybePromise<unknown>,
  handleCall(req, _from, state) {
    switch (req.op) {
      case "get": {
        const r = req.fn(state);
        return isPromise(r) ? r.then((reply) => ({ reply: wrap(reply), state })) : { reply: wrap(r), state };
      }
      case "update": {
        const r = req.fn(state);
        return isPromise(r) ? r.then((s) => ({ reply: "ok", state: s })) : { reply: "ok", state: r };
      }
      case "get_and_update": {
        const r = req.fn(state);
        const done = ([reply, s]: readonly [unknown, unknown]) => ({ reply: wrap(reply), state: s });
        return isPromise(r) ? r.then(done) : done(r);
      }
    }
  },
  handleCast(msg, state) {
    const r = msg.fn(state);
    return isPromise(r) ? r.then((s) => ({ state: s })) : { state: r };
  },
};

// GenServer treats a reply of `undefined` as "no reply yet" (a deferred reply): box every value.
interface Boxed {
  readonly $agent: unknown;
}
const wrap = (v: unknown): Boxed => ({ $agent: v });
const unwrap = <R>(b: unknown): R => (b as Boxed).$agent as R;

/**
 * Agent functions.
 *
 * @example
 * ```ts
 * import { startNode, Agent } from "@cinder/runtime";
 * const node = await startNode();
 * const counter = await Agent.start(node, () => 0, { name: "counter" });
 * Agent.cast(node, counter, (n) => n + 1);
 * await Agent.update(node, counter, (n) => n + 10);
 * console.log(await Agent.get(node, counter, (n) => n)); // 11
 * console.log(await Agent.getAndUpdate(node, "counter", (n: number) => [n, 0])); // 11
 * await Agent.stop(node, counter);
 * await node.stop();
 * ```
 */
export const Agent = {
  /** Starts an agent (not linked) whose state is `init()`; a throwing `init` rejects the start. */
  start<S>(ctx: Context, init: () => MaybePromise<S>, opts?: StartOptions): Promise<AgentRef<S>> {
    return GenServer.start(ctx, behaviour, init, opts) as Promise<AgentRef<S>>;
  },

  /** Starts an agent linked to `parent` (for a child spec's `start`). */
  startLink<S>(parent: Process<any>, init: () => MaybePromise<S>, opts?: StartOptions): Promise<AgentRef<S>> {
    return GenServer.startLink(parent, behaviour, init, opts) as Promise<AgentRef<S>>;
  },

  /** A child spec for an agent under a supervisor (a restart runs `init` again). */
  childSpec<S>(id: string, init: () => MaybePromise<S>, opts?: StartOptions, extra?: Partial<ChildSpec>): ChildSpec {
    return { id, start: (sup) => Agent.startLink(sup, init, opts), ...extra };
  },

  /** Resolves with `fn(state)`, computed inside the agent. */
  async get<S, R>(ctx: Context, agent: AgentName<S>, fn: (state: S) => R | Promise<R>, timeout = 5000): Promise<R> {
    return unwrap<R>(await GenServer.call(ctx, agent as AgentRef<S>, { op: "get", fn }, timeout));
  },

  /** Replaces the state with `fn(state)`; resolves once it is done. */
  async update<S>(ctx: Context, agent: AgentName<S>, fn: (state: S) => S | Promise<S>, timeout = 5000): Promise<void> {
    await GenServer.call(ctx, agent as AgentRef<S>, { op: "update", fn }, timeout);
  },

  /** `fn(state)` returns `[reply, newState]`: the state becomes `newState`, the call resolves with `reply`. */
  async getAndUpdate<S, R>(ctx: Context, agent: AgentName<S>, fn: (state: S) => readonly [R, S] | Promise<readonly [R, S]>, timeout = 5000): Promise<R> {
    return unwrap<R>(await GenServer.call(ctx, agent as AgentRef<S>, { op: "get_and_update", fn }, timeout));
  },

  /** Replaces the state with `fn(state)` without waiting; never throws, even for a dead agent. */
  cast<S>(ctx: Context, agent: AgentName<S>, fn: (state: S) => S | Promise<S>): void {
    GenServer.cast(ctx, agent as AgentRef<S>, { op: "cast", fn });
  },

  /** Stops the agent with `reason` (default `normal`). */
  stop(ctx: Context, agent: AgentName<any>, reason: ExitReason = "normal", timeout = Infinity): Promise<void> {
    return GenServer.stop(ctx, agent, reason, timeout);
  },
};
