"""The screen of `chatctl connect`'s terminal UI, as prompt_toolkit draws it:
an input line at the bottom, a status line below it, lines printed above.

prompt_toolkit owns the terminal: one long-running prompt whose Enter key
hands the line over and clears the input (the server's echo is the
confirmation), and `print_formatted_text`, which erases the prompt, prints
above it and redraws it with whatever the user was typing. Incoming lines
therefore never tear through the input line. While a full-screen view covers
the chat (the scroll-back view, chatctl/pager.py), what would be printed
waits until it closes.

What the prompt and the status line say, and what a typed line or a key
does, are the chat's (chatctl/interactive.py), through `Controls`: this
module draws and listens, and knows nothing of the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, Protocol

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition, has_completions
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.styles import Style

from chatctl.completion import complete
from chatctl.render import STYLE, Fragments
from chatctl.state import ClientState

# How long a lone Esc waits for the rest of an escape sequence (prompt_toolkit's
# default is 0.5 s): short enough that Esc closes the scroll-back view at once.
ESCAPE_TIMEOUT: Final = 0.1
KEYS_HELP: Final = (
    "Enter sends the line; Up and Down recall earlier lines; Tab completes nicknames and rooms.",
    "Ctrl-N (or Alt-Right) switches to the next room with unread lines, or else the next room;",
    "Ctrl-P (or Alt-Left) switches to the previous room. The status line shows your rooms.",
    "PageUp scrolls back through the current room, fetching older history; Esc goes back.",
    "Ctrl-D (on an empty line), Ctrl-C or /quit leave.",
)


class Controls(Protocol):
    """What the terminal asks of the chat."""

    def prompt(self) -> FormattedText:
        """The prompt before the input line."""

    def status(self, width: int) -> FormattedText:
        """The status line below the input line, `width` columns wide."""

    def submit(self, text: str) -> bool:
        """A line typed (Enter); False: it could not be sent and stays in the input line."""

    def switch(self, forward: bool) -> None:
        """A room-switch key: to the next room (`forward`) or the previous one."""

    def scroll_back(self) -> None:
        """PageUp: open the scroll-back view."""

    def covered(self) -> bool:
        """Whether a full-screen view covers the chat (printing waits)."""

    def secret(self) -> bool:
        """Whether the input line is a password: not shown, not kept in the history."""


class Terminal:
    """The input line, the status line and printing above them, for `controls`."""

    def __init__(self, controls: Controls, state: ClientState) -> None:
        self._controls = controls
        self._deferred: Fragments = []  # printed when the covering view closes
        self.style = Style.from_dict(
            {
                **STYLE,
                "prompt": "bold",
                "prompt.own": "bold ansiyellow",
                "prompt.room": "bold ansicyan",
                "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
            }
        )
        self._session: PromptSession[str] = PromptSession(
            message=controls.prompt,
            history=InMemoryHistory(),
            style=self.style,
            erase_when_done=True,
            bottom_toolbar=lambda: controls.status(self.app.output.get_size().columns),
            completer=_StateCompleter(state),
            complete_while_typing=False,  # Tab only: a menu popping up mid-sentence is in the way
            # No blank lines kept below the input for a completion menu: the
            # input line and the status line stay at the bottom of the terminal.
            reserve_space_for_menu=0,
            key_bindings=self._key_bindings(),
            is_password=Condition(controls.secret),
        )
        # Enter hands the line over and clears it without ending the prompt:
        # the prompt stays up for the whole session, so there is never a moment
        # when output would be printed without erasing it first.
        self._session.default_buffer.accept_handler = self._accept
        self.app.ttimeoutlen = ESCAPE_TIMEOUT

    @property
    def app(self) -> Application[str]:
        return self._session.app

    async def run(self, pre_run: Callable[[], None]) -> None:
        """Run the prompt until `exit()`.

        Raises:
            EOFError: Ctrl-D on an empty line.
            KeyboardInterrupt: Ctrl-C.
        """
        await self._session.prompt_async(pre_run=pre_run)

    def exit(self) -> None:
        """End the prompt (if it runs) so that run() returns."""
        app = self.app
        if app.is_running and app.future is not None and not app.future.done():
            app.exit()

    def redraw(self) -> None:
        if self.app.is_running:
            self.app.invalidate()

    def show(self, fragments: Fragments) -> None:
        """Print above the input line (prompt_toolkit erases and redraws it);
        while a view covers the chat, when it closes (`show_deferred`)."""
        if not fragments:
            return
        if self._controls.covered():
            self._deferred.extend(fragments)
            return
        print_formatted_text(FormattedText(fragments), style=self.style, end="")

    def show_deferred(self) -> None:
        deferred, self._deferred = self._deferred, []
        self.show(deferred)

    def _accept(self, buffer: Buffer) -> bool:
        """Enter: hand over what was typed; False clears the input (and keeps it in
        history), True keeps it (not connected: send it again later)."""
        text = buffer.text
        private = self._controls.secret() or _holds_password(text)
        if private:
            buffer.reset()  # emptied before prompt_toolkit keeps it in the history
        for part in text.splitlines() or [""]:  # a paste may hold several lines
            if not self._controls.submit(part):
                return not private  # kept to send again, unless it holds a password
        return False

    def _key_bindings(self) -> KeyBindings:
        bindings = KeyBindings()

        # Ctrl-N/Ctrl-P move through an open completion menu, as usual; only
        # without one do they switch rooms.
        @bindings.add("c-n", filter=~has_completions)
        @bindings.add("escape", "right")
        def _next(event: KeyPressEvent) -> None:
            self._controls.switch(forward=True)

        @bindings.add("c-p", filter=~has_completions)
        @bindings.add("escape", "left")
        def _previous(event: KeyPressEvent) -> None:
            self._controls.switch(forward=False)

        @bindings.add("pageup")
        def _scroll_back(event: KeyPressEvent) -> None:
            self._controls.scroll_back()

        return bindings


def _holds_password(text: str) -> bool:
    """A line with a password in it (docs/protocol.md "Accounts"), which the
    input history must not keep."""
    return text.split(" ", 1)[0] in ("/passwd", "/login", "/register")


class _StateCompleter(Completer):
    """prompt_toolkit's side of chatctl/completion.py."""

    def __init__(self, state: ClientState) -> None:
        self.state = state

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        word, candidates = complete(self.state, document.text_before_cursor)
        for candidate in candidates:
            yield Completion(candidate, start_position=-len(word), display=candidate.rstrip(": "))
