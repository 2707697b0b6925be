import { describe, expect, it } from "vitest";
import { Api } from "../src/api";
import { Store } from "../src/store";
import type { ApiResult, StreamHandle, Transport } from "../src/transport";

/** A daemon double: answers lists from `data`, counts requests, hands out the events stream. */
class FakeTransport implements Transport {
  up = true;
  calls: string[] = [];
  data: Record<string, unknown> = { "/containers/json?all=1": [], "/images/json": [], "/volumes": { Volumes: [] }, "/networks": [] };
  push: ((c: Uint8Array) => void) | null = null;
  end: ((e: string | null) => void) | null = null;
  async request(method: string, path: string): Promise<ApiResult> {
    this.calls.push(`${method} ${path}`);
    if (!this.up) return { status: 502, text: '{"message":"cannot connect","reason":"daemon-down"}' };
    if (path === "/_ping") return { status: 200, text: "OK" };
    return { status: 200, text: JSON.stringify(this.data[path] ?? null) };
  }
  stream(_m: string, _p: string, _b: string | null, onData: (c: Uint8Array) => void): StreamHandle {
    this.push = onData;
    let finish!: (e: string | null) => void;
    const done = new Promise<string | null>((r) => (finish = r));
    this.end = finish;
    return { status: Promise.resolve(200), done, send() {}, close() {} };
  }
  exec(): StreamHandle {
    throw new Error("no exec");
  }
  async startDaemon(): Promise<ApiResult> {
    this.up = true;
    return { status: 200, text: "{}" };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const event = (o: object) => new TextEncoder().encode(`${JSON.stringify(o)}\n`);

describe("Store", () => {
  it("refreshes only the kinds the events name, once per burst", async () => {
    const t = new FakeTransport();
    const store = new Store(new Api(t));
    await store.start();
    expect(store.state.daemon).toBe("up");
    t.calls = [];
    t.data["/containers/json?all=1"] = [{ Id: "abc", Names: ["/web"], State: "running" }];
    for (let i = 0; i < 5; i++) t.push?.(event({ Type: "container", Action: "start", Actor: { ID: "abc" } }));
    await sleep(150);
    expect(t.calls).toEqual(["GET /containers/json?all=1"]);
    expect(store.state.containers.data?.[0].Names[0]).toBe("/web");
    store.stop();
  });

  it("says the daemon is down, and comes back when it is started", async () => {
    const t = new FakeTransport();
    t.up = false;
    const store = new Store(new Api(t));
    await store.start();
    expect(store.state.daemon).toBe("down");
    expect(store.state.daemonError).toContain("cannot connect");
    await t.startDaemon();
    await store.start();
    expect(store.state.daemon).toBe("up");
    store.stop();
  });
});
