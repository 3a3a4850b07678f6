/**
 * Dirty work: CPU-heavy jobs on a `piscina` thread pool, off every scheduler, so no scheduler
 * blocks while they run (BEAM's dirty schedulers). A job is named by module and export (a
 * function), with structured-clonable args; its result comes back as a promise or as a message
 * to the asking process. A job that throws (or whose thread dies) fails that job only.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import { CinderError, formatReason } from "./internal/errors.js";
import { coreOf, type Context } from "./internal/request.js";
import { moduleUrl, type ModuleRef } from "./internal/remote_spawn.js";
import type { Process } from "./internal/process.js";
import type { Dest } from "./internal/types.js";

/** The message a process receives from `Dirty.send`. */
export type DirtyResult<T = unknown> = { type: "dirty"; tag: unknown; ok: true; value: T } | { type: "dirty"; tag: unknown; ok: false; error: string };

interface PoolHolder {
  dirtyPool?: { destroy(): Promise<void> };
}

function entry(): string {
  const here = import.meta.url;
  const url = here.includes("/src/") && !here.includes("/dist/") ? new URL("../dist/internal/dirty_worker.js", here) : new URL("./internal/dirty_worker.js", here);
  const path = fileURLToPath(url);
  if (!existsSync(path)) throw new CinderError("badarg", `dirty worker entry ${path} is missing: build the packages first (pnpm build)`);
  return path;
}

function poolFor(ctx: Context): Piscina {
  const holder = coreOf(ctx) as unknown as PoolHolder;
  if (!holder.dirtyPool) {
    holder.dirtyPool = new Piscina({ filename: entry(), minThreads: 0, maxThreads: Math.max(1, availableParallelism()), idleTimeout: 2000 });
  }
  return holder.dirtyPool as Piscina;
}

/**
 * Dirty work functions.
 *
 * @example
 * ```ts
 * import { startNode, Dirty } from "@cinder/runtime";
 * const node = await startNode({ schedulers: 1 });
 * const mod = "data:text/javascript,export const square = (n) => n * n;";
 * console.log(await Dirty.run(node, { module: mod, export: "square" }, [12])); // 144
 * await node.stop();
 * ```
 */
export const Dirty = {
  /** Runs the job on the dirty pool; resolves with its result, rejects with its error. */
  run<T = unknown>(ctx: Context, ref: ModuleRef, args: unknown[]): Promise<T> {
    return poolFor(ctx).run({ module: moduleUrl(ref.module), export: ref.export, args }) as Promise<T>;
  },
  /** Runs the job and sends its `DirtyResult` (with `tag`) to `to` (default: the asking process). */
  send(self: Process<any>, ref: ModuleRef, args: unknown[], tag?: unknown, to?: Dest<DirtyResult>): void {
    const dest = to ?? self.pid;
    const core = coreOf(self);
    Dirty.run(self, ref, args).then(
      (value) => core.send(dest, { type: "dirty", tag, ok: true, value } as DirtyResult),
      (e) => core.send(dest, { type: "dirty", tag, ok: false, error: formatReason(e) } as DirtyResult),
    );
  },
};
