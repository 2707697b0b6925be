// How the front end reaches the daemon. Two implementations of one interface:
// - the browser adapter (`vmrun ui --browser`): plain requests over fetch to
//   /api/docker/..., streams (events, logs, stats, pull, exec) multiplexed over one
//   WebSocket, every call carrying the per-launch token;
// - the Tauri shell: the same operations as Tauri commands, stream data as channel
//   messages (see tauri.ts).
// Both are thin relays to the daemon's Docker-compatible API: the front end has no
// other source of data.

export interface ApiResult {
  status: number;
  text: string;
}

/** A live stream: bytes arrive through `onData`; `done` settles when it ends. */
export interface StreamHandle {
  /** The HTTP status the daemon answered with (0 when the request never reached it). */
  status: Promise<number>;
  /** Resolves when the stream ended (with the error text, if it failed). */
  done: Promise<string | null>;
  /** Sends bytes to the stream (exec stdin); ignored by one-way streams. */
  send(data: Uint8Array | string): void;
  close(): void;
}

export interface Transport {
  request(method: string, path: string, body?: string, headers?: Record<string, string>): Promise<ApiResult>;
  stream(method: string, path: string, body: string | null, onData: (chunk: Uint8Array) => void): StreamHandle;
  /** Attaches to an exec instance created with a TTY (`POST /exec/{id}/start` hijacked). */
  exec(execId: string, onData: (chunk: Uint8Array) => void): StreamHandle;
  /** Starts the daemon the way the CLI does when it finds none. */
  startDaemon(): Promise<ApiResult>;
}

/** Status 502 with this flag in the JSON body: the adapter found no daemon on the socket. */
export const DAEMON_DOWN = "daemon-down";

const encoder = new TextEncoder();

function frame(id: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.length);
  new DataView(out.buffer).setUint32(0, id);
  out.set(data, 4);
  return out;
}

interface Pending {
  onData: (chunk: Uint8Array) => void;
  setStatus: (s: number) => void;
  finish: (err: string | null) => void;
}

/** The browser adapter's transport (served by vmrun-ui-server). */
export class HttpTransport implements Transport {
  private ws: WebSocket | null = null;
  private opening: Promise<WebSocket> | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();

  constructor(private base: string, private token: string) {}

  async request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<ApiResult> {
    const h: Record<string, string> = { "X-Vmrun-Token": this.token, ...headers };
    if (body !== undefined && !h["Content-Type"]) h["Content-Type"] = "application/json";
    try {
      const r = await fetch(`${this.base}/api/docker${path}`, { method, body, headers: h });
      return { status: r.status, text: await r.text() };
    } catch (e) {
      return { status: 0, text: JSON.stringify({ message: `the UI server does not answer: ${e}` }) };
    }
  }

  async startDaemon(): Promise<ApiResult> {
    try {
      const r = await fetch(`${this.base}/ui/daemon/start`, { method: "POST", headers: { "X-Vmrun-Token": this.token } });
      return { status: r.status, text: await r.text() };
    } catch (e) {
      return { status: 0, text: JSON.stringify({ message: `the UI server does not answer: ${e}` }) };
    }
  }

  private socket(): Promise<WebSocket> {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return Promise.resolve(this.ws);
    if (this.opening) return this.opening;
    const url = new URL(`${this.base}/ws`, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", this.token);
    this.opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(url.toString());
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        this.ws = ws;
        this.opening = null;
        resolve(ws);
      };
      ws.onerror = () => {
        this.opening = null;
        reject(new Error("the UI server's stream socket failed"));
      };
      ws.onclose = () => {
        this.ws = null;
        for (const p of this.pending.values()) p.finish("the UI server closed the stream socket");
        this.pending.clear();
      };
      ws.onmessage = (ev) => this.dispatch(ev.data);
    });
    return this.opening;
  }

  private dispatch(data: ArrayBuffer | string) {
    if (typeof data === "string") {
      const msg = JSON.parse(data) as { id: number; type: string; status?: number; error?: string | null };
      const p = this.pending.get(msg.id);
      if (!p) return;
      if (msg.type === "status") p.setStatus(msg.status ?? 0);
      if (msg.type === "end") {
        this.pending.delete(msg.id);
        p.finish(msg.error ?? null);
      }
      return;
    }
    const view = new DataView(data);
    const p = this.pending.get(view.getUint32(0));
    if (p) p.onData(new Uint8Array(data, 4));
  }

  private open(op: Record<string, unknown>, onData: (c: Uint8Array) => void): StreamHandle {
    const id = this.nextId++;
    let setStatus!: (s: number) => void;
    let finish!: (e: string | null) => void;
    const status = new Promise<number>((r) => (setStatus = r));
    const done = new Promise<string | null>((r) => (finish = r));
    const wsP = this.socket();
    this.pending.set(id, {
      onData,
      setStatus,
      finish: (e) => {
        setStatus(0);
        finish(e);
      },
    });
    wsP.then(
      (ws) => ws.send(JSON.stringify({ ...op, id })),
      (e) => {
        this.pending.delete(id);
        setStatus(0);
        finish(String(e));
      },
    );
    return {
      status,
      done,
      send: (d) => {
        const bytes = typeof d === "string" ? encoder.encode(d) : d;
        wsP.then((ws) => ws.send(frame(id, bytes)), () => undefined);
      },
      close: () => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        finish(null);
        wsP.then((ws) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ op: "close", id })), () => undefined);
      },
    };
  }

  stream(method: string, path: string, body: string | null, onData: (c: Uint8Array) => void): StreamHandle {
    return this.open({ op: "open", method, path, body }, onData);
  }

  exec(execId: string, onData: (c: Uint8Array) => void): StreamHandle {
    return this.open({ op: "exec", exec: execId }, onData);
  }
}

/** The token handed over in the launch URL (`?token=`), kept for reloads of this tab only. */
export function takeToken(): string {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem("vmrun-token", fromUrl);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.toString());
    return fromUrl;
  }
  return sessionStorage.getItem("vmrun-token") ?? "";
}
