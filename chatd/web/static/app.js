// The page: the nickname screen, the sidebar of conversations, the header,
// member list and composer, drawers on a phone, keyboard shortcuts, status,
// notifications. The chat itself (protocol, state) is in chat.js.

import { Chat } from "./chat.js";
import { keyOf, NICK_RE } from "./protocol.js";
import { isolated, nickSpan } from "./render.js";

const $ = (id) => document.getElementById(id);
const el = {
  login: $("login"), loginForm: $("login-form"), nickInput: $("nick-input"), nickError: $("nick-error"),
  loginStatus: $("login-status"), loginButton: $("login-button"),
  app: $("app"), sidebar: $("sidebar"), overlay: $("overlay"), me: $("me"),
  roomList: $("room-list"), dmList: $("dm-list"), dmEmpty: $("dm-empty"),
  joinForm: $("join-form"), joinInput: $("join-input"), joinError: $("join-error"),
  notifyButton: $("notify-button"), logoutButton: $("logout-button"),
  menuButton: $("menu-button"), menuBadge: $("menu-badge"), title: $("conv-title"), topic: $("topic"),
  leaveButton: $("leave-button"), membersButton: $("members-button"), memberCount: $("member-count"),
  status: $("status"), logs: $("logs"), members: $("members"), memberList: $("member-list"),
  composer: $("composer"), input: $("composer-input"), composerError: $("composer-error"),
  announcer: $("announcer"),
};

const phone = window.matchMedia("(max-width: 760px)");
const entries = new Map(); // conversation key -> its sidebar <li>
const sent = []; // lines sent from the composer, for ArrowUp
let sentIndex = 0;
let statusTimer = null;
let countdownTimer = null;

// ---- what chat.js calls -------------------------------------------------------

const ui = {
  status(text, kind = "info") {
    if (!el.app.hidden) showStatus(text, kind);
    else el.loginStatus.textContent = text;
  },

  registered(nick, again) {
    clearInterval(countdownTimer);
    el.me.textContent = "";
    el.me.append("Signed in as ", nickSpan(nick));
    el.login.hidden = true;
    el.app.hidden = false;
    el.loginStatus.textContent = "";
    el.nickError.textContent = "";
    el.loginButton.disabled = false;
    if (again) {
      showStatus("Reconnected.", "ok");
      statusTimer = setTimeout(hideStatus, 2500);
    } else {
      hideStatus();
      el.input.focus();
    }
    updateNotifyButton();
  },

  renamed(nick) {
    el.me.textContent = "";
    el.me.append("Signed in as ", nickSpan(nick));
    renderMembers();
  },

  nickError(code, text) {
    showLogin();
    const words = {
      nick_taken: "That nickname is taken. Choose another.",
      nick_invalid: "Not a valid nickname: use letters, digits, _ and -.",
      nick_failed: "Too many refused nicknames. Choose another and try again.",
      register_timeout: "That took too long. Try again.",
    }[code] ?? text;
    el.nickError.textContent = words;
    el.nickInput.setAttribute("aria-invalid", "true");
    el.nickInput.focus();
    el.nickInput.select();
  },

  joinError(text) {
    el.joinError.textContent = text;
  },

  loggedOut(message) {
    el.nickError.textContent = message;
    showLogin();
  },

  reconnecting(why, delayMs) {
    if (el.app.hidden) {
      el.loginStatus.textContent = `${why} Trying again…`;
      return;
    }
    clearTimeout(statusTimer);
    clearInterval(countdownTimer);
    const until = Date.now() + delayMs;
    const show = () => {
      const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      showStatus(`${why} Reconnecting${seconds ? ` in ${seconds} s` : ""}…`, "busy", true);
    };
    show();
    countdownTimer = setInterval(() => {
      if (Date.now() >= until) clearInterval(countdownTimer);
      show();
    }, 1000);
    for (const conv of chat.conversations.values()) ui.changed(conv);
  },

  added(conv) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "conv";
    const name = document.createElement("span");
    name.className = "conv-name";
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.hidden = true;
    button.append(name, badge);
    button.addEventListener("click", () => {
      chat.select(conv);
      closeDrawers();
      el.input.focus();
    });
    li.append(button);
    entries.set(conv.key, li);
    (conv.kind === "room" ? el.roomList : el.dmList).append(li);
    el.logs.append(conv.log);
    conv.log.addEventListener("keydown", onLogKey);
    el.dmEmpty.hidden = el.dmList.children.length > 0;
    ui.changed(conv);
  },

  removed(conv) {
    for (const [key, li] of entries) {
      if (li.dataset.conv === conv.key || key === conv.key) {
        li.remove();
        entries.delete(key);
      }
    }
    updateChrome();
  },

  selected(conv) {
    for (const other of chat.conversations.values()) other.log.hidden = other !== conv;
    if (conv) {
      conv.shown();
      conv.showOlderState();
    }
    updateChrome();
    for (const c of chat.conversations.values()) ui.changed(c);
  },

  changed(conv) {
    let li = entries.get(conv.key);
    if (!li) {
      // Renamed: the entry is filed under the old key.
      for (const [key, item] of entries) {
        if (item.dataset.conv === conv.key) li = item;
        else continue;
        entries.delete(key);
        entries.set(conv.key, item);
      }
    }
    if (!li) return;
    li.dataset.conv = conv.key;
    const button = li.firstChild;
    const [name, badge] = button.children;
    name.textContent = conv.name;
    button.classList.toggle("unread", conv.unread > 0);
    button.classList.toggle("mentioned", conv.mentioned);
    button.classList.toggle("parted", conv.kind === "room" && !conv.joined);
    if (chat.current === conv) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
    badge.hidden = conv.unread === 0;
    badge.textContent = conv.unread > 99 ? "99+" : String(conv.unread);
    const parts = [conv.kind === "room" ? conv.name : `${conv.name}, direct messages`];
    if (conv.unread) parts.push(`${conv.unread} unread`);
    if (conv.mentioned) parts.push(conv.kind === "dm" ? "new" : "you were mentioned");
    if (conv.kind === "room" && !conv.joined) parts.push("not joined");
    button.setAttribute("aria-label", parts.join(", "));
    if (chat.current === conv) updateChrome();
    updateTitle();
  },

  announce(text) {
    // One node per line: a screen reader reads additions to the live region.
    const line = document.createElement("p");
    line.textContent = text;
    el.announcer.append(line);
    while (el.announcer.childNodes.length > 5) el.announcer.firstChild.remove();
  },

  notify(conv, item) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const title = conv.kind === "dm" ? `${item.nick} (direct message)` : `${item.nick} in ${conv.name}`;
    const body = item.kind === "action" ? `* ${item.nick} ${item.text}` : item.text;
    try {
      const note = new Notification(title, { body, tag: `chatd-${conv.key}` });
      note.addEventListener("click", () => {
        window.focus();
        chat.select(conv);
        note.close();
      });
    } catch {
      // Some mobile browsers only allow notifications from a service worker.
    }
  },
};

const chat = new Chat(ui);

// ---- the page's own parts -----------------------------------------------------

function showLogin() {
  clearInterval(countdownTimer);
  el.app.hidden = true;
  el.login.hidden = false;
  el.loginButton.disabled = false;
  el.loginStatus.textContent = "";
  if (!el.nickInput.value) el.nickInput.value = chat.rememberedNick;
  el.nickInput.focus();
}

function showStatus(text, kind, withRetry = false) {
  clearTimeout(statusTimer);
  el.status.hidden = false;
  el.status.className = `status ${kind}`;
  el.status.textContent = text;
  if (withRetry) {
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "button small";
    retry.textContent = "Retry now";
    retry.addEventListener("click", () => chat.conn.retryNow());
    el.status.append(" ", retry);
  }
}

function hideStatus() {
  el.status.hidden = true;
  el.status.textContent = "";
}

function updateChrome() {
  const conv = chat.current;
  el.title.textContent = conv ? conv.name : "No conversation";
  el.topic.textContent = "";
  if (!conv) {
    el.topic.textContent = "Join a room to start: type a name under Rooms.";
  } else if (conv.kind === "dm") {
    el.topic.textContent = `Direct messages with ${conv.name}`;
  } else if (!conv.joined) {
    el.topic.textContent = chat.registered ? `You are not in ${conv.name}.` : "Not connected.";
  } else if (conv.topic) {
    el.topic.append(isolated(conv.topic));
    el.topic.title = conv.topicSetter && conv.topicSetter !== "*" ? `Set by ${conv.topicSetter}` : "";
  } else {
    el.topic.textContent = "No topic. Set one with /topic text";
  }
  el.leaveButton.hidden = !conv;
  el.leaveButton.textContent = conv && conv.kind === "dm" ? "Close" : "Leave";
  el.leaveButton.setAttribute("aria-label", conv ? `${el.leaveButton.textContent} ${conv.name}` : "Leave");
  el.input.placeholder = !conv ? "/join #room"
    : conv.kind === "dm" ? `Message ${conv.name}` : `Message ${conv.name}`;
  renderMembers();
  el.dmEmpty.hidden = el.dmList.children.length > 0;
  updateTitle();
}

function renderMembers() {
  const conv = chat.current;
  el.memberList.textContent = "";
  const room = conv && conv.kind === "room";
  el.membersButton.hidden = !room;
  el.members.classList.toggle("empty", !room);
  if (!room) {
    el.memberCount.textContent = "";
    return;
  }
  const nicks = conv.sortedMembers();
  el.memberCount.textContent = String(nicks.length);
  el.membersButton.setAttribute("aria-label", `Members (${nicks.length})`);
  for (const nick of nicks) {
    const li = document.createElement("li");
    if (keyOf(nick) === keyOf(chat.nick)) {
      li.className = "member self";
      li.append(nickSpan(nick), " (you)");
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "member";
      button.append(nickSpan(nick));
      button.setAttribute("aria-label", `${nick}: send a direct message`);
      button.title = `Direct message to ${nick}`;
      button.addEventListener("click", () => {
        chat.openDm(nick);
        closeDrawers();
        el.input.focus();
      });
      li.append(button);
    }
    el.memberList.append(li);
  }
}

function updateTitle() {
  const total = chat.totalUnread();
  const anyMention = [...chat.conversations.values()].some((c) => c.mentioned && c !== chat.current);
  document.title = total ? `(${total}) chatd` : "chatd";
  el.menuBadge.hidden = total === 0;
  el.menuBadge.classList.toggle("mentioned", anyMention);
  el.menuButton.setAttribute("aria-label", total ? `Conversations (${total} unread)` : "Conversations");
}

function updateNotifyButton() {
  el.notifyButton.hidden = !("Notification" in window) || Notification.permission !== "default";
}

// ---- drawers (phone) and the member column (desktop) ---------------------------

function openDrawer(which) {
  el.app.classList.add(`${which}-open`);
  el.overlay.hidden = false;
  const button = which === "nav" ? el.menuButton : el.membersButton;
  button.setAttribute("aria-expanded", "true");
  const panel = which === "nav" ? el.sidebar : el.members;
  panel.querySelector("button, input")?.focus();
}

function closeDrawers(returnFocus = false) {
  const was = el.app.classList.contains("nav-open") ? el.menuButton
    : el.app.classList.contains("members-open") ? el.membersButton : null;
  el.app.classList.remove("nav-open", "members-open");
  el.overlay.hidden = true;
  el.menuButton.setAttribute("aria-expanded", "false");
  if (phone.matches) el.membersButton.setAttribute("aria-expanded", "false");
  if (returnFocus && was) was.focus();
}

el.menuButton.addEventListener("click", () => {
  if (el.app.classList.contains("nav-open")) closeDrawers(true);
  else openDrawer("nav");
});

el.membersButton.addEventListener("click", () => {
  if (phone.matches) {
    if (el.app.classList.contains("members-open")) closeDrawers(true);
    else openDrawer("members");
  } else {
    const hidden = el.app.classList.toggle("members-hidden");
    el.membersButton.setAttribute("aria-expanded", String(!hidden));
  }
});

el.overlay.addEventListener("click", () => closeDrawers(true));
phone.addEventListener("change", () => {
  closeDrawers();
  el.membersButton.setAttribute("aria-expanded",
    String(!phone.matches && !el.app.classList.contains("members-hidden")));
});
el.membersButton.setAttribute("aria-expanded", String(!phone.matches));

// ---- forms -------------------------------------------------------------------

el.loginForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const nick = el.nickInput.value.trim();
  el.nickInput.removeAttribute("aria-invalid");
  if (!NICK_RE.test(nick)) {
    el.nickError.textContent = nick ? "Use letters, digits, _ and - (up to 32)." : "Type a nickname first.";
    el.nickInput.setAttribute("aria-invalid", "true");
    el.nickInput.focus();
    return;
  }
  el.nickError.textContent = "";
  el.loginStatus.textContent = "Connecting…";
  el.loginButton.disabled = true;
  if (chat.everRegistered && keyOf(nick) !== keyOf(chat.nick)) chat.nick = nick;
  chat.login(nick, false);
});

el.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.input.value;
  const error = chat.submit(text);
  el.composerError.textContent = error;
  el.input.setAttribute("aria-invalid", String(Boolean(error)));
  if (!error && text.trim()) {
    sent.push(text);
    if (sent.length > 50) sent.shift();
    sentIndex = sent.length;
    el.input.value = "";
  }
});

el.input.addEventListener("input", () => {
  if (el.composerError.textContent) {
    el.composerError.textContent = "";
    el.input.removeAttribute("aria-invalid");
  }
});

el.input.addEventListener("keydown", (event) => {
  if (event.key === "ArrowUp" && !event.altKey && sentIndex > 0 && (el.input.value === "" || el.input.value === sent[sentIndex])) {
    sentIndex -= 1;
    el.input.value = sent[sentIndex];
    event.preventDefault();
  } else if (event.key === "ArrowDown" && !event.altKey && sentIndex < sent.length && el.input.value === sent[sentIndex]) {
    sentIndex += 1;
    el.input.value = sent[sentIndex] ?? "";
    event.preventDefault();
  }
});

el.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = el.joinInput.value.trim();
  if (!room) {
    el.joinError.textContent = "Type a room name, like #lobby.";
    return;
  }
  el.joinError.textContent = "";
  const error = chat.submit(`/join ${room}`);
  if (error) {
    el.joinError.textContent = error;
    return;
  }
  el.joinInput.value = "";
  closeDrawers();
  el.input.focus();
});

el.leaveButton.addEventListener("click", () => {
  if (chat.current) chat.leave(chat.current);
  el.input.focus();
});

el.logoutButton.addEventListener("click", () => {
  chat.quit();
  ui.loggedOut("");
});

el.notifyButton.addEventListener("click", async () => {
  try {
    await Notification.requestPermission();
  } finally {
    updateNotifyButton();
  }
});

// ---- keyboard ------------------------------------------------------------------

function stepConversation(delta) {
  const order = [...el.roomList.children, ...el.dmList.children].map((li) => li.dataset.conv);
  if (!order.length) return;
  const index = chat.current ? order.indexOf(chat.current.key) : -1;
  const next = order[(index + delta + order.length) % order.length];
  chat.select(chat.conversations.get(next));
}

document.addEventListener("keydown", (event) => {
  if (el.app.hidden) return;
  if (event.key === "Escape" && (el.app.classList.contains("nav-open") || el.app.classList.contains("members-open"))) {
    closeDrawers(true);
    event.preventDefault();
  } else if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    // Alt+Up / Alt+Down: the previous or next conversation, as in other chat clients.
    stepConversation(event.key === "ArrowUp" ? -1 : 1);
    el.input.focus();
    event.preventDefault();
  }
});

function onLogKey(event) {
  // Typing while the log has focus goes to the composer.
  if (event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey) el.input.focus();
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) {
    chat.visible();
    updateTitle();
  }
});
window.addEventListener("online", () => chat.conn.retryNow());
// A status line appearing, the keyboard opening on a phone, a resized window:
// a log that showed its newest line keeps showing it.
new ResizeObserver(() => {
  if (chat.current && chat.current.stuck) chat.current.scrollToBottom();
}).observe(el.logs);
window.addEventListener("pagehide", () => chat.conn.ws?.close(1000));

// ---- start -----------------------------------------------------------------------

if (chat.rememberedNick) {
  el.app.hidden = false;
  el.me.textContent = "";
  ui.selected(null);
  showStatus(`Connecting as ${chat.rememberedNick}…`, "busy");
  chat.login(chat.rememberedNick, true);
} else {
  showLogin();
}
