"""The web client's files: chatd/web/static/ read into memory, and what a
GET or HEAD of a path answers (status, headers, body), conditional requests
included. No sockets and no HTTP parsing here (chatd/transport/http.py does
that); the headers every response carries are defined here, beside the
files they protect. A response is a `chatd.http_response.Response`.

The files are read once, at start-up and on each reload, so serving one is
a dictionary lookup and the same `bytes` object for every client; a file
changed on disk is served after the next reload.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from chatd.http_response import Response, text_response

STATIC: Final = Path(__file__).resolve().parent / "static"
INDEX: Final = "index.html"

# No inline script or style, nothing from another origin, no framing (docs/operations.md).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# On every response, errors and the WebSocket upgrade included. No HSTS: it
# would bind every port of the host name to HTTPS, which is a decision for
# whoever runs the host's web server (docs/operations.md).
HEADERS: Final = (
    (b"Content-Security-Policy", CONTENT_SECURITY_POLICY.encode()),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"Referrer-Policy", b"no-referrer"),
)
# Names are not fingerprinted, so a browser revalidates each time (a 304 when unchanged).
FILE_CACHE_CONTROL: Final = b"no-cache"

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}


@dataclass(frozen=True)
class File:
    body: bytes
    content_type: bytes
    etag: bytes  # a strong validator: a hash of the content, quoted
    last_modified: bytes  # an HTTP date
    mtime: int  # whole seconds, as Last-Modified says it


class StaticFiles:
    """The files under one folder, by URL path (`/` is `/index.html`)."""

    headers = HEADERS

    def __init__(self, files: dict[str, File]) -> None:
        self._files = files

    @classmethod
    def load(cls, folder: Path = STATIC) -> StaticFiles:
        """Read every file under `folder` but hidden ones.

        Raises:
            OSError: the folder or a file cannot be read.
        """
        files = {}
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            body = path.read_bytes()
            mtime = int(path.stat().st_mtime)
            files["/" + relative.as_posix()] = File(
                body=body,
                content_type=_content_type(path).encode(),
                etag=b'"%s"' % hashlib.sha256(body).hexdigest()[:32].encode(),
                last_modified=email.utils.formatdate(mtime, usegmt=True).encode(),
                mtime=mtime,
            )
        return cls(files)

    def __len__(self) -> int:
        return len(self._files)

    def answer(self, method: str, path: str, if_none_match: bytes | None, if_modified_since: bytes | None) -> Response:
        """What `method` (GET or HEAD, already checked) of `path` (no query) gets."""
        file = self._files.get("/" + INDEX if path == "/" else path)
        if file is None:
            return text_response(404, "Not found.")
        headers = [
            (b"Content-Type", file.content_type),
            (b"ETag", file.etag),
            (b"Last-Modified", file.last_modified),
            (b"Cache-Control", FILE_CACHE_CONTROL),
        ]
        if _not_modified(file, if_none_match, if_modified_since):
            return Response(304, headers, b"")
        return Response(200, [*headers, (b"Content-Length", str(len(file.body)).encode())], file.body)


def _not_modified(file: File, if_none_match: bytes | None, if_modified_since: bytes | None) -> bool:
    """RFC 9110, 13.1.2 and 13.1.3: If-None-Match decides when present
    (weak comparison), else If-Modified-Since."""
    if if_none_match is not None:
        tags = [tag.strip() for tag in if_none_match.split(b",")]
        return b"*" in tags or any(tag.removeprefix(b"W/") == file.etag for tag in tags)
    if if_modified_since is not None:
        since = http_date_seconds(if_modified_since)
        return since is not None and file.mtime <= since  # not a date: the condition is ignored
    return False


def http_date_seconds(value: bytes) -> float | None:
    """The time an HTTP date (RFC 9110, 5.6.7) names, in seconds since the epoch;
    None for anything that is not a date chatd can use.

    email.utils is lenient about what it parses and raises more than ValueError
    for what it cannot: an offset of twenty digits (`+99999999999999999999`)
    overflows a C int (OverflowError), a year like 99999999 is out of range.
    A date without a zone (`-0000`) is read as GMT, the only zone HTTP uses.
    """
    try:
        since = email.utils.parsedate_to_datetime(value.decode("latin-1"))
        if since.tzinfo is None:
            since = since.replace(tzinfo=datetime.UTC)
        return since.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _content_type(path: Path) -> str:
    known = _TYPES.get(path.suffix.lower())
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"
