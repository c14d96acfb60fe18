// The sign-in screen: a nickname, a password (optional where the server takes
// guests: docs/protocol.md, "Accounts"), "Remember me", and a mode that
// creates an account, with the invite code of an invite link
// (`https://host:port/#invite=CODE`) filled in. It follows what the server
// allows (the modes signin.js read from ACCOUNTS) and shows each refusal next
// to the field it is about. What is sent and what is kept are signin.js's and
// chat.js's; the chat itself is app.js's.

import { NICK_RE } from "./protocol.js";

const $ = (id) => document.getElementById(id);

// Where a refusal is shown (the form's own message otherwise)...
const FIELD = {
  nick_taken: "nick", nick_invalid: "nick", nick_registered: "nick", nick_failed: "nick",
  auth_failed: "password", password_invalid: "password", invite_invalid: "invite",
};
// ... and in whose words: these, or the server's text (written for people: it
// says when to try again, or the operator's reason).
const WORDS = {
  nick_taken: "That nickname is taken. Choose another.",
  nick_invalid: "Not a valid nickname: use letters, digits, _ and -.",
  nick_registered: "That nickname is a registered account: type its password to sign in, or choose another nickname.",
  nick_failed: "Too many refused tries. Check what you typed and try again.",
  register_timeout: "That took too long. Try again.",
  token_invalid: "Your sign-in has expired or was revoked. Sign in again.",
};

export class SignInScreen {
  /**
   * @param {import("./chat.js").Chat} chat
   * @param {() => void} hideChat called when the screen takes the chat's place
   */
  constructor(chat, hideChat) {
    this.chat = chat;
    this.hideChat = hideChat;
    this.el = {
      screen: $("login"), form: $("login-form"), intro: $("login-intro"), message: $("login-message"),
      nick: $("nick-input"), nickError: $("nick-error"),
      passwordField: $("password-field"), password: $("password-input"), passwordHelp: $("password-help"),
      passwordError: $("password-error"),
      againField: $("again-field"), again: $("again-input"), againError: $("again-error"),
      inviteField: $("invite-field"), invite: $("invite-input"), inviteError: $("invite-error"),
      rememberField: $("remember-field"), remember: $("remember-input"),
      button: $("login-button"), status: $("login-status"), modeButton: $("mode-button"),
    };
    this.creating = false; // the mode that creates an account
    this.invite = ""; // the code of the invite link the page was opened with
    this.modes = chat.signin.modes;
    this.el.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this._submit();
    });
    this.el.password.addEventListener("input", () => this._label());
    this.el.modeButton.addEventListener("click", () => {
      this.creating = !this.creating;
      this._clearErrors();
      this.el.message.textContent = "";
      this._render();
      this._focus();
    });
    this._render();
  }

  get shown() {
    return !this.el.screen.hidden;
  }

  /**
   * The code of an invite link (`#invite=CODE`), taken out of the address bar
   * so that it is not bookmarked or passed on (a fragment never reaches a
   * request line). The screen is then in the mode that creates an account.
   * @returns {string} the code, or "" when the page was opened without one
   */
  takeInvite() {
    const code = new URLSearchParams(location.hash.slice(1)).get("invite");
    if (code === null) return "";
    history.replaceState(null, "", location.pathname + location.search);
    this.invite = code.replace(/\s+/g, "");
    this.el.invite.value = this.invite;
    this.creating = true;
    this._render();
    return this.invite;
  }

  /** Show the screen (in place of the chat), with `message` above the form. */
  show(message = "") {
    this.hideChat();
    this._clearErrors();
    this.el.screen.hidden = false;
    this.el.button.disabled = false;
    this.el.status.textContent = "";
    this.el.message.textContent = message;
    if (!this.el.nick.value) this.el.nick.value = this.chat.nick;
    this._focus();
  }

  /** Signed in: the screen goes, and the passwords typed in it with it. */
  signedIn() {
    this.el.screen.hidden = true;
    this._clearErrors();
    this.el.message.textContent = "";
    this.el.status.textContent = "";
    this.el.password.value = "";
    this.el.again.value = "";
    this.el.invite.value = this.invite = ""; // used (an invite is good for its uses only)
    this.el.button.disabled = false;
    this.creating = false;
    this._render();
  }

  /** A line under the button: connecting, trying again. */
  status(text) {
    this.el.status.textContent = text;
  }

  /** What the server allows (signin.js's modes, from ACCOUNTS). */
  setModes(modes) {
    this.modes = modes;
    if (this.creating && modes.known && (!modes.accounts || modes.registration === "closed")) {
      this.creating = false;
      this.el.message.textContent = "This server does not take new accounts: ask its operator for one.";
    }
    this._render();
  }

  /**
   * A refusal (an ERR code, or a reason of ours such as `connection_lost`).
   * @param {string} code
   * @param {string|null} text the server's words; null keeps the message shown (a BYE after its ERR)
   */
  error(code, text) {
    if (text === null) {
      this.show(this.el.message.textContent);
      return;
    }
    this.show();
    const words = WORDS[code] ?? (text || code.replaceAll("_", " "));
    let field = FIELD[code] ?? null;
    if (field && this.el[`${field}Field`]?.hidden) field = null;
    if (code === "auth_failed") this.el.password.value = "";
    if (field) this._fieldError(field, words);
    else this.el.message.textContent = words;
    if ((code === "nick_registered" || code === "login_required") && !this.el.passwordField.hidden) {
      this.el.password.focus();
    }
  }

  // ---- the form --------------------------------------------------------------

  _render() {
    const { known, accounts, registration, guests } = this.modes;
    const el = this.el, creating = this.creating;
    el.passwordField.hidden = !accounts;
    el.rememberField.hidden = !accounts;
    el.againField.hidden = !creating;
    el.inviteField.hidden = !creating || (known ? registration !== "invite" : !this.invite);
    el.password.setAttribute("autocomplete", creating ? "new-password" : "current-password");
    el.intro.textContent = creating ? "Create an account: choose a nickname and a password."
      : !accounts ? "Choose a nickname to join the chat."
      : guests ? "Choose a nickname to join, or sign in to your account."
      : "Sign in to join the chat: this server is for its members.";
    el.passwordHelp.textContent = creating ? "A few words are easy to remember and hard to guess."
      : guests ? "Only for a registered nickname: leave it empty to join as a guest." : "";
    el.modeButton.hidden = !accounts || !(creating || (known && registration !== "closed"));
    el.modeButton.textContent = creating ? "I already have an account" : "Create an account";
    this._label();
  }

  _label() {
    const { accounts, guests } = this.modes;
    this.el.button.textContent = this.creating ? "Create account"
      : accounts && (this.el.password.value || !guests) ? "Sign in" : "Join";
  }

  _submit() {
    const el = this.el, signin = this.chat.signin;
    this._clearErrors();
    el.message.textContent = "";
    const nick = el.nick.value.trim();
    if (!NICK_RE.test(nick)) {
      this._fieldError("nick", nick ? "Use letters, digits, _ and - (up to 32)." : "Type a nickname first.");
      return;
    }
    const password = el.password.value;
    const remember = el.remember.checked;
    if (this.creating) {
      const code = el.invite.value.replace(/\s+/g, "");
      if (!password) return this._fieldError("password", "Choose a password.");
      if (password !== el.again.value) return this._fieldError("again", "The two passwords differ.");
      if (!el.inviteField.hidden && !code) return this._fieldError("invite", "Type your invite code.");
      signin.register(nick, el.inviteField.hidden ? "" : code, password, remember);
    } else if (password && this.modes.accounts) {
      signin.login(nick, password, remember);
    } else if (this.modes.accounts && !this.modes.guests) {
      return this._fieldError("password", "Type your password: this server takes no guests.");
    } else {
      signin.asGuest(nick);
    }
    el.status.textContent = this.creating ? "Creating your account…" : "Signing in…";
    el.button.disabled = true;
    this.chat.signIn();
  }

  _fieldError(field, text) {
    const input = this.el[field];
    this.el[`${field}Error`].textContent = text;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    input.select();
  }

  _clearErrors() {
    for (const field of ["nick", "password", "again", "invite"]) {
      this.el[`${field}Error`].textContent = "";
      this.el[field].removeAttribute("aria-invalid");
    }
  }

  _focus() {
    const el = this.el;
    if (!el.nick.value) el.nick.focus();
    else if (!el.passwordField.hidden && (this.creating || this.chat.signin.isAccount)) el.password.focus();
    else el.nick.focus();
  }
}
