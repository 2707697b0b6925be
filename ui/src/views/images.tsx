// Images: list with size and age, pull with a progress bar per layer, remove, and the
// "run" dialog (name, ports, env, volumes, isolation, command).

import { useState } from "preact/hooks";
import type { ImageSummary } from "../api";
import { Empty, ErrorBox, IconButton, Modal, useAction, useStore } from "../components";
import { age, applyPull, bytes, emptyPull, layerPercent, type PullState } from "../format";
import { emptyRunForm, runRequest, type RunForm } from "../runform";

const tagOf = (img: ImageSummary) => img.RepoTags?.find((t) => t !== "<none>:<none>") ?? img.Id.replace(/^sha256:/, "").slice(0, 12);

export function ImagesView() {
  const [state, store] = useStore();
  const api = store.api;
  const [ref, setRef] = useState("");
  const [pull, setPull] = useState<PullState | null>(null);
  const [runFor, setRunFor] = useState<RunForm | null>(null);
  const [run, busy, error] = useAction();

  const startPull = (e: Event) => {
    e.preventDefault();
    const image = ref.trim();
    if (!image) return;
    let st = emptyPull();
    setPull(st);
    const [name, tag] = splitRef(image);
    const h = api.jsonStream<Record<string, never>>("POST", `/images/create?fromImage=${encodeURIComponent(name)}&tag=${encodeURIComponent(tag)}`, (m) => {
      st = applyPull(st, m);
      setPull(st);
    });
    h.status.then((s) => {
      if (s >= 400) setPull((p) => ({ ...(p ?? emptyPull()), error: p?.error ?? `the daemon answered ${s}` }));
    });
    h.done.then((err) => {
      setPull((p) => ({ ...(p ?? emptyPull()), done: true, error: p?.error ?? err }));
      void store.refresh("images");
    });
  };

  const images = state.images.data ?? [];
  return (
    <section aria-labelledby="images-title" data-view="images">
      <header class="viewhead">
        <h1 id="images-title">Images</h1>
        <form class="row" onSubmit={startPull} aria-label="Pull an image">
          <input aria-label="Image to pull" placeholder="registry/repo:tag" value={ref} onInput={(e) => setRef(e.currentTarget.value)} />
          <button type="submit" disabled={!!pull && !pull.done}>Pull</button>
        </form>
      </header>
      {pull && <PullProgress st={pull} onClose={() => setPull(null)} />}
      <ErrorBox error={state.images.error} />
      <ErrorBox error={error} title="Action failed" />
      {state.images.data && !images.length && <Empty>No images. Pull one above.</Empty>}
      {images.length > 0 && (
        <table class="list">
          <thead>
            <tr><th scope="col">Image</th><th scope="col">ID</th><th scope="col">Size</th><th scope="col">Created</th><th scope="col"><span class="sr">Actions</span></th></tr>
          </thead>
          <tbody>
            {images.map((img) => {
              const tag = tagOf(img);
              return (
                <tr key={img.Id} data-image={tag}>
                  <td>{(img.RepoTags ?? ["<none>"]).join(", ")}</td>
                  <td><code>{img.Id.replace(/^sha256:/, "").slice(0, 12)}</code></td>
                  <td>{bytes(img.Size)}</td>
                  <td>{age(img.Created)}</td>
                  <td class="actions">
                    <IconButton label={`Run ${tag}`} icon="▶" onClick={() => setRunFor(emptyRunForm(tag))} />
                    <IconButton label={`Remove ${tag}`} icon="✕" danger disabled={busy} onClick={() => run(async () => { await api.removeImage(img.RepoTags?.[0] ?? img.Id); await store.refresh("images"); })} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {runFor && <RunDialog initial={runFor} onClose={() => setRunFor(null)} />}
    </section>
  );
}

/** `repo[:tag][@digest]` → [fromImage, tag] as `docker pull` sends them. */
export function splitRef(image: string): [string, string] {
  if (image.includes("@")) return [image, ""];
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  return colon > slash ? [image.slice(0, colon), image.slice(colon + 1)] : [image, "latest"];
}

function PullProgress({ st, onClose }: { st: PullState; onClose: () => void }) {
  return (
    <div class="pull" data-testid="pull" aria-live="polite">
      {st.layers.map((l) => (
        <div class="layer" key={l.id}>
          <code>{l.id}</code>
          <progress max={100} value={layerPercent(l)} aria-label={`Layer ${l.id}`} />
          <span>{l.status}{l.total ? ` ${bytes(l.current)} / ${bytes(l.total)}` : ""}</span>
        </div>
      ))}
      {st.messages.slice(-3).map((m) => <div class="msg">{m}</div>)}
      <ErrorBox error={st.error} title="Pull failed" />
      {st.done && (
        <p>
          {st.error ? "The pull failed." : "Pull complete."} <button type="button" onClick={onClose}>Close</button>
        </p>
      )}
    </div>
  );
}

function RunDialog({ initial, onClose }: { initial: RunForm; onClose: () => void }) {
  const [, store] = useStore();
  const [form, setForm] = useState(initial);
  const [run, busy, error] = useAction();
  const [invalid, setInvalid] = useState<string | null>(null);
  const field = (k: keyof RunForm, label: string, multi = false, hint = "") => (
    <label>
      {label}
      {multi ? (
        <textarea rows={3} placeholder={hint} value={form[k]} onInput={(e) => setForm({ ...form, [k]: e.currentTarget.value })} />
      ) : (
        <input placeholder={hint} value={form[k]} onInput={(e) => setForm({ ...form, [k]: e.currentTarget.value })} />
      )}
    </label>
  );
  const submit = (e: Event) => {
    e.preventDefault();
    const req = runRequest(form);
    if ("error" in req) return setInvalid(req.error);
    setInvalid(null);
    void run(async () => {
      const id = await store.api.run(form.image, req.body, form.name.trim() || undefined);
      await store.refresh("containers");
      onClose();
      location.hash = `#/containers/${id}`;
    });
  };
  return (
    <Modal title={`Run ${initial.image}`} onClose={onClose}>
      <form class="form" onSubmit={submit}>
        {field("name", "Name", false, "optional")}
        {field("command", "Command", false, "image default")}
        {field("ports", "Ports", false, "8080:80, 53:53/udp")}
        {field("env", "Environment", true, "NAME=value, one a line")}
        {field("volumes", "Volumes", false, "data:/data, /host/dir:/mnt:ro")}
        <label>
          Isolation
          <select value={form.isolation} onChange={(e) => setForm({ ...form, isolation: e.currentTarget.value })}>
            <option value="default">Daemon default</option>
            <option value="process">Process (native)</option>
            <option value="vm">Own VM</option>
            <option value="shared-vm">Shared VM</option>
          </select>
        </label>
        <ErrorBox error={invalid} title="Check the form" />
        <ErrorBox error={error} title="Run failed" />
        <div class="row end">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" disabled={busy}>Run</button>
        </div>
      </form>
    </Modal>
  );
}
