"""WeeChat, the IRC client, run headless (`weechat-headless`) for black-box
tests of chatd's IRC listener: commands written to its fifo plugin's pipe,
what it shows read from its logger plugin's files (one per buffer, each line
stamped with the time WeeChat gives the message: the server's, with IRCv3
server-time).

Its home (`--dir`) is private to the test, so it neither reads nor changes
anyone's WeeChat; `close` ends it. The fifo and logger plugins come in
Debian's weechat-plugins package, beside weechat-headless.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\t([^\t]*)\t(.*)$")
PLUGINS = "/usr/lib/*/weechat/plugins"


def available() -> bool:
    """weechat-headless and the plugins the tests drive it through."""
    found = glob.glob(f"{PLUGINS}/fifo.so") and glob.glob(f"{PLUGINS}/logger.so")
    return shutil.which("weechat-headless") is not None and bool(found)


class WeeChat:
    def __init__(self, home: Path, nick: str, timeout: float = 30.0) -> None:
        self.home = home
        self.logs = home / "logs"
        self.fifo = home / "fifo"
        home.mkdir(parents=True, exist_ok=True)
        # The plugins' settings, read as they load: the pipe at a known path, and
        # every buffer logged at once (not every 120 s), with times to the second.
        (home / "fifo.conf").write_text(f'[file]\nenabled = on\npath = "{self.fifo}"\n')
        (home / "logger.conf").write_text(
            "[file]\nauto_log = on\nflush_delay = 0\n"
            f'path = "{self.logs}"\nmask = "$plugin.$name.weechatlog"\n'
            'time_format = "%Y-%m-%dT%H:%M:%S"\n'
        )
        (home / "irc.conf").write_text(f'[server_default]\nnicks = "{nick}"\nusername = "{nick}"\n')
        with (home / "stderr").open("wb") as stderr:
            self.process = subprocess.Popen(
                ["weechat-headless", "--dir", str(home)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # escape sequences for a terminal it does not have
                stderr=stderr,
                env={**os.environ, "TZ": "UTC"},  # log times in UTC, as chatd's event times are
            )
        self._wait(self.fifo.exists, "its fifo", timeout)

    def _wait(self, done: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self.process.poll() is not None:
                raise AssertionError(f"weechat-headless exited ({self.process.returncode}) before {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"weechat-headless: no {what} in {timeout}s")
            time.sleep(0.05)

    def command(self, text: str, buffer: str = "core.weechat") -> None:
        """Run `text` (a /command, or a line to say) in `buffer` (e.g. `irc.chatd.#room`)."""
        try:  # non-blocking: a WeeChat gone away fails the test instead of hanging it
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno == errno.ENXIO:
                raise AssertionError("weechat-headless is not reading its fifo") from error
            raise
        try:
            os.write(fd, f"{buffer} *{text}\n".encode())
        finally:
            os.close(fd)

    def log(self, buffer: str) -> list[tuple[str, str, str]]:
        """The lines logged for `buffer` (`irc.chatd.#room`, `irc.server.chatd`):
        (time to the second, prefix, message)."""
        path = self.logs / f"{buffer.lower()}.weechatlog"
        if not path.exists():
            return []
        found = [LINE.match(line) for line in path.read_text(errors="replace").splitlines()]
        return [(match[1], match[2], match[3]) for match in found if match]

    def wait_for(self, buffer: str, prefix: str, message: str, timeout: float = 30.0) -> tuple[str, str, str]:
        """The first line of `buffer` whose prefix and message match (regular
        expressions, searched), once logged."""
        wanted = re.compile(prefix), re.compile(message)

        def line() -> tuple[str, str, str] | None:
            return next((x for x in self.log(buffer) if wanted[0].search(x[1]) and wanted[1].search(x[2])), None)

        deadline = time.monotonic() + timeout
        while (found := line()) is None:  # WeeChat's log file is the signal: poll it, with a deadline
            if time.monotonic() > deadline:
                shown = "\n".join("\t".join(x) for x in self.log(buffer))
                raise AssertionError(f"WeeChat logged no {prefix!r} {message!r} in {buffer} in {timeout}s:\n{shown}")
            time.sleep(0.05)
        return found

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
