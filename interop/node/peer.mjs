// Peer wraps a WHATWG-style WebSocket (the ws package's or Node's built-in)
// with a queue of the JSON frames it received, so that tests can await
// them in order.
import assert from 'node:assert/strict';

export const PROTOCOL = 'herald.v1';

export class Peer {
  constructor(socket) {
    this.ws = socket;
    this.frames = [];
    this.waiters = [];
    socket.addEventListener('message', (ev) => {
      this.push(typeof ev.data === 'string' ? JSON.parse(ev.data) : { binary: true });
    });
    this.closed = new Promise((resolve) => {
      socket.addEventListener('close', (ev) => {
        resolve({ code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
        this.flushWaiters();
      });
    });
  }

  // open connects and resolves once the upgrade succeeded; the listeners
  // are in place before the first frame can arrive.
  static async open(WS, url, { protocols = [PROTOCOL], options } = {}) {
    const socket = options ? new WS(url, protocols, options) : new WS(url, protocols);
    const peer = new Peer(socket);
    await new Promise((resolve, reject) => {
      socket.addEventListener('open', resolve, { once: true });
      socket.addEventListener('error', (ev) => reject(new Error(`connecting to ${url}: ${ev.message ?? ev.error ?? 'error'}`)), { once: true });
    });
    return peer;
  }

  // welcomed opens a connection and returns it with the server's welcome.
  static async welcomed(WS, url, opts) {
    const peer = await Peer.open(WS, url, opts);
    const welcome = await peer.expect('welcome');
    return { peer, welcome };
  }

  push(frame) {
    const w = this.waiters.shift();
    if (w) w.resolve(frame);
    else this.frames.push(frame);
  }

  flushWaiters() {
    for (const w of this.waiters.splice(0)) w.reject(new Error('connection closed while waiting for a frame'));
  }

  // next resolves with the next frame, or rejects after timeout ms.
  next(timeout = 3000) {
    if (this.frames.length > 0) return Promise.resolve(this.frames.shift());
    if (this.ws.readyState >= 2) return Promise.reject(new Error('connection closed while waiting for a frame'));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (f) => { clearTimeout(timer); resolve(f); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no frame within ${timeout} ms`));
      }, timeout);
      this.waiters.push(w);
    });
  }

  // expect resolves with the next frame after checking its type.
  async expect(type, timeout) {
    const f = await this.next(timeout);
    assert.equal(f.type, type, `expected a ${type} frame, got ${JSON.stringify(f)}`);
    return f;
  }

  // take resolves with the next n frames.
  async take(n, timeout) {
    const out = [];
    while (out.length < n) out.push(await this.next(timeout));
    return out;
  }

  // quiet checks that no frame arrives within ms.
  async quiet(ms) {
    await assert.rejects(this.next(ms), /no frame within/, 'expected no frame');
  }

  send(frame) {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  // nextMatching resolves with the first frame, queued or new, for which
  // pred holds; the others stay queued in order.
  async nextMatching(pred, timeout = 3000) {
    const idx = this.frames.findIndex(pred);
    if (idx >= 0) return this.frames.splice(idx, 1)[0];
    const held = this.frames.splice(0);
    try {
      const deadline = Date.now() + timeout;
      for (;;) {
        const f = await this.next(Math.max(deadline - Date.now(), 1));
        if (pred(f)) return f;
        held.push(f);
      }
    } finally {
      this.frames.unshift(...held);
    }
  }

  // request sends a frame with a fresh id and resolves with the reply that
  // carries it.
  request(frame, timeout) {
    const id = (this.lastID = (this.lastID ?? 0) + 1);
    this.send({ ...frame, id });
    return this.nextMatching((f) => f.id === id, timeout);
  }

  close(code = 1000, reason = '') {
    this.ws.close(code, reason);
    return this.closed;
  }
}
