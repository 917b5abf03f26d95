import { test } from "node:test";
import assert from "node:assert/strict";
import { NoPongError } from "../../dist/index.js";
import { FakeWebSocket, accept, advance, connected, flush, newClient, record, useFakeTime } from "./fake.mjs";

const HEARTBEAT = { ping_interval_ms: 1000, pong_timeout_ms: 500 };

test("after ping_interval_ms of silence the client pings; a pong keeps the connection", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({}, HEARTBEAT);
  await advance(t, 900, 10);
  assert.equal(ws.sentOf("ping").length, 0, "pinged before the interval");
  await advance(t, 150, 10);
  const ping = ws.lastSent("ping");
  assert.ok(ping?.id > 0, "no ping after the interval");
  await advance(t, 300, 10);
  ws.receive({ type: "pong", id: ping.id });
  await advance(t, 400, 10);
  assert.equal(client.state, "connected");
  await client.close();
});

test("any frame counts as proof of life", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({}, HEARTBEAT);
  for (let i = 0; i < 20; i++) {
    await advance(t, 400, 10);
    ws.receive({ type: "message", channel: "x", offset: i + 1, data: null });
  }
  assert.equal(ws.sentOf("ping").length, 0);
  assert.equal(client.state, "connected");
  await client.close();
});

test("no answer within pong_timeout_ms after the ping: the connection is dropped and retried", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({}, HEARTBEAT);
  ws.autoPong = false;
  const changes = record(client);
  await advance(t, 1000, 10);
  assert.equal(ws.sentOf("ping").length, 1);
  await advance(t, 490, 10);
  assert.equal(client.state, "connected", "dropped before the pong timeout");
  await advance(t, 20, 10);
  assert.equal(client.state, "disconnected");
  assert.ok(changes.at(-1).error instanceof NoPongError);
  assert.ok(ws.closedWith, "the dead socket was not closed");
  await advance(t, 1000);
  assert.equal(FakeWebSocket.instances.length, 2);
  await client.close();
});

test("liveness is measured against the wall clock: a slept machine notices at once", async (t) => {
  useFakeTime(t);
  const { client } = await connected({}, HEARTBEAT);
  // Time jumps without any timer firing (suspended laptop, frozen tab) ...
  t.mock.timers.setTime(Date.now() + 60_000);
  // ... and the first tick afterwards sees the silence.
  await advance(t, 200, 200);
  assert.equal(client.state, "disconnected");
  assert.ok(client.nextAttemptAt > 0);
  await client.close();
});

function fakeBrowser(t) {
  const win = new EventTarget();
  const doc = Object.assign(new EventTarget(), { visibilityState: "visible" });
  globalThis.window = win;
  globalThis.document = doc;
  t.after(() => {
    delete globalThis.window;
    delete globalThis.document;
  });
  const visible = () => {
    doc.visibilityState = "visible";
    doc.dispatchEvent(new Event("visibilitychange"));
  };
  return { win, doc, visible };
}

test("a tab that becomes visible checks liveness at once", async (t) => {
  useFakeTime(t);
  const { visible } = fakeBrowser(t);
  const { client, ws } = await connected({ browserEvents: true }, { ping_interval_ms: 25000, pong_timeout_ms: 15000 });
  ws.autoPong = false;
  await advance(t, 3000, 1000);
  visible();
  const probe = ws.lastSent("ping");
  assert.ok(probe, "no ping when the page became visible");
  await advance(t, 14_000, 1000);
  assert.equal(client.state, "connected");
  await advance(t, 1000, 1000);
  assert.equal(client.state, "disconnected", "the unanswered probe did not end the connection");

  // A tab hidden past interval + timeout knows at once that its connection is dead.
  await advance(t, 30_000, 1000);
  const ws2 = await accept({ ping_interval_ms: 25000, pong_timeout_ms: 15000 });
  assert.equal(client.state, "connected");
  t.mock.timers.setTime(Date.now() + 45_000);
  visible();
  await flush();
  assert.equal(client.state, "disconnected");
  assert.ok(ws2.closedWith);
  await client.close();
});

test("a throttled retry timer is caught up when the tab becomes visible", async (t) => {
  useFakeTime(t);
  t.mock.method(Math, "random", () => 0.999999);
  const { visible } = fakeBrowser(t);
  const { client, ws } = await connected({ browserEvents: true });
  ws.serverClose(1006);
  await flush();
  t.mock.timers.setTime(Date.now() + 5000); // the retry timer did not fire in the background
  assert.equal(FakeWebSocket.instances.length, 1);
  visible();
  await advance(t, 1, 1);
  assert.equal(FakeWebSocket.instances.length, 2);
  await client.close();
});

test("offline drops the connection; online moves the next attempt forward", async (t) => {
  useFakeTime(t);
  t.mock.method(Math, "random", () => 0.999999);
  const { win } = fakeBrowser(t);
  const { client, ws } = await connected({ browserEvents: true });
  const changes = record(client);
  win.dispatchEvent(new Event("offline"));
  await flush();
  assert.equal(client.state, "disconnected");
  assert.ok(ws.closedWith);

  // Several failed attempts later the next one is far off ...
  for (let i = 0; i < 5; i++) {
    await advance(t, changes.at(-1).retryInMs);
    FakeWebSocket.last.serverClose(1006);
    await flush();
  }
  assert.equal(changes.at(-1).retryInMs, 16000);
  const n = FakeWebSocket.instances.length;
  // ... until the network is back.
  win.dispatchEvent(new Event("online"));
  await advance(t, 500, 10);
  assert.equal(FakeWebSocket.instances.length, n + 1);
  await client.close();
});

test("browser listeners are removed on close", async (t) => {
  useFakeTime(t);
  const { win } = fakeBrowser(t);
  const { client } = await connected({ browserEvents: true });
  await client.close();
  win.dispatchEvent(new Event("offline"));
  win.dispatchEvent(new Event("online"));
  assert.equal(client.state, "closed");
});

test("no welcome within the connect timeout: the attempt fails and is retried", async (t) => {
  useFakeTime(t);
  const client = newClient({ connectTimeoutMs: 2000 });
  const changes = record(client);
  client.connect();
  await flush();
  FakeWebSocket.last.open();
  await advance(t, 2000, 100);
  assert.equal(changes.at(-1).state, "disconnected");
  assert.match(changes.at(-1).error.message, /no welcome/);
  await client.close();
});
