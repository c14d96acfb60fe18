"""Password hashes: argon2id (RFC 9106) with argon2-cffi, at the cost of
`accounts.argon2` (OWASP's minimum by default: 19 MiB, 2 passes, 1 lane).

`Argon2` hashes and verifies; it blocks for as long as a hash takes (~50 ms of
CPU at the default cost), so only chatd/auth.py's threads call it, never an
I/O worker. argon2-cffi releases the GIL while it hashes, so the I/O workers
keep running meanwhile. A hash of an older cost still verifies (the cost is
written in the hash), and is then replaced by one of the current cost
(`Verdict.rehashed`), as argon2-cffi's `check_needs_rehash` says.

`is_argon2id` is what the operator's commands accept as a password: chatctl
hashes the password itself, so the plaintext never crosses the control
socket.
"""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from chatd.config_accounts import Argon2Config
from chatd.core.accounts import Verdict


class Argon2:
    """The `Hasher` of chatd/auth.py: argon2id at one cost."""

    def __init__(self, config: Argon2Config) -> None:
        self.config = config
        self._hasher = argon2.PasswordHasher(
            time_cost=config.time_cost,
            memory_cost=config.memory_kib,
            parallelism=config.parallelism,
            type=argon2.Type.ID,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, hashed: str, password: str) -> Verdict:
        """Whether `password` is the one of `hashed`; with a new hash at the
        current cost when `hashed` was made at another."""
        try:
            self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):  # a mismatch, or a stored hash that is no argon2 hash
            return Verdict(False, None)
        rehashed = self._hasher.hash(password) if self._hasher.check_needs_rehash(hashed) else None
        return Verdict(True, rehashed)


def is_argon2id(text: str) -> bool:
    """Whether `text` is an argon2id hash string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`)."""
    if not text.startswith("$argon2id$") or len(text) > 512:
        return False
    try:
        parameters = argon2.extract_parameters(text)
    except InvalidHashError:
        return False
    return parameters.type is argon2.Type.ID
