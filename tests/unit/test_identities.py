"""chatd/core/identities.py: one spelling per certificate identity, the first
seen (the sessions that refuse another: tests/unit/test_session.py)."""

from __future__ import annotations

import threading

from chatd.core.identities import Identities


def test_the_first_spelling_seen_is_the_identitys() -> None:
    remembered: list[tuple[str, str]] = []
    identities = Identities({}, lambda key, spelling: remembered.append((key, spelling)))
    assert identities.claim("alice") is None
    assert identities.claim("alice") is None  # the same spelling again
    assert identities.claim("ALICE") == "alice"
    assert identities.claim("Alice") == "alice"
    assert identities.claim("Bob") is None
    assert identities.claim("bob") == "Bob"
    assert remembered == [("alice", "alice"), ("bob", "Bob")]  # each new identity once


def test_identities_known_at_start_are_kept() -> None:
    remembered: list[tuple[str, str]] = []
    identities = Identities({"alice": "Alice"}, lambda key, spelling: remembered.append((key, spelling)))
    assert identities.claim("alice") == "Alice"
    assert identities.claim("Alice") is None
    assert remembered == []


def test_two_spellings_at_once_one_wins() -> None:
    identities = Identities({}, lambda key, spelling: None)
    spellings = ["carol", "Carol", "CAROL", "cArOl"] * 25
    results: list[str | None] = [None] * len(spellings)
    barrier = threading.Barrier(len(spellings))

    def claim(index: int) -> None:
        barrier.wait(timeout=10)
        results[index] = identities.claim(spellings[index])

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(spellings))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    winners = {spellings[i] for i, known in enumerate(results) if known is None}
    assert len(winners) == 1
    assert {known for known in results if known is not None} <= winners
