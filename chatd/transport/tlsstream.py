"""TLSStream: one server-side TLS connection over a non-blocking socket, through memory BIOs.

An `SSLSocket` lets OpenSSL make the system calls: two `recv()` per record
(header, then body) and one `send()` per record, so a handshake alone took
about a dozen calls and as many loopback segments. Here OpenSSL only ever
sees memory: one `recv()` takes whatever the kernel holds, the SSL object
decrypts it record by record, and what it produces (a whole handshake flight,
several records of chat) leaves in one `send()`.

The interface mirrors the parts of `SSLSocket` that `Endpoint` uses, with
its exceptions: `ssl.SSLWantReadError` means "wait for the socket to become
readable", `ssl.SSLWantWriteError` "wait until it is writable". Like any SSL
object, a stream must only ever be used by one thread at a time (its worker).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Final

from chatd.transport.clienthello import MAX_HELLO, NO_APPLICATION_PROTOCOL_ALERT, Incomplete, offered_alpn

RECV_SIZE: Final = 262144  # one recv() per readiness event takes this much at most
SEND_BATCH: Final = 16384  # ciphertext gathered before send() is called


class NoApplicationProtocol(ssl.SSLError):
    """The client offered ALPN protocols, none of them the server's."""

    reason = "no_application_protocol"


class TLSStream:
    def __init__(
        self, sock: socket.socket, context: ssl.SSLContext, scratch: bytearray, alpn: bytes | None = None
    ) -> None:
        """`scratch`: a buffer of RECV_SIZE bytes, shared by the streams of one thread.

        `alpn`: the one ALPN protocol `context` offers, if any. A client that
        offers ALPN without it is refused with a `no_application_protocol`
        alert (RFC 7301, 3.2) instead of being taken for one that offered
        nothing, which is what OpenSSL, through Python, would do.
        """
        self.sock = sock
        self._scratch = memoryview(scratch)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._out = bytearray()  # ciphertext the socket has not taken yet
        self._alpn = alpn
        self._hello: bytearray | None = bytearray() if alpn is not None else None  # until examined

    # -- handshake ----------------------------------------------------------------

    def do_handshake(self) -> None:
        """Advance the handshake; SSLWantReadError while waiting for the peer.

        On failure the alert OpenSSL wrote is sent, as far as the socket takes it,
        before the error is raised.
        """
        self.flush()
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._collect()
                self.flush()
                if not self._pull():
                    raise
                if self._hello is not None:
                    self._check_hello()
                continue
            except ssl.SSLError:
                self._collect()
                self._flush_quietly()
                raise
            self._collect()  # TLS 1.2's last flight: it leaves with the first line
            return

    def _check_hello(self) -> None:
        """Refuse a ClientHello that offers ALPN protocols, none of them ours,
        before OpenSSL answers it."""
        assert self._hello is not None
        try:
            offered = offered_alpn(self._hello)
        except Incomplete:
            if len(self._hello) < MAX_HELLO:
                return  # wait for the rest (OpenSSL waits too)
            offered = None
        except ValueError:
            offered = None  # not a ClientHello OpenSSL will take either; let it say why
        self._hello = None
        if offered is not None and self._alpn not in offered:
            self._out += NO_APPLICATION_PROTOCOL_ALERT
            self._flush_quietly()
            raise NoApplicationProtocol("the client offered no protocol the server speaks (ALPN)")

    # -- reading ------------------------------------------------------------------

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes of plaintext (at most one record); b"" at end of stream."""
        try:
            while True:
                try:
                    return self._tls.read(size)
                except ssl.SSLWantReadError:
                    if not self._pull():
                        raise
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""  # close_notify, or a TCP close without one: both mean gone
        finally:
            self._collect()  # e.g. our answer to the peer's KeyUpdate

    def has_buffered_input(self) -> bool:
        """Input already taken from the kernel, which epoll cannot see."""
        return bool(self._incoming.pending or self._tls.pending())

    # -- writing ------------------------------------------------------------------

    def send(self, data: bytes) -> int:
        """Encrypt all of `data`. SSLWantWriteError (and nothing taken) while the
        socket has not taken what was encrypted before.

        Ciphertext is gathered up to SEND_BATCH bytes, no further: what the socket
        refuses stays here, and whatever is queued later (a `BYE`) waits behind
        it, so as little as possible is encrypted ahead of the socket.
        """
        if self._out and len(self._out) + len(data) > SEND_BATCH and not self.flush():
            raise ssl.SSLWantWriteError("the socket's send buffer is full")
        self._tls.write(data)
        self._collect()
        return len(data)

    def flush(self) -> bool:
        """Send the ciphertext gathered so far; True once the socket took all of it."""
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return False
            del self._out[:sent]
        return True

    @property
    def pending_out(self) -> int:
        return len(self._out)

    # -- the rest of what Endpoint needs ----------------------------------------------

    def version(self) -> str | None:
        return self._tls.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._tls.cipher()

    def getpeercert(self) -> dict[str, Any] | None:
        return self._tls.getpeercert()

    def selected_alpn_protocol(self) -> str | None:
        return self._tls.selected_alpn_protocol()

    def shutdown_write(self) -> None:
        """TLS close_notify, then TCP FIN after it; the session stays usable for
        reading (OpenSSL allows SSL_read after our close_notify), to drain the peer.

        Without close_notify an OpenSSL 3 client takes the FIN for a truncation
        attack and answers with a decode_error alert.
        """
        try:
            self._tls.unwrap()  # writes close_notify; then waits for the peer's
        except ssl.SSLWantReadError:
            pass  # the peer's close_notify is not needed before our FIN
        self._collect()
        if self.flush():
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()

    # -- plumbing -------------------------------------------------------------------

    def _pull(self) -> bool:
        """Move what the kernel holds into the TLS layer; False if it holds nothing."""
        try:
            received = self.sock.recv_into(self._scratch)
        except (BlockingIOError, InterruptedError):
            return False
        if received:
            self._incoming.write(self._scratch[:received])
            if self._hello is not None:
                self._hello += self._scratch[:received]
        else:
            self._incoming.write_eof()
        return True

    def _collect(self) -> None:
        if self._outgoing.pending:
            self._out += self._outgoing.read()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except OSError:
            pass  # the peer is gone; the alert had no one to go to


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"{exc.reason}: {exc.verify_message}"  # e.g. certificate has expired
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
