// The herald.v1 conformance checks every independent Node client runs
// against a real herald serve: welcome, subscribe, publish, fan-out,
// recovery, idempotency, message metadata (ts, from), the backlog of a
// subscribe with last, history pages, every error code reachable without a
// token, the heartbeat, and the close codes 1000, 1001 and 1009.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Peer, PROTOCOL } from './peer.mjs';
import { MAX_MESSAGE_BYTES, PING_INTERVAL_MS, PONG_TIMEOUT_MS, channel, defaultArgs, startServer } from './server.mjs';

// protocolSuite registers the checks for impl: { name, WebSocket }.
export function protocolSuite({ name, WebSocket: WS }) {
  describe(`herald.v1 with ${name}`, () => {
    let srv;
    const open = [];
    const connect = async (opts) => {
      const c = await Peer.welcomed(WS, srv.url, opts);
      open.push(c.peer);
      return c;
    };
    before(async () => {
      srv = await startServer();
    });
    after(async () => {
      for (const p of open) if (p.ws.readyState < 2) p.ws.close();
      await srv.stop();
    });

    test('welcome: subprotocol and fields of an anonymous connection', async () => {
      const { peer, welcome } = await connect();
      assert.equal(peer.ws.protocol, PROTOCOL);
      assert.match(welcome.session, /^\S+$/);
      assert.match(welcome.server, /^herald\//);
      assert.equal(welcome.ping_interval_ms, PING_INTERVAL_MS);
      assert.equal(welcome.pong_timeout_ms, PONG_TIMEOUT_MS);
      assert.equal(welcome.max_message_bytes, MAX_MESSAGE_BYTES);
      assert.equal('user' in welcome, false, 'anonymous welcome has no user');
      assert.equal('id' in welcome, false, 'welcome without hello has no id');
      const other = await connect();
      assert.notEqual(other.welcome.session, welcome.session);
    });

    test('an upgrade offering only other subprotocols is refused', async () => {
      await assert.rejects(Peer.open(WS, srv.url, { protocols: ['other.v1'] }));
    });

    test('subscribe, publish, and fan-out between two connections', async () => {
      const ch = channel();
      const { peer: a, welcome: wa } = await connect();
      const { peer: b, welcome: wb } = await connect();
      for (const p of [a, b]) {
        const sub = await p.request({ type: 'subscribe', channel: ch });
        assert.equal(sub.type, 'subscribed');
        assert.equal(sub.channel, ch);
        assert.equal(typeof sub.epoch, 'string');
        assert.ok(sub.epoch.length > 0);
        assert.equal(sub.offset, 0, 'a new channel is at offset 0');
      }
      const data = { text: 'héllo ✓ 🛰', list: [1, 2.5, null, true, { nested: 'x' }] };
      const pubd = await a.request({ type: 'publish', channel: ch, data });
      assert.deepEqual(pubd, { type: 'published', id: pubd.id, channel: ch, offset: 1 });
      for (const p of [a, b]) {
        const m = await p.nextMatching((f) => f.type === 'message');
        assert.equal(typeof m.ts, 'number');
        assert.deepEqual(m, { type: 'message', channel: ch, offset: 1, ts: m.ts, from: { client: wa.session }, data });
      }
      const back = await b.request({ type: 'publish', channel: ch, data: 'from b' });
      assert.equal(back.offset, 2);
      for (const p of [a, b]) {
        const m = await p.nextMatching((f) => f.type === 'message');
        assert.deepEqual(m, { type: 'message', channel: ch, offset: 2, ts: m.ts, from: { client: wb.session }, data: 'from b' });
      }
      await a.quiet(200);
      await b.quiet(200);
    });

    test('subscribe with since replays the missed messages in order', async () => {
      const ch = channel();
      const { peer: pub } = await connect();
      const offsets = [];
      for (let i = 1; i <= 4; i++) offsets.push((await pub.request({ type: 'publish', channel: ch, data: { i } })).offset);
      assert.deepEqual(offsets, [1, 2, 3, 4]);
      const { peer: sub } = await connect();
      const first = await sub.request({ type: 'subscribe', channel: ch });
      const again = await connect();
      const rec = await again.peer.request({ type: 'subscribe', channel: ch, since: { epoch: first.epoch, offset: 1 } });
      assert.equal(rec.recovered, true);
      assert.equal(rec.offset, 4);
      const replay = await again.peer.take(3);
      assert.deepEqual(replay.map((m) => [m.type, m.offset, m.data.i]), [['message', 2, 2], ['message', 3, 3], ['message', 4, 4]]);
      const stale = await again.peer.request({ type: 'subscribe', channel: ch, since: { epoch: 'not-the-epoch', offset: 1 } });
      assert.equal(stale.recovered, false, 'a foreign epoch is not recovered');
      await again.peer.quiet(200);
    });

    test('message metadata: ts stamped by the server, from its view of the connection', async () => {
      const ch = channel();
      const { peer: pub, welcome } = await connect();
      const { peer: sub } = await connect();
      await sub.request({ type: 'subscribe', channel: ch });
      const t0 = Date.now();
      await pub.request({ type: 'publish', channel: ch, data: 'x', ts: 1, from: { client: 's_FAKE', user: 'mallory' } });
      const m = await sub.nextMatching((f) => f.type === 'message');
      assert.deepEqual(m.from, { client: welcome.session }, 'from comes from the server, never the request');
      assert.ok(Number.isInteger(m.ts) && m.ts >= t0 - 5000 && m.ts <= Date.now() + 5000, `ts ${m.ts}`);
    });

    test('subscribe with last: subscribed, the backlog, then live, without gap', async () => {
      const ch = channel();
      const { peer: pub } = await connect();
      for (let i = 1; i <= 5; i++) await pub.request({ type: 'publish', channel: ch, data: { i } });
      const { peer } = await connect();
      const sub = await peer.request({ type: 'subscribe', channel: ch, last: 3 });
      assert.equal(sub.type, 'subscribed');
      assert.equal(sub.offset, 5);
      assert.equal('recovered' in sub, false);
      const backlog = await peer.take(3);
      assert.deepEqual(backlog.map((m) => [m.type, m.offset, m.data.i]), [['message', 3, 3], ['message', 4, 4], ['message', 5, 5]]);
      assert.ok(backlog.every((m) => typeof m.ts === 'number' && typeof m.from.client === 'string'));
      await pub.request({ type: 'publish', channel: ch, data: { i: 6 } });
      const live = await peer.nextMatching((f) => f.type === 'message');
      assert.equal(live.offset, 6);
      for (const bad of [{ last: -1 }, { last: 1001 }, { last: 2.5 }, { last: '3' }, { last: 3, since: { epoch: sub.epoch, offset: 1 } }]) {
        const e = await peer.request({ type: 'subscribe', channel: ch, ...bad });
        assert.deepEqual([e.type, e.code], ['error', 'bad_request'], JSON.stringify(bad));
      }
      assert.equal((await peer.request({ type: 'ping' })).type, 'pong');
    });

    test('history pages back with before, limit and more', async () => {
      const ch = channel();
      const { peer, welcome } = await connect();
      for (let i = 1; i <= 5; i++) await peer.request({ type: 'publish', channel: ch, data: { i } });
      const p1 = await peer.request({ type: 'history', channel: ch, limit: 2 });
      assert.equal(p1.type, 'page');
      assert.equal(p1.channel, ch);
      assert.equal(p1.offset, 5);
      assert.equal(p1.more, true);
      assert.deepEqual(p1.messages.map((m) => [m.offset, m.data.i]), [[4, 4], [5, 5]]);
      const m = p1.messages[0];
      assert.deepEqual(m, { offset: 4, ts: m.ts, from: { client: welcome.session }, data: { i: 4 } });
      const p2 = await peer.request({ type: 'history', channel: ch, limit: 10, before: p1.messages[0].offset });
      assert.equal(p2.epoch, p1.epoch);
      assert.equal(p2.more, false);
      assert.deepEqual(p2.messages.map((m) => m.offset), [1, 2, 3]);
      const empty = await peer.request({ type: 'history', channel: channel() });
      assert.deepEqual([empty.type, empty.messages, empty.more], ['page', [], false]);
      for (const bad of [{ limit: 0 }, { limit: 1001 }, { limit: 1.5 }, { before: 0 }, { before: -1 }]) {
        const e = await peer.request({ type: 'history', channel: ch, ...bad });
        assert.deepEqual([e.type, e.code], ['error', 'bad_request'], JSON.stringify(bad));
      }
      const e = await peer.request({ type: 'history', channel: 'bad channel!' });
      assert.deepEqual([e.type, e.code], ['error', 'invalid_channel']);
      assert.equal((await peer.request({ type: 'ping' })).type, 'pong');
    });

    test('presence: who is subscribed, with join and leave to the others', async () => {
      const own = await startServer([...defaultArgs, '--presence', '--join-leave']);
      const at = async () => {
        const c = await Peer.welcomed(WS, own.url);
        open.push(c.peer);
        return c;
      };
      const ch = channel();
      const { peer: a, welcome: wa } = await at();
      await a.request({ type: 'subscribe', channel: ch });
      const { peer: b, welcome: wb } = await at();
      await b.request({ type: 'subscribe', channel: ch });
      const join = await a.nextMatching((f) => f.type === 'join');
      assert.deepEqual(join, { type: 'join', channel: ch, member: { client: wb.session } });
      const p = await a.request({ type: 'presence', channel: ch });
      assert.deepEqual([p.type, p.channel, p.clients, p.users], ['present', ch, 2, 0]);
      assert.deepEqual(p.members.map((m) => m.client).sort(), [wa.session, wb.session].sort());
      const counts = await a.request({ type: 'presence', channel: ch, count_only: true });
      assert.deepEqual([counts.type, counts.clients, 'members' in counts], ['present', 2, false]);
      await b.request({ type: 'unsubscribe', channel: ch });
      const leave = await a.nextMatching((f) => f.type === 'leave');
      assert.deepEqual(leave.member, { client: wb.session });
      const bad = await a.request({ type: 'presence' });
      assert.deepEqual([bad.type, bad.code], ['error', 'bad_request']);
      assert.equal((await a.request({ type: 'ping' })).type, 'pong');
      a.ws.close();
      await own.stop();
    });

    test('a repeated idempotency key publishes once', async () => {
      const ch = channel();
      const { peer } = await connect();
      await peer.request({ type: 'subscribe', channel: ch });
      const one = await peer.request({ type: 'publish', channel: ch, data: 1, key: 'k-interop-1' });
      const two = await peer.request({ type: 'publish', channel: ch, data: 2, key: 'k-interop-1' });
      assert.equal(two.type, 'published');
      assert.equal(two.offset, one.offset);
      const m = await peer.nextMatching((f) => f.type === 'message');
      assert.equal(m.data, 1);
      await peer.quiet(300);
    });

    test('error codes reachable without a token; the connection stays open', async () => {
      const { peer } = await connect();
      peer.send('{not json');
      let e = await peer.expect('error');
      assert.equal(e.code, 'bad_request');
      assert.equal('id' in e, false, 'an error for a frame that is not JSON has no id');
      assert.equal(typeof e.message, 'string');

      peer.ws.send(new Uint8Array([1, 2, 3]));
      e = await peer.expect('error');
      assert.equal(e.code, 'bad_request');

      e = await peer.request({ type: 'no_such_type' });
      assert.deepEqual([e.type, e.code], ['error', 'unknown_type']);
      e = await peer.request({ type: 'subscribe', channel: 'bad channel!' });
      assert.deepEqual([e.type, e.code], ['error', 'invalid_channel']);
      e = await peer.request({ type: 'publish', channel: 'x'.repeat(256), data: 1 });
      assert.deepEqual([e.type, e.code], ['error', 'invalid_channel']);
      e = await peer.request({ type: 'unsubscribe', channel: channel() });
      assert.deepEqual([e.type, e.code], ['error', 'not_subscribed']);
      e = await peer.request({ type: 'subscribe' });
      assert.deepEqual([e.type, e.code], ['error', 'bad_request']);

      const pong = await peer.request({ type: 'ping' });
      assert.equal(pong.type, 'pong');
      assert.equal(peer.ws.readyState, 1);
    });

    test('unsubscribe stops the messages', async () => {
      const ch = channel();
      const { peer } = await connect();
      await peer.request({ type: 'subscribe', channel: ch });
      const u = await peer.request({ type: 'unsubscribe', channel: ch });
      assert.deepEqual([u.type, u.channel], ['unsubscribed', ch]);
      await peer.request({ type: 'publish', channel: ch, data: 'after' });
      await peer.quiet(300);
    });

    test('heartbeat: the runtime answers the server pings, so a silent connection lives on', async () => {
      const { peer } = await connect();
      // Three times the interval plus timeout, sending nothing ourselves.
      await sleep(3 * (PING_INTERVAL_MS + PONG_TIMEOUT_MS));
      assert.equal(peer.ws.readyState, 1, 'connection closed while idle');
      const pong = await peer.request({ type: 'ping' });
      assert.equal(pong.type, 'pong');
    });

    test('close 1009: a message over max_message_bytes', async () => {
      const { peer } = await connect();
      peer.send({ type: 'publish', channel: channel(), data: 'x'.repeat(MAX_MESSAGE_BYTES) });
      const c = await peer.closed;
      assert.equal(c.code, 1009);
    });

    test('close 1000: a normal close is echoed', async () => {
      const { peer } = await connect();
      const c = await peer.close(1000, 'bye');
      assert.equal(c.code, 1000);
      assert.equal(c.wasClean, true);
    });

    test('close 1001: the server shuts down on SIGTERM', async () => {
      const own = await startServer();
      const { peer } = await Peer.welcomed(WS, own.url);
      await peer.request({ type: 'subscribe', channel: channel() });
      own.proc.kill('SIGTERM');
      const c = await peer.closed;
      assert.equal(c.code, 1001);
      assert.equal(c.wasClean, true);
      const st = await own.stop();
      assert.equal(st.code, 0);
    });
  });
}
