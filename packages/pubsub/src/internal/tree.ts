/**
 * The supervision tree of one PubSub (PUBSUB.md 1.1), like `Phoenix.PubSub.Supervisor`:
 *
 * ```
 * <name>               Supervisor, rest_for_one
 * ├── <name>.tables    owns the per-scheduler tables, on every scheduler thread (a restart empties
 * │                    them; subscribers get its exit signal, as Phoenix subscribers linked to
 * │                    their Registry do)
 * └── <name>.adapter   the adapter, with its receive lanes <name>.adapter.lane1 … laneN linked
 * ```
 *
 * A table restart restarts the adapter (it re-announces an empty interest set under a new
 * session); an adapter or lane crash restarts only the adapter.
 */
import { GenServer, type GenServerBehaviour, type Process, type SupervisorOptions } from "@cinder/runtime";
import type { Adapter } from "./adapter.js";
import { localAdapter } from "./adapter.js";
import type { Instance, Lane, LaneMsg, TablesGen } from "./instance.js";

const TablesServer: GenServerBehaviour<TablesGen, never, never, never, unknown, Instance> = {
  name: "PubSub.Tables",
  async init(inst, self) {
    const gen = inst.openTables(self.pid);
    self.onExit((_pid, reason) => inst.closeTables(gen, reason));
    // worker threads: every part has this generation's table before the tables child is up
    await inst.spreadTables(gen);
    return gen;
  },
};

interface AdapterState {
  adapter: Adapter;
}

const AdapterServer: GenServerBehaviour<AdapterState, never, never, never, unknown, Instance> = {
  name: "PubSub.Adapter",
  async init(inst, self) {
    const lanes: Lane[] = [];
    let adapter: Adapter | null = null;
    let gone = false;
    self.onExit(() => {
      gone = true;
      if (inst.lanes === lanes) inst.lanes = [];
      for (const l of lanes) if (l.proc.alive) l.proc.sched.terminate(l.proc, "shutdown");
      if (adapter !== null) {
        if (inst.adapter === adapter) inst.setAdapter(null);
        stopAdapter(inst, adapter);
      }
    });
    for (let i = 0; i < inst.opts.poolSize; i++) {
      const pid = self.spawnLink<LaneMsg>(inst.laneHandler(), { name: `${inst.adapterName}.lane${i + 1}`, label: "PubSub.Lane" });
      const proc = inst.core.lookup(pid) as Process<LaneMsg> | undefined;
      if (proc === undefined) throw new Error(`lane ${i + 1} did not start`);
      lanes.push({ index: i, proc, frames: 0, dropped: 0 });
    }
    inst.lanes = lanes;
    const factory = inst.opts.adapter ?? localAdapter();
    const a = await factory(inst.adapterContext());
    if (gone) {
      stopAdapter(inst, a);
      throw new Error("adapter exited while starting");
    }
    adapter = a;
    inst.setAdapter(a);
    return { adapter: a };
  },
};

function stopAdapter(inst: Instance, a: Adapter): void {
  try {
    const r = a.stop();
    if (r !== undefined && typeof (r as Promise<void>).then === "function") (r as Promise<void>).catch((e) => inst.logError("adapter stop failed", e));
  } catch (e) {
    inst.logError("adapter stop failed", e);
  }
}

/** @internal the supervisor options of an instance's tree */
export function treeOptions(inst: Instance): SupervisorOptions {
  return {
    strategy: "rest_for_one",
    maxRestarts: 3,
    maxSeconds: 5,
    children: [
      { id: "tables", start: (sup) => GenServer.startLink(sup, TablesServer, inst, { name: `${inst.name}.tables` }) },
      { id: "adapter", start: (sup) => GenServer.startLink(sup, AdapterServer, inst, { name: inst.adapterName }) },
    ],
  };
}
