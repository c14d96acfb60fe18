"""The floor: the least a Python TLS server can do per connection, for the capacity scenario.

One thread, one epoll loop, memory BIOs, chatd's own TLS context
(chatd.tls.server_context, so the same certificate, group and profile), and
just enough of chatd's greeting for the generator to register: `NICK` after
the handshake, `WELCOME <line>` for each line after that. No logging, no
limits, no room. Its CPU per handshake is what OpenSSL and the kernel cost
from Python on this machine; chatd's is that plus everything a real daemon
does. Not a chat server: `python -m bench.floor_server CONFIG` prints one JSON
line with its port, then serves until killed.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import sys
from dataclasses import dataclass, field

from chatd.config import load_config
from chatd.tls import server_context


@dataclass
class Client:
    sock: socket.socket
    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO
    open: bool = False
    partial: bytes = field(default=b"")


def serve(config_path: str) -> None:
    config = load_config(config_path)
    context = server_context(config.tls, config.path)
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(json.dumps({"event": "listening", "port": listener.getsockname()[1]}), flush=True)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN)
    clients: dict[int, Client] = {}
    while True:
        for fd, _ in epoll.poll():
            if fd == listener.fileno():
                _accept(listener, context, epoll, clients)
            else:
                _serve_one(clients[fd], epoll, clients)


def _accept(listener: socket.socket, context: ssl.SSLContext, epoll: select.epoll, clients: dict[int, Client]) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        clients[sock.fileno()] = Client(
            sock, context.wrap_bio(incoming, outgoing, server_side=True), incoming, outgoing
        )
        epoll.register(sock.fileno(), select.EPOLLIN)


def _serve_one(client: Client, epoll: select.epoll, clients: dict[int, Client]) -> None:
    try:
        data = client.sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        epoll.unregister(client.sock.fileno())
        del clients[client.sock.fileno()]
        client.sock.close()
        return
    client.incoming.write(data)
    try:
        if not client.open:
            client.tls.do_handshake()
            client.open = True
            client.tls.write(b"NICK\n")
        while True:
            text = client.partial + client.tls.read(65536)
            *lines, client.partial = text.split(b"\n")
            for line in lines:
                client.tls.write(b"WELCOME " + line + b"\n")
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError:
        client.open = False
    out = client.outgoing.read()
    if out:
        try:
            client.sock.send(out)  # a few hundred bytes into an empty socket buffer
        except OSError:
            pass  # gone; its EOF comes next


if __name__ == "__main__":
    serve(sys.argv[1])
