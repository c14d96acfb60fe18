"""Configuration: frozen dataclasses and `load_config(path)`.

Everything is validated here, once; the `Config` that comes out is known good
and nothing downstream checks it again. Unknown keys are refused, because a
silent typo is the worst configuration bug.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from chatd.addresses import LISTEN_EXPECTED, split_host_port
from chatd.errors import ConfigError
from chatd.names import is_room_name, room_key
from chatd.origin import parse_origin

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The key-exchange groups of Mozilla's server profiles, in their order: X25519
# first, the share modern clients send, so that they need no HelloRetryRequest.
Group = Literal["X25519", "prime256v1", "secp384r1"]
GROUPS: tuple[Group, ...] = ("X25519", "prime256v1", "secp384r1")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7443
    name: str = "chatd"
    io_threads: int = 1


@dataclass(frozen=True)
class TLSConfig:
    cert: Path = Path("certs/server.crt")
    key: Path = Path("certs/server.key")
    client_ca: Path | None = None
    client_auth: Literal["none", "optional", "required"] = "none"
    nick_from_cert: bool = False
    groups: tuple[Group, ...] = GROUPS


@dataclass(frozen=True)
class LimitsConfig:
    max_clients: int = 1000
    max_clients_per_ip: int = 16
    connects_per_ip_per_minute: int = 30
    exempt: tuple[IPNetwork, ...] = ()
    ipv6_prefix: int = 64  # the per-IP limits count an IPv6 client's network of this length
    max_line_bytes: int = 4096
    max_nick_length: int = 32
    max_nick_attempts: int = 5
    handshake_timeout: float = 10.0
    register_timeout: float = 60.0
    write_timeout: float = 30.0
    send_queue_bytes: int = 98304
    message_rate: float = 2.0
    message_burst: int = 5
    flood_disconnect: int = 20
    max_strikes: int = 10
    max_rooms: int = 1000
    max_rooms_per_client: int = 20


@dataclass(frozen=True)
class RoomsConfig:
    autojoin: tuple[str, ...] = ("#lobby",)
    permanent: tuple[str, ...] = ("#lobby",)
    allow_create: bool = True


@dataclass(frozen=True)
class HistoryConfig:
    enabled: bool = True
    path: Path = Path("data/chatd.db")
    backlog: int = 50  # events sent after a join
    flush_ms: int = 100  # the writer commits at least this often
    max_age_days: float = 90.0  # 0: keep for ever
    max_per_room: int = 100_000  # 0: no limit
    max_rooms_kept: int = 10_000  # stored rooms, the least recently written removed beyond; 0: no limit
    write_queue: int = 100_000  # events waiting for the disk before the oldest are dropped


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = True  # HTTPS and WebSocket on the chat port, for browsers (ALPN http/1.1)
    allowed_origins: tuple[str, ...] = ()  # besides the server itself, as keys of chatd.origin


@dataclass(frozen=True)
class LogConfig:
    format: Literal["json", "console", "auto"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class ControlConfig:
    socket: Path | None = None


@dataclass(frozen=True)
class MetricsConfig:
    # host:port or [IPv6]:port, as written (checked by `_listen_address`); None: off.
    listen: str | None = "127.0.0.1:9464"

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, brackets removed; None when metrics are off."""
        return None if self.listen is None else split_host_port(self.listen)


@dataclass(frozen=True)
class ClusterConfig:
    """`cluster:` (docs/architecture.md, "Cluster (engine layer)"): this process is a node of a
    network of chatd processes sharing one Redis. Absent (None): standalone."""

    redis: str  # redis://host[:port][/db], rediss://…, or unix:///path/redis.sock[?db=N]
    node: str = field(default_factory=socket.gethostname)
    lease_s: float = 10.0  # a dead node's nicknames are freed this long after it stopped renewing
    log_max: int = 1_000_000  # entries kept in the shared log
    prefix: str = "chatd:"  # of every Redis key
    require_appendonly: bool = True  # refuse a Redis without append-only persistence


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    rooms: RoomsConfig = field(default_factory=RoomsConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    cluster: ClusterConfig | None = None


# Per key: a check that returns the converted value or raises ValueError whose
# message says what was expected.
_Check = Any


def _integer(low: int, high: int) -> _Check:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer {low}..{high}")
        return value

    return check


def _number(low: float, high: float) -> _Check:
    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number {low:g}..{high:g}")
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"must be a number {low:g}..{high:g}")
        return float(value)

    return check


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _choice(*choices: str) -> _Check:
    def check(value: object) -> str:
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return str(value)

    return check


def _networks(value: object) -> tuple[IPNetwork, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of IP addresses or CIDR networks")
    try:
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in value)
    except ValueError as exc:
        raise ValueError(f"must be a list of IP addresses or CIDR networks ({exc})") from None


def _room_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of room names such as '#lobby'")
    for name in value:
        if not is_room_name(name):
            raise ValueError(f"{name!r} is not a room name: # and 1-32 of A-Z a-z 0-9 _ -")
    keys = [room_key(name) for name in value]
    if len(set(keys)) != len(keys):
        raise ValueError("lists a room twice (names are case-insensitive)")
    return tuple(value)


def _origin(item: object) -> str:
    expected = "must be a list of origins such as 'https://chat.example.org' or 'https://example.org:8443'"
    if not isinstance(item, str):
        raise ValueError(expected)
    try:
        # A trailing `/` is forgiven here, where an operator may paste a URL,
        # and nowhere else: a browser's `Origin` never has one.
        return parse_origin(item.removesuffix("/"))
    except ValueError as exc:
        raise ValueError(f"{item!r} {exc}; {expected}") from None


def _origins(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of origins such as 'https://chat.example.org'")
    return tuple(_origin(item) for item in value)


def _listen_address(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(LISTEN_EXPECTED)
    split_host_port(value)
    return value


_REDIS_EXPECTED = "must be redis://host[:port][/db], rediss://host[:port][/db] or unix:///path/to/redis.sock[?db=N]"
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _redis_url(value: object) -> str:
    """A URL redis-py reads, checked here so that config.py needs no Redis client."""
    if not isinstance(value, str):
        raise ValueError(_REDIS_EXPECTED)
    url = urllib.parse.urlsplit(value)
    try:
        port = url.port  # raises on a port that is not a number 0..65535
    except ValueError:
        raise ValueError(f"the port must be 1..65535; {_REDIS_EXPECTED}") from None
    if url.scheme == "unix":
        query = urllib.parse.parse_qs(url.query)
        if url.netloc or not url.path.startswith("/") or set(query) - {"db"}:
            raise ValueError(f"a Unix socket URL has an absolute path and at most ?db=N; {_REDIS_EXPECTED}")
        databases = query.get("db", ["0"])
    elif url.scheme in ("redis", "rediss"):
        if not url.hostname or port == 0 or url.query:
            raise ValueError(_REDIS_EXPECTED)
        databases = [url.path.strip("/") or "0"]
    else:
        raise ValueError(_REDIS_EXPECTED)
    if len(databases) != 1 or not databases[0].isascii() or not databases[0].isdigit():
        raise ValueError(f"the database is a number; {_REDIS_EXPECTED}")
    return value


def _node_name(value: object) -> str:
    if not isinstance(value, str) or not _NODE.fullmatch(value):
        raise ValueError("must be 1-63 characters of A-Z a-z 0-9 _ . -, unique in the network, e.g. chat-a")
    return value


def _prefix(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isprintable() or " " in value:
        raise ValueError("must be 1-64 printable characters without spaces, e.g. 'chatd:'")
    return value


# Names people write for the profile's groups (OpenSSL's own aliases among them),
# so that the error can say which spelling chatd expects.
_GROUP_SPELLINGS = {
    "x25519": "X25519",
    "P-256": "prime256v1",
    "secp256r1": "prime256v1",
    "P-384": "secp384r1",
}


def _groups(value: object) -> tuple[Group, ...]:
    expected = f"must be a list of one or more of {', '.join(GROUPS)}, each at most once"
    if not isinstance(value, list) or not value:
        raise ValueError(expected)
    for item in value:
        if item not in GROUPS:
            known = isinstance(item, str) and item in _GROUP_SPELLINGS
            hint = f" (chatd calls it {_GROUP_SPELLINGS[item]})" if known else ""
            raise ValueError(f"unknown group {item!r}{hint}; {expected}")
        if value.count(item) > 1:
            raise ValueError(f"{item!r} is listed twice; {expected}")
    return tuple(value)


def _read_ecdh_curve(path: Path, tls: dict[str, Any]) -> dict[str, Any]:
    """Read the deprecated `tls.ecdh_curve` (one group, or auto) as `tls.groups`.

    Kept so that a config written for an older chatd still starts: `auto` is
    the default list, a named curve a list of that one.
    """
    if "ecdh_curve" not in tls:
        return tls
    tls = dict(tls)
    curve = tls.pop("ecdh_curve")
    if "groups" in tls:
        raise ConfigError(
            f"{path}: tls.ecdh_curve: replaced by tls.groups; remove it (got {curve!r} beside tls.groups)"
        )
    if curve != "auto" and curve not in GROUPS:
        raise ConfigError(
            f"{path}: tls.ecdh_curve: deprecated, use tls.groups; must be one of auto, "
            f"{', '.join(GROUPS)} (got {curve!r})"
        )
    tls["groups"] = list(GROUPS) if curve == "auto" else [curve]
    return tls


_PATH = object()  # marker: a file path, resolved against the config file's folder
_OPTIONAL_PATH = object()

_SCHEMA: dict[str, tuple[type, dict[str, Any]]] = {
    "server": (
        ServerConfig,
        {"host": _text, "port": _integer(0, 65535), "name": _text, "io_threads": _integer(0, 64)},
    ),
    "tls": (
        TLSConfig,
        {
            "cert": _PATH,
            "key": _PATH,
            "client_ca": _OPTIONAL_PATH,
            "client_auth": _choice("none", "optional", "required"),
            "nick_from_cert": _boolean,
            "groups": _groups,
        },
    ),
    "limits": (
        LimitsConfig,
        {
            "max_clients": _integer(1, 1_000_000),
            "max_clients_per_ip": _integer(0, 1_000_000),
            "connects_per_ip_per_minute": _integer(0, 1_000_000),
            "exempt": _networks,
            "ipv6_prefix": _integer(1, 128),
            "max_line_bytes": _integer(256, 65536),
            "max_nick_length": _integer(1, 64),
            "max_nick_attempts": _integer(1, 100),
            "handshake_timeout": _number(0.1, 3600),
            "register_timeout": _number(0.1, 3600),
            "write_timeout": _number(0.1, 3600),
            "send_queue_bytes": _integer(4096, 1 << 30),
            "message_rate": _number(0, 1_000_000),
            "message_burst": _integer(1, 1_000_000),
            "flood_disconnect": _integer(0, 1_000_000),
            "max_strikes": _integer(1, 1000),
            "max_rooms": _integer(1, 1_000_000),
            "max_rooms_per_client": _integer(1, 10_000),
        },
    ),
    "rooms": (
        RoomsConfig,
        {"autojoin": _room_names, "permanent": _room_names, "allow_create": _boolean},
    ),
    "history": (
        HistoryConfig,
        {
            "enabled": _boolean,
            "path": _PATH,
            "backlog": _integer(0, 500),
            "flush_ms": _integer(1, 10_000),
            "max_age_days": _number(0, 36500),
            "max_per_room": _integer(0, 1 << 40),
            "max_rooms_kept": _integer(0, 100_000_000),
            "write_queue": _integer(100, 10_000_000),
        },
    ),
    "web": (WebConfig, {"enabled": _boolean, "allowed_origins": _origins}),
    "log": (
        LogConfig,
        {
            "format": _choice("json", "console", "auto"),
            "level": _choice("debug", "info", "warning", "error"),
        },
    ),
    "control": (ControlConfig, {"socket": _OPTIONAL_PATH}),
    "metrics": (MetricsConfig, {"listen": _listen_address}),
    # Optional: absent means standalone (`_load_cluster`).
    "cluster": (
        ClusterConfig,
        {
            "redis": _redis_url,
            "node": _node_name,
            "lease_s": _number(3, 3600),
            "log_max": _integer(1000, 1 << 40),
            "prefix": _prefix,
            "require_appendonly": _boolean,
        },
    ),
}


SYSTEM_CONFIG = Path("/etc/chatd/chatd.yaml")
DEVELOPMENT_CONFIG = Path("config/chatd.yaml")


def default_config_path() -> Path:
    """/etc/chatd/chatd.yaml when installed, else the checkout's config/chatd.yaml."""
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else DEVELOPMENT_CONFIG


def load_config(path: str | Path, check_files: bool = True) -> Config:
    """Read, validate and return the configuration at `path`.

    With `check_files=False` the TLS files are not opened: for tools that only
    need a setting (chatctl looking for the control socket) and may not be
    allowed to read the key.

    Raises:
        ConfigError: one line naming the file, the key and what was expected.
    """
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: must be a YAML mapping of sections ({', '.join(_SCHEMA)}) (got {document!r})")
    for name in document:
        if name not in _SCHEMA:
            raise ConfigError(f"{path}: {name}: unknown section (known: {', '.join(_SCHEMA)})")
    # Every section, present or not, so that default paths resolve against the file's folder.
    sections: dict[str, Any] = {
        name: _load_section(path, name, document.get(name)) for name in _SCHEMA if name != "cluster"
    }
    config = Config(path=path, cluster=_load_cluster(path, document.get("cluster")), **sections)
    _check_combinations(config, check_files)
    return config


def _load_section(path: Path, name: str, value: object) -> object:
    cls, checks = _SCHEMA[name]
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name}: must be a mapping of keys ({', '.join(checks)}) (got {value!r})")
    if cls is TLSConfig:
        value = _read_ecdh_curve(path, value)
    converted: dict[str, Any] = {}
    for key, raw in value.items():
        if key not in checks:
            raise ConfigError(f"{path}: {name}.{key}: unknown key (known: {', '.join(checks)})")
        check = checks[key]
        try:
            if check is _PATH or (check is _OPTIONAL_PATH and raw is not None):
                converted[key] = path.parent / _text(raw)
            elif check is _OPTIONAL_PATH:
                converted[key] = None
            else:
                converted[key] = check(raw)
        except ValueError as exc:
            raise ConfigError(f"{path}: {name}.{key}: {exc} (got {raw!r})") from None
    instance = cls(**converted)
    if isinstance(instance, TLSConfig):
        instance = dataclasses.replace(instance, cert=path.parent / instance.cert, key=path.parent / instance.key)
    if isinstance(instance, HistoryConfig):
        instance = dataclasses.replace(instance, path=path.parent / instance.path)
    return instance


def _load_cluster(path: Path, value: object) -> ClusterConfig | None:
    """The one optional section: absent or empty, chatd runs standalone."""
    if value is None:
        return None
    keys = value if isinstance(value, dict) else {}
    if isinstance(value, dict) and "redis" not in value:
        raise ConfigError(f"{path}: cluster.redis: required in a cluster section; {_REDIS_EXPECTED} (got none)")
    cluster = _load_section(path, "cluster", value)  # refuses what is not a mapping
    assert isinstance(cluster, ClusterConfig)
    if "node" not in keys:
        try:  # the default, the host name, must be a node name too
            _node_name(cluster.node)
        except ValueError as exc:
            raise ConfigError(
                f"{path}: cluster.node: the host name is no node name; set one: {exc} (got {cluster.node!r})"
            ) from None
    return cluster


def _check_combinations(config: Config, check_files: bool) -> None:
    _check_rooms(config)
    _check_metrics(config)
    tls = config.tls
    if tls.client_auth != "none" and tls.client_ca is None:
        raise ConfigError(
            f"{config.path}: tls.client_ca: required when tls.client_auth is {tls.client_auth!r} (got none)"
        )
    if tls.nick_from_cert and tls.client_auth != "required":
        raise ConfigError(
            f"{config.path}: tls.nick_from_cert: needs tls.client_auth: required (got client_auth {tls.client_auth!r})"
        )
    for key in ("cert", "key", "client_ca") if check_files else ():
        file = getattr(tls, key)
        if file is not None and not _readable(file):
            raise ConfigError(
                f"{config.path}: tls.{key}: cannot read {file} (create certificates with `chatctl gen-certs`)"
            )


def _check_rooms(config: Config) -> None:
    rooms, limits = config.rooms, config.limits
    permanent = {room_key(name) for name in rooms.permanent}
    missing = [name for name in rooms.autojoin if room_key(name) not in permanent]
    if not rooms.allow_create and missing:
        raise ConfigError(
            f"{config.path}: rooms.autojoin: with rooms.allow_create false, every autojoin room "
            f"must be in rooms.permanent (got {', '.join(missing)})"
        )
    standing = permanent | {room_key(name) for name in rooms.autojoin}
    if len(standing) > limits.max_rooms:
        raise ConfigError(
            f"{config.path}: rooms.permanent: with rooms.autojoin, more rooms than "
            f"limits.max_rooms ({len(standing)} > {limits.max_rooms})"
        )
    if len(rooms.autojoin) > limits.max_rooms_per_client:
        raise ConfigError(
            f"{config.path}: rooms.autojoin: more rooms than limits.max_rooms_per_client "
            f"({len(rooms.autojoin)} > {limits.max_rooms_per_client})"
        )


_WILDCARDS = ("0.0.0.0", "::", "")


def _check_metrics(config: Config) -> None:
    """The metrics listener may not take the chat port: both would fail to bind."""
    address = config.metrics.address
    server = config.server
    if address is None or address[1] == 0 or address[1] != server.port:
        return
    host = address[0]
    if host == server.host or host in _WILDCARDS or server.host in _WILDCARDS:
        raise ConfigError(
            f"{config.path}: metrics.listen: the port of server.port ({server.port}); "
            f"choose another port (got {config.metrics.listen!r})"
        )


def _readable(file: Path) -> bool:
    try:
        with file.open("rb"):
            return True
    except OSError:
        return False
