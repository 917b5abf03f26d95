#!/usr/bin/env python3
"""An application backend for herald serve's HTTP hooks, with only the
standard library. Run it, then herald:

    HERALD_HOOK_SECRET=s3cret python3 backend.py 127.0.0.1:9000   # port 0: any free port, printed
    HERALD_HOOK_SECRET=s3cret herald serve --hook-connect http://127.0.0.1:9000/connect \
        --hook-subscribe http://127.0.0.1:9000/subscribe --hook-publish http://127.0.0.1:9000/publish \
        --hook-rpc http://127.0.0.1:9000/rpc --hook-cookies session

It checks every request's X-Herald-Signature, knows two sessions (cookie
session=ann-cookie is user ann, session=bob-cookie is user bob), keeps
"private:*" channels to their owner, upper-cases what is published to
"shout:*", and answers the rpc method "whoami". When LOG is set it
appends each request's path and body, one per line, to that file.
"""
import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("HERALD_HOOK_SECRET", "").encode()
LOG = os.environ.get("LOG")
SESSIONS = {"ann-cookie": "ann", "bob-cookie": "bob"}


def error(code, message):
    return {"error": {"code": code, "message": message}}


def connect(req):
    user = SESSIONS.get(req["cookies"].get("session", ""))
    if user is None:
        return error("unauthorized", "log in first")
    return {"user": user, "channels": ["private:" + user]}


def subscribe(req):
    channel = req["channel"]
    if channel.startswith("private:") and channel != "private:" + req["user"]:
        return error("forbidden", "not your channel")
    return {}


def publish(req):
    if req["channel"].startswith("shout:") and isinstance(req["data"], dict):
        return {"data": {k: v.upper() if isinstance(v, str) else v for k, v in req["data"].items()}}
    return {}


def rpc(req):
    if req["method"] == "whoami":
        return {"data": {"user": req["user"], "asked": req["data"]}}
    if req["method"] == "kick":
        return {"disconnect": {"code": 4501, "reason": "kicked"}}
    return error("bad_request", "unknown method " + req["method"])


HOOKS = {"/connect": connect, "/subscribe": subscribe, "/publish": publish, "/rpc": rpc}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if LOG:
            with open(LOG, "a") as f:
                f.write(self.path + " " + body.decode() + "\n")
        want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if SECRET and not hmac.compare_digest(want, self.headers.get("X-Herald-Signature", "")):
            self.send_response(401)
            self.end_headers()
            return
        hook = HOOKS.get(self.path)
        if hook is None:
            self.send_response(404)
            self.end_headers()
            return
        answer = json.dumps(hook(json.loads(body))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = sys.argv[1].rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print("listening on %s:%d" % server.server_address[:2], flush=True)
    server.serve_forever()
