// Signing in (docs/protocol.md, "Accounts"): what the page answers the
// server's NICK with (a guest's nickname, `/login`, `/register` or `/resume`),
// what the server's ACCOUNTS line allows, and the sign-in token: kept in
// sessionStorage, or in localStorage with "Remember me". No DOM and no socket
// here: chat.js asks and sends, signin-screen.js is the form.
//
// The password is kept nowhere: it travels in the one line that answers NICK,
// and is held in memory only until that line is sent. What the browser keeps
// is the token `/remember` gave (the server stores only its hash; `/logout`
// and the operator revoke it), and, for a guest or with "Remember me", the
// nickname.

import { local, session } from "./storage.js";

// A token kept only for this tab (sessionStorage) lasts a day: closing the tab
// forgets it here, and the server lets go of it soon after. "Remember me"
// takes the server's default (accounts.token_days).
const TAB_TOKEN_DAYS = 1;
const GHOST_RETRIES = 4; // nick_taken on an automatic guest try: our own previous connection may linger

// The ERR codes that refuse an answer to NICK (then the server asks NICK
// again, or says BYE: `banned`, `nick_failed`).
const REFUSALS = new Set([
  "nick_invalid", "nick_taken", "nick_registered", "login_required", "auth_failed", "auth_throttled",
  "auth_busy", "account_disabled", "registration_closed", "invite_invalid", "password_invalid",
  "token_invalid", "banned",
]);

/** What a server without an ACCOUNTS line allows: guests only (v3). */
const NO_ACCOUNTS = { accounts: false, registration: "closed", guests: true };

export class SignIn {
  constructor() {
    this.nick = local.get("nick", ""); // a guest's nickname, or a remembered account's
    this.isAccount = local.get("account", false); // then the nickname is never tried as a guest
    // What the server allows; `known` once a NICK came (until then the form assumes guests and accounts).
    this.modes = { known: false, accounts: true, registration: "closed", guests: true };
    this.next = null; // the modes being told, between HELLO and NICK
    this.request = null; // what to answer the next NICK with: {kind, nick, line, automatic, remember, secret}
    this.sent = null; // the request answered, without its line, until WELCOME or a refusal
    this.method = null; // how the person is signed in: "guest" | "password" | "token" | null
    this.remember = false; // where the TOKEN the page asks for goes
    this.awaitingToken = false;
    this.ghostTries = 0;
  }

  /** Is `code`, before WELCOME, a refusal of what answered NICK? */
  static refuses(code) {
    return REFUSALS.has(code);
  }

  // ---- what the server says ----------------------------------------------------

  /** HELLO: an ACCOUNTS line may follow; without one, the server has no accounts. */
  greeted() {
    this.next = { ...NO_ACCOUNTS };
  }

  /** ACCOUNTS registration=... guests=...; keys this page does not know are ignored. */
  accounts(args) {
    const modes = { accounts: true, registration: "closed", guests: true };
    for (const pair of args) {
      const eq = pair.indexOf("=");
      const key = pair.slice(0, eq), value = pair.slice(eq + 1);
      if (key === "registration" && ["open", "invite", "closed"].includes(value)) modes.registration = value;
      else if (key === "guests") modes.guests = value !== "no";
    }
    this.next = modes;
  }

  /** NICK: the modes are complete; returns them. */
  asked() {
    if (this.next) this.modes = { ...this.next, known: true };
    this.next = null;
    return this.modes;
  }

  // ---- what the person asks for --------------------------------------------------

  /** Join as a guest (typed now, or the remembered nickname when `automatic`). */
  asGuest(nick, automatic = false) {
    this._ask({ kind: "guest", nick, line: nick, automatic });
  }

  /** Sign in to an account with its password. */
  login(nick, password, remember) {
    this._ask({ kind: "password", nick, line: `/login ${nick} ${password}`, remember, secret: true });
  }

  /** Create an account (`code`: the invite code, or "" where registration is open). */
  register(nick, code, password, remember) {
    const line = `/register ${nick} ${code || "*"} ${password}`;
    this._ask({ kind: "register", nick, line, remember, secret: true });
  }

  /** Sign in again with the kept token; false when there is none. */
  resume(automatic = true) {
    const kept = this.token;
    if (!kept) return false;
    this._ask({ kind: "token", nick: kept.nick, line: `/resume ${kept.token}`, automatic });
    return true;
  }

  _ask(request) {
    this.request = request;
    this.sent = null;
    this.ghostTries = 0;
  }

  /** Something waits to be sent at the next NICK. */
  get pending() {
    return this.request !== null;
  }

  /** The line that answers NICK, or null. A line with a password is given out once. */
  answer() {
    const request = this.request;
    if (!request) return null;
    this.sent = { ...request, line: null };
    if (request.secret) this.request = null;
    return request.line;
  }

  // ---- verdicts -------------------------------------------------------------------

  /** WELCOME <nick>: returns the line to send next (`/remember` after a password), or null. */
  welcomed(nick) {
    const how = this.sent ?? this.request ?? { kind: "guest" };
    this.request = this.sent = null;
    this.nick = nick;
    if (how.kind === "guest") {
      this.method = "guest";
      this.forget(); // not that account any more
      this._keepNick(nick, false);
      return null;
    }
    if (how.kind === "token") {
      this.method = "token";
      return null;
    }
    this.method = "password";
    this.remember = Boolean(how.remember);
    this.awaitingToken = true;
    // Without "Remember me" nothing about the account outlives the tab.
    this._keepNick(this.remember ? nick : null, this.remember);
    return this.remember ? "/remember" : `/remember ${TAB_TOKEN_DAYS}`;
  }

  /** TOKEN <token> <expires>: kept if the page asked for it; false when the person did (a typed /remember). */
  tokenGiven(token, expires) {
    if (!this.awaitingToken) return false;
    this.awaitingToken = false;
    const [keep, drop] = this.remember ? [local, session] : [session, local];
    drop.set("token", null);
    keep.set("token", { token, nick: this.nick, expires });
    return true;
  }

  /**
   * ERR <code> refused what answered NICK (or the page did not send it: `no_accounts`).
   * @returns {"retry"|"ask"} the same answer again shortly (our own previous
   *          connection still holds the nickname), or the person must answer
   */
  refused(code) {
    const sent = this.sent ?? this.request;
    this.sent = null;
    if (code === "nick_taken" && sent?.kind === "guest" && sent.automatic && this.ghostTries < GHOST_RETRIES) {
      this.ghostTries += 1;
      return "retry";
    }
    if (sent?.kind === "token" || code === "account_disabled" || code === "banned") this.forget();
    this.request = null;
    this.method = null;
    return "ask";
  }

  /**
   * The connection was lost: sets up the answer that signs in again by itself.
   * @returns {"auto"|"cut"|"ask"|"idle"} signing in again by itself; a password
   *          check was cut short (the person sends it again); signed in, but only
   *          the person can sign in again (no token); not signing in at all
   */
  again() {
    if (this.sent?.secret) {
      this.sent = null;
      return "cut";
    }
    if (this.request) return "auto"; // a guest's nickname or a token, sent again at the next NICK
    if (this.method === "guest") {
      this.asGuest(this.nick, true);
      return "auto";
    }
    if (this.method) return this.resume(true) ? "auto" : "ask";
    return "idle";
  }

  /** RENAME of our own nickname (for an account, a change of case). */
  renamed(nick) {
    this.nick = nick;
    if (local.get("nick", null) !== null) local.set("nick", nick);
  }

  /** The person signed out (or the server ended the sign-in): nothing of the account is kept. */
  signedOut() {
    this.forget();
    this.method = null;
    this.request = this.sent = null;
    if (this.isAccount) this._keepNick(null, false);
  }

  // ---- what the browser keeps ------------------------------------------------------

  /** The kept token {token, nick, expires}, or null; an expired one is dropped. */
  get token() {
    const kept = session.get("token", null) ?? local.get("token", null);
    if (!kept || typeof kept.token !== "string") return null;
    if (!(Date.parse(kept.expires) > Date.now())) {
      this.forget();
      return null;
    }
    return kept;
  }

  forget() {
    session.set("token", null);
    local.set("token", null);
  }

  _keepNick(nick, isAccount) {
    this.isAccount = isAccount;
    local.set("nick", nick);
    local.set("account", isAccount || null);
  }
}
