"""`chatctl connect` on a terminal: an input line at the bottom, messages above it.

`_Chat` sits between three objects and does nothing else: the `Link`
(chatctl/link.py) reads and writes the connection and dials again, the
`Session` (chatctl/session.py) says what each server line calls for, the same
session script mode drives, and the `Terminal` (chatctl/terminal.py) draws
the input line, the status line and what is printed above them. What is
printed comes from chatctl/transcript.py (and how a line looks from
chatctl/render.py).

# NOTE: the socket is read and written only in the asyncio event loop thread
# that also runs prompt_toolkit (`loop.add_reader`/`add_writer` on the
# non-blocking SSL socket). The Enter handler runs in that thread too, so no
# other thread ever touches an SSL object in use (docs/architecture.md); the
# reconnect dialler's thread hands its socket over once the handshake is done
# and never touches it again (chatctl/reconnect.py).

Below the input line, a status line (prompt_toolkit's bottom toolbar) shows
the current room and your other rooms with their unread counts. Ctrl-N
(or Alt-Right) switches to the next room with unread lines, or else the next
room; Ctrl-P (or Alt-Left) to the previous one. A switch is a `/join` of a
room you are in; the server's `CURRENT` answer is what changes the room.
Tab completes nicknames and room names (chatctl/completion.py).

PageUp opens the scroll-back view of the current room (chatctl/pager.py),
which pages in older history from the server as you scroll past its top.

When the connection is lost (the server closed it without `BYE`, or with
`BYE shutdown`, or it failed), the client reconnects by itself: a notice says
when the next attempt is due, Ctrl-C stops trying. Once registered again
with the same nickname, the session rejoins the rooms, restores the current
room, and each room catches up exactly on what was said meanwhile, so that
every event is shown once, in order.

With `--login` (chatctl/signin.py) the session signs in instead of taking a
nickname; when it needs a password (a kept token was refused, or a password
was wrong), the prompt turns into `password for alice:` and shows nothing
of what is typed, which stays out of the input history. Its token is kept
in its file (chatctl/credentials.py) with a notice saying where.

This module and chatctl/terminal.py import prompt_toolkit at the top;
chatctl/client.py imports this one only when an interactive session starts.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Concatenate, Final, ParamSpec

from prompt_toolkit.formatted_text import FormattedText

from chatctl.connection import QUIT_TIMEOUT, ClientError, Dialer, Exit, LineChannel, Outcome
from chatctl.credentials import CredentialError, Login
from chatctl.link import Link
from chatctl.pager import Entry, ScrollBack
from chatctl.render import Fragments, sanitize
from chatctl.roles import mark
from chatctl.session import (
    Action,
    CaughtUp,
    Ended,
    Incomplete,
    KeepToken,
    NickNeeded,
    Page,
    PasswordNeeded,
    Send,
    Session,
    Shown,
)
from chatctl.state import line_room, split_line
from chatctl.status import render_status
from chatctl.terminal import ESCAPE_TIMEOUT, KEYS_HELP, Terminal
from chatctl.transcript import COMMANDS_HELP, Transcript, caught_up, nick_needed, notice, notices

_NICK_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def run_interactive(
    sock: ssl.SSLSocket, nick: str | None, dialer: Dialer | None = None, login: Login | None = None
) -> int:
    """Chat on the terminal until /quit, Ctrl-D, Ctrl-C or the server's BYE.

    Args:
        sock: a connected, verified, non-blocking TLS socket.
        nick: the nickname to register with; None asks the user when the server asks.
        dialer: how to connect again when the connection is lost; None: don't.
        login: the account to sign in to (`--login`); None: register `nick`.

    Returns:
        The exit status (see chatctl/client.py `Exit`).
    """
    chat = _Chat(LineChannel(sock), nick, dialer, login)
    try:
        outcome = asyncio.run(chat.run())
    finally:
        chat.link.stop()
    if outcome.message:
        sys.stderr.write(f"chatctl: {outcome.message}\n")
    return int(outcome.status)


_P = ParamSpec("_P")


def _guarded(method: Callable[Concatenate[_Chat, _P], None]) -> Callable[Concatenate[_Chat, _P], None]:
    """For the callbacks chatctl/link.py makes: a bug ends the session, and
    run() raises it with its traceback (instead of asyncio logging it and
    the session going on in a state nobody knows)."""

    def guarded(chat: _Chat, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            method(chat, *args, **kwargs)
        except Exception as exc:  # a bug: see above
            chat._crashed(exc)

    return guarded


class _Chat:
    """The chat on the terminal: `Link` calls its `on_*` methods (chatctl/link.py
    `Handler`), the `Terminal` its `Controls` (chatctl/terminal.py)."""

    def __init__(self, channel: LineChannel, nick: str | None, dialer: Dialer | None, login: Login | None) -> None:
        self.login = login
        self.session = Session(nick, reconnect=dialer is not None, signin=login.signin if login else None)
        self.state = self.session.state
        self.link = Link(self, channel, dialer, self.session.attempts)
        self.terminal = Terminal(self, self.state)
        self.scrollback = ScrollBack(
            self.session.timeline,
            lambda command: self._send(self.session.push(command)),
            lambda: self.link.connected and self.state.registered,
            lambda: self.state.nick,
            self.terminal.style,
            ESCAPE_TIMEOUT,
            self.terminal.show_deferred,
        )
        self.transcript = Transcript(self.state.role)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[Outcome] | None = None

    # -- the run -------------------------------------------------------------------

    async def run(self) -> Outcome:
        loop = self._loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        self.link.start(loop)
        try:
            self.link.on_ready()  # the handshake may have left NICK in OpenSSL's buffer
            if not self._finished.done():
                try:
                    await self.terminal.run(pre_run=self._prompt_started)
                except (EOFError, KeyboardInterrupt):
                    pass  # Ctrl-D or Ctrl-C: leave the way /quit does
                if not self._finished.done():
                    self._quit()
            try:
                return await asyncio.wait_for(asyncio.shield(self._finished), QUIT_TIMEOUT)
            except TimeoutError:
                return Outcome(Exit.DROPPED, f"the server did not answer /quit within {QUIT_TIMEOUT:g} s")
        finally:
            self.link.stop()

    def _finish(self, outcome: Outcome) -> None:
        assert self._finished is not None
        if not self._finished.done():
            self._finished.set_result(outcome)
            self.scrollback.close()
            self.terminal.exit()

    def _prompt_started(self) -> None:
        # The session may have ended while the prompt was being set up.
        assert self._loop is not None and self._finished is not None
        if self._finished.done():
            self._loop.call_soon(self.terminal.exit)

    def _quit(self) -> None:
        """Leave: `/quit` and wait for `BYE`; without a connection, at once."""
        if not self.link.connected:
            where = f" to {self.link.dialer.address}" if self.link.dialer is not None else ""
            self._finish(Outcome(Exit.DROPPED, f"the connection{where} was lost; you stopped reconnecting"))
        else:
            self._send(self.session.quit())

    def _crashed(self, exc: BaseException) -> None:
        """A bug: end the session and let run() raise it with its traceback."""
        assert self._finished is not None
        if not self._finished.done():
            self._finished.set_exception(exc)
            self.terminal.exit()

    # -- the connection (chatctl/link.py calls these, in the event loop) -----------

    @_guarded
    def on_lines(self, lines: list[str]) -> None:
        fragments: Fragments = []
        for line in lines:
            # Shown as the state was before the line: the room of a line is named
            # unless it was the current room when the line came.
            own, current = self.state.nick, self.state.current
            actions = self.session.feed(line, time.monotonic())
            fragments += self._act(actions, own, current, datetime.now())
        self.terminal.show(fragments)
        self.terminal.redraw()  # the prompt and the status line follow the state

    @_guarded
    def on_closed(self, error: ClientError | None) -> None:
        if self._finished is None or self._finished.done():
            return
        result = self.session.closed(error)
        if isinstance(result, Ended):
            self._finish(result.outcome)
            return
        self._notice(f"connection lost: {result.why}")
        self.link.reconnect()

    @_guarded
    def on_waiting(self, delay: float, attempt: int, failed: str | None) -> None:
        if failed is not None:
            self._notice(f"could not reconnect: {failed}")
        self._notice(f"reconnecting in {delay:.1f} s (attempt {attempt}); Ctrl-C to stop")
        self.terminal.redraw()

    @_guarded
    def on_connected(self) -> None:
        channel = self.link.channel
        peer = channel.peer if channel is not None else "the server"
        who = f"signing in as {self.login.signin.account}" if self.login else f"registering as {self.session.nick}"
        self._notice(f"connected to {peer} again; {who}")
        self.terminal.redraw()

    def on_gave_up(self, error: ClientError) -> None:
        self._finish(Outcome(error.status, error.message))

    # -- what the session says -----------------------------------------------------

    def _send(self, sends: list[Send]) -> None:
        for send in sends:
            self.link.send(send.text)

    def _act(self, actions: list[Action], own: str, current: str | None, now: datetime) -> Fragments:
        """Do what the session says; returns what to show."""
        fragments: Fragments = []
        for action in actions:
            match action:
                case Send(text):
                    self.link.send(text)
                case Shown(line, quiet):
                    # The NICK that asks for a nickname is answered, not shown.
                    if not quiet and split_line(line)[0] != "NICK":
                        fragments += self._line(line, own, current, now)
                case Page():
                    self.scrollback.insert(action, now)
                case CaughtUp(room, missed):
                    fragments += caught_up(room, missed, now)
                case Incomplete(room):
                    fragments += notice(f"{room}: could not fetch everything said meanwhile", now)
                case NickNeeded():
                    fragments += nick_needed(self.session.nick, self.session.registered_once, now)
                case PasswordNeeded(account):
                    fragments += notice(f"type the password for {account} (it is not shown)", now)
                case KeepToken(token, expires):
                    fragments += self._keep(token, expires, now)
                case Ended(outcome):
                    self._finish(outcome)
        return fragments

    def _line(self, line: str, own: str, current: str | None, now: datetime) -> Fragments:
        """A server line as shown, and kept for the scroll-back view."""
        verb, rest = split_line(line)
        room = line_room(verb, rest)
        if room is not None:
            self.scrollback.keep(room, Entry(line, now))
        return self.transcript.line(line, own, current, now)

    def _keep(self, token: str | None, expires: str, now: datetime) -> Fragments:
        assert self.login is not None
        try:
            text = self.login.keep(token, expires)
        except CredentialError as exc:
            text = f"{exc}; signing in again will need the password"
        return notice(text, now) if text else []

    def _notice(self, text: str) -> None:
        self.terminal.show(notice(text, datetime.now()))

    # -- what the terminal asks (chatctl/terminal.py `Controls`) -------------------

    def prompt(self) -> FormattedText:
        if self.session.needs_password and self.login is not None:
            return FormattedText([("class:prompt", f"password for {self.login.signin.account}: ")])
        if self.session.needs_nick:
            return FormattedText([("class:prompt", "nickname: ")])
        nick = self.state.nick or self.session.nick or ""
        current = self.state.current
        room = [("class:prompt.room", f"[{sanitize(current)}] ")] if current else []
        own = mark(self.state.role(current, nick)) if current else ""  # @ or + in a registered room
        return FormattedText([*room, ("class:prompt.own", own + nick), ("class:prompt", "> ")])

    def status(self, width: int) -> FormattedText:
        if self.link.waiting:
            return FormattedText(
                [("class:status-unread", f" not connected: reconnecting (attempt {self.link.attempt})")]
            )
        return FormattedText(render_status(self.state, width))

    def secret(self) -> bool:
        return self.session.needs_password

    def covered(self) -> bool:
        return self.scrollback.is_open

    def switch(self, forward: bool) -> None:
        """Make the next (or previous) room current: `/join` it (the server answers `CURRENT`)."""
        if not self.state.registered or self.session.needs_nick:
            return
        room = self.state.next_room() if forward else self.state.previous_room()
        if room is None:
            if self.state.version == 1:
                self._notice("this server (protocol v1) has no rooms")
            else:
                self._notice("you are in no other room; /join #room to join one")
            return
        self._send(self.session.command(f"/join {room}"))

    def scroll_back(self) -> None:
        if self.state.current is None:
            self._notice("you are in no room: there is nothing to scroll back through")
        else:
            self.scrollback.open(self.state.current, self.terminal.app)

    def submit(self, text: str) -> bool:
        """Returns False when the line could not be sent (and the input should stay)."""
        now = datetime.now()
        if self.session.needs_password:
            if text:  # as typed: a passphrase may begin or end with a space
                self._send(self.session.offer_password(text))
            return True
        if self.session.needs_nick:
            nick = text.strip()
            if nick and not set(nick) <= _NICK_CHARS:
                self.terminal.show(notice("nicknames are letters, digits, _ and - only; try again", now))
            elif nick:
                self._send(self.session.offer_nick(nick))  # a later NICK means it was refused: ask again
            return True
        if not text.strip():
            return True
        registered = self.state.registered
        quitting = text == "/quit" or text.startswith("/quit ")
        if text == "/help" or text.startswith("/help "):
            self.terminal.show(notices([*KEYS_HELP, *(() if registered else COMMANDS_HELP)], now))
            if not registered:
                return True
        if not self.link.connected:
            if quitting:
                self._quit()
                return True
            self._notice("not connected: the line was not sent; press Enter again once reconnected")
            return False
        # A /quit goes even before registration (the server answers BYE quit);
        # anything else waits until the session is ready for it.
        self._send(self.session.quit(text) if quitting else self.session.command(text))
        return True
