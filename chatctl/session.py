"""The protocol session of `chatctl connect`, the same in both of its modes:
server lines in, actions out. No sockets, no terminal, no clock of its own.

`Session.feed(line, now)` takes every server line, in order, and answers with
the actions it calls for, in order:

- `Send(text)`: a line to send to the server;
- `Shown(line, quiet)` (chatctl/timeline.py): a line to show: with `follow`,
  as the `Timeline` decides (each event once, in order, the acknowledgements
  of the client's own commands left out); without, every line as it came;
- `Page`: older events of a room, for the scroll-back view;
- `CaughtUp(room, missed)`, `Incomplete(room)`: a room's catch-up after a
  reconnect is over, or could not be completed;
- `NickNeeded(refused, error)`: the server asks for a nickname and the
  session has none to offer (the one it offered, `refused`, was refused);
- `PasswordNeeded(account, error, refused)`: signing in to an account
  (chatctl/signin.py) needs a password the session does not have;
- `KeepToken(token, expires)`: a token to keep for signing in next time, or
  (`token` None) one to forget: the server refused it or `/logout` revoked it;
- `Ended(outcome)`: a `BYE` that ends the session.

The rest comes in through methods: `command()` (a line the user typed, or a
key stood for: held until the session is ready for it), `offer_nick()`,
`offer_password()`, `push()` (the client's own commands), `quit()`, and `closed()` when the
connection ends, which answers `Ended` or `Lost` (dial again: the session
has already forgotten the connection).

What the session does (docs/client.md):

- Registration: the nickname goes out when the server asks (`NICK`); a second
  `NICK` means it was refused. Lines typed before `WELCOME` are held. With an
  account (`SignIn`), the answer is `/resume`, `/register` or `/login`
  instead, and after a password `/remember` asks for a token, whose `TOKEN`
  line is kept (`KeepToken`) and never shown.
- Restore after a reconnect (`Restore`, chatctl/reconnect.py): once the
  server's autojoin is over, join the rooms again in their old order, make the
  old current room current, keep their order; each room catches up on its own
  (chatctl/timeline.py). Lines typed meanwhile are held until it is done.
- Pacing: the client's own commands go through the `Outbox`
  (chatctl/reconnect.py), a few at a time, each batch acknowledged by the
  `PONG` of a `/ping`, so that the server's flood control never drops one.
  Pacing waits for acknowledgements, never for time.
- The reconnect reset: what belonged to the connection is forgotten, the
  nickname the server gave is kept for the next registration.

`now` (seconds on a monotonic clock) is passed to `feed()`: `WELCOME` notes
it in `attempts` (chatctl/reconnect.py `Attempts`), so that a connection
that stayed up long enough starts the backoff afresh. How lines look, when
to dial and how long to wait for `BYE` belong to the front ends
(chatctl/interactive.py, chatctl/script.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from chatctl.connection import ClientError, Exit, Outcome, bye_outcome, dropped_outcome
from chatctl.reconnect import Attempts, Outbox, Restore, reconnects_after_bye
from chatctl.render import BYE_WORDS
from chatctl.signin import SignIn
from chatctl.state import ClientState, split_line
from chatctl.timeline import Page, Shown, Timeline

__all__ = [
    "Action",
    "CaughtUp",
    "Ended",
    "Incomplete",
    "KeepToken",
    "Lost",
    "NickNeeded",
    "Page",
    "PasswordNeeded",
    "Send",
    "Session",
    "Shown",
]


@dataclass(frozen=True)
class Send:
    """A line to send to the server."""

    text: str


@dataclass(frozen=True)
class CaughtUp:
    """A room has shown everything said while the client was away."""

    room: str
    missed: int  # events shown that were said meanwhile


@dataclass(frozen=True)
class Incomplete:
    """A room could not catch up on everything said while the client was away."""

    room: str


@dataclass(frozen=True)
class NickNeeded:
    """The server asks for a nickname and the session has none to offer."""

    refused: str | None  # the nickname it refused; None when none was offered yet
    error: str  # the last `ERR` before it (`code text`), "" if none


@dataclass(frozen=True)
class PasswordNeeded:
    """Signing in to `account` needs a password (none at hand, or the last one refused)."""

    account: str
    error: str  # the last `ERR` before it (`code text`), "" if none
    refused: bool  # a password was refused on this connection


@dataclass(frozen=True)
class KeepToken:
    """Keep `token` (valid until `expires`) for signing in next time; None: forget the kept one."""

    token: str | None
    expires: str = ""


@dataclass(frozen=True)
class Ended:
    """The session is over; `outcome` says how."""

    outcome: Outcome


@dataclass(frozen=True)
class Lost:
    """The connection is gone and worth dialling again; `why` is worded for the user."""

    why: str


Action = Send | Shown | Page | CaughtUp | Incomplete | NickNeeded | PasswordNeeded | KeepToken | Ended


class Session:
    """One `chatctl connect` session, over as many connections as it takes.

    Args:
        nick: the nickname to register with; None: ask (`NickNeeded`).
        follow: show lines as the `Timeline` decides, and keep what the
            catch-up and the scroll-back view need; False: every line as it
            came (script mode without `--reconnect`).
        reconnect: a lost connection is worth dialling again (needs `follow`).
        signin: sign in to this account instead of registering `nick`.
    """

    def __init__(
        self, nick: str | None, *, follow: bool = True, reconnect: bool = False, signin: SignIn | None = None
    ) -> None:
        if reconnect and not follow:
            raise ValueError("reconnecting needs follow: the catch-up is the timeline's")
        self.state = ClientState()
        self.timeline = Timeline()
        self.outbox = Outbox()
        self.attempts = Attempts()
        self.nick = nick  # the one to register with; after a reconnect, the one the server gave
        self.follow = follow
        self.reconnect = reconnect
        self.registered_once = False  # reconnecting starts only after a first registration
        self.quitting = False  # `/quit` was sent: no reconnecting
        self.needs_nick = False  # a `NickNeeded` waits for `offer_nick()`
        self.signin = signin
        self.needs_password = False  # a `PasswordNeeded` waits for `offer_password()`
        self._accounts = False  # the server said `ACCOUNTS` on this connection
        self.bye: str | None = None  # the reason of the BYE received on this connection
        self._nick_offered = False  # a nickname was sent: the next NICK means it was refused
        self._last_error = ""
        self._restore: Restore | None = None
        self._held: list[str] = []  # typed before registration (or the rooms' restore), sent after
        self._after_bye: Outcome | None = None  # why we are leaving, if not because we were asked to

    @property
    def ready(self) -> bool:
        """Registered, and the rooms are back as they were: a typed line goes where it was meant to."""
        return self.state.registered and (self._restore is None or self._restore.done)

    # -- what the server says --------------------------------------------------------

    def feed(self, line: str, now: float) -> list[Action]:
        """Take in one server line (every one, in order); `now` on a monotonic clock."""
        verb, rest = split_line(line)
        if verb == "TOKEN" and self.signin is not None and self.signin.remembering:
            kept = self.signin.remembered(rest)
            if kept is not None:  # the answer to our /remember: kept, never shown
                return [KeepToken(*kept)]
        self.state.on_line(line)
        actions: list[Action] = []
        if self.follow:
            self._follow(line, verb, rest, actions)
        else:
            actions.append(Shown(line))
        if verb == "NICK":
            actions += self._on_nick()
        elif verb == "WELCOME":
            self.needs_nick = self.needs_password = False
            self.registered_once = True
            self.attempts.registered(now)
            if self.signin is not None:
                actions += [Send(text) for text in self.signin.welcomed()]
        elif verb == "ERR":
            self._last_error = rest
        elif verb == "ACCOUNTS":
            self._accounts = True
        elif verb == "BYE":
            self.bye = rest
            if self.signin is not None and rest.partition(" ")[0] == "logout":
                actions.append(KeepToken(None))  # revoked by the server: no use keeping it
            outcome = self._bye_ends(rest)
            if outcome is not None:
                actions.append(Ended(outcome))
        if self._held and self.ready:
            held, self._held = self._held, []
            for text in held:
                actions += self._command(text)
        return actions

    def _follow(self, line: str, verb: str, rest: str, actions: list[Action]) -> None:
        """The timeline decides what is shown; the restore and the catch-up send
        their commands through the outbox."""
        step = self.timeline.feed(line, self.state.nick, self.outbox.history_in_flight)
        restore = self._restore
        restoring = restore is not None and not restore.done
        ours = self.outbox.on_pong(rest) if verb == "PONG" else None
        if ours is None:  # the acknowledgement of our own commands is not shown
            actions += step.show
        actions += step.pages
        for command in step.send:
            actions += self.push(command)
        if ours is not None:
            commands, lines = ours
            self.timeline.acked(commands)
            if restore is not None:
                restore.acked(commands)
            actions += [Send(text) for text in lines]
        if restore is not None and not restore.sent:
            for command in restore.on_line(verb, rest, self.state):
                actions += self.push(command)
        if restoring and restore is not None and restore.done:
            self.state.reorder(restore.rooms)
            self.timeline.forget_catch_up()
        actions += [CaughtUp(room, missed) for room, missed in step.caught_up]
        actions += [Incomplete(room) for room in step.incomplete]

    def _on_nick(self) -> list[Action]:
        if self.signin is not None:
            return self._sign_in()
        if self.nick is not None and not self._nick_offered:
            self._nick_offered = True
            return [Send(self.nick)]
        self.needs_nick = True
        return [NickNeeded(self.nick if self._nick_offered else None, self._last_error)]

    def _sign_in(self) -> list[Action]:
        """The answer to `NICK` for an account (chatctl/signin.py)."""
        assert self.signin is not None
        if not self._accounts:
            # A server without accounts would take `/login alice <password>` for
            # a nickname, and might log it: the password is never sent there.
            why = "this server has no accounts (it said no ACCOUNTS before NICK); connect with --nick instead"
            return [Ended(Outcome(Exit.NICK_REFUSED, why))]
        answer = self.signin.answer(self._last_error)
        actions: list[Action] = [KeepToken(None)] if answer.forget_token else []
        if answer.line is not None:
            return [*actions, Send(answer.line)]
        if answer.final:
            return [*actions, Ended(Outcome(Exit.NICK_REFUSED, answer.why))]
        self.needs_password = True
        return [*actions, PasswordNeeded(self.signin.account, self._last_error, self.signin.password_refused)]

    def _bye_ends(self, reason: str) -> Outcome | None:
        """What a `BYE <reason>` ends the session with; None: the close that
        follows is where reconnecting starts."""
        if self._after_bye is not None and self._after_bye.status != Exit.OK:
            return self._after_bye  # we asked to leave because of an error: report that
        if self._may_reconnect():
            return None
        return bye_outcome(reason)

    def _may_reconnect(self) -> bool:
        return (
            self.reconnect
            and self.registered_once
            and not self.quitting
            and not (self.signin is not None and self.signin.logging_out)
            and (self.bye is None or reconnects_after_bye(self.bye))
        )

    # -- what the user does ----------------------------------------------------------

    def command(self, text: str) -> list[Send]:
        """A line the user typed (or a key stood for): sent once the session is
        `ready`, so that the server never takes it for a nickname and it never
        goes to a room that is not back yet."""
        if not self.ready:
            self._held.append(text)
            return []
        return self._command(text)

    def _command(self, text: str) -> list[Send]:
        if self.signin is not None and text.split(" ", 1)[0] == "/logout":
            self.signin.logging_out = True  # BYE logout ends the session; its token is forgotten then
        self.state.on_command(text)
        if self.follow:
            self.timeline.on_command(text)
        return [Send(text)]

    def offer_nick(self, nick: str) -> list[Send]:
        """The user's answer to `NickNeeded`; a later `NICK` means it was refused too."""
        self.needs_nick = False
        self.nick = nick
        self._nick_offered = True
        return [Send(nick)]

    def offer_password(self, password: str) -> list[Send]:
        """The user's answer to `PasswordNeeded`; a later `NICK` means it was refused."""
        assert self.signin is not None
        self.needs_password = False
        return [Send(self.signin.with_password(password))]

    def push(self, command: str) -> list[Send]:
        """One of the client's own commands (the restore's, the catch-up's, the
        scroll-back view's), paced by the outbox."""
        self.state.on_command(command)
        return [Send(text) for text in self.outbox.push(command)]

    def quit(self, text: str = "/quit", then: Outcome | None = None) -> list[Send]:
        """Leave: `text` (a `/quit`) is sent once, even before registration (the
        server answers `BYE quit`). `then`: the outcome to end with instead of
        what the `BYE` says, when it is not `Exit.OK`."""
        self._after_bye = then
        if self.quitting:
            return []
        self.quitting = True
        return [Send(text)]

    # -- the connection ends -------------------------------------------------------------

    def closed(self, error: ClientError | None) -> Ended | Lost:
        """The connection ended: `error` is how it failed, None when the server closed it.

        Returns:
            `Lost` when it is worth dialling again: the session has forgotten
            the connection and restores the rooms on the next one; else `Ended`.
        """
        bye = self.bye
        if self._after_bye is not None and self._after_bye.status != Exit.OK:
            return Ended(self._after_bye)
        if not self._may_reconnect():
            if bye is not None and (error is None or not reconnects_after_bye(bye)):
                return Ended(bye_outcome(bye))
            return Ended(Outcome(error.status, error.message) if error is not None else dropped_outcome())
        if bye is not None:
            why = BYE_WORDS.get(bye.partition(" ")[0], bye)
        elif error is not None:
            why = error.message.removesuffix("; try connecting again")
        else:
            why = "the server closed the connection without saying why"
        self._connection_lost()
        return Lost(why)

    def _connection_lost(self) -> None:
        """Remember where the session was and forget the connection."""
        self._restore = Restore.after_loss(self._restore, self.state)
        self.outbox.reset()
        self.timeline.connection_lost()
        self.nick = self.state.nick or self.nick
        self.state.connection_lost()
        self.bye = None
        self.needs_nick = self.needs_password = False
        self._nick_offered = False
        self._last_error = ""
        self._accounts = False
        if self.signin is not None:
            self.signin.connection_lost()
