// The chat page: phoenix.js Socket + Channel + Presence against the Cinder chat server.
import { Socket, Presence } from "/vendor/phoenix.mjs";

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const messagesEl = $("messages");
const onlineEl = $("online");
const messageInput = $("message");
const sendButton = $("send");

const socket = new Socket("/socket", { params: {} });
socket.onOpen(() => setStatus("online"));
socket.onClose(() => setStatus("offline"));
socket.onError(() => setStatus("offline"));
socket.connect();

let channel = null;
let presence = null;
let me = null;
let typingTimer = null;
let typingSent = false;

function setStatus(state) {
  statusEl.dataset.state = state;
  statusEl.textContent = state;
}

function addMessage({ user, body, at }) {
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "user";
  who.textContent = user;
  const text = document.createElement("span");
  text.className = "body";
  text.textContent = body;
  const when = document.createElement("time");
  when.className = "at";
  when.dateTime = new Date(at).toISOString();
  when.textContent = new Date(at).toLocaleTimeString();
  li.append(who, text, when);
  messagesEl.append(li);
  messagesEl.scrollTop = messagesEl.scrollHeight;
}

function addSystem(text) {
  const li = document.createElement("li");
  li.className = "system";
  li.textContent = text;
  messagesEl.append(li);
}

function renderPresence() {
  onlineEl.replaceChildren();
  const people = presence.list((user, { metas }) => ({
    user,
    typing: metas.some((m) => m.typing),
    count: metas.length,
  }));
  people.sort((a, b) => a.user.localeCompare(b.user));
  for (const p of people) {
    const li = document.createElement("li");
    li.dataset.user = p.user;
    li.dataset.typing = String(p.typing);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = p.user;
    li.append(name);
    if (p.count > 1) {
      const c = document.createElement("span");
      c.className = "count";
      c.textContent = `×${p.count}`;
      li.append(c);
    }
    if (p.typing) {
      const t = document.createElement("span");
      t.className = "typing";
      t.textContent = "typing…";
      li.append(t);
    }
    onlineEl.append(li);
  }
}

function setTyping(typing) {
  if (!channel || typing === typingSent) return;
  typingSent = typing;
  channel.push("typing", { typing });
}

function joinRoom(user, room) {
  if (channel) {
    setTyping(false);
    channel.leave();
  }
  me = user;
  messagesEl.replaceChildren();
  onlineEl.replaceChildren();
  $("join-error").textContent = "";
  $("room-title").textContent = `#${room}`;
  const ch = socket.channel(`room:${room}`, { user });
  channel = ch;
  typingSent = false;
  presence = new Presence(ch);
  presence.onSync(renderPresence);
  ch.on("new_msg", (msg) => addMessage(msg));
  ch.join()
    .receive("ok", () => {
      if (channel !== ch) return;
      messageInput.disabled = false;
      sendButton.disabled = false;
      document.body.dataset.joined = room;
      addSystem(`joined #${room} as ${user}`);
      messageInput.focus();
    })
    .receive("error", ({ reason }) => {
      if (channel !== ch) return;
      $("join-error").textContent = `could not join: ${reason}`;
      ch.leave();
      channel = null;
      messageInput.disabled = true;
      sendButton.disabled = true;
    });
}

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const user = $("user").value.trim();
  const room = $("room").value.trim();
  if (user && room) joinRoom(user, room);
});

$("message-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const body = messageInput.value.trim();
  if (!channel || !body) return;
  channel.push("new_msg", { body })
    .receive("ok", () => { messageInput.value = ""; })
    .receive("error", ({ reason }) => addSystem(`not sent: ${reason}`));
  clearTimeout(typingTimer);
  setTyping(false);
});

messageInput.addEventListener("input", () => {
  setTyping(messageInput.value.length > 0);
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => setTyping(false), 3000);
});

// for tests and the console
window.chat = { socket, get channel() { return channel; }, get presence() { return presence; }, get me() { return me; } };
