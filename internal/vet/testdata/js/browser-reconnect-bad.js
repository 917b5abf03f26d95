// A browser client that reconnects badly in four ways.
let attempts = 0;
const BASE = 1000;

function connectConstant() {
  const ws = new WebSocket("/ws"); // want ws-heartbeat
  ws.onclose = () => setTimeout(connectConstant, BASE); // want ws-reconnect
}

function connectNoJitter() {
  const ws = new WebSocket("/ws"); // want ws-heartbeat
  ws.onopen = () => {
    attempts = 0; // want ws-reconnect
  };
  ws.onclose = () => {
    attempts++;
    setTimeout(connectNoJitter, Math.min(30000, BASE * 2 ** attempts)); // want ws-reconnect
  };
}
