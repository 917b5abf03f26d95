"""A WebSocket server written with Python's websockets package the way its
documentation does: an echo handler that validates JSON with an error
reply, and the package's built-in keepalive (a ping every --ping-interval
seconds, the connection closed with 1011 when no pong comes within
--ping-timeout). The doctor's tests start it; it is not part of Herald.

    python3 websockets_server.py [--ping-interval S] [--ping-timeout S]

It prints "listening PORT" once it listens on 127.0.0.1.
"""
import argparse
import asyncio
import json

import websockets


async def handler(ws, path=None):
    async for message in ws:
        try:
            msg = json.loads(message)
        except ValueError:
            await ws.send(json.dumps({"type": "error", "message": "invalid JSON"}))
            continue
        await ws.send(json.dumps({"type": "echo", "data": msg}))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ping-interval", type=float, default=20)
    p.add_argument("--ping-timeout", type=float, default=20)
    a = p.parse_args()
    async with websockets.serve(handler, "127.0.0.1", 0,
                                ping_interval=a.ping_interval,
                                ping_timeout=a.ping_timeout) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print("listening", port, flush=True)
        await asyncio.Future()


asyncio.run(main())
