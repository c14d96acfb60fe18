"""Accounts under attack, against a real chatd over real TLS (issue 21, "How it
will be checked"): login throttles that answer before any hash, the hashing
queue's bound, the chat answering while passwords are checked, address and
CIDR bans, and what the database and the log keep (hashes, never secrets).
127.0.0.0/8 is all local on Linux: each source address is another client
address for the throttles and the bans."""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, scrape, wait_until
from tests.support.accounts import FAST_ARGON2, database, greeted, ok, refused, rows, signed_in

PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"


def hashes(daemon: Daemon) -> float:
    return scrape(daemon)("chatd_password_hashes_total")


def logins(daemon: Daemon, result: str, method: str = "password") -> float:
    return scrape(daemon)("chatd_logins_total", method=method, result=result)


@pytest.fixture
def accounts(start_daemon: Callable[..., Daemon], short_dir: Path) -> Callable[..., Daemon]:
    def start(limits: dict[str, Any] | None = None, **accounts: Any) -> Daemon:
        return start_daemon(
            accounts={"argon2": FAST_ARGON2, **accounts},
            control={"socket": str(short_dir / "control.sock")},
            limits={"max_nick_attempts": 100, **(limits or {})},
        )

    return start


def test_the_sixth_failure_from_an_address_is_throttled_at_once_without_a_hash(
    accounts: Callable[..., Daemon],
) -> None:
    daemon = accounts()
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    alice.send("/remember")
    token = alice.readline().split(" ")[1]
    alice.close()
    attacker = greeted(daemon, source="127.0.0.2")
    for _ in range(5):
        refused(attacker, f"/login alice {WRONG}", "auth_failed")
    assert hashes(daemon) == 6  # the registration's, and five checks
    text = refused(attacker, f"/login alice {WRONG}", "auth_throttled")
    assert "try again in" in text
    refused(attacker, f"/login alice {PASSWORD}", "auth_throttled")  # the address, even with the password
    refused(attacker, f"/register bob * {PASSWORD}", "auth_throttled")
    assert hashes(daemon) == 6  # none of those ran a hash
    assert logins(daemon, "throttled") == 2
    daemon.wait_for_event("auth_throttled", account="alice", lockout=True)
    # The owner, from another address, is not locked out by 5 failures (the account's limit is 10) ...
    signed_in(daemon, f"/login alice {PASSWORD}", "alice", source="127.0.0.3").close()
    # ... and a token works even from the locked address.
    signed_in(daemon, f"/resume {token}", "alice", source="127.0.0.2")


def test_an_account_locked_out_by_failures_from_many_addresses_can_still_resume(
    accounts: Callable[..., Daemon],
) -> None:
    daemon = accounts(throttle={"account_failures": 4})
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice")
    alice.send("/remember")
    token = alice.readline().split(" ")[1]
    alice.close()
    for n in range(4):
        refused(greeted(daemon, source=f"127.0.0.{10 + n}"), f"/login alice {WRONG}", "auth_failed")
    before = hashes(daemon)
    refused(greeted(daemon, source="127.0.0.20"), f"/login alice {PASSWORD}", "auth_throttled")
    assert hashes(daemon) == before
    signed_in(daemon, f"/resume {token}", "alice", source="127.0.0.20")


def test_beyond_the_queue_a_check_is_answered_auth_busy(accounts: Callable[..., Daemon]) -> None:
    """One hashing thread, one place in the queue, and a slow hash (the cost is
    in the stored hash): while A's check runs and B's waits, C is refused at once."""
    daemon = accounts(auth_threads=1, auth_queue=1, argon2={"memory_kib": 16384, "time_cost": 150})
    signed_in(daemon, f"/register alice * {PASSWORD}", "alice", timeout=120).close()
    first, second, third = (greeted(daemon, source=f"127.0.0.{n}") for n in (2, 3, 4))
    first.send(f"/login alice {WRONG}")
    second.send(f"/login alice {WRONG}")
    wait_until(lambda: scrape(daemon)("chatd_auth_queue_length") == 1, 60, "B queued behind A")
    third.send(f"/login alice {WRONG}")
    assert third.expect("ERR auth_busy ").endswith("try again in a few seconds.")
    assert third.readline() == "NICK"
    assert logins(daemon, "busy") == 1
    # The two checks taken end as usual.
    for client in (first, second):
        client.expect("ERR auth_failed ", timeout=120)


def test_pings_are_answered_while_forty_password_checks_wait(accounts: Callable[..., Daemon]) -> None:
    """The chat does not wait for password hashing: a ping sent while checks
    are queued is answered before they have all been answered. (The p99
    figure is measured by `make bench`, not here.)"""
    daemon = accounts(
        auth_queue=64,
        argon2={"memory_kib": 4096, "time_cost": 20},
        throttle={"account_failures": 1000},
    )
    alice = signed_in(daemon, f"/register alice * {PASSWORD}", "alice", timeout=60)
    signed_in(daemon, f"/register bob * {PASSWORD}", "bob", timeout=60).close()
    attackers = [greeted(daemon, source=f"127.0.0.{10 + n}") for n in range(40)]
    for attacker in attackers:
        attacker.send(f"/login bob {WRONG}")
    wait_until(lambda: scrape(daemon)("chatd_auth_queue_length") > 0, 60, "checks queued")
    for _ in range(5):
        alice.sync(timeout=30)  # /ping, and its PONG
    figures = scrape(daemon)
    done = figures("chatd_logins_total", method="password", result="failure")
    assert done < 40, "every check had finished: the pings proved nothing"
    for attacker in attackers:
        attacker.expect("ERR auth_failed ", timeout=120)


def test_bans_by_address_and_network(accounts: Callable[..., Daemon]) -> None:
    daemon = accounts()
    victim = daemon.client("victim", source="127.0.0.2")
    bystander = daemon.client("bystander", source="127.0.0.3")
    result = ok(daemon, "ban_add", network="127.0.0.2", reason="go away")
    assert (result["network"], result["closed"]) == ("127.0.0.2/32", 1)
    assert victim.expect_closed()[-1] == "BYE banned go away"
    assert bystander.expect_eventually("LEAVE ") == "LEAVE victim banned go away"
    refused_client = daemon.client(source="127.0.0.2")
    lines = refused_client.expect_closed(timeout=10)
    assert lines == ["ERR banned Your address is banned from this server: go away", "BYE banned"], lines
    ok(daemon, "ban_add", network="127.0.0.16/28", for_s=3600)
    daemon.client(source="127.0.0.20").expect_refused("banned")
    daemon.client("outside", source="127.0.0.40")  # outside the network
    listed = [(b["network"], b["reason"], b["expires"] is not None) for b in ok(daemon, "ban_list")]
    assert listed == [("127.0.0.2/32", "go away", False), ("127.0.0.16/28", "", True)]
    ok(daemon, "ban_remove", network="127.0.0.16/28")
    daemon.client("back", source="127.0.0.20")
    assert scrape(daemon)("chatd_connections_refused_total", reason="banned") == 2
    assert daemon.find_events("ban_added") and daemon.find_events("ban_removed")


def test_the_database_keeps_hashes_and_no_secret_reaches_it_or_the_log(
    start_daemon: Callable[..., Daemon], short_dir: Path
) -> None:
    """At the default cost: passwords as argon2id hashes, tokens and invite
    codes as SHA-256; then a reload raises the cost and a login rehashes."""
    daemon = start_daemon(accounts={"registration": "invite"}, control={"socket": str(short_dir / "c.sock")})
    code = ok(daemon, "invite_create", note="for alice")["code"]
    alice = signed_in(daemon, f"/register alice {code} {PASSWORD}", "alice")
    alice.send("/remember")
    token = alice.readline().split(" ")[1]
    alice.send(f"/passwd {PASSWORD} two")
    alice.expect("INFO Your password is changed", timeout=30)
    alice.send("/remember")
    token2 = alice.readline().split(" ")[1]
    alice.close()
    refused(greeted(daemon), f"/login alice {WRONG}", "auth_failed")
    assert ok(daemon, "user_list")  # and the store has written everything
    [(password,)] = rows(daemon, "SELECT password FROM accounts")
    assert password.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), password
    assert rows(daemon, "SELECT hash FROM tokens") == [(hashlib.sha256(token2.encode()).hexdigest(),)]
    normalised = code.replace("-", "").upper()
    assert rows(daemon, "SELECT hash FROM invites") == [(hashlib.sha256(normalised.encode()).hexdigest(),)]
    # A higher cost from a reload: the next login rehashes.
    daemon.config["accounts"]["argon2"] = {"time_cost": 3}
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_event("config_reloaded")
    signed_in(daemon, f"/login alice {PASSWORD} two", "alice").close()
    daemon.wait_for_event("password_rehashed", account="alice")
    assert ok(daemon, "user_list")
    [(password,)] = rows(daemon, "SELECT password FROM accounts")
    assert password.startswith("$argon2id$v=19$m=19456,t=3,p=1$"), password
    secrets = [PASSWORD, f"{PASSWORD} two", WRONG, token, token2, code, normalised]
    files = [p for p in database(daemon).parent.iterdir() if p.name.startswith("chatd.db")]
    stored = b"".join(p.read_bytes() for p in files) + daemon.log().encode()
    for secret in secrets:
        assert secret.encode() not in stored, secret
