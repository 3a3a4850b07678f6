/**
 * Test clients: phoenix.js in Node (CHANNELS.md §7: `transport: WebSocket` from `ws`, an absolute
 * URL, short timeouts) and a raw `ws` client that writes frames by hand.
 */
import { Socket, type Channel, type SocketConnectOption } from "phoenix";
import WebSocket from "ws";

export type Frame = [string | null, string | null, string, string, unknown];

/** Polls `cond` until it is truthy; rejects with `what` after `timeoutMs`. */
export async function waitFor<T>(cond: () => T | undefined | null | false, what = "condition", timeoutMs = 5000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A short pause to let something that must NOT happen have its chance (bounded, small). */
export function settle(ms = 100): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const sockets = new Set<Socket>();

/** A phoenix.js Socket for Node with test-friendly timings. `disconnectAll` ends them. */
export function phxSocket(url: string, opts: Partial<SocketConnectOption> = {}): Socket {
  const s = new Socket(url, {
    transport: WebSocket as unknown as SocketConnectOption["transport"],
    timeout: 1000,
    heartbeatIntervalMs: 30_000,
    rejoinAfterMs: () => 50,
    reconnectAfterMs: () => 20,
    ...opts,
  });
  sockets.add(s);
  return s;
}

/** Connects and resolves once open. */
export async function connected(s: Socket): Promise<Socket> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("socket did not open")), 5000);
    s.onOpen(() => {
      clearTimeout(t);
      resolve();
    });
    s.connect();
  });
  return s;
}

/** Leaves every channel and disconnects every socket made with `phxSocket`. */
export async function disconnectAll(): Promise<void> {
  for (const s of sockets) {
    for (const ch of (s as unknown as { channels: Channel[] }).channels.slice()) ch.leave(50);
    s.disconnect();
  }
  sockets.clear();
}

export interface PushResult {
  status: string;
  response: any;
}

/** Joins; resolves with `{status, response}` for ok and error, rejects on timeout. */
export function joinResult(ch: Channel, timeout?: number): Promise<PushResult> {
  return new Promise((resolve, reject) => {
    ch.join(timeout)
      .receive("ok", (response: unknown) => resolve({ status: "ok", response }))
      .receive("error", (response: unknown) => resolve({ status: "error", response }))
      .receive("timeout", () => reject(new Error(`join of ${ch.topic} timed out`)));
  });
}

/** Joins and expects ok; resolves with the response. */
export async function joinOk(ch: Channel, timeout?: number): Promise<any> {
  const r = await joinResult(ch, timeout);
  if (r.status !== "ok") throw new Error(`join of ${ch.topic} failed: ${JSON.stringify(r.response)}`);
  return r.response;
}

/** Pushes; resolves with the reply (`status` "timeout" if none came). */
export function push(ch: Channel, event: string, payload: object, timeout?: number): Promise<PushResult> {
  return new Promise((resolve) => {
    const p = ch.push(event, payload, timeout);
    for (const status of ["ok", "error", "other"] as const) p.receive(status as "ok", (response: unknown) => resolve({ status, response }));
    p.receive("timeout", () => resolve({ status: "timeout", response: undefined }));
  });
}

/** Collects every `event` a channel receives, with the ref and join_ref phoenix.js reports. */
export function collect(ch: Channel, event: string): Array<{ payload: any; ref: unknown; joinRef: unknown }> {
  const out: Array<{ payload: any; ref: unknown; joinRef: unknown }> = [];
  ch.on(event, ((payload: unknown, ref?: unknown, joinRef?: unknown) => void out.push({ payload, ref, joinRef })) as (response?: any) => void);
  return out;
}

/** Every decoded message a phoenix.js socket receives. */
export function inbox(s: Socket): Array<{ join_ref: string | null; ref: string | null; topic: string; event: string; payload: any }> {
  const out: any[] = [];
  s.onMessage((m: unknown) => void out.push(m));
  return out;
}

/** Exactly the bytes of a Buffer as an ArrayBuffer (phoenix.js sends binary only for those). */
export function arrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

// ---- raw client -------------------------------------------------------------------------

/** A plain `ws` client: send frames by hand, read what comes back. */
export class RawClient {
  readonly ws: WebSocket;
  readonly frames: Array<Frame | Buffer> = [];
  readonly raw: Array<{ data: Buffer; binary: boolean }> = [];
  closeCode: number | undefined;
  closeReason = "";
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(url: string, protocols?: string[], opts?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, protocols, opts);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("unexpected-response", (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
      this.ws.once("error", reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.on("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve(code);
      });
    });
    this.ws.on("error", () => {});
    this.ws.on("message", (data, binary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
      this.raw.push({ data: buf, binary });
      this.frames.push(binary ? buf : (JSON.parse(buf.toString()) as Frame));
    });
  }

  static async open(url: string, protocols?: string[]): Promise<RawClient> {
    const c = new RawClient(url, protocols);
    await c.opened;
    return c;
  }

  send(frame: Frame | string | Buffer): void {
    if (Buffer.isBuffer(frame)) this.ws.send(frame, { binary: true });
    else this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Text frames matching `pred`. */
  matching(pred: (f: Frame) => boolean): Frame[] {
    return this.frames.filter((f): f is Frame => Array.isArray(f) && pred(f));
  }

  /** Waits for the first text frame matching `pred` (already received ones count). */
  next(pred: (f: Frame) => boolean, what = "frame", timeoutMs = 3000): Promise<Frame> {
    return waitFor(() => this.frames.find((f): f is Frame => Array.isArray(f) && pred(f)), what, timeoutMs);
  }

  /** Sends and waits for the reply with the same ref. */
  async call(frame: Frame): Promise<Frame> {
    this.send(frame);
    return this.next((f) => f[3] === "phx_reply" && f[1] === frame[1] && f[2] === frame[2], `reply to ${JSON.stringify(frame)}`);
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/** Opens an upgrade and reports the HTTP status of a refusal (or 101). */
export function upgradeStatus(url: string, protocols?: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on("open", () => {
      resolve(101);
      ws.terminate();
    });
    ws.on("error", (e) => {
      if (!/Unexpected server response/.test(String(e))) reject(e);
    });
  });
}
