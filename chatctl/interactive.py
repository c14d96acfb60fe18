"""`chatctl connect` on a terminal: an input line at the bottom, messages above it.

prompt_toolkit owns the terminal: one long-running prompt whose Enter key
sends the line and clears the input (the server's echo is the confirmation),
and `print_formatted_text`, which erases the prompt, prints above it and
redraws it with whatever the user was typing. Incoming lines therefore never
tear through the input line.

# NOTE: the socket is read and written only in the asyncio event loop thread
# that also runs prompt_toolkit (`loop.add_reader`/`add_writer` on the
# non-blocking SSL socket). The Enter handler runs in that thread too, so no
# other thread ever touches the SSL object (docs/architecture.md).

Below the input line, a status line (prompt_toolkit's bottom toolbar) shows
the current room and your other rooms with their unread counts. Ctrl-N
(or Alt-Right) switches to the next room with unread lines, or else the next
room; Ctrl-P (or Alt-Left) to the previous one. A switch is a `/join` of a
room you are in; the server's `CURRENT` answer is what changes the room.
Tab completes nicknames and room names (chatctl/completion.py).

What the server said is kept in a `ClientState` (chatctl/state.py); how it
looks comes from chatctl/render.py. This module imports prompt_toolkit at the
top; chatctl/client.py imports it only when an interactive session starts.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from datetime import datetime
from typing import Final, Iterable

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
    Exit,
    LineChannel,
    Outcome,
    bye_outcome,
    dropped_outcome,
)
from chatctl.render import STYLE, Fragments, render_line, render_notice, render_status, sanitize
from chatctl.state import ClientState, split_line

_NICK_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

KEYS_HELP: Final = (
    "Enter sends the line; Up and Down recall earlier lines; Tab completes nicknames and rooms.",
    "Ctrl-N (or Alt-Right) switches to the next room with unread lines, or else the next room;",
    "Ctrl-P (or Alt-Left) switches to the previous room. The status line shows your rooms.",
    "Ctrl-D (on an empty line), Ctrl-C or /quit leave.",
)
COMMANDS_HELP: Final = (
    "<text> says it in the current room; //text sends a line that starts with /",
    "/join <#room>   /part [#room]   /msg <#room|nick> <text>   /topic [#room] [text]   /rooms",
    "/me <text>   /who [#room]   /nick <new>   /ping   /quit [text]   /help",
)


def run_interactive(sock: ssl.SSLSocket, nick: str | None) -> int:
    """Chat on the terminal until /quit, Ctrl-D, Ctrl-C or the server's BYE.

    Args:
        sock: a connected, verified, non-blocking TLS socket.
        nick: the nickname to register with; None asks the user when the server asks.

    Returns:
        The exit status (see chatctl/client.py `Exit`).
    """
    channel = LineChannel(sock)
    try:
        outcome = asyncio.run(_Chat(channel, nick).run())
    finally:
        channel.close()
    if outcome.message:
        sys.stderr.write(f"chatctl: {outcome.message}\n")
    return int(outcome.status)


class _Chat:
    def __init__(self, channel: LineChannel, nick: str | None) -> None:
        self.channel = channel
        self.wanted_nick = nick
        self.state = ClientState()
        self.awaiting_nick = False  # the next line typed is a nickname
        self._nick_offered = False  # a nickname was sent: the next NICK means it was refused
        self._held: list[str] = []  # typed before registration, sent after WELCOME
        self._quitting = False
        self._writer_added = False
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[Outcome] | None = None

    # -- the session -------------------------------------------------------

    async def run(self) -> Outcome:
        loop = self._loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        loop.add_reader(self.channel.fileno(), self._on_socket)
        try:
            self._on_socket()  # the handshake may have left NICK in OpenSSL's buffer
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
            loop.remove_reader(self.channel.fileno())
            if self._writer_added:
                loop.remove_writer(self.channel.fileno())

    def _finish(self, outcome: Outcome) -> None:
        assert self._finished is not None
        if not self._finished.done():
            self._finished.set_result(outcome)
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
        if not self._quitting:
            self._quitting = True
            self._send("/quit")

    # -- the network side (event loop thread only) ---------------------------

    def _on_socket(self) -> None:
        """The socket is readable or writable: read every line, then flush."""
        try:
            lines = self.channel.read_lines()
            fragments: Fragments = []
            for raw in lines:
                fragments.extend(self._on_line(raw.decode("utf-8", "replace")))
            self._show(fragments)
            if lines:
                self._redraw()  # the prompt and the status line follow the state
            if self.channel.closed and self._finished is not None and not self._finished.done():
                self._finish(dropped_outcome())
            self._flush()
        except ClientError as exc:
            self._finish(Outcome(exc.status, exc.message))
        except Exception as exc:  # a bug: end the session and let run() raise it with its traceback
            assert self._finished is not None
            if not self._finished.done():
                self._finished.set_exception(exc)
                self._exit_prompt()

    def _on_line(self, line: str) -> Fragments:
        """Act on one server line; returns what to show for it."""
        verb, rest = split_line(line)
        now = datetime.now()
        # Shown as the state was before the line: the room of a line is named
        # unless it was the current room when the line came.
        shown = render_line(line, self.state.nick, now, self.state.current)
        self.state.on_line(line)
        if verb == "NICK":
            if self.wanted_nick is not None and not self._nick_offered:
                self._nick_offered = True
                self._send(self.wanted_nick)
                return []
            self.awaiting_nick = True
            return _lines(render_notice("choose a nickname: type it and press Enter", now))
        if verb == "WELCOME":
            self.awaiting_nick = False
            held, self._held = self._held, []
            for text in held:
                self._send_command(text)
        elif verb == "BYE":
            self._finish(bye_outcome(rest))
        return _lines(shown)

    def _send(self, text: str) -> None:
        self.channel.send_line(text.encode("utf-8"))
        self._flush()

    def _send_command(self, text: str) -> None:
        """A line the user typed (or a key stood for), after registration."""
        self.state.on_command(text)
        self._send(text)

    def _flush(self) -> None:
        self.channel.flush()
        assert self._loop is not None
        wants = self.channel.wants_write
        if wants and not self._writer_added:
            self._loop.add_writer(self.channel.fileno(), self._on_socket)
        elif not wants and self._writer_added:
            self._loop.remove_writer(self.channel.fileno())
        self._writer_added = wants

    # -- the terminal side ---------------------------------------------------

    def _prompt(self) -> FormattedText:
        if self.awaiting_nick:
            return FormattedText([("class:prompt", "nickname: ")])
        nick = self.state.nick or self.wanted_nick or ""
        room = [("class:prompt.room", f"[{sanitize(self.state.current)}] ")] if self.state.current else []
        return FormattedText([*room, ("class:prompt.own", nick), ("class:prompt", "> ")])

    def _status(self) -> FormattedText:
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
            self._show(_lines(render_notice(text, datetime.now())))
            return
        try:
            self._send_command(f"/join {room}")
        except ClientError as exc:
            self._finish(Outcome(exc.status, exc.message))

    def _redraw(self) -> None:
        app = self.session.app
        if app.is_running:
            app.invalidate()

    def _show(self, fragments: Fragments) -> None:
        """Print above the input line (prompt_toolkit erases and redraws it)."""
        if fragments:
            print_formatted_text(FormattedText(fragments), style=self.style, end="")

    def _accept(self, buffer: Buffer) -> bool:
        """Enter: send what was typed; False clears the input (and keeps it in history)."""
        try:
            for part in buffer.text.splitlines() or [""]:  # a paste may hold several lines
                self._submit(part)
        except ClientError as exc:
            self._finish(Outcome(exc.status, exc.message))
        return False

    def _submit(self, text: str) -> None:
        now = datetime.now()
        if self.awaiting_nick:
            nick = text.strip()
            if not nick:
                return
            if not set(nick) <= _NICK_CHARS:
                self._show(_lines(render_notice("nicknames are letters, digits, _ and - only; try again", now)))
                return
            self.awaiting_nick = False
            self.wanted_nick = nick
            self._nick_offered = True  # a later NICK means this one was refused: ask again
            self._send(nick)
            return
        if not text.strip():
            return
        registered = self.state.registered
        if text == "/help" or text.startswith("/help "):
            help_lines = [*KEYS_HELP, *(() if registered else COMMANDS_HELP)]
            self._show([f for line in help_lines for f in _lines(render_notice(line, now))])
            if not registered:
                return
        if text == "/quit" or text.startswith("/quit "):
            self._quitting = True  # sent even before registration: the server answers BYE quit
        elif not registered:
            self._held.append(text)  # the server would take it for a nickname
            return
        self._send_command(text)


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
