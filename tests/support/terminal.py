"""`chatctl connect`'s interactive client on a pseudo-terminal (`Terminal`),
read through just enough of a VT100 (`Screen`) to see what prompt_toolkit drew.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

import pexpect

from tests.support import REPO
from tests.support.chatctl import TIMEOUT


class Screen:
    """Just enough of a VT100 to replay what prompt_toolkit draws: text, CR/LF,
    relative cursor moves and erase-down/erase-line, and answers to cursor
    position requests (prompt_toolkit draws its bottom toolbar, the client's
    status line, only once it knows where the cursor is), the alternate
    screen of full-screen views (the scroll-back view), and the lines that
    scroll off the top (`scrolled`). Colours and other modes are ignored."""

    _TOKEN = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b\][^\x07]*\x07|\x1b.|[\r\n\x08]|[^\x1b\r\n\x08]")

    def __init__(self, rows: int = 24, cols: int = 80) -> None:
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.row = self.col = 0
        self.replies: list[str] = []  # what the terminal answers, for the program's stdin
        self.scrolled: list[str] = []  # lines that went off the top, oldest first
        self._saved: tuple[list[list[str]], int, int] | None = None  # the main screen, in the alternate one

    def feed(self, text: str) -> None:
        for match in self._TOKEN.finditer(text):
            token = match.group()
            if match.group(2):
                self._csi(match.group(1), match.group(2))
            elif token == "\r":
                self.col = 0
            elif token == "\n":
                self._linefeed()
            elif token == "\x08":
                self.col = max(0, self.col - 1)
            elif not token.startswith("\x1b"):
                if self.col >= self.cols:
                    self.col = 0
                    self._linefeed()
                self.grid[self.row][self.col] = token
                self.col += 1

    def _linefeed(self) -> None:
        if self.row == self.rows - 1:
            gone = "".join(self.grid.pop(0)).rstrip()
            if self._saved is None and gone:
                self.scrolled.append(gone)
            self.grid.append([" "] * self.cols)
        else:
            self.row += 1

    def _csi(self, params: str, final: str) -> None:
        if params == "?1049" and final == "h" and self._saved is None:  # the alternate screen
            self._saved = (self.grid, self.row, self.col)
            self.grid = [[" "] * self.cols for _ in range(self.rows)]
        elif params == "?1049" and final == "l" and self._saved is not None:
            self.grid, self.row, self.col = self._saved
            self._saved = None
        if params.startswith("?"):
            return  # other private modes: cursor visibility, bracketed paste, autowrap
        numbers = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = max(1, numbers[0]) if numbers else 1
        if final == "n" and numbers == [6]:
            self.replies.append(f"\x1b[{self.row + 1};{self.col + 1}R")
        elif final == "A":
            self.row = max(0, self.row - n)
        elif final == "B":
            self.row = min(self.rows - 1, self.row + n)
        elif final == "C":
            self.col = min(self.cols - 1, self.col + n)
        elif final == "D":
            self.col = max(0, self.col - n)
        elif final == "H":
            self.row = min(self.rows, max(1, numbers[0] if numbers else 1)) - 1
            self.col = min(self.cols, max(1, numbers[1] if len(numbers) > 1 else 1)) - 1
        elif final == "J" and numbers == [2]:
            self.grid = [[" "] * self.cols for _ in range(self.rows)]
        elif final == "J":
            self.grid[self.row][self.col :] = [" "] * (self.cols - self.col)
            for row in range(self.row + 1, self.rows):
                self.grid[row] = [" "] * self.cols
        elif final == "K":
            self.grid[self.row][self.col :] = [" "] * (self.cols - self.col)

    def lines(self) -> list[str]:
        """The non-blank lines, top to bottom, right-trimmed."""
        return [text for text in ("".join(row).rstrip() for row in self.grid) if text]

    def all_lines(self) -> list[str]:
        """The lines that scrolled off the top, then those on the screen."""
        return [*self.scrolled, *self.lines()]

    @property
    def alternate(self) -> bool:
        """A full-screen view is up."""
        return self._saved is not None

    def cursor_line(self) -> str:
        return "".join(self.grid[self.row]).rstrip()

    def line_above_cursor(self) -> str:
        return "".join(self.grid[self.row - 1]).rstrip() if self.row else ""

    def bottom_line(self) -> str:
        """The last row: where prompt_toolkit draws the status line (the bottom toolbar)."""
        return "".join(self.grid[-1]).rstrip()


class Terminal:
    """`chatctl connect` on a pseudo-terminal, watched through a `Screen`."""

    def __init__(self, argv: list[str], rows: int = 24, cols: int = 80, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **(env or {}), "TERM": "xterm-256color", "PYTHONUTF8": "1"}
        env.pop("PROMPT_TOOLKIT_NO_CPR", None)  # this terminal answers cursor position requests
        self.child = pexpect.spawn(
            argv[0],
            argv[1:],
            cwd=str(REPO),
            env=env,
            dimensions=(rows, cols),
            encoding="utf-8",
            timeout=TIMEOUT,
        )
        self.screen = Screen(rows, cols)

    def _pump(self, wait: float) -> None:
        try:
            self._feed(self.child.read_nonblocking(65536, timeout=wait))
        except pexpect.TIMEOUT:
            pass

    def _feed(self, output: str) -> None:
        self.screen.feed(output)
        replies, self.screen.replies = self.screen.replies, []
        for reply in replies:
            self.child.send(reply)

    def wait_for(self, predicate: Callable[[Screen], bool], what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.screen):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n" + "\n".join(self.screen.lines()))
            self._pump(0.05)

    def wait_for_line(self, pattern: str, timeout: float = TIMEOUT) -> None:
        self.wait_for(lambda s: any(re.search(pattern, line) for line in s.lines()), repr(pattern), timeout)

    def wait_for_input_line(self, text: str, timeout: float = TIMEOUT) -> None:
        """The line with the cursor (the input line) reads exactly `text`."""
        self.wait_for(lambda s: s.cursor_line() == text, f"input line {text!r}", timeout)

    def send(self, text: str) -> None:
        self.child.send(text)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while self.child.isalive():
            if time.monotonic() > deadline:
                raise AssertionError("chatctl did not exit; screen:\n" + "\n".join(self.screen.lines()))
            try:
                self._feed(self.child.read_nonblocking(65536, timeout=0.05))
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                break
        self.child.close()
        status: int = self.child.exitstatus
        return status

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
