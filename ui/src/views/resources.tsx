// Volumes and Networks: lists with create and remove.

import { useState } from "preact/hooks";
import { Empty, ErrorBox, IconButton, useAction, useStore } from "../components";

function CreateForm({ what, onCreate, busy }: { what: string; onCreate: (name: string) => void; busy: boolean }) {
  const [name, setName] = useState("");
  return (
    <form class="row" aria-label={`Create a ${what}`} onSubmit={(e) => { e.preventDefault(); onCreate(name.trim()); setName(""); }}>
      <input aria-label={`New ${what} name`} placeholder={`${what} name`} value={name} onInput={(e) => setName(e.currentTarget.value)} />
      <button type="submit" disabled={busy}>Create</button>
    </form>
  );
}

export function VolumesView() {
  const [state, store] = useStore();
  const [run, busy, error] = useAction();
  const list = state.volumes.data ?? [];
  const act = (f: () => Promise<unknown>) => run(async () => { await f(); await store.refresh("volumes"); });
  return (
    <section aria-labelledby="volumes-title" data-view="volumes">
      <header class="viewhead">
        <h1 id="volumes-title">Volumes</h1>
        <CreateForm what="volume" busy={busy} onCreate={(n) => act(() => store.api.createVolume(n))} />
      </header>
      <ErrorBox error={state.volumes.error} />
      <ErrorBox error={error} title="Action failed" />
      {state.volumes.data && !list.length && <Empty>No volumes.</Empty>}
      {list.length > 0 && (
        <table class="list">
          <thead><tr><th scope="col">Name</th><th scope="col">Driver</th><th scope="col">Mount point</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
          <tbody>
            {list.map((v) => (
              <tr key={v.Name} data-volume={v.Name}>
                <td>{v.Name}</td><td>{v.Driver}</td><td><code>{v.Mountpoint}</code></td>
                <td class="actions"><IconButton label={`Remove volume ${v.Name}`} icon="✕" danger disabled={busy} onClick={() => act(() => store.api.removeVolume(v.Name))} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const BUILTIN = new Set(["bridge", "host", "none"]);

export function NetworksView() {
  const [state, store] = useStore();
  const [run, busy, error] = useAction();
  const list = state.networks.data ?? [];
  const act = (f: () => Promise<unknown>) => run(async () => { await f(); await store.refresh("networks"); });
  return (
    <section aria-labelledby="networks-title" data-view="networks">
      <header class="viewhead">
        <h1 id="networks-title">Networks</h1>
        <CreateForm what="network" busy={busy} onCreate={(n) => act(() => store.api.createNetwork(n))} />
      </header>
      <ErrorBox error={state.networks.error} />
      <ErrorBox error={error} title="Action failed" />
      {state.networks.data && !list.length && <Empty>No networks.</Empty>}
      {list.length > 0 && (
        <table class="list">
          <thead><tr><th scope="col">Name</th><th scope="col">Driver</th><th scope="col">Scope</th><th scope="col">Subnet</th><th scope="col"><span class="sr">Actions</span></th></tr></thead>
          <tbody>
            {list.map((n) => (
              <tr key={n.Id} data-network={n.Name}>
                <td>{n.Name}</td><td>{n.Driver}</td><td>{n.Scope}</td>
                <td>{(n.IPAM?.Config ?? []).map((c) => c.Subnet).filter(Boolean).join(", ")}</td>
                <td class="actions">
                  {!BUILTIN.has(n.Name) && <IconButton label={`Remove network ${n.Name}`} icon="✕" danger disabled={busy} onClick={() => act(() => store.api.removeNetwork(n.Id))} />}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
