// Container detail: logs (follow, search, timestamps), a terminal over exec, inspect as
// JSON, a live CPU/memory graph from the stats stream, and the files changed.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Change } from "../api";
import { ErrorBox, Graph, IconButton, useAction, useStore, Confirm } from "../components";
import { bytes, cpuPercent, LogDecoder, memoryUsage, splitTimestamp, type LogLine } from "../format";
import { Terminal } from "./terminal";

const TABS = ["logs", "terminal", "inspect", "stats", "changes"] as const;
type Tab = (typeof TABS)[number];

/* eslint-disable @typescript-eslint/no-explicit-any */
export function DetailView({ id, tab }: { id: string; tab: string }) {
  const [state, store] = useStore();
  const api = store.api;
  const [info, setInfo] = useState<any>(null);
  const [error, setError] = useState<string | null>(null);
  const [run, busy, actionError] = useAction();
  const [confirm, setConfirm] = useState(false);
  const current: Tab = (TABS as readonly string[]).includes(tab) ? (tab as Tab) : "logs";

  useEffect(() => {
    api.inspect(id).then((v) => { setInfo(v); setError(null); }, (e) => setError(e.message));
  }, [api, id, state.tick]);

  const name = info ? String(info.Name ?? "").replace(/^\//, "") : id.slice(0, 12);
  const running = info?.State?.Running === true;
  const act = (f: () => Promise<unknown>) => run(async () => { await f(); setInfo(await api.inspect(id)); });
  const remove = () => run(async () => { await api.remove(id, true); location.hash = "#/containers"; });

  return (
    <section aria-labelledby="detail-title" data-view="detail">
      <header class="viewhead">
        <a href="#/containers" aria-label="Back to containers">←</a>
        <h1 id="detail-title">{name}</h1>
        {info && <span class={`state ${info.State?.Status}`} data-state={info.State?.Status}>{info.State?.Status}</span>}
        <div class="actions">
          {running ? <IconButton label={`Stop ${name}`} icon="■" disabled={busy} onClick={() => act(() => api.stop(id))} />
            : <IconButton label={`Start ${name}`} icon="▶" disabled={busy} onClick={() => act(() => api.start(id))} />}
          <IconButton label={`Restart ${name}`} icon="↻" disabled={busy} onClick={() => act(() => api.restart(id))} />
          <IconButton label={`Remove ${name}`} icon="✕" danger disabled={busy} onClick={() => (running ? setConfirm(true) : remove())} />
        </div>
      </header>
      <ErrorBox error={error} />
      <ErrorBox error={actionError} title="Action failed" />
      <nav class="tabs" role="tablist" aria-label="Container details">
        {TABS.map((t) => (
          <a role="tab" aria-selected={t === current} class={t === current ? "active" : ""} href={`#/containers/${id}/${t}`}>
            {t[0].toUpperCase() + t.slice(1)}
          </a>
        ))}
      </nav>
      <div role="tabpanel" class="panel">
        {current === "logs" && info && <Logs id={id} tty={info.Config?.Tty === true} />}
        {current === "terminal" && (running ? <Terminal id={id} /> : <p class="empty">The container is not running: start it to open a terminal.</p>)}
        {current === "inspect" && info && <pre class="json" data-testid="inspect">{JSON.stringify(info, null, 2)}</pre>}
        {current === "stats" && (running ? <Stats id={id} /> : <p class="empty">The container is not running.</p>)}
        {current === "changes" && <Changes id={id} tick={state.tick} />}
      </div>
      {confirm && <Confirm message={`${name} is running. Stop and remove it?`} action="Stop and remove" onNo={() => setConfirm(false)} onYes={() => { setConfirm(false); void remove(); }} />}
    </section>
  );
}

const MAX_LINES = 5000;

function Logs({ id, tty }: { id: string; tty: boolean }) {
  const { api } = useStore()[1];
  const [lines, setLines] = useState<LogLine[]>([]);
  const [follow, setFollow] = useState(true);
  const [stamps, setStamps] = useState(false);
  const [search, setSearch] = useState("");
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLPreElement>(null);

  useEffect(() => {
    setLines([]);
    const dec = new LogDecoder(tty);
    const h = api.t.stream("GET", `/containers/${id}/logs?stdout=1&stderr=1&timestamps=1&tail=1000&follow=${follow ? 1 : 0}`, null, (chunk) => {
      const add = dec.push(chunk);
      if (add.length) setLines((l) => [...l, ...add].slice(-MAX_LINES));
    });
    h.status.then((s) => setError(s >= 400 ? `the daemon answered ${s}` : null));
    return () => h.close();
  }, [api, id, tty, follow]);

  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, follow]);

  const shown = useMemo(() => {
    const needle = search.toLowerCase();
    return lines.map((l) => ({ ...l, ...splitTimestamp(l.text) })).filter((l) => !needle || l.text.toLowerCase().includes(needle));
  }, [lines, search]);

  return (
    <div class="logs">
      <div class="row">
        <input type="search" aria-label="Search logs" placeholder="Search logs" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        <label><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> Follow</label>
        <label><input type="checkbox" checked={stamps} onChange={(e) => setStamps(e.currentTarget.checked)} /> Timestamps</label>
      </div>
      <ErrorBox error={error} />
      <pre class="logbox" ref={box} data-testid="logs" tabIndex={0} aria-label="Container logs">
        {shown.map((l) => (
          <div class={l.stream}>{stamps && l.time ? <span class="ts">{l.time} </span> : null}{l.text}</div>
        ))}
      </pre>
    </div>
  );
}

function Stats({ id }: { id: string }) {
  const { api } = useStore()[1];
  const [cpu, setCpu] = useState<number[]>([]);
  const [mem, setMem] = useState<number[]>([]);
  const [limit, setLimit] = useState(0);
  useEffect(() => {
    const h = api.jsonStream<any>("GET", `/containers/${id}/stats?stream=1`, (s) => {
      const m = memoryUsage(s);
      setCpu((v) => [...v, cpuPercent(s)].slice(-60));
      setMem((v) => [...v, m.used].slice(-60));
      setLimit(m.limit);
    });
    return () => h.close();
  }, [api, id]);
  return (
    <div class="stats" data-testid="stats">
      <Graph label="CPU" values={cpu} max={0} unit={(v) => `${v.toFixed(1)} %`} />
      <Graph label="Memory" values={mem} max={0} unit={(v) => `${bytes(v)}${limit ? ` of ${bytes(limit)}` : ""}`} />
    </div>
  );
}

const KIND = ["C", "A", "D"];
const KIND_NAME = ["changed", "added", "deleted"];

function Changes({ id, tick }: { id: string; tick: number }) {
  const { api } = useStore()[1];
  const [changes, setChanges] = useState<Change[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.changes(id).then((c) => { setChanges(c ?? []); setError(null); }, (e) => setError(e.message));
  }, [api, id, tick]);
  return (
    <div data-testid="changes">
      <ErrorBox error={error} />
      {changes && !changes.length && <p class="empty">No files changed.</p>}
      <ul class="changes">
        {(changes ?? []).map((c) => (
          <li class={`kind${c.Kind}`}><abbr title={KIND_NAME[c.Kind]}>{KIND[c.Kind] ?? "?"}</abbr> {c.Path}</li>
        ))}
      </ul>
    </div>
  );
}
