/** A PubSub node in a child OS process (fixtures/pubsub_node.ts), driven over stdin/stdout. */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { waitFor } from "./harness.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));

export interface ChildNode {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly events: Array<Record<string, unknown>>;
  readonly stderr: string[];
  send(cmd: Record<string, unknown>): void;
  /** Waits for an event matching `pred` not yet consumed, removes and returns it. */
  next(pred: (e: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export function spawnPubSubNode(env: { REDIS_URL: string; NODE_NAME: string; CLUSTER: string; POOL_SIZE?: string; BROADCAST_POOL_SIZE?: string }): ChildNode {
  const tsx = createRequire(join(root, "package.json")).resolve("tsx");
  const fixture = fileURLToPath(new URL("../fixtures/pubsub_node.ts", import.meta.url));
  const proc = spawn(process.execPath, ["--conditions=source", "--import", pathToFileURL(tsx).href, fixture], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const events: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  createInterface({ input: proc.stdout }).on("line", (l) => {
    try {
      events.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      stderr.push(`stdout: ${l}`);
    }
  });
  proc.stderr.on("data", (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return {
    proc,
    events,
    stderr,
    send: (cmd) => void proc.stdin.write(`${JSON.stringify(cmd)}\n`),
    async next(pred, what, timeoutMs = 15_000) {
      const i = await waitFor(
        () => {
          const k = events.findIndex(pred);
          return k >= 0 ? k + 1 : 0;
        },
        { timeoutMs, what: `${what} (child stderr: ${stderr.join("").slice(-500)})` },
      );
      return events.splice(i - 1, 1)[0]!;
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.stdin.end();
        const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
