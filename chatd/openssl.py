"""OpenSSL reached through ctypes, where Python's `ssl` has no call for it: the
library `ssl` itself uses, the `SSL_CTX *` of an `SSLContext` (tls.py sets
the key-exchange groups there, and checks `SSL_MODE_RELEASE_BUFFERS`), and
the buffer of a `MemoryBIO`, which an idle connection gives back
(transport/tlsstream.py), and glibc's `malloc_trim`.

Why the BIO buffers: a memory BIO (OpenSSL's `BIO_s_mem`) keeps the largest
buffer it ever needed until it is freed, and a `MemoryBIO` lives as long as
its connection. A client that was once sent a 16 KiB record (a backlog, a
JOIN storm, a busy minute) kept about 21 KiB in its outgoing BIO for good,
more than all of chatd's Python objects for it (docs/architecture.md,
"Memory per connection"). `release_buffer` swaps an empty BIO's buffer for a
new, empty one (`BIO_set_mem_buf`), which frees the old.

Everything here reaches into CPython objects by their C layout, so each reach
is checked before it is trusted: `ssl_ctx` against the options OpenSSL
reports, the BIO behind a `MemoryBIO` once, on a probe (`release_unavailable`:
it must be a memory BIO whose pending count follows what is written to and
read from it, before and after a swap). Where a check fails, buffers are
simply kept (the caller logs it once).

What the transport does with this, and when, is tlsstream.py's and
transport/idle.py's; this module knows nothing of connections.
"""

from __future__ import annotations

import _ssl
import ctypes
import ctypes.util
import functools
import ssl
import sys
from typing import Final

# openssl/ssl.h and bio.h: numbers that are part of OpenSSL's ABI (1.1.0 to 3.x).
SSL_CTRL_SET_GROUPS_LIST: Final = 92  # SSL_CTX_set1_groups_list(ctx, list)
_SSL_CTRL_MODE: Final = 33  # SSL_CTX_set_mode(ctx, mode); SSL_CTX_get_mode with 0
SSL_MODE_RELEASE_BUFFERS: Final = 0x10
_BIO_C_SET_BUF_MEM: Final = 114  # BIO_set_mem_buf(bio, buf, close)
_BIO_C_GET_BUF_MEM_PTR: Final = 115  # BIO_get_mem_ptr(bio, &buf)
_BIO_CLOSE: Final = 1
_BIO_TYPE_MEM: Final = 1 | 0x0400  # BIO_TYPE_MEM: number 1, a source/sink BIO


class _BufMem(ctypes.Structure):
    """openssl/buffer.h `BUF_MEM`."""

    _fields_ = (
        ("length", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("max", ctypes.c_size_t),
        ("flags", ctypes.c_ulong),
    )


@functools.cache
def libssl() -> ctypes.CDLL:
    """The OpenSSL the ssl module uses, never another libssl on the system.

    Symbols are looked up through `_ssl`'s own shared object: dlsym on a
    library's handle searches the libraries it was linked against too.
    """
    # No __file__: _ssl is built into the interpreter, and so is its OpenSSL.
    lib = ctypes.CDLL(getattr(_ssl, "__file__", None))
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p)
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = (ctypes.c_void_p,)
    return lib


@functools.cache
def _bio_calls() -> ctypes.CDLL:
    """libcrypto's BIO calls, with their prototypes: a CDLL of its own, so
    that `BIO_ctrl`'s pointer argument does not change `SSL_CTX_ctrl`'s."""
    lib = ctypes.CDLL(getattr(_ssl, "__file__", None))
    lib.BIO_ctrl.restype = ctypes.c_long
    lib.BIO_ctrl.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p)
    lib.BIO_method_type.restype = ctypes.c_int
    lib.BIO_method_type.argtypes = (ctypes.c_void_p,)
    lib.BIO_ctrl_pending.restype = ctypes.c_size_t
    lib.BIO_ctrl_pending.argtypes = (ctypes.c_void_p,)
    lib.BUF_MEM_new.restype = ctypes.c_void_p
    lib.BUF_MEM_new.argtypes = ()
    return lib


def _after_header(obj: object) -> int | None:
    """The pointer CPython keeps right after `obj`'s object header.

    NOTE: this relies on the layout of CPython's `_ssl` objects
    (Modules/_ssl.c): `PySSLContext` begins with PyObject_HEAD and then
    `SSL_CTX *ctx` (since Python 3.2), `PySSLMemoryBIO` with PyObject_HEAD and
    then `BIO *bio` (since 3.5). `object.__basicsize__` is that header's size
    in this build (larger in free-threaded and debug builds). Callers check
    what they find before they use it.
    """
    if sys.implementation.name != "cpython":
        return None
    address: int | None = ctypes.c_void_p.from_address(id(obj) + object.__basicsize__).value
    return address


def ssl_ctx(context: ssl.SSLContext) -> int:
    """The `SSL_CTX *` of `context`, trusted only if OpenSSL reports for it
    the options Python reports for the context.

    Raises:
        ValueError: it could not be found (not CPython, or another layout).
        AttributeError: this Python's OpenSSL does not export the calls.
    """
    if sys.implementation.name != "cpython":
        raise ValueError(f"needs CPython to reach OpenSSL (this is {sys.implementation.name})")
    address = _after_header(context)
    if not address or libssl().SSL_CTX_get_options(address) != context.options:
        raise ValueError("cannot find the OpenSSL context of this Python's SSLContext")
    return address


def release_buffers_mode(context: ssl.SSLContext) -> bool:
    """Make sure `context` has `SSL_MODE_RELEASE_BUFFERS`: OpenSSL then frees
    a connection's 16 KiB record buffers whenever they are empty, instead of
    keeping both for the connection's life (CPython sets it on every context
    it makes; this checks, and sets it where it is missing). Whether it is
    set now.

    Raises:
        ValueError, AttributeError: as `ssl_ctx`.
    """
    ctx = ssl_ctx(context)
    ctrl = libssl().SSL_CTX_ctrl
    if not ctrl(ctx, _SSL_CTRL_MODE, 0, None) & SSL_MODE_RELEASE_BUFFERS:
        ctrl(ctx, _SSL_CTRL_MODE, SSL_MODE_RELEASE_BUFFERS, None)
    return bool(ctrl(ctx, _SSL_CTRL_MODE, 0, None) & SSL_MODE_RELEASE_BUFFERS)


@functools.cache
def release_unavailable() -> str:
    """ "" if `release_buffer` works here, else why not: the BIO found behind
    a probe `MemoryBIO` must be a memory BIO whose pending count follows what
    is written to and read from it, before and after its buffer is swapped."""
    try:
        calls = _bio_calls()
        probe = ssl.MemoryBIO()
        address = _after_header(probe)
        if not address or calls.BIO_method_type(address) != _BIO_TYPE_MEM:
            return "no memory BIO found behind ssl.MemoryBIO"
        pending = calls.BIO_ctrl_pending
        probe.write(b"probe")
        if pending(address) != 5 or probe.read() != b"probe" or pending(address) != 0:
            return "the BIO found behind ssl.MemoryBIO is not the one it uses"
        if not _swap(calls, address):
            return "BUF_MEM_new failed"
        probe.write(b"again")
        if pending(address) != 5 or probe.read() != b"again":
            return "a MemoryBIO whose buffer was swapped does not work"
    except (AttributeError, OSError, ValueError, ssl.SSLError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _swap(calls: ctypes.CDLL, address: int) -> bool:
    fresh = calls.BUF_MEM_new()
    if not fresh:
        return False  # out of memory: keep the old buffer
    # BIO_set_mem_buf(bio, fresh, BIO_CLOSE): frees the old BUF_MEM and its data
    # (a BIO_s_mem made by BIO_new owns its buffer), and owns the new one.
    calls.BIO_ctrl(address, _BIO_C_SET_BUF_MEM, _BIO_CLOSE, fresh)
    return True


def release_buffer(bio: ssl.MemoryBIO) -> bool:
    """Give back the buffer of `bio`, which must hold nothing; False if it
    holds something, or if that cannot be done here (`release_unavailable`)."""
    if bio.pending or release_unavailable():
        return False
    address = _after_header(bio)
    if not address:
        return False
    return _swap(_bio_calls(), address)


def buffer_size(bio: ssl.MemoryBIO) -> int:
    """The bytes `bio`'s buffer has allocated (for tests and measurements);
    0 where `release_unavailable()` says it cannot be read."""
    address = _after_header(bio)
    if release_unavailable() or not address:
        return 0
    pointer = ctypes.c_void_p()
    _bio_calls().BIO_ctrl(address, _BIO_C_GET_BUF_MEM_PTR, 0, ctypes.byref(pointer))
    return int(_BufMem.from_address(pointer.value).max) if pointer.value else 0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc_trim.restype = ctypes.c_int
        libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    except (OSError, AttributeError):
        return None  # not glibc: free() is all there is
    return libc


def trim_heap() -> bool:
    """Hand the pages of freed memory back to the system (glibc's
    `malloc_trim`): glibc gives back only the top of a heap by itself, and the
    buffers `release_buffer` frees lie anywhere in it. False without glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
