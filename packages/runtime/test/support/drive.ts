/**
 * Driving a `puppet` fixture from a test's driver process.
 */
import type { Pid, Process } from "@cinder/runtime";
import { expectMsg } from "./deadline.js";
import type { Forwarded, PuppetCmd } from "./fixtures.js";

/** Sends `cmd` to the puppet and waits for its ack (which it returns). */
export async function ask<T = Record<string, unknown>>(me: Process<any>, puppet: Pid, cmd: PuppetCmd): Promise<T> {
  me.send(puppet, cmd);
  return expectMsg<T>(me, (m) => m?.ack === cmd.cmd && m.from === puppet, `ack of ${cmd.cmd} from ${puppet}`);
}

/** Waits for the puppet to forward a message matching `match` (an EXIT, a DOWN, …). */
export async function forwarded<T = any>(me: Process<any>, puppet: Pid, match: (m: any) => boolean = () => true, what = "a forwarded message"): Promise<T> {
  const f = await expectMsg<Forwarded>(me, (x) => x?.fwd === puppet && match(x.m), what);
  return f.m as T;
}

/** Matches a forwarded message from `puppet` (for `expectNoMsg`). */
export function fwdFrom(puppet: Pid, match: (m: any) => boolean = () => true): (x: any) => boolean {
  return (x) => x?.fwd === puppet && match(x.m);
}
