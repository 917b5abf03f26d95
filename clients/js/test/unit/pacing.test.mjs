import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeWebSocket, accept, advance, answerSubscribe, connected, flush, useFakeTime } from "./fake.mjs";

/** answerAll answers every subscribe and publish on ws not answered yet, once. */
function answerAll(ws, answered) {
  for (const f of ws.sent) {
    if (answered.has(f.id)) continue;
    if (f.type === "subscribe") ws.receive({ type: "subscribed", id: f.id, channel: f.channel, epoch: "e", offset: 0, recovered: true });
    else if (f.type === "publish") ws.receive({ type: "published", id: f.id, channel: f.channel, offset: 1 });
    else continue;
    answered.add(f.id);
  }
}

test("a reconnect with 128 subscriptions and 40 queued publishes is paced to welcome's rate and burst", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  for (let i = 0; i < 128; i++) {
    const p = client.subscribe(`ch-${i}`, () => {});
    await flush();
    answerSubscribe(ws, `ch-${i}`, "e", 0);
    await p;
  }
  ws.serverClose(1006);
  await flush();
  const published = [];
  for (let i = 0; i < 40; i++) published.push(client.publish(`ch-${i}`, i));
  await advance(t, 1000);
  const ws2 = await accept({ rate: 100, burst: 40 });
  assert.equal(ws2.sent.length, 30, "three quarters of the burst at once");
  // From then on, never more than the rate allows: sent <= 30 + 100/s.
  const answered = new Set();
  for (let ms = 50; ms <= 2000; ms += 50) {
    await advance(t, 50);
    answerAll(ws2, answered);
    await flush();
    assert.ok(ws2.sent.length <= 30 + (ms / 1000) * 100 + 1, `${ws2.sent.length} requests after ${ms} ms`);
  }
  assert.equal(ws2.sentOf("subscribe").length, 128);
  assert.deepEqual(ws2.sentOf("publish").map((p) => p.data), [...Array(40).keys()], "every queued publish, in order");
  assert.equal((await Promise.all(published)).length, 40);
  assert.equal(FakeWebSocket.instances.length, 2, "no reconnect");
  await client.close();
});

test("a server that states no rate limit gets 15 requests at once, then 10 a second", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const published = [];
  ws.serverClose(1006);
  await flush();
  for (let i = 0; i < 40; i++) published.push(client.publish("chat", i));
  await advance(t, 1000);
  const ws2 = await accept();
  assert.equal(ws2.sentOf("publish").length, 15);
  await advance(t, 1000);
  assert.equal(ws2.sentOf("publish").length, 25);
  await client.close();
  await Promise.allSettled(published);
});

test("a resubscription answered rate_limited is sent again after retry_after_ms, on the same connection", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({}, { rate: 50, burst: 100 });
  const p = client.subscribe("chat", () => {});
  await flush();
  answerSubscribe(ws, "chat", "e", 3);
  await p;
  ws.serverClose(1006);
  await advance(t, 1000);
  const ws2 = await accept({ rate: 50, burst: 100 });
  const first = ws2.lastSent("subscribe");
  ws2.receive({ type: "error", id: first.id, code: "rate_limited", message: "too many requests", retry_after_ms: 200 });
  await advance(t, 100);
  assert.equal(ws2.sentOf("subscribe").length, 1, "retried before retry_after_ms");
  await advance(t, 150);
  const again = ws2.lastSent("subscribe");
  assert.notEqual(again.id, first.id);
  assert.deepEqual(again.since, { epoch: "e", offset: 3 });
  assert.equal(ws2.closedWith, undefined, "the connection was dropped");
  answerSubscribe(ws2, "chat", "e", 3, true);
  await flush();
  assert.equal(client.state, "connected");
  assert.equal(FakeWebSocket.instances.length, 2);
  await client.close();
});

test("a queued publish answered rate_limited is sent again, not rejected", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({}, { rate: 50, burst: 100 });
  ws.serverClose(1006);
  await flush();
  const p = client.publish("chat", 1);
  await advance(t, 1000);
  const ws2 = await accept({ rate: 50, burst: 100 });
  const first = ws2.lastSent("publish");
  ws2.receive({ type: "error", id: first.id, code: "rate_limited", message: "too many requests", retry_after_ms: 100 });
  await advance(t, 150);
  const again = ws2.lastSent("publish");
  assert.notEqual(again.id, first.id);
  assert.equal(again.key, first.key);
  ws2.receive({ type: "published", id: again.id, channel: "chat", offset: 9 });
  assert.equal(await p, 9);
  await client.close();
});
