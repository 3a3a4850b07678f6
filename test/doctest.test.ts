/**
 * Doc-tests: every ```ts block inside a /** *\/ doc comment of packages/*\/src/**\/*.ts, and
 * every ```ts block of the root README.md, is written to node_modules/.cache/doctest/ as a
 * module of its own and imported (vitest transforms it; `@cinder/*` imports resolve through
 * the aliases of vitest.config.ts). Each line of the form
 *
 *     console.log(x); // <expected>
 *
 * must have printed `<expected>`: JSON or a JS literal (`{ ok: "late" }`, `42n`,
 * `new Set(["a"])`, `undefined`) compared with deep equality, or the JSON-ish display of the
 * value for what JSON cannot show (`{ exit: Error: boom }`). Prose may follow the value
 * (`// 1 (the version byte)`, `// true: deliver`). A checked line that never ran fails the
 * example, as does an example that throws. Other `console.log` calls are captured and shown
 * only when the example fails. One test per example: `<file>:<export> example`; one more test
 * type-checks every example as written (strict; errors are reported at their source line).
 *
 * Examples importing `@cinder/redis` get a real redis-server as `process.env.REDIS_URL`.
 */
import { afterAll, describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { inspect } from "node:util";
import { startRedis, type RedisServer } from "./support/redis.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const cacheDir = join(root, "node_modules/.cache/doctest");

interface Example {
  /** repo-relative source file */
  file: string;
  /** the export (or `Class.member`, `(module)`, a README section) the example documents */
  name: string;
  /** 1-based line of the example's first code line in the source */
  line: number;
  code: string;
}

// ---- extraction ------------------------------------------------------------------------------

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

function sourceFiles(): string[] {
  const pk = join(root, "packages");
  return readdirSync(pk, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => walk(join(pk, d.name, "src")))
    .sort();
}

const lineAt = (text: string, index: number) => text.slice(0, index).split("\n").length;

/** ```ts / ```typescript blocks of a markdown-ish text: [first code line index (0-based), code]. */
function codeBlocks(lines: string[]): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s*```(ts|typescript)\s*$/.test(lines[i]!)) continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j]!)) j++;
    if (j < lines.length) out.push([start, lines.slice(start, j).join("\n")]);
    i = j;
  }
  return out;
}

const DECL = /^\s*export\s+(?:declare\s+)?(?:default\s+)?(?:abstract\s+)?(?:async\s+)?(?:class|function\*?|const|let|var|interface|type|enum|namespace)\s+([A-Za-z_$][\w$]*)/;
const MEMBER = /^\s*(?:(?:public|private|protected|static|readonly|async|override|get|set)\s+)*\*?\s*([A-Za-z_$][\w$]*)\s*[(<:=?]/;
const CONTAINER = /^export\s+(?:declare\s+)?(?:default\s+)?(?:abstract\s+)?(?:class|const|interface|namespace)\s+([A-Za-z_$][\w$]*)/;

/** The name a doc comment documents: the declaration after it, or `Container.member`. */
function documentedName(text: string, commentStart: number, commentEnd: number): string {
  const after = text.slice(commentEnd).split("\n").map((l) => l.trim() === "" ? null : l);
  const next = after.slice(1).find((l) => l !== null) ?? "";
  const decl = DECL.exec(next);
  if (decl) return decl[1]!;
  const indented = /^[ \t]+\/\*\*/.test(text.slice(text.lastIndexOf("\n", commentStart) + 1, commentStart + 3));
  const member = MEMBER.exec(next);
  if (indented && member) {
    const before = text.slice(0, commentStart).split("\n");
    for (let i = before.length - 1; i >= 0; i--) {
      const c = CONTAINER.exec(before[i]!);
      if (c) return `${c[1]}.${member[1]}`;
    }
    return member[1]!;
  }
  return "(module)";
}

function extract(): Example[] {
  const out: Example[] = [];
  for (const abs of sourceFiles()) {
    const text = readFileSync(abs, "utf8");
    const file = relative(root, abs);
    for (const m of text.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
      const body = m[0].slice(3, -2).split("\n").map((l) => l.replace(/^\s*\* ?/, ""));
      const blocks = codeBlocks(body);
      if (blocks.length === 0) continue;
      const name = documentedName(text, m.index!, m.index! + m[0].length);
      const commentLine = lineAt(text, m.index!);
      for (const [start, code] of blocks) out.push({ file, name, line: commentLine + start, code });
    }
  }
  const readme = join(root, "README.md");
  if (existsSync(readme)) {
    const lines = readFileSync(readme, "utf8").split("\n");
    for (const [start, code] of codeBlocks(lines)) {
      let section = "(top)";
      for (let i = start; i >= 0; i--) {
        const h = /^#{1,6}\s+(.*)$/.exec(lines[i]!);
        if (h) {
          section = h[1]!.trim();
          break;
        }
      }
      out.push({ file: "README.md", name: section, line: start + 1, code });
    }
  }
  return out;
}

// ---- instrumentation and checking -----------------------------------------------------------

interface Check {
  line: number;
  expected: string;
}

/** Rewrites every `console.log(` to a capturing call tagged with its line; collects checks. */
function instrument(code: string, id: string): { source: string; checks: Check[] } {
  const checks: Check[] = [];
  const lines = code.split("\n").map((l, i) => {
    if (!l.includes("console.log(")) return l;
    const line = i + 1;
    const tail = /^(.*console\.log\(.*?)\s*\/\/\s?(.*\S)\s*$/.exec(l);
    let codePart = l;
    let comment = "";
    if (tail && !/^\s*\/\//.test(l)) {
      codePart = tail[1]!;
      comment = l.slice(codePart.length);
      checks.push({ line, expected: tail[2]! });
    }
    return codePart.replaceAll("console.log(", `(globalThis as any).__cinderDoctest[${JSON.stringify(id)}](${line}, `) + comment;
  });
  return { source: lines.join("\n") + "\n", checks };
}

/** Parses a JS literal (JSON is a subset): `{ ok: "late" }`, `42n`, `new Set([1])`, `undefined`. */
function tryParse(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    // not JSON
  }
  try {
    return { ok: true, value: new Function(`"use strict"; return (${text});`)() };
  } catch {
    return { ok: false };
  }
}

/** A JSON-ish rendering for values JSON cannot show: `Error: boom`, `42n`, `Set {"a"}`. */
function display(v: unknown, depth = 0): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "symbol") return v.description ?? String(v);
  if (v === null || typeof v !== "object") return String(v);
  if (depth > 8) return "…";
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  if (Array.isArray(v)) return `[${v.map((x) => display(x, depth + 1)).join(", ")}]`;
  if (v instanceof Set) return `Set {${[...v].map((x) => display(x, depth + 1)).join(", ")}}`;
  if (v instanceof Map) return `Map {${[...v].map(([k, x]) => `${display(k, depth + 1)} => ${display(x, depth + 1)}`).join(", ")}}`;
  const key = (k: string) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k));
  return `{ ${Object.entries(v).map(([k, x]) => `${key(k)}: ${display(x, depth + 1)}`).join(", ")} }`;
}

const squash = (s: string) => s.replace(/\s+/g, "").replace(/'/g, '"');

/**
 * Does `actual` match the comment? The comment is the value, optionally followed by prose
 * (`// 1 (the version byte)`, `// true: deliver`): the longest leading part that matches wins.
 * A part matches if it parses to a deep-equal value, or equals the JSON-ish display of
 * `actual` (`{ exit: Error: boom }`), or, for a string, is that string unquoted.
 */
function matches(actual: unknown, comment: string): boolean {
  const words = comment.trim().split(/\s+/);
  for (let n = words.length; n >= 1; n--) {
    const cand = words.slice(0, n).join(" ").replace(/[,;:.]$/, (c) => (n === words.length ? c : ""));
    if (squash(display(actual)) === squash(cand)) return true;
    if (typeof actual === "string" && actual === cand) return true;
    const p = tryParse(cand);
    if (p.ok) {
      try {
        expect(actual).toEqual(p.value);
        return true;
      } catch {
        // try a shorter part
      }
    }
  }
  return false;
}

const show = (v: unknown) => inspect(v, { depth: 6, breakLength: Infinity });

// ---- tests ---------------------------------------------------------------------------------

const examples = extract();
mkdirSync(cacheDir, { recursive: true });
const registry = ((globalThis as any).__cinderDoctest ??= {}) as Record<string, (line: number, ...args: unknown[]) => void>;

/** Examples that use `@cinder/redis` get a real redis-server (one for the file) as REDIS_URL. */
let redis: Promise<RedisServer> | undefined;
async function environmentFor(code: string): Promise<void> {
  if (code.includes("@cinder/redis")) {
    redis ??= startRedis();
    process.env.REDIS_URL = (await redis).url;
  }
}
afterAll(async () => {
  if (redis) await (await redis).stop();
});

interface Prepared extends Example {
  title: string;
  id: string;
  path: string;
  checks: Check[];
}

/** Writes every example's module up front (the type-check reads them all at once). */
function prepare(list: Example[]): Prepared[] {
  const seen = new Map<string, number>();
  return list.map((ex) => {
    const base = `${ex.file}:${ex.name} example`;
    const k = (seen.get(base) ?? 0) + 1;
    seen.set(base, k);
    const id = createHash("sha1").update(ex.file + "\0" + ex.line + "\0" + ex.code).digest("hex").slice(0, 12);
    const { source, checks } = instrument(ex.code, id);
    const path = join(cacheDir, `${ex.file.replace(/[^\w.-]+/g, "_")}__L${ex.line}__${id}.ts`);
    writeFileSync(path, `// from ${ex.file}:${ex.line} (${ex.name})\n${source}`);
    return { ...ex, title: k === 1 ? base : `${base} #${k}`, id, path, checks };
  });
}

const prepared = prepare(examples);

/** Type-checks the examples as written (strict, `@cinder/*` → sources); errors inside examples only. */
function typeErrors(list: Prepared[]): string[] {
  const config = join(cacheDir, "tsconfig.json");
  const pkgs = ["runtime", "pubsub", "tracker", "presence", "redis"];
  writeFileSync(
    config,
    JSON.stringify({
      extends: join(root, "tsconfig.base.json"),
      compilerOptions: {
        noEmit: true,
        composite: false,
        declaration: false,
        declarationMap: false,
        rootDir: root,
        paths: Object.fromEntries(pkgs.map((p) => [`@cinder/${p}`, [join(root, `packages/${p}/src/index.ts`)]])),
      },
      files: list.map((e) => e.path),
    }),
  );
  const r = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", config, "--pretty", "false"], { encoding: "utf8" });
  const byPath = new Map(list.map((e) => [e.path, e]));
  const out: string[] = [];
  for (const line of (r.stdout + r.stderr).split("\n")) {
    const m = /^(.*?\.ts)\((\d+),(\d+)\): (error .*)$/.exec(line.trim());
    if (!m) continue;
    const ex = byPath.get(resolve(m[1]!));
    // line 1 of the generated file is the "// from" header
    if (ex) out.push(`${ex.file}:${ex.line + Number(m[2]) - 2}: ${m[4]}`);
  }
  return out;
}

describe("doc examples", () => {
  it("finds examples to run", () => {
    expect(prepared.length).toBeGreaterThan(0);
  });

  it("every example type-checks (strict)", () => {
    const errors = typeErrors(prepared);
    expect(errors, errors.join("\n")).toEqual([]);
  }, 120_000);

  for (const ex of prepared) {
    it(ex.title, async () => {
      const { id, path, checks } = ex;
      const printed: Array<{ line: number; args: unknown[] }> = [];
      registry[id] = (line, ...args) => {
        printed.push({ line, args });
      };
      const where = (line: number) => `${ex.file}:${ex.line + line - 1}`;
      const transcript = () =>
        printed.length ? "\nprinted:\n" + printed.map((p) => `  ${where(p.line)}: ${p.args.map(show).join(" ")}`).join("\n") : "\n(nothing printed)";
      await environmentFor(ex.code);
      try {
        await import(pathToFileURL(path).href);
      } catch (e) {
        throw new Error(`example at ${ex.file}:${ex.line} threw: ${e instanceof Error ? (e.stack ?? e.message) : show(e)}${transcript()}\nrun: ${path}`);
      }
      // a log from a callback may land just after the module settles
      await new Promise((r) => setTimeout(r, 0));
      const problems: string[] = [];
      for (const c of checks) {
        const calls = printed.filter((p) => p.line === c.line).map((p) => (p.args.length === 1 ? p.args[0] : p.args));
        if (calls.length === 0) problems.push(`${where(c.line)}: console.log never ran (expected ${c.expected})`);
        else if (calls.length === 1 ? !matches(calls[0], c.expected) : !matches(calls, c.expected) && !calls.every((v) => matches(v, c.expected)))
          problems.push(`${where(c.line)}: printed ${calls.map(show).join(", ")}, expected ${c.expected}`);
      }
      delete registry[id];
      if (problems.length) throw new Error(problems.join("\n") + transcript() + `\nrun: ${path}`);
    });
  }
});
