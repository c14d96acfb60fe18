"""The Lua scripts against a real redis-server: atomic decisions (one nickname,
one order of ids), fencing, reaping, and the entries each writes."""

from __future__ import annotations

import itertools
import threading

import pytest

from tests.support.redisserver import require_redis

require_redis()

from chatd.cluster.entry import Entry, decode  # noqa: E402
from chatd.cluster.errors import Fenced, Refused  # noqa: E402
from chatd.cluster.link import Link  # noqa: E402
from chatd.cluster.scripts import Incarnation, Joined, Raised, Reaped, Span, pack  # noqa: E402
from tests.cluster.conftest import Cluster  # noqa: E402


def entries(cluster: Cluster, link: Link) -> list[Entry]:
    items = link.execute([pack(b"XRANGE", cluster.keys.log.encode(), b"-", b"+")])[0]
    assert isinstance(items, list)
    return [decode(stream_id, fields) for stream_id, fields in items]


def exists(link: Link, key: str) -> bool:
    return link.execute([pack(b"EXISTS", key.encode())])[0] == 1


def refused(code: str) -> pytest.RaisesContext[Refused]:
    return pytest.raises(Refused, match=f"^{code}")


# -- nicknames ---------------------------------------------------------------------------


def test_twenty_threads_claim_one_nick_and_exactly_one_wins(cluster: Cluster) -> None:
    me = cluster.register(cluster.link(), "a")
    links = [cluster.link(f"claim-{i}") for i in range(20)]
    for link in links:
        link.connect()  # connected before the race, so that the claims overlap
    start = threading.Barrier(20)
    outcomes: list[object] = [None] * 20

    def claim(index: int) -> None:
        start.wait(10)
        try:
            outcomes[index] = links[index].run(cluster.calls.claim(me, index + 1, "Racer"))
        except Refused as exc:
            outcomes[index] = exc.code

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [o for o in outcomes if isinstance(o, int)]
    assert len(winners) == 1, outcomes
    assert outcomes.count("nick_taken") == 19
    log = entries(cluster, links[0])
    assert [(e.kind, e.nick, e.id) for e in log] == [("nick", "Racer", winners[0])]
    # whoever won holds it, under the spelling it asked for, case-insensitively
    owner = links[0].execute([pack(b"HGETALL", cluster.keys.nick("racer").encode())])[0]
    assert owner[owner.index(b"o") + 1] == str(me).encode()
    assert owner[owner.index(b"c") + 1] == b"%d" % log[0].conn
    with refused("nick_taken"):
        links[0].run(cluster.calls.claim(me, 99, "RACER"))


def test_claim_rename_and_release(cluster: Cluster) -> None:
    link = cluster.link()
    me = cluster.register(link, "a")
    link.run(cluster.calls.claim(me, 1, "alice"))
    link.run(cluster.calls.claim(me, 2, "bob"))
    with refused("nick_taken"):
        link.run(cluster.calls.rename(me, 1, "alice", "BOB"))
    with refused("not_owner"):  # connection 2 does not hold alice
        link.run(cluster.calls.rename(me, 2, "alice", "carol"))
    link.run(cluster.calls.rename(me, 1, "alice", "Alice"))  # a change of case
    link.run(cluster.calls.rename(me, 1, "Alice", "carol"))
    assert not exists(link, cluster.keys.nick("alice"))
    link.run(cluster.calls.claim(me, 3, "alice"))  # free again
    link.run(cluster.calls.release(me, 2, "bob"))
    assert not exists(link, cluster.keys.nick("bob"))
    log = entries(cluster, link)
    assert [(e.kind, e.nick, e.text, e.conn) for e in log] == [
        ("nick", "alice", b"", 1),
        ("nick", "bob", b"", 2),
        ("rename", "alice", b"Alice", 1),
        ("rename", "Alice", b"carol", 1),
        ("nick", "alice", b"", 3),
        ("release", "bob", b"", 2),
    ]
    assert {e.origin for e in log} == {str(me)}
    owned = link.execute([pack(b"SMEMBERS", cluster.keys.owned(me.node, me.epoch).encode())])[0]
    assert sorted(owned) == [b"alice", b"carol"]


# -- rooms ---------------------------------------------------------------------------------


def test_join_part_topic_and_their_refusals(cluster: Cluster) -> None:
    link = cluster.link()
    me = cluster.register(link, "a", permanent=("#Lobby",))
    calls = cluster.calls
    link.run(calls.claim(me, 1, "alice"))
    link.run(calls.claim(me, 2, "bob"))
    joined = link.run(calls.join(me, 1, "alice", "#LOBBY", False, 3, 2))
    assert joined == Joined(joined.id, "#Lobby", created=False)  # as the permanent room is spelled
    with refused("already_in"):
        link.run(calls.join(me, 1, "alice", "#lobby", True, 3, 2))
    with refused("no_such_room"):
        link.run(calls.join(me, 1, "alice", "#new", False, 3, 2))
    assert link.run(calls.join(me, 1, "alice", "#New", True, 3, 2)).created
    with refused("too_many_rooms") as info:
        link.run(calls.join(me, 1, "alice", "#third", True, 3, 2))
    assert info.value.detail == "client"
    link.run(calls.join(me, 2, "bob", "#other", True, 3, 2))  # the third room
    with refused("too_many_rooms") as info:
        link.run(calls.join(me, 2, "bob", "#fourth", True, 3, 2))
    assert info.value.detail == "server"
    with refused("not_in_room"):
        link.run(calls.topic(me, 2, "bob", "#new", "not mine"))
    link.run(calls.topic(me, 1, "alice", "#new", "fresh paint"))
    topics = link.execute([pack(b"HGET", cluster.keys.topics.encode(), b"#new")])[0]
    assert topics == b"alice fresh paint"
    link.run(calls.part(me, 1, "alice", "#new", "bye"))
    with refused("not_in_room"):
        link.run(calls.part(me, 1, "alice", "#new", "again"))
    rooms = link.execute([pack(b"HGETALL", cluster.keys.rooms.encode())])[0]
    assert dict(zip(rooms[::2], rooms[1::2], strict=True)) == {b"#lobby": b"#Lobby", b"#other": b"#other"}
    link.run(calls.part(me, 1, "alice", "#lobby", ""))  # permanent: stays with no members
    assert link.execute([pack(b"HEXISTS", cluster.keys.rooms.encode(), b"#lobby")])[0] == 1
    log = [(e.kind, e.target, e.shown, e.nick, e.text) for e in entries(cluster, link)][2:]
    assert log == [
        ("join", "#lobby", "#Lobby", "alice", b""),
        ("join", "#new", "#New", "alice", b""),
        ("join", "#other", "#other", "bob", b""),
        ("topic", "#new", "#New", "alice", b"fresh paint"),
        ("part", "#new", "#New", "alice", b"bye"),
        ("part", "#lobby", "#Lobby", "alice", b""),
    ]


def test_leave_and_kick_take_the_nick_out_of_every_room(cluster: Cluster) -> None:
    link = cluster.link()
    me = cluster.register(link, "a")
    calls = cluster.calls
    for conn, nick in ((1, "alice"), (2, "bob")):
        link.run(calls.claim(me, conn, nick))
        for room in ("#a", "#b"):
            link.run(calls.join(me, conn, nick, room, True, 100, 10))
    link.run(calls.leave(me, 1, "alice", "quit gone for lunch"))
    with refused("not_owner"):  # a second leave of the same connection does nothing
        link.run(calls.leave(me, 1, "alice", "connection_lost"))
    kicked = link.run(calls.kick(me, "BOB", "spamming links"))
    with refused("no_such_nick"):
        link.run(calls.kick(me, "bob", "again"))
    with refused("not_owner"):  # bob's own connection closing after the kick
        link.run(calls.leave(me, 2, "bob", "kicked"))
    for key in (cluster.keys.nick("alice"), cluster.keys.nick("bob"), cluster.keys.rooms_of("bob")):
        assert not exists(link, key)
    assert not exists(link, cluster.keys.members("#a")) and not exists(link, cluster.keys.rooms)
    last = entries(cluster, link)[-2:]
    assert [(e.kind, e.nick, e.text, e.conn) for e in last] == [
        ("leave", "alice", b"quit gone for lunch", 1),
        ("kick", "bob", b"spamming links", 2),  # the kicked connection, for its node to close
    ]
    assert last[1].id == kicked


# -- events --------------------------------------------------------------------------------


def test_say_direct_and_info_append_one_entry_per_text(cluster: Cluster) -> None:
    link = cluster.link()
    me = cluster.register(link, "a")
    calls = cluster.calls
    link.run(calls.claim(me, 1, "alice"))
    link.run(calls.claim(me, 2, "Bob"))
    with refused("not_in_room"):
        link.run(calls.say(me, 1, "alice", "msg", "#room", [b"hello"]))
    link.run(calls.join(me, 1, "alice", "#Room", True, 100, 10))
    span = link.run(calls.say(me, 1, "alice", "msg", "#room", [b"one", b"two", b"three"]))
    assert span.last - span.first == 2
    link.run(calls.say(me, 1, "alice", "action", "#ROOM", [b"waves"]))
    with refused("no_such_nick"):
        link.run(calls.direct(me, 1, "alice", "carol", b"hi"))
    with refused("not_owner"):
        link.run(calls.direct(me, 3, "alice", "bob", b"not my nick"))
    link.run(calls.direct(me, 1, "alice", "bob", b"psst"))
    link.run(calls.info(me, b"maintenance at noon"))
    log = entries(cluster, link)[3:]
    assert [(e.kind, e.target, e.shown, e.nick, e.text) for e in log] == [
        ("msg", "#room", "#Room", "alice", b"one"),
        ("msg", "#room", "#Room", "alice", b"two"),
        ("msg", "#room", "#Room", "alice", b"three"),
        ("action", "#room", "#Room", "alice", b"waves"),
        ("dm", "bob", "Bob", "alice", b"psst"),
        ("info", "", "", "", b"maintenance at noon"),
    ]
    assert [e.id for e in log[:3]] == [span.first, span.first + 1, span.last]
    assert len({e.time_ms for e in log[:3]}) == 1  # one script, one moment
    assert all(e.time_ms > 1_700_000_000_000 for e in log)


def test_ids_strictly_increase_across_concurrent_appends_from_two_connections(cluster: Cluster) -> None:
    setup = cluster.link()
    me = cluster.register(setup, "a")
    for conn, nick in ((1, "alice"), (2, "bob")):
        setup.run(cluster.calls.claim(me, conn, nick))
        setup.run(cluster.calls.join(me, conn, nick, "#room", True, 100, 10))
    spans: dict[str, list[Span]] = {"alice": [], "bob": []}
    start = threading.Barrier(2)

    def send(conn: int, nick: str) -> None:
        link = cluster.link(nick)
        start.wait(10)
        for batch in range(40):  # pipelined, as the writer sends: 10 calls of 1-3 texts per write
            calls = [
                cluster.calls.say(
                    me, conn, nick, "msg", "#room", [b"%s %d.%d" % (nick.encode(), batch, i)] * (i % 3 + 1)
                )
                for i in range(10)
            ]
            replies = link.execute([call.command for call in calls])
            spans[nick].extend(call.decode(reply) for call, reply in zip(calls, replies, strict=True))

    threads = [threading.Thread(target=send, args=args) for args in ((1, "alice"), (2, "bob"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    log = entries(cluster, setup)[4:]
    ids = [e.id for e in log]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # strictly increasing, no gap
    assert len(log) == 2 * 40 * sum(i % 3 + 1 for i in range(10))
    by_id = {e.id: e for e in log}
    for nick, got in spans.items():
        assert all(a.last < b.first for a, b in itertools.pairwise(got))  # each sender's in its order
        for span in got:  # a call's texts are consecutive, and are that sender's
            assert {by_id[i].nick for i in range(span.first, span.last + 1)} == {nick}
            assert len({by_id[i].text for i in range(span.first, span.last + 1)}) == 1
    # interleaved: the two connections really did race
    owners = [e.nick for e in log]
    assert sum(a != b for a, b in itertools.pairwise(owners)) > 1


# -- fencing, registration, reaping --------------------------------------------------------


def test_append_is_refused_after_fencing_and_takes_no_id(cluster: Cluster) -> None:
    link = cluster.link()
    me = cluster.register(link, "a")
    link.run(cluster.calls.claim(me, 1, "alice"))
    link.run(cluster.calls.join(me, 1, "alice", "#room", True, 100, 10))
    before = entries(cluster, link)
    link.execute([pack(b"DEL", cluster.keys.node("a").encode())])  # the lease ran out
    for call in (
        cluster.calls.say(me, 1, "alice", "msg", "#room", [b"too late"]),
        cluster.calls.heartbeat(me, 10_000),
        cluster.calls.claim(me, 2, "bob"),
        cluster.calls.join(me, 1, "alice", "#other", True, 100, 10),
        cluster.calls.leave(me, 1, "alice", "quit"),
        cluster.calls.raise_ids(me, 1000),
        cluster.calls.reap(me),
        cluster.calls.kick(me, "alice", "no"),
    ):
        with pytest.raises(Fenced):
            link.run(call)
    # a new incarnation of the same node: the old epoch stays fenced
    again = cluster.register(link, "a")
    assert again.epoch > me.epoch
    with pytest.raises(Fenced):
        link.run(cluster.calls.say(me, 1, "alice", "msg", "#room", [b"still too late"]))
    after = entries(cluster, link)
    assert after[: len(before)] == before
    assert all(e.kind == "leave" for e in after[len(before) :])  # only the old incarnation's nick, reaped
    assert link.execute([pack(b"GET", cluster.keys.ids.encode())])[0] == b"%d" % after[-1].id


def test_register_refuses_a_second_process_with_a_live_node_name(cluster: Cluster) -> None:
    link = cluster.link()
    first = cluster.register(link, "a")
    with refused("node_taken"):
        link.run(cluster.calls.register("a", 10_000, None, ()))
    with refused("node_taken"):  # an epoch that is not the one holding the lease
        link.run(cluster.calls.register("a", 10_000, first.epoch + 7, ()))
    link.run(cluster.calls.heartbeat(first, 10_000))  # still its lease


def test_a_restarted_node_takes_its_name_back_and_its_old_nicks_leave_at_once(cluster: Cluster) -> None:
    link = cluster.link()
    first = cluster.register(link, "a")
    link.run(cluster.calls.claim(first, 1, "alice"))
    link.run(cluster.calls.join(first, 1, "alice", "#room", True, 100, 10))
    # kill -9 and restart within the lease: it remembers its previous epoch
    second = Incarnation("a", link.run(cluster.calls.register("a", 10_000, first.epoch, ())))
    with pytest.raises(Fenced):
        link.run(cluster.calls.heartbeat(first, 10_000))
    last = entries(cluster, link)[-1]
    assert (last.kind, last.nick, last.text, last.origin) == (
        "leave",
        "alice",
        b"connection_lost node a lost",
        str(first),
    )
    link.run(cluster.calls.claim(second, 1, "alice"))
    nodes = link.execute([pack(b"HGETALL", cluster.keys.nodes.encode())])[0]
    assert nodes == [b"a", b"%d" % second.epoch]


def test_reap_is_idempotent_frees_the_nicks_and_says_leave(cluster: Cluster) -> None:
    link = cluster.link()
    dead = cluster.register(link, "dead")
    alive = cluster.register(link, "alive")
    calls = cluster.calls
    for conn, nick in ((1, "alice"), (2, "bob")):
        link.run(calls.claim(dead, conn, nick))
        link.run(calls.join(dead, conn, nick, "#room", True, 100, 10))
    link.run(calls.claim(alive, 1, "carol"))
    link.run(calls.join(alive, 1, "carol", "#room", True, 100, 10))
    assert link.run(calls.reap(alive)) == Reaped(0, 0)  # every lease is held
    link.execute([pack(b"DEL", cluster.keys.node("dead").encode())])  # its lease ran out
    before = len(entries(cluster, link))
    assert link.run(calls.reap(alive)) == Reaped(1, 2)
    log = entries(cluster, link)
    leaves = log[before:]
    assert sorted((e.kind, e.nick, e.text, e.origin) for e in leaves) == [
        ("leave", "alice", b"connection_lost node dead lost", str(dead)),
        ("leave", "bob", b"connection_lost node dead lost", str(dead)),
    ]
    assert {e.conn for e in leaves} == {1, 2}
    assert link.run(calls.reap(alive)) == Reaped(0, 0)  # a second reaper finds nothing
    assert entries(cluster, link) == log
    members = link.execute([pack(b"HKEYS", cluster.keys.members("#room").encode())])[0]
    assert members == [b"carol"]
    for key in (cluster.keys.owned("dead", dead.epoch), cluster.keys.nick("alice"), cluster.keys.rooms_of("bob")):
        assert not exists(link, key)
    assert link.execute([pack(b"HKEYS", cluster.keys.nodes.encode())])[0] == [b"alive"]
    link.run(calls.claim(alive, 2, "alice"))  # free for anyone


def test_a_claim_reaps_a_dead_owner_inline(cluster: Cluster) -> None:
    link = cluster.link()
    dead = cluster.register(link, "dead")
    alive = cluster.register(link, "alive")
    link.run(cluster.calls.claim(dead, 1, "alice"))
    link.run(cluster.calls.claim(dead, 2, "bob"))
    with refused("nick_taken"):
        link.run(cluster.calls.claim(alive, 1, "alice"))
    link.execute([pack(b"DEL", cluster.keys.node("dead").encode())])
    claimed = link.run(cluster.calls.claim(alive, 1, "ALICE"))
    last = entries(cluster, link)[-3:]
    assert sorted((e.kind, e.nick) for e in last[:2]) == [("leave", "alice"), ("leave", "bob")]
    assert (last[2].kind, last[2].nick, last[2].id) == ("nick", "ALICE", claimed)  # after the leaves
    assert link.run(cluster.calls.reap(alive)) == Reaped(0, 0)


def test_raise_ids_never_lowers(cluster: Cluster) -> None:
    link = cluster.link()
    me = cluster.register(link, "a")
    link.run(cluster.calls.claim(me, 1, "alice"))
    assert link.run(cluster.calls.raise_ids(me, 1)) == Raised(1, False)
    assert link.run(cluster.calls.raise_ids(me, 1000)) == Raised(1000, True)
    assert link.run(cluster.calls.raise_ids(me, 500)) == Raised(1000, False)
    assert link.run(cluster.calls.raise_ids(me, 1001)) == Raised(1000, False)  # 1001 is the next id anyway
    assert link.run(cluster.calls.claim(me, 2, "bob")) == 1001
    log = entries(cluster, link)
    assert [(e.id, e.kind, e.text) for e in log] == [(1, "nick", b""), (1000, "raise", b"1"), (1001, "nick", b"")]


def test_an_unknown_kind_is_an_error_not_an_entry(cluster: Cluster) -> None:
    link = cluster.link()
    me = cluster.register(link, "a")
    link.run(cluster.calls.claim(me, 1, "alice"))
    call = cluster.calls.say(me, 1, "alice", "msg", "#room", [b"x"])
    bad = call.command.replace(b"$3\r\nmsg\r\n", b"$3\r\nhug\r\n")
    reply = link.execute([bad])[0]
    assert "unknown kind hug" in str(reply)
    assert [e.kind for e in entries(cluster, link)] == ["nick"]


def test_a_retained_message_entry_costs_at_most_250_bytes_of_redis_memory(cluster: Cluster) -> None:
    """The log's budget (cluster.log_max entries of RAM): with chat-sized lines
    of 60 bytes, from 50 nicknames, an entry must stay within 250 B."""
    link = cluster.link()
    me = cluster.register(link, "chat-a")
    for conn in range(1, 51):
        link.run(cluster.calls.claim(me, conn, f"user{conn}"))
        link.run(cluster.calls.join(me, conn, f"user{conn}", "#lobby", True, 100, 10))
    link.execute([pack(b"DEL", cluster.keys.log.encode())])
    for batch in range(50):
        link.execute(
            [
                cluster.calls.say(me, conn, f"user{conn}", "msg", "#lobby", [b"%-60d" % (batch * 100 + i)]).command
                for i, conn in enumerate(list(range(1, 51)) * 2)
            ]
        )
    count = link.execute([pack(b"XLEN", cluster.keys.log.encode())])[0]
    usage = link.execute([pack(b"MEMORY", b"USAGE", cluster.keys.log.encode(), b"SAMPLES", b"0")])[0]
    assert count == 5000
    assert isinstance(usage, int) and usage / count <= 250, f"{usage / count:.0f} B per entry"
