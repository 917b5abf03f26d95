// The demo chat: one channel, its last 50 messages on open with who sent
// them and when, who is in the room and who arrives and leaves, a live
// connection indicator with the reconnect countdown, and a button that drops
// the connection so that one can watch the client come back and recover
// what it missed.
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
    showCompression();
  } else if (ch.state === "closed") {
    log(`closed${ch.error ? ": " + ch.error.message : ""}`, true);
  }
  showCountdown();
});

// showCompression shows whether the browser negotiated permessage-deflate:
// it compresses and inflates on its own, the page only reports it.
function showCompression() {
  const on = client.extensions.includes("permessage-deflate");
  $("compression").dataset.on = String(on);
  $("compression").textContent = on ? "on (permessage-deflate)" : "off";
}

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

// The name each connection gave in its messages, by session id: the server
// vouches for the session (from.client), the name is what its user typed.
const names = new Map();

function show(m) {
  const li = document.createElement("li");
  li.dataset.offset = String(m.offset);
  const name = String(m.data?.name ?? "?");
  if (m.from) {
    li.dataset.from = m.from.client;
    names.set(m.from.client, name);
    renameMember(m.from.client);
  }
  const time = span("time", m.ts ? new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "");
  if (m.ts) time.title = new Date(m.ts).toLocaleString();
  const offset = span("offset", `#${m.offset}`);
  const who = span("who", name);
  who.title = m.from ? `session ${m.from.client}` : "published through the HTTP API";
  li.append(time, offset, who, document.createTextNode(String(m.data?.text ?? JSON.stringify(m.data))));
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

// Who is in the room: presence when the client (re)connects, then join and
// leave events, which are not replayed after a reconnect.

const members = new Map(); // session id -> li

function memberLabel(id) {
  const name = names.get(id) ?? id;
  return id === client.sessionId ? `${name} (you)` : name;
}

function addMember(m) {
  if (members.has(m.client)) return;
  const li = document.createElement("li");
  li.dataset.client = m.client;
  if (m.client === client.sessionId) li.className = "you";
  members.set(m.client, li);
  $("members").append(li);
  renameMember(m.client);
}

function renameMember(id) {
  const li = members.get(id);
  if (li) li.textContent = memberLabel(id);
  $("count").textContent = `(${members.size})`;
}

function removeMember(m) {
  members.get(m.client)?.remove();
  members.delete(m.client);
  $("count").textContent = `(${members.size})`;
}

function activity(text) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })} ${text}`;
  $("activity").prepend(li);
  while ($("activity").children.length > 20) $("activity").lastChild.remove();
}

async function loadPresence() {
  try {
    const p = await client.presence(channel);
    for (const li of members.values()) li.remove();
    members.clear();
    for (const m of p.members) addMember(m);
    $("count").textContent = `(${p.clients}${p.truncated ? "+" : ""})`;
    $("presence-off").hidden = true;
    $("members").hidden = false;
  } catch (err) {
    if (err.code !== "bad_request" && err.code !== "unknown_type") { // unknown_type: a server older than presence
      log(`who is here: ${err.message}`, true);
      return;
    }
    $("presence-off").hidden = false; // presence is off on this server: the chat works without it
    $("members").hidden = true;
    $("count").textContent = "";
  }
}

function onJoin(m) {
  addMember(m);
  activity(`${memberLabel(m.client)} arrived`);
}

function onLeave(m) {
  activity(`${memberLabel(m.client)} left`);
  removeMember(m);
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

client.subscribe(channel, show, { last: 50, onRecovery })
  .then((sub) => {
    log(`joined ${channel}`);
    sub.on("join", onJoin);
    sub.on("leave", onLeave);
    sub.on("state", (ch) => {
      if (ch.state === "subscribed") void loadPresence(); // after a reconnect
    });
    void loadPresence();
  })
  .catch((err) => log(`subscribe failed: ${err.message}`, true));
client.connect().catch((err) => log(`stopped: ${err.message}`, true));
