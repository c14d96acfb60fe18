// What the person types in the message box, turned into the line chatd gets:
// plain text goes to the conversation on screen (`/msg <room>`, or a direct
// message), `//` starts a message with `/`, and a few commands are the page's
// own or take the conversation on screen as their default (`/join` of a room
// already joined only shows it, `/part` in a direct conversation closes it,
// `/query` opens one). Any other command goes to the server as typed.

import { byteLength, cleanText, isRoom, keyOf, ROOM_RE } from "./protocol.js";

const MAX_LINE_BYTES = 4096; // the server's default limits.max_line_bytes

/**
 * Send what was typed in the composer.
 * @param {import("./chat.js").Chat} chat
 * @param {string} input
 * @returns {string} an error text for the person, or "" when sent (or nothing was to be sent)
 */
export function submit(chat, input) {
  const text = cleanText(input).trim() === "" ? "" : cleanText(input);
  if (!text.trim()) return "";
  if (!chat.conn.open || !chat.registered) return "Not connected: your message was not sent.";
  const conv = chat.current;
  let line;
  if (text.startsWith("//") || !text.startsWith("/")) {
    if (!conv) return "Join a room first: /join #room";
    if (conv.kind === "room" && !conv.joined) return `You are not in ${conv.name}.`;
    const body = text.startsWith("//") ? text.slice(1) : text;
    line = `/msg ${conv.name} ${body}`;
  } else {
    const space = text.indexOf(" ");
    const name = (space < 0 ? text : text.slice(0, space)).toLowerCase();
    const rest = space < 0 ? "" : text.slice(space + 1).trim();
    line = command(chat, name, rest, text);
    if (line === null) return "";
    if (line.startsWith("!")) return line.slice(1);
  }
  if (byteLength(line) > MAX_LINE_BYTES) return "That message is too long for the server.";
  chat.conn.send(line);
  return "";
}

/** A typed /command: the line to send, null when done here, or "!error". */
function command(chat, verb, rest, text) {
  const conv = chat.current;
  switch (verb) {
    case "/me":
      if (conv && conv.kind === "dm") return "!/me works in rooms only.";
      if (conv && conv.kind === "room" && chat.serverCurrent !== conv.key) chat.conn.send(`/join ${conv.name}`);
      return text;
    case "/join": {
      const room = rest.split(" ")[0];
      if (!room) return "!Which room? /join #name";
      const name = room.startsWith("#") ? room : `#${room}`;
      if (!ROOM_RE.test(name)) return "!Room names are # and up to 32 letters, digits, _ or -.";
      chat.pendingSwitch = keyOf(name);
      const existing = chat.find(name);
      if (existing && existing.joined) {
        chat.select(existing);
        return null;
      }
      return `/join ${name}`;
    }
    case "/part":
    case "/leave":
      if (!rest.startsWith("#") && conv && conv.kind === "dm") {
        chat.remove(conv);
        return null;
      }
      if (!rest.startsWith("#") && conv) return `/part ${conv.name}${rest ? ` ${rest}` : ""}`;
      return `/part ${rest}`.trimEnd();
    case "/msg":
    case "/query": {
      const [target, ...words] = rest.split(" ");
      if (!target) return "!Whom to? /msg nick text";
      if (!isRoom(target)) {
        const open = chat.conversationFor(target, "dm");
        if (!words.length || verb === "/query") {
          chat.select(open);
          return null;
        }
        chat.pendingDm = open.key;
      }
      return verb === "/query" ? null : text;
    }
    case "/quit":
      chat.quit(rest);
      chat.ui.loggedOut("");
      return null;
    case "/topic":
      if (conv && conv.kind === "room" && !rest.startsWith("#")) {
        return rest ? `/topic ${conv.name} ${rest}` : `/topic ${conv.name}`;
      }
      return text;
    case "/who":
      if (!rest && conv && conv.kind === "room") return `/who ${conv.name}`;
      return text;
    default:
      return text;
  }
}
