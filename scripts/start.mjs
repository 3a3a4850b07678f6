#!/usr/bin/env node
// `npm start`: runs the chat server (examples/chat) from a fresh clone with Node and npm only:
// installs the dependencies with pnpm if they are missing, builds, then starts
// examples/chat/dist/main.js, passing the environment through (PORT, HOST, REDIS_URL, …) and
// forwarding SIGINT/SIGTERM so the server drains its sockets gracefully.
import { spawn, spawnSync, execSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join, dirname } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

const run = (cmd, args) => spawnSync(cmd, args, { stdio: "inherit" }).status ?? 1;
const has = (cmd) => {
  try {
    execSync(`command -v ${cmd}`, { stdio: "ignore", shell: "/bin/sh" });
    return true;
  } catch {
    return false;
  }
};

// 1. dependencies (pnpm workspace); npm can always provide pnpm
let pnpm = ["pnpm"];
if (!has("pnpm") && run("npm", ["i", "-g", "pnpm@10"]) !== 0) pnpm = ["npx", "-y", "pnpm@10"];
const pn = (...a) => run(pnpm[0], [...pnpm.slice(1), ...a]);
if (!existsSync(join(root, "node_modules/.modules.yaml")) || !existsSync(join(root, "examples/chat/node_modules/ws"))) {
  if (pn("install", "--frozen-lockfile") !== 0 && pn("install") !== 0) {
    console.error("start: installing dependencies failed");
    process.exit(1);
  }
}

// 2. build
if (run(process.execPath, [join(root, "scripts/build.mjs")]) !== 0) {
  console.error("start: build failed");
  process.exit(1);
}

// 3. run the server
const child = spawn(process.execPath, [join(root, "examples/chat/dist/main.js")], { stdio: "inherit" });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
