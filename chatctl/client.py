"""`chatctl connect`: the TLS terminal client (arguments, connection, script mode).

This module holds what both modes share: argument parsing, the verified TLS
connection with its errors turned into one plain sentence and an exit status
(`ClientError`), `LineChannel` (line I/O over one non-blocking `SSLSocket`)
and the script mode (`--raw`, or stdin not a terminal). The interactive
terminal UI lives in chatctl/interactive.py and is imported only when it
runs, because every chatctl subcommand imports this module to build its
parser and prompt_toolkit is slow to import.

# NOTE: one thread owns the SSL socket in both modes (docs/architecture.md,
# openssl/openssl#20446). Script mode is one thread with a selector over the
# socket and stdin; interactive mode does its socket I/O in prompt_toolkit's
# asyncio event loop thread. Never add a reader or writer thread here.
"""

from __future__ import annotations

import argparse
import enum
import ipaddress
import os
import re
import selectors
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Final

from chatctl.render import BYE_WORDS, sanitize

DEFAULT_PORT: Final = 7443
DEFAULT_TIMEOUT: Final = 10.0
QUIT_TIMEOUT: Final = 5.0  # how long to wait for BYE after sending /quit
READ_SIZE: Final = 65536
WRITE_CHUNK: Final = 16384  # one TLS record
STDIN_HIGH_WATER: Final = 256 * 1024  # stop reading stdin while this much waits to be sent
_NICK = re.compile(r"[A-Za-z0-9_-]+")  # docs/protocol.md; the length limit is the server's


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


EPILOG: Final = """\
exit status:
    0  the session ended normally (/quit, Ctrl-D, end of input)
    1  an unexpected error
    2  bad arguments or unusable certificate files
    3  the server could not be reached (refused, unreachable, timed out)
    4  TLS verification failed (server certificate not trusted or for
       another name, or the server refused our client certificate)
    5  not a TLS server, or the TLS handshake failed (wrong port?)
    6  nickname refused (taken or invalid; in script mode)
    7  the server dropped the connection (kicked, shutdown, ...)
  130  interrupted (Ctrl-C in script mode)

Interactive mode when stdin and stdout are terminals; script mode otherwise,
or with --raw: stdin lines are sent, server lines are printed as they are
(with control characters made visible when stdout is a terminal).
See docs/client.md.
"""


class ClientError(Exception):
    """A failure worded for the user: one sentence, and the exit status it earns."""

    def __init__(self, status: Exit, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """`HOST[:PORT]`, `[IPv6][:PORT]` or a bare IPv6 address; the port defaults to 7443.

    Raises:
        ValueError: with a message fit for argparse.
    """
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPV6]:PORT")
        port_text = after[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)  # bare IPv6, no port
        except ValueError:
            raise ValueError(f"{text!r}: write IPv6 addresses with a port as [ADDRESS]:PORT") from None
    if not host:
        raise ValueError(f"{text!r}: the host is missing")
    if port_text == "" and text.endswith(":"):
        raise ValueError(f"{text!r}: the port is missing")
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r}: the port must be a number 1-65535")
        return Address(host, int(port_text))
    return Address(host, DEFAULT_PORT)


def _address_arg(text: str) -> Address:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _timeout_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0-3600 (got {text!r})")
    return value


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Add `chatctl connect`'s options to its subparser (called by chatctl/cli.py)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "address", type=_address_arg, metavar="HOST[:PORT]",
        help=f"the chatd server; the port defaults to {DEFAULT_PORT}; IPv6 as [::1]:{DEFAULT_PORT}",
    )
    parser.add_argument(
        "--nick", help="your nickname (required in script mode; asked for when interactive)"
    )
    parser.add_argument(
        "--ca", metavar="FILE",
        help="CA certificate(s) to verify the server with (default: the system's trust store)",
    )
    parser.add_argument("--cert", metavar="FILE", help="client certificate (PEM), if the server asks for one")
    parser.add_argument("--key", metavar="FILE", help="the client certificate's private key (PEM)")
    parser.add_argument(
        "--raw", action="store_true",
        help="script mode even on a terminal: send stdin lines, print server lines verbatim",
    )
    parser.add_argument(
        "--timeout", type=_timeout_arg, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"limit for connecting and for the TLS handshake (default {DEFAULT_TIMEOUT:g})",
    )


def run(args: argparse.Namespace) -> int:
    """Run `chatctl connect`; returns the exit status."""
    interactive = not args.raw and sys.stdin.isatty() and sys.stdout.isatty()
    try:
        nick = _check_nick(args.nick, required=not interactive)
        context = client_context(args.ca, args.cert, args.key)
        sock = open_connection(args.address, context, args.timeout)
        if interactive:
            from chatctl.interactive import run_interactive  # prompt_toolkit only when needed

            return run_interactive(sock, nick)
        return ScriptSession(LineChannel(sock), nick or "").run()
    except ClientError as exc:
        _error(exc.message)
        return int(exc.status)


def _error(message: str) -> None:
    sys.stderr.write(f"chatctl: {message}\n")
    sys.stderr.flush()


def _check_nick(nick: str | None, required: bool) -> str | None:
    if nick is None:
        if required:
            raise ClientError(Exit.USAGE, "--nick is required when stdin is not a terminal (or with --raw)")
        return None
    if not _NICK.fullmatch(nick):
        raise ClientError(
            Exit.USAGE, f"--nick {nick!r}: nicknames are letters, digits, _ and - only"
        )
    return nick


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
            f"{address} closed the connection during the TLS handshake ({_reason(exc)}); "
            "is that a chatd port?",
        ) from exc
    sock.setblocking(False)
    return sock


# OpenSSL reasons for alerts a server sends when it refuses our client certificate.
_CLIENT_CERT_REFUSED: Final = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA",
                               "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE",
                               "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED")


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
            f"{address} refused our client certificate ({_reason(exc)}); "
            "use a certificate issued by the server's CA",
        )
    if isinstance(exc, ssl.SSLEOFError):
        return ClientError(
            Exit.TLS_HANDSHAKE,
            f"{address} closed the connection during the TLS handshake; is that a chatd port?",
        )
    return ClientError(
        Exit.TLS_HANDSHAKE,
        f"the TLS handshake with {address} failed ({_reason(exc)}); "
        "is that a chatd port and not some other service?",
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
    return ClientError(
        Exit.DROPPED, f"the connection to {peer} failed ({_reason(exc)}); try connecting again"
    )


def _peer_name(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "the server"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Outcome:
    status: Exit
    message: str | None = None


def bye_outcome(reason: str) -> Outcome:
    """What `BYE <reason>` means for the exit status and the last sentence."""
    code, _, text = sanitize(reason).partition(" ")
    if code == "quit":
        return Outcome(Exit.OK)
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
    }.get(code, "")
    return Outcome(Exit.DROPPED, f"the server closed the connection: {words}{detail}{hint}")


def dropped_outcome() -> Outcome:
    return Outcome(
        Exit.DROPPED, "the server closed the connection without saying why; try connecting again"
    )


class ScriptSession:
    """Script mode: stdin lines out, server lines verbatim to stdout, one thread.

    One selector watches the socket and stdin (fd 0, read with `os.read`).
    Registration is automatic: the nickname is sent when `NICK` arrives, and
    stdin is read only after `WELCOME`, so no input line is mistaken for a
    nickname. A second `NICK` means the nickname was refused: exit 6. At end
    of input `/quit` is sent and the session ends at the server's `BYE`.
    """

    def __init__(
        self,
        channel: LineChannel,
        nick: str,
        stdin_fd: int = 0,
        stdout: BinaryIO | None = None,
    ) -> None:
        self.channel = channel
        self.nick = nick
        self.stdin_fd = stdin_fd
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        self._sanitize_output = self.stdout.isatty()
        self.registered = False
        self._nick_sent = False
        self._last_error = ""
        self._stdin_open = True
        self._stdin_partial = b""
        self._quit_deadline: float | None = None
        self._after_bye: Outcome | None = None  # what to report once BYE (or EOF) arrives

    def run(self) -> int:
        """Returns the exit status; failures are reported on stderr, one sentence."""
        try:
            try:
                outcome = self._loop()
            except KeyboardInterrupt:
                # Ctrl-C: leave politely (/quit, wait for BYE); a second Ctrl-C gives up.
                self._quit(Outcome(Exit.INTERRUPTED))
                try:
                    outcome = self._loop()
                except (ClientError, KeyboardInterrupt):
                    outcome = Outcome(Exit.INTERRUPTED)
        except ClientError as exc:
            outcome = Outcome(exc.status, exc.message)
        finally:
            self.channel.close()
        if outcome.message:
            _error(outcome.message)
        return int(outcome.status)

    def _quit(self, then: Outcome) -> None:
        """Send /quit and end with `then` when BYE arrives (or on timeout)."""
        if self._quit_deadline is None:
            self.channel.send_line(b"/quit")
            self._quit_deadline = time.monotonic() + QUIT_TIMEOUT
        self._after_bye = then
        self._stdin_open = False

    def _loop(self) -> Outcome:
        selector = selectors.PollSelector() if hasattr(selectors, "PollSelector") else selectors.DefaultSelector()
        # NOTE: poll, not epoll: epoll refuses regular files, and `< file` is a normal stdin here.
        with selector:
            selector.register(self.channel.fileno(), selectors.EVENT_READ)
            stdin_watched = False
            while True:
                # Read first: the handshake may have left lines in OpenSSL's buffer,
                # where the selector cannot see them.
                outcome = self._read_socket()
                if outcome is not None:
                    return outcome
                self.channel.flush()
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.channel.wants_write else 0)
                selector.modify(self.channel.fileno(), events)
                want_stdin = (
                    self.registered and self._stdin_open and self.channel.backlog < STDIN_HIGH_WATER
                )
                if want_stdin != stdin_watched:
                    if want_stdin:
                        selector.register(self.stdin_fd, selectors.EVENT_READ)
                    else:
                        selector.unregister(self.stdin_fd)
                    stdin_watched = want_stdin
                timeout = None
                if self._quit_deadline is not None:
                    timeout = max(0.0, self._quit_deadline - time.monotonic())
                ready = selector.select(timeout)
                if not ready and self._quit_deadline is not None and time.monotonic() >= self._quit_deadline:
                    raise ClientError(
                        Exit.DROPPED, f"the server did not answer /quit within {QUIT_TIMEOUT:g} s"
                    )
                for key, _mask in ready:
                    if key.fd == self.stdin_fd:
                        self._read_stdin()

    def _read_stdin(self) -> None:
        try:
            data = os.read(self.stdin_fd, READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            if self._stdin_partial:
                self.channel.send_line(self._stdin_partial)
                self._stdin_partial = b""
            self._quit(Outcome(Exit.OK))
            return
        *lines, self._stdin_partial = (self._stdin_partial + data).split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if line:
                self.channel.send_line(line)

    def _read_socket(self) -> Outcome | None:
        lines = self.channel.read_lines()
        for line in lines:
            self._print(line)
            outcome = self._handle(line.decode("utf-8", "replace"))
            if outcome is not None:
                return outcome
        if self.channel.closed:
            if self._after_bye is not None and self._after_bye.status != Exit.OK:
                return self._after_bye
            return dropped_outcome()
        return None

    def _handle(self, line: str) -> Outcome | None:
        verb, _, rest = line.partition(" ")
        if verb == "NICK":
            if self._nick_sent:
                self._quit(self._nick_refused())
            else:
                self.channel.send_line(self.nick.encode())
                self._nick_sent = True
        elif verb == "ERR":
            self._last_error = rest
        elif verb == "WELCOME":
            self.registered = True
            self.nick = rest.partition(" ")[0]
        elif verb == "RENAME":
            old, _, new = rest.partition(" ")
            if old.lower() == self.nick.lower():
                self.nick = new
        elif verb == "BYE":
            outcome = bye_outcome(rest)
            if self._after_bye is not None and self._after_bye.status != Exit.OK:
                return self._after_bye  # we asked to leave because of an error: report that
            return outcome
        return None

    def _nick_refused(self) -> Outcome:
        code, _, text = self._last_error.partition(" ")
        if code == "nick_taken":
            why = "is taken"
        else:
            why = "was refused" + (f" ({sanitize(text)})" if text else "")
        return Outcome(Exit.NICK_REFUSED, f"the nickname {self.nick!r} {why}; choose another with --nick")

    def _print(self, line: bytes) -> None:
        if self._sanitize_output:
            line = sanitize(line.decode("utf-8", "replace")).encode("utf-8")
        try:
            self.stdout.write(line + b"\n")
            self.stdout.flush()
        except BrokenPipeError:
            # Whoever reads our output has gone (`| head`): stop printing, leave politely.
            # Python's recipe: point stdout at /dev/null so the exit-time flush cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
            self._quit(Outcome(Exit.OTHER))
