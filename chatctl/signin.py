"""How `chatctl connect --login` (or `--register`) signs in to an account:
which line answers the server's `NICK`, what a refusal means, and when to
ask for a token to come back with (docs/protocol.md, "Accounts").

`SignIn` is pure: no sockets, no files, no terminal. The protocol session
(chatctl/session.py) asks it what to answer each `NICK` with and tells it of
`WELCOME`, `TOKEN` and the loss of the connection; the front ends get the
password (chatctl/credentials.py: a terminal without echo, or a 0600 file)
and keep the token in a 0600 file.

The order of preference, on every connection: `/resume <token>` when a
token is at hand (no password is needed, and a throttled account can still
come back); else `/register` the first time with `--register`; else
`/login` with the password. A refused token is dropped (and, when the server
says `token_invalid`, its file removed) and the password is used instead.
After a sign-in with a password the session asks for a token (`/remember`),
so that reconnecting needs no password; the password is then forgotten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from chatctl.render import sanitize

_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,256}")  # docs/protocol.md: 43 of these today

Method = Literal["resume", "login", "register"]


@dataclass(frozen=True)
class Answer:
    """What to do about a `NICK` in the sign-in step.

    `line`: the line to send (`/resume ...`, `/login ...`, `/register ...`);
    None: a password is needed first (or, with `final`, nothing will do).
    `forget_token`: the saved token was refused as unknown, expired or
    revoked: remove its file. `final`: the refusal is one that asking again
    cannot mend (a refused `/register`); `why` says so for the user.
    """

    line: str | None
    forget_token: bool = False
    final: bool = False
    why: str = ""


class SignIn:
    """The account to sign in to and what to sign in with.

    Args:
        account: the account's name, as the user typed it.
        password: the password, if already at hand (asked before connecting).
        token: a token saved by an earlier session.
        invite: `--register`: the invite code, or "*" (open registration);
            None: sign in to an existing account.
    """

    def __init__(
        self, account: str, *, password: str | None = None, token: str | None = None, invite: str | None = None
    ) -> None:
        self.account = account
        self.password = password
        self.token = token
        self.invite = invite
        self.offered: Method | None = None  # what answered the last NICK on this connection
        self.password_refused = False  # on this connection: asking the same source again is pointless
        self.remembering = False  # a /remember is on its way: its TOKEN is ours, never shown
        self.logging_out = False  # the user sent /logout: no reconnecting

    def answer(self, error: str) -> Answer:
        """The answer to a `NICK`; `error` is the `ERR` before it (`code text`, "" if none)."""
        code, _, text = error.partition(" ")
        offered, self.offered = self.offered, None
        forget = False
        if offered == "resume":
            forget = code == "token_invalid"
            self.token = None  # refused, whatever the reason: the password it is now
        elif offered == "register":
            return Answer(None, final=True, why=_refused("registering", self.account, code, text))
        elif offered == "login":
            self.password = None
            self.password_refused = True
        if self.token is not None:
            return Answer(self._offer("resume", f"/resume {self.token}"), forget)
        if self.password is None:
            return Answer(None, forget)
        if self.invite is not None:
            return Answer(self._offer("register", f"/register {self.account} {self.invite} {self.password}"), forget)
        return Answer(self._offer("login", f"/login {self.account} {self.password}"), forget)

    def with_password(self, password: str) -> str:
        """The line that signs in with `password`, given after a `None` answer."""
        self.password = password
        answer = self.answer("")
        assert answer.line is not None
        return answer.line

    def welcomed(self) -> list[str]:
        """`WELCOME`: the commands to send now: `/remember` after a sign-in
        with a password (a token for the next connection)."""
        offered, self.offered = self.offered, None
        self.password = None  # signed in: the token brings us back from now on
        self.invite = None  # registered: from now on the account exists
        if offered in ("login", "register"):
            self.remembering = True
            return ["/remember"]
        return []

    def remembered(self, rest: str) -> tuple[str, str] | None:
        """The `TOKEN <token> <expires>` that answers our `/remember`: (token,
        expires); None when it is not a token (then it is shown as it came)."""
        self.remembering = False
        token, _, expires = rest.partition(" ")
        if not _TOKEN.fullmatch(token):
            return None
        self.token = token
        return token, expires

    def refusal(self, error: str) -> str:
        """Why signing in stopped, when no password is at hand (script mode)."""
        code, _, text = error.partition(" ")
        if code == "token_invalid":
            return (
                f"the saved token for {self.account} was refused ({sanitize(text) or 'unknown, expired or revoked'}) "
                "and there is no password to sign in with; pass --password-file, or sign in on a terminal"
            )
        if not error:
            return f"signing in as {self.account} needs a password: pass --password-file PATH (mode 0600)"
        return _refused("signing in as", self.account, code, text)

    def connection_lost(self) -> None:
        self.offered = None
        self.password_refused = False
        self.remembering = False

    def _offer(self, method: Method, line: str) -> str:
        self.offered = method
        return line


def _refused(what: str, account: str, code: str, text: str) -> str:
    detail = f": {sanitize(text)}" if text else ""
    return f"{what} {account} was refused ({sanitize(code)}{detail})"
