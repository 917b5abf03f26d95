// End-to-end: the client's token handling against `herald serve
// --jwt-secret`: a rejected token (4001) is replaced through the callback,
// and short-lived tokens are refreshed on the open connection, which
// outlives many of them.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { rm } from "node:fs/promises";
import { CloseError, HeraldClient } from "../../dist/index.js";
import { HeraldServer, buildHerald, freePort, sleep, tempDir, waitFor } from "./herald.mjs";

const SECRET = "e2e-secret";
const dirs = [];
let server;

/** jwt signs claims with HS256. */
function jwt(claims, secret = SECRET) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

const nowSec = () => Math.floor(Date.now() / 1000);

before(async () => {
  const bin = await buildHerald(await tempDir(dirs, "herald-tok-bin-"));
  server = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-tok-data-"), ["--jwt-secret", SECRET]);
  await server.start();
});

after(async () => {
  await server?.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

test("a token the server rejects with 4001 is replaced by the callback's, and never sent again", async () => {
  const bad = jwt({ sub: "alice", exp: nowSec() + 600 }, "not-the-secret");
  const sent = [];
  const WS = class extends globalThis.WebSocket {
    send(data) {
      const f = JSON.parse(data);
      if (f.type === "hello") sent.push(f.token);
      super.send(data);
    }
  };
  let calls = 0;
  const client = new HeraldClient(server.wsURL, {
    WebSocket: WS, token: bad, getToken: () => (++calls === 1 ? bad : jwt({ sub: "alice", exp: nowSec() + 600 })),
  });
  const changes = [];
  client.on("state", (ch) => changes.push(ch));
  await client.connect();
  const rejected = changes.find((c) => c.state === "disconnected");
  assert.ok(rejected.error instanceof CloseError && rejected.error.code === 4001, `first attempt ended with ${rejected.error}`);
  assert.equal(calls, 2, "the callback's copy of the rejected token was used");
  assert.equal(sent.filter((t) => t === bad).length, 1, "the rejected token was sent again");
  await client.close();
});

test("short-lived tokens are refreshed on the open connection", async () => {
  let calls = 0;
  const client = new HeraldClient(server.wsURL, {
    WebSocket: globalThis.WebSocket,
    getToken: () => {
      calls++;
      return jwt({ sub: "bob", exp: nowSec() + 3 });
    },
    refreshAheadMs: 1500,
  });
  const changes = [];
  const errors = [];
  client.on("state", (ch) => changes.push(ch));
  client.on("error", (e) => errors.push(e));
  await client.connect();
  const got = [];
  await client.subscribe("chat:tokens", (m) => got.push(m.data));

  await sleep(8000); // several token lifetimes
  assert.deepEqual(changes.map((c) => c.state), ["connecting", "connected"], `the connection did not survive: ${changes.map((c) => c.error?.message).filter(Boolean)}`);
  assert.deepEqual(errors, []);
  assert.ok(calls >= 4, `only ${calls} tokens were asked for`);
  await client.publish("chat:tokens", "still here");
  await waitFor(() => got.includes("still here"), 5000, "message after the refreshes");
  await client.close();
});
