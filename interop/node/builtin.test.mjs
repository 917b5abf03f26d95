// herald.v1 from Node's built-in, browser-style WebSocket (undici; Node 20
// needs --experimental-websocket). It cannot see ping frames: the heartbeat
// check shows that its runtime answers them.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { protocolSuite } from './suite.mjs';

test('the built-in WebSocket is available (node --experimental-websocket on Node 20)', () => {
  assert.equal(typeof globalThis.WebSocket, 'function');
});

if (typeof globalThis.WebSocket === 'function') {
  protocolSuite({ name: "Node's built-in WebSocket", WebSocket: globalThis.WebSocket });
}
