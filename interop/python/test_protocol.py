"""herald.v1 from Python's websockets (Debian's python3-websockets, run with
/usr/bin/python3) against a real herald serve: welcome, subscribe, publish,
fan-out, recovery, idempotency, rpc answered by the example hook backend,
every error code reachable without a token,
the heartbeat, and the close codes 1000, 1001, 1007 and 1009.

The server binary comes from HERALD_BIN (interop/run builds it).
"""

import asyncio
import itertools
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from websockets.exceptions import InvalidStatusCode
from websockets.legacy.client import WebSocketClientProtocol, connect

PING_INTERVAL_MS = 400
PONG_TIMEOUT_MS = 400
MAX_MESSAGE_BYTES = 4096
SERVER_ARGS = [
    "--ping-interval", f"{PING_INTERVAL_MS}ms",
    "--pong-timeout", f"{PONG_TIMEOUT_MS}ms",
    "--max-message-bytes", str(MAX_MESSAGE_BYTES),
    "--shutdown-timeout", "2s",
]
PROTOCOL = "herald.v1"


class Server:
    """A herald serve process on a free port of 127.0.0.1."""

    def __init__(self, args=SERVER_ARGS, env=None):
        binary = os.environ.get("HERALD_BIN")
        if not binary:
            raise RuntimeError("HERALD_BIN is not set: run interop/run, or build cmd/herald and point HERALD_BIN at it")
        self.log = []
        self.terminated = False
        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--log-format", "json", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        started = threading.Event()
        self.url = None

        def read():
            for line in self.proc.stderr:
                self.log.append(line.rstrip("\n"))
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # the race detector or a panic: kept in the log
                if rec.get("msg") == "herald serving":
                    self.url = rec["ws"]
                    started.set()
            started.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not started.wait(30) or self.url is None:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("herald serve did not start:\n" + "\n".join(self.log))

    def terminate(self):
        """Sends SIGTERM once: a second one during the shutdown makes herald
        exit at once, with 1."""
        if not self.terminated and self.proc.poll() is None:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self):
        """Sends SIGTERM, unless terminate already did, and returns the exit
        status; raises unless it is 0 (the race detector exits 66)."""
        self.terminate()
        code = self.proc.wait(20)
        self.reader.join(5)
        self.proc.stderr.close()
        if code != 0:
            raise AssertionError(f"herald serve exited with {code}:\n" + "\n".join(self.log))
        return code


class Backend:
    """examples/hooks/backend.py, the example application backend of the
    HTTP hooks, on a free port of 127.0.0.1."""

    def __init__(self, secret):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "hooks", "backend.py")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", path, "127.0.0.1:0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "HERALD_HOOK_SECRET": secret})
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"backend did not start: {line!r}")
        self.url = "http://" + line.removeprefix("listening on ")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


_channels = itertools.count(1)


def channel():
    """A fresh channel name, so that tests do not see each other's messages."""
    return f"interop:py-{os.getpid()}-{int(time.time() * 1000):x}-{next(_channels)}"


class CountingPongs(WebSocketClientProtocol):
    """Counts the pongs the library sends on its own for the server's pings."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pongs = []

    async def pong(self, data=b""):
        self.pongs.append(time.monotonic())
        await super().pong(data)


class NoPongs(WebSocketClientProtocol):
    """Ignores the server's pings: a client whose runtime does not answer."""

    async def pong(self, data=b""):
        pass


class Peer:
    """A connection with a queue of the JSON frames it received."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.held = []

    @classmethod
    async def open(cls, url, subprotocols=(PROTOCOL,), **kwargs):
        # ping_interval=None: the client sends no pings of its own, so only
        # its answers to the server's pings can keep a silent connection.
        ws = await connect(url, subprotocols=list(subprotocols) or None, ping_interval=None, **kwargs)
        return cls(ws)

    @classmethod
    async def welcomed(cls, url, **kwargs):
        peer = await cls.open(url, **kwargs)
        return peer, await peer.expect("welcome")

    async def next(self, timeout=3.0):
        if self.held:
            return self.held.pop(0)
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        return json.loads(msg) if isinstance(msg, str) else {"binary": True}

    async def expect(self, typ, timeout=3.0):
        frame = await self.next(timeout)
        if frame.get("type") != typ:
            raise AssertionError(f"expected a {typ} frame, got {frame}")
        return frame

    async def matching(self, pred, timeout=3.0):
        """The first frame, queued or new, for which pred holds; the others
        stay queued in order."""
        for i, frame in enumerate(self.held):
            if pred(frame):
                return self.held.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = await asyncio.wait_for(self.ws.recv(), max(deadline - time.monotonic(), 0.001))
            frame = json.loads(msg)
            if pred(frame):
                return frame
            self.held.append(frame)

    async def send(self, frame):
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def request(self, frame, timeout=3.0):
        rid = next(self.ids)
        await self.send({**frame, "id": rid})
        return await self.matching(lambda f: f.get("id") == rid, timeout)

    async def quiet(self, seconds):
        try:
            frame = await self.next(seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"expected no frame, got {frame}")


def setUpModule():
    global server
    server = Server()


def tearDownModule():
    server.stop()


class PeersTest(unittest.IsolatedAsyncioTestCase):
    """Tests against a module's server whose connections are closed after
    each test. url returns the server's URL: this module's by default."""

    def url(self):
        return server.url

    async def asyncSetUp(self):
        self.peers = []

    async def asyncTearDown(self):
        for p in self.peers:
            await p.ws.close()

    async def connect(self, **kwargs):
        peer, welcome = await Peer.welcomed(self.url(), **kwargs)
        self.peers.append(peer)
        return peer, welcome


class ProtocolTest(PeersTest):
    async def test_welcome(self):
        peer, welcome = await self.connect()
        self.assertEqual(peer.ws.subprotocol, PROTOCOL)
        self.assertRegex(welcome["session"], r"^\S+$")
        self.assertRegex(welcome["server"], r"^herald/")
        self.assertEqual(welcome["ping_interval_ms"], PING_INTERVAL_MS)
        self.assertEqual(welcome["pong_timeout_ms"], PONG_TIMEOUT_MS)
        self.assertEqual(welcome["max_message_bytes"], MAX_MESSAGE_BYTES)
        self.assertNotIn("user", welcome)
        self.assertNotIn("id", welcome)
        _, other = await self.connect()
        self.assertNotEqual(other["session"], welcome["session"])

    async def test_subprotocol_refused(self):
        with self.assertRaises(InvalidStatusCode) as cm:
            await Peer.open(server.url, subprotocols=("other.v1",))
        self.assertEqual(cm.exception.status_code, 400)

    async def test_no_subprotocol_accepted(self):
        peer, welcome = await self.connect(subprotocols=())
        self.assertIsNone(peer.ws.subprotocol)
        self.assertEqual(welcome["type"], "welcome")

    async def test_subscribe_publish_fanout(self):
        ch = channel()
        a, wa = await self.connect()
        b, wb = await self.connect()
        for p in (a, b):
            sub = await p.request({"type": "subscribe", "channel": ch})
            self.assertEqual(sub["type"], "subscribed")
            self.assertEqual(sub["channel"], ch)
            self.assertIsInstance(sub["epoch"], str)
            self.assertTrue(sub["epoch"])
            self.assertEqual(sub["offset"], 0)
        data = {"text": "héllo ✓ 🛰", "list": [1, 2.5, None, True, {"nested": "x"}]}
        pubd = await a.request({"type": "publish", "channel": ch, "data": data})
        self.assertEqual(pubd, {"type": "published", "id": pubd["id"], "channel": ch, "offset": 1})
        for p in (a, b):
            m = await p.matching(lambda f: f["type"] == "message")
            self.assertIsInstance(m["ts"], int)
            self.assertEqual(m, {"type": "message", "channel": ch, "offset": 1, "ts": m["ts"], "from": {"client": wa["session"]}, "data": data})
        back = await b.request({"type": "publish", "channel": ch, "data": "from b"})
        self.assertEqual(back["offset"], 2)
        for p in (a, b):
            m = await p.matching(lambda f: f["type"] == "message")
            self.assertEqual(m, {"type": "message", "channel": ch, "offset": 2, "ts": m["ts"], "from": {"client": wb["session"]}, "data": "from b"})
        await a.quiet(0.2)
        await b.quiet(0.2)

    async def test_since_replays_in_order(self):
        ch = channel()
        pub, _ = await self.connect()
        offsets = [(await pub.request({"type": "publish", "channel": ch, "data": {"i": i}}))["offset"] for i in range(1, 5)]
        self.assertEqual(offsets, [1, 2, 3, 4])
        sub, _ = await self.connect()
        first = await sub.request({"type": "subscribe", "channel": ch})
        again, _ = await self.connect()
        rec = await again.request({"type": "subscribe", "channel": ch, "since": {"epoch": first["epoch"], "offset": 1}})
        self.assertIs(rec["recovered"], True)
        self.assertEqual(rec["offset"], 4)
        replay = [await again.next() for _ in range(3)]
        self.assertEqual([(m["type"], m["offset"], m["data"]["i"]) for m in replay],
                         [("message", 2, 2), ("message", 3, 3), ("message", 4, 4)])
        stale = await again.request({"type": "subscribe", "channel": ch, "since": {"epoch": "not-the-epoch", "offset": 1}})
        self.assertIs(stale["recovered"], False)
        await again.quiet(0.2)

    async def test_message_metadata_from_the_server(self):
        ch = channel()
        pub, welcome = await self.connect()
        sub, _ = await self.connect()
        await sub.request({"type": "subscribe", "channel": ch})
        t0 = time.time() * 1000
        await pub.request({"type": "publish", "channel": ch, "data": "x", "ts": 1, "from": {"client": "s_FAKE", "user": "mallory"}})
        m = await sub.matching(lambda f: f["type"] == "message")
        self.assertEqual(m["from"], {"client": welcome["session"]})
        self.assertIsInstance(m["ts"], int)
        self.assertTrue(t0 - 5000 <= m["ts"] <= time.time() * 1000 + 5000, m["ts"])

    async def test_subscribe_last_backlog(self):
        ch = channel()
        pub, _ = await self.connect()
        for i in range(1, 6):
            await pub.request({"type": "publish", "channel": ch, "data": {"i": i}})
        peer, _ = await self.connect()
        sub = await peer.request({"type": "subscribe", "channel": ch, "last": 3})
        self.assertEqual((sub["type"], sub["offset"]), ("subscribed", 5))
        self.assertNotIn("recovered", sub)
        backlog = [await peer.next() for _ in range(3)]
        self.assertEqual([(m["type"], m["offset"], m["data"]["i"]) for m in backlog],
                         [("message", 3, 3), ("message", 4, 4), ("message", 5, 5)])
        await pub.request({"type": "publish", "channel": ch, "data": {"i": 6}})
        live = await peer.matching(lambda f: f["type"] == "message")
        self.assertEqual(live["offset"], 6)
        for bad in ({"last": -1}, {"last": 1001}, {"last": 2.5}, {"last": "3"},
                    {"last": 3, "since": {"epoch": sub["epoch"], "offset": 1}}):
            e = await peer.request({"type": "subscribe", "channel": ch, **bad})
            self.assertEqual((e["type"], e["code"]), ("error", "bad_request"), bad)
        self.assertEqual((await peer.request({"type": "ping"}))["type"], "pong")

    async def test_history_pages(self):
        ch = channel()
        peer, welcome = await self.connect()
        for i in range(1, 6):
            await peer.request({"type": "publish", "channel": ch, "data": {"i": i}})
        p1 = await peer.request({"type": "history", "channel": ch, "limit": 2})
        self.assertEqual((p1["type"], p1["channel"], p1["offset"], p1["more"]), ("page", ch, 5, True))
        self.assertEqual([(m["offset"], m["data"]["i"]) for m in p1["messages"]], [(4, 4), (5, 5)])
        m = p1["messages"][0]
        self.assertEqual(m, {"offset": 4, "ts": m["ts"], "from": {"client": welcome["session"]}, "data": {"i": 4}})
        p2 = await peer.request({"type": "history", "channel": ch, "limit": 10, "before": 4})
        self.assertEqual((p2["epoch"], p2["more"]), (p1["epoch"], False))
        self.assertEqual([m["offset"] for m in p2["messages"]], [1, 2, 3])
        for bad in ({"limit": 0}, {"limit": 1001}, {"limit": 1.5}, {"before": 0}, {"before": -1}):
            e = await peer.request({"type": "history", "channel": ch, **bad})
            self.assertEqual((e["type"], e["code"]), ("error", "bad_request"), bad)
        e = await peer.request({"type": "history", "channel": "bad channel!"})
        self.assertEqual((e["type"], e["code"]), ("error", "invalid_channel"))
        self.assertEqual((await peer.request({"type": "ping"}))["type"], "pong")

    async def test_presence_join_leave(self):
        own = await asyncio.to_thread(Server, SERVER_ARGS + ["--presence", "--join-leave"])
        try:
            await self.presence_join_leave(own.url)
        finally:
            for p in self.peers:
                await p.ws.close()
            self.peers.clear()
            self.assertEqual(await asyncio.to_thread(own.stop), 0)

    async def presence_join_leave(self, url):
        async def at():
            peer, welcome = await Peer.welcomed(url)
            self.peers.append(peer)
            return peer, welcome
        ch = channel()
        a, wa = await at()
        await a.request({"type": "subscribe", "channel": ch})
        b, wb = await at()
        await b.request({"type": "subscribe", "channel": ch})
        join = await a.matching(lambda f: f["type"] == "join")
        self.assertEqual(join, {"type": "join", "channel": ch, "member": {"client": wb["session"]}})
        p = await a.request({"type": "presence", "channel": ch})
        self.assertEqual((p["type"], p["clients"], p["users"]), ("present", 2, 0))
        self.assertEqual(sorted(m["client"] for m in p["members"]), sorted([wa["session"], wb["session"]]))
        counts = await a.request({"type": "presence", "channel": ch, "count_only": True})
        self.assertNotIn("members", counts)
        await b.request({"type": "unsubscribe", "channel": ch})
        leave = await a.matching(lambda f: f["type"] == "leave")
        self.assertEqual(leave["member"], {"client": wb["session"]})
        bad = await a.request({"type": "presence"})
        self.assertEqual((bad["type"], bad["code"]), ("error", "bad_request"))

    async def test_rpc_answered_by_the_backend(self):
        secret = "interop-hook-secret"
        backend = await asyncio.to_thread(Backend, secret)
        own = None
        try:
            own = await asyncio.to_thread(Server, SERVER_ARGS + [
                "--hook-connect", backend.url + "/connect", "--hook-rpc", backend.url + "/rpc",
                "--hook-cookies", "session"], {"HERALD_HOOK_SECRET": secret})
            await self.rpc_answered_by_the_backend(own.url)
        finally:
            for p in self.peers:
                await p.ws.close()
            self.peers.clear()
            if own:
                self.assertEqual(await asyncio.to_thread(own.stop), 0)
            backend.stop()

    async def rpc_answered_by_the_backend(self, url):
        with self.assertRaises(InvalidStatusCode) as cm:
            await Peer.open(url, extra_headers={"Cookie": "session=unknown"})
        self.assertEqual(cm.exception.status_code, 401)
        peer, welcome = await Peer.welcomed(url, extra_headers={"Cookie": "session=ann-cookie"})
        self.peers.append(peer)
        self.assertEqual(welcome["user"], "ann")
        sub = await peer.next()
        self.assertEqual(sub["type"], "subscribed")
        self.assertEqual(sub["channel"], "private:ann")
        self.assertNotIn("id", sub)
        await peer.send({"type": "rpc", "id": 7, "method": "whoami", "data": {"n": 1}})
        self.assertEqual(await peer.next(), {"type": "result", "id": 7, "data": {"user": "ann", "asked": {"n": 1}}})
        e = await peer.request({"type": "rpc", "method": "nope"})
        self.assertEqual((e["type"], e["code"], e["message"]), ("error", "bad_request", "unknown method nope"))
        bad = await peer.request({"type": "rpc", "data": 1})
        self.assertEqual((bad["type"], bad["code"]), ("error", "bad_request"))
        await peer.send({"type": "rpc", "id": 9, "method": "kick"})
        await peer.ws.wait_closed()
        self.assertEqual(peer.ws.close_code, 4501)

    async def test_idempotency_key(self):
        ch = channel()
        peer, _ = await self.connect()
        await peer.request({"type": "subscribe", "channel": ch})
        one = await peer.request({"type": "publish", "channel": ch, "data": 1, "key": "k-interop-py"})
        two = await peer.request({"type": "publish", "channel": ch, "data": 2, "key": "k-interop-py"})
        self.assertEqual(two["type"], "published")
        self.assertEqual(two["offset"], one["offset"])
        m = await peer.matching(lambda f: f["type"] == "message")
        self.assertEqual(m["data"], 1)
        await peer.quiet(0.3)

    async def test_errors_keep_the_connection(self):
        peer, _ = await self.connect()
        await peer.send("{not json")
        e = await peer.expect("error")
        self.assertEqual(e["code"], "bad_request")
        self.assertNotIn("id", e)
        self.assertIsInstance(e["message"], str)
        await peer.send(b"\x01\x02\x03")
        e = await peer.expect("error")
        self.assertEqual(e["code"], "bad_request")
        cases = [
            ({"type": "no_such_type"}, "unknown_type"),
            ({"type": "subscribe", "channel": "bad channel!"}, "invalid_channel"),
            ({"type": "publish", "channel": "x" * 256, "data": 1}, "invalid_channel"),
            ({"type": "unsubscribe", "channel": channel()}, "not_subscribed"),
            ({"type": "subscribe"}, "bad_request"),
        ]
        for frame, code in cases:
            with self.subTest(frame=frame):
                e = await peer.request(frame)
                self.assertEqual((e["type"], e["code"]), ("error", code))
        pong = await peer.request({"type": "ping"})
        self.assertEqual(pong["type"], "pong")
        self.assertTrue(peer.ws.open)

    async def test_unsubscribe(self):
        ch = channel()
        peer, _ = await self.connect()
        await peer.request({"type": "subscribe", "channel": ch})
        u = await peer.request({"type": "unsubscribe", "channel": ch})
        self.assertEqual((u["type"], u["channel"]), ("unsubscribed", ch))
        await peer.request({"type": "publish", "channel": ch, "data": "after"})
        await peer.quiet(0.3)

    async def test_heartbeat_library_pongs_keep_a_silent_connection(self):
        peer, _ = await self.connect(create_protocol=CountingPongs)
        start = time.monotonic()
        await asyncio.sleep(3 * (PING_INTERVAL_MS + PONG_TIMEOUT_MS) / 1000)
        self.assertTrue(peer.ws.open, "connection closed while idle")
        pongs = peer.ws.pongs
        self.assertGreaterEqual(len(pongs), 4, f"{len(pongs)} pings answered in {time.monotonic() - start:.2f} s")
        for prev, cur in zip(pongs, pongs[1:]):
            self.assertTrue(PING_INTERVAL_MS / 2000 < cur - prev < 2 * PING_INTERVAL_MS / 1000, f"ping gap {cur - prev:.3f} s")
        pong = await peer.request({"type": "ping"})
        self.assertEqual(pong["type"], "pong")

    async def test_heartbeat_unanswered_pings_end_the_connection(self):
        peer, _ = await self.connect(create_protocol=NoPongs)
        start = time.monotonic()
        await asyncio.wait_for(peer.ws.wait_closed(), 5)
        took = time.monotonic() - start
        self.assertEqual(peer.ws.close_code, 1006, "terminated without a close handshake")
        self.assertGreaterEqual(took, (PING_INTERVAL_MS + PONG_TIMEOUT_MS - 100) / 1000)

    async def test_close_1009_oversize(self):
        peer, _ = await self.connect()
        await peer.send({"type": "publish", "channel": channel(), "data": "x" * MAX_MESSAGE_BYTES})
        await asyncio.wait_for(peer.ws.wait_closed(), 5)
        self.assertEqual(peer.ws.close_code, 1009)

    async def test_close_1007_invalid_utf8(self):
        peer, _ = await self.connect()
        # websockets encodes str as UTF-8; write a raw text frame instead.
        from websockets.frames import OP_TEXT
        await peer.ws.write_frame(True, OP_TEXT, b"{\xff\xfe}")
        await asyncio.wait_for(peer.ws.wait_closed(), 5)
        self.assertEqual(peer.ws.close_code, 1007)

    async def test_close_1000_echoed(self):
        peer, _ = await self.connect()
        await peer.ws.close(1000, "bye")
        self.assertEqual(peer.ws.close_code, 1000)
        self.assertEqual(peer.ws.close_rcvd.code, 1000, "the server answered with a close frame of the same code")

    async def test_close_1001_on_sigterm(self):
        own = await asyncio.to_thread(Server)
        try:
            peer, _ = await Peer.welcomed(own.url)
            await peer.request({"type": "subscribe", "channel": channel()})
            own.terminate()
            await asyncio.wait_for(peer.ws.wait_closed(), 10)
            self.assertEqual(peer.ws.close_code, 1001)
            self.assertIsNotNone(peer.ws.close_rcvd, "a close frame, not a dropped connection")
        finally:
            self.assertEqual(await asyncio.to_thread(own.stop), 0)


if __name__ == "__main__":
    unittest.main()
