// The shell: navigation, hash routing, the daemon banner ("start daemon" when none
// answers), and the test hook that end-to-end tests and the benchmark read.

import { useEffect, useState } from "preact/hooks";
import { ErrorBox, StoreContext, useStore } from "./components";
import { isTauri, reportReady } from "./tauri";
import type { Store } from "./store";
import { ContainersView } from "./views/containers";
import { DetailView } from "./views/detail";
import { ImagesView } from "./views/images";
import { NetworksView, VolumesView } from "./views/resources";
import { SystemView } from "./views/system";

const NAV = [
  ["containers", "Containers"],
  ["images", "Images"],
  ["volumes", "Volumes"],
  ["networks", "Networks"],
  ["system", "VM and settings"],
] as const;

function useHash(): string[] {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash.replace(/^#\/?/, "").split("/").filter(Boolean);
}

function DaemonBanner() {
  const [state, store] = useStore();
  const [starting, setStarting] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (state.daemon !== "down") return null;
  const start = async () => {
    setStarting(true);
    setError(null);
    const r = await store.api.t.startDaemon();
    setStarting(false);
    if (r.status >= 200 && r.status < 300) void store.start();
    else {
      try {
        setError((JSON.parse(r.text) as { message?: string }).message ?? r.text);
      } catch {
        setError(r.text || `failed (${r.status})`);
      }
    }
  };
  return (
    <div class="banner" role="alert" data-testid="daemon-down">
      <p>
        <strong>The vmrun daemon is not running.</strong> {state.daemonError}
      </p>
      <button type="button" onClick={start} disabled={starting}>{starting ? "Starting…" : "Start daemon"}</button>
      <ErrorBox error={error} title="Could not start the daemon" />
    </div>
  );
}

function Routes() {
  const [view, id, tab] = useHash();
  const [state] = useStore();
  useEffect(() => {
    // Test hook: which view rendered, and whether the containers list has data.
    document.body.dataset.view = view ?? "containers";
    document.body.dataset.daemon = state.daemon;
    if (state.containers.data) {
      document.body.dataset.containersReady = "1";
      if (isTauri() && (view ?? "containers") === "containers") reportReady("containers", state.containers.data.map((c) => (c.Names?.[0] ?? c.Id).replace(/^\//, "")));
    }
  });
  if (state.daemon === "connecting") return <p class="empty" aria-busy="true">Connecting to the daemon…</p>;
  if (state.daemon === "down") return null;
  switch (view ?? "containers") {
    case "containers":
      return id ? <DetailView id={id} tab={tab ?? "logs"} /> : <ContainersView />;
    case "images":
      return <ImagesView />;
    case "volumes":
      return <VolumesView />;
    case "networks":
      return <NetworksView />;
    case "system":
      return <SystemView />;
    default:
      return <ErrorBox error={`no view "${view}"`} title="Not found" />;
  }
}

function Nav() {
  const [view] = useHash();
  const current = view ?? "containers";
  return (
    <nav class="side" aria-label="Main">
      <div class="brand">vmrun</div>
      <ul>
        {NAV.map(([key, label]) => (
          <li>
            <a href={`#/${key}`} aria-current={current === key ? "page" : undefined} aria-keyshortcuts={`Alt+${NAV.findIndex(([k]) => k === key) + 1}`}>{label}</a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

/** "/" focuses the view's search field; Alt+1…5 switch views. */
function useShortcuts() {
  useEffect(() => {
    const on = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.closest(".xterm"));
      if (e.key === "/" && !typing) {
        const search = document.querySelector<HTMLInputElement>("main input[type='search']");
        if (search) {
          e.preventDefault();
          search.focus();
        }
      } else if (e.altKey && /^[1-5]$/.test(e.key)) {
        e.preventDefault();
        location.hash = `#/${NAV[Number(e.key) - 1][0]}`;
      }
    };
    window.addEventListener("keydown", on);
    return () => window.removeEventListener("keydown", on);
  }, []);
}

export function App({ store }: { store: Store }) {
  useShortcuts();
  return (
    <StoreContext.Provider value={store}>
      <div class="layout">
        <Nav />
        <main>
          <DaemonBanner />
          <Routes />
        </main>
      </div>
    </StoreContext.Provider>
  );
}
