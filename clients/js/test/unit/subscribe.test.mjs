import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, ServerError, UnsubscribedError } from "../../dist/index.js";
import { FakeWebSocket, accept, advance, answerSubscribe, connected, flush, newClient, useFakeTime } from "./fake.mjs";

async function subscribed(ws, client, channel, epoch, offset, opts = {}) {
  const got = [];
  const recoveries = [];
  const p = client.subscribe(channel, (m) => got.push(m.offset), { onRecovery: (r) => recoveries.push(r), ...opts });
  await flush();
  answerSubscribe(ws, channel, epoch, offset);
  const sub = await p;
  return { sub, got, recoveries };
}

const msg = (ws, channel, offset) => ws.receive({ type: "message", channel, offset, data: { n: offset } });

test("messages reach the handler in order; duplicates are dropped", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const { sub, got } = await subscribed(ws, client, "chat", "e1", 5);
  assert.deepEqual(sub.position, { epoch: "e1", offset: 5 });
  for (const o of [6, 7, 7, 6, 5, 8, 8]) msg(ws, "chat", o);
  assert.deepEqual(got, [6, 7, 8]);
  assert.deepEqual(sub.position, { epoch: "e1", offset: 8 });
  assert.equal(ws.sentOf("subscribe").length, 1, "a duplicate made the client resubscribe");
  await client.close();
});

test("a gap in offsets makes the client resubscribe with since; the replay fills it", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const { got, recoveries } = await subscribed(ws, client, "chat", "e1", 5);
  msg(ws, "chat", 6);
  msg(ws, "chat", 9); // 7 and 8 missing
  const resub = ws.lastSent("subscribe");
  assert.equal(ws.sentOf("subscribe").length, 2);
  assert.deepEqual(resub.since, { epoch: "e1", offset: 6 });
  msg(ws, "chat", 10); // before the reply: dropped, the replay brings it
  answerSubscribe(ws, "chat", "e1", 10, true);
  for (const o of [7, 8, 9, 10, 11]) msg(ws, "chat", o);
  assert.deepEqual(got, [6, 7, 8, 9, 10, 11]);
  assert.equal(recoveries.length, 1);
  assert.equal(recoveries[0].recovered, true);
  assert.deepEqual(recoveries[0].since, { epoch: "e1", offset: 6 });
  await client.close();
});

test("after a reconnect every channel resubscribes from the last offset handed over", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const a = await subscribed(ws, client, "a", "ea", 0);
  const b = await subscribed(ws, client, "b", "eb", 40);
  msg(ws, "a", 1);
  msg(ws, "a", 2);
  msg(ws, "b", 41);
  ws.serverClose(1006);
  await advance(t, 1000);
  const ws2 = await accept();
  const resubs = Object.fromEntries(ws2.sentOf("subscribe").map((s) => [s.channel, s.since]));
  assert.deepEqual(resubs, { a: { epoch: "ea", offset: 2 }, b: { epoch: "eb", offset: 41 } });
  answerSubscribe(ws2, "a", "ea", 4, true);
  msg(ws2, "a", 3);
  msg(ws2, "a", 4);
  answerSubscribe(ws2, "b", "eb", 41, true);
  msg(ws2, "b", 42);
  assert.deepEqual(a.got, [1, 2, 3, 4]);
  assert.deepEqual(b.got, [41, 42]);
  assert.deepEqual(a.recoveries.map((r) => r.recovered), [true]);
  await client.close();
});

test("recovered:false is reported and the subscription continues from the new position", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const { sub, got, recoveries } = await subscribed(ws, client, "chat", "e1", 3);
  msg(ws, "chat", 4);
  ws.serverClose(1001);
  await advance(t, 6000);
  const ws2 = await accept();
  answerSubscribe(ws2, "chat", "e2", 7, false); // the server lost its history
  msg(ws2, "chat", 8);
  assert.deepEqual(recoveries, [{
    channel: "chat", recovered: false, since: { epoch: "e1", offset: 4 }, position: { epoch: "e2", offset: 7 },
  }]);
  assert.deepEqual(got, [4, 8]);
  assert.deepEqual(sub.position, { epoch: "e2", offset: 8 });
  await client.close();
});

test("subscribe with since asks for recovery from a kept position", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const got = [];
  let rec;
  const p = client.subscribe("chat", (m) => got.push(m.offset), { since: { epoch: "e1", offset: 10 }, onRecovery: (r) => (rec = r) });
  await flush();
  assert.deepEqual(ws.lastSent("subscribe").since, { epoch: "e1", offset: 10 });
  answerSubscribe(ws, "chat", "e1", 12, true);
  await p;
  msg(ws, "chat", 11);
  msg(ws, "chat", 12);
  assert.deepEqual(got, [11, 12]);
  assert.equal(rec.recovered, true);
  await client.close();
});

test("subscribe before connect waits for the connection", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const p = client.subscribe("chat", () => {});
  client.connect();
  const ws = await accept();
  answerSubscribe(ws, "chat", "e", 0);
  const sub = await p;
  assert.equal(sub.active, true);
  await client.close();
});

test("a refused subscribe rejects; a refused renewal ends the subscription through onError", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const p = client.subscribe("secret", () => {});
  await flush();
  ws.receive({ type: "error", id: ws.lastSent("subscribe").id, code: "forbidden", message: "no" });
  await assert.rejects(p, (e) => e instanceof ServerError && e.code === "forbidden");

  let ended;
  const { sub } = await subscribed(ws, client, "chat", "e", 0, { onError: (e) => (ended = e) });
  ws.serverClose(1006);
  await advance(t, 1000);
  const ws2 = await accept();
  ws2.receive({ type: "error", id: ws2.lastSent("subscribe").id, code: "forbidden", message: "token changed" });
  await flush();
  assert.equal(ended.code, "forbidden");
  assert.equal(sub.error, ended);
  assert.equal(client.state, "connected");
  await client.close();
});

test("an unsubscribed frame without id ends that subscription with the server's reason, and it is not renewed", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  let ended;
  const { sub } = await subscribed(ws, client, "chat", "e", 0, { onError: (e) => (ended = e) });
  const { sub: news } = await subscribed(ws, client, "news", "e", 0);
  ws.receive({ type: "unsubscribed", channel: "chat", reason: "token does not allow subscribe to chat" });
  await flush();
  assert.ok(ended instanceof ServerError && ended.code === "forbidden" && ended.message.includes("token does not allow"));
  assert.equal(sub.error, ended);
  assert.equal(news.error, undefined);
  ws.serverClose(1006);
  await advance(t, 1000);
  const ws2 = await accept();
  assert.deepEqual(ws2.sentOf("subscribe").map((f) => f.channel), ["news"]);
  await client.close();
});

test("a retryable refusal of a renewal reconnects and tries again", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const { sub } = await subscribed(ws, client, "chat", "e", 0);
  ws.serverClose(1006);
  await advance(t, 1000);
  const ws2 = await accept();
  ws2.receive({ type: "error", id: ws2.lastSent("subscribe").id, code: "unavailable", message: "broker down" });
  await flush();
  assert.equal(client.state, "disconnected");
  await advance(t, 2000);
  const ws3 = await accept();
  answerSubscribe(ws3, "chat", "e", 0, true);
  assert.equal(sub.active, true);
  await client.close();
});

test("unsubscribe waits for the server and stops the handler", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const { sub, got } = await subscribed(ws, client, "chat", "e", 0);
  msg(ws, "chat", 1);
  const done = sub.unsubscribe();
  msg(ws, "chat", 2);
  const req = ws.lastSent("unsubscribe");
  assert.equal(req.channel, "chat");
  ws.receive({ type: "unsubscribed", id: req.id, channel: "chat" });
  await done;
  assert.deepEqual(got, [1]);
  assert.ok(sub.error instanceof UnsubscribedError);
  await sub.unsubscribe(); // harmless
  // The channel is free again.
  const again = await subscribed(ws, client, "chat", "e", 2);
  assert.equal(again.sub.active, true);
  await client.close();
  assert.ok(again.sub.error instanceof ClosedError);
});

test("invalid channel names and a second subscription to a channel are refused", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  await assert.rejects(client.subscribe("no spaces", () => {}), (e) => e.code === "invalid_channel");
  await assert.rejects(client.subscribe("", () => {}), (e) => e.code === "invalid_channel");
  await subscribed(ws, client, "chat", "e", 0);
  await assert.rejects(client.subscribe("chat", () => {}), /already subscribed/);
  await client.close();
});

test("a handler that throws does not stop delivery", async (t) => {
  useFakeTime(t);
  const errors = [];
  t.mock.method(console, "error", (...a) => errors.push(a));
  const { client, ws } = await connected();
  const got = [];
  const p = client.subscribe("chat", (m) => {
    got.push(m.offset);
    if (m.offset === 1) throw new Error("boom");
  });
  await flush();
  answerSubscribe(ws, "chat", "e", 0);
  await p;
  msg(ws, "chat", 1);
  msg(ws, "chat", 2);
  assert.deepEqual(got, [1, 2]);
  assert.equal(errors.length, 1);
  await client.close();
  assert.equal(FakeWebSocket.instances.length, 1);
});

test("a channel the server subscribed the connection to is held, and recovered after a reconnect", async (t) => {
  useFakeTime(t);
  const got = [];
  const recoveries = [];
  const asked = [];
  const client = newClient({
    onServerSubscribe: (channel) => {
      asked.push(channel);
      if (channel !== "user:ann") return undefined;
      return { handler: (m) => got.push(m.offset), options: { onRecovery: (r) => recoveries.push(r) } };
    },
  });
  const ready = client.connect();
  const ws = await accept();
  ws.receive({ type: "subscribed", channel: "user:ann", epoch: "e1", offset: 3 });
  ws.receive({ type: "subscribed", channel: "news", epoch: "e1", offset: 0 });
  await ready;
  msg(ws, "user:ann", 4);
  msg(ws, "news", 1);
  assert.deepEqual(asked, ["user:ann", "news"]);
  assert.equal(client.subscription("user:ann").state, "subscribed");
  assert.equal(client.subscription("news"), undefined);
  assert.equal(ws.sentOf("subscribe").length, 0, "a server-side subscription was asked for");

  ws.serverClose(1006);
  await advance(t, 1000);
  const ws2 = await accept();
  ws2.receive({ type: "subscribed", channel: "user:ann", epoch: "e1", offset: 6 }); // the server's, again
  msg(ws2, "user:ann", 6); // before the client's own subscribe is answered: the replay brings it
  const resubs = ws2.sentOf("subscribe");
  assert.deepEqual(resubs.map((s) => [s.channel, s.since]), [["user:ann", { epoch: "e1", offset: 4 }]]);
  answerSubscribe(ws2, "user:ann", "e1", 6, true);
  for (const o of [5, 6, 7]) msg(ws2, "user:ann", o);
  assert.deepEqual(got, [4, 5, 6, 7]);
  assert.deepEqual(recoveries.map((r) => [r.recovered, r.since.offset]), [[true, 4]]);
  assert.equal(asked.filter((c) => c === "user:ann").length, 1, "the held channel was taken again");
  await client.close();
});
