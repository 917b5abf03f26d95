// The operations dashboard of `herald serve --api-key`, opened in headless
// Chromium while clients connect and publish.

import { spawn } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { ARTIFACTS, buildHerald, freePort, launchBrowser, sleep, tempDir, waitFor } from "./herald.mjs";

const dirs = [];
let proc, base, browser;
const KEY = "dash-key";

before(async () => {
  const bin = await buildHerald(await tempDir(dirs, "herald-dash-bin-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  proc = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--api-key", KEY], { stdio: "ignore" });
  await waitFor(async () => (await fetch(base + "/healthz").catch(() => null))?.ok, 15_000, "herald serve to come up");
  browser = await launchBrowser(await tempDir(dirs, "herald-dash-profile-"));
});

after(async () => {
  await browser?.close();
  proc?.kill("SIGTERM");
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** client opens a raw WebSocket that subscribes to channel. */
async function client(channel) {
  const ws = new WebSocket(base.replace("http", "ws") + "/ws", "herald.v1");
  await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
  ws.send(JSON.stringify({ type: "subscribe", id: 1, channel }));
  return ws;
}

test("the dashboard shows live connections, channels and message rates", async () => {
  const clients = [await client("dash:a"), await client("dash:a"), await client("dash:b")];
  const page = await browser.newPage();
  await page.goto(`${base}/dashboard/#key=${KEY}`);

  const value = (id) => page.locator(`#c-${id} .value`).textContent();
  await waitFor(async () => (await value("connections")) === "3", 10_000, async () => `connections shows ${await value("connections")}`);
  assert.equal(await value("channels"), "2");
  assert.equal(await value("subscriptions"), "3");

  // Publish through the API for a few seconds: the out-rate chart rises.
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    const r = await fetch(`${base}/api/publish`, {
      method: "POST",
      headers: { Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ channel: "dash:a", data: { t: Date.now() } }),
    });
    assert.equal(r.status, 200);
    await sleep(50);
  }
  await waitFor(async () => Number(await value("delivered")) > 0, 10_000, "a non-zero delivery rate");
  const points = await page.locator("#c-delivered polyline").getAttribute("points");
  assert.ok(points.split(" ").length >= 2, `delivered chart has points: ${points}`);

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
  for (const ws of clients) ws.close();
});

test("the dashboard asks for the key and refuses a wrong one", async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/dashboard/`);
  await waitFor(async () => (await page.locator("#status").textContent()).includes("Enter the API key"), 10_000, "a key prompt");
  assert.equal(await page.locator("#login").isVisible(), true);
  await page.fill("#key", KEY);
  await page.click("#login button");
  await waitFor(async () => (await page.locator("#status").textContent()).startsWith("Updated"), 10_000, "stats after login");
});
