import { describe, it, expect, afterEach } from "vitest";
import {
  startNode,
  Agent,
  Supervisor,
  Registry,
  ExitError,
  InitError,
  NoProcError,
  AlreadyStartedError,
  silentLogger,
  type CinderNode,
  type DownMessage,
} from "@cinder/runtime";

let node: CinderNode;
afterEach(async () => {
  await node?.stop();
});

async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return true;
}

describe("Agent", () => {
  it("get, update, getAndUpdate and cast apply in the order one caller sends them", async () => {
    node = await startNode({ logger: silentLogger });
    const agent = await Agent.start(node, () => [] as string[]);
    Agent.cast(node, agent, (xs) => [...xs, "cast1"]);
    await Agent.update(node, agent, (xs) => [...xs, "update"]);
    Agent.cast(node, agent, (xs) => [...xs, "cast2"]);
    expect(await Agent.get(node, agent, (xs) => xs.join(","))).toBe("cast1,update,cast2");
    expect(await Agent.getAndUpdate(node, agent, (xs) => [xs.length, []])).toBe(3);
    expect(await Agent.get(node, agent, (xs) => xs)).toEqual([]);
  });

  it("get can return undefined and async functions are awaited inside the agent", async () => {
    node = await startNode({ logger: silentLogger });
    const agent = await Agent.start(node, async () => new Map<string, number>([["a", 1]]));
    expect(await Agent.get(node, agent, (m) => m.get("missing"))).toBeUndefined();
    await Agent.update(node, agent, async (m) => {
      await new Promise((r) => setTimeout(r, 2));
      return new Map([...m, ["b", 2]]);
    });
    expect(await Agent.get(node, agent, async (m) => [...m.keys()])).toEqual(["a", "b"]);
  });

  it("a named agent is reachable by name and by via name; a second start under the name fails", async () => {
    node = await startNode({ logger: silentLogger });
    const agent = await Agent.start(node, () => 1, { name: "one" });
    expect(await Agent.get(node, "one", (n: number) => n + 1)).toBe(2);
    await expect(Agent.start(node, () => 2, { name: "one" })).rejects.toBeInstanceOf(AlreadyStartedError);
    const reg = await Registry.start<string>(node, { keys: "unique" });
    const viaAgent = await Agent.start(node, () => "v", { name: Registry.via(reg, "agent") });
    expect(await Agent.get(node, Registry.via(reg, "agent"), (s: string) => s)).toBe("v");
    expect(viaAgent).not.toBe(agent);
  });

  it("a throwing init rejects the start with InitError", async () => {
    node = await startNode({ logger: silentLogger });
    const err = await Agent.start(node, () => {
      throw new Error("no state");
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InitError);
    expect((err as InitError).reason).toBeInstanceOf(Error);
  });

  it("a function that throws crashes the agent and rejects the call with ExitError", async () => {
    node = await startNode({ logger: silentLogger });
    const agent = await Agent.start(node, () => 0);
    const me = node.process();
    const ref = me.monitor(agent);
    const err = await Agent.update(node, agent, () => {
      throw new Error("bad update");
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExitError);
    const down = (await me.receive({ timeout: 1000 })) as DownMessage;
    expect(down.ref).toBe(ref);
    expect((down.reason as Error).message).toBe("bad update");
    await expect(Agent.get(node, agent, (n) => n)).rejects.toBeInstanceOf(NoProcError);
    expect(() => Agent.cast(node, agent, (n) => n + 1)).not.toThrow();
  });

  it("stop ends the agent with the reason; a call past its timeout rejects with a timeout error", async () => {
    node = await startNode({ logger: silentLogger });
    const agent = await Agent.start(node, () => 0);
    await expect(Agent.get(node, agent, () => new Promise<number>((r) => setTimeout(() => r(1), 60)), 10)).rejects.toMatchObject({ code: "timeout" });
    const me = node.process();
    const ref = me.monitor(agent);
    await Agent.stop(node, agent, "shutdown");
    expect(await me.receive({ timeout: 1000 })).toMatchObject({ type: "DOWN", ref, reason: "shutdown" });
  });

  it("a supervised agent restarts with a fresh state from its init", async () => {
    node = await startNode({ logger: silentLogger });
    await Supervisor.start(node, { children: [Agent.childSpec("counter", () => 100, { name: "counter" })] });
    await Agent.update(node, "counter", (n: number) => n + 1);
    expect(await Agent.get(node, "counter", (n: number) => n)).toBe(101);
    const first = node.whereis("counter")!;
    node.exit(first, "kill");
    expect(await until(() => node.whereis("counter") !== undefined && node.whereis("counter") !== first)).toBe(true);
    expect(await Agent.get(node, "counter", (n: number) => n)).toBe(100);
  });
});
