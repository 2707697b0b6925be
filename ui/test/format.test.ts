import { describe, expect, it } from "vitest";
import type { ContainerSummary } from "../src/api";
import {
  age, applyPull, bytes, containerName, cpuPercent, emptyPull, filterContainers, groupByProject,
  layerPercent, LogDecoder, memoryUsage, NdjsonDecoder, portLinks, splitTimestamp,
} from "../src/format";

const enc = new TextEncoder();
const frame = (kind: number, text: string) => {
  const body = enc.encode(text);
  const out = new Uint8Array(8 + body.length);
  out[0] = kind;
  new DataView(out.buffer).setUint32(4, body.length);
  out.set(body, 8);
  return out;
};

describe("NdjsonDecoder", () => {
  it("splits objects across chunk boundaries and skips bad lines", () => {
    const d = new NdjsonDecoder<{ a: number }>();
    expect(d.push(enc.encode('{"a":1}\n{"a"'))).toEqual([{ a: 1 }]);
    expect(d.push(enc.encode(':2}\nnot json\n\n{"a":3}\n'))).toEqual([{ a: 2 }, { a: 3 }]);
  });
});

describe("LogDecoder", () => {
  it("demultiplexes stdout and stderr frames split anywhere", () => {
    const d = new LogDecoder(false);
    const all = new Uint8Array([...frame(1, "hello\nwor"), ...frame(2, "oops\n"), ...frame(1, "ld\n")]);
    const out = [...d.push(all.subarray(0, 5)), ...d.push(all.subarray(5, 20)), ...d.push(all.subarray(20))];
    expect(out).toEqual([
      { stream: "stdout", text: "hello" },
      { stream: "stderr", text: "oops" },
      { stream: "stdout", text: "world" },
    ]);
  });
  it("passes TTY output through, dropping carriage returns", () => {
    const d = new LogDecoder(true);
    expect(d.push(enc.encode("a\r\nb\r\n"))).toEqual([{ stream: "stdout", text: "a" }, { stream: "stdout", text: "b" }]);
  });
  it("falls back to raw when the bytes are not frames", () => {
    const d = new LogDecoder(false);
    expect(d.push(enc.encode("plain text here\n"))).toEqual([{ stream: "stdout", text: "plain text here" }]);
  });
});

describe("formatting", () => {
  it("bytes", () => {
    expect(bytes(0)).toBe("0 B");
    expect(bytes(1234)).toBe("1.23 kB");
    expect(bytes(45_600_000)).toBe("45.6 MB");
    expect(bytes(undefined)).toBe("–");
  });
  it("age", () => {
    const now = 1_000_000_000_000;
    expect(age(now / 1000 - 1, now)).toBe("just now");
    expect(age(now / 1000 - 125, now)).toBe("2 minutes ago");
    expect(age(now / 1000 - 86400 * 3, now)).toBe("3 days ago");
  });
  it("timestamps", () => {
    expect(splitTimestamp("2026-12-04T22:00:01.123456789Z hi there")).toEqual({ time: "2026-12-04T22:00:01.123456789Z", text: "hi there" });
    expect(splitTimestamp("no stamp")).toEqual({ time: "", text: "no stamp" });
  });
  it("port links, one per host port", () => {
    const links = portLinks([
      { IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp" },
      { IP: "::", PrivatePort: 80, PublicPort: 8080, Type: "tcp" },
      { PrivatePort: 53, PublicPort: 5353, Type: "udp" },
      { PrivatePort: 9000, Type: "tcp" },
    ]);
    expect(links).toEqual([
      { label: "9000/tcp", url: null },
      { label: "5353:53/udp", url: null },
      { label: "8080:80/tcp", url: "http://localhost:8080" },
    ]);
  });
});

describe("stats", () => {
  it("cpu percent as docker computes it", () => {
    const s = {
      cpu_stats: { cpu_usage: { total_usage: 2_000_000 }, system_cpu_usage: 20_000_000, online_cpus: 2 },
      precpu_stats: { cpu_usage: { total_usage: 1_000_000 }, system_cpu_usage: 10_000_000 },
    };
    expect(cpuPercent(s)).toBeCloseTo(20);
    expect(cpuPercent({})).toBe(0);
  });
  it("memory without inactive file cache", () => {
    expect(memoryUsage({ memory_stats: { usage: 1000, limit: 5000, stats: { inactive_file: 300 } } })).toEqual({ used: 700, limit: 5000 });
  });
});

const c = (name: string, state: string, project?: string): ContainerSummary => ({
  Id: `${name}0123456789abcdef`, Names: [`/${name}`], Image: "busybox", State: state, Status: state, Created: 0, Ports: [],
  Labels: project ? { "com.docker.compose.project": project } : {},
});

describe("containers list", () => {
  const list = [c("web", "running", "shop"), c("db", "exited", "shop"), c("solo", "running"), c("api", "running", "alpha")];
  it("groups by compose project, loose ones last", () => {
    const g = groupByProject(list);
    expect(g.map((x) => x.project)).toEqual(["alpha", "shop", null]);
    expect(g[1].items.map(containerName)).toEqual(["web", "db"]);
  });
  it("filters by state and search", () => {
    expect(filterContainers(list, "", "stopped").map(containerName)).toEqual(["db"]);
    expect(filterContainers(list, "SHOP", "all").map(containerName)).toEqual(["web", "db"]);
    expect(filterContainers(list, "sol", "running").map(containerName)).toEqual(["solo"]);
  });
});

describe("pull progress", () => {
  it("tracks each layer and ends at 100 %", () => {
    let st = emptyPull();
    st = applyPull(st, { status: "Pulling from library/busybox", id: "latest" });
    st = applyPull(st, { status: "Pulling fs layer", id: "abcdef012345" });
    st = applyPull(st, { status: "Downloading", id: "abcdef012345", progressDetail: { current: 50, total: 200 } });
    expect(layerPercent(st.layers[0])).toBe(25);
    st = applyPull(st, { status: "Pull complete", id: "abcdef012345" });
    expect(layerPercent(st.layers[0])).toBe(100);
    expect(st.messages).toEqual(["latest: Pulling from library/busybox"]);
    st = applyPull(st, { errorDetail: { message: "manifest unknown" }, error: "manifest unknown" });
    expect(st.error).toBe("manifest unknown");
  });
});
