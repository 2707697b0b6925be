// The "run" dialog's fields as a create request, with the CLI's meaning:
// ports as `-p` (HOST:CONTAINER[/PROTO] or CONTAINER), env as `-e NAME=VALUE`, volumes as
// `-v SRC:DST[:ro]`, isolation as `--isolation` (process, vm, shared-vm).

export interface RunForm {
  image: string;
  name: string;
  ports: string;
  env: string;
  volumes: string;
  isolation: string;
  command: string;
}

export const emptyRunForm = (image = ""): RunForm => ({ image, name: "", ports: "", env: "", volumes: "", isolation: "default", command: "" });

const items = (s: string) => s.split(/[\n,]/).map((x) => x.trim()).filter(Boolean);

/** The create body for `form`, or the first field error. */
export function runRequest(form: RunForm): { body: Record<string, unknown> } | { error: string } {
  if (!form.image.trim()) return { error: "an image is required" };
  if (form.name && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(form.name)) return { error: `invalid name "${form.name}"` };
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const spec of items(form.ports)) {
    const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(?:(\d+):)?(\d+)(?:\/(tcp|udp|sctp))?$/.exec(spec);
    if (!m) return { error: `invalid port "${spec}": expected HOST:CONTAINER[/tcp|udp]` };
    const [, ip, host, ctr, proto] = m;
    if (Number(ctr) < 1 || Number(ctr) > 65535 || (host && Number(host) > 65535)) return { error: `invalid port "${spec}"` };
    const key = `${ctr}/${proto ?? "tcp"}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ HostIp: ip ?? "", HostPort: host ?? "" });
  }
  const env: string[] = [];
  for (const line of form.env.split("\n").map((x) => x.trim()).filter(Boolean)) {
    if (!/^[^=\s]+=/.test(line)) return { error: `invalid environment line "${line}": expected NAME=VALUE` };
    env.push(line);
  }
  const binds: string[] = [];
  for (const spec of items(form.volumes)) {
    const parts = spec.split(":");
    if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1].startsWith("/") || (parts[2] && !/^(ro|rw)$/.test(parts[2])))
      return { error: `invalid volume "${spec}": expected SOURCE:/PATH[:ro]` };
    binds.push(spec);
  }
  const hostConfig: Record<string, unknown> = {};
  if (Object.keys(bindings).length) hostConfig.PortBindings = bindings;
  if (binds.length) hostConfig.Binds = binds;
  const body: Record<string, unknown> = { HostConfig: hostConfig };
  switch (form.isolation) {
    case "default":
    case "":
      break;
    case "process":
      hostConfig.Isolation = "process";
      break;
    case "vm":
      hostConfig.Runtime = "vmrun-vm";
      break;
    case "shared-vm":
      hostConfig.Runtime = "vmrun-shared-vm";
      break;
    default:
      return { error: `unknown isolation "${form.isolation}"` };
  }
  if (Object.keys(exposed).length) body.ExposedPorts = exposed;
  if (env.length) body.Env = env;
  const cmd = splitCommand(form.command);
  if (cmd.length) body.Cmd = cmd;
  return { body };
}

/** Splits a command line shell-like: whitespace separates, quotes group. */
export function splitCommand(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | null = null;
  let any = false;
  for (const ch of s) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      any = true;
    } else if (/\s/.test(ch)) {
      if (cur || any) out.push(cur);
      cur = "";
      any = false;
    } else cur += ch;
  }
  if (cur || any) out.push(cur);
  return out;
}
