// Turning chat items into DOM nodes. Every text that came from the network goes
// in through textContent or a text node, never as HTML; links are made only for
// http(s) URLs, and open in a new tab without an opener or a referrer. Each
// message text, topic and nickname is its own bidi isolate (<bdi dir="auto">):
// the server passes bidi controls through (docs/protocol.md, "Line format"), so
// that right-to-left text works, and an isolate keeps a reversal (U+202E) or an
// embedding left open inside it from reordering the rest of the line.

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** A node for `text`, with its http(s) URLs as links. */
export function linkify(text) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let url = match[0];
    // "(see https://example.org/a)." : the closing punctuation is the sentence's.
    const trailing = url.match(TRAILING);
    if (trailing && !(trailing[0].startsWith(")") && url.includes("("))) {
      url = url.slice(0, url.length - trailing[0].length);
    }
    const start = match.index;
    const link = safeLink(url);
    if (!link) continue;
    if (start > last) fragment.append(document.createTextNode(text.slice(last, start)));
    fragment.append(link);
    last = start + url.length;
  }
  if (last < text.length) fragment.append(document.createTextNode(text.slice(last)));
  return fragment;
}

/** An <a> for an http(s) URL, or null for anything else. */
export function safeLink(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return null;
  const a = document.createElement("a");
  a.href = parsed.href;
  a.textContent = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

const TIME_FORMAT = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
// A 12-hour clock ("12:18 AM") needs a wider time column than "00:18".
document.documentElement.classList.toggle("clock12", /[^\d:.\s]/.test(TIME_FORMAT.format(new Date(2020, 0, 1, 13, 5))));
const FULL_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const DAY_FORMAT = new Intl.DateTimeFormat(undefined, {
  weekday: "long", year: "numeric", month: "long", day: "numeric",
});

/** The local calendar day of a date, as a string that compares days. */
export function dayOf(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

/** "Today", "Yesterday", or the date in the reader's locale. */
export function dayLabel(date, now = new Date()) {
  if (dayOf(date) === dayOf(now)) return "Today";
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (dayOf(date) === dayOf(yesterday)) return "Yesterday";
  return DAY_FORMAT.format(date);
}

export function dayHeading(date) {
  const heading = document.createElement("h3");
  heading.className = "day";
  const span = document.createElement("span");
  span.textContent = dayLabel(date);
  heading.append(span);
  heading.dataset.day = date.toISOString();
  return heading;
}

/** One of eight colour classes for a nickname, always the same for one nickname. */
export function nickClass(nick) {
  let hash = 0;
  for (const ch of nick.toLowerCase()) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `nick-c${hash % 8}`;
}

/** A text from the network (a message, a topic) with its links, as a bidi isolate
 *  whose direction is its own first strong character's. */
export function isolated(text) {
  const bdi = document.createElement("bdi");
  bdi.className = "text";
  bdi.dir = "auto";
  bdi.append(linkify(text));
  return bdi;
}

/** A nickname, coloured, as a bidi isolate. */
export function nickSpan(nick) {
  const bdi = document.createElement("bdi");
  bdi.className = `nick ${nickClass(nick)}`;
  bdi.dir = "auto";
  bdi.textContent = nick;
  return bdi;
}

/**
 * The element for one item of a conversation.
 * @param {{kind: string, nick?: string, text: string, time: Date, id: number|null,
 *          mention?: boolean, self?: boolean}} item
 */
export function itemElement(item) {
  const row = document.createElement("div");
  row.className = `msg ${item.kind}`;
  if (item.mention) row.classList.add("mention");
  if (item.self) row.classList.add("self");
  if (item.id !== null) row.dataset.id = String(item.id);

  const time = document.createElement("time");
  time.className = "time";
  time.dateTime = item.time.toISOString();
  time.title = FULL_FORMAT.format(item.time);
  time.textContent = TIME_FORMAT.format(item.time);

  const line = document.createElement("span");
  line.className = "line";
  const body = document.createElement("span");
  body.className = "body";
  switch (item.kind) {
    case "msg":
      line.append(nickSpan(item.nick), " ");
      body.append(isolated(item.text));
      break;
    case "action":
      body.append("* ", nickSpan(item.nick), " ", isolated(item.text));
      break;
    case "topic":
      body.append(nickSpan(item.nick), " set the topic: ", isolated(item.text));
      break;
    default:
      // join, part, leave, rename, mod (roles, kicks, flags), invite, info, error: the client's own words, with
      // names and the server's text as text nodes.
      if (item.nick) body.append(nickSpan(item.nick), " ");
      body.append(isolated(item.text));
  }
  if (item.action) {
    // A line that offers something (an invite's "Join"): a button of the page's own.
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button small line-action";
    button.textContent = item.action.label;
    button.addEventListener("click", item.action.run);
    body.append(" ", button);
  }
  line.append(body);
  row.append(time, line);
  return row;
}
