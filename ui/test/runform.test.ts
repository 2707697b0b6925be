import { describe, expect, it } from "vitest";
import { errorOf } from "../src/api";
import { emptyRunForm, runRequest, splitCommand } from "../src/runform";
import { splitRef } from "../src/views/images";

describe("run dialog", () => {
  it("builds the create request as the CLI would", () => {
    const r = runRequest({
      ...emptyRunForm("busybox"),
      ports: "8080:80, 127.0.0.1:5353:53/udp, 9000",
      env: "A=1\nB=two words",
      volumes: "data:/data, /srv:/mnt:ro",
      isolation: "vm",
      command: `sh -c "echo hi; sleep 1"`,
    });
    expect(r).toEqual({
      body: {
        ExposedPorts: { "80/tcp": {}, "53/udp": {}, "9000/tcp": {} },
        Env: ["A=1", "B=two words"],
        Cmd: ["sh", "-c", "echo hi; sleep 1"],
        HostConfig: {
          PortBindings: {
            "80/tcp": [{ HostIp: "", HostPort: "8080" }],
            "53/udp": [{ HostIp: "127.0.0.1", HostPort: "5353" }],
            "9000/tcp": [{ HostIp: "", HostPort: "" }],
          },
          Binds: ["data:/data", "/srv:/mnt:ro"],
          Runtime: "vmrun-vm",
        },
      },
    });
  });
  it("says which field is wrong", () => {
    expect(runRequest({ ...emptyRunForm("") })).toEqual({ error: "an image is required" });
    expect(runRequest({ ...emptyRunForm("x"), ports: "80:http" })).toHaveProperty("error");
    expect(runRequest({ ...emptyRunForm("x"), env: "NOVALUE" })).toHaveProperty("error");
    expect(runRequest({ ...emptyRunForm("x"), volumes: "relative" })).toHaveProperty("error");
    expect(runRequest({ ...emptyRunForm("x"), name: "bad name" })).toHaveProperty("error");
  });
  it("splits commands with quotes", () => {
    expect(splitCommand(`echo 'a b' "" c`)).toEqual(["echo", "a b", "", "c"]);
  });
  it("splits image references like docker pull", () => {
    expect(splitRef("busybox")).toEqual(["busybox", "latest"]);
    expect(splitRef("127.0.0.1:5000/repo:v1")).toEqual(["127.0.0.1:5000/repo", "v1"]);
    expect(splitRef("127.0.0.1:5000/repo")).toEqual(["127.0.0.1:5000/repo", "latest"]);
  });
});

describe("errors", () => {
  it("uses the daemon's message", () => {
    expect(errorOf({ status: 409, text: '{"message":"conflict: in use"}' }).message).toBe("conflict: in use");
    expect(errorOf({ status: 500, text: "boom" }).message).toBe("boom");
    expect(errorOf({ status: 502, text: '{"message":"no daemon","reason":"daemon-down"}' }).daemonDown).toBe(true);
    expect(errorOf({ status: 0, text: "" }).daemonDown).toBe(true);
  });
});
