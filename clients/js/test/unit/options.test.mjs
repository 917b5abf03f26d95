// Timeouts for subscribe and publish, the debug log, and the state events of
// a subscription.

import { test } from "node:test";
import assert from "node:assert/strict";
import { TimeoutError } from "../../dist/index.js";
import { FakeWebSocket, accept, advance, answerSubscribe, connected, flush, newClient, useFakeTime } from "./fake.mjs";

test("subscribe rejects with TimeoutError when not confirmed in subscribeTimeoutMs, and the server is told", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({ subscribeTimeoutMs: 2000 });
  const got = [];
  const p = client.subscribe("slow", (m) => got.push(m));
  const rejected = assert.rejects(p, (e) => e instanceof TimeoutError && /subscribe slow.*2000 ms/.test(e.message));
  await advance(t, 1999, 1999);
  assert.equal(ws.sentOf("unsubscribe").length, 0, "gave up early");
  await advance(t, 1);
  await rejected;
  assert.equal(ws.lastSent("unsubscribe")?.channel, "slow", "the server still holds the subscription");
  answerSubscribe(ws, "slow", "e", 0); // the late answer changes nothing
  ws.receive({ type: "message", channel: "slow", offset: 1, data: 1 });
  assert.deepEqual(got, []);
  await client.close();
});

test("a subscribe's own timeoutMs overrides the client's; waiting for a connection counts", async (t) => {
  useFakeTime(t);
  const client = newClient({ subscribeTimeoutMs: 60_000 });
  const p = client.subscribe("chat", () => {}, { timeoutMs: 500 });
  const rejected = assert.rejects(p, TimeoutError);
  await advance(t, 500); // the socket never opens
  await rejected;
  assert.equal(client.state, "connecting");
  const ws = await accept();
  assert.equal(ws.sentOf("subscribe").length, 0, "a timed-out subscription was sent");
  await client.close();
});

test("publish rejects with TimeoutError when unanswered in publishTimeoutMs, queued or sent", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({ publishTimeoutMs: 1000 });
  const sent = client.publish("chat", "sent");
  const rejectedSent = assert.rejects(sent, (e) => e instanceof TimeoutError && /publish to chat/.test(e.message));
  await flush();
  assert.equal(ws.sentOf("publish").length, 1);
  ws.serverClose(1006);
  await flush();
  const queued = client.publish("chat", "queued", { timeoutMs: 300 });
  const rejectedQueued = assert.rejects(queued, TimeoutError);
  await advance(t, 300);
  await rejectedQueued;
  assert.equal(client.queued.messages, 1, "only the timed-out publish leaves the queue");
  await advance(t, 700);
  await rejectedSent;
  assert.equal(client.queued.messages, 0);
  const ws2 = await accept();
  assert.equal(ws2.sentOf("publish").length, 0, "a timed-out publish was sent again");
  await client.close();
});

test("a publish answered in time is not failed by its timeout", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({ publishTimeoutMs: 1000 });
  const p = client.publish("chat", 1);
  await flush();
  ws.receive({ type: "published", id: ws.lastSent("publish").id, channel: "chat", offset: 3 });
  assert.equal(await p, 3);
  await advance(t, 2000);
  await client.close();
});

test("debug logs state changes and frames, never the token", async (t) => {
  useFakeTime(t);
  const lines = [];
  const client = newClient({ token: "secret-token", debug: (m) => lines.push(m) });
  client.connect();
  const ws = await accept();
  const p = client.subscribe("chat", () => {});
  await flush();
  answerSubscribe(ws, "chat", "e", 0);
  await p;
  await client.close();
  const text = lines.join("\n");
  assert.match(text, /state connecting/);
  assert.match(text, /send \{"type":"hello".*"token":"<token>"/);
  assert.match(text, /recv \{"type":"welcome"/);
  assert.match(text, /send \{"type":"subscribe","id":\d+,"channel":"chat"\}/);
  assert.match(text, /state closed/);
  assert.doesNotMatch(text, /secret-token/);
  assert.equal(FakeWebSocket.instances.length, 1);
});

test("debug: true writes to console.debug; off by default", async (t) => {
  useFakeTime(t);
  const calls = [];
  t.mock.method(console, "debug", (...a) => calls.push(a.join(" ")));
  const quiet = newClient();
  quiet.connect();
  await accept();
  await quiet.close();
  assert.deepEqual(calls, []);
  const loud = newClient({ debug: true });
  loud.connect();
  await accept();
  await loud.close();
  assert.ok(calls.some((c) => c.startsWith("herald: state connected")), calls.join("\n"));
});

test("a subscription's state events follow reconnects and its end", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const p = client.subscribe("chat", () => {});
  await flush();
  answerSubscribe(ws, "chat", "e", 0);
  const sub = await p;
  assert.equal(sub.state, "subscribed");
  const seen = [];
  sub.on("state", (ch) => seen.push(ch.state));
  ws.serverClose(1006);
  await flush();
  assert.equal(sub.state, "subscribing");
  await advance(t, 1000);
  const ws2 = await accept();
  answerSubscribe(ws2, "chat", "e", 0, true);
  void sub.unsubscribe(); // the server's answer is not needed for the end
  assert.deepEqual(seen, ["subscribing", "subscribed", "unsubscribed"]);
  await client.close();
});
