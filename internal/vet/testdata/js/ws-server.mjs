// In the shape of the ws README's server examples: an 'error' listener on
// each socket, and the README's heartbeat (ping every 30 s, terminate the
// sockets that did not answer the previous ping). Nothing is reported.
import { WebSocketServer } from "ws";

const wss = new WebSocketServer({ port: 8080 });

function alive() {
  this.isAlive = true;
}

wss.on("connection", function connection(ws) {
  ws.isAlive = true;
  ws.on("error", console.error);
  ws.on("pong", alive);
  ws.on("message", function message(data) {
    console.log("received: %s", data);
  });
  ws.send("something");
});

const interval = setInterval(function ping() {
  wss.clients.forEach(function each(ws) {
    if (ws.isAlive === false) return ws.terminate();
    ws.isAlive = false;
    ws.ping();
  });
}, 30000);

wss.on("close", function close() {
  clearInterval(interval);
});
