// A room's history as the page pages it (docs/protocol.md, "History"): what
// each HISTORY line ends (a join's backlog, a page of older events, a page
// after a reconnect), paging back with `/history <room> before <id>`, catching
// up with `/history <room> after <id>` until `end`, and a server that keeps
// none. The events themselves go into the conversation through chat.js.

export const HISTORY_PAGE = 100;

/** `HISTORY <target> <count> <more>`: the end of what the room's oldest awaited request asked for. */
export function historyEnded(chat, line) {
  const [target, countText, more] = line.args;
  const conv = chat.find(target);
  if (!conv) return;
  const count = Number(countText);
  const kind = conv.historyQueue.shift() ?? "before";
  const replyMax = conv.replyMaxId;
  conv.replyMaxId = 0;
  if (kind === "backlog") {
    conv.hasMoreBefore = more === "more";
    if (conv.resumeFrom !== null) historyAfter(chat, conv, conv.resumeFrom);
    if (chat.current === conv) conv.scrollToBottom();
  } else if (kind === "before") {
    conv.loadingBefore = false;
    conv.hasMoreBefore = more === "more" && count > 0;
    // A page that did not fill the view: nothing to scroll, so ask for the next now.
    if (conv.hasMoreBefore && conv.log.scrollHeight <= conv.log.clientHeight) loadOlder(chat, conv);
  } else if (kind === "after") {
    if (more === "more" && count > 0 && replyMax > 0) historyAfter(chat, conv, replyMax);
    else conv.resumeFrom = null; // caught up: every event since the reconnect, once
  }
  conv.showOlderState();
  chat.ui.changed(conv);
}

/** Ask for the page of history before the oldest event shown. */
export function loadOlder(chat, conv) {
  if (conv.kind !== "room" || !conv.joined || !conv.hasMoreBefore || conv.loadingBefore) return;
  if (!chat.registered || chat.noHistory) return;
  const oldest = conv.oldestId;
  conv.loadingBefore = true;
  conv.historyQueue.push("before");
  chat.conn.send(oldest === null
    ? `/history ${conv.name} ${HISTORY_PAGE}`
    : `/history ${conv.name} before ${oldest} ${HISTORY_PAGE}`);
  conv.showOlderState();
}

/** The events after `id` (catching up after a reconnect). */
export function historyAfter(chat, conv, id) {
  conv.historyQueue.push("after");
  conv.resumeFrom = id;
  chat.conn.send(`/history ${conv.name} after ${id} ${HISTORY_PAGE * 5}`);
}

/** `ERR no_history`: the server keeps none; nothing is awaited or paged any more. */
export function historyOff(chat) {
  chat.noHistory = true;
  for (const conv of chat.conversations.values()) {
    conv.historyQueue = [];
    conv.loadingBefore = false;
    conv.hasMoreBefore = false;
    conv.resumeFrom = null;
    conv.showOlderState();
  }
}
