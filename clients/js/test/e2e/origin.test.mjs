// End-to-end, in headless Chromium: a page on an origin the server does not
// allow gets 403 on its upgrade, which a browser hides from the page; the
// client must report the refusal and name --allowed-origins instead of
// retrying in silence. A URL that is not the WebSocket endpoint, from a
// page that may read the answer, stops the client with what it answered.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HeraldServer, buildHerald, freePort, launchBrowser, tempDir } from "./herald.mjs";

const DIST = resolve(fileURLToPath(import.meta.url), "../../../dist");
const dirs = [];
let bin, browser, pages, pagesOrigin;

/** A page that starts a client on the URL in its query and records what the client reports. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>other origin</title><script type="module">
import { HeraldClient } from "/dist/index.js";
const url = new URLSearchParams(location.search).get("url");
const client = new HeraldClient(url);
window.reports = [];
client.on("state", (ch) => reports.push({ kind: "state", state: ch.state, error: ch.error?.message, name: ch.error?.name, status: ch.error?.status }));
client.on("error", (e) => reports.push({ kind: "error", error: e.message, name: e.name, status: e.status, terminal: e.terminal }));
client.connect().then(() => reports.push({ kind: "connected" }), (e) => reports.push({ kind: "rejected", error: e.message }));
</script>`;

before(async () => {
  bin = await buildHerald(await tempDir(dirs, "herald-origin-bin-"));
  pages = createServer(async (req, res) => {
    if (req.url.startsWith("/dist/")) {
      const body = await readFile(join(DIST, req.url.slice("/dist/".length).replace(/[^a-z0-9.]/gi, "")));
      res.writeHead(200, { "content-type": "text/javascript" }).end(body);
    } else {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
    }
  });
  const port = await freePort();
  await new Promise((res) => pages.listen(port, "127.0.0.1", res));
  pagesOrigin = `http://127.0.0.1:${port}`;
  browser = await launchBrowser(await tempDir(dirs, "herald-origin-chromium-"));
});

after(async () => {
  await browser?.close();
  await new Promise((res) => (pages ? pages.close(res) : res()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function serve(extra = []) {
  const server = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-origin-data-"), extra);
  await server.start();
  return server;
}

/** reportsOf opens the page on pageURL for wsURL and waits until cond holds for its reports. */
async function reportsOf(pageURL, wsURL, cond, timeoutMs) {
  const page = await browser.newPage();
  try {
    await page.goto(`${pageURL}?url=${encodeURIComponent(wsURL)}`);
    await page.waitForFunction(cond, undefined, { timeout: timeoutMs, polling: 50 }).catch(() => {});
    return await page.evaluate(() => window.reports);
  } finally {
    await page.close();
  }
}

test("a page on another origin is told its origin is refused, with the flag that allows it, and the client stops", async () => {
  const server = await serve();
  try {
    const reports = await reportsOf(pagesOrigin, server.wsURL, () => window.reports?.some((r) => r.kind === "state" && r.state === "closed"), 5000);
    const closed = reports.find((r) => r.kind === "state" && r.state === "closed");
    assert.ok(closed, `the client kept retrying a refused origin: ${JSON.stringify(reports)}`);
    assert.equal(closed.name, "UpgradeError");
    assert.equal(closed.status, 403);
    assert.match(closed.error, new RegExp(`origin \\\\?"${pagesOrigin}\\\\?" not allowed.*--allowed-origins`));
    assert.ok(reports.some((r) => r.kind === "rejected"), "connect() did not reject");
  } finally {
    await server.stop();
  }
});

test("the same page connects once the server allows its origin", async () => {
  const server = await serve(["--allowed-origins", pagesOrigin]);
  try {
    const reports = await reportsOf(pagesOrigin, server.wsURL, () => window.reports?.some((r) => r.kind === "connected"), 5000);
    assert.ok(reports.some((r) => r.kind === "connected"), JSON.stringify(reports));
    assert.ok(!reports.some((r) => r.kind === "error"), JSON.stringify(reports));
  } finally {
    await server.stop();
  }
});

test("a URL without /ws, from a page on the server's origin: stopped with the HTTP 200 it answered", async () => {
  const server = await serve();
  try {
    // The page is the server's own demo page; the client is its embedded copy.
    const page = await browser.newPage();
    try {
      await page.goto(`${server.httpURL}/`);
      const reports = await page.evaluate(async (url) => {
        const { HeraldClient } = await import("/herald-client/index.js");
        const client = new HeraldClient(url);
        const states = [];
        client.on("state", (ch) => states.push({ state: ch.state, error: ch.error?.message, status: ch.error?.status }));
        const started = Date.now();
        const stillTrying = new Promise((res) => setTimeout(() => res("still trying after 5 s"), 5000));
        const err = await Promise.race([client.connect().then(() => "connected", (e) => e.cause?.message), stillTrying]);
        await client.close();
        return { err, states, ms: Date.now() - started };
      }, `ws://127.0.0.1:${server.port}/`);
      assert.match(reports.err ?? "", /is not a WebSocket endpoint: it answered HTTP 200 \(text\/html\)/, JSON.stringify(reports));
      assert.equal(reports.states.at(-1).state, "closed");
      assert.equal(reports.states.at(-1).status, 200);
      assert.ok(reports.ms < 3000, `it took ${reports.ms} ms`);
    } finally {
      await page.close();
    }
  } finally {
    await server.stop();
  }
});
