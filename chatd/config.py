"""Configuration: frozen dataclasses and `load_config(path)`.

Everything is validated here, once; the `Config` that comes out is known good
and nothing downstream checks it again. Unknown keys are refused, because a
silent typo is the worst configuration bug. What each single value must be is
config_values.py's (the schema below names a check per key); how a section's
mapping is read against its schema, config_loader.py's; the `irc:`, `accounts:`
and `cluster:` sections, with their own cross-checks, live in config_irc.py,
config_accounts.py and config_cluster.py. What several keys of the other
sections must be together is checked here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from chatd import config_accounts, config_cluster, config_irc
from chatd import config_values as values
from chatd.addresses import split_host_port
from chatd.config_accounts import AccountsConfig
from chatd.config_cluster import ClusterConfig as ClusterConfig  # still chatd.config.ClusterConfig too
from chatd.config_irc import IrcConfig
from chatd.config_loader import OPTIONAL_PATH, PATH, load_mapping
from chatd.config_values import GROUPS, Group, IPNetwork
from chatd.errors import ConfigError
from chatd.names import room_key

SEND_QUEUE_MIN: Final = 4096  # the least `limits.send_queue_bytes` may be


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7443
    name: str = "chatd"
    io_threads: int = 1
    # Threads that compute the TLS handshake's answer to a ClientHello (the
    # dear step) beside the I/O workers; 0: the workers compute it.
    handshake_threads: int = 1
    reuse_port: bool = False  # SO_REUSEPORT: several processes (cluster nodes) share the port
    # A worker writes at most once per this interval, so that lines close
    # together share a TLS record and a send(); 0: at the end of every turn.
    write_interval_ms: float = 10.0


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
    max_clients: int = 10000  # what 1 GB holds with room to spare (docs/operations.md, "How many users fit")
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
    rooms_per_account: int = 10  # rooms one account may register (/room register); 0: only the operator


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
    # host:port or [IPv6]:port, as written (checked by `values.listen_address`); None: off.
    listen: str | None = "127.0.0.1:9464"

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to bind, brackets removed; None when metrics are off."""
        return None if self.listen is None else split_host_port(self.listen)


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
    irc: IrcConfig = field(default_factory=IrcConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    cluster: ClusterConfig | None = None


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


_SCHEMA: dict[str, tuple[type, dict[str, Any]]] = {
    "server": (
        ServerConfig,
        {
            "host": values.text,
            "port": values.integer(0, 65535),
            "name": values.text,
            "io_threads": values.integer(0, 64),
            "handshake_threads": values.integer(0, 64),
            "reuse_port": values.boolean,
            "write_interval_ms": values.number(0, 100),
        },
    ),
    "tls": (
        TLSConfig,
        {
            "cert": PATH,
            "key": PATH,
            "client_ca": OPTIONAL_PATH,
            "client_auth": values.choice("none", "optional", "required"),
            "nick_from_cert": values.boolean,
            "groups": values.groups,
        },
    ),
    "limits": (
        LimitsConfig,
        {
            "max_clients": values.integer(1, 1_000_000),
            "max_clients_per_ip": values.integer(0, 1_000_000),
            "connects_per_ip_per_minute": values.integer(0, 1_000_000),
            "exempt": values.networks,
            "ipv6_prefix": values.integer(1, 128),
            "max_line_bytes": values.integer(256, 65536),
            "max_nick_length": values.integer(1, 64),
            "max_nick_attempts": values.integer(1, 100),
            "handshake_timeout": values.number(0.1, 3600),
            "register_timeout": values.number(0.1, 3600),
            "write_timeout": values.number(0.1, 3600),
            "send_queue_bytes": values.integer(SEND_QUEUE_MIN, 1 << 30),
            "message_rate": values.number(0, 1_000_000),
            "message_burst": values.integer(1, 1_000_000),
            "flood_disconnect": values.integer(0, 1_000_000),
            "max_strikes": values.integer(1, 1000),
            "max_rooms": values.integer(1, 1_000_000),
            "max_rooms_per_client": values.integer(1, 10_000),
            "rooms_per_account": values.integer(0, 10_000),
        },
    ),
    "rooms": (
        RoomsConfig,
        {"autojoin": values.room_names, "permanent": values.room_names, "allow_create": values.boolean},
    ),
    "history": (
        HistoryConfig,
        {
            "enabled": values.boolean,
            "path": PATH,
            "backlog": values.integer(0, 500),
            "flush_ms": values.integer(1, 10_000),
            "max_age_days": values.number(0, 36500),
            "max_per_room": values.integer(0, 1 << 40),
            "max_rooms_kept": values.integer(0, 100_000_000),
            "write_queue": values.integer(100, 10_000_000),
        },
    ),
    "web": (WebConfig, {"enabled": values.boolean, "allowed_origins": values.origins}),
    "log": (
        LogConfig,
        {
            "format": values.choice("json", "console", "auto"),
            "level": values.choice("debug", "info", "warning", "error"),
        },
    ),
    "control": (ControlConfig, {"socket": OPTIONAL_PATH}),
    "metrics": (MetricsConfig, {"listen": values.listen_address}),
    "irc": config_irc.SCHEMA,
    "accounts": config_accounts.SCHEMA,
    "cluster": config_cluster.SCHEMA,  # optional: absent means standalone (`load_cluster`)
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
    config = Config(path=path, cluster=config_cluster.load_cluster(path, document.get("cluster")), **sections)
    _check_combinations(config, check_files)
    return config


def _load_section(path: Path, name: str, value: object) -> object:
    """A section, with what is particular to two of them: the TLS section's
    deprecated key, and file paths that default relative to the config file."""
    cls, checks = _SCHEMA[name]
    if cls is TLSConfig and isinstance(value, dict):
        value = _read_ecdh_curve(path, value)
    instance = load_mapping(path, name, cls, checks, value)
    if isinstance(instance, TLSConfig):
        instance = dataclasses.replace(instance, cert=path.parent / instance.cert, key=path.parent / instance.key)
    if isinstance(instance, HistoryConfig):
        instance = dataclasses.replace(instance, path=path.parent / instance.path)
    return instance


def _check_combinations(config: Config, check_files: bool) -> None:
    _check_rooms(config)
    _check_metrics(config)
    _check_irc(config)
    if refused := config_cluster.check_cluster(config.cluster, config.accounts.enabled, config.irc.listen):
        raise ConfigError(f"{config.path}: {refused}")
    if problem := config_accounts.check_accounts(config.accounts):
        raise ConfigError(f"{config.path}: {problem[0]}: {problem[1]}")
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


def _check_irc(config: Config) -> None:
    """The IRC listener may not take the chat port or the metrics port."""
    taken = [("server.port", (config.server.host, config.server.port))]
    if config.metrics.address is not None:
        taken.append(("metrics.listen", config.metrics.address))
    if problem := config_irc.check_irc(config.irc, taken, _WILDCARDS):
        raise ConfigError(f"{config.path}: {problem}")


def _readable(file: Path) -> bool:
    try:
        with file.open("rb"):
            return True
    except OSError:
        return False
