// The chatd line protocol (docs/protocol.md, version 5): parsing server lines
// and the rules for names. No DOM, no sockets: everything here is pure.

/** Room names: `#` and 1 to 32 of [A-Za-z0-9_-] (docs/protocol.md, "Line format"). */
export const ROOM_RE = /^#[A-Za-z0-9_-]{1,32}$/;
/** Nicknames: 1 to 32 of [A-Za-z0-9_-] (the server may allow fewer). */
export const NICK_RE = /^[A-Za-z0-9_-]{1,32}$/;

// How many arguments each verb has; the last one may contain spaces.
const ARITY = {
  HELLO: 2, WELCOME: 2, JOIN: 2, TOPIC: 3, USERS: 2, CURRENT: 1, PART: 3, LEAVE: 2,
  RENAME: 2, MSG: 3, ACTION: 3, DM: 3, HISTORY: 3, ROOM: 3, ROOMS: 1, PONG: 1,
  INFO: 1, ERR: 2, BYE: 1, NICK: 0, TOKEN: 2,
  REGISTERED: 2, ROLES: 2, ROLE: 4, FLAGS: 2, FLAG: 4, KICK: 4, INVITE: 3, BAN: 5, BANS: 2,
};

/**
 * Parse one server line.
 * @param {string} line without its line ending
 * @returns {{verb: string, args: string[], tags: Map<string, string|true>, id: number|null,
 *            time: Date|null, history: boolean, raw: string}}
 */
export function parseLine(line) {
  const tags = new Map();
  let rest = line;
  if (rest.startsWith("@")) {
    const space = rest.indexOf(" ");
    const tagText = space < 0 ? rest.slice(1) : rest.slice(1, space);
    rest = space < 0 ? "" : rest.slice(space + 1);
    for (const item of tagText.split(";")) {
      if (!item) continue;
      const eq = item.indexOf("=");
      if (eq < 0) tags.set(item, true);
      else tags.set(item.slice(0, eq), item.slice(eq + 1));
    }
  }
  const space = rest.indexOf(" ");
  const verb = space < 0 ? rest : rest.slice(0, space);
  const argText = space < 0 ? "" : rest.slice(space + 1);
  const arity = ARITY[verb];
  let args;
  if (arity === undefined) {
    args = argText ? argText.split(" ") : [];
  } else {
    args = splitArgs(argText, arity);
  }
  const idTag = tags.get("id");
  const id = typeof idTag === "string" && /^\d+$/.test(idTag) ? Number(idTag) : null;
  const timeTag = tags.get("time");
  let time = null;
  if (typeof timeTag === "string") {
    const parsed = new Date(timeTag);
    if (!Number.isNaN(parsed.getTime())) time = parsed;
  }
  return { verb, args, tags, id, time, history: tags.has("history"), raw: line };
}

/** Split into at most `count` arguments; the last takes the rest (possibly empty). */
function splitArgs(text, count) {
  if (count === 0) return [];
  const args = [];
  let rest = text;
  while (args.length < count - 1) {
    const space = rest.indexOf(" ");
    if (space < 0) {
      if (rest !== "") args.push(rest);
      rest = null;
      break;
    }
    args.push(rest.slice(0, space));
    rest = rest.slice(space + 1);
  }
  if (rest !== null) args.push(rest);
  while (args.length < count) args.push("");
  return args;
}

/** True for a room name (the protocol's rule: it starts with `#`). */
export function isRoom(target) {
  return target.startsWith("#");
}

/** The key a conversation is filed under: names compare without regard to case. */
export function keyOf(name) {
  return name.toLowerCase();
}

const ENCODER = new TextEncoder();

/** UTF-8 length of a line, as the server counts it against `max_line_bytes`. */
export function byteLength(text) {
  return ENCODER.encode(text).length + 1; // the line ending counts
}

/**
 * Remove what the server refuses as `bad_encoding` (C0 controls other than tab,
 * DEL, C1 controls) so that a pasted character costs the user no strike.
 */
export function cleanText(text) {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, "");
}

/** Does `text` mention `nick` as a whole word (case-insensitive)? */
export function mentions(text, nick) {
  if (!nick) return false;
  const escaped = nick.replace(/[-]/g, "\\-");
  const re = new RegExp(`(^|[^A-Za-z0-9_-])${escaped}($|[^A-Za-z0-9_-])`, "i");
  return re.test(text);
}
