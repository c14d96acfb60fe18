"""The pure parts of `make bench`'s accounts scenario (bench/signin.py,
bench/logins.py, bench/accounts.py): client addresses, round trips by
window, ratios, the sign-in client's reading of the server's lines, and the
report's rows. The scenario itself runs in tests/integration/test_bench_smoke.py."""

from __future__ import annotations

import ipaddress

import pytest

from bench.accounts import FANOUT_GOAL, KEY, NOACCOUNTS, PING_GOAL, accounts_checks, accounts_section
from bench.dialects import RegistrationFailed
from bench.logins import ratio, windowed
from bench.signin import SignIn, loopback


def test_loopback_addresses_are_distinct_hosts_of_127_8_from_127_0_0_2() -> None:
    addresses = [loopback(n) for n in range(1, 2000)]
    assert addresses[0] == "127.0.0.2"
    assert loopback(253) == "127.0.0.254" and loopback(254) == "127.0.1.1"  # no .255, no .0
    assert len(set(addresses)) == len(addresses)
    for text in addresses:
        address = ipaddress.IPv4Address(text)
        assert address.is_loopback
        assert text.rsplit(".", 1)[1] not in ("0", "255")


def test_round_trips_are_grouped_by_the_window_they_were_sent_in() -> None:
    windows = [(0, 100, "idle"), (100, 200, "flood"), (250, 300, "idle")]
    samples = [(0, 1), (99, 2), (100, 3), (199, 4), (220, 5), (250, 6), (300, 7)]
    assert windowed(samples, windows) == {"idle": [1, 2, 6], "flood": [3, 4]}  # 220 drains, 300 is after


def test_ratio_is_none_without_both_numbers() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def _feed(client: SignIn, *lines: bytes) -> bytes:
    return b"".join(client.feed(line + b"\n") for line in lines)


def test_sign_in_answers_nick_with_its_line_and_keeps_the_token() -> None:
    client = SignIn("/login u1 secret words", remember=True)
    assert _feed(client, b"HELLO 4 chatd 0.4.0", b"ACCOUNTS registration=open guests=yes") == b""
    assert _feed(client, b"NICK") == b"/login u1 secret words\n"
    assert _feed(client, b"WELCOME u1 hi", b"JOIN #lobby u1", b"USERS #lobby u1") == b""
    assert client.t_welcome and not client.done
    assert _feed(client, b"@id=3;time=x MSG #lobby bob old", b"HISTORY #lobby 1 0", b"CURRENT #lobby") == b"/remember\n"
    assert client.feed(b"TOKEN abc_DEF-123 2027-01-01T00:00:00.000Z\nPONG 1\n") == b""
    assert client.done and client.token == "abc_DEF-123"
    assert client.leftover == b"PONG 1\n"


def test_sign_in_without_remember_is_registered_at_current() -> None:
    client = SignIn("/resume tok")
    assert _feed(client, b"HELLO 4 chatd", b"NICK") == b"/resume tok\n"
    _feed(client, b"WELCOME u1 hi", b"CURRENT #lobby")
    assert client.done and client.token == ""


@pytest.mark.parametrize(
    "lines",
    [
        (b"HELLO 3 chatd",),  # no accounts before v4
        (b"HELLO 4 chatd", b"NICK", b"ERR token_invalid unknown token"),
        (b"HELLO 4 chatd", b"BYE banned"),
    ],
)
def test_sign_in_fails_on_a_refusal_or_an_older_protocol(lines: tuple[bytes, ...]) -> None:
    with pytest.raises(RegistrationFailed):
        _feed(SignIn("/resume tok"), *lines)


def _record(key: str, target: str = "chatd", run: int = 1, **fields: object) -> dict[str, object]:
    return {"key": key, "target": target, "run": run, "ok": True, **fields}


def test_the_targets_table_checks_the_issue_goals() -> None:
    records = [
        _record(
            KEY,
            logins=800,
            logins_per_s=42.0,
            hash_cpu_ms=20.0,
            ping_p99_ratio=1.5,
            ping_idle={"p99_ms": 2.0},
            ping_flood={"p99_ms": 3.0},
            resume_per_s=900,
            resume_server_cpu_ms_each=0.8,
            guest_per_s=1200,
        ),
        _record("fanout-50", msgs_per_s=100.0),
        _record("fanout-50", NOACCOUNTS, msgs_per_s=104.0),
        _record("fanout-50", run=2, msgs_per_s=100.0),
        _record("fanout-50", NOACCOUNTS, run=2, msgs_per_s=100.0),
    ]
    checks = {name: (measured, goal, met) for name, measured, goal, met in accounts_checks(records)}
    sign_ins = checks["accounts: sign-ins/s at the default argon2id cost"]
    assert sign_ins[0].startswith("42.0/s") and "50/s per busy core" in sign_ins[0] and sign_ins[2] is None
    assert checks["accounts: `/ping` p99 during a login flood / idle (server pinned)"] == (
        "1.50× (3.00 / 2.00 ms)",
        f"≤ {PING_GOAL:g}×",
        True,
    )
    resumes = checks["accounts: resumes/s with tokens (800 at once)"]
    assert resumes[0] == "900/s (guests, same storm: 1,200/s; server CPU 0.80 ms each: 1,250/s per busy core)"
    assert resumes[2] is False
    fanout = checks["fanout-50: chatd (accounts on) / chatd-noaccounts delivered msg/s"]
    assert fanout[0].startswith("0.98× (runs 0.96–1.00)") and fanout[1] == f"≥ {FANOUT_GOAL}×" and fanout[2] is True


def test_a_flood_that_doubles_the_p99_fails_and_no_records_make_no_section() -> None:
    records = [_record(KEY, ping_p99_ratio=2.5, ping_idle={"p99_ms": 1.0}, ping_flood={"p99_ms": 2.5})]
    (check,) = accounts_checks(records)
    assert check[3] is False
    assert "## 10. Accounts" in accounts_section(records)
    assert accounts_section([_record("fanout-50", msgs_per_s=1.0)]) == ""
