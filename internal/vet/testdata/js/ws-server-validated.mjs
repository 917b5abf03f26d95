// The same server with validation and errors logged: nothing reported, and
// an empty 'error' listener reported.
import { WebSocketServer } from "ws";

const wss = new WebSocketServer({ port: 8080 });

wss.on("connection", (ws) => {
  ws.on("error", () => {}); // want ws-error-swallowed
  ws.on("pong", () => {});
  ws.on("message", (data) => {
    let m;
    try {
      m = JSON.parse(data);
    } catch (err) {
      ws.close(1007, "not JSON");
      return;
    }
    handle(m);
  });
});

function handle(m) {
  switch (m.type) {
    case "chat":
      break;
    default:
      console.warn("unknown type", m.type);
  }
}
setInterval(() => wss.clients.forEach((ws) => ws.ping()), 30000);
