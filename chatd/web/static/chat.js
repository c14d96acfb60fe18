// The client's side of the chat: registration, rooms and direct messages, the
// backlog and /history paging, catching up after a reconnect. It reads server
// lines and tells the page (the `ui` object app.js passes in) what changed.
// What answers NICK, and the sign-in token, are signin.js's; paging history is
// history.js's; room roles and moderation (KICK, ROLE, FLAG...) moderation.js's.

import { submit } from "./composer.js";
import { Connection } from "./connection.js";
import { Conversation } from "./conversation.js";
import { historyEnded, historyOff, loadOlder } from "./history.js";
import { Moderation } from "./moderation.js";
import { keyOf, mentions, parseLine } from "./protocol.js";
import { errorWords } from "./roles.js";
import { SignIn } from "./signin.js";
import { local as store } from "./storage.js";

const GHOST_DELAY_MS = 1500;
// Codes that refuse a /join: the join form says them too.
const JOIN_REFUSALS = new Set([
  "no_such_room", "room_invalid", "too_many_rooms", "invite_only", "banned_from_room", "accounts_only",
]);

export class Chat {
  /** @param {object} ui the page: see app.js for the methods it provides */
  constructor(ui) {
    this.ui = ui;
    this.signin = new SignIn();
    this.nick = this.signin.token?.nick ?? this.signin.nick;
    this.registered = false;
    this.everRegistered = false;
    this.awaitingNick = false; // the server asked NICK and has no answer yet
    this.leaving = false; // `/logout` sent: its BYE closes the socket
    this.conversations = new Map();
    this.current = null;
    this.serverCurrent = null;
    this.pendingSwitch = null; // a room key the page moves to when the server says CURRENT
    this.pendingDm = null; // a nickname key the page moves to when our DM echo comes
    this.restoreKey = store.get("current", null);
    this.wantedRooms = store.get("rooms", []);
    this.noHistory = false;
    this.hiddenUnread = 0;
    this.moderation = new Moderation(this);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.conn = new Connection(`${scheme}//${location.host}/ws`, {
      onOpen: () => this.ui.status(this.signin.pending ? "Connected; signing in…" : "", "busy"),
      onLine: (line) => this.handle(line),
      onRetry: (info) => this._lost(info),
      onStopped: () => {},
    });
  }

  /** Open the socket without signing in: the sign-in screen learns what the server allows (ACCOUNTS). */
  connect() {
    if (!this.conn.wanted) this.conn.start();
  }

  /** Sign in with what `this.signin` was just given (a nickname, a password, the token). */
  signIn() {
    if (this.leaving || this.registered) {
      this.leaving = false;
      this._offline();
      this.conn.stop();
    }
    if (this.conn.open && this.awaitingNick) this._answer();
    else if (!this.conn.ws) this.conn.start(); // else the answer goes with the coming NICK
  }

  /** After `BYE replaced`: sign in here again with the token (the other page gets the BYE). */
  takeOver() {
    if (this.signin.resume(false)) this.signIn();
    else this.ui.loggedOut("Sign in again.");
  }

  /** Leave the server (the user chose to, or wants another nickname). */
  quit(text = "") {
    if (this.conn.open && this.registered) this.conn.send(text ? `/quit ${text}` : "/quit");
    this.conn.stop();
    this._offline();
  }

  /**
   * Sign out of the account: `/logout` revokes the token this connection
   * resumed with, and the page forgets its token whatever the server says.
   */
  signOut() {
    this.signin.signedOut();
    if (this.conn.open && this.registered) {
      this.conn.send("/logout");
      this.leaving = true; // BYE logout comes, then the socket closes
    } else {
      this.conn.stop();
    }
    this._offline();
  }

  /** Is the person signed in to an account (not a guest)? */
  get onAccount() {
    return this.signin.method === "password" || this.signin.method === "token";
  }

  // ---- lines from the server -------------------------------------------------

  handle(raw) {
    const line = parseLine(raw);
    if (this.moderation.handle(line)) return;
    const handler = this[`on${line.verb}`];
    if (typeof handler === "function") handler.call(this, line);
    // Unknown verbs are ignored: later protocol versions add some (docs/protocol.md).
  }

  onHELLO() {
    this.awaitingNick = false;
    this.signin.greeted();
  }

  onACCOUNTS(line) {
    this.signin.accounts(line.args);
  }

  onNICK() {
    this.awaitingNick = true;
    const modes = this.signin.asked();
    this.ui.modes(modes);
    if (!this.signin.pending) return;
    if (!modes.accounts && this.signin.request.kind !== "guest") {
      // Such a server would take the line for a nickname: a password or a token is not sent to it.
      this.signin.refused("no_accounts");
      this.ui.signInError("no_accounts", "This server has no accounts: choose a nickname to join as a guest.");
      return;
    }
    this._answer();
  }

  _answer() {
    const line = this.signin.answer();
    if (line === null) return;
    this.awaitingNick = false;
    this.conn.send(line);
  }

  onWELCOME(line) {
    const [nick] = line.args;
    this.registered = true;
    this.awaitingNick = false;
    this.lostWhy = null;
    this.nick = nick;
    const next = this.signin.welcomed(nick);
    if (next) this.conn.send(next); // /remember: a token to come back with
    this.conn.registered();
    const again = this.everRegistered;
    this.everRegistered = true;
    this.ui.registered(nick, again, this.onAccount);
    // Back into the rooms we were in (autojoin rooms come first, by themselves);
    // joining a room we are already in is only a switch.
    for (const name of this.wantedRooms) this.conn.send(`/join ${name}`);
    // The server's current room (where /me and /topic go) follows the page's.
    if (this.current && this.current.kind === "room") this.conn.send(`/join ${this.current.name}`);
  }

  onERR(line) {
    const [code, text] = line.args;
    if (!this.registered && SignIn.refuses(code)) {
      if (this.signin.refused(code) === "retry") {
        // After a reload or a lost connection the server may not have seen the
        // old connection go yet: the nickname is ours, try again shortly.
        this.ui.status(`${this.signin.request.nick} is still in use (your previous connection?); trying again…`, "busy");
        setTimeout(() => {
          if (this.awaitingNick && this.signin.pending) this._answer();
        }, GHOST_DELAY_MS);
        return;
      }
      this.ui.signInError(code, text);
      return;
    }
    if (code === "no_history") historyOff(this);
    if (code === "no_such_nick" && this.pendingDm) this.pendingDm = null;
    // The moderation codes in the page's words (roles.js); the others are the server's.
    const words = errorWords(code, text) ?? (text || code);
    if (JOIN_REFUSALS.has(code)) {
      if (this.pendingSwitch) this.ui.joinError(words);
      this.pendingSwitch = null;
    }
    this._notice("error", words);
    this.ui.refused(words);
  }

  onJOIN(line) {
    const [room, nick] = line.args;
    if (this._isMe(nick)) {
      const conv = this.conversationFor(room, "room");
      conv.name = room; // the server's spelling
      conv.joined = true;
      this.moderation.joined(conv);
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
      this.signin.renamed(newNick);
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
    historyEnded(this, line);
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

  onTOKEN(line) {
    const [token, expires] = line.args;
    // One the person asked for (a typed /remember) is shown, as the server shows it: once.
    if (!this.signin.tokenGiven(token, expires)) this._notice("info", `Sign-in token, valid until ${expires}: ${token}`);
  }

  onINFO(line) {
    this._notice("info", line.args[0]);
  }

  onBYE(line) {
    const [reason] = line.args;
    const code = reason.split(" ")[0];
    const text = reason.slice(code.length + 1);
    const stop = () => {
      this.conn.stop();
      this._offline();
    };
    if (code === "quit") {
      stop();
      this.ui.loggedOut("");
    } else if (code === "logout") {
      stop();
      this.signin.signedOut();
      if (!this.leaving) this.ui.loggedOut("You are signed out.");
      this.leaving = false;
    } else if (code === "replaced") {
      // Someone (this person, elsewhere) signed in to the account: coming back
      // by ourselves would throw them out in turn, so the person decides.
      stop();
      if (this.onAccount) this.ui.replaced(this.signin.token !== null);
      else this.ui.loggedOut(`${this.nick} is now a registered account, and its owner signed in. Choose another nickname.`);
    } else if (code === "kicked" || code === "banned") {
      // The operator ended this sign-in: the token is not tried again.
      stop();
      this.signin.signedOut();
      const what = code === "kicked" ? "An operator removed you from the chat" : "An operator banned you from this server";
      if (code === "kicked") this.ui.loggedOut(`${what}${text ? `: ${text}` : "."}`);
      else this.ui.signInError("banned", text ? `${what}: ${text}` : null); // null: the ERR banned before it said why
    } else if (code === "nick_failed" || code === "register_timeout") {
      stop();
      // register_timeout with nothing to send: the sign-in screen was left idle; the next try reconnects.
      if (code === "nick_failed" || this.signin.pending) this.ui.signInError(code, "");
    } else {
      // shutdown, slow_consumer, flood…: the socket closes next, and we come back.
      this.registered = false;
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
    // Whatever moved the page here settles a switch still waiting for CURRENT:
    // a room joined and shown, then left for another, is not shown again.
    this.pendingSwitch = null;
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
    loadOlder(this, conv);
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

  /** Not registered any more: rooms are not joined, nothing is awaited. */
  _offline() {
    this.registered = false;
    this.awaitingNick = false;
    this.serverCurrent = null;
    for (const conv of this.conversations.values()) {
      if (conv.kind === "room") conv.joined = false;
      conv.historyQueue = [];
      conv.loadingBefore = false;
    }
  }

  _lost({ delayMs, wasOpen }) {
    const registered = this.registered;
    this._offline();
    // Reconnecting: sign in again as the same person (the token, or a guest's nickname), by itself.
    const next = this.signin.again();
    if (next === "ask") {
      this.conn.stop();
      this.ui.loggedOut("The connection was lost; sign in again.");
      return;
    }
    if (next === "cut") this.ui.signInError("connection_lost", "The connection was lost before the server answered; try again.");
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
