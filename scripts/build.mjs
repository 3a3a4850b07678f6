#!/usr/bin/env node
// `pnpm build`: TypeScript project build (ESM + .d.ts) of every package that has sources yet.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join, dirname } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const projects = ["packages/runtime", "packages/redis", "packages/pubsub", "packages/tracker", "packages/presence", "examples/chat"].filter(
  (p) => existsSync(join(root, p, "tsconfig.json")) && (existsSync(join(root, p, "src/index.ts")) || existsSync(join(root, p, "src/main.ts"))),
);
const tsc = join(root, "node_modules/typescript/bin/tsc");
const r = spawnSync(process.execPath, [tsc, "-b", ...projects, ...process.argv.slice(2)], { stdio: "inherit", cwd: root });
process.exit(r.status ?? 1);
