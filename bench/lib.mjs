// Shared helpers for bench/*.bench.mjs suites (not a suite itself: the runner only picks up
// files ending in .bench.mjs). A suite measures cases with `measure`, then calls `report`,
// which prints a table and writes bench/results/<suite>.json (<suite>.partial.json for a
// filtered or scaled run) as an array of
// { suite, case, metric, value, unit, min, max, runs } (value = median).
import { writeFileSync, mkdirSync, renameSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "results");

/** Forces full GCs (the runner starts suites with --expose-gc). */
export async function gc() {
  if (typeof globalThis.gc !== "function") throw new Error("run with node --expose-gc");
  // Let pending microtasks/immediates settle so nothing transient is counted.
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    globalThis.gc();
  }
}

export function mem() {
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss, external: m.external };
}

export const now = () => performance.now();

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Collects samples per (case, metric) and renders the summary. */
export class Suite {
  constructor(name, { runs = Number(process.env.BENCH_RUNS ?? 5) } = {}) {
    this.name = name;
    this.runs = runs;
    this.rows = new Map(); // key → { case, metric, unit, samples, ref }
    this.notes = [];
  }

  /** Records one sample. `ref` is an optional reference figure string (e.g. BEAM's). */
  add(caseName, metric, value, unit, ref) {
    const key = `${caseName}\u0000${metric}`;
    let r = this.rows.get(key);
    if (!r) this.rows.set(key, (r = { case: caseName, metric, unit, samples: [], ref }));
    r.samples.push(value);
  }

  note(s) {
    this.notes.push(s);
  }

  /**
   * Runs `fn` once untimed as a warm-up (with `warm` as its argument), then `runs` times; each
   * run returns `{ [metric]: [value, unit, ref?] }` or an array of [case, metric, value, unit, ref?].
   */
  async measure(caseName, fn, { warm, arg, runs = this.runs, log = true } = {}) {
    if (warm !== undefined) await fn(warm, true);
    for (let i = 0; i < runs; i++) {
      const out = await fn(arg, false);
      const parts = [];
      for (const row of Array.isArray(out) ? out : Object.entries(out).map(([m, v]) => [caseName, m, ...v])) {
        const [c, m, v, u, ref] = row;
        this.add(c, m, v, u, ref);
        parts.push(`${m}=${fmt(v)}${u ? " " + u : ""}`);
      }
      if (log) console.error(`  [${this.name}] ${caseName} run ${i + 1}/${runs}: ${parts.join(", ")}`);
    }
  }

  results() {
    return [...this.rows.values()].map((r) => ({
      suite: this.name,
      case: r.case,
      metric: r.metric,
      value: round(median(r.samples)),
      unit: r.unit,
      min: round(Math.min(...r.samples)),
      max: round(Math.max(...r.samples)),
      runs: r.samples.length,
      ...(r.ref ? { ref: r.ref } : {}),
    }));
  }

  /**
   * Prints the table and writes bench/results/<suite>.json (atomically). A partial or altered
   * run (BENCH_CASES, BENCH_SCALE, BENCH_RUNTIME or BENCH_RUNS set) writes <suite>.partial.json
   * instead, so it never replaces the figures of a full run.
   */
  report() {
    const res = this.results();
    const head = ["case", "metric", "median [min–max]", "unit", "reference"];
    const body = res.map((r) => [r.case, r.metric, `${fmt(r.value)} [${fmt(r.min)}–${fmt(r.max)}]`, r.unit, r.ref ?? ""]);
    console.log(`\n## ${this.name} (median [min–max] of ${this.runs} runs; Node ${process.version})\n`);
    console.log(table(head, body));
    for (const n of this.notes) console.log(`- ${n}`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const partial = ["BENCH_CASES", "BENCH_SCALE", "BENCH_RUNTIME", "BENCH_RUNS"].some((k) => process.env[k] !== undefined);
    const file = join(RESULTS_DIR, `${this.name}${partial ? ".partial" : ""}.json`);
    writeFileSync(file + ".tmp", JSON.stringify(res, null, 2) + "\n");
    renameSync(file + ".tmp", file);
    console.log(`\nwrote ${file}`);
    return res;
  }
}

export function round(v) {
  if (!Number.isFinite(v)) return v;
  const a = Math.abs(v);
  const digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : 4;
  return Number(v.toFixed(digits));
}

/** Human format: 2.83 M, 351 k, 0.353. */
export function fmt(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e8 ? 0 : 2)} M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(a >= 1e5 ? 0 : 1)} k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

export function table(head, rows) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(w[i])).join(" | ")} |`;
  return [line(head), `|${w.map((n) => "-".repeat(n + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** Yields to the event loop once. */
export const tick = () => new Promise((r) => setImmediate(r));

/** A free loopback TCP port. */
export async function freePort() {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
}

/** Starts a throwaway redis-server on a free loopback port; resolves once it answers PING. */
export async function startRedis(extraArgs = []) {
  const { spawn } = await import("node:child_process");
  const { createConnection } = await import("node:net");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "cinder-bench-redis-"));
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extraArgs], { stdio: "ignore" });
  const deadline = performance.now() + 10_000;
  for (;;) {
    const ok = await new Promise((r) => {
      const s = createConnection({ host: "127.0.0.1", port });
      s.on("error", () => r(false));
      s.on("connect", () => s.write("PING\r\n"));
      s.on("data", (d) => {
        s.destroy();
        r(d.toString().startsWith("+PONG"));
      });
    });
    if (ok) break;
    if (performance.now() > deadline) throw new Error("redis-server did not start");
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
