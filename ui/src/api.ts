// Typed calls of the Docker Engine API (and vmrund's /vmrun/vm) over a Transport.
// Every call either returns data or throws an ApiError with the daemon's own message.

import { DAEMON_DOWN, type ApiResult, type StreamHandle, type Transport } from "./transport";
import { NdjsonDecoder } from "./format";

export class ApiError extends Error {
  constructor(message: string, public status: number, public daemonDown = false) {
    super(message);
  }
}

/** The message of a failed call: the daemon's `{"message": ...}`, else the body, else the status. */
export function errorOf(r: ApiResult): ApiError {
  let message = r.text.trim();
  let down = r.status === 0;
  try {
    const v = JSON.parse(r.text) as { message?: string; reason?: string };
    if (v && typeof v.message === "string") message = v.message;
    if (v && v.reason === DAEMON_DOWN) down = true;
  } catch {
    /* not JSON: keep the text */
  }
  if (!message) message = `the daemon answered ${r.status}`;
  return new ApiError(message, r.status, down);
}

export const q = (params: Record<string, string | number | boolean | undefined>): string => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) s.set(k, String(v));
  const text = s.toString();
  return text ? `?${text}` : "";
};

export interface Port { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Status: string;
  Created: number;
  Ports: Port[];
  Labels: Record<string, string> | null;
}
export interface ImageSummary { Id: string; RepoTags: string[] | null; Size: number; Created: number; Containers?: number }
export interface Volume { Name: string; Driver: string; Mountpoint: string; CreatedAt?: string; Labels?: Record<string, string> | null }
export interface Network { Id: string; Name: string; Driver: string; Scope: string; IPAM?: { Config?: { Subnet?: string; Gateway?: string }[] | null } }
export interface Change { Path: string; Kind: number }
export interface VmStatus {
  State: string; Backend: string; Accelerator: string; Cpus: number; MemoryMib: number; DiskGib: number;
  UptimeSeconds: number; Containers: number; Kernel: string; LastExit?: string | null;
}

export class Api {
  constructor(public t: Transport) {}

  async call(method: string, path: string, body?: unknown): Promise<string> {
    const r = await this.t.request(method, path, body === undefined ? undefined : JSON.stringify(body));
    if (r.status < 200 || r.status >= 300) throw errorOf(r);
    return r.text;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const text = await this.call(method, path, body);
    return (text ? JSON.parse(text) : null) as T;
  }

  ping = () => this.call("GET", "/_ping");
  version = () => this.json<Record<string, unknown>>("GET", "/version");
  info = () => this.json<Record<string, unknown>>("GET", "/info");
  containers = () => this.json<ContainerSummary[]>("GET", "/containers/json?all=1");
  inspect = (id: string) => this.json<Record<string, unknown>>("GET", `/containers/${enc(id)}/json`);
  changes = (id: string) => this.json<Change[] | null>("GET", `/containers/${enc(id)}/changes`);
  start = (id: string) => this.call("POST", `/containers/${enc(id)}/start`);
  stop = (id: string) => this.call("POST", `/containers/${enc(id)}/stop`);
  restart = (id: string) => this.call("POST", `/containers/${enc(id)}/restart`);
  remove = (id: string, force: boolean) => this.call("DELETE", `/containers/${enc(id)}${q({ force: force ? 1 : undefined, v: 1 })}`);
  images = () => this.json<ImageSummary[]>("GET", "/images/json");
  removeImage = (id: string) => this.call("DELETE", `/images/${enc(id)}`);
  volumes = async () => (await this.json<{ Volumes: Volume[] | null }>("GET", "/volumes")).Volumes ?? [];
  createVolume = (name: string) => this.call("POST", "/volumes/create", { Name: name });
  removeVolume = (name: string) => this.call("DELETE", `/volumes/${enc(name)}`);
  networks = () => this.json<Network[]>("GET", "/networks");
  createNetwork = (name: string) => this.call("POST", "/networks/create", { Name: name, Driver: "bridge" });
  removeNetwork = (id: string) => this.call("DELETE", `/networks/${enc(id)}`);
  df = () => this.json<Record<string, unknown>>("GET", "/system/df");
  prune = (what: "containers" | "images" | "volumes" | "networks") => this.json<Record<string, unknown>>("POST", `/${what}/prune`);
  vm = () => this.json<VmStatus>("GET", "/vmrun/vm");
  vmStart = () => this.json<VmStatus>("POST", "/vmrun/vm/start");
  vmStop = () => this.json<VmStatus>("POST", "/vmrun/vm/stop");

  async createExec(id: string, cmd: string[]): Promise<string> {
    const r = await this.json<{ Id: string }>("POST", `/containers/${enc(id)}/exec`, {
      AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: true, Cmd: cmd,
    });
    return r.Id;
  }
  resizeExec = (execId: string, rows: number, cols: number) => this.call("POST", `/exec/${enc(execId)}/resize${q({ h: rows, w: cols })}`);

  /** Creates and starts a container; returns its id. */
  async run(image: string, body: Record<string, unknown>, name?: string): Promise<string> {
    const created = await this.json<{ Id: string }>("POST", `/containers/create${q({ name: name || undefined })}`, { Image: image, ...body });
    await this.start(created.Id);
    return created.Id;
  }

  /** A stream of newline-delimited JSON objects (events, stats, pull progress). */
  jsonStream<T>(method: string, path: string, onItem: (item: T) => void): StreamHandle {
    const dec = new NdjsonDecoder<T>();
    return this.t.stream(method, path, null, (chunk) => dec.push(chunk).forEach(onItem));
  }
}

export const enc = encodeURIComponent;
