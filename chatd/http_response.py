"""An HTTP response as a value, and the plain-text one chatd's HTTP servers
answer with when there is no file to send: the web client's HTTP codec
(chatd/transport/http.py) and its files (chatd/web/files.py), and the
metrics listener (chatd/metrics_http.py).

No I/O and no HTTP syntax here: h11 writes the responses. Imports nothing
from chatd, so that the transport, the web client's files and the operator's
listener can all use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TEXT: Final = b"text/plain; charset=utf-8"


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes  # what a GET gets; a HEAD gets the same headers and no body


def text_response(status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> Response:
    """`text` and a newline, as plain UTF-8 that no cache keeps, with `extra` headers."""
    body = (text + "\n").encode()
    headers = [
        (b"Content-Type", TEXT),
        (b"Cache-Control", b"no-store"),
        (b"Content-Length", str(len(body)).encode()),
        *(extra or []),
    ]
    return Response(status, headers, body)
