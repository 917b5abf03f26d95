"""permessage-deflate from Python's websockets (deflate is its default)
against herald serve --compression: negotiation with both
no_context_takeover parameters, messages above and below the threshold in
both directions, fragmented compressed messages, and each publication
compressed once whatever the number of subscribers.
"""

import asyncio
import json
import unittest
import urllib.request

from test_protocol import SERVER_ARGS, PeersTest, Server, channel

COMPRESSED = "herald_compressed_messages_total"
LARGE = {"user": "ada", "text": "the quick brown fox jumps over the lazy dog " * 12, "tags": ["general", "random"]}
SMALL = {"user": "ada", "text": "hi"}


def metric(url, name):
    """A counter of the server's /metrics (open when it has no API key)."""
    http = "http" + url[len("ws"):-len("/ws")] + "/metrics"
    with urllib.request.urlopen(http, timeout=5) as res:
        for line in res.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def setUpModule():
    global server
    server = Server([*SERVER_ARGS, "--compression"])


def tearDownModule():
    server.stop()


class CompressionTest(PeersTest):
    def url(self):
        return server.url

    async def compressed(self):
        return await asyncio.to_thread(metric, server.url, COMPRESSED)

    async def test_negotiated_without_context_takeover(self):
        peer, _ = await self.connect()
        [ext] = peer.ws.extensions
        self.assertEqual(ext.name, "permessage-deflate")
        self.assertTrue(ext.remote_no_context_takeover, "server_no_context_takeover")
        self.assertTrue(ext.local_no_context_takeover, "client_no_context_takeover")
        plain, _ = await self.connect(compression=None)
        self.assertEqual(plain.ws.extensions, [])

    async def test_messages_above_and_below_threshold(self):
        ch = channel()
        a, wa = await self.connect()
        b, _ = await self.connect()
        plain, _ = await self.connect(compression=None)
        for p in (a, b, plain):
            self.assertEqual((await p.request({"type": "subscribe", "channel": ch}))["type"], "subscribed")
        before = await self.compressed()

        for data in (LARGE, SMALL):
            pubd = await a.request({"type": "publish", "channel": ch, "data": data})
            self.assertEqual(pubd["type"], "published")
            for p in (a, b, plain):
                m = await p.matching(lambda f: f["type"] == "message" and f["offset"] == pubd["offset"])
                self.assertEqual(m["data"], data)
                self.assertEqual(m["from"], {"client": wa["session"]})

        # A fragmented compressed message: websockets sends an iterable as
        # fragments, RSV1 on the first.
        text = json.dumps({"type": "publish", "id": 99, "channel": ch, "data": LARGE})
        third = len(text) // 3 + 1
        await a.ws.send([text[:third], text[third:2 * third], text[2 * third:]])
        pubd = await a.matching(lambda f: f.get("id") == 99)
        self.assertEqual(pubd["type"], "published")
        for p in (a, b, plain):
            m = await p.matching(lambda f: f["type"] == "message" and f["offset"] == pubd["offset"])
            self.assertEqual(m["data"], LARGE)

        # Two large publications, each compressed once for a and b.
        self.assertEqual(await self.compressed() - before, 2)


if __name__ == "__main__":
    unittest.main()
