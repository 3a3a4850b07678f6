/**
 * Can a message cross to another thread (structured clone)? Asked once per broadcast that has a
 * destination on another scheduler thread, before anything is sent, so that a message that
 * cannot be cloned reaches no other thread at all and the broadcaster gets a typed error
 * (PUBSUB.md 2.7, P41) instead of a drop in the data plane's flush.
 *
 * Cheap for the common shapes: primitives need no work; plain objects and arrays are walked
 * (a budget of nodes, no allocation). Anything else (class instances, Map, Date, typed arrays,
 * a cycle or a big message that exhausts the budget) is decided by a real `structuredClone`.
 */
import { types } from "node:util";

const WALK_BUDGET = 256;

/** True if `v` survives `structuredClone` (and so `postMessage`). */
export function cloneable(v: unknown): boolean {
  const t = typeof v;
  if (t !== "object" && t !== "function" && t !== "symbol") return true;
  if (v === null) return true;
  if (t !== "object") return false;
  budget = WALK_BUDGET;
  const r = walk(v as object);
  if (r !== UNSURE) return r === YES;
  try {
    structuredClone(v);
    return true;
  } catch {
    return false;
  }
}

const YES = 1;
const NO = 0;
const UNSURE = 2;
let budget = 0;

function walk(o: object): number {
  if (--budget < 0) return UNSURE;
  const proto = Object.getPrototypeOf(o);
  if (Array.isArray(o)) {
    if (proto !== Array.prototype || types.isProxy(o)) return UNSURE;
    for (let i = 0; i < o.length; i++) {
      const r = value(o[i]);
      if (r !== YES) return r;
    }
    return YES;
  }
  if ((proto !== Object.prototype && proto !== null) || types.isProxy(o)) return UNSURE;
  for (const k in o) {
    if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
    const r = value((o as Record<string, unknown>)[k]);
    if (r !== YES) return r;
  }
  return YES;
}

function value(v: unknown): number {
  const t = typeof v;
  if (t === "object") return v === null ? YES : walk(v as object);
  if (t === "function" || t === "symbol") return NO;
  return YES;
}
