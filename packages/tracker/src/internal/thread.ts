/**
 * The worker-thread entry of `@cinder/tracker` for spread shards (internal/spread.ts):
 * `trackerThread` is the `node.everyThread` init (this thread's read view of a tracker), and
 * `trackerShard` the shard behaviour `startGenServerOn` names.
 *
 * Both load the package by its own name (a self-reference), so the shard, the thread's read
 * copies and the thread's actor modules that `import { Tracker } from "@cinder/tracker"` share
 * one module instance (the built package) even when this file was loaded from `src/` by tsx.
 */
import type { GenServerBehaviour, ThreadContext } from "@cinder/runtime";

const pkg: string = "@cinder/tracker";

interface Impl {
  __threadInit(ctx: ThreadContext, name: string): void;
  __RemoteShard: GenServerBehaviour<any, any, any, never, unknown, any>;
}

let impl: Impl | undefined;

async function load(): Promise<Impl> {
  if (impl !== undefined) return impl;
  const m = (await import(pkg)) as Partial<Impl>;
  if (typeof m.__threadInit !== "function" || m.__RemoteShard === undefined) throw new Error(`${pkg} (${import.meta.url}): the package has no spread-shard support; is it built?`);
  return (impl = m as Impl);
}

/** `everyThread` init: this thread's view of tracker `name`. */
export async function trackerThread(ctx: ThreadContext, name: string): Promise<void> {
  (await load()).__threadInit(ctx, name);
}

/** The shard GenServer on a worker thread (delegates to the package's). */
export const trackerShard: GenServerBehaviour<any, any, any, never, unknown, any> = {
  name: "Tracker.Shard",
  async init(arg, self) {
    return (await load()).__RemoteShard.init(arg, self);
  },
  handleCall(req, from, st, self) {
    return impl!.__RemoteShard.handleCall!(req, from, st, self);
  },
  handleInfo(msg, st, self) {
    return impl!.__RemoteShard.handleInfo!(msg, st, self);
  },
  terminate(reason, st, self) {
    return impl!.__RemoteShard.terminate?.(reason, st, self);
  },
};
