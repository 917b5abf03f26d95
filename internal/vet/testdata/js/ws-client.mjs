// In the shape of the ws README's client heartbeat: the server pings, the
// client terminates when no ping came in time. Nothing is reported.
import WebSocket from "ws";

function heartbeat() {
  clearTimeout(this.pingTimeout);
  this.pingTimeout = setTimeout(() => {
    this.terminate();
  }, 30000 + 1000);
}

const client = new WebSocket("wss://127.0.0.1:8080/");
client.on("error", console.error);
client.on("open", heartbeat);
client.on("ping", heartbeat);
client.on("close", function clear() {
  clearTimeout(this.pingTimeout);
});
