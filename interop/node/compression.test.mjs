// permessage-deflate from the ws package against herald serve
// --compression: negotiation with both no_context_takeover parameters,
// messages above and below the threshold in both directions, fragmented
// compressed messages, and each publication compressed once whatever the
// number of subscribers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import WebSocket from 'ws';

import { Peer } from './peer.mjs';
import { channel, defaultArgs, metric, startServer } from './server.mjs';

const COMPRESSED = 'herald_compressed_messages_total';

// large is JSON data above the server's threshold of 256 bytes; small is
// below it.
const large = { user: 'ada', text: 'the quick brown fox jumps over the lazy dog '.repeat(12), tags: ['general', 'random'] };
const small = { user: 'ada', text: 'hi' };

describe('permessage-deflate with the ws package', () => {
  let srv;
  const open = [];
  // The client compresses everything it sends (threshold 0), so the
  // server inflates small messages as well as large ones.
  const connect = async (perMessageDeflate = { threshold: 0 }) => {
    const c = await Peer.welcomed(WebSocket, srv.url, { options: { perMessageDeflate } });
    open.push(c.peer);
    return c;
  };
  before(async () => {
    srv = await startServer([...defaultArgs, '--compression']);
  });
  after(async () => {
    for (const p of open) if (p.ws.readyState < 2) p.ws.close();
    await srv.stop();
  });

  test('negotiated with server_no_context_takeover and client_no_context_takeover', async () => {
    // The welcome may come with the upgrade response: the peer listens
    // before anything is read.
    const ws = new WebSocket(srv.url, ['herald.v1']);
    const peer = new Peer(ws);
    open.push(peer);
    const accepted = new Promise((resolve, reject) => {
      ws.on('upgrade', (res) => resolve(res.headers['sec-websocket-extensions']));
      ws.on('error', reject);
    });
    await peer.expect('welcome');
    assert.equal(ws.extensions, 'permessage-deflate');
    const ext = await accepted;
    assert.match(ext, /^permessage-deflate;/);
    assert.match(ext, /server_no_context_takeover/);
    assert.match(ext, /client_no_context_takeover/);
    const { peer: plain } = await connect(false);
    assert.equal(plain.ws.extensions, '');
  });

  test('messages above and below the threshold, whole and fragmented, compressed once per publication', async () => {
    const ch = channel();
    const { peer: a, welcome } = await connect();
    const { peer: b } = await connect();
    const { peer: plain } = await connect(false);
    for (const p of [a, b, plain]) assert.equal((await p.request({ type: 'subscribe', channel: ch })).type, 'subscribed');
    const before = await metric(srv.url, COMPRESSED);

    for (const data of [large, small]) {
      const pubd = await a.request({ type: 'publish', channel: ch, data });
      assert.equal(pubd.type, 'published');
      for (const p of [a, b, plain]) {
        const m = await p.nextMatching((f) => f.type === 'message' && f.offset === pubd.offset);
        assert.deepEqual(m.data, data);
        assert.equal(m.from.client, welcome.session);
      }
    }

    // A compressed message in three fragments: RSV1 on the first only.
    const text = JSON.stringify({ type: 'publish', id: 99, channel: ch, data: large });
    const third = Math.ceil(text.length / 3);
    a.ws.send(text.slice(0, third), { fin: false });
    a.ws.send(text.slice(third, 2 * third), { fin: false });
    a.ws.send(text.slice(2 * third), { fin: true });
    const pubd = await a.nextMatching((f) => f.id === 99);
    assert.equal(pubd.type, 'published');
    for (const p of [a, b, plain]) {
      const m = await p.nextMatching((f) => f.type === 'message' && f.offset === pubd.offset);
      assert.deepEqual(m.data, large);
    }

    // Two large publications, each compressed once for a and b; the small
    // one and the short replies went uncompressed.
    assert.equal((await metric(srv.url, COMPRESSED)) - before, 2);
  });

  test('a large reply to one connection comes compressed too', async () => {
    const ch = channel();
    const { peer } = await connect();
    for (let i = 0; i < 3; i++) await peer.request({ type: 'publish', channel: ch, data: large });
    const before = await metric(srv.url, COMPRESSED);
    const page = await peer.request({ type: 'history', channel: ch });
    assert.equal(page.type, 'page', JSON.stringify(page));
    assert.equal(page.messages.length, 3);
    assert.deepEqual(page.messages[2].data, large);
    assert.equal((await metric(srv.url, COMPRESSED)) - before, 1);
  });
});
