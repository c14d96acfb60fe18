"""chatd/core/nicks.py: the server-wide, case-insensitive nickname registry, with fake members."""

from __future__ import annotations

import pytest

from chatd import names
from chatd.core import protocol
from chatd.core.nicks import Nicks
from chatd.errors import ProtocolError
from tests.conftest import run_threads
from tests.support.members import FakeMember


@pytest.fixture
def nicks() -> Nicks:
    return Nicks()


def claimed(nicks: Nicks, *names: str) -> list[FakeMember]:
    members = []
    for name in names:
        member = FakeMember(label=name)
        nicks.claim(member, name, b"WELCOME " + name.encode() + b"\n")
        members.append(member)
    for member in members:
        member.received.clear()
    return members


# -- claim ----------------------------------------------------------------------------------


def test_claim_names_the_member_and_greets_it_alone(nicks: Nicks) -> None:
    (alice,) = claimed(nicks, "alice")
    bob = FakeMember()
    nicks.claim(bob, "bob", b"WELCOME bob hi\n")
    assert bob.nick == "bob"
    assert bob.received == [b"WELCOME bob hi\n"]
    assert alice.received == []  # announcements are the rooms' business, not the registry's
    assert len(nicks) == 2


@pytest.mark.parametrize("taken", ["alice", "Alice", "ALICE", "aLiCe"])
def test_claim_refuses_a_nick_taken_in_any_case(nicks: Nicks, taken: str) -> None:
    (alice,) = claimed(nicks, "alice")
    late = FakeMember()
    with pytest.raises(ProtocolError) as info:
        nicks.claim(late, taken, b"WELCOME\n")
    assert info.value.code == protocol.NICK_TAKEN
    assert late.nick == "" and late.received == []  # no WELCOME for a refused nick
    assert nicks.find("alice") is alice
    assert [m.nick for m in nicks.members()] == ["alice"]


def test_the_chosen_case_is_kept(nicks: Nicks) -> None:
    claimed(nicks, "AliCe")
    found = nicks.find("alice")
    assert found is not None and found.nick == "AliCe"


def test_a_refused_member_can_claim_another_nick(nicks: Nicks) -> None:
    claimed(nicks, "alice")
    member = FakeMember()
    with pytest.raises(ProtocolError):
        nicks.claim(member, "ALICE", b"")
    nicks.claim(member, "alice2", b"")
    assert sorted(m.nick for m in nicks.members()) == ["alice", "alice2"]


# -- find, members, len ----------------------------------------------------------------------


def test_find_is_case_insensitive(nicks: Nicks) -> None:
    alice, bob = claimed(nicks, "Alice", "bob")
    assert nicks.find("alice") is alice
    assert nicks.find("ALICE") is alice
    assert nicks.find("BoB") is bob
    assert nicks.find("carol") is None
    assert nicks.find("") is None


def test_members_and_len(nicks: Nicks) -> None:
    members = claimed(nicks, "alice", "Bob", "carol")
    assert set(nicks.members()) == set(members)
    assert len(nicks) == 3


# -- rename ------------------------------------------------------------------------------


def test_rename_moves_the_nick_and_returns_the_old_one(nicks: Nicks) -> None:
    alice, bob = claimed(nicks, "alice", "bob")
    assert nicks.rename(alice, "alicia") == "alice"
    assert alice.nick == "alicia"
    assert nicks.find("alicia") is alice
    assert nicks.find("alice") is None
    assert alice.received == bob.received == []  # RENAME lines are Chat's (test_session.py)


def test_the_old_nick_is_free_after_a_rename(nicks: Nicks) -> None:
    (alice,) = claimed(nicks, "alice")
    nicks.rename(alice, "alicia")
    newcomer = FakeMember()
    nicks.claim(newcomer, "Alice", b"")
    assert nicks.find("alice") is newcomer
    assert nicks.find("alicia") is alice


@pytest.mark.parametrize("new", ["ALICE", "Alice", "aLIce"])
def test_rename_to_own_nick_in_another_case_is_allowed(nicks: Nicks, new: str) -> None:
    alice, _ = claimed(nicks, "alice", "bob")
    assert nicks.rename(alice, new) == "alice"
    assert alice.nick == new
    assert nicks.find("alice") is alice
    assert len(nicks) == 2


@pytest.mark.parametrize("taken", ["bob", "BOB", "Bob"])
def test_rename_refuses_a_nick_taken_in_any_case(nicks: Nicks, taken: str) -> None:
    alice, bob = claimed(nicks, "alice", "bob")
    with pytest.raises(ProtocolError) as info:
        nicks.rename(alice, taken)
    assert info.value.code == protocol.NICK_TAKEN
    assert alice.nick == "alice"
    assert nicks.find("alice") is alice
    assert nicks.find("bob") is bob


# -- release --------------------------------------------------------------------------------


def test_release_frees_the_nick(nicks: Nicks) -> None:
    alice, _ = claimed(nicks, "alice", "bob")
    assert nicks.release(alice) is True
    assert nicks.find("alice") is None
    assert [m.nick for m in nicks.members()] == ["bob"]
    again = FakeMember()
    nicks.claim(again, "ALICE", b"")
    assert nicks.find("alice") is again


def test_release_after_rename_frees_the_new_nick(nicks: Nicks) -> None:
    (alice,) = claimed(nicks, "alice")
    nicks.rename(alice, "alicia")
    assert nicks.release(alice) is True
    assert nicks.find("alicia") is None and nicks.find("alice") is None
    assert len(nicks) == 0


def test_release_of_a_non_member_is_a_no_op(nicks: Nicks) -> None:
    alice, _ = claimed(nicks, "alice", "bob")
    assert nicks.release(FakeMember()) is False
    impostor = FakeMember()
    impostor.nick = "alice"  # same nick, not the registered member
    assert nicks.release(impostor) is False
    assert nicks.find("alice") is alice
    assert len(nicks) == 2


def test_release_twice_is_false_the_second_time(nicks: Nicks) -> None:
    (alice,) = claimed(nicks, "alice")
    assert nicks.release(alice) is True
    assert nicks.release(alice) is False


# -- threads ---------------------------------------------------------------------------------


class QuietMember:
    """A member that drops deliveries: the thread tests check the registry only."""

    def __init__(self, label: str) -> None:
        self.nick = ""
        self.label = label
        self.shared = None  # delivered to alone

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        pass


def assert_consistent(nicks: Nicks, expected: set[QuietMember]) -> None:
    members = nicks.members()
    assert set(members) == expected
    assert len(members) == len(expected) == len(nicks)
    keys = [names.nick_key(member.nick) for member in members]
    assert len(keys) == len(set(keys)), "a nick is registered twice"
    for member in expected:
        assert nicks.find(member.nick) is member
        assert nicks.find(member.nick.upper()) is member


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_claims_leave_a_consistent_registry(nicks: Nicks) -> None:
    threads, unique, shared = 8, 200, 50
    won: list[list[QuietMember]] = [[] for _ in range(threads)]
    lost: list[list[QuietMember]] = [[] for _ in range(threads)]

    def work(t: int) -> None:
        for i in range(unique):
            member = QuietMember(f"t{t}-{i}")
            nicks.claim(member, f"u{t}_{i}", b"")
            won[t].append(member)
            # Everyone also races for the shared nicks, each thread in its own case.
            nick = f"shared{i % shared}"
            nick = nick.upper() if t % 2 else nick
            contender = QuietMember(f"t{t}-shared-{i}")
            try:
                nicks.claim(contender, nick, b"")
            except ProtocolError as error:
                assert error.code == protocol.NICK_TAKEN
                lost[t].append(contender)
            else:
                won[t].append(contender)

    run_threads(threads, work)
    winners = {m for per_thread in won for m in per_thread}
    assert len(winners) == threads * unique + shared
    assert all(m.nick == "" for per_thread in lost for m in per_thread)
    assert_consistent(nicks, winners)


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_claims_renames_and_releases(nicks: Nicks) -> None:
    threads, per_thread = 8, 100
    final: list[set[QuietMember]] = [set() for _ in range(threads)]

    def work(t: int) -> None:
        mine = []
        for i in range(per_thread):
            member = QuietMember(f"t{t}-{i}")
            nicks.claim(member, f"n{t}_{i}", b"")
            mine.append(member)
        for i, member in enumerate(mine):
            if i % 3 == 0:
                assert nicks.release(member) is True
            elif i % 3 == 1:
                # Only one thread wins each contested nick; the others keep theirs.
                try:
                    nicks.rename(member, f"Contested{i}" if t % 2 else f"contested{i}")
                except ProtocolError as error:
                    assert error.code == protocol.NICK_TAKEN
                final[t].add(member)
            else:
                nicks.rename(member, member.nick.upper())  # own nick, other case
                final[t].add(member)

    run_threads(threads, work)
    survivors = set().union(*final)
    assert_consistent(nicks, survivors)
    contested = [m for m in survivors if m.nick.lower().startswith("contested")]
    assert len(contested) == len({m.nick.lower() for m in contested}) == len(range(1, per_thread, 3))
