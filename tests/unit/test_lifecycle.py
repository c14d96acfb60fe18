"""chatd/transport/lifecycle.py: an endpoint's phases and its four deadlines,
driven with plain numbers for a clock: which deadline fires what, in which
phase, and which one the worker's timer must be armed for."""

from __future__ import annotations

import math

from chatd.transport.lifecycle import BYE_SECONDS, LINGER_SECONDS, Expiry, Lifecycle, Phase

HANDSHAKE_TIMEOUT = 10.0
WRITE_TIMEOUT = 30.0


def opened(at: float = 100.0) -> Lifecycle:
    life = Lifecycle(at, HANDSHAKE_TIMEOUT)
    life.opened()
    return life


def test_a_handshake_that_takes_too_long_fails_at_its_deadline() -> None:
    life = Lifecycle(100.0, HANDSHAKE_TIMEOUT)
    assert life.phase is Phase.HANDSHAKE
    assert life.next_deadline() == 110.0
    assert life.expired(109.9) is None
    assert life.expired(110.0) is Expiry.HANDSHAKE
    assert life.expired(200.0) is None  # spent: it fires once
    assert life.next_deadline() == math.inf


def test_an_open_connection_has_no_phase_deadline() -> None:
    life = opened()
    assert life.phase is Phase.OPEN
    assert life.next_deadline() == math.inf
    assert life.expired(1e9) is None


def test_the_application_deadline_fires_once_and_only_while_open() -> None:
    life = opened()
    life.set_app_deadline(150.0)
    assert life.next_deadline() == 150.0
    assert life.expired(149.0) is None
    assert life.expired(150.0) is Expiry.APP
    assert life.expired(151.0) is None
    assert life.next_deadline() == math.inf

    life.set_app_deadline(160.0)
    life.set_app_deadline(None)  # the application took it back
    assert life.expired(1e9) is None

    life.set_app_deadline(170.0)
    life.closing("quit", 169.0)
    assert life.expired(170.0) is None  # closing: the application has had its say


def test_a_refusing_socket_stalls_from_its_first_refusal_until_it_takes_everything() -> None:
    life = opened()
    assert life.write_refused(100.0, WRITE_TIMEOUT)
    assert not life.write_refused(120.0, WRITE_TIMEOUT)  # refused again: the deadline stays
    assert life.next_deadline() == 130.0
    assert life.expired(129.0) is None
    assert life.expired(130.0) is Expiry.STALL
    assert life.expired(131.0) is Expiry.STALL  # the connection ends on it: it is not spent

    life.written()
    assert life.expired(1e9) is None
    assert life.write_refused(200.0, WRITE_TIMEOUT)  # a new stall starts afresh
    assert life.next_deadline() == 230.0


def test_a_bye_has_its_own_deadline_then_the_linger_has_its_own() -> None:
    life = opened()
    life.set_app_deadline(500.0)
    life.closing("flood", 200.0)
    assert (life.phase, life.reason) == (Phase.CLOSING, "flood")
    assert life.awaits_linger()
    assert life.next_deadline() == 200.0 + BYE_SECONDS

    life.lingering(200.5)  # the BYE and the FIN left after half a second
    assert not life.awaits_linger()
    assert life.next_deadline() == 200.5 + LINGER_SECONDS
    assert life.expired(200.5 + LINGER_SECONDS) is Expiry.LINGER


def test_the_bye_deadline_caps_a_linger_that_began_late() -> None:
    life = opened()
    life.closing("quit", 200.0)
    life.lingering(202.0)  # the BYE took two seconds to leave
    assert life.next_deadline() == 200.0 + BYE_SECONDS
    assert life.expired(200.0 + BYE_SECONDS) is Expiry.BYE


def test_a_bye_that_does_not_leave_in_time_ends_the_connection() -> None:
    life = opened()
    life.closing("slow_consumer", 200.0)
    assert life.expired(200.0 + BYE_SECONDS - 0.01) is None
    assert life.expired(200.0 + BYE_SECONDS) is Expiry.BYE


def test_the_most_final_deadline_wins_when_several_have_passed() -> None:
    life = opened()
    life.set_app_deadline(101.0)
    life.write_refused(100.0, 1.0)
    assert life.expired(105.0) is Expiry.STALL  # not the application's on_timer first

    life = opened()
    life.closing("quit", 100.0)
    life.write_refused(100.0, 1.0)
    assert life.expired(100.0 + BYE_SECONDS) is Expiry.BYE


def test_closed_keeps_the_first_reason_and_drops_every_deadline() -> None:
    life = opened()
    life.set_app_deadline(150.0)
    life.write_refused(100.0, WRITE_TIMEOUT)
    assert life.closed("connection_lost") == "connection_lost"
    assert life.phase is Phase.CLOSED
    assert life.next_deadline() == math.inf
    assert life.expired(1e9) is None

    life = opened()
    life.closing("quit", 100.0)
    assert life.closed("connection_lost") == "quit"  # it was closing for that
