// The README's plain echo server without the heartbeat section and without
// the 'error' listener: both reported. Parsing without try and a switch with
// no default: reported.
import { WebSocketServer } from "ws";

const wss = new WebSocketServer({ port: 8080 });

wss.on("connection", (ws) => { // want ws-heartbeat ws-error-listener
  ws.on("message", (data) => {
    const m = JSON.parse(data); // want ws-validate
    switch (m.type) { // want ws-validate
      case "chat":
        ws.send(m.body);
        break;
    }
  });
});
