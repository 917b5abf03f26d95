// End-to-end: the demo page at / of `herald serve`, in headless Chromium,
// chats with a Node client of this package; then the server is restarted
// under both while messages are being published, and the page must come
// back and show every message exactly once.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { ARTIFACTS, sleep, startChat, stopChat, waitFor } from "./herald.mjs";

const CHANNEL = "chat:lobby";

if (typeof globalThis.WebSocket !== "function") {
  throw new Error("the e2e tests need a global WebSocket: run them with node --experimental-websocket (Node 20) or Node 22+");
}

const chat = {};
const dirs = [];
let server, page, node, nodeGot;

before(async () => {
  await startChat(chat, dirs, CHANNEL);
  ({ server, page, node, nodeGot } = chat);
});

after(() => stopChat(chat, dirs));

/** shown returns the messages the page lists, as {offset, name, text}. */
function shown() {
  return page.$$eval("#messages li", (lis) => lis.map((li) => ({
    offset: Number(li.dataset.offset),
    name: li.querySelector(".who").textContent,
    text: li.lastChild.textContent,
  })));
}

async function say(text) {
  await page.fill("#text", text);
  await page.click("#send button[type=submit]");
}

test("the demo page connects and chats with a second client", async () => {
  await page.goto(`${server.httpURL}/?name=browser`);
  await page.waitForSelector('#state[data-state="connected"]', { timeout: 10_000 });
  await page.waitForFunction(() => document.querySelector("#log").textContent.includes("joined chat:lobby"));

  const offset = await node.publish(CHANNEL, { name: "node", text: "hello from node" });
  await page.waitForSelector(`#messages li[data-offset="${offset}"]`, { timeout: 5000 });
  assert.deepEqual((await shown()).at(-1), { offset, name: "node", text: "hello from node" });

  await say("hello from the browser");
  const m = await waitFor(() => nodeGot.find((m) => m.data.text === "hello from the browser"), 5000, "the browser's message never reached node");
  assert.deepEqual(m.data, { name: "browser", text: "hello from the browser" });
  assert.equal(m.offset, offset + 1);
  await page.waitForSelector(`#messages li[data-offset="${offset + 1}"]`);
});

test("the page reconnects across a server restart and shows every message exactly once", async () => {
  const before = (await shown()).length;
  const firstOffset = (await shown()).at(-1).offset + 1;
  const published = [];
  let n = 0;
  let publishing = true;
  // A steady stream of publications from node, before, during and after the
  // restart. While the server is away they wait in node's offline queue; the
  // publisher holds back before the queue's bound of 100, as an application
  // that does not want QueueFullError would.
  const publisher = (async () => {
    while (publishing) {
      if (node.queued.messages < 80) {
        const text = `node #${++n}`;
        published.push({ text, offset: node.publish(CHANNEL, { name: "node", text }) });
      }
      await sleep(40);
    }
  })();

  await waitFor(async () => (await shown()).length >= before + 10, 10_000, "live messages did not reach the page");
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `herald serve did not shut down cleanly:\n${server.log}`);
  await page.waitForSelector('#state[data-state="disconnected"]', { timeout: 5000 });
  // Typed while the server is down: queued by the page's client, sent after it is back.
  await say("typed while the server was down");
  await sleep(300);
  await server.start();

  await page.waitForSelector('#state[data-state="connected"]', { timeout: 30_000 });
  await waitFor(() => node.state === "connected", 30_000, "node did not reconnect");
  await sleep(1000); // more live traffic after the restart
  publishing = false;
  await publisher;
  const offsets = await Promise.all(published.map((p) => p.offset));
  const texts = [...published.map((p) => p.text), "typed while the server was down"];

  // Every publication got its own offset: none was applied twice.
  assert.equal(new Set(offsets).size, offsets.length, "a publish was applied twice");
  const last = Math.max(...offsets);
  await waitFor(async () => (await shown()).some((m) => m.offset >= last), 10_000, async () => `page stopped at ${JSON.stringify((await shown()).at(-1))}`);
  await waitFor(async () => (await shown()).some((m) => m.text === "typed while the server was down"), 10_000, "the queued message never appeared");

  const after = (await shown()).slice(before);
  const counts = new Map();
  for (const m of after) counts.set(m.text, (counts.get(m.text) ?? 0) + 1);
  for (const text of texts) assert.equal(counts.get(text), 1, `"${text}" is shown ${counts.get(text) ?? 0} times`);
  assert.equal(after.length, texts.length, `the page shows messages nobody published: ${JSON.stringify(after.filter((m) => !texts.includes(m.text)))}`);
  assert.deepEqual(after.map((m) => m.offset), after.map((_, i) => firstOffset + i), "offsets on the page are not contiguous and in order");

  // The node client saw the same stream, once each.
  const nodeAfter = nodeGot.filter((m) => m.offset >= firstOffset).map((m) => m.offset);
  assert.deepEqual(nodeAfter, after.map((m) => m.offset));

  const log = await page.textContent("#log");
  assert.match(log, /missed messages recovered/, "the page did not recover with recovered:true");
  assert.doesNotMatch(log, /could not be recovered/);

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "demo.png"), fullPage: true });
});

test("the drop-connection button makes the page reconnect and recover", async () => {
  const before = (await shown()).length;
  await page.click("#drop");
  await page.waitForSelector('#state[data-state="disconnected"]', { timeout: 2000 });
  assert.match(await page.textContent("#countdown"), /reconnecting in \d+\.\d s/);
  const offset = await node.publish(CHANNEL, { name: "node", text: "while the page was away" });
  await page.waitForSelector('#state[data-state="connected"]', { timeout: 10_000 });
  await page.waitForSelector(`#messages li[data-offset="${offset}"]`, { timeout: 5000 });
  const added = (await shown()).slice(before);
  assert.deepEqual(added.map((m) => m.text), ["while the page was away"]);
  await page.screenshot({ path: join(ARTIFACTS, "demo-after-drop.png"), fullPage: true });
});
