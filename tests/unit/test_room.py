"""chatd/room.py: the case-insensitive nick registry and the fan-out, with fake members."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from chatd import protocol
from chatd.errors import ProtocolError
from chatd.room import Room


class FakeMember:
    """What Room needs of a connection: a `nick` and a `deliver()` that records."""

    def __init__(self, label: str = "") -> None:
        self.nick = ""
        self.label = label
        self.received: list[tuple[bytes, int]] = []

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        self.received.append((data, lines))

    def lines(self) -> list[bytes]:
        return [data for data, _ in self.received]

    def __repr__(self) -> str:
        return f"FakeMember({self.label or self.nick!r})"


@pytest.fixture
def room() -> Room:
    return Room()


def joined(room: Room, *nicks: str) -> list[FakeMember]:
    members = []
    for nick in nicks:
        member = FakeMember(nick)
        room.join(member, nick)
        members.append(member)
    for member in members:
        member.received.clear()
    return members


# -- join ---------------------------------------------------------------------------------


def test_join_tells_everyone_else(room: Room) -> None:
    alice, bob = joined(room, "alice", "bob")
    carol = FakeMember()
    room.join(carol, "carol")
    assert carol.nick == "carol"
    assert alice.received == [(b"JOIN carol\n", 1)]
    assert bob.received == [(b"JOIN carol\n", 1)]
    assert carol.received == []


def test_first_join_tells_nobody(room: Room) -> None:
    alice = FakeMember()
    room.join(alice, "alice")
    assert alice.received == []
    assert len(room) == 1


@pytest.mark.parametrize("taken", ["alice", "Alice", "ALICE", "aLiCe"])
def test_join_refuses_a_nick_taken_in_any_case(room: Room, taken: str) -> None:
    (alice,) = joined(room, "alice")
    late = FakeMember()
    with pytest.raises(ProtocolError) as info:
        room.join(late, taken)
    assert info.value.code == protocol.NICK_TAKEN
    assert late.nick == ""
    assert room.find("alice") is alice
    assert room.nicks() == ["alice"]
    assert alice.received == []  # no JOIN for a refused nick


def test_the_chosen_case_is_kept(room: Room) -> None:
    joined(room, "AliCe")
    assert room.nicks() == ["AliCe"]
    found = room.find("alice")
    assert found is not None and found.nick == "AliCe"


def test_a_refused_member_can_join_under_another_nick(room: Room) -> None:
    joined(room, "alice")
    member = FakeMember()
    with pytest.raises(ProtocolError):
        room.join(member, "ALICE")
    room.join(member, "alice2")
    assert sorted(room.nicks()) == ["alice", "alice2"]


# -- find, nicks, len ----------------------------------------------------------------------------


def test_find_is_case_insensitive(room: Room) -> None:
    alice, bob = joined(room, "Alice", "bob")
    assert room.find("alice") is alice
    assert room.find("ALICE") is alice
    assert room.find("BoB") is bob
    assert room.find("carol") is None
    assert room.find("") is None


def test_nicks_members_and_len(room: Room) -> None:
    members = joined(room, "alice", "Bob", "carol")
    assert sorted(room.nicks(), key=str.lower) == ["alice", "Bob", "carol"]
    assert set(room.members()) == set(members)
    assert len(room) == 3


# -- rename ------------------------------------------------------------------------------


def test_rename_tells_everyone_including_the_renamer(room: Room) -> None:
    alice, bob = joined(room, "alice", "bob")
    assert room.rename(alice, "alicia") == "alice"
    assert alice.nick == "alicia"
    assert alice.received == [(b"RENAME alice alicia\n", 1)]
    assert bob.received == [(b"RENAME alice alicia\n", 1)]
    assert room.find("alicia") is alice
    assert room.find("alice") is None
    assert sorted(room.nicks()) == ["alicia", "bob"]


def test_the_old_nick_is_free_after_a_rename(room: Room) -> None:
    (alice,) = joined(room, "alice")
    room.rename(alice, "alicia")
    newcomer = FakeMember()
    room.join(newcomer, "Alice")
    assert room.find("alice") is newcomer
    assert room.find("alicia") is alice


@pytest.mark.parametrize("new", ["ALICE", "Alice", "aLIce"])
def test_rename_to_own_nick_in_another_case_is_allowed(room: Room, new: str) -> None:
    alice, bob = joined(room, "alice", "bob")
    assert room.rename(alice, new) == "alice"
    assert alice.nick == new
    assert room.find("alice") is alice
    assert sorted(room.nicks(), key=str.lower) == sorted([new, "bob"], key=str.lower)
    assert bob.received == [(f"RENAME alice {new}\n".encode(), 1)]
    assert len(room) == 2


@pytest.mark.parametrize("taken", ["bob", "BOB", "Bob"])
def test_rename_refuses_a_nick_taken_in_any_case(room: Room, taken: str) -> None:
    alice, bob = joined(room, "alice", "bob")
    with pytest.raises(ProtocolError) as info:
        room.rename(alice, taken)
    assert info.value.code == protocol.NICK_TAKEN
    assert alice.nick == "alice"
    assert room.find("alice") is alice
    assert room.find("bob") is bob
    assert alice.received == bob.received == []


def test_leave_after_rename_frees_the_new_nick(room: Room) -> None:
    alice, bob = joined(room, "alice", "bob")
    room.rename(alice, "alicia")
    bob.received.clear()
    room.leave(alice, "quit")
    assert bob.received == [(b"LEAVE alicia quit\n", 1)]
    assert room.find("alicia") is None and room.find("alice") is None
    assert room.nicks() == ["bob"]


# -- leave ---------------------------------------------------------------------------------


def test_leave_with_a_reason_tells_the_others(room: Room) -> None:
    alice, bob, carol = joined(room, "alice", "bob", "carol")
    room.leave(alice, "quit gone for lunch")
    assert alice.received == []
    assert bob.received == [(b"LEAVE alice quit gone for lunch\n", 1)]
    assert carol.received == [(b"LEAVE alice quit gone for lunch\n", 1)]
    assert room.find("alice") is None
    assert sorted(room.nicks()) == ["bob", "carol"]
    assert len(room) == 2


def test_leave_without_a_reason_tells_nobody(room: Room) -> None:
    alice, bob = joined(room, "alice", "bob")
    room.leave(alice, None)
    assert alice.received == bob.received == []
    assert room.nicks() == ["bob"]


def test_leave_of_a_non_member_is_a_no_op(room: Room) -> None:
    alice, bob = joined(room, "alice", "bob")
    stranger = FakeMember()
    room.leave(stranger, "quit")
    impostor = FakeMember()
    impostor.nick = "alice"  # same nick, not the registered member
    room.leave(impostor, "quit")
    assert room.find("alice") is alice
    assert len(room) == 2
    assert alice.received == bob.received == []


def test_leave_twice_tells_the_others_once(room: Room) -> None:
    alice, bob = joined(room, "alice", "bob")
    room.leave(alice, "connection_lost")
    room.leave(alice, "connection_lost")
    assert bob.received == [(b"LEAVE alice connection_lost\n", 1)]


def test_a_nick_is_free_again_after_leave(room: Room) -> None:
    (alice,) = joined(room, "alice")
    room.leave(alice, None)
    again = FakeMember()
    room.join(again, "ALICE")
    assert room.find("alice") is again


# -- broadcast -------------------------------------------------------------------------------


def test_broadcast_reaches_everyone_but_the_excluded(room: Room) -> None:
    alice, bob, carol = joined(room, "alice", "bob", "carol")
    assert room.broadcast(b"MSG alice a\nMSG alice b\n", 2, exclude=alice) == 2
    assert alice.received == []
    assert bob.received == carol.received == [(b"MSG alice a\nMSG alice b\n", 2)]


def test_broadcast_without_exclude_reaches_everyone(room: Room) -> None:
    members = joined(room, "alice", "bob")
    assert room.broadcast(b"INFO hi\n") == 2
    assert all(m.received == [(b"INFO hi\n", 1)] for m in members)


def test_broadcast_to_an_empty_room(room: Room) -> None:
    assert room.broadcast(b"INFO nobody\n") == 0


def test_broadcast_excluding_a_stranger_reaches_everyone(room: Room) -> None:
    alice, bob = joined(room, "alice", "bob")
    assert room.broadcast(b"INFO x\n", exclude=FakeMember()) == 2


def test_members_left_do_not_get_broadcasts(room: Room) -> None:
    alice, bob = joined(room, "alice", "bob")
    room.leave(bob, None)
    room.broadcast(b"INFO x\n")
    assert bob.received == []
    assert alice.received == [(b"INFO x\n", 1)]


# -- threads ---------------------------------------------------------------------------------


class QuietMember:
    """A member that drops deliveries: the thread tests check the registry, not fan-out."""

    def __init__(self, label: str) -> None:
        self.nick = ""
        self.label = label

    def deliver(self, data: bytes, lines: int = 1, sender: object = None) -> None:
        pass


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as CPython allows, to shake out races."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(count: int, target) -> None:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            target(index)
        except BaseException as exc:  # reported by the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"room-test-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors


def assert_consistent(room: Room, expected: set[QuietMember]) -> None:
    members = room.members()
    assert set(members) == expected
    assert len(members) == len(expected) == len(room)
    keys = [protocol.nick_key(nick) for nick in room.nicks()]
    assert len(keys) == len(set(keys)), "a nick is registered twice"
    for member in expected:
        assert room.find(member.nick) is member
        assert room.find(member.nick.upper()) is member


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_joins_leave_a_consistent_registry(room: Room) -> None:
    threads, unique, shared = 8, 200, 50
    won: list[list[QuietMember]] = [[] for _ in range(threads)]
    lost: list[list[QuietMember]] = [[] for _ in range(threads)]

    def work(t: int) -> None:
        for i in range(unique):
            member = QuietMember(f"t{t}-{i}")
            room.join(member, f"u{t}_{i}")
            won[t].append(member)
            # Everyone also races for the shared nicks, each thread in its own case.
            nick = f"shared{i % shared}"
            nick = nick.upper() if t % 2 else nick
            contender = QuietMember(f"t{t}-shared-{i}")
            try:
                room.join(contender, nick)
            except ProtocolError as error:
                assert error.code == protocol.NICK_TAKEN
                lost[t].append(contender)
            else:
                won[t].append(contender)

    run_threads(threads, work)
    winners = {m for per_thread in won for m in per_thread}
    assert len(winners) == threads * unique + shared
    assert all(m.nick == "" for per_thread in lost for m in per_thread)
    assert_consistent(room, winners)


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_joins_renames_and_leaves(room: Room) -> None:
    threads, per_thread = 8, 100
    final: list[set[QuietMember]] = [set() for _ in range(threads)]

    def work(t: int) -> None:
        mine = []
        for i in range(per_thread):
            member = QuietMember(f"t{t}-{i}")
            room.join(member, f"n{t}_{i}")
            mine.append(member)
        for i, member in enumerate(mine):
            if i % 3 == 0:
                room.leave(member, "quit")
            elif i % 3 == 1:
                # Only one thread wins each contested nick; the others keep theirs.
                try:
                    room.rename(member, f"Contested{i}" if t % 2 else f"contested{i}")
                except ProtocolError as error:
                    assert error.code == protocol.NICK_TAKEN
                final[t].add(member)
            else:
                room.rename(member, member.nick.upper())  # own nick, other case
                final[t].add(member)

    run_threads(threads, work)
    survivors = set().union(*final)
    assert_consistent(room, survivors)
    contested = [m for m in survivors if m.nick.lower().startswith("contested")]
    assert len(contested) == len({m.nick.lower() for m in contested}) == len(range(1, per_thread, 3))
