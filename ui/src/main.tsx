import { render } from "preact";
import { Api } from "./api";
import { App } from "./app";
import { Store } from "./store";
import { HttpTransport, takeToken, type Transport } from "./transport";
import { isTauri, TauriTransport } from "./tauri";
import "./style.css";

const transport: Transport = isTauri() ? new TauriTransport() : new HttpTransport("", takeToken());
const store = new Store(new Api(transport));
const root = document.getElementById("app");
if (root) render(<App store={store} />, root);
void store.start();
