"""The connection of `chatctl connect`: TLS, line I/O, and what failures mean.

`open_connection()` connects and verifies the server, turning every failure
into a `ClientError`: one sentence for the user and the exit status it earns
(`Exit`). `LineChannel` does line I/O over the resulting non-blocking
`SSLSocket` for one thread. `Outcome`, `bye_outcome()` and
`dropped_outcome()` say how a session ended. Both modes of the client use
this module (chatctl/script.py for script mode, chatctl/interactive.py for
the terminal UI); it imports neither of them, and nothing of prompt_toolkit.

# NOTE: one thread owns the SSL socket in both modes (docs/architecture.md,
# openssl/openssl#20446). Script mode is one thread with a selector over the
# socket and stdin; interactive mode does its socket I/O in prompt_toolkit's
# asyncio event loop thread. Never add a reader or writer thread here.
"""

from __future__ import annotations

import enum
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from chatctl.render import BYE_WORDS, sanitize
from chatd.addresses import format_host_port

QUIT_TIMEOUT: Final = 5.0  # how long to wait for BYE after sending /quit
# TCP keepalive, how a dead server is noticed (docs/protocol.md: there is no
# application-level ping): probes after 60 s of silence, every 10 s, 3 missed
# probes and the connection fails, about 90 s after the server went away.
KEEPALIVE_IDLE: Final = 60
KEEPALIVE_INTERVAL: Final = 10
KEEPALIVE_COUNT: Final = 3
READ_SIZE: Final = 65536
WRITE_CHUNK: Final = 16384  # one TLS record


class Exit(enum.IntEnum):
    """Exit statuses of `chatctl connect` (documented in docs/client.md)."""

    OK = 0
    OTHER = 1
    USAGE = 2
    UNREACHABLE = 3  # refused, unreachable, unresolvable, timed out
    TLS_VERIFY = 4  # the server's certificate (or ours, at the server) failed verification
    TLS_HANDSHAKE = 5  # not a TLS server, or the handshake failed: wrong port?
    NICK_REFUSED = 6
    DROPPED = 7  # the server closed the connection (BYE other than quit, or none)
    INTERRUPTED = 130  # Ctrl-C in script mode, as a shell would report SIGINT


class ClientError(Exception):
    """A failure worded for the user: one sentence, and the exit status it earns."""

    def __init__(self, status: Exit, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Address:
    """Where chatd listens; chatctl/client.py parses it from `HOST[:PORT]`."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def client_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """A client context that verifies the server (against `ca`, or the system store) and its name.

    Raises:
        ClientError: unreadable or unusable files (status 2).
    """
    if (cert is None) != (key is None):
        raise ClientError(Exit.USAGE, "--cert and --key go together: give both or neither")
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as exc:
            raise ClientError(
                Exit.USAGE, f"cannot use --ca {ca}: {_reason(exc)}; it must be a PEM CA certificate"
            ) from exc
    else:
        context.load_default_certs()
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise ClientError(
                Exit.USAGE,
                f"cannot use --cert {cert} with --key {key}: {_reason(exc)}; "
                "they must be a PEM certificate and its matching key",
            ) from exc
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return str(exc.verify_message or exc.reason or exc)
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def open_connection(address: Address, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    """Connect and complete the TLS handshake (blocking, within `timeout` each).

    Returns the socket in non-blocking mode, ready for `LineChannel`.

    Raises:
        ClientError: with status 3 (unreachable), 4 (verification) or 5 (not TLS).
    """
    try:
        raw = socket.create_connection((address.host, address.port), timeout=timeout)
    except socket.gaierror as exc:
        raise ClientError(
            Exit.UNREACHABLE, f"cannot resolve {address.host!r} ({_reason(exc)}); check the host name"
        ) from exc
    except ConnectionRefusedError as exc:
        raise ClientError(
            Exit.UNREACHABLE,
            f"{address} refused the connection; is chatd running and listening on port {address.port}?",
        ) from exc
    except TimeoutError as exc:
        raise ClientError(
            Exit.UNREACHABLE,
            f"no answer from {address} within {timeout:g} s; check the address, the port and any firewall",
        ) from exc
    except OSError as exc:
        raise ClientError(
            Exit.UNREACHABLE, f"cannot reach {address} ({_reason(exc)}); check the address and your network"
        ) from exc
    try:
        sock = context.wrap_socket(raw, server_hostname=address.host)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        raise ClientError(
            Exit.TLS_VERIFY,
            f"the certificate of {address} could not be verified ({_reason(exc)}); "
            "pass --ca with the CA that signed the server's certificate, or check the host name",
        ) from exc
    except ssl.SSLError as exc:
        raw.close()
        raise tls_error(exc, address) from exc
    except TimeoutError as exc:
        raw.close()
        raise ClientError(
            Exit.TLS_HANDSHAKE,
            f"{address} did not complete a TLS handshake within {timeout:g} s; is that a chatd port?",
        ) from exc
    except OSError as exc:
        raw.close()
        raise ClientError(
            Exit.TLS_HANDSHAKE,
            f"{address} closed the connection during the TLS handshake ({_reason(exc)}); is that a chatd port?",
        ) from exc
    _keep_alive(sock)
    sock.setblocking(False)
    return sock


def _keep_alive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        option = getattr(socket, name, None)  # Linux names; other systems keep their defaults
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class Dialer:
    """Everything needed to connect again: where (one server, or several nodes
    of one network, tried in turn), with which TLS context, how patiently."""

    def __init__(self, addresses: Sequence[Address], context: ssl.SSLContext, timeout: float) -> None:
        self.addresses = tuple(addresses)
        self.context = context
        self.timeout = timeout
        self._last = -1  # the server connected last; the next `connect` starts after it

    @property
    def address(self) -> Address:
        """The server connected last (before any, the first to be tried)."""
        return self.addresses[max(self._last, 0)]

    def connect(self) -> ssl.SSLSocket:
        """`open_connection()` to the first server that answers, starting with
        the one after the server connected last: once a node of a network is
        lost, the next is tried first, and the lost one last.

        Raises:
            ClientError: the last server's, when none answered.
        """
        count = len(self.addresses)
        for step in range(count):
            index = (self._last + 1 + step) % count
            try:
                sock = open_connection(self.addresses[index], self.context, self.timeout)
            except ClientError:
                if step == count - 1:
                    raise
                continue
            self._last = index
            return sock
        raise AssertionError("unreachable: the last attempt returns or raises")


# OpenSSL reasons for alerts a server sends when it refuses our client certificate.
_CLIENT_CERT_REFUSED: Final = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "UNSUPPORTED_CERTIFICATE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
)


def tls_error(exc: ssl.SSLError, address: Address | str) -> ClientError:
    """Translate a TLS failure (during or just after the handshake) for the user."""
    reason = str(exc.reason or "")
    if "CERTIFICATE_REQUIRED" in reason:
        return ClientError(
            Exit.TLS_VERIFY,
            f"{address} requires a client certificate; pass --cert and --key",
        )
    if any(code in reason for code in _CLIENT_CERT_REFUSED):
        return ClientError(
            Exit.TLS_VERIFY,
            f"{address} refused our client certificate ({_reason(exc)}); use a certificate issued by the server's CA",
        )
    if isinstance(exc, ssl.SSLEOFError):
        return ClientError(
            Exit.TLS_HANDSHAKE,
            f"{address} closed the connection during the TLS handshake; is that a chatd port?",
        )
    return ClientError(
        Exit.TLS_HANDSHAKE,
        f"the TLS handshake with {address} failed ({_reason(exc)}); is that a chatd port and not some other service?",
    )


class LineChannel:
    """Protocol lines over one non-blocking `SSLSocket`, for a single thread.

    `read_lines()` reads until OpenSSL has nothing more (so `pending()` is
    empty when the caller selects again); `send_line()` only queues;
    `flush()` writes what it can. Whoever drives it watches the socket for
    reading always and for writing while `wants_write` is true, and calls
    both `read_lines()` and `flush()` on either event: TLS may need to read
    to write, or write to read.

    Raises (from read_lines and flush):
        ClientError: the connection failed (a TLS alert, a reset).
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.peer = _peer_name(sock)
        self.closed = False  # the server closed its side (EOF)
        self._inbuf = b""
        self._out = bytearray()
        self._chunk = b""  # NOTE: after SSLWantWrite/Read, OpenSSL wants the same bytes again
        self._write_blocked = False  # the last send needs the socket writable
        self._read_needs_write = False  # the last recv needs the socket writable

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        return (self._write_blocked and bool(self._chunk or self._out)) or self._read_needs_write

    @property
    def backlog(self) -> int:
        return len(self._chunk) + len(self._out)

    def send_line(self, line: bytes) -> None:
        self._out += line.rstrip(b"\r\n") + b"\n"

    def read_lines(self) -> list[bytes]:
        """Complete lines received so far (without `\\n` or `\\r`)."""
        chunks: list[bytes] = []
        self._read_needs_write = False
        while not self.closed:
            try:
                data = self.sock.recv(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLWantWriteError:
                self._read_needs_write = True  # OpenSSL must send first; retried when writable
                break
            except ssl.SSLZeroReturnError:
                self.closed = True
                break
            except ssl.SSLEOFError:
                # The peer closed TCP without close_notify; chatd does that after BYE.
                self.closed = True
                break
            except ssl.SSLError as exc:
                raise tls_error(exc, self.peer) from exc
            except OSError as exc:
                raise _connection_failed(self.peer, exc) from exc
            if not data:
                self.closed = True
                break
            chunks.append(data)
        data = self._inbuf + b"".join(chunks)
        *lines, self._inbuf = data.split(b"\n")
        if self.closed and self._inbuf:
            lines.append(self._inbuf)  # a last line without its newline
            self._inbuf = b""
        return [line.removesuffix(b"\r") for line in lines]

    def flush(self) -> None:
        """Write queued lines until done or the socket would block."""
        self._write_blocked = False
        while self._chunk or self._out:
            if not self._chunk:
                self._chunk = bytes(self._out[:WRITE_CHUNK])
                del self._out[:WRITE_CHUNK]
            try:
                sent = self.sock.send(self._chunk)
            except ssl.SSLWantWriteError:
                self._write_blocked = True
                return
            except ssl.SSLWantReadError:
                return  # OpenSSL must read first; the socket is always watched for reading
            except ssl.SSLError as exc:
                raise tls_error(exc, self.peer) from exc
            except OSError as exc:
                raise _connection_failed(self.peer, exc) from exc
            self._chunk = self._chunk[sent:]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass  # already reset by the peer; nothing left to release


def _connection_failed(peer: str, exc: OSError) -> ClientError:
    return ClientError(Exit.DROPPED, f"the connection to {peer} failed ({_reason(exc)}); try connecting again")


def _peer_name(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "the server"
    return format_host_port(host, port)


@dataclass(frozen=True)
class Outcome:
    status: Exit
    message: str | None = None


def bye_outcome(reason: str) -> Outcome:
    """What `BYE <reason>` means for the exit status and the last sentence."""
    code, _, text = sanitize(reason).partition(" ")
    if code == "quit":
        return Outcome(Exit.OK)
    if code == "logout":
        return Outcome(Exit.OK, "signed out")
    words = BYE_WORDS.get(code, code or "no reason given")
    detail = f" ({text})" if text else ""
    if code == "nick_failed":
        return Outcome(Exit.NICK_REFUSED, f"the server closed the connection: {words}{detail}")
    hint = {
        "shutdown": "; try again when it is back",
        "server_full": "; try again later",
        "too_many_connections": "; close another session first",
        "throttled": "; wait a minute before reconnecting",
        "register_timeout": "; connect again and answer the nickname prompt",
        # Not reconnecting: two clients that each took the account back would
        # replace each other for ever (docs/client.md, "Signing in").
        "replaced": " (on another connection); not reconnecting, so that the two do not keep taking turns",
    }.get(code, "")
    return Outcome(Exit.DROPPED, f"the server closed the connection: {words}{detail}{hint}")


def dropped_outcome() -> Outcome:
    return Outcome(Exit.DROPPED, "the server closed the connection without saying why; try connecting again")
