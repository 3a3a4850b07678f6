/**
 * Thread services: node-wide services that keep a part on every scheduler thread (PubSub's
 * per-scheduler tables, registries' replicas) talk through here.
 *
 * - A service registers a handler under a name on each thread (`on`); `send(index, name, data)`
 *   reaches that thread's handler, in order with the messages this thread sent to that
 *   scheduler before (the service message rides the data plane's batch); `broadcast` reaches
 *   every other live scheduler.
 * - `CinderNode.everyThread({ module, export }, args)` runs an init export `(ctx, ...args)` on
 *   every worker thread, now and on every thread started later (restarts included), so a
 *   service can install its handlers there.
 * - `onSchedulerDown` tells every thread's service parts that a scheduler thread died (after
 *   links and monitors to its processes fired).
 */
import type { NodeCore } from "./node_core.js";

/** A service handler: `data` as sent, and the index of the sending scheduler. */
export type ServiceHandler = (data: unknown, fromIndex: number) => void;

/** What a thread-service part sees of its thread. */
export interface ThreadContext {
  /** This thread's scheduler index (0 = main thread). */
  readonly index: number;
  /** The kernel of this thread. */
  readonly core: NodeCore;
  /** Sends to scheduler `index`'s handler for `name`; false if that scheduler is down. */
  send(index: number, name: string, data: unknown): boolean;
  /** Sends to every other live scheduler. */
  broadcast(name: string, data: unknown): void;
  /** Indexes of the live schedulers, this one included. */
  schedulers(): number[];
  /** Installs this thread's handler for `name`; returns a function that removes it. */
  on(name: string, handler: ServiceHandler): () => void;
  /** Called with the index of a scheduler thread that died. */
  onSchedulerDown(handler: (index: number) => void): () => void;
}

/** @internal the transport below a ThreadServices (the mesh, once there are worker threads) */
export interface ServiceLink {
  service(index: number, name: string, data: unknown): boolean;
  live(): number[];
}

export class ThreadServices implements ThreadContext {
  readonly core: NodeCore;
  link: ServiceLink | null = null;
  private readonly handlers = new Map<string, ServiceHandler>();
  private readonly downs = new Set<(index: number) => void>();

  constructor(core: NodeCore) {
    this.core = core;
  }

  get index(): number {
    return this.core.main.index;
  }

  send(index: number, name: string, data: unknown): boolean {
    if (index === this.index) {
      queueMicrotask(() => this.dispatch(name, data, index));
      return true;
    }
    return this.link?.service(index, name, data) ?? false;
  }

  broadcast(name: string, data: unknown): void {
    for (const i of this.schedulers()) if (i !== this.index) this.send(i, name, data);
  }

  schedulers(): number[] {
    return this.link ? this.link.live() : [this.index];
  }

  on(name: string, handler: ServiceHandler): () => void {
    this.handlers.set(name, handler);
    return () => {
      if (this.handlers.get(name) === handler) this.handlers.delete(name);
    };
  }

  onSchedulerDown(handler: (index: number) => void): () => void {
    this.downs.add(handler);
    return () => this.downs.delete(handler);
  }

  /** @internal */
  dispatch(name: string, data: unknown, from: number): void {
    const h = this.handlers.get(name);
    if (h === undefined) {
      this.core.logger.warn(`scheduler ${this.index}: no service ${name} (message from scheduler ${from} dropped)`);
      return;
    }
    try {
      h(data, from);
    } catch (e) {
      this.core.logger.error(`scheduler ${this.index}: service ${name} threw: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  /** @internal */
  schedulerDown(index: number): void {
    for (const h of [...this.downs]) {
      try {
        h(index);
      } catch (e) {
        this.core.logger.error(`scheduler-down hook threw: ${(e as Error)?.message ?? String(e)}`);
      }
    }
  }
}
