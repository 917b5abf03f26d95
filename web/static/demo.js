// The demo chat: one channel, a live connection indicator with the
// reconnect countdown, and a button that drops the connection so that one
// can watch the client come back and recover what it missed.
import { HeraldClient } from "./herald-client/index.js";

const params = new URLSearchParams(location.search);
const channel = params.get("channel") || "chat:lobby";
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const $ = (id) => document.getElementById(id);

$("channel").textContent = channel;
$("url").textContent = url;
$("name").value = params.get("name") || localStorage.getItem("herald-demo-name") || "";

const client = new HeraldClient(url);
window.heraldClient = client; // for the console

// Connection state and countdown.

client.on("state", (ch) => {
  $("state").dataset.state = ch.state;
  $("state-text").textContent = ch.state === "connected" ? `connected · ${ch.session}` : ch.state;
  if (ch.state === "disconnected") {
    log(`disconnected: ${ch.error?.message ?? "connection lost"}; retrying in ${(ch.retryInMs / 1000).toFixed(1)} s`, true);
  } else if (ch.state === "connected") {
    log(`connected as session ${ch.session}`);
  } else if (ch.state === "closed") {
    log(`closed${ch.error ? ": " + ch.error.message : ""}`, true);
  }
  showCountdown();
});

function showCountdown() {
  const at = client.nextAttemptAt;
  const el = $("countdown");
  el.hidden = !at;
  if (at) el.textContent = `reconnecting in ${(Math.max(0, at - Date.now()) / 1000).toFixed(1)} s`;
}
setInterval(showCountdown, 100);

$("drop").addEventListener("click", () => {
  log("dropping the connection");
  client.dropConnection();
});

// Messages.

function show(m) {
  const li = document.createElement("li");
  li.dataset.offset = String(m.offset);
  const offset = span("offset", `#${m.offset}`);
  const who = span("who", String(m.data?.name ?? "?"));
  li.append(offset, who, document.createTextNode(String(m.data?.text ?? JSON.stringify(m.data))));
  const list = $("messages");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

function log(text, warn = false) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (warn) li.className = "warn";
  const list = $("log");
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function onRecovery(r) {
  if (r.recovered) log(`resubscribed from #${r.since.offset}: missed messages recovered`);
  else log(`messages after #${r.since.offset} could not be recovered (history lost); continuing from #${r.position.offset}`, true);
}

// Publishing.

$("send").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("name").value.trim();
  const text = $("text").value.trim();
  if (!name || !text) return;
  localStorage.setItem("herald-demo-name", name);
  $("text").value = "";
  const sent = client.publish(channel, { name, text });
  showQueued();
  try {
    await sent;
  } catch (err) {
    log(`not sent: ${err.message}`, true);
  }
  showQueued();
});

function showQueued() {
  const n = client.queued.messages;
  $("queued").hidden = n === 0;
  $("queued").textContent = `${n} message${n === 1 ? "" : "s"} waiting for the connection`;
}
client.on("connected", () => setTimeout(showQueued, 0));

client.subscribe(channel, show, { onRecovery })
  .then((sub) => log(`joined ${channel} at #${sub.position.offset}`))
  .catch((err) => log(`subscribe failed: ${err.message}`, true));
client.connect().catch((err) => log(`stopped: ${err.message}`, true));
