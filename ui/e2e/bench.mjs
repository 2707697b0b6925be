// bench/ui.sh's browser subject: N fresh chromium contexts, each timed from navigation
// to the rendered containers view. Prints the N times in ms, space-separated.
import { chromium } from "playwright-core";

const [url, runs = "10"] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const times = [];
try {
  for (let i = 0; i < Number(runs); i++) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const t0 = performance.now();
    await page.goto(url);
    await page.waitForSelector("body[data-containers-ready='1'] section[data-view='containers'] tbody tr", { timeout: 20000 });
    times.push(Math.round(performance.now() - t0));
    await ctx.close();
  }
} finally {
  await browser.close();
}
console.log(times.join(" "));
