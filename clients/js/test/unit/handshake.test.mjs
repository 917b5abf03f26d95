// The start of a connection going wrong: the client says what is wrong,
// and stops when trying again cannot help.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, TokenRequiredError, UpgradeError } from "../../dist/index.js";
import { FakeWebSocket, accept, advance, answerSubscribe, flush, newClient, record, useFakeTime } from "./fake.mjs";

/** ended waits for the client's closed state and returns it. */
function closedState(client) {
  return new Promise((resolve) => client.on("closed", resolve));
}

test("subscribe on a client not yet started starts it; connect() afterwards is harmless", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const p = client.subscribe("chat", () => {});
  await flush();
  assert.equal(client.state, "connecting");
  assert.equal(FakeWebSocket.instances.length, 1);
  const ws = await accept();
  answerSubscribe(ws, "chat", "e", 0);
  assert.equal((await p).active, true);
  await client.connect();
  assert.equal(FakeWebSocket.instances.length, 1, "connect() after subscribe opened a second connection");
  await client.close();
});

test("publish on a client not yet started starts it and goes out after welcome", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const p = client.publish("chat", { text: "hi" });
  const ws = await accept();
  const req = ws.lastSent("publish");
  assert.equal(req.channel, "chat");
  ws.receive({ type: "published", id: req.id, channel: "chat", offset: 1 });
  assert.equal(await p, 1);
  await client.close();
});

test("no token, and the server waits for hello: the client stops at once with TokenRequiredError", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const closed = closedState(client);
  const sub = client.subscribe("chat", () => {});
  await flush();
  const ws = FakeWebSocket.last;
  ws.autoPong = false;
  ws.open();
  assert.deepEqual(ws.sent, [], "a frame before the welcome was due");
  await advance(t, 500);
  const ping = ws.lastSent("ping");
  assert.ok(ping, "no request to learn whether the server needs a token");
  ws.receive({ type: "error", id: ping.id, code: "unauthorized", message: "send hello with a token first" });
  const ch = await closed;
  assert.ok(ch.error instanceof TokenRequiredError && ch.error.code === 4001, `closed with ${ch.error}`);
  assert.match(ch.error.message, /this server needs a token/);
  await assert.rejects(sub, (e) => e instanceof ClosedError && e.cause === ch.error);
  assert.equal(FakeWebSocket.instances.length, 1, "retried");
});

test("no token and close 4001 (the server's hello_timeout): TokenRequiredError, terminal", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const closed = closedState(client);
  client.connect().catch(() => {});
  await flush();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.serverClose(4001, "no valid hello within hello_timeout");
  const ch = await closed;
  assert.ok(ch.error instanceof TokenRequiredError, `closed with ${ch.error}`);
  assert.match(ch.error.message, /needs a token.*no valid hello/);
});

test("an anonymous welcome within the probe delay sends no probe", async (t) => {
  useFakeTime(t);
  const client = newClient();
  client.connect();
  const ws = await accept();
  await advance(t, 2000);
  assert.deepEqual(ws.sentOf("ping"), []);
  assert.equal(client.state, "connected");
  await client.close();
});

/** refuse makes the newest socket fail its upgrade as the `ws` package does, with the status in the error. */
function refuse(status) {
  const ws = FakeWebSocket.last;
  ws.onerror?.({ message: `Unexpected server response: ${status}` });
  ws.serverClose(1006);
}

test("an upgrade answered 200 before any welcome stops the client with what the URL answered", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const closed = closedState(client);
  const ready = client.connect();
  await flush();
  refuse(200);
  const ch = await closed;
  assert.ok(ch.error instanceof UpgradeError && ch.error.status === 200 && ch.error.terminal);
  assert.match(ch.error.message, /is not a WebSocket endpoint: it answered HTTP 200.*\/ws/);
  await assert.rejects(ready, ClosedError);
});

test("503 and 429 before any welcome are retried; after a welcome every refusal is", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const changes = record(client);
  client.connect();
  await flush();
  refuse(503);
  await flush();
  assert.equal(changes.at(-1).state, "disconnected");
  assert.equal(changes.at(-1).error.status, 503);
  await advance(t, 1000);
  await accept();
  FakeWebSocket.last.serverClose(1006);
  await advance(t, 1000);
  refuse(404);
  await flush();
  assert.equal(changes.at(-1).state, "disconnected", "a refusal after a welcome stopped the client");
  await client.close();
});

/** response makes a fetch answer. */
function response(status, contentType, body) {
  return new Response(body, { status, headers: { "content-type": contentType } });
}

test("a failed upgrade is probed over HTTP: a readable 403 stops the client with the server's words", async (t) => {
  const urls = [];
  const client = newClient({
    fetch: async (url) => {
      urls.push(url);
      return response(403, "text/plain; charset=utf-8", "herald: origin not allowed\n");
    },
  });
  const closed = closedState(client);
  client.connect().catch(() => {});
  await flush();
  FakeWebSocket.last.serverClose(1006);
  const ch = await closed;
  assert.deepEqual(urls, ["http://herald.test/ws"]);
  assert.ok(ch.error instanceof UpgradeError && ch.error.status === 403);
  assert.match(ch.error.message, /refused the WebSocket upgrade with HTTP 403: herald: origin not allowed/);
});

test("a probe answered 426 shows the endpoint is right: the failure is retried as it was", async (t) => {
  const client = newClient({ fetch: async () => response(426, "text/plain", "herald: expected a WebSocket upgrade") });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const disconnected = new Promise((resolve) => client.on("disconnected", resolve));
  client.connect();
  await flush();
  FakeWebSocket.last.serverClose(1006);
  const ch = await disconnected;
  assert.ok(!(ch.error instanceof UpgradeError), `${ch.error}`);
  assert.deepEqual(errors, []);
  await client.close();
});

test("a refusal the page may not read (CORS) is reported once on error and retried", async (t) => {
  const modes = [];
  const client = newClient({
    fetch: async (_url, init) => {
      modes.push(init.mode ?? "cors");
      if (init.mode !== "no-cors") throw new TypeError("Failed to fetch");
      return new Response(null, { status: 200 }); // opaque, as a browser gives it
    },
    backoff: { baseMs: 10, capMs: 10, floorMs: 10 },
  });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const changes = record(client);
  client.connect();
  for (let i = 0; i < 3; i++) {
    await waitFor(() => FakeWebSocket.instances.length === i + 1);
    FakeWebSocket.last.serverClose(1006);
    await waitFor(() => changes.at(-1).state === "disconnected");
  }
  assert.deepEqual(modes.slice(0, 2), ["cors", "no-cors"]);
  assert.equal(errors.length, 1, "the refusal was reported on every attempt, or never");
  assert.ok(errors[0] instanceof UpgradeError && !errors[0].terminal && errors[0].status === undefined);
  assert.match(errors[0].message, /refused the WebSocket upgrade.*--allowed-origins/);
  assert.ok(changes.at(-1).error instanceof UpgradeError, "the disconnected state does not say why");
  await client.close();
});

test("an unreachable server is an ordinary failure: retried, nothing reported", async (t) => {
  const client = newClient({ fetch: async () => { throw new TypeError("fetch failed"); } });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  const disconnected = new Promise((resolve) => client.on("disconnected", resolve));
  client.connect();
  await flush();
  FakeWebSocket.last.serverClose(1006);
  const ch = await disconnected;
  assert.ok(!(ch.error instanceof UpgradeError));
  assert.deepEqual(errors, []);
  await client.close();
});

async function waitFor(cond) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), "timed out");
}
