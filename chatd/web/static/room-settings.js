// The room settings panel (the header's "Room settings"), a modal <dialog> for
// the room on screen: whether it is registered and to whom; for a signed-in
// member of a room nobody registered, registering it; its flags (switches the
// owner turns on and off, read-only for the others); for ops and the owner,
// an invite, a ban, and the list of bans with Unban; for the owner, handing
// the room over and dropping its registration. It sends through
// moderation.js, and shows again whenever the room's roles or flags change.

import { FLAG_LABELS, FLAG_NAMES } from "./roles.js";

const $ = (id) => document.getElementById(id);

export class RoomSettings {
  /** @param {import("./chat.js").Chat} chat */
  constructor(chat) {
    this.chat = chat;
    this.el = {
      dialog: $("room-settings"), title: $("settings-title"), summary: $("settings-summary"),
      register: $("register-button"), registerHint: $("register-hint"), flags: $("settings-flags"),
      opTools: $("settings-op"), ownerTools: $("settings-owner"), inviteForm: $("invite-form"),
      inviteNick: $("invite-nick"), banForm: $("ban-form"), banMask: $("ban-mask"), banReason: $("ban-reason"),
      bansButton: $("bans-button"), banList: $("ban-list"), ownerForm: $("owner-form"),
      ownerNick: $("owner-nick"), drop: $("drop-button"), error: $("settings-error"),
    };
    this.conv = null;
    this.dropArmed = false; // "Drop" asks once more before it sends
    this.boxes = new Map(FLAG_NAMES.map((flag) => [flag, this._flagBox(flag)]));
    $("settings-close").addEventListener("click", () => this.el.dialog.close());
    this.el.dialog.addEventListener("close", () => {
      this.conv = null;
    });
    this.el.register.addEventListener("click", () => this.chat.moderation.register(this.conv));
    this._form(this.el.inviteForm, () => this._send("invite", this.el.inviteNick));
    this._form(this.el.banForm, () => {
      this._send("ban", this.el.banMask, this.el.banReason.value.trim());
      this.el.banReason.value = "";
    });
    this._form(this.el.ownerForm, () => this._send("room", this.el.ownerNick, null, "owner"));
    this.el.bansButton.addEventListener("click", () => this.chat.moderation.listBans(this.conv));
    this.el.drop.addEventListener("click", () => {
      if (!this.dropArmed) {
        this._armDrop(true);
        return;
      }
      this._armDrop(false);
      this.chat.moderation.drop(this.conv);
    });
  }

  /** Open the panel for a joined room. */
  open(conv) {
    this.conv = conv;
    this.el.error.textContent = "";
    this.el.banList.textContent = "";
    this._armDrop(false);
    this.render(conv);
    this.el.dialog.showModal();
    if (conv.roles.isOp(this.chat.nick)) this.chat.moderation.listBans(conv);
  }

  /** The room's registration changed (or another room's: then nothing to do). */
  render(conv) {
    if (conv !== this.conv) return;
    const roles = conv.roles;
    const me = this.chat.nick;
    const owner = roles.isOwner(me);
    this.el.title.textContent = `${conv.name} settings`;
    this.el.summary.textContent = !roles.registered ? `Nobody registered ${conv.name}: no roles, anyone sets the topic.`
      : owner ? `You own ${conv.name}.`
        : roles.owner ? `${conv.name} is registered to ${roles.owner}.` : `${conv.name} is registered.`;
    this.el.register.hidden = roles.registered || !this.chat.onAccount;
    this.el.registerHint.textContent = roles.registered ? ""
      : this.chat.onAccount ? "Registering makes you its owner: you give roles, set flags, kick and ban."
        : "Sign in to an account to register this room.";
    this.el.flags.hidden = !roles.registered;
    for (const [flag, box] of this.boxes) {
      box.checked = roles.has(flag);
      box.disabled = !owner;
    }
    this.el.opTools.hidden = !roles.isOp(me);
    this.el.ownerTools.hidden = !owner;
  }

  /** `BAN` lines of a `/bans` this panel asked for (moderation.js). */
  bans(conv, list) {
    if (conv !== this.conv) return;
    this.el.banList.textContent = "";
    if (!list.length) {
      const li = document.createElement("li");
      li.className = "hint";
      li.textContent = "Nobody is banned.";
      this.el.banList.append(li);
    }
    for (const ban of list) {
      const li = document.createElement("li");
      const what = document.createElement("span");
      what.className = "ban-mask";
      what.textContent = ban.mask;
      const who = document.createElement("span");
      who.className = "hint";
      who.textContent = ` by ${ban.by === "*" ? "the operator" : ban.by}${ban.reason ? `: ${ban.reason}` : ""}`;
      const unban = document.createElement("button");
      unban.type = "button";
      unban.className = "button small";
      unban.textContent = "Unban";
      unban.setAttribute("aria-label", `Unban ${ban.mask}`);
      unban.addEventListener("click", () => {
        this.chat.moderation.send("unban", conv, ban.mask);
        this.chat.moderation.listBans(conv);
      });
      li.append(what, who, " ", unban);
      this.el.banList.append(li);
    }
  }

  /** A refusal (ERR) while the panel is open: said here, where the person looks; a flag refused turns back. */
  refused(words) {
    if (!this.el.dialog.open || !this.conv) return;
    this.el.error.textContent = words;
    this.render(this.conv);
  }

  /** One flag's switch; it shows what the server last said (FLAG), and asks it for a change. */
  _flagBox(flag) {
    const label = document.createElement("label");
    label.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = flag;
    box.addEventListener("change", () => {
      this.el.error.textContent = "";
      if (this.conv) this.chat.moderation.setFlag(this.conv, flag, box.checked);
    });
    label.append(box, ` ${FLAG_LABELS[flag]}`);
    this.el.flags.append(label);
    return box;
  }

  _armDrop(armed) {
    this.dropArmed = armed;
    this.el.drop.textContent = armed && this.conv
      ? `Really drop ${this.conv.name}'s registration? Its roles, flags and bans go`
      : "Drop the registration";
  }

  _form(form, run) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.el.error.textContent = "";
      if (this.conv) run();
    });
  }

  /** `/<verb> <room> [<word>] <field's value> [<text>]`, then the field empties. */
  _send(verb, field, text = null, word = null) {
    const value = field.value.trim();
    if (!value) {
      field.focus();
      return;
    }
    this.chat.moderation.send(verb, this.conv, ...(word ? [word] : []), value, text ?? "");
    field.value = "";
    if (verb === "ban") this.chat.moderation.listBans(this.conv);
  }
}
