// The web UI in a real browser: Debian's Chromium driven by playwright-core, against a real hearthd.
// crates/hearthd/tests/ui.rs starts hearthd and runs this; every check throws on failure, and the last line of
// stdout is a JSON summary that the Rust side checks again against the API.
//
// Environment: HEARTH_URL, HEARTH_TOKEN_FILE (read here, never passed on a command line), HEARTH_FIXTURES (a
// directory with harbour.txt, garden.md, lighthouse.pdf), HEARTH_OUT (screenshots), HEARTH_CHROMIUM,
// NODE_PATH (the cached node_modules).
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const { chromium } = require("playwright-core");

const URL_BASE = process.env.HEARTH_URL;
const TOKEN = fs.readFileSync(process.env.HEARTH_TOKEN_FILE, "utf8").trim();
const FIXTURES = process.env.HEARTH_FIXTURES;
const OUT = process.env.HEARTH_OUT;
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const PORT = new URL(URL_BASE).port;
const WIDTHS = { phone: { width: 390, height: 844 }, laptop: { width: 1280, height: 800 } };

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function step(name) {
  console.log(`ui: ${name}`);
}

// The API as a client with the bearer token sees it, to check what the browser did or could not do.
async function api(pathname) {
  const response = await fetch(URL_BASE + pathname, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: response.status, body: await response.json() };
}

async function signIn(page) {
  step("sign in with a wrong token, then the right one");
  const first = await page.goto(URL_BASE + "/library");
  check(new URL(page.url()).pathname === "/signin", `not signed in, / should send to /signin, got ${page.url()}`);
  check(first.status() === 200, "the sign-in page answers 200");
  await page.fill("#secret", "not-the-token-not-the-token-not-the-token");
  const [refused] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check(refused.status() === 401, `a wrong token gets 401, got ${refused.status()}`);
  const message = await page.textContent("#signin-error");
  check(/neither this appliance's API token nor its setup code/.test(message), `the refusal says why: ${message}`);
  await page.fill("#secret", TOKEN);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  check(new URL(page.url()).pathname === "/library", `signed in, back to where it was going: ${page.url()}`);
  const cookies = await page.context().cookies();
  const session = cookies.find((cookie) => cookie.name === "hearth_session");
  check(session && session.httpOnly && session.sameSite === "Strict", `an HttpOnly SameSite=Strict cookie: ${JSON.stringify(cookies.map((c) => ({ ...c, value: "…" })))}`);
  check(!(await page.evaluate(() => document.cookie)).includes("hearth_session"), "scripts cannot read the session cookie");
  check(session.value !== TOKEN && !session.value.includes(TOKEN), "the cookie is not the token");
}

async function uploadThree(page) {
  step("upload a .txt, a .md and a .pdf through the file input and watch them become ready");
  await page.goto(URL_BASE + "/library");
  const files = ["harbour.txt", "garden.md", "lighthouse.pdf"].map((name) => path.join(FIXTURES, name));
  await page.setInputFiles("#files", files);
  await page.waitForFunction(
    () => document.querySelectorAll("#uploads .status[data-status=ready]").length === 3,
    null,
    { timeout: 120000 },
  );
  const rows = await page.$$eval("#documents tr[data-id]", (rows) =>
    rows.map((row) => ({ id: row.dataset.id, title: row.cells[0].textContent, status: row.querySelector(".status").dataset.status })),
  );
  for (const name of ["harbour.txt", "garden.md", "lighthouse.pdf"]) {
    const row = rows.find((row) => row.title === name);
    check(row && row.status === "ready", `${name} is listed as ready without a reload: ${JSON.stringify(rows)}`);
  }
  const progress = await page.$$eval("#uploads progress", (bars) => bars.map((bar) => bar.value));
  check(progress.length === 3 && progress.every((value) => value === 100), `a full progress bar per file: ${progress}`);

  step("drop a file onto the drop zone (the same bytes again: stored once, shown ready)");
  const text = fs.readFileSync(path.join(FIXTURES, "harbour.txt"), "utf8");
  await page.evaluate((text) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], "harbour.txt", { type: "text/plain" }));
    const zone = document.getElementById("dropzone");
    for (const type of ["dragover", "drop"]) {
      zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }
  }, text);
  await page.waitForFunction(
    () => document.querySelectorAll("#uploads li").length === 4 && document.querySelectorAll("#uploads .status[data-status=ready]").length === 4,
    null,
    { timeout: 60000 },
  );
  return Object.fromEntries(rows.map((row) => [row.title, row.id]));
}

async function searchAndOpen(page, ids) {
  step("search a phrase, see the hit with its words marked, open the document there");
  await page.goto(URL_BASE + "/search");
  await page.fill("#q", "when do fishing boats leave the harbour");
  await page.check("#mode-hybrid");
  await Promise.all([page.waitForNavigation(), page.click("form.search button[type=submit]")]);
  const first = page.locator("#hits li.hit").first();
  check((await first.locator("a").textContent()) === "harbour.txt", "the harbour text is the first hit");
  const marks = await first.locator("mark").allTextContents();
  check(marks.map((m) => m.toLowerCase()).includes("harbour"), `the matched words are marked: ${marks}`);
  await screenshots(page, "search");
  await Promise.all([page.waitForNavigation(), first.locator("a").click()]);
  check(new URL(page.url()).pathname === `/library/${ids["harbour.txt"]}`, `the hit opens its document: ${page.url()}`);
  const hash = new URL(page.url()).hash;
  check(hash.startsWith("#chunk-"), `at the passage: ${hash}`);
  const target = page.locator(hash);
  check(await target.evaluate((el) => el.classList.contains("target")), "the passage is the marked one");
  check((await target.locator("mark").count()) > 0, "the words are marked in the passage");
  await screenshots(page, "document");

  step("open the original");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Download the original")]);
  const saved = await download.path();
  check(
    fs.readFileSync(saved, "utf8") === fs.readFileSync(path.join(FIXTURES, "harbour.txt"), "utf8"),
    "the original downloads byte for byte",
  );
}

async function filters(page) {
  step("filters: a status with no documents, a metadata filter that matches nothing, a filter that is not JSON");
  await page.goto(`${URL_BASE}/library?status=failed`);
  check((await page.locator("#no-documents").count()) === 1, "no failed documents are listed");
  await page.goto(`${URL_BASE}/search?q=harbour&metadata=${encodeURIComponent('{"project": "none"}')}`);
  check((await page.locator("#no-hits").count()) === 1, "a metadata filter that matches nothing finds nothing");
  const bad = await page.goto(`${URL_BASE}/search?q=harbour&metadata=${encodeURIComponent("{not json")}`);
  check(bad.status() === 400, `a filter that is not JSON is a 400, got ${bad.status()}`);
  check((await page.textContent("#search-error")).length > 0, "and the page says what is wrong");
  await page.goto(`${URL_BASE}/settings`);
  const fingerprint = require("crypto").createHash("sha256").update(TOKEN).digest("hex").slice(0, 6);
  check((await page.textContent("#token-fingerprint")).includes(fingerprint), "Settings shows the token's fingerprint");
  check((await page.textContent("#sessions")).includes("(this one)"), "Settings lists this browser's session");
}

async function deleteOne(page, id) {
  step("delete one document, confirming first");
  await page.goto(`${URL_BASE}/library/${id}`);
  await Promise.all([page.waitForNavigation(), page.click("text=Delete…")]);
  check((await page.textContent("h1")).startsWith("Delete"), "a confirmation comes first");
  await Promise.all([page.waitForNavigation(), page.click("button.danger")]);
  check((await page.textContent("[role=status]")).includes("garden.md"), "the page says what was deleted");
  await Promise.all([page.waitForNavigation(), page.click("text=Back to the Library")]);
  check((await page.locator(`tr[data-id="${id}"]`).count()) === 0, "the row is gone");
  check((await api(`/v1/documents/${id}`)).status === 404, "the document is gone from the API");
}

// A page on another origin (same site: another port of 127.0.0.1, so the browser even sends the SameSite
// cookie) tries to change things through the signed-in browser.
async function crossSite(context, ids) {
  step("a page from another origin cannot upload or delete through the session");
  const target = ids["lighthouse.pdf"];
  const evil = `<!doctype html><html><body><form id=f method=post action="${URL_BASE}/library/${target}/delete"></form>
    <script>
    const results = {};
    window.attempts = (async () => {
      try { await fetch("${URL_BASE}/v1/documents", { method: "POST", mode: "no-cors", credentials: "include",
              headers: { "content-type": "text/plain" }, body: "planted by another site" }); results.post = "sent"; }
      catch (e) { results.post = String(e); }
      try { await fetch("${URL_BASE}/v1/documents/${target}", { method: "DELETE", credentials: "include" }); results.delete = "sent"; }
      catch (e) { results.delete = String(e); }
      return results;
    })();
    </script></body></html>`;
  const server = http.createServer((_, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end(evil);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const page = await context.newPage();
  const before = (await api("/v1/documents")).body.documents.length;
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.evaluate(() => window.attempts);
  const [posted] = await Promise.all([page.waitForNavigation(), page.evaluate(() => document.getElementById("f").submit())]);
  check(posted.status() === 403, `a cross-site form post is refused with 403, got ${posted.status()}`);
  const after = (await api("/v1/documents")).body.documents;
  check(after.length === before, `nothing was planted: ${before} documents before, ${after.length} after`);
  check((await api(`/v1/documents/${target}`)).status === 200, "nothing was deleted");
  server.close();

  step("a request under a foreign Host name is refused (DNS rebinding)");
  const rebound = await page.goto(`http://rebind.test:${PORT}/`);
  check(rebound.status() === 403, `a foreign Host gets 403, got ${rebound.status()}`);
  check((await rebound.text()).includes("host_not_allowed"), "with the reason");
  await page.close();
}

async function screenshots(page, name) {
  for (const [label, size] of Object.entries(WIDTHS)) {
    await page.setViewportSize(size);
    await page.screenshot({ path: path.join(OUT, `${name}-${label}.png`), fullPage: true });
  }
  await page.setViewportSize(WIDTHS.laptop);
}

// Tab from the top of the page until focus comes round again; every control must have been reached.
async function keyboardReachesEverything(page, name) {
  const controls = await page.$$eval(
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex='-1'])",
    (elements) => elements.filter((el) => !el.disabled && el.getClientRects().length > 0).length,
  );
  await page.evaluate(() => {
    document.querySelectorAll("a[href], button, input, select, textarea, summary, [tabindex]").forEach((el, i) => (el.dataset.tabProbe = i));
    document.activeElement?.blur();
  });
  const reached = new Set();
  for (let i = 0; i < controls + 20; i++) {
    await page.keyboard.press("Tab");
    const probe = await page.evaluate(() => document.activeElement?.dataset.tabProbe ?? null);
    if (probe !== null) reached.add(probe);
  }
  // Radio buttons form one tab stop, reached with the arrow keys: count the group once.
  const radios = await page.$$eval("input[type=radio]", (r) => Math.max(0, r.length - new Set(r.map((x) => x.name)).size));
  check(reached.size >= controls - radios, `${name}: the keyboard reached ${reached.size} of ${controls} controls`);
}

async function accessible(page, name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => axe.run(document, { resultTypes: ["violations"] }));
  const serious = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(serious.length === 0, `${name}: axe found ${JSON.stringify(serious.map((v) => ({ id: v.id, nodes: v.nodes.map((n) => n.target) })))}`);
}

async function everyPage(page) {
  step("each page: screenshots at phone and laptop width, keyboard navigation, axe-core");
  const pages = { home: "/", library: "/library", settings: "/settings", "search-empty": "/search" };
  const weights = {};
  for (const [name, pathname] of Object.entries(pages)) {
    const response = await page.goto(URL_BASE + pathname);
    check(response.status() === 200, `${name} answers 200`);
    const html = await response.text();
    check(!html.includes(TOKEN), `${name} does not contain the token`);
    weights[name] = Buffer.byteLength(html);
    await screenshots(page, name);
    await keyboardReachesEverything(page, name);
    await accessible(page, name);
  }
  return weights;
}

async function signOut(page) {
  step("sign out, and be refused");
  await page.goto(URL_BASE + "/");
  await Promise.all([page.waitForNavigation(), page.click(".signout button")]);
  check(new URL(page.url()).pathname === "/signin", "signed out to the sign-in page");
  await screenshots(page, "signin");
  await accessible(page, "signin");
  await page.goto(URL_BASE + "/library");
  check(new URL(page.url()).pathname === "/signin", "the library now asks to sign in");
  const status = await page.evaluate(async () => (await fetch("/v1/documents")).status);
  check(status === 401, `the API refuses the signed-out browser: ${status}`);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.HEARTH_CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--host-resolver-rules=MAP rebind.test 127.0.0.1",
    ],
  });
  try {
    const context = await browser.newContext({ viewport: WIDTHS.laptop, acceptDownloads: true });
    const page = await context.newPage();
    // A script error on a page fails the run, with the browser's own message.
    const pageErrors = [];
    page.on("pageerror", (error) => {
      pageErrors.push(String(error));
      console.log(`browser script error: ${error}`);
    });
    page.on("console", (message) => message.type() === "error" && console.log(`browser console: ${message.text()}`));
    await signIn(page);
    const ids = await uploadThree(page);
    await searchAndOpen(page, ids);
    await filters(page);
    await deleteOne(page, ids["garden.md"]);
    await crossSite(context, ids);
    const weights = await everyPage(page);
    await signOut(page);
    check(pageErrors.length === 0, `script errors on hearth's pages: ${pageErrors.join("; ")}`);
    console.log(JSON.stringify({ ok: true, ids, weights }));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
