/** A comlink endpoint over a Node `MessagePort` / `parentPort` / `Worker` (EventTarget-style). */
import type { Endpoint } from "comlink";

interface NodePortLike {
  postMessage(msg: unknown, transfer?: readonly unknown[]): void;
  on(ev: "message", fn: (data: unknown) => void): unknown;
  off(ev: "message", fn: (data: unknown) => void): unknown;
  start?: () => void;
}

type Listener = ((ev: { data: unknown }) => void) | { handleEvent(ev: { data: unknown }): void };

export function nodeEndpoint(port: NodePortLike): Endpoint {
  const listeners = new WeakMap<object, (data: unknown) => void>();
  return {
    postMessage: (msg: unknown, transfer?: unknown[]) => port.postMessage(msg, transfer as readonly unknown[]),
    addEventListener: (_type: string, handler: Listener) => {
      const fn = (data: unknown) => {
        if ("handleEvent" in handler) handler.handleEvent({ data });
        else handler({ data });
      };
      listeners.set(handler, fn);
      port.on("message", fn);
    },
    removeEventListener: (_type: string, handler: Listener) => {
      const fn = listeners.get(handler);
      if (fn) port.off("message", fn);
      listeners.delete(handler);
    },
    start: port.start?.bind(port),
  } as unknown as Endpoint;
}
