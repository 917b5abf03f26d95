// End-to-end: the demo chat as a room, in headless Chromium with two pages
// against `herald serve --presence --join-leave`: on open a page shows the
// last 50 messages with their sender and time, who is in the room, and
// people arriving and leaving.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { HeraldServer, buildHerald, freePort, launchBrowser, tempDir } from "./herald.mjs";

const KEY = "room-key";
const dirs = [];
let bin, server, browser;

before(async () => {
  bin = await buildHerald(await tempDir(dirs, "herald-bin-"));
  browser = await launchBrowser(await tempDir(dirs, "herald-chromium-"));
});

/** startServer starts the room server, with presence and join-leave on for the default namespace, once. */
async function startServer() {
  if (server) return;
  server = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-data-"), ["--presence", "--join-leave", "--api-key", KEY]);
  await server.start();
}

after(async () => {
  await browser?.close();
  await server?.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function publish(channel, data) {
  const r = await fetch(`${server.httpURL}/api/publish`, { method: "POST", headers: { Authorization: `Bearer ${KEY}` }, body: JSON.stringify({ channel, data }) });
  assert.equal(r.status, 200, await r.text());
}

async function open(channel, name) {
  const page = await browser.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  await page.goto(`${server.httpURL}/?channel=${channel}&name=${name}`);
  await page.waitForSelector('#state[data-state="connected"]', { timeout: 10_000 });
  return page;
}

const texts = (page) => page.$$eval("#messages li", (lis) => lis.map((li) => li.lastChild.textContent));
const members = (page) => page.$$eval("#members li", (lis) => lis.map((li) => li.textContent));

test("a page opened on a room shows its last 50 messages with sender and time, oldest first", async () => {
  await startServer();
  for (let i = 1; i <= 60; i++) await publish("chat:history", { name: "api", text: `m${i}` });
  const page = await open("chat:history", "ann");
  await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 50, null, { timeout: 10_000 });
  const shown = await texts(page);
  assert.deepEqual(shown, Array.from({ length: 50 }, (_, i) => `m${i + 11}`));
  const first = await page.$eval("#messages li", (li) => ({ who: li.querySelector(".who").textContent, time: li.querySelector(".time").textContent }));
  assert.equal(first.who, "api");
  assert.match(first.time, /\d{1,2}[:.]\d{2}/, "no time shown");
  await page.close();
});

test("two pages in one room: each sees who is here, the other arriving and leaving, and the sender of each message", async () => {
  await startServer();
  const ann = await open("chat:room", "ann");
  await ann.waitForFunction(() => document.querySelectorAll("#members li").length === 1, null, { timeout: 5000 });
  assert.match((await members(ann))[0], /\(you\)$/);

  const bob = await open("chat:room", "bob");
  await bob.waitForFunction(() => document.querySelectorAll("#members li").length === 2, null, { timeout: 5000 });
  await ann.waitForFunction(() => document.querySelectorAll("#members li").length === 2, null, { timeout: 5000 });
  await ann.waitForFunction(() => document.querySelector("#activity").textContent.includes("arrived"), null, { timeout: 5000 });

  await bob.fill("#text", "hi ann");
  await bob.click("#send button[type=submit]");
  await ann.waitForFunction(() => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.includes("hi ann")), null, { timeout: 5000 });
  const sender = await ann.$eval("#messages li:last-child .who", (el) => el.textContent);
  assert.equal(sender, "bob");
  await ann.waitForFunction(() => [...document.querySelectorAll("#members li")].some((li) => li.textContent === "bob"), null, { timeout: 5000 });

  await bob.close();
  await ann.waitForFunction(() => document.querySelectorAll("#members li").length === 1, null, { timeout: 10_000 });
  assert.match(await ann.textContent("#activity"), /bob left/);
  await ann.close();
});

test("without presence on the server the chat still works and says who-is-here is off", async () => {
  const plain = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-plain-"));
  await plain.start();
  try {
    const page = await browser.newPage();
    await page.goto(`${plain.httpURL}/?name=cy`);
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 10_000 });
    await page.waitForSelector("#presence-off:not([hidden])", { timeout: 5000 });
    await page.fill("#text", "still chatting");
    await page.click("#send button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#messages").textContent.includes("still chatting"), null, { timeout: 5000 });
    await page.close();
  } finally {
    await plain.stop();
  }
});
