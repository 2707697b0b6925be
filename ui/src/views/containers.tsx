// The Containers view: grouped by compose project, filter and search, per-row and bulk
// start/stop/restart/remove, ports as links, live CPU and memory from the stats streams.

import { useEffect, useMemo, useState } from "preact/hooks";
import type { Api, ContainerSummary } from "../api";
import { Confirm, Empty, ErrorBox, IconButton, useAction, useStore } from "../components";
import { bytes, containerName, cpuPercent, filterContainers, groupByProject, memoryUsage, portLinks, type StateFilter } from "../format";

interface Usage { cpu: number; mem: number }

/** One stats stream per running container (all over the one stream socket). */
function useUsage(api: Api, running: string[]): Record<string, Usage> {
  const [usage, setUsage] = useState<Record<string, Usage>>({});
  const key = running.slice(0, 40).sort().join(",");
  useEffect(() => {
    const ids = key ? key.split(",") : [];
    const handles = ids.map((id) =>
      api.jsonStream<Record<string, unknown>>("GET", `/containers/${id}/stats?stream=1`, (s) =>
        setUsage((u) => ({ ...u, [id]: { cpu: cpuPercent(s), mem: memoryUsage(s).used } })),
      ),
    );
    return () => handles.forEach((h) => h.close());
  }, [api, key]);
  return usage;
}

type Op = "start" | "stop" | "restart" | "remove";

export function ContainersView() {
  const [state, store] = useStore();
  const api = store.api;
  const [search, setSearch] = useState("");
  const [filter, setFilter] = useState<StateFilter>("all");
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [confirm, setConfirm] = useState<{ ids: string[]; message: string } | null>(null);
  const [run, busy, actionError, clearError] = useAction();
  const all = state.containers.data ?? [];
  const list = useMemo(() => filterContainers(all, search, filter), [all, search, filter]);
  const groups = useMemo(() => groupByProject(list), [list]);
  const usage = useUsage(api, all.filter((c) => c.State === "running").map((c) => c.Id));
  const byId = useMemo(() => new Map(all.map((c) => [c.Id, c])), [all]);

  const act = (op: Op, ids: string[]) => {
    if (op === "remove") {
      const running = ids.filter((id) => byId.get(id)?.State === "running");
      if (running.length) {
        const names = running.map((id) => containerName(byId.get(id) as ContainerSummary)).join(", ");
        setConfirm({ ids, message: `${names} ${running.length > 1 ? "are" : "is"} running. Stop and remove ${ids.length > 1 ? "them" : "it"}?` });
        return;
      }
    }
    void doAct(op, ids);
  };
  const doAct = (op: Op, ids: string[]) =>
    run(async () => {
      const errors: string[] = [];
      for (const id of ids) {
        try {
          if (op === "remove") await api.remove(id, true);
          else await api[op](id);
        } catch (e) {
          errors.push(`${containerName(byId.get(id) ?? { Id: id })}: ${e instanceof Error ? e.message : e}`);
        }
      }
      setSelected(new Set());
      await store.refresh("containers");
      if (errors.length) throw new Error(errors.join("; "));
    });

  const toggle = (id: string) => {
    const s = new Set(selected);
    if (s.has(id)) s.delete(id);
    else s.add(id);
    setSelected(s);
  };
  const sel = [...selected].filter((id) => byId.has(id));

  return (
    <section aria-labelledby="containers-title" data-view="containers">
      <header class="viewhead">
        <h1 id="containers-title">Containers</h1>
        <input type="search" placeholder="Search name, image, project…" aria-label="Search containers" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        <select aria-label="Filter by state" value={filter} onChange={(e) => setFilter(e.currentTarget.value as StateFilter)}>
          <option value="all">All</option>
          <option value="running">Running</option>
          <option value="stopped">Stopped</option>
        </select>
      </header>
      <div class="bulk" role="toolbar" aria-label="Bulk actions">
        <span>{sel.length} selected</span>
        {(["start", "stop", "restart", "remove"] as Op[]).map((op) => (
          <button type="button" disabled={!sel.length || busy} class={op === "remove" ? "danger" : ""} onClick={() => act(op, sel)}>
            {op[0].toUpperCase() + op.slice(1)} selected
          </button>
        ))}
      </div>
      <ErrorBox error={state.containers.error} />
      <ErrorBox error={actionError} title="Action failed" />
      {actionError && <button type="button" onClick={clearError}>Dismiss</button>}
      {state.containers.data && !all.length && <Empty>No containers yet. Run one from the Images view or with `vmrun run`.</Empty>}
      {all.length > 0 && !list.length && <Empty>No container matches.</Empty>}
      {groups.map((g) => (
        <div class="group" key={g.project ?? "-"}>
          {g.project && (
            <h2 class="project">
              {g.project} <small>compose project</small>
              <span class="actions">
                <IconButton label={`Start project ${g.project}`} icon="▶" disabled={busy} onClick={() => act("start", g.items.map((c) => c.Id))} />
                <IconButton label={`Stop project ${g.project}`} icon="■" disabled={busy} onClick={() => act("stop", g.items.map((c) => c.Id))} />
              </span>
            </h2>
          )}
          <table class="list">
            <thead>
              <tr>
                <th scope="col"><span class="sr">Select</span></th>
                <th scope="col">Name</th>
                <th scope="col">Image</th>
                <th scope="col">Status</th>
                <th scope="col">Ports</th>
                <th scope="col">CPU</th>
                <th scope="col">Memory</th>
                <th scope="col"><span class="sr">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {g.items.map((c) => {
                const name = containerName(c);
                const u = usage[c.Id];
                const running = c.State === "running";
                return (
                  <tr key={c.Id} data-container={name} class={running ? "running" : ""}>
                    <td><input type="checkbox" aria-label={`Select ${name}`} checked={selected.has(c.Id)} onChange={() => toggle(c.Id)} /></td>
                    <td><a href={`#/containers/${c.Id}`}>{name}</a></td>
                    <td>{c.Image}</td>
                    <td><span class={`state ${c.State}`} data-state={c.State}>{c.Status || c.State}</span></td>
                    <td>
                      {portLinks(c.Ports).map((p) =>
                        p.url ? <a class="port" href={p.url} target="_blank" rel="noreferrer">{p.label}</a> : <span class="port">{p.label}</span>,
                      )}
                    </td>
                    <td>{running && u ? `${u.cpu.toFixed(1)} %` : "–"}</td>
                    <td>{running && u ? bytes(u.mem) : "–"}</td>
                    <td class="actions">
                      {running ? (
                        <IconButton label={`Stop ${name}`} icon="■" disabled={busy} onClick={() => act("stop", [c.Id])} />
                      ) : (
                        <IconButton label={`Start ${name}`} icon="▶" disabled={busy} onClick={() => act("start", [c.Id])} />
                      )}
                      <IconButton label={`Restart ${name}`} icon="↻" disabled={busy} onClick={() => act("restart", [c.Id])} />
                      <IconButton label={`Remove ${name}`} icon="✕" danger disabled={busy} onClick={() => act("remove", [c.Id])} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ))}
      {confirm && (
        <Confirm
          message={confirm.message}
          action="Stop and remove"
          onNo={() => setConfirm(null)}
          onYes={() => {
            const ids = confirm.ids;
            setConfirm(null);
            void doAct("remove", ids);
          }}
        />
      )}
    </section>
  );
}
