#!/usr/bin/env node
// The README's test command (`npm test`): installs what the tests need, builds, runs every
// test, and ends with one plain line "N passed, N failed[, N skipped]".
// Works on a fresh machine with Node and npm only.
import { spawnSync, execSync } from "node:child_process";
import { existsSync, readFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join, dirname } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: "inherit", ...opts });
  return r.status ?? 1;
}
function has(cmd) {
  try { execSync(`command -v ${cmd}`, { stdio: "ignore", shell: "/bin/sh" }); return true; } catch { return false; }
}

// 1. pnpm (corepack is not usable on every machine; npm can always install it).
let pnpm = ["pnpm"];
if (!has("pnpm")) {
  if (run("npm", ["i", "-g", "pnpm@10"]) !== 0) pnpm = ["npx", "-y", "pnpm@10"];
}
const pn = (...a) => run(pnpm[0], [...pnpm.slice(1), ...a]);

// 2. dependencies
if (!existsSync(join(root, "node_modules/.modules.yaml")) || process.env.CINDER_FORCE_INSTALL) {
  if (pn("install", "--frozen-lockfile") !== 0) pn("install");
}

// 3. system services the tests use for real: redis-server and Debian chromium.
const wantApt = [];
if (!has("redis-server")) wantApt.push("redis-server");
if (!existsSync("/usr/bin/chromium")) wantApt.push("chromium");
if (wantApt.length) {
  const sudo = process.getuid?.() === 0 ? [] : has("sudo") ? ["sudo", "-n"] : null;
  if (sudo) {
    const apt = (...a) => run(sudo[0] ?? "apt-get", sudo.length ? ["apt-get", ...a] : a, { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    apt("update", "-qq");
    apt("install", "-y", "-qq", ...wantApt);
  } else {
    console.error(`cannot install ${wantApt.join(", ")}: not root and no sudo`);
  }
}

// 4. build (workers load the built JS; see docs/ARCHITECTURE-NOTES.md)
if (pn("build") !== 0) {
  console.log("0 passed, 1 failed");
  process.exit(1);
}

// 5. tests
mkdirSync(join(root, "node_modules/.cache"), { recursive: true });
const out = join(root, "node_modules/.cache/vitest-results.json");
const extra = process.argv.slice(2);
const status = run(process.execPath, [join(root, "node_modules/vitest/vitest.mjs"), "run", "--reporter=default", "--reporter=json", `--outputFile=${out}`, ...extra]);
let passed = 0, failed = 0, skipped = 0;
try {
  const j = JSON.parse(readFileSync(out, "utf8"));
  passed = j.numPassedTests ?? 0;
  failed = (j.numFailedTests ?? 0);
  skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  // a file that fails to load counts as a failure
  const brokenSuites = (j.testResults ?? []).filter((s) => s.status === "failed" && (s.assertionResults ?? []).length === 0).length;
  failed += brokenSuites;
} catch {
  failed = Math.max(failed, 1);
}
if (status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed ? 1 : 0);
