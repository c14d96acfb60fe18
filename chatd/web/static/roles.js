// Room roles as the page knows them (docs/protocol.md, "Room roles"): for each
// room, whether it is registered, who holds which role and which flags are on,
// kept from the lines ROLES, ROLE, FLAGS, FLAG and REGISTERED; what a role lets
// one do to another (the protocol's "who may do what" table); and the words
// the page uses for roles, flags and the moderation error codes. No DOM and no
// sockets here: moderation.js reads the lines, members.js and room-settings.js
// show what this says.

import { keyOf } from "./protocol.js";

/** Roles, lowest first: nobody acts on someone of an equal or higher one. */
const RANK = { member: 0, voice: 1, op: 2, owner: 3 };

/** The flags of a registered room, in the order the page lists them. */
export const FLAG_NAMES = ["topic_ops", "private", "moderated", "accounts_only"];

export const FLAG_LABELS = {
  topic_ops: "Only ops set the topic",
  private: "Private: invite only, hidden from others",
  moderated: "Moderated: only voiced members speak",
  accounts_only: "Accounts only: no guests",
};

/** The short words shown beside a room's name (in the header) for a flag that is on. */
export const FLAG_SHORT = {
  private: "Private",
  moderated: "Moderated",
  accounts_only: "Accounts only",
};

const ROLE_WORDS = { owner: "the owner", op: "an op", voice: "voiced", member: "a member" };

/** The mark before a nickname, as IRC clients show it: `@` for an op or the owner, `+` for a voice. */
export function markOf(role) {
  return role === "owner" || role === "op" ? "@" : role === "voice" ? "+" : "";
}

export function roleWords(role) {
  return ROLE_WORDS[role] ?? role;
}

/**
 * The moderation error codes in the page's words (`text` is the server's, which
 * names the room or the rule that refused). Other codes: undefined.
 */
export function errorWords(code, text) {
  switch (code) {
    case "not_allowed":
      return `Not allowed: ${text || "your role in this room does not allow that."}`;
    case "invite_only":
      return "That room is private: you can join it only with an invite from one of its ops.";
    case "banned_from_room":
      return "You are banned from that room.";
    case "accounts_only":
      return "That room takes only people signed in to an account, not guests.";
    case "moderated":
      return "Your message was not sent: the room is moderated, and only members with a voice (+) speak there. An op can give you one.";
    default:
      return undefined;
  }
}

/** One room's registration as this page last heard it. */
export class RoomRoles {
  constructor() {
    this.reset();
  }

  /** Joining (again): what comes next (ROLES, FLAGS) says it all anew. */
  reset() {
    this.registered = false;
    this.owner = null; // a nickname, when known (REGISTERED, or the owner's role line)
    this.roles = new Map(); // nickname key -> "owner" | "op" | "voice"
    this.flags = new Set();
  }

  roleOf(nick) {
    return this.roles.get(keyOf(nick)) ?? "member";
  }

  has(flag) {
    return this.flags.has(flag);
  }

  /** `ROLES <room> <nick>:<role> ...`: the full list (sent only for a registered room). */
  setAll(items) {
    this.registered = true;
    this.roles.clear();
    for (const item of items) {
      const colon = item.lastIndexOf(":");
      if (colon > 0) this.set(item.slice(0, colon), item.slice(colon + 1));
    }
  }

  /** One role changed; returns the role held before. */
  set(nick, role) {
    const key = keyOf(nick);
    const before = this.roles.get(key) ?? "member";
    this.registered = true;
    if (role === "owner") {
      // One owner per room: a hand-over's other ROLE line says what the old one became.
      if (this.owner && keyOf(this.owner) !== key && this.roles.get(keyOf(this.owner)) === "owner") {
        this.roles.delete(keyOf(this.owner));
      }
      this.owner = nick;
    } else if (this.owner && keyOf(this.owner) === key) {
      this.owner = null;
    }
    if (RANK[role] > 0) this.roles.set(key, role);
    else this.roles.delete(key);
    return before;
  }

  /** `FLAGS <room> <flag> ...` */
  setFlags(flags) {
    this.flags = new Set(flags.filter(Boolean));
  }

  /** `FLAG <room> <flag> on|off ...` */
  setFlag(flag, on) {
    this.registered = true;
    if (on) this.flags.add(flag);
    else this.flags.delete(flag);
  }

  /** `REGISTERED <room> <owner>`, or `*`: no longer registered (no roles, flags or bans). */
  setRegistered(owner) {
    if (owner === "*") {
      this.reset();
      return;
    }
    this.registered = true;
    this.owner = owner;
  }

  /**
   * What `me` may do to `target` in this room, per the protocol's table: the
   * owner ops and deops; ops (and the owner) voice, devoice, kick and ban;
   * nobody acts on an equal or higher role. Empty in a room nobody registered.
   * @returns {string[]} of "op", "deop", "voice", "devoice", "kick", "ban"
   */
  actionsOn(me, target) {
    if (!this.registered || keyOf(me) === keyOf(target)) return [];
    const mine = RANK[this.roleOf(me)];
    const theirs = this.roleOf(target);
    if (mine < RANK.op || RANK[theirs] >= mine) return [];
    const actions = [];
    if (mine === RANK.owner) actions.push(theirs === "op" ? "deop" : "op");
    if (theirs === "voice") actions.push("devoice");
    else if (theirs === "member") actions.push("voice");
    actions.push("kick", "ban");
    return actions;
  }

  /** May `me` invite, kick, ban and list bans here (an op or the owner)? */
  isOp(me) {
    return this.registered && RANK[this.roleOf(me)] >= RANK.op;
  }

  isOwner(me) {
    return this.registered && this.roleOf(me) === "owner";
  }
}
