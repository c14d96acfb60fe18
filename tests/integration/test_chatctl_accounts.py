"""`chatctl user|invite|ban` against a real chatd over its control socket
(docs/operations.md, "Accounts"), with line clients signing in over real
TLS: the password chatctl reads is hashed by chatctl (argon2id at the
config's cost) and never reaches the daemon's database or log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.conftest import REPO, Daemon
from tests.support.accounts import FAST_ARGON2, database, greeted, refused, rows, signed_in

PASSWORD = "operator typed this 1"
OTHER = "and then changed it 2"


@pytest.fixture
def accounts(start_daemon: Callable[..., Daemon], short_dir: Path) -> Callable[..., Daemon]:
    """Factory: a chatd with accounts (cheap argon2id), a control socket, room for refusals."""

    def start(**accounts: Any) -> Daemon:
        return start_daemon(
            accounts={"argon2": FAST_ARGON2, **accounts},
            control={"socket": str(short_dir / "control.sock")},
            limits={"max_nick_attempts": 20},
        )

    return start


def chatctl(daemon: Daemon, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`chatctl ARGS... --config <the daemon's config>` (stdin: `stdin`, else nothing)."""
    return subprocess.run(
        [sys.executable, "-m", "chatctl", *args, "--config", str(daemon.config_path)],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def stored_bytes(daemon: Daemon) -> bytes:
    """Everything in the daemon's database files (the WAL too)."""
    base = database(daemon)
    return b"".join(path.read_bytes() for path in base.parent.glob(base.name + "*"))


def assert_secret_nowhere(daemon: Daemon, *secrets: str) -> None:
    for secret in secrets:
        assert secret.encode() not in stored_bytes(daemon), f"{secret!r} is in the database"
        assert secret not in daemon.log(), f"{secret!r} is in the log"


def test_user_add_from_stdin_then_a_client_logs_in(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    added = chatctl(daemon, "user", "add", "Dana", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "added the account Dana\n"
    (stored,) = rows(daemon, "SELECT password FROM accounts WHERE name = ?", "Dana")
    # argon2id at the config's cost: chatctl read accounts.argon2 from --config.
    assert stored[0].startswith("$argon2id$v=19$m=256,t=1,p=1$"), stored
    signed_in(daemon, f"/login dana {PASSWORD}", "Dana")
    assert daemon.wait_for_event("login_succeeded", account="Dana")["method"] == "password"
    listed = json.loads(chatctl(daemon, "user", "list", "--json").stdout)
    assert [(a["name"], a["disabled"]) for a in listed] == [("Dana", False)]
    table = chatctl(daemon, "user", "--json", "list").stdout  # before the action too
    assert json.loads(table) == listed
    human = chatctl(daemon, "user", "list").stdout.splitlines()
    assert human[0].split() == ["NAME", "CREATED", "STATUS"]
    assert human[1].startswith("Dana ") and human[1].endswith(" active") and human[-1] == "1 account"
    assert_secret_nowhere(daemon, PASSWORD)


def test_passwd_disable_enable_sessions_revoke_delete(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    assert chatctl(daemon, "user", "add", "dana", "--password-stdin", stdin=PASSWORD).returncode == 0
    dana = signed_in(daemon, f"/login dana {PASSWORD}", "dana")
    dana.send("/remember")
    dana.expect("TOKEN ")
    sessions = json.loads(chatctl(daemon, "user", "sessions", "dana", "--json").stdout)
    assert sessions["connection"]["method"] == "password" and len(sessions["tokens"]) == 1
    token_id = sessions["tokens"][0]["id"]
    shown = chatctl(daemon, "user", "sessions", "dana").stdout
    assert "dana: connected from 127.0.0.1:" in shown and token_id in shown and "1 token\n" in shown

    changed = chatctl(daemon, "user", "passwd", "dana", "--password-stdin", stdin=OTHER + "\n")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout == "changed the password of dana; 1 token(s) revoked\n"
    assert dana.expect_closed()[-1].startswith("BYE kicked")
    guest = greeted(daemon)
    refused(guest, f"/login dana {PASSWORD}", "auth_failed")
    dana = signed_in(daemon, f"/login dana {OTHER}", "dana")

    disabled = chatctl(daemon, "user", "disable", "dana", "--reason", "spamming links")
    assert disabled.returncode == 0 and disabled.stdout == "disabled dana (disabled: spamming links)\n"
    assert dana.expect_closed()[-1] == "BYE banned spamming links"
    assert "spamming links" in refused(guest, f"/login dana {OTHER}", "account_disabled")
    assert "disabled: spamming links" in chatctl(daemon, "user", "list").stdout
    assert chatctl(daemon, "user", "enable", "dana").stdout == "enabled dana\n"
    dana = signed_in(daemon, f"/login dana {OTHER}", "dana")
    dana.send("/remember")
    dana.expect("TOKEN ")
    revoked = chatctl(daemon, "user", "revoke", "dana")
    assert revoked.returncode == 0 and revoked.stdout == "revoked 1 token(s) of dana\n"

    assert chatctl(daemon, "user", "delete", "dana").stdout == "deleted dana; the name stays reserved\n"
    refused(guest, f"/login dana {OTHER}", "auth_failed")
    assert chatctl(daemon, "user", "list", "--json").stdout.strip() == "[]"
    missing = chatctl(daemon, "user", "enable", "nobody")
    assert missing.returncode == 1 and "there is no account nobody" in missing.stderr
    assert_secret_nowhere(daemon, PASSWORD, OTHER)


def test_a_password_is_never_taken_from_the_command_line(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    for args in (["--password", PASSWORD], [f"--password={PASSWORD}"]):
        result = chatctl(daemon, "user", "add", "dana", *args)
        assert result.returncode == 2, result
        assert "never taken from the command line" in result.stderr and "--password-stdin" in result.stderr
    extra = chatctl(daemon, "user", "add", "dana", PASSWORD)  # no positional password either
    assert extra.returncode == 2 and "unrecognized arguments" in extra.stderr
    # Without a terminal and without --password-stdin there is nobody to ask.
    no_terminal = chatctl(daemon, "user", "add", "dana")
    assert no_terminal.returncode == 2 and "--password-stdin" in no_terminal.stderr
    short = chatctl(daemon, "user", "passwd", "dana", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "shorter than 8 characters" in short.stderr
    assert not daemon.find_events("operator_user_add") and not daemon.find_events("operator_user_passwd")
    assert chatctl(daemon, "user", "list", "--json").stdout.strip() == "[]"


def test_user_add_asks_twice_on_a_terminal_without_echo(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    argv = ["-m", "chatctl", "user", "add", "erin", "--config", str(daemon.config_path)]
    child = pexpect.spawn(sys.executable, argv, cwd=str(REPO), encoding="utf-8", timeout=30)
    try:
        child.expect("new password for erin: ")
        child.sendline(PASSWORD)
        child.expect("the same password again: ")
        child.sendline(PASSWORD)
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert child.exitstatus == 0, output
    assert "added the account erin" in output and PASSWORD not in output  # not echoed
    signed_in(daemon, f"/login erin {PASSWORD}", "erin")

    child = pexpect.spawn(sys.executable, [*argv[:4], "frank", *argv[5:]], cwd=str(REPO), encoding="utf-8")
    try:
        child.expect("new password for frank: ")
        child.sendline(PASSWORD)
        child.expect("the same password again: ")
        child.sendline(OTHER)
        child.expect(pexpect.EOF)
        output = child.before
    finally:
        child.close()
    assert child.exitstatus == 2 and "the two passwords differ; nothing was changed" in output


def test_invite_create_prints_the_code_once_and_a_single_use_works_once(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts(registration="invite", guests=False)
    created = chatctl(daemon, "invite", "create", "--uses", "1", "--expires", "7d", "--note", "for erin")
    assert created.returncode == 0, created.stderr
    code = re.search(r"^code  (\S+)$", created.stdout, re.M)
    assert code, created.stdout
    link = f"link  https://127.0.0.1:{daemon.port}/#invite={code[1]}"
    assert link in created.stdout.splitlines(), created.stdout
    assert "invite 1: 1 use, expires " in created.stdout and "shown this once" in created.stdout

    erin = signed_in(daemon, f"/register erin {code[1]} {PASSWORD}", "erin")
    erin.close()
    refused(greeted(daemon), f"/register frank {code[1]} {PASSWORD}", "invite_invalid")
    (invite,) = json.loads(chatctl(daemon, "invite", "list", "--json").stdout)
    assert (invite["uses_left"], invite["used"], invite["note"]) == (0, 1, "for erin")
    assert "code" not in invite
    table = chatctl(daemon, "invite", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "USES-LEFT", "USED", "EXPIRES", "NOTE"] and table[1].endswith("for erin")

    as_json = json.loads(chatctl(daemon, "invite", "create", "--uses", "3", "--json").stdout)
    assert as_json["uses_left"] == 3 and as_json["expires"] is None
    assert as_json["link"] == f"https://127.0.0.1:{daemon.port}/#invite={as_json['code']}"
    named = chatctl(daemon, "invite", "create", "--url-host", "chat.example.org").stdout
    assert f"https://chat.example.org:{daemon.port}/#invite=" in named
    assert chatctl(daemon, "invite", "revoke", str(as_json["id"])).stdout == f"revoked invite {as_json['id']}\n"
    refused(greeted(daemon), f"/register frank {as_json['code']} {PASSWORD}", "invite_invalid")
    assert_secret_nowhere(daemon, code[1], as_json["code"], PASSWORD)


def test_ban_a_network_refuses_its_clients_until_removed(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    alice = daemon.client("alice", source="127.0.0.7")
    added = chatctl(daemon, "ban", "add", "127.0.0.0/24", "--for", "1d", "--reason", "spam")
    assert added.returncode == 0, added.stderr
    assert re.fullmatch(r"banned 127\.0\.0\.0/24 until \S+ \S+Z; 1 connection closed\n", added.stdout), added.stdout
    assert alice.expect_closed()[-1] == "BYE banned spam"
    newcomer = daemon.client(source="127.0.0.9")
    assert newcomer.expect_closed() == ["ERR banned Your address is banned from this server: spam", "BYE banned"]
    (ban,) = json.loads(chatctl(daemon, "ban", "list", "--json").stdout)
    assert ban["network"] == "127.0.0.0/24" and ban["reason"] == "spam" and ban["expires"]
    assert chatctl(daemon, "ban", "list").stdout.splitlines()[1].startswith("127.0.0.0/24 ")
    assert chatctl(daemon, "ban", "remove", "127.0.0.0/24").stdout == "removed the ban of 127.0.0.0/24\n"
    daemon.client("bob", source="127.0.0.9")
    unknown = chatctl(daemon, "ban", "remove", "10.0.0.0/8")
    assert unknown.returncode == 1 and "there is no ban" in unknown.stderr


def test_account_commands_without_a_daemon_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "chatd.yaml"
    config.write_text(f"control:\n  socket: {tmp_path / 'none.sock'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "chatctl", "ban", "list", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 3 and "is chatd running" in result.stderr
