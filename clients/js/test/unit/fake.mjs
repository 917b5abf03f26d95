// A fake WebSocket that a test drives as the server, and helpers around it.

import { HeraldClient } from "../../dist/index.js";

/** FakeWebSocket records what the client sends; the test plays the server. */
export class FakeWebSocket {
  static instances = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = undefined;
    this.autoPong = true; // answer pings as the server does
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeWebSocket.instances.push(this);
  }

  static get last() {
    return FakeWebSocket.instances.at(-1);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    const f = JSON.parse(data);
    this.sent.push(f);
    if (f.type === "ping" && this.autoPong) queueMicrotask(() => this.readyState === 1 && this.receive({ type: "pong", id: f.id }));
  }

  close(code, reason) {
    if (this.closedWith) return;
    this.closedWith = { code, reason };
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? "", wasClean: true }));
  }

  // The server's side.

  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  welcome(extra = {}) {
    this.receive({
      type: "welcome", session: "s_" + FakeWebSocket.instances.length, server: "fake",
      ping_interval_ms: 25000, pong_timeout_ms: 15000, max_message_bytes: 65536, ...extra,
    });
  }

  receive(frame) {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }

  /** serverClose ends the connection with a close frame of code (1006: none). */
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  sentOf(type) {
    return this.sent.filter((f) => f.type === type);
  }

  lastSent(type) {
    return this.sentOf(type).at(-1);
  }
}

/** flush lets pending promise callbacks run (setImmediate is never mocked here). */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** useFakeTime mocks timers and Date for the test t, from a fixed start. */
export function useFakeTime(t, now = 1_700_000_000_000) {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now });
}

/** advance moves fake time by ms, firing timers, then lets promises settle. */
export async function advance(t, ms, step = 50) {
  for (let left = ms; left > 0; left -= step) {
    t.mock.timers.tick(Math.min(step, left));
    await flush();
  }
}

/** newClient makes a client on the fake socket; FakeWebSocket.instances starts empty. */
export function newClient(options = {}) {
  FakeWebSocket.instances = [];
  return new HeraldClient("ws://herald.test/ws", { WebSocket: FakeWebSocket, browserEvents: false, fetch: null, ...options });
}

/** accept opens and welcomes the newest socket and returns it. */
export async function accept(extra) {
  await flush();
  const ws = FakeWebSocket.last;
  ws.open();
  ws.welcome(extra);
  await flush();
  return ws;
}

/** connected returns a client connected to a fake server, and its socket. */
export async function connected(options, welcome) {
  const client = newClient(options);
  const ready = client.connect();
  const ws = await accept(welcome);
  await ready;
  return { client, ws };
}

/** record collects a client's state changes. */
export function record(client) {
  const changes = [];
  client.on("state", (ch) => changes.push(ch));
  return changes;
}

/** answerSubscribe answers the newest subscribe for channel on ws. */
export function answerSubscribe(ws, channel, epoch, offset, recovered) {
  const req = ws.sentOf("subscribe").filter((f) => f.channel === channel).at(-1);
  const reply = { type: "subscribed", id: req.id, channel, epoch, offset };
  if (recovered !== undefined) reply.recovered = recovered;
  ws.receive(reply);
  return req;
}
