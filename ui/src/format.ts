// Pure helpers: stream decoding, formatting, grouping, and the run dialog's parsing.
// No DOM and no transport here, so everything is unit-tested (test/format.test.ts).

import type { ContainerSummary, Port } from "./api";

const decoder = () => new TextDecoder("utf-8");

/** Splits a byte stream of newline-delimited JSON into objects (bad lines are skipped). */
export class NdjsonDecoder<T> {
  private buf = "";
  private dec = decoder();
  push(chunk: Uint8Array): T[] {
    this.buf += this.dec.decode(chunk, { stream: true });
    const out: T[] = [];
    let nl: number;
    while ((nl = this.buf.indexOf("\n")) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as T);
      } catch {
        /* a line that is not JSON: skip it */
      }
    }
    return out;
  }
}

export interface LogLine { stream: "stdout" | "stderr"; text: string }

/**
 * Decodes a logs/attach body: Docker's multiplexed frames (8-byte header: stream,
 * 0, 0, 0, big-endian length) for containers without a TTY, raw bytes with one.
 * Returns complete lines; a partial line waits for the next chunk.
 */
export class LogDecoder {
  private raw: Uint8Array = new Uint8Array(0);
  private partial: Record<string, string> = { stdout: "", stderr: "" };
  private decs = { stdout: decoder(), stderr: decoder() };
  constructor(private tty: boolean) {}

  push(chunk: Uint8Array): LogLine[] {
    const out: LogLine[] = [];
    if (this.tty) {
      this.text("stdout", chunk, out);
      return out;
    }
    const all = new Uint8Array(this.raw.length + chunk.length);
    all.set(this.raw);
    all.set(chunk, this.raw.length);
    let off = 0;
    while (all.length - off >= 8) {
      const kind = all[off];
      const len = new DataView(all.buffer, all.byteOffset + off + 4, 4).getUint32(0);
      if (kind > 2 || all[off + 1] !== 0 || all[off + 2] !== 0 || all[off + 3] !== 0) {
        // Not a frame header: the stream is raw after all.
        this.tty = true;
        this.text("stdout", all.subarray(off), out);
        this.raw = new Uint8Array(0);
        return out;
      }
      if (all.length - off - 8 < len) break;
      this.text(kind === 2 ? "stderr" : "stdout", all.subarray(off + 8, off + 8 + len), out);
      off += 8 + len;
    }
    this.raw = all.slice(off);
    return out;
  }

  private text(stream: "stdout" | "stderr", bytes: Uint8Array, out: LogLine[]) {
    const s = this.partial[stream] + this.decs[stream].decode(bytes, { stream: true });
    const lines = s.split("\n");
    this.partial[stream] = lines.pop() ?? "";
    for (const l of lines) out.push({ stream, text: l.replace(/\r$/, "") });
  }
}

/** Splits a log line from `timestamps=1` into its RFC 3339 time and the text. */
export function splitTimestamp(text: string): { time: string; text: string } {
  const m = /^(\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d)) (.*)$/s.exec(text);
  return m ? { time: m[1], text: m[2] } : { time: "", text };
}

export function bytes(n: number | undefined | null): string {
  if (n === undefined || n === null || !Number.isFinite(n) || n < 0) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/** "3 minutes ago" from Unix seconds. */
export function age(created: number, nowMs = Date.now()): string {
  const s = Math.max(0, Math.floor(nowMs / 1000 - created));
  const steps: [number, string][] = [[31536000, "year"], [2592000, "month"], [604800, "week"], [86400, "day"], [3600, "hour"], [60, "minute"]];
  for (const [len, name] of steps) {
    const n = Math.floor(s / len);
    if (n >= 1) return `${n} ${name}${n > 1 ? "s" : ""} ago`;
  }
  return s < 2 ? "just now" : `${s} seconds ago`;
}

export function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export const containerName = (c: { Names?: string[] | null; Id: string }): string =>
  (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, "");

export interface PortLink { label: string; url: string | null }

/** Published ports as links (one per host port: IPv4 and IPv6 bindings of it are one). */
export function portLinks(ports: Port[] | null | undefined, host = "localhost"): PortLink[] {
  const seen = new Set<string>();
  const out: PortLink[] = [];
  const sorted = [...(ports ?? [])].sort((a, b) => (a.PublicPort ?? 0) - (b.PublicPort ?? 0) || a.PrivatePort - b.PrivatePort);
  for (const p of sorted) {
    const key = p.PublicPort ? `${p.PublicPort}/${p.Type}` : `-${p.PrivatePort}/${p.Type}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (p.PublicPort) {
      const url = p.Type === "tcp" ? `http://${host}:${p.PublicPort}` : null;
      out.push({ label: `${p.PublicPort}:${p.PrivatePort}/${p.Type}`, url });
    } else {
      out.push({ label: `${p.PrivatePort}/${p.Type}`, url: null });
    }
  }
  return out;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
/** CPU percent of a stats sample, as docker's calculateCPUPercentUnix. */
export function cpuPercent(s: any): number {
  const cpu = s?.cpu_stats, pre = s?.precpu_stats;
  if (!cpu || !pre) return 0;
  const cpuDelta = (cpu.cpu_usage?.total_usage ?? 0) - (pre.cpu_usage?.total_usage ?? 0);
  const sysDelta = (cpu.system_cpu_usage ?? 0) - (pre.system_cpu_usage ?? 0);
  const online = cpu.online_cpus || cpu.cpu_usage?.percpu_usage?.length || 1;
  if (cpuDelta <= 0 || sysDelta <= 0) return 0;
  return (cpuDelta / sysDelta) * online * 100;
}

/** Memory in use (without the page cache, as docker shows it) and the limit. */
export function memoryUsage(s: any): { used: number; limit: number } {
  const m = s?.memory_stats ?? {};
  const st = m.stats ?? {};
  const cache = st.inactive_file ?? st.total_inactive_file ?? 0;
  const used = Math.max(0, (m.usage ?? 0) - (cache < (m.usage ?? 0) ? cache : 0));
  return { used, limit: m.limit ?? 0 };
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export const PROJECT_LABEL = "com.docker.compose.project";

export interface Group { project: string | null; items: ContainerSummary[] }

/** Containers grouped by compose project (label), projects first by name, then the rest. */
export function groupByProject(list: ContainerSummary[]): Group[] {
  const groups = new Map<string, ContainerSummary[]>();
  const loose: ContainerSummary[] = [];
  for (const c of list) {
    const p = c.Labels?.[PROJECT_LABEL];
    if (p) {
      const g = groups.get(p) ?? [];
      g.push(c);
      groups.set(p, g);
    } else loose.push(c);
  }
  const out: Group[] = [...groups.keys()].sort().map((p) => ({ project: p, items: groups.get(p) ?? [] }));
  if (loose.length) out.push({ project: null, items: loose });
  return out;
}

export type StateFilter = "all" | "running" | "stopped";

export function filterContainers(list: ContainerSummary[], search: string, state: StateFilter): ContainerSummary[] {
  const needle = search.trim().toLowerCase();
  return list.filter((c) => {
    if (state === "running" && c.State !== "running") return false;
    if (state === "stopped" && c.State === "running") return false;
    if (!needle) return true;
    const hay = [containerName(c), c.Image, c.Id.slice(0, 12), c.Status, c.Labels?.[PROJECT_LABEL] ?? ""].join(" ").toLowerCase();
    return hay.includes(needle);
  });
}

export interface LayerProgress { id: string; status: string; current: number; total: number }
export interface PullState { layers: LayerProgress[]; messages: string[]; error: string | null; done: boolean }

export const emptyPull = (): PullState => ({ layers: [], messages: [], error: null, done: false });

/** Folds one `POST /images/create` progress message into the pull's state. */
export function applyPull(
  st: PullState,
  m: { id?: string; status?: string; error?: string; errorDetail?: { message?: string }; progressDetail?: { current?: number; total?: number } },
): PullState {
  if (m.error || m.errorDetail?.message) return { ...st, error: m.errorDetail?.message ?? m.error ?? "pull failed" };
  const status = m.status ?? "";
  const isLayer = m.id && !/^(Pulling from|Digest:|Status:)/.test(status) && /^[0-9a-f]{6,}$/.test(m.id);
  if (!isLayer) return { ...st, messages: [...st.messages, m.id ? `${m.id}: ${status}` : status] };
  const layers = st.layers.slice();
  const i = layers.findIndex((l) => l.id === m.id);
  const prev = i >= 0 ? layers[i] : { id: m.id as string, status: "", current: 0, total: 0 };
  const d = m.progressDetail ?? {};
  const finished = /complete|already exists/i.test(status);
  const next: LayerProgress = {
    id: prev.id,
    status,
    total: d.total ?? prev.total,
    current: finished ? Math.max(prev.total, d.total ?? 0, prev.current) : d.current ?? prev.current,
  };
  if (i >= 0) layers[i] = next;
  else layers.push(next);
  return { ...st, layers };
}

/** A layer's progress in percent (100 when done, 0 when unknown). */
export function layerPercent(l: LayerProgress): number {
  if (/complete|already exists/i.test(l.status)) return 100;
  if (!l.total) return 0;
  return Math.min(100, Math.round((l.current / l.total) * 100));
}
