// End-to-end: Chromium negotiates permessage-deflate with `herald serve
// --compression` on its own; the demo page says so, and chats with a Node
// client with messages above and below the compression threshold, which
// the server sends compressed and plain.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HeraldServer, freePort, startChat, stopChat, tempDir, waitFor } from "./herald.mjs";

const CHANNEL = "chat:lobby";

if (typeof globalThis.WebSocket !== "function") {
  throw new Error("the e2e tests need a global WebSocket: run them with node --experimental-websocket (Node 20) or Node 22+");
}

const chat = {};
const dirs = [];
let server, browser, page, node, nodeGot;

before(async () => {
  await startChat(chat, dirs, CHANNEL, ["--compression"]);
  ({ server, browser, page, node, nodeGot } = chat);
});

after(() => stopChat(chat, dirs));

/** compressed reads the server's count of compressed messages. */
async function compressed() {
  const text = await (await fetch(`${server.httpURL}/metrics`)).text();
  return Number(text.match(/^herald_compressed_messages_total (\S+)$/m)[1]);
}

test("Chromium negotiates compression and exchanges messages above and below the threshold", async () => {
  await page.goto(`${server.httpURL}/?name=browser`);
  await page.waitForSelector('#state[data-state="connected"]', { timeout: 10_000 });
  await page.waitForSelector('#compression[data-on="true"]', { timeout: 5000 });
  assert.equal(await page.textContent("#compression"), "on (permessage-deflate)");
  await page.waitForFunction(() => document.querySelector("#log").textContent.includes("joined chat:lobby"));

  const long = "the quick brown fox jumps over the lazy dog; ".repeat(9).trim();
  for (const text of [long, "short"]) {
    const before = await compressed();
    const offset = await node.publish(CHANNEL, { name: "node", text });
    await page.waitForSelector(`#messages li[data-offset="${offset}"]`, { timeout: 5000 });
    assert.equal(await page.textContent(`#messages li[data-offset="${offset}"] .who`), "node");
    // Node's client did not negotiate compression; the page did: the long
    // message was compressed once, for the page, the short one not at all.
    assert.equal((await compressed()) - before, text === long ? 1 : 0, `compressions for a ${text.length}-character message`);

    // The browser compresses what it sends (Chromium does for every
    // message once the extension is negotiated); the server inflates it.
    await page.fill("#text", `${text} (back)`);
    await page.click("#send button[type=submit]");
    const m = await waitFor(() => nodeGot.find((m) => m.data.text === `${text} (back)`), 5000, "the browser's message never reached node");
    assert.deepEqual(m.data, { name: "browser", text: `${text} (back)` });
  }
});

test("without --compression the page says compression is off", async () => {
  const plain = new HeraldServer(server.bin, await freePort(), await tempDir(dirs, "herald-data-"));
  await plain.start();
  try {
    const p = await browser.newPage();
    await p.goto(`${plain.httpURL}/?name=browser`);
    await p.waitForSelector('#compression[data-on="false"]', { timeout: 10_000 });
    assert.equal(await p.textContent("#compression"), "off");
    await p.close();
  } finally {
    await plain.stop();
  }
});
