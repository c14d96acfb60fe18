// The page: the sidebar of conversations, the header, member list and
// composer, keyboard shortcuts, status, notifications.
// The chat itself (protocol, state) is in chat.js; the sign-in screen in
// signin-screen.js; the member list and its menu in members.js; the room
// settings panel in room-settings.js; the drawers of a phone in drawers.js.

import { Chat } from "./chat.js";
import { drawers } from "./drawers.js";
import { Members } from "./members.js";
import { isolated, nickSpan } from "./render.js";
import { FLAG_SHORT } from "./roles.js";
import { RoomSettings } from "./room-settings.js";
import { SignInScreen } from "./signin-screen.js";

const $ = (id) => document.getElementById(id);
const el = {
  app: $("app"), sidebar: $("sidebar"), overlay: $("overlay"), me: $("me"),
  roomList: $("room-list"), dmList: $("dm-list"), dmEmpty: $("dm-empty"),
  joinForm: $("join-form"), joinInput: $("join-input"), joinError: $("join-error"),
  notifyButton: $("notify-button"), logoutButton: $("logout-button"),
  menuButton: $("menu-button"), menuBadge: $("menu-badge"), title: $("conv-title"), topic: $("topic"),
  leaveButton: $("leave-button"), settingsButton: $("settings-button"), roomFlags: $("room-flags"),
  membersButton: $("members-button"), memberCount: $("member-count"),
  status: $("status"), logs: $("logs"), members: $("members"), memberList: $("member-list"),
  composer: $("composer"), input: $("composer-input"), composerError: $("composer-error"),
  announcer: $("announcer"),
};

const entries = new Map(); // conversation key -> its sidebar <li>
const sent = []; // lines sent from the composer, for ArrowUp (never one with a password)
const SECRET_RE = /^\/(passwd|login|register|resume)\b/i;
let sentIndex = 0;
let statusTimer = null;
let countdownTimer = null;

// ---- what chat.js calls -------------------------------------------------------

const ui = {
  status(text, kind = "info") {
    if (el.app.hidden) screen.status(text);
    else if (text) showStatus(text, kind);
  },

  registered(nick, again, onAccount) {
    clearInterval(countdownTimer);
    el.me.textContent = "";
    el.me.append("Signed in as ", nickSpan(nick));
    screen.signedIn();
    el.app.hidden = false;
    el.logoutButton.textContent = onAccount ? "Sign out" : "Change nickname";
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
    members.render();
  },

  /** A sign-in refused (see signin-screen.js): the sign-in screen says why. */
  signInError(code, text) {
    screen.error(code, text);
  },

  /** What the server allows: guests, registration (signin.js's modes). */
  modes(modes) {
    screen.setModes(modes);
  },

  joinError(text) {
    el.joinError.textContent = text;
  },

  loggedOut(message) {
    screen.show(message);
  },

  /** The account signed in elsewhere (`BYE replaced`): this page waits for the person. */
  replaced(canTakeOver) {
    clearInterval(countdownTimer);
    const action = canTakeOver
      ? { label: "Use here", run: () => chat.takeOver() }
      : { label: "Sign in", run: () => screen.show() };
    showStatus(`You signed in as ${chat.nick} on another page or device, so this page is disconnected.`, "error", action);
    for (const conv of chat.conversations.values()) ui.changed(conv);
    updateChrome();
  },

  reconnecting(why, delayMs) {
    if (el.app.hidden) {
      screen.status(`${why} Trying again…`);
      return;
    }
    clearTimeout(statusTimer);
    clearInterval(countdownTimer);
    const until = Date.now() + delayMs;
    const show = () => {
      const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      showStatus(`${why} Reconnecting${seconds ? ` in ${seconds} s` : ""}…`, "busy",
        { label: "Retry now", run: () => chat.conn.retryNow() });
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
    settings.render(conv);
    updateTitle();
  },

  /** A notice above the conversation (a kick of this page), with a button (`{label, run}`) or none. */
  notice(text, action) {
    clearInterval(countdownTimer);
    const button = action && { label: action.label, run: () => {
      hideStatus();
      action.run();
    } };
    showStatus(text, "error", button);
    ui.announce(text);
  },

  /** The bans of a room, for the settings panel. */
  bans(conv, list) {
    settings.bans(conv, list);
  },

  /** A refusal (ERR, in words): the settings panel says it too, if open. */
  refused(words) {
    settings.refused(words);
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
const members = new Members(chat, {
  openDm(nick) {
    chat.openDm(nick);
    closeDrawers();
    el.input.focus();
  },
});
const settings = new RoomSettings(chat);
const drawer = drawers(el);
const closeDrawers = (returnFocus = false) => drawer.close(returnFocus);
const screen = new SignInScreen(chat, () => {
  clearInterval(countdownTimer);
  el.app.hidden = true;
});

// ---- the page's own parts -----------------------------------------------------

/** The line above the conversation; `action` ({label, run}) adds a button. */
function showStatus(text, kind, action = null) {
  clearTimeout(statusTimer);
  el.status.hidden = false;
  el.status.className = `status ${kind}`;
  el.status.textContent = text;
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button small";
    button.textContent = action.label;
    button.addEventListener("click", action.run);
    el.status.append(" ", button);
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
  const room = conv && conv.kind === "room" && conv.joined;
  el.settingsButton.hidden = !room;
  el.roomFlags.textContent = "";
  const flags = room ? Object.keys(FLAG_SHORT).filter((flag) => conv.roles.has(flag)) : [];
  for (const flag of flags) {
    const badge = document.createElement("span");
    badge.className = `flag ${flag}`;
    badge.textContent = FLAG_SHORT[flag];
    el.roomFlags.append(badge);
  }
  members.render();
  el.dmEmpty.hidden = el.dmList.children.length > 0;
  updateTitle();
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

// ---- forms -------------------------------------------------------------------

el.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.input.value;
  const error = chat.submit(text);
  el.composerError.textContent = error;
  el.input.setAttribute("aria-invalid", String(Boolean(error)));
  if (!error && text.trim() && !SECRET_RE.test(text.trim())) {
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

el.settingsButton.addEventListener("click", () => {
  if (chat.current && chat.current.kind === "room") settings.open(chat.current);
});

el.leaveButton.addEventListener("click", () => {
  if (chat.current) chat.leave(chat.current);
  el.input.focus();
});

el.logoutButton.addEventListener("click", () => {
  if (chat.onAccount) chat.signOut();
  else chat.quit();
  screen.show();
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
  if (event.key === "Escape" && drawer.isOpen()) {
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

// Signed in by itself: with the kept token, or as the remembered guest; an
// invite link, or neither, shows the sign-in screen (whose socket learns what
// the server allows while the person types).
const invite = screen.takeInvite();
const signin = chat.signin;
if (!invite && (signin.resume() || (signin.nick && !signin.isAccount))) {
  if (!signin.pending) signin.asGuest(signin.nick, true);
  el.app.hidden = false;
  el.me.textContent = "";
  ui.selected(null);
  showStatus(`Connecting as ${chat.nick}…`, "busy");
  chat.signIn();
} else {
  screen.show();
  chat.connect();
}
