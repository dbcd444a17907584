// `hearth-bench ui`'s browser half: Home's weight and its time to first render in Debian's Chromium, against the
// same bytes served by a static file server in the same run (the baseline: what rendering the page on the box
// costs over sending a file). Prints one JSON line.
//
// Environment: HEARTH_URL, HEARTH_TOKEN_FILE, HEARTH_CHROMIUM, HEARTH_RUNS, NODE_PATH.
"use strict";

const fs = require("fs");
const http = require("http");
const { chromium } = require("playwright-core");

const URL_BASE = process.env.HEARTH_URL;
const TOKEN = fs.readFileSync(process.env.HEARTH_TOKEN_FILE, "utf8").trim();
const RUNS = Number(process.env.HEARTH_RUNS || "20");

async function signIn(page) {
  await page.goto(`${URL_BASE}/signin`);
  await page.fill("#secret", TOKEN);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  if (new URL(page.url()).pathname !== "/") throw new Error(`sign-in failed: ${page.url()}`);
}

// Home and its assets as hearthd sent them, to serve the same bytes statically.
async function capture(page) {
  const response = await page.goto(`${URL_BASE}/`);
  const files = { "/": { type: "text/html; charset=utf-8", body: await response.body(), cache: "no-store" } };
  const assets = await page.$$eval("link[href], script[src]", (els) => els.map((el) => el.getAttribute("href") || el.getAttribute("src")));
  for (const asset of assets) {
    const fetched = await page.request.get(URL_BASE + asset);
    files[asset.split("?")[0]] = {
      type: fetched.headers()["content-type"],
      body: await fetched.body(),
      cache: "public, max-age=31536000, immutable",
    };
  }
  return files;
}

function staticServer(files) {
  const server = http.createServer((request, response) => {
    const file = files[request.url.split("?")[0]];
    if (!file) {
      response.writeHead(404);
      return response.end();
    }
    response.writeHead(200, { "content-type": file.type, "cache-control": file.cache });
    response.end(file.body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function firstRender(context, url) {
  const page = await context.newPage();
  await page.goto(url, { waitUntil: "load" });
  // The paint entry can come after `load` (cached assets): wait for it, up to 5 s.
  const timing = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const ttfb = performance.getEntriesByType("navigation")[0].responseStart;
        const done = (entry) => resolve({ fcp: entry ? entry.startTime : null, ttfb });
        const seen = performance.getEntriesByName("first-contentful-paint")[0];
        if (seen) return done(seen);
        new PerformanceObserver((list) => {
          const entry = list.getEntriesByName("first-contentful-paint")[0];
          if (entry) done(entry);
        }).observe({ type: "paint", buffered: true });
        setTimeout(() => done(null), 5000);
      }),
  );
  await page.close();
  if (timing.fcp === null) throw new Error(`${url}: no first-contentful-paint entry`);
  return timing;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.HEARTH_CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await signIn(page);
    const files = await capture(page);
    const server = await staticServer(files);
    const staticUrl = `http://127.0.0.1:${server.address().port}/`;
    // Warm both: the assets are cached after the first load, as for a person coming back to the page.
    await firstRender(context, `${URL_BASE}/`);
    await firstRender(context, staticUrl);
    const hearth = [];
    const baseline = [];
    for (let run = 0; run < RUNS; run++) {
      hearth.push(await firstRender(context, `${URL_BASE}/`));
      baseline.push(await firstRender(context, staticUrl));
    }
    server.close();
    const weights = Object.fromEntries(Object.entries(files).map(([path, file]) => [path, file.body.length]));
    console.log(JSON.stringify({ weights, hearth, baseline }));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
