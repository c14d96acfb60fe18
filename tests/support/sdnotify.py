"""What chatd says on the notify socket (sd_notify) that a test stands in for
systemd with (the `notify_socket` fixture in tests/integration/conftest.py)."""

from __future__ import annotations

import socket


def receive_until(sock: socket.socket, wanted: str) -> list[str]:
    """The datagrams received up to and including the first with the line `wanted`."""
    messages = []
    while True:
        message = sock.recv(4096).decode()
        messages.append(message)
        if wanted in message.split("\n"):
            return messages
