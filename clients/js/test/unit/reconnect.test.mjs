import { test } from "node:test";
import assert from "node:assert/strict";
import { CloseError, ClosedError, TokenError } from "../../dist/index.js";
import { FakeWebSocket, accept, advance, answerSubscribe, connected, flush, newClient, record, useFakeTime } from "./fake.mjs";

/** jwt makes an unsigned JWT with the given claims; the client only reads exp. */
function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.sig`;
}

test("attempts back off exponentially with jitter, up to the cap", async (t) => {
  useFakeTime(t);
  t.mock.method(Math, "random", () => 0.999999); // the top of each jitter range
  const client = newClient();
  const changes = record(client);
  client.connect();
  const want = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000];
  for (const d of want) {
    await flush();
    FakeWebSocket.last.serverClose(1006); // refused before any welcome
    await flush();
    const last = changes.at(-1);
    assert.equal(last.state, "disconnected");
    assert.equal(last.retryInMs, d);
    assert.equal(last.retryAt, Date.now() + d);
    assert.equal(client.nextAttemptAt, Date.now() + d);
    const before = FakeWebSocket.instances.length;
    await advance(t, d - 1, d);
    assert.equal(FakeWebSocket.instances.length, before, "an attempt before its delay");
    await advance(t, 1);
    assert.equal(FakeWebSocket.instances.length, before + 1, "no attempt after its delay");
  }
  await client.close();
});

test("the attempt counter resets only after 10 s up with resubscriptions confirmed", async (t) => {
  useFakeTime(t);
  t.mock.method(Math, "random", () => 0.999999);
  const { client, ws } = await connected();
  const changes = record(client);
  const delays = () => changes.filter((c) => c.state === "disconnected").map((c) => c.retryInMs);

  const sub = client.subscribe("chat", () => {});
  answerSubscribe(ws, "chat", "e1", 0);
  await sub;

  // A connect-then-drop loop keeps backing off.
  let cur = ws;
  for (let i = 0; i < 3; i++) {
    await advance(t, 5000);
    cur.serverClose(1011);
    await advance(t, delays().at(-1));
    cur = await accept();
    answerSubscribe(cur, "chat", "e1", 0, true);
    await flush();
  }
  assert.deepEqual(delays(), [500, 1000, 2000]);

  // Up 10 s, but a resubscription never confirmed: no reset.
  cur.serverClose(1011);
  await advance(t, 4000);
  cur = await accept();
  await advance(t, 11_000);
  cur.serverClose(1011);
  await flush();
  assert.equal(delays().at(-1), 8000);

  // Up 10 s with the resubscription confirmed: the counter starts again.
  await advance(t, 8000);
  cur = await accept();
  answerSubscribe(cur, "chat", "e1", 0, true);
  await advance(t, 10_000);
  cur.serverClose(1011);
  await flush();
  assert.equal(delays().at(-1), 500);
  await client.close();
});

for (const code of [4403, 4500, 4777, 4999]) {
  test(`close ${code} is terminal: the client stops and reports it`, async (t) => {
    useFakeTime(t);
    const { client, ws } = await connected();
    const changes = record(client);
    const pending = assert.rejects(client.publish("chat", "x"), ClosedError, "an unconfirmed publish fails");
    ws.serverClose(code, "go away");
    await flush();
    assert.equal(client.state, "closed");
    assert.ok(client.error instanceof CloseError);
    assert.equal(client.error.code, code);
    assert.equal(client.error.reason, "go away");
    assert.deepEqual(changes.map((c) => c.state), ["closed"]);
    assert.equal(changes[0].error, client.error);
    await pending;
    await assert.rejects(client.publish("chat", "y"), ClosedError);
    await advance(t, 120_000, 1000);
    assert.equal(FakeWebSocket.instances.length, 1, "reconnected after a terminal code");
  });
}

test("a terminal code before the first welcome rejects connect()", async (t) => {
  useFakeTime(t);
  const client = newClient();
  const ready = client.connect();
  await flush();
  FakeWebSocket.last.open();
  FakeWebSocket.last.serverClose(4403);
  await assert.rejects(ready, (err) => err instanceof ClosedError && err.cause?.code === 4403);
});

for (const code of [1000, 1006, 1007, 1009, 1011, 1013, 4000, 4008, 4029, 4499]) {
  test(`close ${code} from the server is retried with backoff`, async (t) => {
    useFakeTime(t);
    t.mock.method(Math, "random", () => 0);
    const { client, ws } = await connected();
    const changes = record(client);
    ws.serverClose(code);
    await flush();
    assert.equal(changes.at(-1).state, "disconnected");
    assert.equal(changes.at(-1).retryInMs, 250);
    await advance(t, 250);
    assert.equal(FakeWebSocket.instances.length, 2);
    await client.close();
  });
}

test("after 1001 the first attempt waits a random [0, 5 s], later ones keep backing off", async (t) => {
  useFakeTime(t);
  let r = 0.6;
  t.mock.method(Math, "random", () => r);
  const { client, ws } = await connected();
  const changes = record(client);
  ws.serverClose(1001);
  await flush();
  assert.equal(changes.at(-1).retryInMs, 3000); // 5 s * 0.6
  r = 0;
  await advance(t, 3000);
  FakeWebSocket.last.serverClose(1006);
  await flush();
  assert.equal(changes.at(-1).retryInMs, 500); // attempt 1: 1 s * 0.5
  await client.close();
});

test("1001 puts a floor of 100 ms under the first attempt", async (t) => {
  useFakeTime(t);
  t.mock.method(Math, "random", () => 0);
  const { client, ws } = await connected();
  const changes = record(client);
  ws.serverClose(1001);
  await flush();
  assert.equal(changes.at(-1).retryInMs, 100);
  await client.close();
});

test("4001 asks the token callback for a fresh token, never reusing the rejected one", async (t) => {
  useFakeTime(t);
  t.mock.method(Math, "random", () => 0);
  const tokens = ["t1", "t1", "t2"];
  let asked = 0;
  const client = newClient({ getToken: async () => tokens[asked++] });
  const changes = record(client);
  const ready = client.connect();
  const ws = await accept();
  await ready;
  assert.deepEqual(ws.sentOf("hello").map((h) => h.token), ["t1"]);
  assert.equal(ws.sent[0].type, "hello", "hello is the first frame");
  assert.equal(ws.sent[0].client, "herald-js/0.1");

  ws.serverClose(4001, "token expired");
  await flush();
  assert.equal(changes.at(-1).state, "disconnected");
  await advance(t, 250);
  // The callback returned the rejected token: it is not sent, the client backs off and asks again.
  assert.equal(asked, 2);
  assert.equal(FakeWebSocket.instances.length, 1, "connected with the rejected token");
  assert.ok(changes.at(-1).error instanceof TokenError);
  await advance(t, changes.at(-1).retryInMs);
  assert.equal(asked, 3);
  const ws2 = await accept();
  assert.deepEqual(ws2.sentOf("hello").map((h) => h.token), ["t2"]);
  assert.equal(client.state, "connected");
  await client.close();
});

test("4001 without a token callback stops the client", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected({ token: "t1" });
  ws.serverClose(4001);
  await flush();
  assert.equal(client.state, "closed");
  assert.equal(client.error.code, 4001);
});

test("a failing token callback is retried with backoff", async (t) => {
  useFakeTime(t);
  t.mock.method(Math, "random", () => 0);
  let calls = 0;
  const client = newClient({ getToken: () => { if (++calls < 3) throw new Error("auth server down"); return "ok"; } });
  const changes = record(client);
  client.connect();
  await flush();
  assert.match(changes.at(-1).error.message, /auth server down/);
  assert.equal(FakeWebSocket.instances.length, 0);
  await advance(t, 250 + 500);
  assert.equal(calls, 3);
  const ws = await accept();
  assert.equal(ws.lastSent("hello").token, "ok");
  await client.close();
});

test("a JWT is refreshed ahead of its exp with the callback and a refresh frame", async (t) => {
  useFakeTime(t);
  const now = Date.now();
  const first = jwt({ sub: "alice", exp: now / 1000 + 120 });
  const second = jwt({ sub: "alice", exp: now / 1000 + 600 });
  const third = jwt({ sub: "alice", exp: now / 1000 + 900 });
  const fresh = [second, third];
  let asked = 0;
  const errors = [];
  const { client, ws } = await connected({ token: first, getToken: () => fresh[asked++] });
  client.on("error", (e) => errors.push(e));
  await advance(t, 89_000, 1000);
  assert.equal(ws.sentOf("refresh").length, 0, "refreshed too early");
  await advance(t, 1000);
  assert.equal(asked, 1);
  const req = ws.lastSent("refresh");
  assert.equal(req.token, second);
  ws.receive({ type: "refreshed", id: req.id, expires_at: now / 1000 + 600 });
  await flush();
  // Next refresh 30 s before the second token's exp.
  await advance(t, 600_000 - 90_000 - 30_000 - 1000, 1000);
  assert.equal(ws.sentOf("refresh").length, 1);
  await advance(t, 1000);
  assert.equal(ws.lastSent("refresh").token, third);
  assert.equal(client.state, "connected");
  assert.deepEqual(errors, []);

  // A reconnect uses the newest token.
  ws.serverClose(1011);
  await advance(t, 1000);
  const ws2 = await accept();
  assert.equal(ws2.lastSent("hello").token, third);
  await client.close();
});

test("a refresh the server refuses is reported and tried again", async (t) => {
  useFakeTime(t);
  const now = Date.now();
  let n = 0;
  const { client, ws } = await connected({
    token: jwt({ exp: now / 1000 + 60 }),
    getToken: () => jwt({ exp: now / 1000 + 600, n: ++n }),
  });
  const errors = [];
  client.on("error", (e) => errors.push(e));
  await advance(t, 30_000, 1000);
  const req = ws.lastSent("refresh");
  ws.receive({ type: "error", id: req.id, code: "forbidden", message: "other user" });
  await flush();
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "forbidden");
  await advance(t, 5000, 1000);
  assert.equal(ws.sentOf("refresh").length, 2);
  await client.close();
});

test("an expired token is replaced before reconnecting", async (t) => {
  useFakeTime(t);
  const now = Date.now();
  const old = jwt({ exp: now / 1000 + 5 });
  const { client, ws } = await connected({ token: old, getToken: () => jwt({ exp: now / 1000 + 3600 }), refreshAheadMs: 1 });
  ws.serverClose(1006);
  await flush();
  t.mock.timers.setTime(Date.now() + 6000); // the retry timer fires after the token expired
  await advance(t, 1, 1);
  const ws2 = await accept();
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.notEqual(ws2.lastSent("hello").token, old);
  await client.close();
});

test("close() sends 1000 and stops reconnecting", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const changes = record(client);
  await client.close();
  assert.deepEqual(ws.closedWith, { code: 1000, reason: undefined });
  assert.deepEqual(changes.map((c) => c.state), ["closed"]);
  assert.equal(client.error, undefined);
  await advance(t, 60_000, 1000);
  assert.equal(FakeWebSocket.instances.length, 1);
  await client.close(); // idempotent
});

test("dropConnection() closes the socket abruptly and the client recovers", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const changes = record(client);
  client.dropConnection();
  await flush();
  assert.equal(ws.closedWith.code, 4000);
  assert.equal(changes.at(-1).state, "disconnected");
  await advance(t, 1000);
  await accept();
  assert.equal(client.state, "connected");
  await client.close();
});
