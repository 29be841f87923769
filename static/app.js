// The chat client: plain JavaScript over the public API, no build step. Text from the server
// is set with textContent, except message Markdown and search snippets, which go through
// DOMPurify (see renderMarkdown and snippet). Tokens live in sessionStorage: each tab is its
// own session, so two tabs never race to rotate one refresh token.
"use strict";

const CHAT_PAGE = 100;
const MESSAGE_PAGE = 50;
const SEARCH_PAGE = 20;
// How near the top or bottom of the history (in pixels) the next page is fetched.
const SCROLL_MARGIN = 400;
// A list search for a chat opened by its address gives up after this many pages and reads the chat whole.
const CHAT_LOOKUP_PAGES = 5;
const STORE = { access: "chat-history-token", refresh: "chat-history-refresh", deadline: "chat-history-deadline" };

const $ = (id) => document.getElementById(id);
const state = {
  chatId: null,
  chat: null,
  archivedView: false,
  loadedChats: 0,
  knownChats: new Map(),
  view: null, // the open path: {firstId, lastId, hasOlder, hasNewer, through, and the pages loading: older, newer}
  search: null, // {q, after}
  refreshing: null,
  refreshTimer: null,
};

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

// ---- Session: an access token refreshed before it expires, a rotating refresh token ----

function tokenLifetime(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return (payload.exp - payload.iat) * 1000;
  } catch {
    return 0;
  }
}

// The deadline is counted on this machine's clock from when the token arrived, so a client
// clock that is off from the server's moves nothing.
function storeTokens(tokens) {
  const lifetime = tokenLifetime(tokens.access_token);
  const margin = Math.min(60_000, lifetime / 4);
  sessionStorage.setItem(STORE.access, tokens.access_token);
  sessionStorage.setItem(STORE.refresh, tokens.refresh_token);
  sessionStorage.setItem(STORE.deadline, String(Date.now() + lifetime - margin));
  scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  const deadline = Number(sessionStorage.getItem(STORE.deadline) || 0);
  if (!sessionStorage.getItem(STORE.refresh)) return;
  state.refreshTimer = setTimeout(() => ensureFresh().catch(report), Math.max(0, deadline - Date.now()));
}

async function refreshTokens() {
  const refreshToken = sessionStorage.getItem(STORE.refresh);
  if (!refreshToken) throw new ApiError(401, "Your session has ended: please log in again.");
  const response = await fetch("/v1/auth/refresh", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: refreshToken }),
  });
  if (!response.ok) {
    if (response.status === 401) {
      signOut();
      throw new ApiError(401, "Your session has ended: please log in again.");
    }
    throw new ApiError(response.status, describe(response.status, await response.json().catch(() => null)));
  }
  storeTokens(await response.json());
}

// One refresh at a time: a second one with the same refresh token would look like theft.
function ensureFresh({ force = false } = {}) {
  if (!sessionStorage.getItem(STORE.refresh)) return Promise.resolve();
  const deadline = Number(sessionStorage.getItem(STORE.deadline) || 0);
  if (!force && Date.now() < deadline) return Promise.resolve();
  if (!state.refreshing) {
    state.refreshing = refreshTokens().finally(() => {
      state.refreshing = null;
    });
  }
  return state.refreshing;
}

async function send(method, path, { json, form, body } = {}) {
  const headers = {};
  const token = sessionStorage.getItem(STORE.access);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  return fetch(path, { method, headers, body });
}

// A request to the API; signed in, with a fresh token, retried once after a refresh on 401.
async function request(method, path, options = {}) {
  const signedIn = Boolean(sessionStorage.getItem(STORE.access));
  if (signedIn) await ensureFresh();
  let response = await send(method, path, options);
  if (response.status === 401 && signedIn) {
    await ensureFresh({ force: true });
    response = await send(method, path, options);
    if (response.status === 401) {
      signOut();
      throw new ApiError(401, "Your session has ended: please log in again.");
    }
  }
  return response;
}

async function api(method, path, options) {
  const response = await request(method, path, options);
  const isJson = (response.headers.get("content-type") || "").includes("application/json");
  const data = isJson ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, describe(response.status, data));
  return data;
}

// ---- Feedback ----

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function report(error) {
  say(error instanceof ApiError ? error.message : `Could not reach the server: ${error.message}`, true);
}

// Runs a user action, reporting its failure instead of leaving it in the console.
function action(handler) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    try {
      await handler(event);
    } catch (error) {
      report(error);
    }
  };
}

// ---- Rendering: Markdown, snippets, times ----

const MARKDOWN_TAGS = [
  "a", "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
  "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
];
const MARKDOWN_ATTRIBUTES = ["href", "title", "start", "align"];

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function setUpMarkdown() {
  // HTML written in a message is shown as the text it is, as chat pages do; images become
  // links, so that no message makes the page fetch anything.
  marked.use({
    gfm: true,
    breaks: true,
    renderer: {
      html({ text }) {
        return escapeHtml(text);
      },
      image({ href, text }) {
        const label = escapeHtml(text || href || "image");
        return /^https?:/i.test(href || "") ? `<a href="${escapeHtml(href)}">${label}</a>` : label;
      },
    },
  });
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
}

function renderMarkdown(container, text) {
  const fragment = DOMPurify.sanitize(marked.parse(text), {
    ALLOWED_TAGS: MARKDOWN_TAGS,
    ALLOWED_ATTR: MARKDOWN_ATTRIBUTES,
    ADD_ATTR: ["target", "rel"],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
    RETURN_DOM_FRAGMENT: true,
  });
  container.replaceChildren(fragment);
  for (const block of container.querySelectorAll("pre")) {
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "quiet copy";
    copy.textContent = "Copy";
    copy.setAttribute("aria-label", "Copy code");
    copy.addEventListener("click", action(() => copyCode(block, copy)));
    block.prepend(copy);
  }
}

async function copyCode(block, button) {
  const code = block.querySelector("code") || block;
  // Only pages served over https (or from localhost) may write to the clipboard.
  if (!navigator.clipboard) {
    getSelection().selectAllChildren(code);
    say("The code is selected: press Ctrl+C to copy it.");
    return;
  }
  await navigator.clipboard.writeText(code.textContent);
  button.textContent = "Copied";
  setTimeout(() => {
    button.textContent = "Copy";
  }, 1500);
}

// A search snippet is HTML from the API: escaped text with <mark>; only <mark> may stay.
function snippet(html) {
  return DOMPurify.sanitize(html, { ALLOWED_TAGS: ["mark"], ALLOWED_ATTR: [], RETURN_DOM_FRAGMENT: true });
}

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function timeElement(element, iso) {
  const when = new Date(iso);
  element.dateTime = iso;
  element.textContent = TIME_FORMAT.format(when);
  element.title = when.toISOString();
}

// ---- Signing in and out ----

function showSignedIn(username) {
  $("whoami").textContent = username;
  $("session").hidden = false;
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("menu").hidden = false;
}

function signOut() {
  clearTimeout(state.refreshTimer);
  for (const key of Object.values(STORE)) sessionStorage.removeItem(key);
  Object.assign(state, { chatId: null, chat: null, view: null, search: null, loadedChats: 0 });
  state.knownChats.clear();
  $("session").hidden = true;
  $("menu").hidden = true;
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  closeChat();
  $("chats").replaceChildren();
  $("results").replaceChildren();
  $("search-results").hidden = true;
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
  storeTokens(await api("POST", "/v1/auth/token", { form: new FormData(form) }));
  form.reset();
  await start();
}

// Ends the session on the server, then here; here even when the server cannot be reached.
async function logOut() {
  try {
    if (sessionStorage.getItem(STORE.access)) await api("POST", "/v1/auth/logout");
  } finally {
    signOut();
    history.replaceState(null, "", location.pathname);
    say("Logged out.");
  }
}

async function start() {
  const user = await api("GET", "/v1/auth/me");
  showSignedIn(user.username);
  say("");
  await listChats();
  await route();
}

// ---- The chat list ----

function setMenu(open) {
  $("signed-in").classList.toggle("show-list", open);
  $("menu").setAttribute("aria-expanded", String(open));
}

function chatItem(chat) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = `#/chats/${chat.id}`;
  link.dataset.chatId = String(chat.id);
  link.textContent = chat.title;
  if (chat.pinned) {
    const pin = document.createElement("span");
    pin.className = "badge";
    pin.textContent = "pinned";
    link.append(" ", pin);
  }
  if (chat.id === state.chatId) link.setAttribute("aria-current", "page");
  // The open chat's own link changes no address: on a phone it still has to show the chat.
  link.addEventListener("click", () => {
    if (link.getAttribute("href") === location.hash) setMenu(false);
  });
  item.append(link);
  return item;
}

async function listChats(more = false) {
  const skip = more ? state.loadedChats : 0;
  const query = `skip=${skip}&limit=${CHAT_PAGE}${state.archivedView ? "&archived=true" : ""}`;
  const chats = await api("GET", `/v1/chats/?${query}`);
  for (const chat of chats) state.knownChats.set(chat.id, chat);
  // archived=true lists every chat; the archived view keeps only the archived ones.
  const shown = state.archivedView ? chats.filter((chat) => chat.archived) : chats;
  const items = shown.map(chatItem);
  if (more) $("chats").append(...items);
  else $("chats").replaceChildren(...items);
  state.loadedChats = skip + chats.length;
  $("more-chats").hidden = chats.length < CHAT_PAGE;
  $("no-chats").hidden = $("chats").children.length > 0;
}

async function showArchived(archived) {
  state.archivedView = archived;
  $("show-active").setAttribute("aria-pressed", String(!archived));
  $("show-archived").setAttribute("aria-pressed", String(archived));
  await listChats();
}

function markCurrent() {
  for (const link of $("chats").querySelectorAll("a")) {
    if (link.dataset.chatId === String(state.chatId)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// The chat's fields without its messages: from the list, else from pages of the list,
// else (a user with very many chats) from the whole chat.
async function chatFields(chatId) {
  if (state.knownChats.has(chatId)) return state.knownChats.get(chatId);
  for (let page = 0; page < CHAT_LOOKUP_PAGES; page += 1) {
    const chats = await api("GET", `/v1/chats/?skip=${page * CHAT_PAGE}&limit=${CHAT_PAGE}&archived=true`);
    for (const chat of chats) state.knownChats.set(chat.id, chat);
    if (state.knownChats.has(chatId)) return state.knownChats.get(chatId);
    if (chats.length < CHAT_PAGE) break;
  }
  const { messages, ...chat } = await api("GET", `/v1/chats/${chatId}`);
  state.knownChats.set(chatId, chat);
  return chat;
}

// ---- Addresses: #/chats/42 and #/chats/42/messages/7 ----

function chatAddress(chatId, messageId) {
  return messageId ? `#/chats/${chatId}/messages/${messageId}` : `#/chats/${chatId}`;
}

async function route() {
  if (!sessionStorage.getItem(STORE.access)) return;
  const match = location.hash.match(/^#\/chats\/(\d+)(?:\/messages\/(\d+))?$/);
  if (!match) {
    closeChat();
    return;
  }
  await openChat(Number(match[1]), match[2] ? Number(match[2]) : null);
}

// ---- One chat ----

function closeChat() {
  state.chatId = null;
  state.chat = null;
  state.view = null;
  $("chat").hidden = true;
  $("no-chat").hidden = false;
  $("messages").replaceChildren();
  setMenu(true);
  markCurrent();
}

function showRename(open) {
  $("rename-form").hidden = !open;
  $("rename-chat").setAttribute("aria-expanded", String(open));
  if (open) {
    $("rename-form").elements.title.value = state.chat.title;
    $("rename-form").elements.title.focus();
  }
}

function showChatFields(chat) {
  state.chat = chat;
  $("chat-title").textContent = chat.title;
  $("pin-chat").textContent = chat.pinned ? "Unpin" : "Pin";
  $("pin-chat").setAttribute("aria-pressed", String(chat.pinned));
  $("archive-chat").textContent = chat.archived ? "Unarchive" : "Archive";
  $("archive-chat").setAttribute("aria-pressed", String(chat.archived));
  document.title = `${chat.title} · Chat History`;
}

async function openChat(chatId, messageId = null) {
  let chat;
  try {
    chat = await chatFields(chatId);
  } catch (error) {
    if (error.status === 404) {
      closeChat();
      say("That chat does not exist, or is not yours.", true);
      return;
    }
    throw error;
  }
  state.chatId = chatId;
  showChatFields(chat);
  resetDelete();
  showRename(false);
  $("chat").hidden = false;
  $("no-chat").hidden = true;
  setMenu(false);
  markCurrent();
  say("");
  if (messageId) await showAround(messageId);
  else await showPath();
}

function messageElement(message) {
  const item = $("message-template").content.firstElementChild.cloneNode(true);
  item.classList.add(message.role);
  item.id = `message-${message.id}`;
  item.dataset.id = String(message.id);
  item.querySelector(".role").textContent = message.role;
  const model = item.querySelector(".model");
  model.textContent = message.model || "";
  model.hidden = !message.model;
  timeElement(item.querySelector("time"), message.created_at);
  renderMarkdown(item.querySelector(".content"), message.content);
  item.querySelector(".edit").addEventListener("click", () => startEdit(item, message));
  item.querySelector(".delete").addEventListener("click", action(() => deleteMessage(item, message)));
  item.querySelector(".regenerate").addEventListener("click", () => startEdit(item, message, { asNewAnswer: true }));
  showBranches(item, message);
  return item;
}

function showPage(messages, { prepend = false, replace = false } = {}) {
  const scroller = $("scroller");
  const items = messages.map(messageElement);
  if (replace) {
    $("messages").replaceChildren(...items);
  } else if (prepend) {
    const before = scroller.scrollHeight;
    $("messages").prepend(...items);
    scroller.scrollTop += scroller.scrollHeight - before;
  } else {
    $("messages").append(...items);
  }
  $("no-messages").hidden = $("messages").children.length > 0;
}

function scrollToEnd() {
  $("scroller").scrollTop = $("scroller").scrollHeight;
}

// The shown path by pages, oldest first within each: the page that ends at the leaf first,
// older ones as the reader scrolls up. `through` is the message a search opened the chat at:
// the path through it, which need not be the one the chat shows.
function newView(page, { through = null, hasNewer = false } = {}) {
  return {
    firstId: page.first_id,
    lastId: page.last_id,
    hasOlder: page.has_more,
    hasNewer,
    through,
    older: null,
    newer: null,
  };
}

function pathQuery(query) {
  return `/v1/chats/${state.chatId}/path?limit=${MESSAGE_PAGE}&${query}`;
}

async function showPath() {
  const chatId = state.chatId;
  const page = await api("GET", `/v1/chats/${chatId}/path?limit=${MESSAGE_PAGE}`);
  if (chatId !== state.chatId) return;
  state.view = newView(page);
  showPage(page.data, { replace: true });
  scrollToEnd();
  await fillScroller();
}

// Opened at a message (from search): the path through it, the page after it and the page
// that ends at it, which is the page before the first one after it.
async function showAround(messageId) {
  const chatId = state.chatId;
  const newer = await api("GET", pathQuery(`message_id=${messageId}&after=${messageId}`));
  if (chatId !== state.chatId) return;
  const ending = newer.data.length ? `before=${newer.first_id}` : `message_id=${messageId}`;
  const older = await api("GET", pathQuery(ending));
  if (chatId !== state.chatId) return;
  state.view = newView(older, { through: messageId, hasNewer: newer.has_more });
  if (newer.data.length) state.view.lastId = newer.last_id;
  showPage(older.data.concat(newer.data), { replace: true });
  focusMessage(messageId);
}

function focusMessage(messageId) {
  const item = $(`message-${messageId}`);
  if (!item) return;
  item.classList.add("found");
  item.tabIndex = -1;
  item.scrollIntoView({ block: "center" });
  item.focus({ preventScroll: true });
}

// One page at a time each way ("older" or "newer"): a second call while one is loading
// waits for that one.
function loadMore(way) {
  const view = state.view;
  const older = way === "older";
  if (!view || !(older ? view.hasOlder : view.hasNewer)) return Promise.resolve();
  view[way] ||= (older ? readOlder : readNewer)(view).finally(() => {
    view[way] = null;
    $(way).hidden = true;
  });
  return view[way];
}

async function readOlder(view) {
  $("older").hidden = false;
  const page = await api("GET", pathQuery(`before=${view.firstId}`));
  if (view !== state.view) return;
  view.hasOlder = page.has_more;
  if (page.data.length) view.firstId = page.first_id;
  showPage(page.data, { prepend: true });
}

async function readNewer(view) {
  $("newer").hidden = false;
  const through = view.through ? `message_id=${view.through}&` : "";
  const page = await api("GET", pathQuery(`${through}after=${view.lastId}`));
  if (view !== state.view) return;
  view.hasNewer = page.has_more;
  if (page.data.length) view.lastId = page.last_id;
  showPage(page.data);
}

// Short pages leave nothing to scroll: read older ones until there is, or there are none.
async function fillScroller() {
  const scroller = $("scroller");
  const view = state.view;
  while (view === state.view && view.hasOlder && scroller.scrollHeight <= scroller.clientHeight) {
    await loadMore("older");
  }
}

function onScroll() {
  const scroller = $("scroller");
  if (scroller.scrollTop < SCROLL_MARGIN) loadMore("older").catch(report);
  if (scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < SCROLL_MARGIN) loadMore("newer").catch(report);
}

// ---- Branches: a conversation is a tree, and the page shows one path of it ----

function showBranches(item, message) {
  const siblings = message.sibling_ids;
  if (message.role === "assistant") item.querySelector(".regenerate").hidden = false;
  if (siblings.length < 2) return;
  const index = siblings.indexOf(message.id);
  const box = item.querySelector(".branches");
  box.hidden = false;
  box.querySelector(".position").textContent = `${index + 1}/${siblings.length}`;
  box.setAttribute("aria-label", `Version ${index + 1} of ${siblings.length}`);
  const prev = box.querySelector(".prev");
  const next = box.querySelector(".next");
  prev.disabled = index <= 0;
  next.disabled = index >= siblings.length - 1;
  prev.addEventListener("click", action(() => switchBranch(siblings[index - 1])));
  next.addEventListener("click", action(() => switchBranch(siblings[index + 1])));
}

async function switchBranch(messageId) {
  const chat = await api("PATCH", `/v1/chats/${state.chatId}`, { json: { current_message_id: messageId } });
  state.knownChats.set(chat.id, chat);
  showChatFields(chat);
  history.replaceState(null, "", chatAddress(state.chatId));
  await showPath();
}

// A new version of a message: a sibling with the same parent, which becomes the current leaf.
async function postSibling(message, role, content) {
  const posted = await api("POST", `/v1/chats/${state.chatId}/message`, {
    json: { role, content, parent_id: message.parent_id },
  });
  becameLeaf(posted);
  history.replaceState(null, "", chatAddress(state.chatId));
  await showPath();
}

// A new message is the chat's current leaf: the chat's fields need not be read again.
function becameLeaf(message) {
  const chat = { ...state.chat, current_message_id: message.id };
  state.knownChats.set(chat.id, chat);
  state.chat = chat;
}

async function refreshChat() {
  state.knownChats.delete(state.chatId);
  showChatFields(await chatFields(state.chatId));
}

// ---- Editing and deleting messages ----

function startEdit(item, message, { asNewAnswer = false } = {}) {
  if (item.querySelector(".edit-form")) return;
  const form = document.createElement("form");
  form.className = "edit-form";
  const label = document.createElement("label");
  label.className = "visually-hidden";
  label.textContent = asNewAnswer ? "New answer" : "Edit message";
  const text = document.createElement("textarea");
  text.id = `edit-${message.id}`;
  label.htmlFor = text.id;
  text.value = asNewAnswer ? "" : message.content;
  text.rows = Math.min(12, Math.max(3, message.content.split("\n").length + 1));
  const buttons = document.createElement("div");
  buttons.className = "row";
  const addButton = (textContent, handler, kind = "quiet") => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = kind;
    button.textContent = textContent;
    button.addEventListener("click", action(handler));
    buttons.append(button);
  };
  if (asNewAnswer) {
    addButton("Save as new answer", () => postSibling(message, "assistant", text.value), "");
  } else {
    addButton("Save as new version", () => postSibling(message, message.role, text.value), "");
    addButton("Correct in place", () => saveEdit(item, message, text.value));
  }
  addButton("Cancel", () => form.remove());
  form.append(label, text, buttons);
  item.append(form);
  text.focus();
}

async function saveEdit(item, message, content) {
  const updated = await api("PATCH", `/v1/chats/${state.chatId}/messages/${message.id}`, { json: { content } });
  item.replaceWith(messageElement(updated));
  say("Message saved.");
}

async function deleteMessage(item, message) {
  const button = item.querySelector(".delete");
  if (!button.classList.contains("confirm")) {
    button.textContent = "Click again to delete";
    button.classList.add("confirm", "danger");
    return;
  }
  await api("DELETE", `/v1/chats/${state.chatId}/messages/${message.id}`);
  // Its children now hang from its parent, and the chat may show another leaf: read the path again.
  await refreshChat();
  history.replaceState(null, "", chatAddress(state.chatId));
  await showPath();
  say("Message deleted.");
}

// ---- Chat actions ----

function resetDelete() {
  $("delete-chat").textContent = "Delete chat";
  $("delete-chat").classList.remove("confirm");
}

async function createChat(event) {
  const form = event.target;
  const chat = await api("POST", "/v1/chats/", { json: { title: form.elements.title.value } });
  form.reset();
  state.knownChats.set(chat.id, chat);
  if (state.archivedView) await showArchived(false);
  else await listChats();
  location.hash = chatAddress(chat.id);
}

// A new message follows the last one shown. When the path is not read to its leaf (a chat
// opened at a message), the chat is first switched to that path, whose leaf it then follows.
async function addMessage() {
  const form = $("message-form");
  const fields = { role: form.elements.role.value, content: form.elements.content.value };
  const view = state.view;
  if (!fields.content.trim() || !view) return;
  if (view.hasNewer) {
    await api("PATCH", `/v1/chats/${state.chatId}`, { json: { current_message_id: view.through } });
  } else {
    fields.parent_id = view.lastId;
  }
  const message = await api("POST", `/v1/chats/${state.chatId}/message`, { json: fields });
  form.elements.content.value = "";
  becameLeaf(message);
  history.replaceState(null, "", chatAddress(state.chatId));
  if (view === state.view && !view.hasNewer) {
    showPage([message]);
    Object.assign(view, { lastId: message.id, firstId: view.firstId ?? message.id, through: null });
    scrollToEnd();
  } else {
    await showPath();
  }
  await listChats();
}

async function updateChat(changes, message) {
  const chat = await api("PATCH", `/v1/chats/${state.chatId}`, { json: changes });
  state.knownChats.set(chat.id, chat);
  showChatFields(chat);
  await listChats();
  say(message(chat));
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
  state.knownChats.delete(state.chatId);
  resetDelete();
  history.pushState(null, "", location.pathname);
  closeChat();
  await listChats();
  say(`Deleted “${title}”.`);
}

// ---- Search ----

async function search(more = false) {
  const q = more ? state.search.q : $("search-q").value.trim();
  if (!q) return;
  const after = more ? `&after=${encodeURIComponent(state.search.after)}` : "";
  const page = await api("GET", `/v1/chats/search?q=${encodeURIComponent(q)}&limit=${SEARCH_PAGE}${after}`);
  state.search = { q, after: page.last_id };
  const items = page.data.map(resultItem);
  if (more) $("results").append(...items);
  else $("results").replaceChildren(...items);
  $("search-results").hidden = false;
  $("no-results").hidden = $("results").children.length > 0;
  $("more-results").hidden = !page.has_more;
}

function resultItem(hit) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = chatAddress(hit.chat_id, hit.message_id);
  const title = document.createElement("span");
  title.className = "result-title";
  title.textContent = hit.chat_title;
  const meta = document.createElement("span");
  meta.className = "result-meta";
  meta.textContent = hit.role || "title";
  const when = document.createElement("time");
  timeElement(when, hit.created_at);
  meta.append(" · ", when);
  const text = document.createElement("span");
  text.className = "snippet";
  text.append(snippet(hit.snippet));
  link.append(title, meta, text);
  item.append(link);
  return item;
}

function closeSearch() {
  state.search = null;
  $("search-results").hidden = true;
  $("results").replaceChildren();
  $("search-q").value = "";
}

// ---- Import and export ----

function counted(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

// XMLHttpRequest, not fetch: only it reports the upload's progress.
function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/chats/import");
    xhr.setRequestHeader("Authorization", `Bearer ${sessionStorage.getItem(STORE.access)}`);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 201) resolve(xhr.response);
      else reject(new ApiError(xhr.status, describe(xhr.status, xhr.response)));
    });
    xhr.addEventListener("error", () => reject(new Error("the upload failed")));
    const body = new FormData();
    body.append("file", file);
    xhr.send(body);
  });
}

async function importChats(event) {
  const form = event.target;
  const file = form.elements.file.files[0];
  if (!file) return;
  const progress = $("import-progress");
  progress.hidden = false;
  progress.value = 0;
  $("import-summary").textContent = `Uploading ${file.name}…`;
  await ensureFresh();
  try {
    const result = await upload(file, (fraction) => {
      progress.value = Math.round(fraction * 100);
      if (fraction >= 1) $("import-summary").textContent = "Reading the export…";
    });
    $("import-summary").textContent =
      `Imported ${counted(result.chats.length, "chat")} with ${counted(result.messages, "message")}; skipped ` +
      `${counted(result.skipped_messages, "message")} and ${counted(result.skipped_conversations, "conversation")}.`;
    form.reset();
    await listChats();
  } catch (error) {
    $("import-summary").textContent = `Import failed: ${error.message}`;
    throw error;
  }
}

function fileName(response, fallback) {
  const match = (response.headers.get("content-disposition") || "").match(/filename="([^"]+)"/);
  return match ? match[1] : fallback;
}

// Downloads need the token, so they are fetched, then saved from a blob: URL.
async function download(path, fallback) {
  const response = await request("GET", path);
  if (!response.ok) {
    throw new ApiError(response.status, describe(response.status, await response.json().catch(() => null)));
  }
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName(response, fallback);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ---- Wiring ----

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    action(addMessage)();
  }
}

function wire() {
  $("register-form").addEventListener("submit", action(register));
  $("login-form").addEventListener("submit", action(logIn));
  $("logout").addEventListener("click", action(logOut));
  $("menu").addEventListener("click", () => setMenu(!$("signed-in").classList.contains("show-list")));
  $("new-chat-form").addEventListener("submit", action(createChat));
  $("message-form").addEventListener("submit", action(addMessage));
  $("message-content").addEventListener("keydown", onComposerKey);
  $("rename-chat").addEventListener("click", () => showRename($("rename-form").hidden));
  $("rename-form").addEventListener("submit", action(async (event) => {
    const title = event.target.elements.title.value;
    await updateChat({ title }, (chat) => `Renamed to “${chat.title}”.`);
    showRename(false);
  }));
  $("pin-chat").addEventListener("click", action(() =>
    updateChat({ pinned: !state.chat.pinned }, (chat) => (chat.pinned ? "Pinned." : "Unpinned."))));
  $("archive-chat").addEventListener("click", action(() =>
    updateChat({ archived: !state.chat.archived }, (chat) => (chat.archived ? "Archived." : "Back from the archive."))));
  $("delete-chat").addEventListener("click", action(deleteChat));
  $("export-json").addEventListener("click", action(() =>
    download(`/v1/chats/${state.chatId}/export?format=json`, `chat-${state.chatId}.json`)));
  $("export-markdown").addEventListener("click", action(() =>
    download(`/v1/chats/${state.chatId}/export?format=markdown`, `chat-${state.chatId}.md`)));
  $("export-all").addEventListener("click", action(() => download("/v1/chats/export", "chats.json")));
  $("import-form").addEventListener("submit", action(importChats));
  $("more-chats").addEventListener("click", action(() => listChats(true)));
  $("show-active").addEventListener("click", action(() => showArchived(false)));
  $("show-archived").addEventListener("click", action(() => showArchived(true)));
  $("search-form").addEventListener("submit", action(() => search()));
  $("more-results").addEventListener("click", action(() => search(true)));
  $("close-search").addEventListener("click", closeSearch);
  $("scroller").addEventListener("scroll", onScroll, { passive: true });
  window.addEventListener("hashchange", action(route));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") ensureFresh().catch(report);
  });
}

setUpMarkdown();
wire();
if (sessionStorage.getItem(STORE.refresh)) {
  scheduleRefresh();
  action(start)();
}
