// Full jitter below a cap, the counter reset once the connection proved
// stable, an idle timer that closes a silent socket: nothing reported.
let attempts = 0;

function delay(n) {
  return Math.random() * Math.min(30000, 1000 * 2 ** n);
}

function connect() {
  const ws = new WebSocket("/ws");
  let idle, stable;
  ws.onopen = () => {
    stable = setTimeout(() => {
      attempts = 0;
    }, 60000);
  };
  ws.onmessage = () => {
    clearTimeout(idle);
    idle = setTimeout(() => ws.close(), 45000);
  };
  ws.onclose = () => {
    clearTimeout(stable);
    attempts++;
    setTimeout(connect, delay(attempts));
  };
  // herald:vet-ignore ws-reconnect a fixed retry for the demo's first load only
  setTimeout(connect, 100);
}
