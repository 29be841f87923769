// The chat client: plain JavaScript over the public API. Everything shown is set with
// textContent, never parsed as HTML; the token lives in sessionStorage, so it ends with the tab.
"use strict";

const TOKEN_KEY = "chat-history-token";
const PAGE_SIZE = 100;

const state = { token: sessionStorage.getItem(TOKEN_KEY), chatId: null, loadedChats: 0 };
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// FastAPI's detail is a string, or for 422 a list of {loc, msg}.
function describe(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((error) => `${(error.loc || []).slice(1).join(".")}: ${error.msg}`).join("; ");
  }
  return `Request failed (${status})`;
}

async function api(method, path, { json, form } = {}) {
  const headers = {};
  let body;
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  const response = await fetch(path, { method, headers, body });
  const isJson = (response.headers.get("content-type") || "").includes("application/json");
  const data = isJson ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401 && state.token) {
      signOut();
      throw new ApiError(401, "Your session has ended: please log in again.");
    }
    throw new ApiError(response.status, describe(response.status, data));
  }
  return data;
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// Runs a user action, reporting its failure instead of leaving it in the console.
function action(handler) {
  return async (event) => {
    event.preventDefault();
    try {
      await handler(event);
    } catch (error) {
      say(error instanceof ApiError ? error.message : `Could not reach the server: ${error.message}`, true);
    }
  };
}

function showSignedIn(username) {
  $("whoami").textContent = username;
  $("session").hidden = false;
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
}

function signOut() {
  state.token = null;
  state.chatId = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("session").hidden = true;
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  $("chat").hidden = true;
  $("chats").replaceChildren();
  $("messages").replaceChildren();
  $("whoami").textContent = "";
}

async function register(event) {
  const form = event.target;
  const fields = Object.fromEntries(new FormData(form));
  const user = await api("POST", "/v1/auth/register", { json: fields });
  form.reset();
  $("login-form").elements.username.value = user.username;
  $("login-form").elements.password.focus();
  say(`Account ${user.username} created: log in to continue.`);
}

async function logIn(event) {
  const form = event.target;
  const token = await api("POST", "/v1/auth/token", { form: new FormData(form) });
  state.token = token.access_token;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  form.reset();
  await start();
}

async function start() {
  const user = await api("GET", "/v1/auth/test_token");
  showSignedIn(user.username);
  say("");
  await listChats();
}

function chatButton(chat) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = chat.title;
  button.dataset.chatId = String(chat.id);
  button.setAttribute("aria-current", String(chat.id === state.chatId));
  button.addEventListener("click", action(() => openChat(chat.id)));
  item.append(button);
  return item;
}

async function listChats(more = false) {
  const skip = more ? state.loadedChats : 0;
  const chats = await api("GET", `/v1/chats/?skip=${skip}&limit=${PAGE_SIZE}`);
  const items = chats.map(chatButton);
  if (more) $("chats").append(...items);
  else $("chats").replaceChildren(...items);
  state.loadedChats = skip + chats.length;
  $("more-chats").hidden = chats.length < PAGE_SIZE;
}

function messageItem(message) {
  const item = document.createElement("li");
  item.className = message.role;
  const role = document.createElement("span");
  role.className = "role";
  role.textContent = message.role;
  const content = document.createElement("div");
  content.className = "content";
  content.textContent = message.content;
  item.append(role, content);
  return item;
}

function resetDelete() {
  $("delete-chat").textContent = "Delete chat";
  $("delete-chat").classList.remove("confirm");
}

async function openChat(chatId) {
  const chat = await api("GET", `/v1/chats/${chatId}`);
  state.chatId = chat.id;
  $("chat-title").textContent = chat.title;
  $("rename-form").elements.title.value = chat.title;
  $("messages").replaceChildren(...chat.messages.map(messageItem));
  $("no-messages").hidden = chat.messages.length > 0;
  $("chat").hidden = false;
  resetDelete();
  for (const button of $("chats").querySelectorAll("button")) {
    button.setAttribute("aria-current", String(button.dataset.chatId === String(chat.id)));
  }
  say("");
}

async function createChat(event) {
  const form = event.target;
  const chat = await api("POST", "/v1/chats/", { json: { title: form.elements.title.value } });
  form.reset();
  await listChats();
  await openChat(chat.id);
}

async function addMessage(event) {
  const form = event.target;
  const fields = { role: form.elements.role.value, content: form.elements.content.value };
  const message = await api("POST", `/v1/chats/${state.chatId}/message`, { json: fields });
  $("messages").append(messageItem(message));
  $("no-messages").hidden = true;
  form.elements.content.value = "";
  await listChats();
}

async function renameChat(event) {
  const chat = await api("PATCH", `/v1/chats/${state.chatId}`, { json: { title: event.target.elements.title.value } });
  $("chat-title").textContent = chat.title;
  await listChats();
  say(`Renamed to “${chat.title}”.`);
}

// The first click arms the button, the second deletes: no dialog to dismiss.
async function deleteChat() {
  const button = $("delete-chat");
  if (!button.classList.contains("confirm")) {
    button.textContent = "Click again to delete";
    button.classList.add("confirm");
    return;
  }
  const title = $("chat-title").textContent;
  await api("DELETE", `/v1/chats/${state.chatId}`);
  state.chatId = null;
  $("chat").hidden = true;
  resetDelete();
  await listChats();
  say(`Deleted “${title}”.`);
}

$("register-form").addEventListener("submit", action(register));
$("login-form").addEventListener("submit", action(logIn));
$("new-chat-form").addEventListener("submit", action(createChat));
$("message-form").addEventListener("submit", action(addMessage));
$("rename-form").addEventListener("submit", action(renameChat));
$("delete-chat").addEventListener("click", action(deleteChat));
$("more-chats").addEventListener("click", action(() => listChats(true)));
$("logout").addEventListener("click", () => {
  signOut();
  say("Logged out.");
});

if (state.token) action(start)(new Event("load"));
