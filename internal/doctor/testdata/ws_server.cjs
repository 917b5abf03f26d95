// A WebSocket server written the way most Node tutorials write it: the ws
// package on a plain http server, JSON messages validated with an error
// reply, and the ping/terminate heartbeat from the ws README. The doctor's
// tests start it; it is not part of Herald.
//
//   node ws_server.cjs [--heartbeat MS] [--error-listener]
//
// --heartbeat 0 (the default) sends no pings. Without --error-listener a
// socket has no 'error' listener, as in many tutorials. It prints
// "listening PORT" once it listens on 127.0.0.1.
'use strict';
const http = require('node:http');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const heartbeatMS = Number(args[args.indexOf('--heartbeat') + 1] || 0) || 0;
const errorListener = args.includes('--error-listener');

const server = http.createServer((req, res) => {
  res.end('hello\n');
});
const wss = new WebSocketServer({ server });

function heartbeat() {
  this.isAlive = true;
}

wss.on('connection', (ws) => {
  ws.isAlive = true;
  if (errorListener) ws.on('error', console.error);
  ws.on('pong', heartbeat);
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      ws.send(JSON.stringify({ type: 'error', message: 'invalid JSON' }));
      return;
    }
    ws.send(JSON.stringify({ type: 'echo', data: msg }));
  });
});

if (heartbeatMS > 0) {
  const interval = setInterval(() => {
    wss.clients.forEach((ws) => {
      if (ws.isAlive === false) return ws.terminate();
      ws.isAlive = false;
      ws.ping();
    });
  }, heartbeatMS);
  wss.on('close', () => clearInterval(interval));
}

server.listen(0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
