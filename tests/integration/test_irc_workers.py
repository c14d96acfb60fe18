"""IRC clients spread over several I/O workers in one room with a line
client: a room hands each block to its IRC members in one call (the IRC
listener's delivery group), whichever worker each connection is on, and
every client sees every line once, in the room's one order, each as its
capabilities say (tags and an echo only for those who asked)."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Daemon, with_io_threads
from tests.support.ircclient import IrcClient, irc_port

CAPS = [(), ("message-tags", "server-time"), ("echo-message",), ("echo-message", "message-tags"), ()]
LINES_EACH = 20


@with_io_threads(1, 3)
def test_irc_clients_on_several_workers_each_get_the_rooms_lines_once_in_one_order(
    start_daemon: Callable[..., Daemon], io_threads: int
) -> None:
    daemon = start_daemon(
        server={"io_threads": io_threads},
        irc={"listen": "127.0.0.1:0", "server_name": "irc.test"},
        limits={"message_rate": 0},
    )
    port = irc_port(daemon)
    clients = [IrcClient(port, daemon.pki.ca) for _ in CAPS]
    try:
        for i, (client, caps) in enumerate(zip(clients, CAPS, strict=True)):
            client.register(f"irc{i}", caps=caps)
            client.send("JOIN #room")
            client.expect("366")
        native = daemon.client("native")
        native.join("#room")
        for client in clients:
            client.sync()  # the JOINs before it are read: what follows is the conversation

        for i, client in enumerate(clients):
            client.send(b"".join(b"PRIVMSG #room :line %d from irc%d\r\n" % (k, i) for k in range(LINES_EACH)))
        native.send("and one from the terminal")
        said = {f"line {k} from irc{i}" for i in range(len(clients)) for k in range(LINES_EACH)}
        said.add("and one from the terminal")

        heard = [native.expect("MSG #room ", timeout=10) for _ in said]
        order = [line.split(" ", 3)[3] for line in heard]  # the room's order, as the terminal saw it
        assert set(order) == said
        for i, (client, caps) in enumerate(zip(clients, CAPS, strict=True)):
            expected = said if "echo-message" in caps else {t for t in said if not t.endswith(f"from irc{i}")}
            got, ids = [], []
            while len(got) < len(expected):
                msg = client.expect("PRIVMSG", timeout=10)
                assert ("msgid" in msg.tags) == ("message-tags" in caps), msg.raw
                assert ("time" in msg.tags) == ("server-time" in caps), msg.raw
                got.append(msg.params[1])
                ids += [int(msg.tags["msgid"])] if "msgid" in msg.tags else []
            assert got == [text for text in order if text in expected], f"irc{i} with {caps}"
            assert ids == sorted(ids)
            assert not [m for m in client.sync() if m.command == "PRIVMSG"], f"irc{i}: a line more"
    finally:
        for client in clients:
            client.close()
