#!/usr/bin/env node
// Runs every bench/*.bench.mjs in its own `node --expose-gc` child process, then prints a
// summary of bench/results/<suite>.json for the suites that ran.
//
//   node scripts/bench.mjs              # every suite
//   node scripts/bench.mjs runtime      # suites whose file name contains "runtime"
//
// Suites import the BUILT packages (packages/*/dist), so run `pnpm build` first
// (`pnpm bench` does). Environment passes through (BENCH_RUNS, BENCH_SCALE, BENCH_CASES, …).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join, basename } from "node:path";
import { fmt, table } from "../bench/lib.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const benchDir = join(root, "bench");
const filters = process.argv.slice(2).filter((a) => !a.startsWith("-"));

const suites = readdirSync(benchDir)
  .filter((f) => f.endsWith(".bench.mjs"))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

if (suites.length === 0) {
  console.error(`no bench/*.bench.mjs matches ${filters.join(", ") || "(none present)"}`);
  process.exit(1);
}
if (!existsSync(join(root, "packages/runtime/dist/index.js"))) {
  console.error("packages/runtime/dist is missing: run `pnpm build` first (or `pnpm bench`)");
  process.exit(1);
}

const summary = [];
const failed = [];
for (const file of suites) {
  const suite = basename(file, ".bench.mjs");
  const partial = ["BENCH_CASES", "BENCH_SCALE", "BENCH_RUNTIME", "BENCH_RUNS"].some((k) => process.env[k] !== undefined);
  const resultFile = join(benchDir, "results", `${suite}${partial ? ".partial" : ""}.json`);
  const startedAt = Date.now();
  console.log(`\n=== ${suite} (${file}) ===`);
  const r = spawnSync(process.execPath, ["--expose-gc", join(benchDir, file)], { stdio: "inherit", cwd: root, env: process.env });
  const secs = ((Date.now() - startedAt) / 1000).toFixed(1);
  const fresh = existsSync(resultFile) && statSync(resultFile).mtimeMs >= startedAt - 1000;
  if (r.status !== 0 || !fresh) {
    failed.push(suite);
    console.error(`!!! ${suite} ${r.status !== 0 ? `exited with ${r.status ?? r.signal}` : "wrote no results"} after ${secs} s`);
    continue;
  }
  for (const row of JSON.parse(readFileSync(resultFile, "utf8"))) summary.push(row);
  console.log(`=== ${suite} done in ${secs} s`);
}

if (summary.length) {
  console.log("\n# Summary (median [min–max])\n");
  const rows = summary.map((r) => [
    r.suite,
    r.case,
    r.metric,
    r.min !== undefined ? `${fmt(r.value)} [${fmt(r.min)}–${fmt(r.max)}]` : fmt(r.value),
    r.unit ?? "",
    r.ref ?? "",
  ]);
  console.log(table(["suite", "case", "metric", "median [min–max]", "unit", "reference"], rows));
}
console.log(`\n${suites.length - failed.length} suite(s) ok${failed.length ? `, ${failed.length} failed: ${failed.join(", ")}` : ""}`);
process.exit(failed.length ? 1 : 0);
