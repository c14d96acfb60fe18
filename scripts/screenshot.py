"""`make screenshot`: docs/img/chatd-web.png, the web client as README shows it.

Starts a throwaway chatd (its own port, history in a temporary folder, the
development certificates of certs/), lets a few line-protocol users talk,
signs in from Debian's Chromium through Playwright as `alice`, and saves a
1280x800 screenshot. Nothing here is part of the daemon or of the tests.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "img" / "chatd-web.png"
CERTS = REPO / "certs"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class LineUser:
    """A line-protocol user, just enough to say things."""

    def __init__(self, port: int, nick: str) -> None:
        context = ssl.create_default_context(cafile=str(CERTS / "ca.crt"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.buffer = b""
        self.wait_for("NICK")
        self.send(nick)
        self.wait_for("CURRENT ")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def wait_for(self, prefix: str) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            while b"\n" in self.buffer:
                line, _, self.buffer = self.buffer.partition(b"\n")
                text = line.decode()
                bare = text.split(" ", 1)[1] if text.startswith("@") else text  # without tags
                if bare.startswith(prefix):
                    return text
            self.buffer += self.sock.recv(65536)
        raise TimeoutError(f"no {prefix!r} from chatd")

    def sync(self) -> None:
        self.send("/ping sync")
        self.wait_for("PONG sync")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_chatd(work: Path, port: int) -> subprocess.Popen[bytes]:
    config = work / "chatd.yaml"
    config.write_text(
        json.dumps(
            {  # JSON is YAML
                "server": {"host": "127.0.0.1", "port": port},
                "tls": {"cert": str(CERTS / "server.crt"), "key": str(CERTS / "server.key")},
                "limits": {"message_rate": 0},
                "rooms": {"autojoin": ["#lobby"]},
                "history": {"path": str(work / "chatd.db")},
                "log": {"format": "json", "level": "info"},
                "control": {"socket": None},
                "metrics": {"listen": None},  # not 9464: a chatd of `make run` may hold it
            }
        )
    )
    log = (work / "chatd.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "chatd", "--config", str(config)], stdout=log, stderr=log, cwd=REPO
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"chatd exited:\n{(work / 'chatd.log').read_text()}")
        if '"listening"' in (work / "chatd.log").read_text():
            return process
        time.sleep(0.05)
    process.kill()
    raise SystemExit("chatd did not start")


# Who says what in #lobby before alice arrives, in this order.
_LOBBY = [
    ("bob", "/topic #lobby Welcome to chatd! Be kind. House rules: https://example.org/rules"),
    ("carol", "morning all"),
    ("bob", "morning carol! the 0.4 release notes are up: https://example.org/notes/0.4"),
    ("dave", "/me waves from the terminal"),
    ("carol", "nice, history survives a restart now?"),
    ("bob", "yes: SQLite on the server, and clients catch up by event id"),
    ("dave", "and the ids never repeat, even after a crash"),
    ("carol", "has anyone tried the new web client yet?"),
    ("bob", "alice did, on her phone, history and all"),
]


def _demo(port: int) -> list[LineUser]:
    users = {nick: LineUser(port, nick) for nick in ("bob", "carol", "dave")}
    for user in users.values():
        user.send("/join #rust")
        user.send("/join #lobby")  # back to #lobby as the current room, where /me goes
    users["bob"].send("/join #ops")
    users["bob"].send("/join #lobby")
    for user in users.values():
        user.sync()
    for nick, line in _LOBBY:
        users[nick].send(line if line.startswith("/") else f"/msg #lobby {line}")
        users[nick].sync()  # one at a time, so that the ids follow this order
    return list(users.values())


def main() -> None:
    if not (CERTS / "server.crt").exists():
        subprocess.run([sys.executable, "-m", "chatctl", "gen-certs", "--out", str(CERTS)], check=True, cwd=REPO)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="chatd-screenshot-") as tmp:
        chatd = _start_chatd(Path(tmp), port)
        try:
            _bob, carol, dave = _demo(port)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
                )
                context = browser.new_context(
                    ignore_https_errors=True,
                    viewport={"width": 1280, "height": 800},
                    color_scheme=os.environ.get("SCHEME", "light"),
                    locale="en-GB",
                    timezone_id="UTC",
                )
                page = context.new_page()
                page.goto(f"https://127.0.0.1:{port}/")
                page.get_by_label("Nickname").fill("alice")
                page.get_by_label("Nickname").press("Enter")
                expect(page.locator("#me")).to_contain_text("alice")
                for room in ("#rust", "#ops"):
                    page.locator("#composer-input").fill(f"/join {room}")
                    page.locator("#composer-input").press("Enter")
                    expect(page.locator("#conv-title")).to_have_text(room)
                page.locator('#room-list li[data-conv="#lobby"] button').click()
                page.locator("#composer-input").fill("yes! it even catches up after a server restart")
                page.locator("#composer-input").press("Enter")
                dave.send("/msg #rust alice: could you review my borrow-checker fix?")
                carol.send("/msg #rust I can look too")
                carol.send("/msg alice lunch at 1?")
                expect(page.locator('#dm-list li[data-conv="carol"] .badge')).to_have_text("1")
                expect(page.locator('#room-list li[data-conv="#rust"] .badge')).to_have_text("2")
                page.locator("#composer-input").fill("")
                page.locator("#composer-input").blur()
                OUT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=OUT, animations="disabled")
                browser.close()
        finally:
            chatd.terminate()
            chatd.wait(15)
    print(f"wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
