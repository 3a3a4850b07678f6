/** The piscina worker for dirty jobs: loads the module and calls the export with the args. */
import { loadModule } from "./remote_spawn.js";

export default async function run(job: { module: string; export: string; args: unknown[] }): Promise<unknown> {
  const mod = await loadModule(job.module);
  const fn = mod[job.export];
  if (typeof fn !== "function") throw new Error(`dirty job: ${job.module} has no function export ${job.export}`);
  return (fn as (...a: unknown[]) => unknown)(...job.args);
}
