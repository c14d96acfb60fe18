"""irssi, the IRC client, driven in a tmux of its own for black-box tests of
chatd's IRC listener: commands typed with `tmux send-keys`, what irssi shows
read from its logs (autolog, one file per window, each line stamped with the
time irssi gives the message: the server's, with IRCv3 server-time).

The tmux server is private (its own socket in the test's folder), so the
test neither sees nor disturbs anyone else's; `close` ends it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) (.*)$")


def available() -> bool:
    return shutil.which("irssi") is not None and shutil.which("tmux") is not None


class Irssi:
    def __init__(self, home: Path, nick: str) -> None:
        self.home = home
        self.logs = home / "logs"
        home.mkdir(parents=True, exist_ok=True)
        # Settings irssi reads at start: who it is, and logging of every window.
        (home / "config").write_text(
            "settings = {\n"
            f'  core = {{ real_name = "{nick} on irssi"; user_name = "{nick}"; nick = "{nick}"; '
            '    log_timestamp = "%Y-%m-%dT%H:%M:%S "; };\n'
            f'  "fe-common/core" = {{ autolog = "yes"; autolog_path = "{self.logs}/$tag/$0.log"; '
            '    autolog_level = "all"; };\n'
            "};\n"
        )
        self.socket = home / "tmux.sock"
        environment = "TZ=UTC"  # log times in UTC, as chatd's event times are
        self._tmux("new-session", "-d", "-s", "irssi", "-x", "200", "-y", "50", f"{environment} irssi --home={home}")

    def _tmux(self, *args: str) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), *args], check=True, timeout=10, capture_output=True)

    def command(self, text: str) -> None:
        """Type `text` and Enter, as a person would."""
        self._tmux("send-keys", "-t", "irssi", "-l", text)
        self._tmux("send-keys", "-t", "irssi", "Enter")

    def log(self, window: str) -> list[tuple[str, str]]:
        """The lines logged for `window` (`#room`, a nickname, or the network's
        status `chatd`): (time to the second, text)."""
        path = self.logs / "chatd" / f"{window}.log"
        if not path.exists():
            return []
        found = [LINE.match(line) for line in path.read_text(errors="replace").splitlines()]
        return [(match[1], match[2]) for match in found if match]

    def wait_for(self, window: str, pattern: str, timeout: float = 30.0) -> tuple[str, str]:
        """The first line of `window` matching `pattern` (a regular expression), once logged."""
        wanted = re.compile(pattern)

        deadline = time.monotonic() + timeout
        while True:  # irssi's log file is the signal: poll it, with a deadline
            line = next((line for line in self.log(window) if wanted.search(line[1])), None)
            if line is not None:
                return line
            if time.monotonic() > deadline:
                shown = "\n".join(f"{when} {text}" for when, text in self.log(window))
                raise AssertionError(f"irssi logged no {pattern!r} in {window} in {timeout}s:\n{shown}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], timeout=10, capture_output=True)
