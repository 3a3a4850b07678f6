/**
 * A real `redis-server` for tests: on a free 127.0.0.1 port, no persistence, in a temp dir.
 *
 * If `redis-server` is not installed this FAILS (throws) — the test command installs it; tests
 * that need Redis must never be skipped silently.
 *
 * @example
 * ```ts
 * const redis = await startRedis();
 * // ... connect to redis.url ...
 * await redis.restart();   // crash (SIGKILL) and start again on the same port
 * await redis.stop();
 * ```
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { TEST_TLS_CERT, TEST_TLS_KEY } from "./tls.js";

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` (`rediss://` with `tls`) */
  readonly url: string;
  readonly port: number;
  /** With `tls`: the PEM certificate to trust (pass as `tls: { ca }`). */
  readonly ca: string | undefined;
  /** Stops the server (SIGTERM, then SIGKILL after 2 s) and removes its temp dir. */
  stop(): Promise<void>;
  /** Kills the server (SIGKILL, like a crash) and starts a new one on the same port. */
  restart(): Promise<void>;
  /** Kills the server (SIGKILL) and leaves it down until {@link start}. */
  kill(): Promise<void>;
  /** Starts the server again on the same port after {@link kill}. */
  start(): Promise<void>;
}

export interface StartRedisOptions {
  /** Extra `redis-server` arguments, e.g. `["--requirepass", "secret"]`. */
  args?: string[];
  /** How long to wait for the server to accept connections, ms. Default 10000. */
  readyTimeoutMs?: number;
  /** Serve TLS only (self-signed certificate for 127.0.0.1, see `tls.ts`). */
  tls?: boolean;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test worker that dies must not leave redis-servers behind.
  process.on("exit", () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  });
}

/** Path of the redis-server binary, or a loud error saying how to get one. */
export function findRedisServer(): string {
  const candidates = [
    process.env.REDIS_SERVER,
    ...(process.env.PATH ?? "").split(delimiter).filter(Boolean).map((d) => join(d, "redis-server")),
    "/usr/bin/redis-server",
    "/usr/local/bin/redis-server",
    "/usr/sbin/redis-server",
  ];
  for (const c of candidates) {
    if (c === undefined) continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw new Error(
    "redis-server not found (looked in $REDIS_SERVER, $PATH, /usr/bin, /usr/local/bin). " +
      "Install it (apt-get install -y redis-server); `npm test` does this. Redis tests are never skipped.",
  );
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("could not get a free port"));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves true when a PING on 127.0.0.1:port gets +PONG (or an auth error: the server is up). */
function ping(port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const sock: Socket = tls
      ? tlsConnect({ host: "127.0.0.1", port, ca: TEST_TLS_CERT })
      : createConnection({ host: "127.0.0.1", port });
    let buf = "";
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on("error", () => done(false));
    sock.on(tls ? "secureConnect" : "connect", () => sock.write("PING\r\n"));
    sock.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      if (buf.includes("\r\n")) done(buf.startsWith("+PONG") || buf.startsWith("-NOAUTH"));
    });
  });
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const bin = findRedisServer();
  installExitHook();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), "cinder-redis-"));
  let child: ChildProcess | undefined;
  let port = 0;

  const tls = opts.tls === true;
  if (tls) {
    writeFileSync(join(dir, "cert.pem"), TEST_TLS_CERT);
    writeFileSync(join(dir, "key.pem"), TEST_TLS_KEY, { mode: 0o600 });
  }

  const launch = async (): Promise<void> => {
    const listen = tls
      ? ["--port", "0", "--tls-port", String(port), "--tls-cert-file", join(dir, "cert.pem"), "--tls-key-file", join(dir, "key.pem"),
         "--tls-ca-cert-file", join(dir, "cert.pem"), "--tls-auth-clients", "no"]
      : ["--port", String(port)];
    const args = [...listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...(opts.args ?? [])];
    const c = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    live.add(c);
    let output = "";
    c.stdout?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    c.stderr?.on("data", (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    let spawnError: Error | undefined;
    c.on("error", (e) => (spawnError = e));
    c.on("exit", () => live.delete(c));
    child = c;
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (spawnError !== undefined) throw new Error(`could not run ${bin}: ${spawnError.message}`);
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`redis-server exited (code ${c.exitCode}, signal ${c.signalCode}) before accepting connections on port ${port}:\n${output}`);
      }
      if (await ping(port, tls)) return;
      if (Date.now() > deadline) {
        c.kill("SIGKILL");
        throw new Error(`redis-server did not accept connections on 127.0.0.1:${port} within ${readyTimeoutMs} ms:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined) return;
    c.kill("SIGKILL");
    await waitExit(c);
  };

  // The port may be taken between freePort() and redis-server binding it: retry with another.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      await kill();
      if (attempt >= 3 || !/exited/.test(String(err))) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  return {
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    port,
    ca: tls ? TEST_TLS_CERT : undefined,
    async stop() {
      const c = child;
      child = undefined;
      if (c !== undefined) {
        c.kill("SIGTERM");
        const t = setTimeout(() => c.kill("SIGKILL"), 2000);
        await waitExit(c);
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await kill();
      await launch();
    },
    kill,
    async start() {
      if (child !== undefined) return;
      await launch();
    },
  };
}
