// The client's side of the chat: registration, rooms and direct messages, the
// backlog and /history paging, catching up after a reconnect. It reads server
// lines and tells the page (the `ui` object app.js passes in) what changed.

import { submit } from "./composer.js";
import { Connection } from "./connection.js";
import { Conversation } from "./conversation.js";
import { keyOf, mentions, parseLine } from "./protocol.js";
import { local as store } from "./storage.js";

const HISTORY_PAGE = 100;
const GHOST_RETRIES = 4; // nick_taken on an automatic try: our own previous connection may linger
const GHOST_DELAY_MS = 1500;

export class Chat {
  /** @param {object} ui the page: see app.js for the methods it provides */
  constructor(ui) {
    this.ui = ui;
    this.nick = store.get("nick", "");
    this.registered = false;
    this.everRegistered = false;
    this.pendingNick = null; // what to answer the next NICK with
    this.automatic = false; // the nickname try was not typed just now (reload, reconnect)
    this.ghostTries = 0;
    this.conversations = new Map();
    this.current = null;
    this.serverCurrent = null;
    this.pendingSwitch = null; // a room key the page moves to when the server says CURRENT
    this.pendingDm = null; // a nickname key the page moves to when our DM echo comes
    this.restoreKey = store.get("current", null);
    this.wantedRooms = store.get("rooms", []);
    this.noHistory = false;
    this.hiddenUnread = 0;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.conn = new Connection(`${scheme}//${location.host}/ws`, {
      onOpen: () => this.ui.status("Connected; signing in…", "busy"),
      onLine: (line) => this.handle(line),
      onRetry: (info) => this._lost(info),
      onStopped: () => {},
    });
  }

  get rememberedNick() {
    return this.nick;
  }

  /** Sign in as `nick` (typed by the user, or remembered when `automatic`). */
  login(nick, automatic = false) {
    this.pendingNick = nick;
    this.automatic = automatic;
    this.ghostTries = 0;
    if (this.conn.open && !this.registered && this.awaitingNick) {
      this._sendNick();
    } else if (!this.conn.open) {
      this.conn.stop();
      this.conn.start();
    }
  }

  /** Leave the server (the user chose to, or wants another nickname). */
  quit(text = "") {
    if (this.conn.open && this.registered) this.conn.send(text ? `/quit ${text}` : "/quit");
    this.conn.stop();
    this.registered = false;
  }

  // ---- lines from the server -------------------------------------------------

  handle(raw) {
    const line = parseLine(raw);
    const handler = this[`on${line.verb}`];
    if (typeof handler === "function") handler.call(this, line);
    // Unknown verbs are ignored: later protocol versions add some (docs/protocol.md).
  }

  onHELLO() {
    this.awaitingNick = false;
  }

  onNICK() {
    this.awaitingNick = true;
    if (this.pendingNick) this._sendNick();
  }

  _sendNick() {
    this.awaitingNick = false;
    this.conn.send(this.pendingNick);
  }

  onWELCOME(line) {
    const [nick] = line.args;
    this.registered = true;
    this.awaitingNick = false;
    this.lostWhy = null;
    this.nick = nick;
    this.pendingNick = null;
    store.set("nick", nick);
    this.conn.registered();
    const again = this.everRegistered;
    this.everRegistered = true;
    this.ui.registered(nick, again);
    // Back into the rooms we were in (autojoin rooms come first, by themselves);
    // joining a room we are already in is only a switch.
    for (const name of this.wantedRooms) this.conn.send(`/join ${name}`);
    // The server's current room (where /me and /topic go) follows the page's.
    if (this.current && this.current.kind === "room") this.conn.send(`/join ${this.current.name}`);
  }

  onERR(line) {
    const [code, text] = line.args;
    if (!this.registered && (code === "nick_taken" || code === "nick_invalid")) {
      if (code === "nick_taken" && this.automatic && this.ghostTries < GHOST_RETRIES) {
        // After a reload or a lost connection the server may not have seen the
        // old connection go yet: the nickname is ours, try again shortly.
        this.ghostTries += 1;
        this.ui.status(`${this.pendingNick} is still in use (your previous connection?); trying again…`, "busy");
        setTimeout(() => {
          if (this.awaitingNick && this.pendingNick) this._sendNick();
        }, GHOST_DELAY_MS);
        return;
      }
      this.pendingNick = null;
      this.ui.nickError(code, text);
      return;
    }
    if (code === "no_history") {
      this.noHistory = true;
      for (const conv of this.conversations.values()) {
        conv.historyQueue = [];
        conv.loadingBefore = false;
        conv.hasMoreBefore = false;
        conv.resumeFrom = null;
        conv.showOlderState();
      }
    }
    if (code === "no_such_nick" && this.pendingDm) this.pendingDm = null;
    if (code === "no_such_room" || code === "room_invalid" || code === "too_many_rooms") {
      if (this.pendingSwitch) this.ui.joinError(text);
      this.pendingSwitch = null;
    }
    this._notice("error", text || code);
  }

  onJOIN(line) {
    const [room, nick] = line.args;
    if (this._isMe(nick)) {
      const conv = this.conversationFor(room, "room");
      conv.name = room; // the server's spelling
      conv.joined = true;
      conv.setMembers([nick]);
      conv.joining = true; // its TOPIC and USERS follow
      // Catch up from the greatest id seen before this connection, if any
      // (docs/protocol.md, "Catching up after a reconnect").
      conv.resumeFrom = conv.maxId > 0 ? conv.maxId : null;
      conv.historyQueue = this.noHistory ? [] : ["backlog"];
      conv.replyMaxId = 0;
      conv.loadingBefore = false;
      this._rememberRoom(room, true);
      if (this.restoreKey === conv.key || this.pendingSwitch === conv.key) {
        this.restoreKey = null;
        this.select(conv);
      }
      this.ui.changed(conv);
      return;
    }
    const conv = this.find(room);
    if (!conv) return;
    conv.addMember(nick);
    this._add(conv, { kind: "join", nick, text: `joined ${conv.name}`, live: true });
    this.ui.changed(conv);
  }

  onPART(line) {
    const [room, nick, text] = line.args;
    const conv = this.find(room);
    if (!conv) return;
    if (this._isMe(nick)) {
      conv.joined = false;
      this._rememberRoom(room, false);
      this.remove(conv);
      return;
    }
    conv.removeMember(nick);
    this._add(conv, { kind: "part", nick, text: text ? `left: ${text}` : "left", live: true });
    this.ui.changed(conv);
  }

  onLEAVE(line) {
    const [nick, reason] = line.args;
    const [code, ...rest] = reason.split(" ");
    const words = { quit: "quit", shutdown: "disconnected (server stopping)", kicked: "was removed",
      connection_lost: "lost the connection" }[code] ?? `disconnected (${code.replaceAll("_", " ")})`;
    const text = rest.length ? `${words}: ${rest.join(" ")}` : words;
    for (const conv of this.conversations.values()) {
      if (conv.kind === "room" ? conv.removeMember(nick) : conv.key === keyOf(nick)) {
        this._add(conv, { kind: "leave", nick, text, live: true });
        this.ui.changed(conv);
      }
    }
  }

  onRENAME(line) {
    const [oldNick, newNick] = line.args;
    if (this._isMe(oldNick)) {
      this.nick = newNick;
      store.set("nick", newNick);
      this.ui.renamed(newNick);
    }
    for (const conv of [...this.conversations.values()]) {
      if (conv.kind === "room" && conv.removeMember(oldNick)) {
        conv.addMember(newNick);
        this._add(conv, { kind: "rename", nick: oldNick, text: `is now known as ${newNick}`, live: true });
        this.ui.changed(conv);
      } else if (conv.kind === "dm" && conv.key === keyOf(oldNick) && !this.conversations.has(keyOf(newNick))) {
        this.conversations.delete(conv.key);
        conv.name = newNick;
        conv.key = keyOf(newNick);
        this.conversations.set(conv.key, conv);
        this._add(conv, { kind: "rename", nick: oldNick, text: `is now known as ${newNick}`, live: true });
        this.ui.changed(conv);
      }
    }
  }

  onTOPIC(line) {
    const [room, setter, text] = line.args;
    const conv = this.find(room);
    if (!conv) {
      this._notice("info", `Topic of ${room}: ${text}`);
      return;
    }
    if (line.id !== null) {
      // A change (an event, also in history): the newest one is the topic.
      if (line.id >= conv.maxId) {
        conv.topic = text;
        conv.topicSetter = setter;
      }
      this._add(conv, { kind: "topic", nick: setter, text, id: line.id, time: line.time, history: line.history });
    } else {
      conv.topic = text;
      conv.topicSetter = setter;
      if (this.current === conv && !conv.joining) this._notice("info", `Topic: ${text || "(none)"}`, conv, false);
    }
    this.ui.changed(conv);
  }

  onUSERS(line) {
    const [room, list] = line.args;
    const nicks = list ? list.split(" ").filter(Boolean) : [];
    const conv = this.find(room);
    if (conv && conv.joined) {
      conv.setMembers(nicks);
      if (!conv.joining) this._notice("info", `In ${room}: ${nicks.join(", ")}`, conv);
      conv.joining = false;
      this.ui.changed(conv);
    } else {
      this._notice("info", `In ${room}: ${nicks.join(", ") || "nobody"}`);
    }
  }

  onCURRENT(line) {
    const [room] = line.args;
    this.serverCurrent = room === "*" ? null : keyOf(room);
    const conv = room === "*" ? null : this.find(room);
    if (conv && (this.pendingSwitch === conv.key || !this.current)) {
      this.pendingSwitch = null;
      this.select(conv);
    }
  }

  onMSG(line) {
    const [room, nick, text] = line.args;
    const conv = this.find(room);
    if (conv) this._event(conv, line, "msg", nick, text);
  }

  onACTION(line) {
    const [room, nick, text] = line.args;
    const conv = this.find(room);
    if (conv) this._event(conv, line, "action", nick, text);
  }

  onDM(line) {
    const [from, to, text] = line.args;
    const other = this._isMe(from) ? to : from;
    const conv = this.conversationFor(other, "dm");
    this._event(conv, line, "msg", from, text);
    if (this.pendingDm === conv.key) {
      this.pendingDm = null;
      this.select(conv);
    }
  }

  onHISTORY(line) {
    const [target, countText, more] = line.args;
    const conv = this.find(target);
    if (!conv) return;
    const count = Number(countText);
    const kind = conv.historyQueue.shift() ?? "before";
    const replyMax = conv.replyMaxId;
    conv.replyMaxId = 0;
    if (kind === "backlog") {
      conv.hasMoreBefore = more === "more";
      if (conv.resumeFrom !== null) this._historyAfter(conv, conv.resumeFrom);
      if (this.current === conv) conv.scrollToBottom();
    } else if (kind === "before") {
      conv.loadingBefore = false;
      conv.hasMoreBefore = more === "more" && count > 0;
      // A page that did not fill the view: nothing to scroll, so ask for the next now.
      if (conv.hasMoreBefore && conv.log.scrollHeight <= conv.log.clientHeight) this.loadOlder(conv);
    } else if (kind === "after") {
      if (more === "more" && count > 0 && replyMax > 0) this._historyAfter(conv, replyMax);
      else conv.resumeFrom = null; // caught up: every event since the reconnect, once
    }
    conv.showOlderState();
    this.ui.changed(conv);
  }

  onROOM(line) {
    const [room, members, topic] = line.args;
    this._notice("info", `${room} (${members} ${members === "1" ? "member" : "members"})${topic ? `: ${topic}` : ""}`);
  }

  onROOMS(line) {
    const [count] = line.args;
    this._notice("info", `${count} ${count === "1" ? "room" : "rooms"}. Join one with /join #name.`);
  }

  onPONG(line) {
    const [token] = line.args;
    if (token && token.startsWith("keepalive-")) this.conn.pong(token);
    else this._notice("info", token ? `pong ${token}` : "pong");
  }

  onINFO(line) {
    this._notice("info", line.args[0]);
  }

  onBYE(line) {
    const [reason] = line.args;
    const code = reason.split(" ")[0];
    const text = reason.slice(code.length + 1);
    this.registered = false;
    if (code === "quit") {
      this.conn.stop();
      this.ui.loggedOut("");
    } else if (code === "kicked") {
      this.conn.stop();
      this.ui.loggedOut(`An operator removed you from the chat${text ? `: ${text}` : "."}`);
    } else if (code === "nick_failed" || code === "register_timeout") {
      this.conn.stop();
      this.ui.nickError(code, code === "nick_failed" ? "Too many refused nicknames; try another." : "");
    } else {
      // shutdown, slow_consumer, flood…: the socket closes next, and we come back.
      this.byeReason = code;
    }
  }

  // ---- what the person does -------------------------------------------------

  /** Send what was typed in the composer; returns an error text, or "" when sent. */
  submit(input) {
    return submit(this, input);
  }

  /** Show a conversation (a sidebar click, /join, a notification). */
  select(conv) {
    if (!conv || !this.conversations.has(conv.key)) return;
    this.current = conv;
    conv.unread = 0;
    conv.mentioned = false;
    store.set("current", conv.key);
    if (conv.kind === "room" && conv.joined && this.registered && this.serverCurrent !== conv.key) {
      this.conn.send(`/join ${conv.name}`);
      this.serverCurrent = conv.key;
    }
    this.ui.selected(conv);
  }

  /** Leave a room (or close a direct conversation). */
  leave(conv) {
    if (conv.kind === "room" && conv.joined && this.registered) {
      this.conn.send(`/part ${conv.name}`);
    } else {
      this._rememberRoom(conv.name, false);
      this.remove(conv);
    }
  }

  /** Open the direct conversation with `nick`. */
  openDm(nick) {
    if (this._isMe(nick)) return;
    this.select(this.conversationFor(nick, "dm"));
  }

  /** Ask for the page of history before the oldest event shown. */
  loadOlder(conv) {
    if (conv.kind !== "room" || !conv.joined || !conv.hasMoreBefore || conv.loadingBefore) return;
    if (!this.registered || this.noHistory) return;
    const oldest = conv.oldestId;
    conv.loadingBefore = true;
    conv.historyQueue.push("before");
    this.conn.send(oldest === null
      ? `/history ${conv.name} ${HISTORY_PAGE}`
      : `/history ${conv.name} before ${oldest} ${HISTORY_PAGE}`);
    conv.showOlderState();
  }

  remove(conv) {
    this.conversations.delete(conv.key);
    conv.log.remove();
    this.ui.removed(conv);
    if (this.current === conv) {
      this.current = null;
      const next = [...this.conversations.values()].find((c) => c.kind === "room" && c.joined)
        ?? this.conversations.values().next().value;
      if (next) this.select(next);
      else this.ui.selected(null);
    }
  }

  /** The tab became visible again: what arrived meanwhile is no longer unread. */
  visible() {
    this.hiddenUnread = 0;
    if (this.current) {
      this.current.unread = 0;
      this.current.mentioned = false;
      this.ui.changed(this.current);
    }
    this.conn.retryNow();
  }

  totalUnread() {
    let total = this.hiddenUnread;
    for (const conv of this.conversations.values()) if (conv !== this.current) total += conv.unread;
    return total;
  }

  // ---- helpers ----------------------------------------------------------------

  _lost({ delayMs, wasOpen }) {
    const registered = this.registered;
    this.registered = false;
    this.awaitingNick = false;
    this.serverCurrent = null;
    for (const conv of this.conversations.values()) {
      if (conv.kind === "room") conv.joined = false;
      conv.historyQueue = [];
      conv.loadingBefore = false;
    }
    if (registered || this.everRegistered) {
      // Reconnecting: sign in again as the same person, automatically.
      this.pendingNick = this.nick;
      this.automatic = true;
      this.ghostTries = 0;
    }
    // Why we are away, from the first failure on: a restart stays a restart
    // while the server is down, rather than turning into "cannot reach".
    if (registered || !this.lostWhy) {
      this.lostWhy = this.byeReason === "shutdown" ? "The server is restarting."
        : wasOpen ? "Connection lost." : "Cannot reach the server.";
    }
    this.byeReason = null;
    this.ui.reconnecting(this.lostWhy, delayMs);
  }

  _isMe(nick) {
    return keyOf(nick) === keyOf(this.nick);
  }

  /** The conversation of a room or a nickname, if the page has one. */
  find(name) {
    return this.conversations.get(keyOf(name)) ?? null;
  }

  /** The conversation of a room or a nickname, made (and shown in the sidebar) if new. */
  conversationFor(name, kind) {
    let conv = this.find(name);
    if (!conv) {
      conv = new Conversation(name, kind);
      conv.onNearTop = () => this.loadOlder(conv);
      conv.showOlderState();
      this.conversations.set(conv.key, conv);
      this.ui.added(conv);
    }
    return conv;
  }

  _rememberRoom(name, present) {
    const key = keyOf(name);
    const rooms = this.wantedRooms.filter((r) => keyOf(r) !== key);
    if (present) rooms.push(name);
    this.wantedRooms = rooms;
    store.set("rooms", rooms);
  }

  _historyAfter(conv, id) {
    conv.historyQueue.push("after");
    conv.resumeFrom = id;
    this.conn.send(`/history ${conv.name} after ${id} ${HISTORY_PAGE * 5}`);
  }

  /** An event (MSG, ACTION, DM): add it once, count it, announce it, notify. */
  _event(conv, line, kind, nick, text) {
    const self = this._isMe(nick);
    const item = {
      kind, nick, text, id: line.id, time: line.time ?? new Date(), history: line.history,
      self, mention: !self && mentions(text, this.nick), // highlighted in the log
    };
    // What calls for attention (a red badge, a notification): a mention, or any DM.
    const urgent = item.mention || (!self && conv.kind === "dm");
    if (line.history && line.id !== null) conv.replyMaxId = Math.max(conv.replyMaxId, line.id);
    // New to this person: a live event, or one from the history of a gap being filled.
    const isNew = !line.history || (conv.resumeFrom !== null && line.id !== null && line.id > conv.resumeFrom);
    if (!this._add(conv, item)) return;
    if (!isNew || self) return;
    const hidden = document.hidden;
    if (conv !== this.current) {
      conv.unread += 1;
      if (urgent) conv.mentioned = true;
      this.ui.changed(conv);
    } else if (hidden) {
      this.hiddenUnread += 1;
      this.ui.changed(conv);
    }
    if (conv === this.current || urgent) {
      const where = conv === this.current ? "" : conv.kind === "dm" ? " (direct)" : ` in ${conv.name}`;
      this.ui.announce(kind === "action" ? `${nick}${where} ${text}` : `${nick}${where}: ${text}`);
    }
    if (hidden && urgent && !line.history) this.ui.notify(conv, item);
  }

  /** Add an item to a conversation's log; false if that event was there already. */
  _add(conv, item) {
    const full = { id: null, time: new Date(), ...item };
    if (full.id === null && full.history) return false;
    return conv.add(full);
  }

  /** A notice (INFO, ERR, /rooms lines) in the conversation on screen. */
  _notice(kind, text, conv = this.current, announce = true) {
    if (!conv) {
      this.ui.status(text, kind === "error" ? "error" : "info");
      return;
    }
    this._add(conv, { kind, text });
    if (announce) this.ui.announce(text);
  }
}
