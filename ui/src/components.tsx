// Small shared pieces: the store hook, error boxes, the confirmation dialog, icon
// buttons with labels for screen readers, and the SVG graph.

import type { ComponentChildren } from "preact";
import { createContext } from "preact";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import type { Store, State } from "./store";

export const StoreContext = createContext<Store | null>(null);

export function useStore(): [State, Store] {
  const store = useContext(StoreContext);
  if (!store) throw new Error("no store");
  const [, force] = useState(0);
  useEffect(() => store.subscribe(() => force((n) => n + 1)), [store]);
  return [store.state, store];
}

export function ErrorBox({ error, title }: { error: string | null | undefined; title?: string }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      <strong>{title ?? "The daemon answered with an error"}:</strong> {error}
    </div>
  );
}

export function IconButton(props: { label: string; icon: string; onClick: () => void; disabled?: boolean; danger?: boolean }) {
  return (
    <button type="button" class={`icon${props.danger ? " danger" : ""}`} aria-label={props.label} title={props.label} disabled={props.disabled} onClick={props.onClick}>
      <span aria-hidden="true">{props.icon}</span>
    </button>
  );
}

/** A modal asking to confirm; Escape or "Cancel" says no. */
export function Confirm(props: { message: string; action: string; onYes: () => void; onNo: () => void }) {
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => yes.current?.focus(), []);
  return (
    <Modal title="Please confirm" onClose={props.onNo}>
      <p>{props.message}</p>
      <div class="row end">
        <button type="button" onClick={props.onNo}>Cancel</button>
        <button type="button" class="danger" ref={yes} onClick={props.onYes}>{props.action}</button>
      </div>
    </Modal>
  );
}

export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  useEffect(() => {
    const key = (e: KeyboardEvent) => e.key === "Escape" && props.onClose();
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, [props.onClose]);
  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && props.onClose()}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={props.title}>
        <h2>{props.title}</h2>
        {props.children}
      </div>
    </div>
  );
}

/** Runs an action, shows its error in place, and reports when it is busy. */
export function useAction(): [(f: () => Promise<unknown>) => Promise<void>, boolean, string | null, () => void] {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return [run, busy, error, () => setError(null)];
}

/** A line graph of the last values (0..max), drawn as SVG. */
export function Graph(props: { values: number[]; max: number; label: string; unit: (v: number) => string }) {
  const w = 300, h = 80;
  const max = props.max > 0 ? props.max : Math.max(1, ...props.values);
  const n = props.values.length;
  const pts = props.values.map((v, i) => `${n <= 1 ? w : (i / (n - 1)) * w},${h - (Math.min(v, max) / max) * h}`).join(" ");
  const last = n ? props.values[n - 1] : 0;
  return (
    <figure class="graph">
      <figcaption>
        {props.label}: <strong>{props.unit(last)}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label={`${props.label} ${props.unit(last)}`}>
        <polyline points={pts} fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" />
      </svg>
    </figure>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}
