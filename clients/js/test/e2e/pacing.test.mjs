// End-to-end: a client holding 128 subscriptions, with 40 publishes in its
// offline queue, reconnects to `herald serve --rate 100 --burst 40`, far
// below what it has to send at once. It resubscribes every channel and
// delivers every publication on its first new connection, paced so that
// the server never answers rate_limited: no 4029, no reconnect loop.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { HeraldClient } from "../../dist/index.js";
import { HeraldServer, buildHerald, freePort, tempDir, waitFor } from "./herald.mjs";

const dirs = [];
let server;

before(async () => {
  const bin = await buildHerald(await tempDir(dirs, "herald-pace-bin-"));
  server = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-pace-data-"), ["--rate", "100", "--burst", "40"]);
  await server.start();
});

after(async () => {
  await server?.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** rateLimited returns the server's count of rate_limited answers. */
async function rateLimited() {
  const text = await (await fetch(`${server.httpURL}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("herald_rate_limited_total "));
  assert.ok(line, "no herald_rate_limited_total in /metrics");
  return Number(line.split(" ")[1]);
}

test("a reconnect with 128 subscriptions and 40 queued publishes is paced to the server's limit", async () => {
  const client = new HeraldClient(server.wsURL, { WebSocket: globalThis.WebSocket, browserEvents: false });
  await client.connect();
  const got = Array.from({ length: 128 }, () => []);
  const subs = [];
  for (let i = 0; i < 128; i++) subs.push(await client.subscribe(`pace:${i}`, (m) => got[i].push(m.data)));

  const before = await rateLimited();
  const changes = [];
  client.on("state", (ch) => changes.push(ch));
  client.dropConnection();
  const published = [];
  for (let i = 0; i < 40; i++) published.push(client.publish(`pace:${i}`, i));
  assert.equal(client.queued.messages, 40);

  const offsets = await Promise.all(published);
  assert.equal(offsets.length, 40);
  await waitFor(() => subs.every((s) => s.active), 10_000, () => `${subs.filter((s) => !s.active).length} subscriptions not renewed`);
  await waitFor(() => got.slice(0, 40).every((g) => g.length === 1), 5000, "every queued publication delivered");
  assert.deepEqual(got.slice(0, 40).map((g) => g[0]), [...Array(40).keys()]);
  const states = changes.map((c) => c.state);
  assert.deepEqual(states, ["disconnected", "connecting", "connected"], `states: ${changes.map((c) => `${c.state} ${c.error?.message ?? ""}`)}`);
  assert.equal(await rateLimited() - before, 0, "the server answered rate_limited: the client did not pace itself");
  await client.close();
});
