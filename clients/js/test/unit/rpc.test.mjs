import { test } from "node:test";
import assert from "node:assert/strict";
import { ClosedError, ConnectionLostError, HeraldError, ServerError } from "../../dist/index.js";
import { connected, newClient, useFakeTime } from "./fake.mjs";

test("rpc sends method and data and resolves with the result's data", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const r = client.rpc("getProfile", { id: 42 });
  const bare = client.rpc("ping");
  const [f, g] = ws.sentOf("rpc");
  assert.deepEqual(f, { type: "rpc", id: f.id, method: "getProfile", data: { id: 42 } });
  assert.deepEqual(g, { type: "rpc", id: g.id, method: "ping" });
  ws.receive({ type: "result", id: g.id, data: null });
  ws.receive({ type: "result", id: f.id, data: { name: "Ann" } });
  assert.deepEqual(await r, { name: "Ann" });
  assert.equal(await bare, null);
  await client.close();
});

test("rpc rejects with the server's error, a lost connection, a bad method, no connection", async (t) => {
  useFakeTime(t);
  const { client, ws } = await connected();
  const refused = client.rpc("m");
  ws.receive({ type: "error", id: ws.lastSent("rpc").id, code: "bad_request", message: "rpc is not configured" });
  await assert.rejects(refused, (e) => e instanceof ServerError && e.code === "bad_request");
  await assert.rejects(client.rpc("bad method"), (e) => e instanceof ServerError && e.code === "bad_request");
  await assert.rejects(client.rpc("m".repeat(129)), ServerError);
  assert.equal(ws.sentOf("rpc").length, 1, "invalid methods are not sent");
  const lost = client.rpc("slow");
  ws.serverClose(1006);
  await assert.rejects(lost, ConnectionLostError);
  await assert.rejects(client.rpc("m"), (e) => e instanceof HeraldError && /not connected/.test(e.message));
  await client.close();
  await assert.rejects(client.rpc("m"), ClosedError);
  await assert.rejects(newClient().rpc("m"), /not connected/);
});
