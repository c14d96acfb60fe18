"""Accepted sockets get TCP_NODELAY and keepalive from the listener, with no
setsockopt() of their own: this checks that the kernel really copies them."""

from __future__ import annotations

import socket

from chatd.server import KEEPALIVE, tune_listener


def test_accepted_sockets_inherit_the_listeners_options() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        tune_listener(listener)
        with socket.create_connection(listener.getsockname()[:2], timeout=5):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
                for name, value in KEEPALIVE.items():
                    if hasattr(socket, name):
                        assert accepted.getsockopt(socket.IPPROTO_TCP, getattr(socket, name)) == value, name
