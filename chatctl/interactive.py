"""`chatctl connect` on a terminal: an input line at the bottom, messages above it.

prompt_toolkit owns the terminal: one long-running prompt whose Enter key
sends the line and clears the input (the server's echo is the confirmation),
and `print_formatted_text`, which erases the prompt, prints above it and
redraws it with whatever the user was typing. Incoming lines therefore never
tear through the input line.

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
`BYE shutdown`, or it failed), the client reconnects by itself
(chatctl/link.py, chatctl/reconnect.py): a notice says when the next attempt
is due, Ctrl-C stops trying. Once registered again with the same nickname,
it rejoins the rooms, restores the current room, and each room catches up
exactly on what was said meanwhile (chatctl/timeline.py), so that every
event is shown once, in order.

What the server said is kept in a `ClientState` (chatctl/state.py), what was
shown of each room's events in a `Timeline` (chatctl/timeline.py); how it
looks comes from chatctl/render.py. This module imports prompt_toolkit at the
top; chatctl/client.py imports it only when an interactive session starts.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Concatenate, Final, ParamSpec

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import has_completions
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.styles import Style

from chatctl.completion import complete
from chatctl.connection import (
    QUIT_TIMEOUT,
    ClientError,
    Dialer,
    Exit,
    LineChannel,
    Outcome,
    bye_outcome,
    dropped_outcome,
)
from chatctl.link import Link
from chatctl.pager import Entry, ScrollBack
from chatctl.reconnect import Attempts, Outbox, Restore, acknowledge, reconnects_after_bye
from chatctl.render import (
    BYE_WORDS,
    STYLE,
    Fragments,
    line_time,
    render_day,
    render_line,
    render_notice,
    render_status,
    sanitize,
)
from chatctl.state import ClientState, line_room, split_line
from chatctl.timeline import Step, Timeline

_NICK_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

KEYS_HELP: Final = (
    "Enter sends the line; Up and Down recall earlier lines; Tab completes nicknames and rooms.",
    "Ctrl-N (or Alt-Right) switches to the next room with unread lines, or else the next room;",
    "Ctrl-P (or Alt-Left) switches to the previous room. The status line shows your rooms.",
    "PageUp scrolls back through the current room, fetching older history; Esc goes back.",
    "Ctrl-D (on an empty line), Ctrl-C or /quit leave.",
)
# How long a lone Esc waits for the rest of an escape sequence (prompt_toolkit's
# default is 0.5 s): short enough that Esc closes the scroll-back view at once.
ESCAPE_TIMEOUT: Final = 0.1
COMMANDS_HELP: Final = (
    "<text> says it in the current room; //text sends a line that starts with /",
    "/join <#room>   /part [#room]   /msg <#room|nick> <text>   /topic [#room] [text]   /rooms",
    "/me <text>   /who [#room]   /nick <new>   /ping   /quit [text]   /help",
    "/history <#room|nick> [before|after <id>] [limit]",
)


def run_interactive(sock: ssl.SSLSocket, nick: str | None, dialer: Dialer | None = None) -> int:
    """Chat on the terminal until /quit, Ctrl-D, Ctrl-C or the server's BYE.

    Args:
        sock: a connected, verified, non-blocking TLS socket.
        nick: the nickname to register with; None asks the user when the server asks.
        dialer: how to connect again when the connection is lost; None: don't.

    Returns:
        The exit status (see chatctl/client.py `Exit`).
    """
    chat = _Chat(LineChannel(sock), nick, dialer)
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
    """The session on the terminal; `Link` calls its `on_*` methods (chatctl/link.py `Handler`)."""

    def __init__(self, channel: LineChannel, nick: str | None, dialer: Dialer | None) -> None:
        self.link = Link(self, channel, dialer, Attempts())
        self.wanted_nick = nick
        self.state = ClientState()
        self.timeline = Timeline()
        self.awaiting_nick = False  # the next line typed is a nickname
        self._nick_offered = False  # a nickname was sent: the next NICK means it was refused
        self._held: list[str] = []  # typed before registration (or the rooms' restore), sent after
        self._quitting = False
        self._registered_once = False  # reconnecting starts only after a first registration
        self._bye: str | None = None  # the reason of the BYE received on this connection
        self._restore: Restore | None = None
        self.outbox = Outbox()  # the client's own commands, paced
        self._last_day: date | None = None
        self._deferred: Fragments = []  # printed when the scroll-back view closes
        self.style = Style.from_dict(
            {
                **STYLE,
                "prompt": "bold",
                "prompt.own": "bold ansiyellow",
                "prompt.room": "bold ansicyan",
                "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
            }
        )
        self.session: PromptSession[str] = PromptSession(
            message=self._prompt,
            history=InMemoryHistory(),
            style=self.style,
            erase_when_done=True,
            bottom_toolbar=self._status,
            completer=_StateCompleter(self.state),
            complete_while_typing=False,  # Tab only: a menu popping up mid-sentence is in the way
            # No blank lines kept below the input for a completion menu: the
            # input line and the status line stay at the bottom of the terminal.
            reserve_space_for_menu=0,
            key_bindings=self._key_bindings(),
        )
        # Enter sends and clears the line without ending the prompt: the
        # prompt stays up for the whole session, so there is never a moment
        # when output would be printed without erasing it first.
        self.session.default_buffer.accept_handler = self._accept
        self.session.app.ttimeoutlen = ESCAPE_TIMEOUT
        self.scrollback = ScrollBack(
            self.timeline,
            self._push,
            lambda: self.link.connected and self.state.registered,
            lambda: self.state.nick,
            self.style,
            ESCAPE_TIMEOUT,
            self._show_deferred,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[Outcome] | None = None

    # -- the session -------------------------------------------------------

    async def run(self) -> Outcome:
        loop = self._loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        self.link.start(loop)
        try:
            self.link.on_ready()  # the handshake may have left NICK in OpenSSL's buffer
            if not self._finished.done():
                try:
                    await self.session.prompt_async(pre_run=self._prompt_started)
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
            self._exit_prompt()

    def _exit_prompt(self) -> None:
        """End the prompt (if it runs) so that run() can return."""
        app = self.session.app
        if app.is_running and app.future is not None and not app.future.done():
            app.exit()

    def _prompt_started(self) -> None:
        # The session may have ended while the prompt was being set up.
        assert self._loop is not None and self._finished is not None
        if self._finished.done():
            self._loop.call_soon(self._exit_prompt)

    def _quit(self) -> None:
        """Leave: `/quit` and wait for `BYE`; without a connection, at once."""
        if not self.link.connected:
            where = f" to {self.link.dialer.address}" if self.link.dialer is not None else ""
            self._finish(Outcome(Exit.DROPPED, f"the connection{where} was lost; you stopped reconnecting"))
        elif not self._quitting:
            self._quitting = True
            self.link.send("/quit")

    def _crashed(self, exc: BaseException) -> None:
        """A bug: end the session and let run() raise it with its traceback."""
        assert self._finished is not None
        if not self._finished.done():
            self._finished.set_exception(exc)
            self._exit_prompt()

    # -- the connection (chatctl/link.py calls these, in the event loop) -----

    @_guarded
    def on_lines(self, lines: list[str]) -> None:
        fragments: Fragments = []
        for line in lines:
            fragments.extend(self._on_line(line))
        self._show(fragments)
        self._redraw()  # the prompt and the status line follow the state

    @_guarded
    def on_closed(self, error: ClientError | None) -> None:
        if self._finished is None or self._finished.done():
            return
        bye = self._bye
        if bye is not None and not reconnects_after_bye(bye):
            self._finish(bye_outcome(bye))
            return
        outcome = (
            Outcome(error.status, error.message)
            if error is not None
            else (bye_outcome(bye) if bye is not None else dropped_outcome())
        )
        if self.link.dialer is None or not self._registered_once or self._quitting:
            self._finish(outcome)
            return
        if bye is not None:
            why = BYE_WORDS.get(bye.partition(" ")[0], bye)
        elif error is not None:
            why = error.message.removesuffix("; try connecting again")
        else:
            why = "the server closed the connection without saying why"
        self._connection_lost(why)

    @_guarded
    def on_waiting(self, delay: float, attempt: int, failed: str | None) -> None:
        if failed is not None:
            self._notice(f"could not reconnect: {failed}")
        self._notice(f"reconnecting in {delay:.1f} s (attempt {attempt}); Ctrl-C to stop")
        self._redraw()

    @_guarded
    def on_connected(self) -> None:
        self._bye = None
        self._nick_offered = False
        self.awaiting_nick = False
        channel = self.link.channel
        peer = channel.peer if channel is not None else "the server"
        self._notice(f"connected to {peer} again; registering as {self.wanted_nick}")
        self._redraw()

    def on_gave_up(self, error: ClientError) -> None:
        self._finish(Outcome(error.status, error.message))

    def _connection_lost(self, why: str) -> None:
        """Remember where the session was, forget the connection, and dial again."""
        self._restore = Restore.after_loss(self._restore, self.state)
        self.outbox.reset()
        self.timeline.connection_lost()
        self.wanted_nick = self.state.nick or self.wanted_nick
        self.state.connection_lost()
        self._notice(f"connection lost: {why}")
        self.link.reconnect()

    # -- the network side (event loop thread only) ---------------------------

    def _on_line(self, line: str) -> Fragments:
        """Act on one server line; returns what to show for it."""
        verb, rest = split_line(line)
        now = datetime.now()
        # Shown as the state was before the line: the room of a line is named
        # unless it was the current room when the line came.
        own, current = self.state.nick, self.state.current
        self.state.on_line(line)
        step = self.timeline.feed(line, self.state.nick, self.outbox.history_in_flight)
        for command in step.send:
            self._push(command)
        restore = self._restore
        restoring = restore is not None and not restore.done
        ours = self.outbox.on_pong(rest) if verb == "PONG" else None
        if ours is not None:
            for text in acknowledge(ours, self.timeline, restore):
                self.link.send(text)
        if restore is not None and not restore.sent:
            for command in restore.on_line(verb, rest, self.state):
                self._push(command)
        if restoring and restore is not None and restore.done:
            self._restored()
        if verb == "NICK":
            return self._on_nick(now)
        if verb == "WELCOME":
            self.awaiting_nick = False
            self._registered_once = True
            self.link.attempts.registered(time.monotonic())
            if restore is None or restore.done:
                self._send_held()
        elif verb == "BYE":
            self._bye = rest
            if not reconnects_after_bye(rest) or self.link.dialer is None or self._quitting:
                self._finish(bye_outcome(rest))
        return self._shown(step, own, current, now, hide=ours is not None)

    def _on_nick(self, now: datetime) -> Fragments:
        if self.wanted_nick is not None and not self._nick_offered:
            self._nick_offered = True
            self.link.send(self.wanted_nick)
            return []
        self.awaiting_nick = True
        if self._registered_once:
            texts = [
                f"{self.wanted_nick} was refused: your old connection may linger at the server",
                f"type {self.wanted_nick} again to retry, or choose another nickname",
            ]
        else:
            texts = ["choose a nickname: type it and press Enter"]
        return [fragment for text in texts for fragment in _lines(render_notice(text, now))]

    def _shown(self, step: Step, own: str, current: str | None, now: datetime, hide: bool) -> Fragments:
        """Fragments for the lines a step shows (each also kept for the scroll-back view)."""
        fragments: Fragments = []
        for shown in step.show:
            if shown.quiet or hide:
                continue
            line = shown.line
            verb, rest = split_line(line)
            room = line_room(verb, rest)
            if room is not None:
                self.scrollback.keep(room, Entry(line, now))
            day = line_time(line, now).date()
            if self._last_day is not None and day != self._last_day:
                fragments += _lines(render_day(day))
            self._last_day = day
            fragments += _lines(render_line(line, own, now, current))
        for page in step.pages:
            self.scrollback.insert(page, now)
        for room, missed in step.caught_up:
            fragments += _lines(render_notice(f"{room}: {_missed(missed)}", now))
        for room in step.incomplete:
            fragments += _lines(render_notice(f"{room}: could not fetch everything said meanwhile", now))
        return fragments

    def _restored(self) -> None:
        """The rooms are back as they were: send what was typed meanwhile."""
        assert self._restore is not None
        self.state.reorder(self._restore.rooms)
        self.timeline.forget_catch_up()
        self._send_held()

    def _send_held(self) -> None:
        held, self._held = self._held, []
        for text in held:
            self._send_command(text)

    def _push(self, command: str) -> None:
        """One of the client's own commands, through the outbox (see chatctl/reconnect.py)."""
        self.state.on_command(command)
        for text in self.outbox.push(command):
            self.link.send(text)

    def _send_command(self, text: str) -> None:
        """A line the user typed (or a key stood for), after registration."""
        self.state.on_command(text)
        self.timeline.on_command(text)
        self.link.send(text)

    # -- the terminal side ---------------------------------------------------

    def _prompt(self) -> FormattedText:
        if self.awaiting_nick:
            return FormattedText([("class:prompt", "nickname: ")])
        nick = self.state.nick or self.wanted_nick or ""
        room = [("class:prompt.room", f"[{sanitize(self.state.current)}] ")] if self.state.current else []
        return FormattedText([*room, ("class:prompt.own", nick), ("class:prompt", "> ")])

    def _status(self) -> FormattedText:
        if self.link.waiting:
            return FormattedText(
                [("class:status-unread", f" not connected: reconnecting (attempt {self.link.attempt})")]
            )
        width = self.session.app.output.get_size().columns
        return FormattedText(render_status(self.state, width))

    def _key_bindings(self) -> KeyBindings:
        bindings = KeyBindings()

        # Ctrl-N/Ctrl-P move through an open completion menu, as usual; only
        # without one do they switch rooms.
        @bindings.add("c-n", filter=~has_completions)
        @bindings.add("escape", "right")
        def _next(event: KeyPressEvent) -> None:
            self._switch(self.state.next_room())

        @bindings.add("c-p", filter=~has_completions)
        @bindings.add("escape", "left")
        def _previous(event: KeyPressEvent) -> None:
            self._switch(self.state.previous_room())

        @bindings.add("pageup")
        def _scroll_back(event: KeyPressEvent) -> None:
            self._open_pager()

        return bindings

    def _switch(self, room: str | None) -> None:
        """Make `room` current: `/join` it (the server answers `CURRENT`)."""
        if not self.state.registered or self.awaiting_nick:
            return
        if room is None:
            if self.state.version == 1:
                text = "this server (protocol v1) has no rooms"
            else:
                text = "you are in no other room; /join #room to join one"
            self._notice(text)
            return
        self._send_command(f"/join {room}")

    def _open_pager(self) -> None:
        if self.state.current is None:
            self._notice("you are in no room: there is nothing to scroll back through")
        else:
            self.scrollback.open(self.state.current, self.session.app)

    def _redraw(self) -> None:
        app = self.session.app
        if app.is_running:
            app.invalidate()

    def _notice(self, text: str) -> None:
        self._show(_lines(render_notice(text, datetime.now())))

    def _show(self, fragments: Fragments) -> None:
        """Print above the input line (prompt_toolkit erases and redraws it);
        while the scroll-back view is open, when it closes."""
        if not fragments:
            return
        if self.scrollback.is_open:
            self._deferred.extend(fragments)
            return
        print_formatted_text(FormattedText(fragments), style=self.style, end="")

    def _show_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        self._show(deferred)

    def _accept(self, buffer: Buffer) -> bool:
        """Enter: send what was typed; False clears the input (and keeps it in
        history), True keeps it (not connected: send it again later)."""
        for part in buffer.text.splitlines() or [""]:  # a paste may hold several lines
            if not self._submit(part):
                return True
        return False

    def _submit(self, text: str) -> bool:
        """Returns False when the line could not be sent (and the input should stay)."""
        now = datetime.now()
        if self.awaiting_nick:
            nick = text.strip()
            if not nick:
                return True
            if not set(nick) <= _NICK_CHARS:
                self._show(_lines(render_notice("nicknames are letters, digits, _ and - only; try again", now)))
                return True
            self.awaiting_nick = False
            self.wanted_nick = nick
            self._nick_offered = True  # a later NICK means this one was refused: ask again
            self.link.send(nick)
            return True
        if not text.strip():
            return True
        registered = self.state.registered
        quitting = text == "/quit" or text.startswith("/quit ")
        if text == "/help" or text.startswith("/help "):
            help_lines = [*KEYS_HELP, *(() if registered else COMMANDS_HELP)]
            self._show([f for line in help_lines for f in _lines(render_notice(line, now))])
            if not registered:
                return True
        if not self.link.connected:
            if quitting:
                self._quit()
                return True
            self._notice("not connected: the line was not sent; press Enter again once reconnected")
            return False
        if quitting:
            self._quitting = True  # sent even before registration: the server answers BYE quit
        elif not registered or (self._restore is not None and not self._restore.done):
            self._held.append(text)  # the server would take it for a nickname, or the room is not back
            return True
        self._send_command(text)
        return True


def _missed(count: int) -> str:
    if not count:
        return "back, nothing missed"
    return f"back, {count} missed event" + ("" if count == 1 else "s") + " above"


def _lines(fragments: Fragments) -> Fragments:
    return [*fragments, ("", "\n")] if fragments else []


class _StateCompleter(Completer):
    """prompt_toolkit's side of chatctl/completion.py."""

    def __init__(self, state: ClientState) -> None:
        self.state = state

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        word, candidates = complete(self.state, document.text_before_cursor)
        for candidate in candidates:
            yield Completion(candidate, start_position=-len(word), display=candidate.rstrip(": "))
