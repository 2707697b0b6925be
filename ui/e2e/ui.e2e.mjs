// End-to-end test of the dashboard in a real browser: Debian's chromium driven by
// playwright-core, against the UI served by `vmrun ui --browser` in front of a real
// daemon with real containers. Started by tests/e2e/tests/ui_browser.rs, which sets:
//   UI_URL        the URL `vmrun ui --browser` printed (with its token)
//   UI_CLI        JSON array: the CLI and its flags (e.g. ["/…/vmrun","-H","unix:///…"])
//   UI_MODE       "vmrund" (the full scenario) or "dockerd" (the same views against Debian's dockerd)
//   UI_SHOTS      directory for screenshots
//   UI_PULL_REF   (vmrund) an image in the local test registry to pull
//   UI_DAEMON_PID (vmrund) the daemon to stop for the "start daemon" check
// Prints one line per check and `RESULT {json}` with the measured times; exits 1 on failure.

import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const env = (k, d) => process.env[k] ?? d;
const URL_ = env("UI_URL");
const CLI = JSON.parse(env("UI_CLI", "[]"));
const MODE = env("UI_MODE", "vmrund");
const SHOTS = env("UI_SHOTS", "/tmp/vmrun-ui-shots");
const prefix = MODE === "dockerd" ? "ui-ref" : "ui-e2e";
mkdirSync(SHOTS, { recursive: true });
const results = {};

const cli = (...args) => execFileSync(CLI[0], [...CLI.slice(1), ...args], { encoding: "utf8", timeout: 60000 }).trim();
const say = (m) => console.log(`ui-e2e: ${m}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, f, timeout = 15000) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      if (await f()) return;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}
const state = (name) => {
  try {
    return cli("inspect", "-f", "{{.State.Status}}", name);
  } catch {
    return "gone";
  }
};

const browser = await chromium.launch({
  executablePath: env("UI_CHROMIUM", "/usr/bin/chromium"),
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let page;
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await ctx.newPage();
  page.on("pageerror", (e) => say(`page error: ${e.message}`));
  const shot = (name) => page.screenshot({ path: `${SHOTS}/${name}.png` });

  const t0 = Date.now();
  await page.goto(URL_);
  await page.waitForSelector("body[data-containers-ready='1']", { timeout: 10000 });
  results.firstRenderMs = Date.now() - t0;
  say(`containers view rendered in ${results.firstRenderMs} ms`);

  // A container started with the CLI appears within a second (live from /events).
  const name = `${prefix}-a`;
  const cmd = "echo hello-from-$((40+2)); trap 'exit 0' TERM; while true; do sleep 1; done";
  // (dockerd runs here without a bridge: no published port there.)
  const ports = MODE === "dockerd" ? [] : ["-p", "18089:80"];
  cli("run", "-d", "--name", name, ...ports, "busybox", "sh", "-c", cmd);
  const tRun = Date.now();
  await page.waitForSelector(`tr[data-container='${name}'] [data-state='running']`, { timeout: 5000 });
  results.appearMs = Date.now() - tRun;
  say(`container started with the CLI appeared after ${results.appearMs} ms`);
  if (results.appearMs > 1000) throw new Error(`appeared after ${results.appearMs} ms (more than 1 s)`);
  // Grouped by compose project; search filters the list.
  cli("run", "-d", "--name", `${prefix}-p`, "--label", "com.docker.compose.project=uiproj", "busybox", "sleep", "300");
  await page.waitForSelector("h2.project:has-text('uiproj') + table tr[data-container='" + `${prefix}-p` + "']", { timeout: 5000 });
  await page.fill("input[aria-label='Search containers']", "uiproj");
  await until("the search to filter", async () => (await page.$$("tr[data-container]")).length === 1);
  await shot(`${MODE}-containers`);
  await page.fill("input[aria-label='Search containers']", "");
  cli("rm", "-f", `${prefix}-p`);
  await page.waitForSelector(`tr[data-container='${prefix}-p']`, { state: "detached", timeout: 5000 });
  say("compose project group shown; search filtered the list; a removal from the CLI left the list");

  // Every button has a name for screen readers; the keyboard reaches search and views.
  const unnamed = await page.$$eval("button", (bs) => bs.filter((b) => !(b.getAttribute("aria-label") || b.textContent?.trim())).length);
  if (unnamed) throw new Error(`${unnamed} buttons without a label`);
  await page.locator("body").click({ position: { x: 5, y: 780 } });
  await page.keyboard.press("/");
  if (!(await page.evaluate(() => document.activeElement?.getAttribute("aria-label") === "Search containers"))) throw new Error("'/' did not focus the search");
  await page.keyboard.press("Escape");
  await page.locator("body").click({ position: { x: 5, y: 780 } });
  await page.keyboard.press("Alt+2");
  await page.waitForSelector("section[data-view='images']", { timeout: 5000 });
  await page.keyboard.press("Alt+1");
  await page.waitForSelector("section[data-view='containers']", { timeout: 5000 });
  say("buttons are labelled; '/' focuses search, Alt+N switches views");

  // The theme follows the OS: a dark-scheme page has a dark background.
  const dark = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "dark" });
  const darkPage = await dark.newPage();
  await darkPage.goto(URL_);
  await darkPage.waitForSelector("body[data-containers-ready='1']", { timeout: 10000 });
  const bg = await darkPage.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = (bg.match(/\d+/g) ?? ["255", "255", "255"]).map(Number);
  if (r + g + b > 150) throw new Error(`dark scheme, but the background is ${bg}`);
  await darkPage.screenshot({ path: `${SHOTS}/${MODE}-dark.png` });
  await dark.close();
  say(`dark OS theme gives a dark page (${bg})`);

  if (MODE === "dockerd") {
    // The same views list dockerd's objects: images, volumes, networks, system.
    await page.goto(URL_.replace(/\/\?.*/, "/#/images"));
    await page.waitForSelector("tr[data-image^='busybox']", { timeout: 10000 });
    await page.goto(URL_.replace(/\/\?.*/, "/#/networks"));
    await page.waitForSelector("tr[data-network='bridge'], tr[data-network='none']", { timeout: 10000 });
    await page.goto(URL_.replace(/\/\?.*/, "/#/system"));
    await page.waitForSelector("[data-testid='engine'] dd", { timeout: 10000 });
    await until("the engine version", async () => !(await page.textContent("[data-testid='engine']")).includes("–  (API"));
    await shot("dockerd-system");
    say("dockerd: containers, images, networks and system views listed its objects");
  } else {
    // Logs show what the container printed.
    await page.click(`tr[data-container='${name}'] a[href^='#/containers/']`);
    await until("the logs", async () => (await page.textContent("[data-testid='logs']")).includes("hello-from-42"));
    await shot("vmrund-logs");
    say("logs show what the container printed");

    // The terminal runs echo and shows the output.
    await page.click("a[role='tab']:has-text('Terminal')");
    await page.waitForSelector(".xterm-rows", { timeout: 10000 });
    await until("a prompt", async () => (await page.textContent(".xterm-rows")).includes("#"), 10000);
    await page.locator(".xterm-helper-textarea").focus();
    await page.keyboard.type("echo term-$((6*7))\n");
    await until("the echo output", async () => (await page.textContent(".xterm-rows")).includes("term-42"), 10000);
    await shot("vmrund-terminal");
    say("the terminal ran echo and showed its output");

    // Inspect and changes render.
    await page.click("a[role='tab']:has-text('Inspect')");
    await until("inspect JSON", async () => (await page.textContent("[data-testid='inspect']")).includes(`"Name": "/${name}"`));
    await page.click("a[role='tab']:has-text('Changes')");
    await page.waitForSelector("[data-testid='changes']");
    // The stats graph draws from the live stats stream (two samples make a line).
    await page.click("a[role='tab']:has-text('Stats')");
    await until("two stats samples", async () => ((await page.getAttribute("[data-testid='stats'] polyline", "points")) ?? "").trim().split(" ").length >= 2, 10000);
    say("inspect, changes and the live stats graph rendered");

    // Stopping it from the UI stops it (checked with the CLI).
    await page.click(`button[aria-label='Stop ${name}']`);
    await until("the CLI to see it exited", async () => state(name) === "exited", 20000);
    await page.waitForSelector(`[data-state='exited']`, { timeout: 5000 });
    say("stopping from the UI stopped it (CLI says exited)");

    // Removing a running container asks for confirmation.
    await page.goto(URL_.replace(/\/\?.*/, "/#/containers"));
    cli("start", name);
    await page.waitForSelector(`tr[data-container='${name}'] [data-state='running']`, { timeout: 5000 });
    await page.click(`button[aria-label='Remove ${name}']`);
    await page.waitForSelector("[role='dialog']:has-text('is running')", { timeout: 5000 });
    await shot("vmrund-confirm-remove");
    await page.click("[role='dialog'] button:has-text('Cancel')");
    if (state(name) !== "running") throw new Error("cancelling the confirmation removed or stopped it");
    await page.click(`button[aria-label='Remove ${name}']`);
    await page.click("[role='dialog'] button:has-text('Stop and remove')");
    await until("the CLI to see it gone", async () => state(name) === "gone", 20000);
    say("removing a running container asked for confirmation; confirmed, it is gone");

    // Pulling from the local registry shows progress, then the image.
    const ref = env("UI_PULL_REF");
    await page.goto(URL_.replace(/\/\?.*/, "/#/images"));
    await page.fill("input[aria-label='Image to pull']", ref);
    const tPull = Date.now();
    await page.click("button:has-text('Pull')");
    await page.waitForSelector("[data-testid='pull'] progress", { timeout: 15000 });
    await until("the pull to finish", async () => (await page.textContent("[data-testid='pull']")).includes("Pull complete."), 30000);
    results.pullMs = Date.now() - tPull;
    const pullText = await page.textContent("[data-testid='pull']");
    if (pullText.includes("Pull failed")) throw new Error(`pull failed: ${pullText}`);
    const layers = await page.$$eval("[data-testid='pull'] .layer", (els) => els.map((e) => e.textContent ?? ""));
    if (!layers.some((t) => /Pull complete/.test(t))) throw new Error(`no layer was downloaded: ${pullText}`);
    results.pullLayers = layers;
    await page.waitForSelector(`tr[data-image='${ref}']`, { timeout: 5000 });
    await shot("vmrund-pull");
    say(`pulling ${ref} showed per-layer progress, then the image (${results.pullMs} ms)`);

    // The run dialog starts a container from the pulled image (checked with the CLI).
    await page.click(`button[aria-label='Run ${ref}']`);
    await page.fill("[role='dialog'] label:has-text('Name') input", `${prefix}-run`);
    await page.fill("[role='dialog'] label:has-text('Command') input", "sh -c 'echo from-run-dialog; sleep 300'");
    await page.fill("[role='dialog'] label:has-text('Environment') textarea", "GREETING=hi");
    await page.click("[role='dialog'] button[type='submit']");
    await until("the CLI to see it running", async () => state(`${prefix}-run`) === "running", 20000);
    if (!cli("inspect", "-f", "{{json .Config.Env}}", `${prefix}-run`).includes("GREETING=hi")) throw new Error("the env did not reach the container");
    await until("its logs", async () => ((await page.textContent("[data-testid='logs']")) ?? "").includes("from-run-dialog"));
    cli("rm", "-f", `${prefix}-run`);
    say("the run dialog started a container from the pulled image (name, command, env)");

    // Volumes and networks views list and create.
    await page.goto(URL_.replace(/\/\?.*/, "/#/volumes"));
    await page.fill("input[aria-label='New volume name']", `${prefix}-vol`);
    await page.click("form[aria-label='Create a volume'] button");
    await page.waitForSelector(`tr[data-volume='${prefix}-vol']`, { timeout: 5000 });
    cli("volume", "inspect", `${prefix}-vol`);
    await page.goto(URL_.replace(/\/\?.*/, "/#/system"));
    await page.waitForSelector("[data-testid='vm'] dl, [data-testid='vm'] .error", { timeout: 10000 });
    await shot("vmrund-system");
    say("volume created from the UI exists for the CLI; system view rendered");

    // A stopped daemon shows the start action, and the action works.
    const pid = Number(env("UI_DAEMON_PID", "0"));
    if (pid > 0) {
      await page.goto(URL_.replace(/\/\?.*/, "/#/containers"));
      await page.waitForSelector("body[data-containers-ready='1']");
      process.kill(pid, "SIGTERM");
      await page.waitForSelector("[data-testid='daemon-down'] button:has-text('Start daemon')", { timeout: 20000 });
      await shot("vmrund-daemon-down");
      await page.click("[data-testid='daemon-down'] button:has-text('Start daemon')");
      await page.waitForSelector("section[data-view='containers']", { timeout: 30000 });
      if (await page.$("[data-testid='daemon-down']")) throw new Error("the banner stayed after the daemon started");
      cli("version");
      say("the stopped daemon showed the start action; it started the daemon again");
    }
  }
  console.log(`RESULT ${JSON.stringify(results)}`);
} catch (e) {
  if (page) await page.screenshot({ path: `${SHOTS}/${MODE}-failure.png` }).catch(() => undefined);
  console.error(`ui-e2e: FAILED: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
