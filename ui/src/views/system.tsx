// VM and settings: the daemon's mode (native or vm), the shared VM's backend, accelerator,
// CPUs, memory and uptime with start/stop (vmrund's /vmrun/vm endpoints), the daemon's
// version, and disk use (`GET /system/df`) with prune actions.

import { useEffect, useState } from "preact/hooks";
import { ApiError, type VmStatus } from "../api";
import { ErrorBox, useAction, useStore } from "../components";
import { bytes, duration } from "../format";

/* eslint-disable @typescript-eslint/no-explicit-any */
export function SystemView() {
  const [state, store] = useStore();
  const api = store.api;
  const [version, setVersion] = useState<any>(null);
  const [info, setInfo] = useState<any>(null);
  const [vm, setVm] = useState<VmStatus | null>(null);
  const [vmError, setVmError] = useState<string | null>(null);
  const [df, setDf] = useState<any>(null);
  const [error, setError] = useState<string | null>(null);
  const [run, busy, actionError] = useAction();
  const [pruned, setPruned] = useState<string | null>(null);

  const load = () => {
    api.version().then(setVersion, (e) => setError(e.message));
    api.info().then(setInfo, (e) => setError(e.message));
    api.df().then(setDf, (e) => setError(e.message));
    api.vm().then(
      (v) => { setVm(v); setVmError(null); },
      (e) => { setVm(null); setVmError(e instanceof ApiError && e.status === 404 ? "This engine has no vmrun VM endpoints (not vmrund)." : e.message); },
    );
  };
  useEffect(load, [api, state.tick]);

  // vmrund reports its mode (`--mode native|vm`) and VM backend in /info; other engines do not.
  const mode = info ? String(info.VmrunMode ?? "not reported (not vmrund)") : "–";
  const backend = info?.VmBackend;
  const backendText = !backend ? null : backend.Backend ? `${backend.Backend} (${backend.Accelerator ?? "?"}; choice ${backend.Choice})` : `none${backend.Unavailable ? `: ${backend.Unavailable}` : ""}`;
  const sum = (xs: any[] | null | undefined, f: (x: any) => number) => (xs ?? []).reduce((a, x) => a + (f(x) || 0), 0);
  const prune = (what: "containers" | "images" | "volumes" | "networks") =>
    run(async () => {
      const r: any = await api.prune(what);
      setPruned(`${what}: ${bytes(r?.SpaceReclaimed ?? 0)} reclaimed`);
      load();
    });

  return (
    <section aria-labelledby="system-title" data-view="system">
      <header class="viewhead"><h1 id="system-title">VM and settings</h1></header>
      <ErrorBox error={error} />
      <ErrorBox error={actionError} title="Action failed" />
      <div class="cards">
        <div class="card" data-testid="engine">
          <h2>Engine</h2>
          <dl>
            <dt>Version</dt><dd>{version ? `${version.Version} (API ${version.ApiVersion})` : "–"}</dd>
            <dt>Operating system</dt><dd>{version ? `${version.Os}/${version.Arch}, kernel ${version.KernelVersion}` : "–"}</dd>
            <dt>Mode</dt><dd data-testid="mode">{mode}</dd>
            {backendText && <><dt>VM backend</dt><dd>{backendText}</dd></>}
            {backend?.Kvm && <><dt>KVM</dt><dd>{String(backend.Kvm)}</dd></>}
            <dt>Containers</dt><dd>{info ? `${info.ContainersRunning} running of ${info.Containers}` : "–"}</dd>
            <dt>Data root</dt><dd><code>{info?.DockerRootDir ?? "–"}</code></dd>
          </dl>
        </div>
        <div class="card" data-testid="vm">
          <h2>Shared VM</h2>
          <ErrorBox error={vmError} title="VM status" />
          {vm && (
            <>
              <dl>
                <dt>State</dt><dd data-vm-state={vm.State}>{vm.State}</dd>
                <dt>Backend</dt><dd>{vm.Backend}</dd>
                <dt>Accelerator</dt><dd>{vm.Accelerator}</dd>
                <dt>CPUs</dt><dd>{vm.Cpus}</dd>
                <dt>Memory</dt><dd>{vm.MemoryMib} MiB</dd>
                <dt>Disk</dt><dd>{vm.DiskGib} GiB</dd>
                <dt>Uptime</dt><dd>{vm.State === "running" ? duration(vm.UptimeSeconds) : "–"}</dd>
                <dt>Kernel</dt><dd>{vm.Kernel || "–"}</dd>
                {vm.LastExit && <><dt>Last exit</dt><dd>{vm.LastExit}</dd></>}
              </dl>
              <div class="row">
                <button type="button" disabled={busy || vm.State === "running"} onClick={() => run(async () => setVm(await api.vmStart()))}>Start VM</button>
                <button type="button" disabled={busy || vm.State !== "running"} onClick={() => run(async () => setVm(await api.vmStop()))}>Stop VM</button>
              </div>
            </>
          )}
        </div>
        <div class="card" data-testid="disk">
          <h2>Disk use</h2>
          <dl>
            <dt>Images</dt><dd>{df ? `${(df.Images ?? []).length}, ${bytes(df.LayersSize ?? sum(df.Images, (i) => i.Size))}` : "–"}</dd>
            <dt>Containers</dt><dd>{df ? `${(df.Containers ?? []).length}, ${bytes(sum(df.Containers, (c) => c.SizeRw))}` : "–"}</dd>
            <dt>Volumes</dt><dd>{df ? `${(df.Volumes ?? []).length}, ${bytes(sum(df.Volumes, (v) => v.UsageData?.Size))}` : "–"}</dd>
            <dt>Build cache</dt><dd>{df ? bytes(sum(df.BuildCache, (b) => b.Size)) : "–"}</dd>
          </dl>
          <div class="row">
            {(["containers", "images", "volumes", "networks"] as const).map((w) => (
              <button type="button" disabled={busy} onClick={() => prune(w)}>Prune {w}</button>
            ))}
          </div>
          {pruned && <p role="status">{pruned}</p>}
        </div>
      </div>
    </section>
  );
}
