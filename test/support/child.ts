/**
 * A child `node` process running a TypeScript fixture through tsx, speaking JSON lines on
 * stdout (the multi-process tests over Redis). Unparseable stdout lines and the tail of stderr
 * are kept for failure messages.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { join } from "node:path";

const root = fileURLToPath(new URL("../..", import.meta.url));

export interface JsonLinesChild<L = Record<string, unknown>> {
  proc: ChildProcessWithoutNullStreams;
  /** Every JSON line the child has printed so far, in order. */
  lines: L[];
  /** Unparseable stdout lines and the last 8 kB of stderr. */
  stderr: () => string;
}

/** Starts `fixture` (a .ts file URL) with `env` added to this process's environment. */
export function spawnTsxChild<L = Record<string, unknown>>(fixture: URL, env: Record<string, string>): JsonLinesChild<L> {
  const tsx = createRequire(join(root, "package.json")).resolve("tsx");
  const proc = spawn(process.execPath, ["--conditions=source", "--import", pathToFileURL(tsx).href, fileURLToPath(fixture)], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const lines: L[] = [];
  let err = "";
  let buf = "";
  proc.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as L);
      } catch {
        err += `[stdout] ${line}\n`;
      }
    }
  });
  proc.stderr.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  return { proc, lines, stderr: () => err };
}
