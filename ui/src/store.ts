// Live state of the dashboard. Lists are fetched once, then refreshed only when the
// daemon's `GET /events` stream says their kind changed (debounced), never by polling.
// Only while the daemon is down is `_ping` retried, every two seconds.

import { Api, ApiError, type ContainerSummary, type ImageSummary, type Network, type Volume } from "./api";
import type { StreamHandle } from "./transport";

export type Kind = "containers" | "images" | "volumes" | "networks";
export type DaemonState = "connecting" | "up" | "down";

export interface Slot<T> { data: T | null; error: string | null }

export interface State {
  daemon: DaemonState;
  daemonError: string | null;
  containers: Slot<ContainerSummary[]>;
  images: Slot<ImageSummary[]>;
  volumes: Slot<Volume[]>;
  networks: Slot<Network[]>;
  /** Bumped on every event; views that show one object refetch on it. */
  tick: number;
}

const empty = <T>(): Slot<T> => ({ data: null, error: null });

interface DockerEvent { Type?: string; Action?: string; Actor?: { ID?: string }; id?: string }

const KIND_OF_EVENT: Record<string, Kind[]> = {
  container: ["containers"],
  image: ["images"],
  volume: ["volumes"],
  network: ["networks"],
};

export class Store {
  state: State = { daemon: "connecting", daemonError: null, containers: empty(), images: empty(), volumes: empty(), networks: empty(), tick: 0 };
  private listeners = new Set<() => void>();
  private events: StreamHandle | null = null;
  private pendingKinds = new Set<Kind>();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(public api: Api) {}

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private set(patch: Partial<State>) {
    this.state = { ...this.state, ...patch };
    for (const fn of this.listeners) fn();
  }

  async start(): Promise<void> {
    this.stopped = false;
    try {
      await this.api.ping();
    } catch (e) {
      this.down(e);
      return;
    }
    this.set({ daemon: "up", daemonError: null });
    this.openEvents();
    await Promise.all((["containers", "images", "volumes", "networks"] as Kind[]).map((k) => this.refresh(k)));
  }

  stop() {
    this.stopped = true;
    this.events?.close();
    this.events = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  private down(e: unknown) {
    const msg = e instanceof Error ? e.message : String(e);
    const down = !(e instanceof ApiError) || e.daemonDown || e.status === 0 || e.status === 502;
    this.set({ daemon: down ? "down" : "up", daemonError: msg });
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (!this.stopped) this.retryTimer = setTimeout(() => void this.start(), 2000);
  }

  private openEvents() {
    this.events?.close();
    const since = Math.floor(Date.now() / 1000) - 1;
    const h = this.api.jsonStream<DockerEvent>("GET", `/events?since=${since}`, (ev) => {
      for (const k of KIND_OF_EVENT[ev.Type ?? ""] ?? []) this.pendingKinds.add(k);
      // A container's events can change what images/volumes are in use.
      if (ev.Type === "container" && (ev.Action === "destroy" || ev.Action === "create")) this.pendingKinds.add("volumes");
      if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), 60);
    });
    this.events = h;
    h.done.then((err) => {
      if (this.events !== h || this.stopped) return;
      this.events = null;
      // The stream ended: either the daemon went away or the socket did.
      // Reopen after a pause, so a stream that keeps failing does not spin.
      this.api.ping().then(
        () => {
          this.retryTimer = setTimeout(() => !this.stopped && this.openEvents(), err ? 1000 : 0);
        },
        (e) => this.down(err ? new Error(err) : e),
      );
    });
  }

  private flush() {
    this.flushTimer = null;
    const kinds = [...this.pendingKinds];
    this.pendingKinds.clear();
    for (const k of kinds) void this.refresh(k);
    this.set({ tick: this.state.tick + 1 });
  }

  /** Fetches one list again (also used after an action, so the view never waits on events). */
  async refresh(kind: Kind): Promise<void> {
    try {
      const data = await (kind === "containers" ? this.api.containers() : kind === "images" ? this.api.images() : kind === "volumes" ? this.api.volumes() : this.api.networks());
      this.set({ [kind]: { data, error: null } } as Partial<State>);
    } catch (e) {
      if (e instanceof ApiError && e.daemonDown) return this.down(e);
      this.set({ [kind]: { data: this.state[kind].data, error: e instanceof Error ? e.message : String(e) } } as Partial<State>);
    }
  }
}
