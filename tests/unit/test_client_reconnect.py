"""chatctl/reconnect.py: when to reconnect, how long to wait, how the rooms come back."""

from __future__ import annotations

import ssl

import pytest

from chatctl.connection import ClientError, Exit
from chatctl.reconnect import (
    BACKOFF_MAX,
    STABLE_AFTER,
    Attempts,
    Outbox,
    Restore,
    backoff,
    gives_up,
    reconnects_after_bye,
)
from chatctl.state import ClientState, split_line


def test_backoff_doubles_from_half_a_second_to_thirty() -> None:
    middle = [backoff(attempt, lambda: 0.5) for attempt in range(1, 10)]
    assert middle == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff(10_000, lambda: 0.5) == BACKOFF_MAX


def test_backoff_jitter_is_a_quarter_either_way() -> None:
    assert backoff(1, lambda: 0.0) == 0.375
    assert backoff(1, lambda: 1.0) == 0.625
    assert backoff(7, lambda: 0.0) == 22.5
    waits = {backoff(3) for _ in range(50)}
    assert all(1.5 <= wait <= 2.5 for wait in waits) and len(waits) > 1


def test_attempts_start_afresh_after_a_connection_that_stayed_up() -> None:
    attempts = Attempts()
    assert [attempts.next(now) for now in (0.0, 1.0, 3.0)] == [1, 2, 3]
    attempts.registered(10.0)
    assert attempts.next(10.0 + STABLE_AFTER - 0.1) == 4  # a short connection: the backoff goes on
    assert attempts.next(100.0) == 5  # not registered since: still counting
    attempts.registered(200.0)
    assert attempts.next(200.0 + STABLE_AFTER) == 1 and attempts.count == 1
    assert attempts.next(500.0) == 2


@pytest.mark.parametrize(
    ("reason", "again"),
    [
        ("shutdown", True),
        ("slow_consumer", True),
        ("write_timeout", True),
        ("shutdown bye all", True),
        ("quit", False),
        ("kicked spamming", False),
        ("flood", False),
        ("too_many_errors", False),
        ("nick_failed", False),
        ("register_timeout", False),
        ("server_full", False),
        ("throttled", False),
        ("", False),
    ],
)
def test_which_bye_reasons_are_worth_coming_back_from(reason: str, again: bool) -> None:
    assert reconnects_after_bye(reason) is again


@pytest.mark.parametrize(
    ("status", "give_up"),
    [
        (Exit.TLS_VERIFY, True),
        (Exit.USAGE, True),
        (Exit.UNREACHABLE, False),
        (Exit.TLS_HANDSHAKE, False),
        (Exit.DROPPED, False),
    ],
)
def test_which_failed_attempts_end_the_session(status: Exit, give_up: bool) -> None:
    assert gives_up(ClientError(status, "x")) is give_up


def run_restore(restore: Restore, *lines: str) -> tuple[ClientState, list[str]]:
    state = ClientState()
    sent: list[str] = []
    for line in lines:
        state.on_line(line)
        sent += restore.on_line(*split_line(line), state)
    return state, sent


AUTOJOIN_LOBBY = (
    "HELLO 3 chatd 0.3.0",
    "NICK",
    "WELCOME carol hi",
    "JOIN #lobby carol",
    "USERS #lobby carol",
    "HISTORY #lobby 0 end",
    "CURRENT #lobby",
)


def test_restore_joins_the_missing_rooms_then_the_current_one() -> None:
    restore = Restore(["#lobby", "#rust", "#ops"], "#rust")
    _state, sent = run_restore(restore, *AUTOJOIN_LOBBY)
    assert sent == ["/join #rust", "/join #ops", "/join #rust"]
    assert run_restore(restore, "CURRENT #lobby")[1] == []  # once
    restore.acked(["/join #rust", "/history #lobby after 3 500"])
    restore.acked(["/join #ops"])
    assert not restore.done
    restore.acked(["/join #rust"])
    assert restore.done


def test_restore_sends_nothing_before_the_autojoin_is_over() -> None:
    restore = Restore(["#rust"], "#rust")
    _state, sent = run_restore(restore, *AUTOJOIN_LOBBY[:-1])
    assert sent == [] and not restore.done


def test_restore_skips_a_switch_to_where_it_already_is() -> None:
    _state, sent = run_restore(Restore(["#lobby", "#rust"], "#rust"), *AUTOJOIN_LOBBY)
    assert sent == ["/join #rust"]
    restore = Restore(["#lobby"], "#LOBBY")
    _state, sent = run_restore(restore, *AUTOJOIN_LOBBY)
    assert sent == [] and restore.done  # nothing to do: done at once


def test_restore_parts_autojoined_rooms_you_had_left() -> None:
    _state, sent = run_restore(Restore(["#rust"], "#rust"), *AUTOJOIN_LOBBY)
    assert sent == ["/join #rust", "/part #lobby", "/join #rust"]


def test_restore_when_you_were_in_no_room() -> None:
    _state, sent = run_restore(Restore([], None), *AUTOJOIN_LOBBY)
    assert sent == ["/part #lobby"]
    restore = Restore([], None)
    _state, sent = run_restore(restore, "HELLO 3 x", "NICK", "WELCOME carol hi", "CURRENT *")
    assert sent == [] and restore.done


def test_restore_on_a_v1_server_is_done_at_welcome() -> None:
    restore = Restore([], None)
    _state, sent = run_restore(restore, "NICK", "WELCOME carol hi")
    assert sent == [] and restore.done


def test_the_outbox_sends_a_few_commands_then_a_ping_and_waits_for_its_pong() -> None:
    outbox = Outbox("me")
    assert outbox.idle
    assert outbox.push("/join #a") == ["/join #a", "/ping me-1"]
    for room in "bcdef":
        assert outbox.push(f"/join #{room}") == []
    assert outbox.in_flight == ["/join #a"] and not outbox.idle
    assert outbox.on_pong("someone-else") is None
    assert outbox.on_pong("me-1") == (["/join #a"], ["/join #b", "/join #c", "/join #d", "/join #e", "/ping me-2"])
    assert outbox.on_pong("me-1") is None  # not twice
    assert outbox.on_pong("me-2") == (["/join #b", "/join #c", "/join #d", "/join #e"], ["/join #f", "/ping me-3"])
    assert outbox.on_pong("me-3") == (["/join #f"], [])
    assert outbox.idle and outbox.in_flight == []


def test_a_history_request_goes_alone() -> None:
    outbox = Outbox("me")
    outbox.push("/join #a")
    for command in ("/join #b", "/history #a after 1 500", "/history #b after 2 500", "/join #c"):
        outbox.push(command)
    assert outbox.history_in_flight is None
    assert outbox.on_pong("me-1") == (["/join #a"], ["/join #b", "/ping me-2"])
    assert outbox.on_pong("me-2") == (["/join #b"], ["/history #a after 1 500", "/ping me-3"])
    assert outbox.history_in_flight == "/history #a after 1 500"
    assert outbox.on_pong("me-3") == (["/history #a after 1 500"], ["/history #b after 2 500", "/ping me-4"])
    assert outbox.on_pong("me-4") == (["/history #b after 2 500"], ["/join #c", "/ping me-5"])
    assert outbox.history_in_flight is None


def test_the_outbox_forgets_everything_when_the_connection_is_lost() -> None:
    outbox = Outbox("me")
    outbox.push("/join #rust")
    outbox.push("/join #ops")
    outbox.reset()
    assert outbox.idle and outbox.on_pong("me-1") is None
    assert outbox.push("/join #x") == ["/join #x", "/ping me-2"]  # a new token: no stale PONG matches


def test_a_dialer_of_several_nodes_starts_after_the_one_connected_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """`chatctl connect A B`: the first connection goes to A; once it is lost,
    B is tried first and A only if B does not answer."""
    from chatctl import connection

    down: set[int] = set()
    tried: list[int] = []

    def open_connection(address: connection.Address, context: object, timeout: float) -> object:
        tried.append(address.port)
        if address.port in down:
            raise connection.ClientError(connection.Exit.UNREACHABLE, f"{address} refused the connection")
        return f"socket to {address.port}"

    monkeypatch.setattr(connection, "open_connection", open_connection)
    dialer = connection.Dialer(
        [connection.Address("a", 1), connection.Address("b", 2)], ssl.create_default_context(), 5
    )
    assert dialer.connect() == "socket to 1" and tried == [1]
    assert dialer.connect() == "socket to 2" and tried == [1, 2]  # A was lost: B first
    down.add(1)
    assert dialer.connect() == "socket to 2" and tried == [1, 2, 1, 2]
    assert dialer.address == connection.Address("b", 2)
    down.add(2)
    with pytest.raises(connection.ClientError, match="b:2 refused"):
        dialer.connect()
