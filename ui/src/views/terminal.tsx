// A real terminal: xterm.js over `exec` with a TTY; keystrokes go to the exec's stdin,
// size changes to `POST /exec/{id}/resize`.

import { useEffect, useRef, useState } from "preact/hooks";
import { Terminal as XTerm } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { ErrorBox, useStore } from "../components";

export function Terminal({ id }: { id: string }) {
  const { api } = useStore()[1];
  const el = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [ended, setEnded] = useState(false);
  const [session, setSession] = useState(0);

  useEffect(() => {
    if (!el.current) return;
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    const term = new XTerm({ convertEol: false, cursorBlink: true, fontSize: 13, theme: dark ? {} : { background: "#ffffff", foreground: "#1e1e1e", cursor: "#1e1e1e" } });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el.current);
    fit.fit();
    let closed = false;
    let cleanup = () => {};
    setEnded(false);
    api.createExec(id, ["/bin/sh"]).then(
      (execId) => {
        if (closed) return;
        const h = api.t.exec(execId, (chunk) => term.write(chunk));
        const input = term.onData((d) => h.send(d));
        const resize = () => {
          fit.fit();
          void api.resizeExec(execId, term.rows, term.cols).catch(() => undefined);
        };
        const onResize = term.onResize(() => void api.resizeExec(execId, term.rows, term.cols).catch(() => undefined));
        window.addEventListener("resize", resize);
        h.status.then((s) => s > 0 && s < 400 && resize());
        h.done.then((err) => {
          if (err) setError(err);
          setEnded(true);
        });
        term.focus();
        cleanup = () => {
          input.dispose();
          onResize.dispose();
          window.removeEventListener("resize", resize);
          h.close();
        };
      },
      (e) => setError(e.message),
    );
    return () => {
      closed = true;
      cleanup();
      term.dispose();
    };
  }, [api, id, session]);

  return (
    <div class="terminal">
      <ErrorBox error={error} />
      {ended && (
        <p>
          The shell ended. <button type="button" onClick={() => setSession((n) => n + 1)}>Open a new shell</button>
        </p>
      )}
      <div ref={el} class="xterm-host" data-testid="terminal" aria-label="Terminal" />
    </div>
  );
}
