/**
 * The thread-init module of `@cinder/pubsub`: `node.everyThread` runs `pubsubThread(ctx, name)`
 * on every worker scheduler thread (now and after each thread start) to install that thread's
 * part of the PubSub `name` (internal/thread_part.ts).
 *
 * It loads the package by its own name (a self-reference), so the part lives in the same module
 * instances as the actor modules of that thread that `import { PubSub } from "@cinder/pubsub"`
 * (the built package): under tsx this file may come from `src/`, but the part never does —
 * two copies would keep two registries of instances and dispatchers.
 */
import type { ThreadContext } from "@cinder/runtime";

const pkg: string = "@cinder/pubsub";

export async function pubsubThread(ctx: ThreadContext, name: string): Promise<void> {
  const m = (await import(pkg)) as { __threadInit?: (ctx: ThreadContext, name: string) => Promise<void> };
  if (typeof m.__threadInit !== "function") throw new Error(`${pkg} (${import.meta.url}): the package has no thread init; is it built?`);
  await m.__threadInit(ctx, name);
}
