// The Tauri shell's transport: the same operations as the browser adapter, as Tauri
// commands (ui/src-tauri/src/main.rs) with stream data arriving on a Channel.

import { Channel, invoke } from "@tauri-apps/api/core";
import type { ApiResult, StreamHandle, Transport } from "./transport";

export const isTauri = (): boolean => typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;

type StreamEvent = { kind: "status"; status: number } | { kind: "data"; data: number[] } | { kind: "end"; error: string | null };

const encoder = new TextEncoder();
let nextId = 1;

export class TauriTransport implements Transport {
  request(method: string, path: string, body?: string): Promise<ApiResult> {
    return invoke<ApiResult>("docker_request", { method, path, body: body ?? null }).catch((e) => ({
      status: 0,
      text: JSON.stringify({ message: String(e) }),
    }));
  }

  startDaemon(): Promise<ApiResult> {
    return invoke<ApiResult>("start_daemon").catch((e) => ({ status: 0, text: JSON.stringify({ message: String(e) }) }));
  }

  private open(command: string, args: Record<string, unknown>, onData: (c: Uint8Array) => void): StreamHandle {
    const id = nextId++;
    let setStatus!: (s: number) => void;
    let finish!: (e: string | null) => void;
    const status = new Promise<number>((r) => (setStatus = r));
    const done = new Promise<string | null>((r) => (finish = r));
    const channel = new Channel<StreamEvent>();
    channel.onmessage = (ev) => {
      if (ev.kind === "status") setStatus(ev.status);
      else if (ev.kind === "data") onData(new Uint8Array(ev.data));
      else {
        setStatus(0);
        finish(ev.error);
      }
    };
    invoke(command, { ...args, id, onEvent: channel }).catch((e) => {
      setStatus(0);
      finish(String(e));
    });
    return {
      status,
      done,
      send: (d) => void invoke("stream_send", { id, data: Array.from(typeof d === "string" ? encoder.encode(d) : d) }).catch(() => undefined),
      close: () => {
        finish(null);
        void invoke("stream_close", { id }).catch(() => undefined);
      },
    };
  }

  stream(method: string, path: string, body: string | null, onData: (c: Uint8Array) => void): StreamHandle {
    return this.open("docker_stream", { method, path, body }, onData);
  }

  exec(execId: string, onData: (c: Uint8Array) => void): StreamHandle {
    return this.open("docker_exec", { execId }, onData);
  }
}

let reported = false;
/** Test hook of the desktop app: tells the Rust side (once) that a view rendered with data. */
export function reportReady(view: string, rows: string[]): void {
  if (reported) return;
  reported = true;
  // After the next paint, so the hook means "on screen".
  requestAnimationFrame(() => setTimeout(() => void invoke("ui_ready", { view, rows }).catch(() => undefined), 0));
}
