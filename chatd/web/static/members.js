// The member list of the room on screen, each nickname with its role's mark
// (`@` an op or the owner, `+` a voice, and an "owner" badge), and the menu a
// member opens: a direct message, and what the page's own role in the room
// allows (roles.js's `actionsOn`: op, deop, voice, devoice, kick and ban, the
// last two asking for a reason), and an invite into each private room where
// the page is an op and the member is not. The menu is a modal <dialog>:
// keyboard reachable, Escape closes it, focus goes back to the member.

import { keyOf } from "./protocol.js";
import { markOf, roleWords } from "./roles.js";
import { nickSpan } from "./render.js";

const $ = (id) => document.getElementById(id);

const LABELS = {
  op: "Op (make an op)",
  deop: "Deop (no longer an op)",
  voice: "Voice (may speak when moderated)",
  devoice: "Devoice",
  kick: "Kick…",
  ban: "Ban…",
};

export class Members {
  /**
   * @param {import("./chat.js").Chat} chat
   * @param {{openDm: (nick: string) => void}} page what a direct message does on the page
   */
  constructor(chat, page) {
    this.chat = chat;
    this.page = page;
    this.el = {
      list: $("member-list"), button: $("members-button"), count: $("member-count"), aside: $("members"),
      menu: $("member-menu"), title: $("member-menu-title"), role: $("member-menu-role"),
      actions: $("member-menu-actions"), reasonForm: $("reason-form"), reasonLabel: $("reason-label"),
      reason: $("reason-input"), reasonSubmit: $("reason-submit"), close: $("member-menu-close"),
    };
    this.target = null; // {conv, nick} while the menu is open
    this.pendingAction = null; // "kick" | "ban" while its reason is asked
    this.el.close.addEventListener("click", () => this.el.menu.close());
    $("reason-cancel").addEventListener("click", () => this._askReason(null));
    this.el.reasonForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const { conv, nick } = this.target ?? {};
      if (conv && this.pendingAction) this.chat.moderation.send(this.pendingAction, conv, nick, this.el.reason.value.trim());
      this.el.menu.close();
    });
    this.el.menu.addEventListener("close", () => {
      this.target = null;
      this._askReason(null);
    });
  }

  /** Show the members of the conversation on screen (none for a direct conversation). */
  render() {
    const conv = this.chat.current;
    this.el.list.textContent = "";
    const room = conv && conv.kind === "room";
    this.el.button.hidden = !room;
    this.el.aside.classList.toggle("empty", !room);
    if (!room) {
      this.el.count.textContent = "";
      return;
    }
    const nicks = conv.sortedMembers();
    this.el.count.textContent = String(nicks.length);
    this.el.button.setAttribute("aria-label", `Members (${nicks.length})`);
    for (const nick of nicks) this.el.list.append(this._entry(conv, nick));
    if (this.target && this.target.conv === conv && this.el.menu.open) this._fillMenu();
  }

  _entry(conv, nick) {
    const li = document.createElement("li");
    const role = conv.roles.roleOf(nick);
    const mark = document.createElement("span");
    mark.className = `mark role-${role}`; // not `member`: that is the entry's own class
    mark.textContent = markOf(role);
    mark.setAttribute("aria-hidden", "true");
    const parts = [mark, nickSpan(nick)];
    if (role === "owner") {
      const badge = document.createElement("span");
      badge.className = "role-badge";
      badge.textContent = "owner";
      parts.push(" ", badge);
    }
    const said = role === "member" ? "" : `, ${roleWords(role)}`;
    if (keyOf(nick) === keyOf(this.chat.nick)) {
      li.className = "member self";
      li.append(...parts, " (you)");
      li.setAttribute("aria-label", `${nick} (you)${said}`);
      return li;
    }
    const button = document.createElement("button");
    button.type = "button";
    button.className = "member";
    button.dataset.nick = nick;
    button.append(...parts);
    button.setAttribute("aria-label", `${nick}${said}: menu`);
    button.setAttribute("aria-haspopup", "dialog");
    button.title = `${nick}: a direct message${conv.roles.isOp(this.chat.nick) ? ", moderation" : ""}`;
    button.addEventListener("click", () => this.open(conv, nick));
    li.append(button);
    return li;
  }

  /** Open the menu for `nick` in `conv`. */
  open(conv, nick) {
    this.target = { conv, nick };
    this._fillMenu();
    if (!this.el.menu.open) this.el.menu.showModal();
  }

  _fillMenu() {
    const { conv, nick } = this.target;
    const role = conv.roles.roleOf(nick);
    this.el.title.textContent = "";
    this.el.title.append(nickSpan(nick));
    this.el.role.textContent = conv.roles.registered ? `${roleWords(role)} of ${conv.name}` : `in ${conv.name}`;
    this.el.actions.textContent = "";
    this._action("Send a direct message", () => {
      this.el.menu.close();
      this.page.openDm(nick);
    });
    for (const action of conv.roles.actionsOn(this.chat.nick, nick)) {
      if (action === "kick" || action === "ban") {
        this._action(LABELS[action], () => this._askReason(action), action);
      } else {
        this._action(LABELS[action], () => {
          this.chat.moderation.send(action, conv, nick);
          this.el.menu.close();
        }, action);
      }
    }
    for (const other of this.chat.conversations.values()) {
      const applies = other.kind === "room" && other.joined && other !== conv && other.roles.has("private")
        && other.roles.isOp(this.chat.nick) && !other.hasMember(nick);
      if (!applies) continue;
      this._action(`Invite to ${other.name}`, () => {
        this.chat.moderation.send("invite", other, nick);
        this.el.menu.close();
      }, "invite");
    }
  }

  _action(label, run, kind = "") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `button small menu-item ${kind}`;
    button.textContent = label;
    button.addEventListener("click", run);
    this.el.actions.append(button);
  }

  /** Ask for a kick's or a ban's reason (null: back to the menu). */
  _askReason(action) {
    this.pendingAction = action;
    this.el.reasonForm.hidden = action === null;
    this.el.actions.hidden = action !== null;
    if (action === null) return;
    const nick = this.target?.nick ?? "";
    this.el.reasonLabel.textContent = `Why ${action === "kick" ? "kick" : "ban"} ${nick}? (optional; everyone in the room sees it)`;
    this.el.reasonSubmit.textContent = action === "kick" ? `Kick ${nick}` : `Ban ${nick}`;
    this.el.reason.value = "";
    this.el.reason.focus();
  }
}
