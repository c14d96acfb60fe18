// The chat's side of room roles (docs/protocol.md, "Room roles"): the lines
// REGISTERED, ROLES, ROLE, FLAGS, FLAG, KICK, INVITE, BAN and BANS kept in each
// room's RoomRoles (roles.js) and shown as lines of the room's log, a kick of
// this page taking the room away, an invite offering to join; and the commands
// the member menu and the room settings panel send. The menu and the panel
// themselves are members.js's and room-settings.js's; chat.js hands each line
// here first.

import { keyOf } from "./protocol.js";
import { FLAG_LABELS, roleWords } from "./roles.js";

const VERBS = new Set(["REGISTERED", "ROLES", "ROLE", "FLAGS", "FLAG", "KICK", "INVITE", "BAN", "BANS"]);

export class Moderation {
  /** @param {import("./chat.js").Chat} chat */
  constructor(chat) {
    this.chat = chat;
    this.banLists = new Map(); // room key -> the BAN lines of a /bans the settings panel asked for
    this.previous = null; // the line handled before this one: a join's ROLES and FLAGS follow its USERS
    this.usersOnJoin = false; // was that USERS part of our own join (not an answer to /who)?
  }

  /** Handle a moderation line; false for any other (chat.js handles it). */
  handle(line) {
    const previous = this.previous;
    this.previous = line;
    if (line.verb === "USERS") {
      this.usersOnJoin = Boolean(this.chat.find(line.args[0])?.joining);
      return false;
    }
    if (!VERBS.has(line.verb)) return false;
    this[`on${line.verb}`](line, previous);
    return true;
  }

  /** Our own JOIN: what follows (ROLES, FLAGS) says the room's registration anew. */
  joined(conv) {
    conv.roles.reset();
  }

  // ---- lines from the server -------------------------------------------------

  onREGISTERED(line) {
    const [room, owner] = line.args;
    const conv = this._room(room);
    if (!conv) return;
    conv.roles.setRegistered(owner);
    const text = owner === "*" ? `${conv.name} is no longer registered: no roles, flags or bans.`
      : `${conv.name} is now registered to ${owner}, who owns it.`;
    this._line(conv, { text });
  }

  onROLES(line, previous) {
    const [room, list] = line.args;
    const conv = this._room(room);
    const items = list.split(" ").filter(Boolean);
    if (conv) {
      conv.roles.setAll(items);
      this.chat.ui.changed(conv);
    }
    // On a join the member list shows them; after a /who, say them too.
    const quiet = conv && previous?.verb === "USERS" && this.usersOnJoin;
    if (!quiet) {
      const held = items.map((item) => item.replace(/^(.*):(\w+)$/, "$1 ($2)"));
      this.chat._notice("info", held.length ? `Roles in ${room}: ${held.join(", ")}` : `Nobody holds a role in ${room}.`, conv ?? undefined);
    }
  }

  onROLE(line, previous) {
    const [room, nick, role, by] = line.args;
    const conv = this._room(room);
    if (!conv) return;
    const before = conv.roles.set(nick, role);
    this.chat.ui.changed(conv);
    // The server's own line for someone with a role who just joined: the member list says it.
    // Quiet: the server's line for someone with a role who just joined (the member list
    // says it), and a new registration's owner (its REGISTERED line said it).
    const joining = by === "*" && previous?.verb === "JOIN" && keyOf(previous.args[1]) === keyOf(nick);
    const registering = role === "owner" && previous?.verb === "REGISTERED";
    if (before === role || joining || registering) return;
    const was = role === "member" ? ` (no longer ${roleWords(before)})` : "";
    this._line(conv, { nick, text: `is now ${roleWords(role)}${was}, ${this._by(by)}` });
  }

  onFLAGS(line, previous) {
    const [room, list] = line.args;
    const flags = list.split(" ").filter(Boolean);
    const conv = this._room(room);
    if (conv) {
      conv.roles.setFlags(flags);
      this.chat.ui.changed(conv);
    }
    if (conv && previous?.verb === "ROLES" && this.usersOnJoin) return; // a join: the header shows them
    const words = flags.map((flag) => FLAG_LABELS[flag] ?? flag);
    this.chat._notice("info", `Flags of ${room}: ${words.length ? words.join("; ") : "none"}`, conv ?? undefined);
  }

  onFLAG(line) {
    const [room, flag, value, by] = line.args;
    const conv = this._room(room);
    if (!conv) return;
    conv.roles.setFlag(flag, value === "on");
    this.chat.ui.changed(conv);
    const what = `turned ${value === "on" ? "on" : "off"} the flag “${FLAG_LABELS[flag] ?? flag}”`;
    if (by === "*") this._line(conv, { text: `The server's operator ${what}` });
    else this._line(conv, { nick: by, text: what });
  }

  onKICK(line) {
    const [room, nick, by, reason] = line.args;
    const conv = this._room(room);
    if (!conv) return;
    const [code, ...rest] = reason.split(" ");
    const why = rest.join(" ");
    const how = code === "banned" ? "banned" : "kicked";
    const tail = `${this._by(by)}${why ? `: ${why}` : ""}`;
    if (!this.chat._isMe(nick)) {
      conv.removeMember(nick);
      this._line(conv, { nick, text: `was ${how} from ${conv.name} ${tail}` });
      return;
    }
    // Out of the room, as after /part (CURRENT follows if it was the current room).
    conv.joined = false;
    this.chat._rememberRoom(room, false);
    this.chat.remove(conv);
    const again = how === "kicked" ? { label: `Join ${conv.name} again`, run: () => this.chat.submit(`/join ${conv.name}`) } : null;
    this.chat.ui.notice(`You were ${how} from ${conv.name} ${tail}`, again);
  }

  onINVITE(line) {
    const [room, nick, by] = line.args;
    if (this.chat._isMe(nick)) {
      const join = { label: `Join ${room}`, run: () => this.chat.submit(`/join ${room}`) };
      const text = `${by} invites you to ${room}: you may join it once within 24 hours.`;
      if (this.chat.current) this._line(this.chat.current, { kind: "invite", text, action: join });
      else this.chat.ui.notice(text, join);
      this.chat.ui.announce(text);
      return;
    }
    const conv = this._room(room);
    const text = `may join ${room} once within 24 hours, invited ${this._by(by)}`;
    this._line(conv ?? this.chat.current, { nick, text });
  }

  onBAN(line) {
    const [room, mask, by, set, reason] = line.args;
    const list = this.banLists.get(keyOf(room));
    if (list) list.push({ mask, by, set, reason });
    else this.chat._notice("info", `${room} bans ${mask} (${this._by(by)}, since ${set})${reason ? `: ${reason}` : ""}`);
  }

  onBANS(line) {
    const [room, count] = line.args;
    const list = this.banLists.get(keyOf(room));
    this.banLists.delete(keyOf(room));
    const conv = this._room(room);
    if (list && conv) this.chat.ui.bans(conv, list);
    else if (!list) this.chat._notice("info", `${count} ${count === "1" ? "ban" : "bans"} in ${room}.`);
  }

  // ---- what the member menu and the settings panel send -----------------------

  /** Send `/<verb> <room> <args...>` for a joined room; false when not connected. */
  send(verb, conv, ...args) {
    if (!this.chat.registered || !this.chat.conn.open) return false;
    const rest = args.filter((arg) => arg !== "" && arg !== undefined);
    this.chat.conn.send([`/${verb}`, conv.name, ...rest].join(" "));
    return true;
  }

  /** `/room <room> <flag> on|off` (the owner). */
  setFlag(conv, flag, on) {
    return this.send("room", conv, flag, on ? "on" : "off");
  }

  /** `/bans <room>`, its answer going to the settings panel (ui.bans). */
  listBans(conv) {
    this.banLists.set(conv.key, []);
    if (!this.send("bans", conv)) this.banLists.delete(conv.key);
  }

  register(conv) {
    if (this.chat.registered) this.chat.conn.send(`/room register ${conv.name}`);
  }

  drop(conv) {
    if (this.chat.registered) this.chat.conn.send(`/room drop ${conv.name}`);
  }

  // ---- helpers ----------------------------------------------------------------

  _room(name) {
    const conv = this.chat.find(name);
    return conv && conv.kind === "room" ? conv : null;
  }

  _by(by) {
    return by === "*" ? "by the server's operator" : `by ${by}`;
  }

  /** A line of a room's log (the kind `mod` unless given), or a notice where there is no room. */
  _line(conv, item) {
    if (!conv) {
      this.chat.ui.notice(item.nick ? `${item.nick} ${item.text}` : item.text, item.action ?? null);
      return;
    }
    this.chat._add(conv, { kind: "mod", live: true, ...item });
    this.chat.ui.changed(conv);
  }
}
