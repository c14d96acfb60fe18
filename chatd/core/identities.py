"""Identities: the one spelling of each name that client certificates prove.

With `tls.nick_from_cert` a certificate's common name is its holder's
nickname, and nicknames, and the direct messages kept under them
(`history.dm_key`), ignore case. Two certificates whose names differ only in
case (`CN=alice`, then `CN=ALICE` from a later `chatctl gen-certs` or an
organisation's own CA) would be one person to chatd: the second would read the
first's direct messages and receive those sent to her. So the first spelling
seen is the identity's, and a certificate with another spelling is refused
(`register` in core/registering.py, docs/operations.md "Client certificates").

What is here: the table and its rule. What is not: keeping it. The event
store does (`EventStore.remember_identity`; the SQLite store writes each new
spelling with its next batch and hands them all back at start-up); with
history off, it lasts as long as the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from chatd import names
from chatd.core import protocol
from chatd.errors import ProtocolError


class Identities:
    def __init__(self, known: dict[str, str], remember: Callable[[str, str], None]) -> None:
        """`known`: each identity (`names.nick_key`) with its spelling, as
        stored; `remember(key, spelling)` keeps a new one (must not block)."""
        self._lock = threading.Lock()  # two first connections with one name, on two I/O threads
        self._spellings = dict(known)
        self._remember = remember

    def claim(self, spelling: str) -> str | None:
        """Take `spelling` as its identity's, if that identity has none yet.

        Returns None if `spelling` is (now) the identity's, else the spelling
        the identity already has.
        """
        key = names.nick_key(spelling)
        with self._lock:
            known = self._spellings.get(key)
            if known is None:
                self._spellings[key] = spelling
        if known is None:
            self._remember(key, spelling)  # outside the lock, though it only queues
            return None
        return None if known == spelling else known


def refusal(certificate_name: str, known: str) -> ProtocolError:
    """What the holder of a certificate for another spelling of `known` is told."""
    return ProtocolError(
        protocol.NICK_INVALID,
        f"Your certificate names you {certificate_name}, but this server knows that person as "
        f"{known}, and nicknames ignore case, so it cannot accept both. Ask the operator for a "
        f"certificate for {known}, or for a different name.",
    )
