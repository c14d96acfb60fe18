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

Memory: OpenSSL's memory BIOs keep the largest buffer they ever needed
(openssl.py says why), about 21 KiB once a 16 KiB record has gone out.
`release_buffers`, which the worker's idle sweep calls every few seconds
(idle.py), gives both back once the stream has been idle since the
previous call.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Final, Protocol, cast

from chatd.openssl import buffer_size, release_buffer
from chatd.transport.clienthello import HelloReader

RECV_SIZE: Final = 262144  # one recv() per readiness event takes this much at most
SEND_BATCH: Final = 16384  # ciphertext gathered before send() is called


class _SSLObject(Protocol):
    """What a stream asks of its SSL object: CPython's `_ssl._SSLSocket`, the
    one `ssl.SSLObject` wraps and forwards every call to (`_server_object`)."""

    def do_handshake(self) -> None: ...
    def read(self, size: int) -> bytes: ...
    def write(self, data: bytes) -> int: ...
    def pending(self) -> int: ...
    def version(self) -> str | None: ...
    def cipher(self) -> tuple[str, str, int] | None: ...
    def getpeercert(self) -> dict[str, Any] | None: ...
    def selected_alpn_protocol(self) -> str | None: ...


class _Shutdown(Protocol):
    def shutdown(self) -> object:
        """SSL_shutdown: close_notify written (`SSLObject.unwrap` calls it)."""


def _server_object(context: ssl.SSLContext, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> _SSLObject:
    """A server-side SSL object over the two BIOs: the one `SSLContext.wrap_bio`
    would wrap, made by the call it makes (`_wrap_bio`), without the wrapper,
    a Python object whose methods only forward: 160 bytes per client, and a
    Python call per read and per write (docs/architecture.md, "Memory per
    connection"). Where a Python has no `_wrap_bio`, the `ssl.SSLObject`."""
    wrap = getattr(context, "_wrap_bio", None)
    if wrap is None:
        return context.wrap_bio(incoming, outgoing, server_side=True)
    return cast(_SSLObject, wrap(incoming, outgoing, server_side=True, server_hostname=None))


def _close_notify(tls: _SSLObject) -> None:
    if isinstance(tls, ssl.SSLObject):
        tls.unwrap()
    else:
        cast(_Shutdown, tls).shutdown()


class ClientHelloRefused(ssl.SSLError):
    """The client's ClientHello was refused before OpenSSL answered it: ALPN
    protocols none of which is the server's, too many records, records of
    another type inside it (clienthello.py). `reason` is what the log says."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.reason = error


class TLSStream:
    __slots__ = ("_busy", "_held", "_hello", "_incoming", "_out", "_outgoing", "_released", "_scratch", "_tls", "sock")

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        scratch: bytearray | memoryview,
        alpn: bytes | None = None,
    ) -> None:
        """`scratch`: a buffer of RECV_SIZE bytes, shared by the streams of one
        thread; a view of it is shared too (a view is 300 bytes per stream).

        `alpn`: the one ALPN protocol `context` offers, if any. A client that
        offers ALPN without it is refused with a `no_application_protocol`
        alert (RFC 7301, 3.2) instead of being taken for one that offered
        nothing, which is what OpenSSL, through Python, would do. With or
        without it, a ClientHello in too many records is refused.
        """
        self.sock = sock
        self._scratch = scratch if isinstance(scratch, memoryview) else memoryview(scratch)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = _server_object(context, self._incoming, self._outgoing)
        # Ciphertext the socket has not taken yet: bytes, not a bytearray, so
        # that an idle stream holds none, and a write's records, read out of
        # the BIO whole, go to send() without another copy.
        self._out = b""
        # Until no ClientHello can come: every byte the client sends goes
        # through it before OpenSSL, every byte the server sends after it.
        self._hello: HelloReader | None = HelloReader(alpn)
        self._held = b""  # what came after a hello, kept from OpenSSL until it has answered
        self._busy = True  # read or written since the last `release_buffers`
        self._released = False  # the BIOs' buffers were given back since then

    # -- handshake ----------------------------------------------------------------

    # A handshake step is three parts (pump.handshake), so that OpenSSL's may
    # run on another thread (chatd/jobthreads.py), the other two on the
    # worker's, with the socket. On a failure, the alert OpenSSL wrote is
    # sent, as far as the socket takes it.
    # They return OpenSSL's errors rather than raise them: an error kept in a
    # variable and raised makes a reference cycle with the frames it passes
    # through, and the endpoint's among them would wait for the cyclic GC.

    def handshake_input(self) -> None:
        """Give OpenSSL what the peer sent; SSLWantReadError if nothing came."""
        self.flush()
        if not self._incoming.pending:
            # OpenSSL has taken all it was given and waits for the peer: asked
            # again, it would only say so with an SSLWantReadError built in C
            # (twice per handshake, at the first byte and at the client's
            # Finished), so read first.
            if not self._pull():
                raise ssl.SSLWantReadError("the handshake waits for the peer")
            self._check_hello()

    def handshake_call(self) -> ssl.SSLError | None:
        """OpenSSL's part, the dear one (it releases the GIL): what it raised.
        Any thread, while no other touches this stream."""
        try:
            self._tls.do_handshake()
        except ssl.SSLError as exc:
            # Without its traceback: the frames in it would keep their callers'
            # frames alive, the endpoint's among them.
            return exc.with_traceback(None)
        return None

    def handshake_continue(self, error: ssl.SSLError | None) -> ssl.SSLError | None:
        """The rest of a step whose OpenSSL part returned `error`: send its
        answer and give OpenSSL what else came. None once the handshake is
        done; SSLWantReadError while it waits for the peer; any other
        SSLError once it failed (its alert sent, as far as the socket takes it)."""
        while isinstance(error, ssl.SSLWantReadError):
            self._collect()
            self.flush()
            if not self._pull():
                return error
            self._check_hello()
            error = self.handshake_call()
        self._collect()
        if error is not None:
            self._flush_quietly()
            return error
        self._hello = None  # TLS 1.2's last flight, just collected, leaves with the first line
        return None

    def _check_hello(self) -> None:
        """Refuse the ClientHello if the reader did, before OpenSSL answers it."""
        hello = self._hello
        if hello is None or hello.refusal is None:
            return
        self._hello = None
        self._out = self._out + hello.refusal.alert
        self._flush_quietly()
        raise ClientHelloRefused(hello.refusal.error)

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
        return bool(self._held or self._incoming.pending or self._tls.pending())

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
        self._busy = True
        self._tls.write(data)
        self._collect()
        return len(data)

    def flush(self) -> bool:
        """Send the ciphertext gathered so far; True once the socket took all of it."""
        out = self._out
        while out:
            try:
                sent = self.sock.send(out)
            except (BlockingIOError, InterruptedError):
                self._out = out
                return False
            out = out[sent:]
        self._out = b""
        return True

    @property
    def pending_out(self) -> int:
        return len(self._out)

    def release_buffers(self) -> bool:
        """Give back the memory BIOs' buffers if nothing was read or written
        since the last call (and nothing waits in them); whether it did."""
        if self._busy:
            self._busy = self._released = False
            return False
        if self._released or self._held or self._hello is not None:
            return False
        self._released = True
        # Each holds nothing it has not handed on (`release_buffer` checks):
        # the outgoing BIO is emptied by every write, the incoming one holds
        # only the start of a record not yet whole, and then it is kept.
        incoming = release_buffer(self._incoming)
        return release_buffer(self._outgoing) or incoming

    def buffered(self) -> int:
        """Bytes this stream holds allocated in its buffers: the memory BIOs'
        (as far as `openssl.buffer_size` can read them) and the ciphertext
        that waits for the socket. For tests and measurements."""
        return buffer_size(self._incoming) + buffer_size(self._outgoing) + len(self._out)

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
            _close_notify(self._tls)  # writes close_notify; then waits for the peer's
        except ssl.SSLWantReadError:
            pass  # the peer's close_notify is not needed before our FIN
        self._collect()
        if self.flush():
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()

    # -- plumbing -------------------------------------------------------------------

    def _pull(self) -> bool:
        """Move what the kernel holds (or what was held back) into the TLS
        layer; False if there is nothing."""
        self._busy = True
        if self._held:
            held, self._held = self._held, b""
            if self._hello is not None and self._hello.awaiting_answer:
                # OpenSSL wants more than a whole hello without answering it,
                # so it has sent no HelloRetryRequest and no second hello can
                # come: nothing is left to examine. (Not seen with OpenSSL 3;
                # without this the held bytes would go round for ever.)
                self._hello = None
            self._take(memoryview(held))
            return True
        try:
            received = self.sock.recv_into(self._scratch)
        except (BlockingIOError, InterruptedError):
            return False
        if received:
            self._take(self._scratch[:received])
        else:
            self._incoming.write_eof()
        return True

    def _take(self, data: memoryview) -> None:
        hello = self._hello
        if hello is None:
            self._incoming.write(data)
            return
        used = hello.receive(data)
        if used:
            self._incoming.write(data[:used])
        if used < len(data):
            self._held = bytes(data[used:])
        if hello.done and hello.refusal is None:
            self._hello = None

    def _collect(self) -> None:
        if self._outgoing.pending:
            data = self._outgoing.read()
            if self._hello is not None:
                self._hello.sent(data)  # a HelloRetryRequest means a second hello to examine
                if self._hello.done:
                    self._hello = None
            self._out = self._out + data if self._out else data

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
