"""The `accounts:` section of the configuration (issue 21): its dataclasses and
the checks of its keys, two of which are sections of their own (`argon2`,
`throttle`).

config.py loads it like every other section (`SCHEMA` here is its entry) and
checks what several of its keys must be together (`check_accounts`). What an
account is and how it is used: chatd/core/accounts.py; docs/operations.md
"Accounts" for the operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from chatd import config_values as values

Registration = Literal["open", "invite", "closed"]


@dataclass(frozen=True)
class Argon2Config:
    """argon2id's cost (RFC 9106): OWASP's minimum by default (m=19 MiB, t=2, p=1)."""

    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1


@dataclass(frozen=True)
class ThrottleConfig:
    """Failed logins, counted per address (IPv6: per `limits.ipv6_prefix`)
    and per account within `window_s`; reaching either limit locks out for
    `lockout_s`, doubling with each further lockout up to `lockout_max_s`."""

    address_failures: int = 5
    account_failures: int = 10
    window_s: float = 300.0
    lockout_s: float = 60.0
    lockout_max_s: float = 3600.0
    registrations_per_address_per_hour: int = 3  # open registration only; 0: no limit


@dataclass(frozen=True)
class AccountsConfig:
    enabled: bool = True  # false: no accounts, everyone a guest (protocol v3's behaviour)
    registration: Registration = "open"
    guests: bool = True  # whether unregistered nicknames are allowed at all
    auth_threads: int = 1  # threads that hash passwords (never an I/O worker)
    auth_queue: int = 32  # password checks waiting beyond the running ones; beyond, ERR auth_busy
    password_min_length: int = 8  # characters; at most PASSWORD_MAX_BYTES bytes
    token_days: int = 30  # /remember without a number
    token_days_max: int = 365
    argon2: Argon2Config = field(default_factory=Argon2Config)
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)


PASSWORD_MAX_BYTES = 1024  # docs/protocol.md: a longer password is `password_invalid`

SCHEMA: tuple[type, dict[str, Any]] = (
    AccountsConfig,
    {
        "enabled": values.boolean,
        "registration": values.choice("open", "invite", "closed"),
        "guests": values.boolean,
        "auth_threads": values.integer(1, 64),
        "auth_queue": values.integer(0, 100_000),
        "password_min_length": values.integer(1, 256),
        "token_days": values.integer(1, 36500),
        "token_days_max": values.integer(1, 36500),
        "argon2": values.Section(
            Argon2Config,
            {
                # argon2 needs at least 8 KiB per lane; 4 GiB is far beyond any login.
                "memory_kib": values.integer(8, 4 * 1024 * 1024),
                "time_cost": values.integer(1, 1000),
                "parallelism": values.integer(1, 64),
            },
        ),
        "throttle": values.Section(
            ThrottleConfig,
            {
                "address_failures": values.integer(1, 1_000_000),
                "account_failures": values.integer(1, 1_000_000),
                "window_s": values.number(1, 86400 * 7),
                "lockout_s": values.number(0, 86400 * 7),
                "lockout_max_s": values.number(0, 86400 * 30),
                "registrations_per_address_per_hour": values.integer(0, 1_000_000),
            },
        ),
    },
)


def check_accounts(accounts: AccountsConfig) -> tuple[str, str] | None:
    """What several keys must be together: None, or (dotted key, problem)."""
    if accounts.token_days > accounts.token_days_max:
        return (
            "accounts.token_days",
            f"must be at most accounts.token_days_max ({accounts.token_days_max}) (got {accounts.token_days})",
        )
    if accounts.argon2.memory_kib < 8 * accounts.argon2.parallelism:
        return (
            "accounts.argon2.memory_kib",
            f"argon2 needs at least 8 KiB per lane: 8 × parallelism = {8 * accounts.argon2.parallelism} "
            f"(got {accounts.argon2.memory_kib})",
        )
    throttle = accounts.throttle
    if throttle.lockout_s > throttle.lockout_max_s:
        return (
            "accounts.throttle.lockout_s",
            f"must be at most accounts.throttle.lockout_max_s ({throttle.lockout_max_s:g}) (got {throttle.lockout_s:g})",
        )
    return None
