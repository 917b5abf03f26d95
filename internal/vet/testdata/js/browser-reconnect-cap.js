// Jitter added before the cap: at the cap every client waits 30 s.
let attempts = 0;

function connect() {
  const ws = new WebSocket("/ws");
  let idle;
  ws.onmessage = (e) => {
    clearTimeout(idle);
    idle = setTimeout(() => ws.close(), 45000);
    let m;
    try {
      m = JSON.parse(e.data);
    } catch {
      return;
    }
    console.log(m);
  };
  ws.onclose = () => {
    attempts++;
    setTimeout(connect, Math.min(30000, 1000 * 2 ** attempts + Math.random() * 1000)); // want ws-reconnect
  };
}
