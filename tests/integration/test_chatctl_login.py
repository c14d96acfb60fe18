"""`chatctl connect --login` (and `--register`) against a real chatd over real
TLS (docs/client.md, "Signing in"): the password asked without echo in a
pseudo-terminal or read from a 0600 file, the token kept in a 0600 file and
used to come back after a restart, a refused token, `BYE replaced`,
`/logout`; and nothing secret in the daemon's log or database."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Daemon, wait_until
from tests.support.accounts import FAST_ARGON2, argon2id, database, ok, signed_in
from tests.support.chatctl import TIMEOUT, ScriptClient, connect_cmd
from tests.support.terminal import Terminal

PASSWORD = "a passphrase with spaces 7"


@pytest.fixture
def accounts(start_daemon: Callable[..., Daemon], short_dir: Path) -> Callable[..., Daemon]:
    """Factory: a chatd with accounts (cheap argon2id) and a control socket; alice is an account."""

    def start(**accounts: Any) -> Daemon:
        daemon = start_daemon(
            accounts={"argon2": FAST_ARGON2, **accounts},
            control={"socket": str(short_dir / "control.sock")},
            limits={"max_nick_attempts": 20},
        )
        ok(daemon, "user_add", name="alice", password_hash=argon2id(PASSWORD))
        return daemon

    return start


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """chatctl's environment: its own XDG_CONFIG_HOME, where tokens are kept."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def token_file(home: dict[str, str], daemon: Daemon, account: str = "alice") -> Path:
    return Path(home["XDG_CONFIG_HOME"]) / "chatctl" / "tokens" / f"{account}@127.0.0.1:{daemon.port}"


def password_file(tmp_path: Path, password: str = PASSWORD, mode: int = 0o600) -> Path:
    path = tmp_path / "password"
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


def connect(daemon: Daemon, home: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`chatctl connect` in script mode: `stdin`, then end of input (/quit)."""
    return subprocess.run(
        connect_cmd(daemon.port, "--ca", str(daemon.pki.ca), *args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, **home},
    )


def logins(daemon: Daemon, method: str) -> int:
    return len(daemon.find_events("login_succeeded", account="alice", method=method))


def assert_secret_nowhere(daemon: Daemon, *secrets: str) -> None:
    """Not in the daemon's log, nor in its database files (the WAL too)."""
    base = database(daemon)
    stored = b"".join(path.read_bytes() for path in base.parent.glob(base.name + "*"))
    for secret in secrets:
        assert secret not in daemon.log(), "a secret is in the log"
        assert secret.encode() not in stored, "a secret is in the database"


def restart(daemon: Daemon) -> None:
    """SIGTERM (clients get BYE shutdown), then the same config on the same port."""
    daemon.config["server"]["port"] = daemon.port
    before = len(daemon.find_events("listening"))
    assert daemon.stop() == 0
    daemon.start(wait=False)
    wait_until(lambda: len(daemon.find_events("listening")) > before, 20, "chatd listening again")


def test_script_login_keeps_a_token_resumes_with_it_and_logout_removes_it(
    accounts: Callable[..., Daemon], home: dict[str, str], tmp_path: Path
) -> None:
    daemon = accounts()
    first = connect(daemon, home, "--login", "ALICE", "--password-file", str(password_file(tmp_path)), stdin="hi\n")
    assert first.returncode == 0, first.stderr
    assert "WELCOME alice " in first.stdout and "MSG #lobby alice hi" in first.stdout
    assert "TOKEN" not in first.stdout  # the answer to chatctl's own /remember is not printed
    path = token_file(home, daemon)
    assert f"signed in as ALICE; reconnecting uses a token kept in {path}" in first.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    token = path.read_text().split()[0]
    assert len(token) == 43 and logins(daemon, "password") == 1
    daemon.wait_for_event("token_issued")

    # Next time the token alone signs in: no password file, no terminal needed.
    second = connect(daemon, home, "--login", "alice", stdin="again\n")
    assert second.returncode == 0, second.stderr
    assert "MSG #lobby alice again" in second.stdout
    assert logins(daemon, "token") == 1 and logins(daemon, "password") == 1

    out = connect(daemon, home, "--login", "alice", stdin="/logout\n")
    assert out.returncode == 0, out.stderr
    assert "BYE logout" in out.stdout and f"the token kept in {path} is removed" in out.stderr
    assert not path.exists()
    assert_secret_nowhere(daemon, PASSWORD, token)


def test_a_password_file_others_can_read_is_refused(
    accounts: Callable[..., Daemon], home: dict[str, str], tmp_path: Path
) -> None:
    daemon = accounts()
    loose = password_file(tmp_path, mode=0o644)
    result = connect(daemon, home, "--login", "alice", "--password-file", str(loose))
    assert result.returncode == 2, result
    assert f"run `chmod 600 {loose}`" in result.stderr and "mode 0644" in result.stderr
    assert not daemon.find_events("connect") and not daemon.find_events("login_failed")
    # Without any password at hand in script mode: told what to pass.
    bare = connect(daemon, home, "--login", "alice")
    assert bare.returncode == 2 and "--password-file" in bare.stderr
    stray = connect(daemon, home, "--nick", "bob", "--password-file", str(loose))
    assert stray.returncode == 2 and "--password-file goes with --login or --register" in stray.stderr
    # And never a password option on the command line.
    # (argparse would take it for --password-file, an abbreviation, and print the password as a path)
    argv = connect(daemon, home, "--login", "alice", "--password", PASSWORD)
    assert argv.returncode == 2 and "never taken from the command line" in argv.stderr
    assert PASSWORD not in argv.stderr


def test_a_refused_token_falls_back_to_the_password_or_ends_the_script(
    accounts: Callable[..., Daemon], home: dict[str, str], tmp_path: Path
) -> None:
    daemon = accounts()
    secret = str(password_file(tmp_path))
    assert connect(daemon, home, "--login", "alice", "--password-file", secret).returncode == 0
    path = token_file(home, daemon)
    revoked = path.read_text().split()[0]
    ok(daemon, "user_revoke", name="alice")

    # No password to fall back on: a clear error, status 6, and the dead token forgotten.
    stuck = connect(daemon, home, "--login", "alice")
    assert stuck.returncode == 6, stuck
    assert "the saved token for alice was refused" in stuck.stderr and "--password-file" in stuck.stderr
    assert not path.exists()
    assert daemon.find_events("login_failed", method="token", reason="token_invalid")

    # With one: the token (kept again) is refused, the password signs in, a new token is kept.
    assert connect(daemon, home, "--login", "alice", "--password-file", secret).returncode == 0
    path.write_text(revoked + " 2099-01-01T00:00:00.000Z\n")  # as if the revocation was not known here
    back = connect(daemon, home, "--login", "alice", "--password-file", secret, stdin="back\n")
    assert back.returncode == 0, back.stderr
    assert "ERR token_invalid" in back.stdout and "MSG #lobby alice back" in back.stdout
    assert path.read_text().split()[0] != revoked
    assert logins(daemon, "password") == 3

    wrong = connect(daemon, home, "--login", "bob", "--password-file", secret)
    assert wrong.returncode == 6 and "signing in as bob was refused (auth_failed" in wrong.stderr
    assert_secret_nowhere(daemon, PASSWORD, revoked)


def test_bye_replaced_ends_reconnecting(
    accounts: Callable[..., Daemon], home: dict[str, str], tmp_path: Path, script_clients: list[ScriptClient]
) -> None:
    daemon = accounts()
    secret = str(password_file(tmp_path))
    client = ScriptClient(
        daemon.port, daemon.pki.ca, None, "--login", "alice", "--password-file", secret, "--reconnect", env=home
    )
    script_clients.append(client)
    client.expect("WELCOME alice ")
    signed_in(daemon, f"/login alice {PASSWORD}", "alice")  # somewhere else
    client.expect("BYE replaced")
    status, stderr = client.wait()
    assert status == 7, stderr
    assert "your account signed in elsewhere" in stderr and "not reconnecting" in stderr
    assert "reconnecting in" not in stderr


def test_register_with_an_invite(accounts: Callable[..., Daemon], home: dict[str, str], tmp_path: Path) -> None:
    daemon = accounts(registration="invite", guests=False)
    code = ok(daemon, "invite_create")["code"]
    secret = str(password_file(tmp_path))
    made = connect(daemon, home, "--register", "erin", "--invite", code, "--password-file", secret, stdin="hi\n")
    assert made.returncode == 0, made.stderr
    assert "WELCOME erin " in made.stdout and "MSG #lobby erin hi" in made.stdout
    assert token_file(home, daemon, "erin").exists()
    again = connect(daemon, home, "--register", "erin", "--invite", code, "--password-file", secret)
    assert again.returncode == 0, again.stderr  # the kept token signs in: no second registration
    assert len(daemon.find_events("login_succeeded", account="erin", method="token")) == 1
    stray = connect(daemon, home, "--login", "erin", "--invite", code, "--password-file", secret)
    assert stray.returncode == 2 and "--invite goes with --register" in stray.stderr
    assert_secret_nowhere(daemon, PASSWORD, code)


def test_interactive_login_asks_without_echo_and_resumes_after_a_restart(
    accounts: Callable[..., Daemon], home: dict[str, str], terminals: list[Terminal]
) -> None:
    daemon = accounts()
    term = Terminal(connect_cmd(daemon.port, "--login", "alice", "--ca", str(daemon.pki.ca)), env=home)
    terminals.append(term)
    term.wait_for_line(r"^password for alice:$")
    term.send(PASSWORD + "\r")
    term.wait_for_line(r"Welcome to chatd, alice!")
    term.wait_for_input_line("[#lobby] alice>")
    path = token_file(home, daemon)
    term.wait_for_line("reconnecting uses a token kept in")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().split()[0]
    assert logins(daemon, "password") == 1

    restart(daemon)
    daemon.wait_for_event("login_succeeded", account="alice", method="token", timeout=TIMEOUT * 3)
    term.wait_for(lambda s: any("connection lost" in line for line in s.all_lines()), "the reconnect")
    term.wait_for(lambda s: any("signing in as alice" in line for line in s.all_lines()), "signing in again")
    term.wait_for_input_line("[#lobby] alice>")
    term.send("still here\r")
    term.wait_for_line(r"<alice> still here$")
    assert logins(daemon, "password") == 1  # the token, not the password, brought it back
    term.send("\x04")
    assert term.wait_exit() == 0
    shown = "\n".join(term.screen.all_lines())
    assert PASSWORD not in shown and token not in shown
    assert_secret_nowhere(daemon, PASSWORD, token)


def test_interactive_asks_for_the_password_when_the_token_is_refused(
    accounts: Callable[..., Daemon], home: dict[str, str], tmp_path: Path, terminals: list[Terminal]
) -> None:
    daemon = accounts()
    assert connect(daemon, home, "--login", "alice", "--password-file", str(password_file(tmp_path))).returncode == 0
    ok(daemon, "user_revoke", name="alice")
    term = Terminal(connect_cmd(daemon.port, "--login", "alice", "--ca", str(daemon.pki.ca)), env=home)
    terminals.append(term)
    term.wait_for_line(r"error \(token_invalid\)")
    term.wait_for_input_line("password for alice:")
    term.send("wrong password")
    term.wait_for_input_line("password for alice: **************")  # masked
    term.send("\r")
    term.wait_for_line(r"error \(auth_failed\)")
    term.wait_for_input_line("password for alice:")
    term.send(PASSWORD + "\r")
    term.wait_for_input_line("[#lobby] alice>")
    term.send("\x1b[Ax")  # Up, then x (once x shows, Up was handled): the history kept no password
    term.wait_for_input_line("[#lobby] alice> x")
    term.send("\x7f")
    term.wait_for_input_line("[#lobby] alice>")
    term.send("\x04")
    assert term.wait_exit() == 0
    assert PASSWORD not in "\n".join(term.screen.all_lines())
    assert token_file(home, daemon).exists()
