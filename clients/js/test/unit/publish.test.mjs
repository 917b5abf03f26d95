import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, QueueFullError, QueueTimeoutError, ServerError, TooLargeError } from "../../dist/index.js";
import { FakeWebSocket, accept, advance, answerSubscribe, connected, flush, newClient, useFakeTime } from "./fake.mjs";

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test("publish resolves with the offset of its published reply", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const a = client.publish("chat", { text: "hi" });
  const b = client.publish("chat", [1, 2]);
  const [fa, fb] = ws.sentOf("publish");
  assert.deepEqual(fa.data, { text: "hi" });
  assert.match(fa.key, UUIDV7);
  assert.notEqual(fa.key, fb.key);
  ws.receive({ type: "published", id: fb.id, channel: "chat", offset: 8 });
  ws.receive({ type: "published", id: fa.id, channel: "chat", offset: 7 });
  assert.equal(await a, 7);
  assert.equal(await b, 8);
  await client.close();
});

test("publish rejects with the server's error", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const p = client.publish("news", "x");
  ws.receive({ type: "error", id: ws.lastSent("publish").id, code: "forbidden", message: "publish to news is not allowed" });
  await assert.rejects(p, (e) => e instanceof ServerError && e.code === "forbidden");
  ws.receive({ type: "error", code: "rate_limited", message: "slow down", retry_after_ms: 100 });
  await client.close();
});

test("an explicit key is sent as given, and the data is what it was at publish time", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const data = { n: 1 };
  const unanswered = client.publish("chat", data, { key: "k-1" });
  data.n = 2;
  assert.deepEqual(ws.lastSent("publish"), { type: "publish", id: ws.lastSent("publish").id, channel: "chat", data: { n: 1 }, key: "k-1" });
  await assert.rejects(client.publish("chat", 1, { key: "k".repeat(65) }), /key longer than 64 bytes/);
  await assert.rejects(client.publish("bad channel", 1), (e) => e.code === "invalid_channel");
  await assert.rejects(client.publish("chat", undefined), /not a JSON value/);
  await client.close();
  await assert.rejects(unanswered, ClosedError, "close() fails unconfirmed publishes");
});

test("a publish larger than the server's max_message_bytes fails before sending", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({}, { max_message_bytes: 200 });
  await assert.rejects(client.publish("chat", "x".repeat(200)), TooLargeError);
  assert.equal(ws.sentOf("publish").length, 0);
  await client.close();
});

test("publishes made while disconnected wait, then go out after the resubscriptions, in order, with their keys", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const sub = client.subscribe("chat", () => {});
  await flush();
  answerSubscribe(ws, "chat", "e", 0);
  await sub;
  const inflight = client.publish("chat", "sent before the drop");
  const sentKey = ws.lastSent("publish").key;
  ws.serverClose(1006);
  await flush();
  const queued = [client.publish("chat", "q1"), client.publish("chat", "q2")];
  assert.deepEqual(client.queued.messages, 3);

  await advance(t, 1000);
  const ws2 = await accept();
  assert.equal(ws2.sentOf("publish").length, 0, "published before the resubscription was confirmed");
  answerSubscribe(ws2, "chat", "e", 0, true);
  const pubs = ws2.sentOf("publish");
  assert.deepEqual(pubs.map((p) => p.data), ["sent before the drop", "q1", "q2"]);
  assert.equal(pubs[0].key, sentKey, "a resent publish keeps its key");
  pubs.forEach((p, i) => ws2.receive({ type: "published", id: p.id, channel: "chat", offset: i + 1 }));
  assert.deepEqual(await Promise.all([inflight, ...queued]), [1, 2, 3]);
  assert.equal(client.queued.messages, 0);
  await client.close();
});

test("the offline queue holds 100 messages; the next publish fails at once", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const queued = [];
  for (let i = 0; i < 100; i++) queued.push(client.publish("chat", i));
  await assert.rejects(client.publish("chat", 100), QueueFullError);
  assert.deepEqual(client.queued.messages, 100);
  client.connect();
  const ws = await accept({ rate: 50, burst: 100 });
  assert.equal(ws.sentOf("publish").length, 75, "three quarters of the burst at once");
  await advance(t, 500);
  assert.deepEqual(ws.sentOf("publish").map((p) => p.data), [...Array(100).keys()]);
  ws.sentOf("publish").forEach((p, i) => ws.receive({ type: "published", id: p.id, channel: "chat", offset: i + 1 }));
  assert.equal((await Promise.all(queued)).length, 100);
  await client.close();
});

test("the offline queue holds 1 MiB; a publish that would overflow it fails at once", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const big = "x".repeat(60_000);
  const ok = Array.from({ length: 17 }, () => client.publish("chat", big));
  await assert.rejects(client.publish("chat", big), QueueFullError);
  assert.ok(client.queued.bytes > 1_000_000 && client.queued.bytes <= 1 << 20);
  const small = client.publish("chat", "fits");
  assert.equal(client.queued.messages, 18);
  await client.close();
  for (const p of [...ok, small]) await assert.rejects(p, ClosedError);
});

test("queue bounds are options; a negative message bound disables the queue", async (t) => {
  useFakeTime(t);
  const client = newClient({ queueMessages: 2 });
  client.publish("chat", 1).catch(() => {});
  client.publish("chat", 2).catch(() => {});
  await assert.rejects(client.publish("chat", 3), QueueFullError);
  await client.close();
  const none = newClient({ queueMessages: -1 });
  await assert.rejects(none.publish("chat", 1), QueueFullError);
});

test("a publish queued for 60 s fails with QueueTimeoutError", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const p = client.publish("chat", 1);
  let settled = false;
  p.catch(() => (settled = true));
  await advance(t, 59_000, 1000);
  assert.equal(settled, false);
  await advance(t, 1000, 1000);
  await assert.rejects(p, QueueTimeoutError);
  assert.equal(client.queued.messages, 0);
  await client.close();
});

test("the queue timeout counts from when a resent publish first entered the queue", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  ws.serverClose(1006);
  await flush();
  const p = client.publish("chat", 1);
  await advance(t, 30_000, 1000);
  const ws2 = await accept();
  assert.equal(ws2.sentOf("publish").length, 1);
  ws2.serverClose(1006); // no answer: back to the queue
  await flush();
  const rejected = assert.rejects(p, QueueTimeoutError);
  await advance(t, 30_000, 1000);
  await rejected;
  await client.close();
  assert.ok(FakeWebSocket.instances.length >= 2);
});
