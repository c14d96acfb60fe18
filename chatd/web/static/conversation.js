// One conversation (a room or the direct messages with one nickname): its items
// in event-id order, its own scrolling log element, members, topic and unread state.
//
// Events (MSG, ACTION, DM, a topic change) carry server ids: they are kept in id
// order and each id only once, whether it came live, in a backlog, or in a
// /history page (docs/protocol.md, "Events and tags"). Lines without an id
// (joins, parts, notices) are placed after the events known when they came.

import { dayHeading, dayLabel, dayOf, itemElement } from "./render.js";
import { keyOf } from "./protocol.js";
import { RoomRoles } from "./roles.js";

const MAX_ITEMS = 3000; // beyond this the oldest are dropped (and can be paged in again)

export class Conversation {
  /** @param {string} name a room (`#lobby`) or a nickname @param {"room"|"dm"} kind */
  constructor(name, kind) {
    this.name = name;
    this.key = keyOf(name);
    this.kind = kind;
    this.joined = kind === "dm";
    this.topic = "";
    this.topicSetter = "";
    this.members = new Map(); // key -> nick as spelled
    this.roles = new RoomRoles(); // a registered room's roles and flags (moderation.js keeps them)
    this.items = [];
    this.ids = new Set();
    this.maxId = 0;
    this.minId = Infinity;
    this.extraSeq = 0;
    this.unread = 0;
    this.mentioned = false;
    this.hasMoreBefore = false;
    this.loadingBefore = false;
    this.historyQueue = []; // what each awaited HISTORY line answers: "backlog" | "before" | "after"
    this.replyMaxId = 0; // the greatest id among history events since the last HISTORY line
    this.resumeFrom = null; // the greatest id seen before a reconnect, while catching up

    this.log = document.createElement("div");
    this.log.className = "log";
    this.log.tabIndex = 0;
    // New messages are announced through the page's live region (only the live
    // ones: a page of old history must not be read out), so the log itself is quiet.
    this.log.setAttribute("role", "log");
    this.log.setAttribute("aria-live", "off");
    this.log.setAttribute("aria-label", `Messages in ${name}`);
    this.log.hidden = true;
    this.older = document.createElement("button");
    this.older.type = "button";
    this.older.className = "older";
    this.older.hidden = true;
    this.older.addEventListener("click", () => this.onNearTop?.());
    this.log.append(this.older);
    this.stuck = true; // the reader is at the newest line: keep it in view as lines come
    this.onNearTop = null;
    this.log.addEventListener("scroll", () => {
      this.stuck = this._measureBottom();
      if (this.log.scrollTop < 150) this.onNearTop?.();
    }, { passive: true });
  }

  /** The label for lists and headings: a room's name, or the other person's nickname. */
  get label() {
    return this.name;
  }

  /**
   * Add an item in its place. Returns false for an event already here (same id).
   * @param {{kind: string, nick?: string, text: string, time: Date, id: number|null}} item
   */
  add(item) {
    if (item.id !== null) {
      if (this.ids.has(item.id)) return false;
      this.ids.add(item.id);
      this.maxId = Math.max(this.maxId, item.id);
      this.minId = Math.min(this.minId, item.id);
      item.sortKey = item.id;
    } else {
      // After every event known now, in arrival order among the id-less lines.
      this.extraSeq += 1;
      item.sortKey = this.maxId + this.extraSeq / 1e6;
    }
    item.day = dayOf(item.time);
    item.el = itemElement(item);
    item.sep = null;

    const index = this._indexFor(item.sortKey);
    const next = this.items[index] ?? null;
    const prev = index > 0 ? this.items[index - 1] : null;
    this.items.splice(index, 0, item);

    const before = next ? (next.sep ?? next.el) : null;
    // Older lines coming in above what the reader looks at must not move it:
    // keep the line after the insertion point where it is on screen.
    const visible = !this.log.hidden && !this.stuck && before !== null;
    const anchorTop = visible ? before.getBoundingClientRect().top : 0;
    const anchored = visible && anchorTop < this.log.getBoundingClientRect().bottom;
    if (!prev || prev.day !== item.day) {
      item.sep = dayHeading(item.time);
      this.log.insertBefore(item.sep, before);
    }
    this.log.insertBefore(item.el, before);
    if (next) this._fixSeparator(next, item);
    if (this.items.length > MAX_ITEMS && index > 0) this._dropOldest();
    if (anchored) this.log.scrollTop += before.getBoundingClientRect().top - anchorTop;
    if (this.stuck) this.scrollToBottom();
    return true;
  }

  _indexFor(sortKey) {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid].sortKey <= sortKey) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  _fixSeparator(item, prev) {
    const needed = prev.day !== item.day;
    if (needed && !item.sep) {
      item.sep = dayHeading(item.time);
      this.log.insertBefore(item.sep, item.el);
    } else if (!needed && item.sep) {
      item.sep.remove();
      item.sep = null;
    }
  }

  _dropOldest() {
    const first = this.items.shift();
    first.sep?.remove();
    first.el.remove();
    if (first.id !== null) this.ids.delete(first.id);
    const next = this.items[0];
    if (next && !next.sep) {
      next.sep = dayHeading(next.time);
      this.log.insertBefore(next.sep, next.el);
    }
    const firstEvent = this.items.find((it) => it.id !== null);
    this.minId = firstEvent ? firstEvent.id : Infinity;
    this.hasMoreBefore = this.kind === "room";
  }

  /** The id to page back from, or null when no event is here yet. */
  get oldestId() {
    return Number.isFinite(this.minId) ? this.minId : null;
  }

  _measureBottom() {
    const log = this.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
    this.stuck = true;
  }

  /** The log is on screen (again): where the reader left it, or at the newest line. */
  shown() {
    this.refreshDayLabels();
    if (this.stuck) this.scrollToBottom();
  }

  /** Show the "older messages" line: loading, a pointer to scroll, or the beginning. */
  showOlderState() {
    if (this.kind !== "room") {
      this.older.hidden = true;
      return;
    }
    this.older.hidden = false;
    this.older.disabled = !this.hasMoreBefore || this.loadingBefore;
    if (this.loadingBefore) this.older.textContent = "Loading older messages…";
    else if (this.hasMoreBefore) this.older.textContent = "Load older messages";
    else this.older.textContent = `The start of ${this.name}`;
  }

  /** Day headings say "Today" and "Yesterday": bring them up to date. */
  refreshDayLabels() {
    for (const heading of this.log.querySelectorAll("h3.day")) {
      heading.firstChild.textContent = dayLabel(new Date(heading.dataset.day));
    }
  }

  setMembers(nicks) {
    this.members = new Map(nicks.map((nick) => [keyOf(nick), nick]));
  }

  addMember(nick) {
    this.members.set(keyOf(nick), nick);
  }

  removeMember(nick) {
    return this.members.delete(keyOf(nick));
  }

  hasMember(nick) {
    return this.members.has(keyOf(nick));
  }

  sortedMembers() {
    return [...this.members.values()].sort((a, b) =>
      a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0);
  }
}
