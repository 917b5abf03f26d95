// herald.v1 from the ws package, which also shows what a browser cannot:
// the server's ping frames, a client that stops answering them, and a text
// frame with invalid UTF-8.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import WebSocket from 'ws';

import { Peer } from './peer.mjs';
import { PING_INTERVAL_MS, PONG_TIMEOUT_MS, channel, defaultArgs, startBackend, startServer } from './server.mjs';
import { protocolSuite } from './suite.mjs';

protocolSuite({ name: 'the ws package', WebSocket });

// refusedStatus resolves with the HTTP status of an upgrade the server
// refuses, and rejects when it accepts it.
function refusedStatus(url, protocols, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    ws.on('unexpected-response', (req, res) => {
      resolve(res.statusCode);
      req.destroy();
    });
    ws.on('open', () => reject(new Error('upgrade accepted')));
    ws.on('error', () => {});
  });
}

describe('herald.v1 with the ws package: frames a browser cannot see or send', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await srv.stop();
  });

  test('the server pings at its interval and ws pongs keep the connection', async () => {
    const { peer } = await Peer.welcomed(WebSocket, srv.url);
    const pings = [];
    peer.ws.on('ping', () => pings.push(Date.now()));
    const start = Date.now();
    await sleep(3 * (PING_INTERVAL_MS + PONG_TIMEOUT_MS));
    assert.equal(peer.ws.readyState, WebSocket.OPEN);
    // The first ping comes within one interval, the next ones every interval.
    assert.ok(pings.length >= 4, `got ${pings.length} pings in ${Date.now() - start} ms`);
    for (let i = 1; i < pings.length; i++) {
      const gap = pings[i] - pings[i - 1];
      assert.ok(gap > PING_INTERVAL_MS / 2 && gap < 2 * PING_INTERVAL_MS, `ping gap ${gap} ms`);
    }
    peer.ws.close();
  });

  test('a client that does not answer pings is terminated without a close frame', async () => {
    const { peer } = await Peer.welcomed(WebSocket, srv.url, { options: { autoPong: false } });
    const start = Date.now();
    const c = await peer.closed;
    const took = Date.now() - start;
    assert.equal(c.code, 1006, 'terminated, no close handshake');
    // Dead after interval + timeout of silence; the first ping is at most
    // one interval in.
    assert.ok(took >= PING_INTERVAL_MS + PONG_TIMEOUT_MS - 100, `terminated after ${took} ms`);
    assert.ok(took < 2 * PING_INTERVAL_MS + PONG_TIMEOUT_MS + 1000, `terminated after ${took} ms`);
  });

  test('close 1007: a text frame with invalid UTF-8', async () => {
    const { peer } = await Peer.welcomed(WebSocket, srv.url);
    peer.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    const c = await peer.closed;
    assert.equal(c.code, 1007);
  });

  test('an unanswered upgrade: a subprotocol refusal is HTTP 400', async () => {
    assert.equal(await refusedStatus(srv.url, ['other.v1']), 400);
  });

  test('an upgrade without a subprotocol is accepted', async () => {
    const { peer, welcome } = await Peer.welcomed(WebSocket, srv.url, { protocols: [] });
    assert.equal(welcome.type, 'welcome');
    assert.equal(peer.ws.protocol, '');
    const sub = await peer.request({ type: 'subscribe', channel: channel() });
    assert.equal(sub.type, 'subscribed');
    peer.ws.close();
  });
});

describe('herald.v1 with the ws package: rpc answered by a backend over the HTTP hooks', () => {
  const secret = 'interop-hook-secret';
  let backend;
  let srv;
  before(async () => {
    backend = await startBackend(secret);
    srv = await startServer([...defaultArgs, '--hook-connect', `${backend.url}/connect`, '--hook-rpc', `${backend.url}/rpc`,
      '--hook-cookies', 'session'], { HERALD_HOOK_SECRET: secret });
  });
  after(async () => {
    await srv.stop();
    backend.stop();
  });
  const asAnn = { options: { headers: { Cookie: 'session=ann-cookie' } } };

  test('rpc: the result carries the backend data, for the user the connect hook named', async () => {
    const { peer, welcome } = await Peer.welcomed(WebSocket, srv.url, asAnn);
    assert.equal(welcome.user, 'ann');
    const sub = await peer.next();
    assert.deepEqual([sub.type, sub.channel, 'id' in sub], ['subscribed', 'private:ann', false]);
    peer.send(JSON.stringify({ type: 'rpc', id: 7, method: 'whoami', data: { n: 1 } }));
    assert.deepEqual(await peer.next(), { type: 'result', id: 7, data: { user: 'ann', asked: { n: 1 } } });
    const e = await peer.request({ type: 'rpc', method: 'nope' });
    assert.deepEqual([e.type, e.code, e.message], ['error', 'bad_request', 'unknown method nope']);
    const bad = await peer.request({ type: 'rpc', data: 1 });
    assert.deepEqual([bad.type, bad.code], ['error', 'bad_request'], 'an rpc without method');
    peer.send(JSON.stringify({ type: 'rpc', id: 9, method: 'kick' }));
    assert.equal((await peer.closed).code, 4501, 'the backend disconnected the connection');
  });

  test('an upgrade the connect hook refuses is 401', async () => {
    assert.equal(await refusedStatus(srv.url, ['herald.v1'], { headers: { Cookie: 'session=unknown' } }), 401);
  });
});
