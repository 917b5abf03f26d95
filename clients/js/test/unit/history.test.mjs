import { test } from "node:test";
import assert from "node:assert/strict";
import { EpochChangedError, ServerError } from "../../dist/index.js";
import { accept, advance, answerSubscribe, connected, flush, newClient, useFakeTime } from "./fake.mjs";

const msg = (ws, offset, extra = {}) => ws.receive({ type: "message", channel: "chat", offset, data: { n: offset }, ...extra });

test("ts and from reach the handler; a message without them has neither", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const got = [];
  const p = client.subscribe("chat", (m) => got.push(m));
  await flush();
  answerSubscribe(ws, "chat", "e1", 0);
  await p;
  msg(ws, 1, { ts: 1767225600123, from: { client: "s_8KQ2", user: "alice" } });
  msg(ws, 2);
  assert.equal(got[0].ts, 1767225600123);
  assert.deepEqual(got[0].from, { client: "s_8KQ2", user: "alice" });
  assert.equal("ts" in got[1] || "from" in got[1], false);
  await client.close();
});

test("last: the first subscribe asks for a backlog, which comes before the live messages with no gap or duplicate; a resubscribe asks with since", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const got = [];
  const p = client.subscribe("chat", (m) => got.push(m.offset), { last: 5 });
  await flush();
  const req = answerSubscribe(ws, "chat", "e1", 10);
  await p;
  assert.equal(req.last, 5);
  assert.equal(req.since, undefined);
  for (const o of [8, 9, 10, 10, 11, 12]) msg(ws, o); // history held 3 of the 5
  assert.deepEqual(got, [8, 9, 10, 11, 12]);
  assert.equal(ws.sentOf("subscribe").length, 1, "the backlog's start made the client resubscribe");
  ws.serverClose(1006);
  await advance(t, 1000);
  const ws2 = await accept();
  const again = ws2.lastSent("subscribe");
  assert.equal(again.last, undefined);
  assert.deepEqual(again.since, { epoch: "e1", offset: 12 });
  await client.close();
});

test("last with nothing held: the live message after the reply's offset is taken at once", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const got = [];
  const p = client.subscribe("chat", (m) => got.push(m.offset), { last: 50 });
  await flush();
  answerSubscribe(ws, "chat", "e1", 10);
  await p;
  msg(ws, 11);
  msg(ws, 12);
  assert.deepEqual(got, [11, 12]);
  assert.equal(ws.sentOf("subscribe").length, 1);
  await client.close();
});

test("last out of range, or with since, rejects with bad_request before anything is sent", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  for (const opts of [{ last: -1 }, { last: 1001 }, { last: 2.5 }, { last: 5, since: { epoch: "e1", offset: 3 } }]) {
    await assert.rejects(client.subscribe("chat", () => {}, opts), (err) => err instanceof ServerError && err.code === "bad_request", JSON.stringify(opts));
  }
  assert.equal(ws.sentOf("subscribe").length, 0);
  await client.close();
});

/** answerHistory answers the newest history request as a server holding offsets 1..held of chat. */
function answerHistory(ws, held, epoch = "e1") {
  const req = ws.lastSent("history");
  const limit = req.limit ?? 100;
  const before = req.before ?? held + 1;
  const first = Math.max(before - limit, 1);
  const messages = [];
  for (let o = first; o < before; o++) messages.push({ offset: o, ts: 1000 + o, from: { client: "s_1", user: "bob" }, data: o });
  ws.receive({ type: "page", id: req.id, channel: "chat", epoch, offset: held, more: first > 1, messages });
  return req;
}

test("history pages back with older(): limit and before on the wire, oldest first, metadata kept, until more is false", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const pages = [];
  const reqs = [];
  let next = client.history("chat", { limit: 2 });
  for (;;) {
    await flush();
    reqs.push(answerHistory(ws, 5));
    const page = await next;
    if (!page) break;
    pages.push(page.messages.map((m) => m.offset));
    assert.equal(page.messages[0].from.user, "bob");
    assert.equal(page.messages[0].ts, 1000 + page.messages[0].offset);
    assert.equal(page.messages[0].channel, "chat");
    assert.equal(page.offset, 5);
    if (!page.more) break;
    next = page.older();
  }
  assert.deepEqual(pages, [[4, 5], [2, 3], [1]]);
  assert.deepEqual(reqs.map((r) => [r.limit, r.before]), [[2, undefined], [2, 4], [2, 2]]);
  await client.close();
});

test("a page of another epoch than paging started with rejects with EpochChangedError", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const first = client.history("chat", { limit: 2 });
  await flush();
  answerHistory(ws, 5, "e1");
  const older = (await first).older();
  await flush();
  answerHistory(ws, 5, "e2");
  await assert.rejects(older, EpochChangedError);
  await client.close();
});

test("history waits for a connection, is asked again after a drop, retried after rate_limited, and rejects with the server's error", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const page = client.history("chat");
  const ws = await accept();
  assert.equal(ws.sentOf("history").length, 1);
  ws.serverClose(1006);
  await advance(t, 1000);
  const ws2 = await accept();
  const req = ws2.lastSent("history");
  assert.ok(req, "not asked again on the next connection");
  ws2.receive({ type: "error", id: req.id, code: "rate_limited", message: "slow down", retry_after_ms: 300 });
  await advance(t, 250);
  assert.equal(ws2.sentOf("history").length, 1, "asked again before retry_after_ms");
  await advance(t, 100);
  assert.equal(ws2.sentOf("history").length, 2);
  answerHistory(ws2, 3);
  assert.deepEqual((await page).messages.map((m) => m.offset), [1, 2, 3]);
  const refused = client.history("chat");
  await flush();
  ws2.receive({ type: "error", id: ws2.lastSent("history").id, code: "forbidden", message: "no" });
  await assert.rejects(refused, (err) => err instanceof ServerError && err.code === "forbidden");
  await assert.rejects(client.history("chat", { limit: 0 }), (err) => err.code === "bad_request");
  await assert.rejects(client.history("chat", { before: -3 }), (err) => err.code === "bad_request");
  await client.close();
});

test("presence: members and counts, count_only on the wire, presence off rejects with bad_request", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const full = client.presence("chat");
  await flush();
  let req = ws.lastSent("presence");
  assert.equal(req.count_only, undefined);
  ws.receive({ type: "present", id: req.id, channel: "chat", clients: 3, users: 1, truncated: true,
    members: [{ client: "s_1", user: "alice" }, { client: "s_2", user: "alice" }] });
  assert.deepEqual(await full, { channel: "chat", clients: 3, users: 1, truncated: true,
    members: [{ client: "s_1", user: "alice" }, { client: "s_2", user: "alice" }] });
  const counts = client.presence("chat", { countOnly: true });
  await flush();
  req = ws.lastSent("presence");
  assert.equal(req.count_only, true);
  ws.receive({ type: "present", id: req.id, channel: "chat", clients: 3, users: 1 });
  assert.deepEqual(await counts, { channel: "chat", clients: 3, users: 1, members: [], truncated: false });
  const off = client.presence("chat");
  await flush();
  ws.receive({ type: "error", id: ws.lastSent("presence").id, code: "bad_request", message: "presence is off for this namespace" });
  await assert.rejects(off, (err) => err instanceof ServerError && err.code === "bad_request" && /presence is off/.test(err.message));
  await client.close();
});

test("join and leave reach the subscription's listeners in order with its messages; another channel's do not", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const events = [];
  const p = client.subscribe("chat", (m) => events.push(`message ${m.offset}`));
  await flush();
  answerSubscribe(ws, "chat", "e1", 0);
  const sub = await p;
  sub.on("join", (m) => events.push(`join ${m.client} ${m.user}`));
  sub.on("leave", (m) => events.push(`leave ${m.client} ${m.user}`));
  ws.receive({ type: "join", channel: "chat", member: { client: "s_4", user: "bob" } });
  msg(ws, 1);
  ws.receive({ type: "join", channel: "other", member: { client: "s_5" } });
  ws.receive({ type: "leave", channel: "chat", member: { client: "s_4", user: "bob" } });
  assert.deepEqual(events, ["join s_4 bob", "message 1", "leave s_4 bob"]);
  await client.close();
});
