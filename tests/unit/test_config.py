"""chatd/config.py: load_config() accepts what is valid and names file, key, expectation
and the value received for everything else.

The certificate and key only need to be readable files here: load_config does
not parse them (chatd/tls.py does, at start-up).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatd.config import (
    GROUPS,
    Config,
    ControlConfig,
    HistoryConfig,
    LimitsConfig,
    LogConfig,
    MetricsConfig,
    RoomsConfig,
    ServerConfig,
    TLSConfig,
    load_config,
)
from chatd.errors import ConfigError

SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "tls": TLSConfig,
    "limits": LimitsConfig,
    "rooms": RoomsConfig,
    "history": HistoryConfig,
    "log": LogConfig,
    "control": ControlConfig,
    "metrics": MetricsConfig,
}

FULL = """\
server:
  host: 0.0.0.0
  port: 7000
  name: testchat
  io_threads: 4
  handshake_threads: 2
  reuse_port: true
  write_interval_ms: 5
tls:
  cert: certs/server.crt
  key: certs/server.key
  client_ca: certs/ca.crt
  client_auth: required
  nick_from_cert: true
  groups: [secp384r1, X25519]
limits:
  max_clients: 50
  max_clients_per_ip: 3
  connects_per_ip_per_minute: 10
  exempt: [10.0.0.0/8, 203.0.113.7, "2001:db8::/32"]
  ipv6_prefix: 56
  max_line_bytes: 1024
  max_nick_length: 16
  max_nick_attempts: 3
  handshake_timeout: 2.5
  register_timeout: 20
  write_timeout: 15
  send_queue_bytes: 65536
  message_rate: 0.5
  message_burst: 10
  flood_disconnect: 0
  max_strikes: 4
  max_rooms: 10
  max_rooms_per_client: 3
  rooms_per_account: 2
rooms:
  autojoin: ["#lobby", "#Help"]
  permanent: ["#lobby", "#help", "#news"]
  allow_create: false
history:
  enabled: false
  path: var/history.db
  backlog: 20
  flush_ms: 250
  max_age_days: 7.5
  max_per_room: 5000
  max_rooms_kept: 300
  write_queue: 1000
log:
  format: json
  level: debug
control:
  socket: run/chatd.sock
metrics:
  listen: "[::1]:9100"
"""


def make_certs(folder: Path, *names: str) -> None:
    (folder / "certs").mkdir(parents=True, exist_ok=True)
    for name in names or ("server.crt", "server.key", "ca.crt"):
        (folder / "certs" / name).write_text("dummy PEM; load_config only opens it\n")


def write(folder: Path, document: str | dict[str, Any] | None) -> Path:
    """Write chatd.yaml in `folder` (with certs/ beside it) and return its path."""
    make_certs(folder)
    path = folder / "chatd.yaml"
    if isinstance(document, str):
        path.write_text(document)
    else:
        path.write_text(yaml.safe_dump(document))
    return path


def minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    """A valid document (explicit cert and key) with `sections` merged in."""
    document: dict[str, Any] = {"tls": {"cert": "certs/server.crt", "key": "certs/server.key"}}
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    return document


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    assert str(path) in message
    return message


# -- valid files ------------------------------------------------------------------------------


def test_full_valid_config(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    config = load_config(path)
    assert config.path == path
    assert config.server == ServerConfig(
        host="0.0.0.0",
        port=7000,
        name="testchat",
        io_threads=4,
        handshake_threads=2,
        reuse_port=True,
        write_interval_ms=5.0,
    )
    assert config.tls == TLSConfig(
        cert=tmp_path / "certs/server.crt",
        key=tmp_path / "certs/server.key",
        client_ca=tmp_path / "certs/ca.crt",
        client_auth="required",
        nick_from_cert=True,
        groups=("secp384r1", "X25519"),
    )
    assert config.limits == LimitsConfig(
        max_clients=50,
        max_clients_per_ip=3,
        connects_per_ip_per_minute=10,
        exempt=(
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("203.0.113.7/32"),
            ipaddress.ip_network("2001:db8::/32"),
        ),
        ipv6_prefix=56,
        max_line_bytes=1024,
        max_nick_length=16,
        max_nick_attempts=3,
        handshake_timeout=2.5,
        register_timeout=20.0,
        write_timeout=15.0,
        send_queue_bytes=65536,
        message_rate=0.5,
        message_burst=10,
        flood_disconnect=0,
        max_strikes=4,
        max_rooms=10,
        max_rooms_per_client=3,
        rooms_per_account=2,
    )
    assert config.rooms == RoomsConfig(
        autojoin=("#lobby", "#Help"), permanent=("#lobby", "#help", "#news"), allow_create=False
    )
    assert config.history == HistoryConfig(
        enabled=False,
        path=tmp_path / "var/history.db",
        backlog=20,
        flush_ms=250,
        max_age_days=7.5,
        max_per_room=5000,
        max_rooms_kept=300,
        write_queue=1000,
    )
    assert config.log == LogConfig(format="json", level="debug")
    assert config.control == ControlConfig(socket=tmp_path / "run/chatd.sock")
    assert config.metrics == MetricsConfig(listen="[::1]:9100")
    assert config.metrics.address == ("::1", 9100)


def test_full_config_sets_every_key(tmp_path: Path) -> None:
    """FULL must keep covering every key, so the test above checks every conversion."""
    document = yaml.safe_load(FULL)
    for name, cls in SECTIONS.items():
        assert set(document[name]) == {f.name for f in dataclasses.fields(cls)}, name


def test_numbers_become_floats_and_integers_stay_integers(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert type(config.limits.register_timeout) is float
    assert type(config.limits.message_rate) is float
    assert type(config.limits.max_clients) is int
    assert type(config.server.port) is int
    assert type(config.history.max_age_days) is float
    assert type(config.history.backlog) is int


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.limits.max_clients = 1  # type: ignore[misc]


def test_missing_keys_take_their_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal(server={"port": 9000}, limits={"max_clients": 7})))
    assert config.server == dataclasses.replace(ServerConfig(), port=9000)
    assert config.limits == dataclasses.replace(LimitsConfig(), max_clients=7)
    assert config.rooms == RoomsConfig()
    assert config.history == HistoryConfig(path=tmp_path / "data/chatd.db")  # beside the file
    assert config.log == LogConfig()
    assert config.control == ControlConfig()
    assert config.metrics == MetricsConfig()
    assert config.tls.client_auth == "none" and config.tls.client_ca is None


def test_rooms_default_to_one_permanent_lobby(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal()))
    assert config.rooms == RoomsConfig(autojoin=("#lobby",), permanent=("#lobby",), allow_create=True)
    assert (config.limits.max_rooms, config.limits.max_rooms_per_client) == (1000, 20)


@pytest.mark.parametrize(
    "text",
    ["server:\nlimits:\nrooms:\nhistory:\nlog:\ncontrol:\n", "server: {}\nrooms: {}\nhistory: {}\nlog: {}\n"],
)
def test_empty_sections_take_their_defaults(tmp_path: Path, text: str) -> None:
    config = load_config(write(tmp_path, "tls:\n  cert: certs/server.crt\n  key: certs/server.key\n" + text))
    assert (config.server, config.limits, config.rooms, config.history, config.log, config.control) == (
        ServerConfig(),
        LimitsConfig(),
        RoomsConfig(),
        HistoryConfig(path=tmp_path / "data/chatd.db"),
        LogConfig(),
        ControlConfig(),
    )


def test_empty_tls_section_uses_the_default_paths_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(write(tmp_path / "etc", "tls:\n"))
    assert config.tls.cert == tmp_path / "etc" / TLSConfig.cert
    assert config.tls.key == tmp_path / "etc" / TLSConfig.key


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file_gives_all_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    # The default certs/server.{crt,key} exist both beside the file and in the working
    # directory here; test_default_tls_paths_are_relative_to_the_file separates the two.
    monkeypatch.chdir(tmp_path)
    config = load_config(write(tmp_path, text))
    assert (config.server, config.limits, config.rooms, config.history, config.log, config.control) == (
        ServerConfig(),
        LimitsConfig(),
        RoomsConfig(),
        HistoryConfig(path=tmp_path / "data/chatd.db"),
        LogConfig(),
        ControlConfig(),
    )
    assert config.tls.client_auth == "none" and config.tls.client_ca is None


@pytest.mark.parametrize("text", ["", "server:\n  port: 0\n"])
def test_default_tls_paths_are_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no certs/ here
    config = load_config(write(tmp_path / "etc", text))
    assert config.tls.cert == tmp_path / "etc" / "certs" / "server.crt"
    assert config.tls.key == tmp_path / "etc" / "certs" / "server.key"


def test_relative_paths_are_resolved_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc" / "chatd"
    make_certs(tmp_path)  # tmp/certs, reached as ../../certs
    path = write(
        folder,
        minimal(
            tls={
                "cert": "../../certs/server.crt",
                "key": "../../certs/server.key",
                "client_ca": "../../certs/ca.crt",
                "client_auth": "optional",
            },
            control={"socket": "chatd.sock"},
            history={"path": "../../var/chatd.db"},
        ),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    for file, expected in [
        (config.tls.cert, tmp_path / "certs/server.crt"),
        (config.tls.key, tmp_path / "certs/server.key"),
        (config.tls.client_ca, tmp_path / "certs/ca.crt"),
        (config.control.socket, folder / "chatd.sock"),
        (config.history.path, tmp_path / "var/chatd.db"),
    ]:
        assert file is not None and file.is_absolute()
        assert file.resolve() == expected.resolve()


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    make_certs(tmp_path / "pki")
    cert, key = tmp_path / "pki/certs/server.crt", tmp_path / "pki/certs/server.key"
    sock, db = tmp_path / "run/chatd.sock", tmp_path / "lib/chatd.db"
    document = {
        "tls": {"cert": str(cert), "key": str(key)},
        "control": {"socket": str(sock)},
        "history": {"path": str(db)},
    }
    config = load_config(write(tmp_path / "etc", document))
    assert (config.tls.cert, config.tls.key, config.control.socket, config.history.path) == (cert, key, sock, db)


def test_a_relative_config_path_gives_an_absolute_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, minimal())
    monkeypatch.chdir(tmp_path)
    config = load_config("chatd.yaml")
    assert config.path == tmp_path / "chatd.yaml"
    assert config.tls.cert == tmp_path / "certs/server.crt"


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("server", "port", 0, 0),
        ("server", "port", 65535, 65535),
        ("server", "io_threads", 64, 64),
        ("server", "handshake_threads", 0, 0),
        ("server", "write_interval_ms", 0, 0.0),
        ("server", "write_interval_ms", 0.5, 0.5),
        ("server", "write_interval_ms", 100, 100.0),
        ("limits", "max_line_bytes", 256, 256),
        ("limits", "max_line_bytes", 65536, 65536),
        ("limits", "max_clients_per_ip", 0, 0),
        ("limits", "connects_per_ip_per_minute", 0, 0),
        ("limits", "ipv6_prefix", 1, 1),
        ("limits", "ipv6_prefix", 128, 128),
        ("limits", "message_rate", 0, 0.0),
        ("limits", "handshake_timeout", 0.1, 0.1),
        ("limits", "register_timeout", 3600, 3600.0),
        ("limits", "max_nick_length", 64, 64),
        ("limits", "exempt", [], ()),
        ("limits", "max_rooms", 1, 1),
        ("limits", "max_rooms", 1_000_000, 1_000_000),
        ("limits", "max_rooms_per_client", 1, 1),
        ("limits", "max_rooms_per_client", 10_000, 10_000),
        ("limits", "rooms_per_account", 0, 0),
        ("limits", "rooms_per_account", 10_000, 10_000),
        ("rooms", "autojoin", [], ()),
        ("rooms", "autojoin", ["#a", "#" + "z" * 32, "#A-b_9"], ("#a", "#" + "z" * 32, "#A-b_9")),
        ("rooms", "permanent", [], ()),
        ("rooms", "permanent", ["#Lobby", "#help"], ("#Lobby", "#help")),
        ("rooms", "allow_create", False, False),
        ("tls", "client_ca", None, None),
        ("tls", "client_auth", "none", "none"),
        ("tls", "groups", ["prime256v1"], ("prime256v1",)),
        ("tls", "groups", ["secp384r1", "prime256v1", "X25519"], ("secp384r1", "prime256v1", "X25519")),
        ("log", "format", "console", "console"),
        ("log", "level", "error", "error"),
        ("control", "socket", None, None),
        ("metrics", "listen", None, None),
        ("metrics", "listen", "0.0.0.0:0", "0.0.0.0:0"),
        ("metrics", "listen", "[::]:9464", "[::]:9464"),
        ("metrics", "listen", "localhost:65535", "localhost:65535"),
        ("metrics", "listen", "metrics.example.org:9100", "metrics.example.org:9100"),
        ("history", "enabled", False, False),
        ("history", "backlog", 0, 0),
        ("history", "backlog", 500, 500),
        ("history", "flush_ms", 1, 1),
        ("history", "flush_ms", 10_000, 10_000),
        ("history", "max_age_days", 0, 0.0),
        ("history", "max_age_days", 0.5, 0.5),
        ("history", "max_age_days", 36500, 36500.0),
        ("history", "max_per_room", 0, 0),
        ("history", "max_per_room", 1 << 40, 1 << 40),
        ("history", "max_rooms_kept", 0, 0),
        ("history", "max_rooms_kept", 100_000_000, 100_000_000),
        ("history", "write_queue", 100, 100),
        ("history", "write_queue", 10_000_000, 10_000_000),
    ],
)
def test_boundary_values_are_accepted(tmp_path: Path, section: str, key: str, value: Any, expected: Any) -> None:
    config = load_config(write(tmp_path, minimal(**{section: {key: value}})))
    assert getattr(getattr(config, section), key) == expected


def test_groups_default_to_the_mozilla_profile_x25519_first(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal()))
    assert config.tls.groups == ("X25519", "prime256v1", "secp384r1") == GROUPS


# tls.ecdh_curve (one group) came before tls.groups. Installed configs still have
# `ecdh_curve: auto`, and install.sh keeps an existing /etc/chatd/chatd.yaml, so it is
# read as tls.groups rather than refused.
@pytest.mark.parametrize(
    ("curve", "groups"),
    [
        ("auto", GROUPS),
        ("X25519", ("X25519",)),
        ("prime256v1", ("prime256v1",)),
        ("secp384r1", ("secp384r1",)),
    ],
)
def test_deprecated_ecdh_curve_is_read_as_groups(tmp_path: Path, curve: str, groups: tuple[str, ...]) -> None:
    config = load_config(write(tmp_path, minimal(tls={"ecdh_curve": curve})))
    assert config.tls.groups == groups


def test_ecdh_curve_and_groups_together_are_refused(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, minimal(tls={"ecdh_curve": "auto", "groups": ["X25519"]})))
    assert message.endswith(": tls.ecdh_curve: replaced by tls.groups; remove it (got 'auto' beside tls.groups)")


def test_client_auth_optional_with_a_ca(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal(tls={"client_ca": "certs/ca.crt", "client_auth": "optional"})))
    assert config.tls.client_auth == "optional"
    assert config.tls.client_ca == tmp_path / "certs/ca.crt"


# -- errors: file and document ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    message = config_error(tmp_path / "nope.yaml")
    assert "cannot read the config file" in message
    assert "No such file or directory" in message


def test_config_path_is_a_directory(tmp_path: Path) -> None:
    assert "cannot read the config file" in config_error(tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "chatd.yaml"
    path.write_bytes(b"server:\n  name: caf\xe9\n")
    assert "not UTF-8" in config_error(path)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("server:\n  port: [1\n", 3, 1),
        ("server:\n  port: 1\n  name: a: b\n", 3, 10),
        ("server:\n\tport: 1\n", 2, 1),
        ("limits: {max_clients: 1\n", 2, 1),
        ('server:\n  name: "unterminated\n', 3, 1),
    ],
)
def test_invalid_yaml_names_line_and_column(tmp_path: Path, text: str, line: int, column: int) -> None:
    message = config_error(write(tmp_path, text))
    assert "invalid YAML" in message
    assert f"line {line}, column {column}" in message


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "server: !!python/object/apply:os.system ['true']\n"))
    assert "invalid YAML at line 1" in message


@pytest.mark.parametrize("text", ["- server\n- tls\n", "just a string\n", "42\n", "true\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    message = config_error(write(tmp_path, text))
    assert (
        "must be a YAML mapping of sections (server, tls, limits, rooms, history, web, log, control, metrics, irc, accounts, cluster)"
        in message
    )


def test_top_level_not_a_mapping_shows_what_was_received(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "- server\n- tls\n"))
    assert "(got ['server', 'tls'])" in message


@pytest.mark.parametrize("name", ["servers", "Server", "limit", "logging", "room", "channels"])
def test_unknown_section(tmp_path: Path, name: str) -> None:
    message = config_error(write(tmp_path, {**minimal(), name: {"a": 1}}))
    assert (
        f": {name}: unknown section (known: server, tls, limits, rooms, history, web, log, control, metrics, irc, accounts, cluster)"
        in message
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("server", "hostname"),
        ("limits", "max_client"),
        ("limits", "Max_clients"),
        ("limits", "max_room"),
        ("rooms", "auto_join"),
        ("rooms", "default"),
        ("log", "lvl"),
        ("tls", "ca"),
        ("history", "max_age"),
        ("history", "file"),
    ],
)
def test_unknown_key(tmp_path: Path, section: str, key: str) -> None:
    message = config_error(write(tmp_path, minimal(**{section: {key: 1}})))
    known = ", ".join(f.name for f in dataclasses.fields(SECTIONS[section]))
    assert f": {section}.{key}: unknown key (known: {known})" in message


@pytest.mark.parametrize("value", [[1, 2], 5, "port: 1", True])
def test_section_that_is_not_a_mapping(tmp_path: Path, value: Any) -> None:
    message = config_error(write(tmp_path, minimal(log={}) | {"limits": value}))
    assert ": limits: must be a mapping of keys (max_clients, " in message


def test_section_not_a_mapping_shows_what_was_received(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, minimal() | {"limits": [1, 2]}))
    assert "(got [1, 2])" in message


# -- errors: one key at a time ----------------------------------------------------------------

GROUPS_EXPECTED = "must be a list of one or more of X25519, prime256v1, secp384r1, each at most once"
ROOMS_EXPECTED = "must be a list of room names such as '#lobby'"
NOT_A_ROOM = "is not a room name: # and 1-32 of A-Z a-z 0-9 _ -"
TWICE = "lists a room twice (names are case-insensitive)"
CURVE_EXPECTED = "must be one of auto, X25519, prime256v1, secp384r1"
LISTEN_EXPECTED = "must be host:port or [IPv6]:port, e.g. 127.0.0.1:9464, or null for off"

KEY_ERRORS = [
    # wrong type
    ("limits", "max_clients", "big", "must be an integer 1..1000000"),
    ("limits", "max_clients", True, "must be an integer 1..1000000"),
    ("limits", "max_clients", 10.0, "must be an integer 1..1000000"),
    ("limits", "max_clients", "10", "must be an integer 1..1000000"),
    ("limits", "max_clients", None, "must be an integer 1..1000000"),
    ("limits", "max_line_bytes", "big", "must be an integer 256..65536"),
    ("server", "port", "7443", "must be an integer 0..65535"),
    ("server", "port", False, "must be an integer 0..65535"),
    ("server", "port", 7443.5, "must be an integer 0..65535"),
    ("server", "port", [7443], "must be an integer 0..65535"),
    ("server", "host", 127, "must be a non-empty string"),
    ("server", "host", "", "must be a non-empty string"),
    ("server", "name", "   ", "must be a non-empty string"),
    ("server", "name", ["chatd"], "must be a non-empty string"),
    ("limits", "handshake_timeout", "10s", "must be a number 0.1..3600"),
    ("limits", "handshake_timeout", True, "must be a number 0.1..3600"),
    ("limits", "message_rate", {"per": 1}, "must be a number 0..1e+06"),
    ("tls", "nick_from_cert", "yes please", "must be true or false"),
    ("tls", "nick_from_cert", 1, "must be true or false"),
    ("tls", "cert", 5, "must be a non-empty string"),
    ("tls", "cert", "", "must be a non-empty string"),
    ("tls", "key", None, "must be a non-empty string"),
    ("tls", "client_ca", ["a"], "must be a non-empty string"),
    ("control", "socket", 5, "must be a non-empty string"),
    ("control", "socket", "", "must be a non-empty string"),
    ("limits", "exempt", "10.0.0.0/8", "must be a list of IP addresses or CIDR networks"),
    ("limits", "exempt", None, "must be a list of IP addresses or CIDR networks"),
    # out of range
    ("server", "port", 70000, "must be an integer 0..65535"),
    ("server", "port", 65536, "must be an integer 0..65535"),
    ("server", "port", -1, "must be an integer 0..65535"),
    ("server", "io_threads", 65, "must be an integer 0..64"),
    ("server", "handshake_threads", -1, "must be an integer 0..64"),
    ("server", "reuse_port", "yes", "must be true or false"),
    ("server", "write_interval_ms", -1, "must be a number 0..100"),
    ("server", "write_interval_ms", 101, "must be a number 0..100"),
    ("server", "write_interval_ms", "2ms", "must be a number 0..100"),
    ("limits", "max_line_bytes", 10, "must be an integer 256..65536"),
    ("limits", "ipv6_prefix", 0, "must be an integer 1..128"),
    ("limits", "ipv6_prefix", 129, "must be an integer 1..128"),
    ("limits", "ipv6_prefix", "/64", "must be an integer 1..128"),
    ("limits", "max_line_bytes", 255, "must be an integer 256..65536"),
    ("limits", "max_line_bytes", 65537, "must be an integer 256..65536"),
    ("limits", "max_clients", 0, "must be an integer 1..1000000"),
    ("limits", "max_clients_per_ip", -1, "must be an integer 0..1000000"),
    ("limits", "max_nick_length", 0, "must be an integer 1..64"),
    ("limits", "max_nick_length", 65, "must be an integer 1..64"),
    ("limits", "send_queue_bytes", 1000, "must be an integer 4096..1073741824"),
    ("limits", "max_strikes", 0, "must be an integer 1..1000"),
    ("limits", "handshake_timeout", -1, "must be a number 0.1..3600"),
    ("limits", "register_timeout", -0.5, "must be a number 0.1..3600"),
    ("limits", "write_timeout", 0, "must be a number 0.1..3600"),
    ("limits", "write_timeout", 3601, "must be a number 0.1..3600"),
    ("limits", "write_timeout", float("inf"), "must be a number 0.1..3600"),
    ("limits", "write_timeout", float("nan"), "must be a number 0.1..3600"),
    ("limits", "message_rate", -1, "must be a number 0..1e+06"),
    # bad choice
    ("log", "format", "xml", "must be one of json, console, auto"),
    ("log", "format", "JSON", "must be one of json, console, auto"),
    ("log", "level", "verbose", "must be one of debug, info, warning, error"),
    ("log", "level", 10, "must be one of debug, info, warning, error"),
    ("tls", "client_auth", "always", "must be one of none, optional, required"),
    ("tls", "client_auth", True, "must be one of none, optional, required"),
    # tls.groups: wrong type, empty, unknown names, duplicates
    ("tls", "groups", "X25519", GROUPS_EXPECTED),
    ("tls", "groups", "X25519:prime256v1", GROUPS_EXPECTED),
    ("tls", "groups", None, GROUPS_EXPECTED),
    ("tls", "groups", {"X25519": True}, GROUPS_EXPECTED),
    ("tls", "groups", [], GROUPS_EXPECTED),
    ("tls", "groups", ["X448"], f"unknown group 'X448'; {GROUPS_EXPECTED}"),
    ("tls", "groups", ["X25519", "secp521r1"], f"unknown group 'secp521r1'; {GROUPS_EXPECTED}"),
    ("tls", "groups", ["P-256"], f"unknown group 'P-256' (chatd calls it prime256v1); {GROUPS_EXPECTED}"),
    ("tls", "groups", ["x25519"], f"unknown group 'x25519' (chatd calls it X25519); {GROUPS_EXPECTED}"),
    ("tls", "groups", [25519], f"unknown group 25519; {GROUPS_EXPECTED}"),
    ("tls", "groups", [None], f"unknown group None; {GROUPS_EXPECTED}"),
    ("tls", "groups", [["X25519"]], f"unknown group ['X25519']; {GROUPS_EXPECTED}"),
    ("tls", "groups", ["X25519", "prime256v1", "X25519"], f"'X25519' is listed twice; {GROUPS_EXPECTED}"),
    # the deprecated tls.ecdh_curve still names one group, or auto
    ("tls", "ecdh_curve", "x448", f"deprecated, use tls.groups; {CURVE_EXPECTED}"),
    ("tls", "ecdh_curve", "P-256", f"deprecated, use tls.groups; {CURVE_EXPECTED}"),
    ("tls", "ecdh_curve", ["X25519"], f"deprecated, use tls.groups; {CURVE_EXPECTED}"),
    # bad exempt entries
    ("limits", "exempt", ["10.0.0.0/33"], "must be a list of IP addresses or CIDR networks"),
    ("limits", "exempt", ["banana"], "must be a list of IP addresses or CIDR networks"),
    ("limits", "exempt", ["10.0.0.0/8", "2001:db8::/129"], "must be a list of IP addresses or CIDR networks"),
    ("limits", "exempt", [10], "must be a list of IP addresses or CIDR networks"),
    ("limits", "exempt", ["10.0.0.0/8/8"], "must be a list of IP addresses or CIDR networks"),
    # rooms
    ("limits", "max_rooms", 0, "must be an integer 1..1000000"),
    ("limits", "max_rooms", "many", "must be an integer 1..1000000"),
    ("limits", "max_rooms_per_client", 0, "must be an integer 1..10000"),
    ("limits", "max_rooms_per_client", 10_001, "must be an integer 1..10000"),
    ("limits", "rooms_per_account", -1, "must be an integer 0..10000"),
    ("limits", "rooms_per_account", 10_001, "must be an integer 0..10000"),
    ("rooms", "allow_create", "yes", "must be true or false"),
    ("rooms", "autojoin", "#lobby", ROOMS_EXPECTED),
    ("rooms", "autojoin", None, ROOMS_EXPECTED),
    ("rooms", "autojoin", {"#lobby": True}, ROOMS_EXPECTED),
    ("rooms", "autojoin", [1], ROOMS_EXPECTED),
    ("rooms", "permanent", ["#lobby", None], ROOMS_EXPECTED),
    ("rooms", "autojoin", ["lobby"], f"'lobby' {NOT_A_ROOM}"),
    ("rooms", "autojoin", ["#lobby", "#"], f"'#' {NOT_A_ROOM}"),
    ("rooms", "permanent", ["#" + "x" * 33], f"'#{'x' * 33}' {NOT_A_ROOM}"),
    ("rooms", "permanent", ["#a b"], f"'#a b' {NOT_A_ROOM}"),
    ("rooms", "permanent", ["#caf\u00e9"], f"'#caf\u00e9' {NOT_A_ROOM}"),
    ("rooms", "permanent", ["&lobby"], f"'&lobby' {NOT_A_ROOM}"),
    ("rooms", "autojoin", ["#lobby", "#lobby"], TWICE),
    ("rooms", "autojoin", ["#lobby", "#help", "#LOBBY"], TWICE),
    ("rooms", "permanent", ["#Help", "#hELP"], TWICE),
    # metrics.listen
    ("metrics", "listen", 9464, LISTEN_EXPECTED),
    ("metrics", "listen", True, LISTEN_EXPECTED),
    ("metrics", "listen", ["127.0.0.1:9464"], LISTEN_EXPECTED),
    ("metrics", "listen", "", LISTEN_EXPECTED),
    ("metrics", "listen", "9464", LISTEN_EXPECTED),
    ("metrics", "listen", ":9464", LISTEN_EXPECTED),
    ("metrics", "listen", "127.0.0.1", LISTEN_EXPECTED),
    ("metrics", "listen", "[::1]", LISTEN_EXPECTED),
    ("metrics", "listen", "[::1]9464", LISTEN_EXPECTED),
    ("metrics", "listen", "::1:9464", f"an IPv6 address goes in brackets, as in [::1]:9464; {LISTEN_EXPECTED}"),
    ("metrics", "listen", "[127.0.0.1]:9464", f"'127.0.0.1' in brackets is not an IPv6 address; {LISTEN_EXPECTED}"),
    ("metrics", "listen", "300.0.0.1:9464", f"'300.0.0.1' is not an IPv4 address; {LISTEN_EXPECTED}"),
    ("metrics", "listen", "my_host:9464", f"'my_host' is not an IP address or host name; {LISTEN_EXPECTED}"),
    ("metrics", "listen", "127.0.0.1:65536", f"the port must be 0..65535; {LISTEN_EXPECTED}"),
    ("metrics", "listen", "127.0.0.1:-1", f"the port must be 0..65535; {LISTEN_EXPECTED}"),
    ("metrics", "listen", "127.0.0.1:http", f"the port must be 0..65535; {LISTEN_EXPECTED}"),
    ("metrics", "listen", "127.0.0.1:", f"the port must be 0..65535; {LISTEN_EXPECTED}"),
    # irc
    ("irc", "listen", 6697, LISTEN_EXPECTED),
    ("irc", "listen", "127.0.0.1", LISTEN_EXPECTED),
    ("irc", "server_name", "my server", "must be a host name such as irc.example.org"),
    ("irc", "server_name", "-irc.example.org", "must be a host name such as irc.example.org"),
    ("irc", "server_name", 7, "must be a host name such as irc.example.org"),
    ("irc", "backlog", 501, "must be an integer 0..500"),
    ("irc", "backlog", "all", "must be an integer 0..500"),
    # history
    ("history", "enabled", "yes", "must be true or false"),
    ("history", "enabled", None, "must be true or false"),
    ("history", "path", "", "must be a non-empty string"),
    ("history", "path", None, "must be a non-empty string"),
    ("history", "backlog", -1, "must be an integer 0..500"),
    ("history", "backlog", 501, "must be an integer 0..500"),
    ("history", "backlog", 50.0, "must be an integer 0..500"),
    ("history", "flush_ms", 0, "must be an integer 1..10000"),
    ("history", "flush_ms", 10_001, "must be an integer 1..10000"),
    ("history", "flush_ms", "100ms", "must be an integer 1..10000"),
    ("history", "max_age_days", -1, "must be a number 0..36500"),
    ("history", "max_age_days", 36501, "must be a number 0..36500"),
    ("history", "max_age_days", float("inf"), "must be a number 0..36500"),
    ("history", "max_age_days", "90d", "must be a number 0..36500"),
    ("history", "max_per_room", -1, "must be an integer 0..1099511627776"),
    ("history", "max_rooms_kept", -1, "must be an integer 0..100000000"),
    ("history", "max_rooms_kept", "many", "must be an integer 0..100000000"),
    ("history", "write_queue", 99, "must be an integer 100..10000000"),
    ("history", "write_queue", 10_000_001, "must be an integer 100..10000000"),
]


@pytest.mark.parametrize(("section", "key", "value", "expected"), KEY_ERRORS)
def test_bad_value_names_file_key_expectation_and_value(
    tmp_path: Path, section: str, key: str, value: Any, expected: str
) -> None:
    message = config_error(write(tmp_path, minimal(**{section: {key: value}})))
    assert f": {section}.{key}: {expected}" in message
    assert message.endswith(f"(got {value!r})")


def _wrong_value(cls: type, field: dataclasses.Field[Any]) -> Any:
    """A value of the wrong kind for `field`, whatever its type."""
    if field.name == "exempt":
        return "10.0.0.0/8"
    if isinstance(field.default, (bool, str, Path)) or field.default is None:
        return 12345 if not isinstance(field.default, bool) else "maybe"
    return "not a number"


@pytest.mark.parametrize(
    ("section", "key"),
    [(name, f.name) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)],
)
def test_every_key_is_type_checked(tmp_path: Path, section: str, key: str) -> None:
    field = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == key)
    value = _wrong_value(SECTIONS[section], field)
    message = config_error(write(tmp_path, minimal(**{section: {key: value}})))
    assert f": {section}.{key}: must be " in message
    assert message.endswith(f"(got {value!r})")


def test_yaml_booleans_are_not_integers(tmp_path: Path) -> None:
    message = config_error(
        write(tmp_path, "tls: {cert: certs/server.crt, key: certs/server.key}\nlimits:\n  max_clients: yes\n")
    )
    assert message.endswith("limits.max_clients: must be an integer 1..1000000 (got True)")


# -- errors: combinations and files -------------------------------------------------------------


@pytest.mark.parametrize("client_auth", ["optional", "required"])
def test_client_auth_without_client_ca(tmp_path: Path, client_auth: str) -> None:
    message = config_error(write(tmp_path, minimal(tls={"client_auth": client_auth})))
    assert f": tls.client_ca: required when tls.client_auth is '{client_auth}' (got none)" in message


@pytest.mark.parametrize("client_auth", ["none", "optional"])
def test_nick_from_cert_needs_client_auth_required(tmp_path: Path, client_auth: str) -> None:
    tls = {"nick_from_cert": True, "client_auth": client_auth, "client_ca": "certs/ca.crt"}
    message = config_error(write(tmp_path, minimal(tls=tls)))
    assert f": tls.nick_from_cert: needs tls.client_auth: required (got client_auth '{client_auth}')" in message


@pytest.mark.parametrize(
    ("key", "tls"),
    [
        ("cert", {"cert": "certs/missing.crt"}),
        ("key", {"key": "certs/missing.key"}),
        ("client_ca", {"client_ca": "certs/missing-ca.crt", "client_auth": "optional"}),
        ("cert", {"cert": "certs"}),  # a directory: exists, cannot be read as a file
    ],
)
def test_unreadable_tls_file(tmp_path: Path, key: str, tls: dict[str, str]) -> None:
    message = config_error(write(tmp_path, minimal(tls=tls)))
    assert f": tls.{key}: cannot read {tmp_path / tls[key]}" in message
    assert "chatctl gen-certs" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_tls_key_without_read_permission(tmp_path: Path) -> None:
    path = write(tmp_path, minimal())
    (tmp_path / "certs/server.key").chmod(0)
    message = config_error(path)
    assert ": tls.key: cannot read " in message and "chatctl gen-certs" in message


# -- errors: rooms against each other and against the limits ----------------------------------


@pytest.mark.parametrize(
    ("host", "listen"),
    [
        ("127.0.0.1", "127.0.0.1:7443"),
        ("::", "127.0.0.1:7443"),
        ("127.0.0.1", "0.0.0.0:7443"),
        ("0.0.0.0", "[::]:7443"),
    ],
)
def test_metrics_may_not_listen_on_the_chat_port(tmp_path: Path, host: str, listen: str) -> None:
    message = config_error(write(tmp_path, minimal(server={"host": host, "port": 7443}, metrics={"listen": listen})))
    assert f": metrics.listen: the port of server.port (7443); choose another port (got {listen!r})" in message


@pytest.mark.parametrize(
    ("server", "listen"),
    [({"port": 7443}, "127.0.0.2:7443"), ({"port": 0}, "127.0.0.1:0"), ({"port": 7443}, "127.0.0.1:9464")],
)
def test_metrics_beside_the_chat_port(tmp_path: Path, server: dict[str, Any], listen: str) -> None:
    config = load_config(write(tmp_path, minimal(server=server, metrics={"listen": listen})))
    assert config.metrics.listen == listen


@pytest.mark.parametrize(
    ("sections", "key", "port"),
    [
        ({"server": {"host": "127.0.0.1", "port": 7443}, "irc": {"listen": "127.0.0.1:7443"}}, "server.port", 7443),
        ({"server": {"host": "::", "port": 7443}, "irc": {"listen": "127.0.0.1:7443"}}, "server.port", 7443),
        ({"metrics": {"listen": "127.0.0.1:9464"}, "irc": {"listen": "0.0.0.0:9464"}}, "metrics.listen", 9464),
    ],
)
def test_irc_may_not_listen_on_another_listeners_port(
    tmp_path: Path, sections: dict[str, dict[str, Any]], key: str, port: int
) -> None:
    message = config_error(write(tmp_path, minimal(**sections)))
    listen = sections["irc"]["listen"]
    assert f": irc.listen: the port of {key} ({port}); choose another port (got {listen!r})" in message


def test_irc_is_off_unless_configured_and_named_after_the_host(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, minimal())).irc.listen is None  # an older file opens no new port
    config = load_config(write(tmp_path, minimal(irc={"listen": "[::1]:6697", "server_name": None})))
    assert config.irc.address == ("::1", 6697) and config.irc.name == socket.gethostname()
    config = load_config(write(tmp_path, minimal(irc={"listen": None, "server_name": "irc.example.org"})))
    assert config.irc.address is None and config.irc.name == "irc.example.org"


def test_metrics_address_takes_the_brackets_off(tmp_path: Path) -> None:
    assert MetricsConfig().address == ("127.0.0.1", 9464)
    assert MetricsConfig(listen="[fe80::1%eth0]:9100").address == ("fe80::1%eth0", 9100)
    assert MetricsConfig(listen=None).address is None


def test_autojoin_must_be_permanent_when_creating_is_off(tmp_path: Path) -> None:
    rooms = {"autojoin": ["#lobby", "#Help", "#news"], "permanent": ["#LOBBY", "#help"], "allow_create": False}
    message = config_error(write(tmp_path, minimal(rooms=rooms)))
    assert message.endswith(
        ": rooms.autojoin: with rooms.allow_create false, every autojoin room must be in rooms.permanent (got #news)"
    )


def test_autojoin_need_not_be_permanent_when_creating_is_on(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal(rooms={"autojoin": ["#lobby", "#news"]})))
    assert config.rooms.autojoin == ("#lobby", "#news") and config.rooms.permanent == ("#lobby",)


def test_creating_off_with_no_autojoin_needs_no_permanent_room(tmp_path: Path) -> None:
    rooms = {"autojoin": [], "permanent": [], "allow_create": False}
    assert load_config(write(tmp_path, minimal(rooms=rooms))).rooms == RoomsConfig((), (), False)


def test_more_permanent_rooms_than_max_rooms(tmp_path: Path) -> None:
    document = minimal(rooms={"permanent": ["#a", "#b", "#c"], "autojoin": ["#a"]}, limits={"max_rooms": 2})
    message = config_error(write(tmp_path, document))
    assert message.endswith(": rooms.permanent: with rooms.autojoin, more rooms than limits.max_rooms (3 > 2)")
    document["limits"]["max_rooms"] = 3
    assert len(load_config(write(tmp_path, document)).rooms.permanent) == 3


def test_autojoin_rooms_that_are_not_permanent_count_against_max_rooms(tmp_path: Path) -> None:
    # Every client would create #extra on registration: with max_rooms 1 each
    # would get ERR too_many_rooms, so the file is refused instead.
    document = minimal(rooms={"permanent": ["#lobby"], "autojoin": ["#lobby", "#extra"]}, limits={"max_rooms": 1})
    message = config_error(write(tmp_path, document))
    assert message.endswith(": rooms.permanent: with rooms.autojoin, more rooms than limits.max_rooms (2 > 1)")


def test_more_autojoin_rooms_than_max_rooms_per_client(tmp_path: Path) -> None:
    document = minimal(rooms={"autojoin": ["#a", "#b", "#c"]}, limits={"max_rooms_per_client": 2})
    message = config_error(write(tmp_path, document))
    assert message.endswith(": rooms.autojoin: more rooms than limits.max_rooms_per_client (3 > 2)")
    document["limits"]["max_rooms_per_client"] = 3
    assert load_config(write(tmp_path, document)).rooms.autojoin == ("#a", "#b", "#c")


def test_the_default_lobby_against_a_limit_of_one(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, minimal(limits={"max_rooms": 1, "max_rooms_per_client": 1})))
    assert config.rooms == RoomsConfig()


def test_exempt_from_yaml_is_usable(tmp_path: Path) -> None:
    text = (
        "tls: {cert: certs/server.crt, key: certs/server.key}\n"
        "limits:\n  exempt:\n    - 10.1.2.3/8\n    - ::1\n    - 192.0.2.1\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.limits.exempt == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.0.2.1/32"),
    )


def test_config_dataclass_defaults_are_valid(tmp_path: Path) -> None:
    """Writing every default explicitly loads back the defaults (schema and dataclasses agree)."""
    document: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        values = {}
        for f in dataclasses.fields(cls):
            default = f.default
            if isinstance(default, Path):
                default = str(default)
            elif isinstance(default, tuple):
                default = [str(n) for n in default]
            values[f.name] = default
        document[name] = values
    config = load_config(write(tmp_path, document))
    assert config == Config(
        path=tmp_path / "chatd.yaml",
        tls=TLSConfig(cert=tmp_path / "certs/server.crt", key=tmp_path / "certs/server.key"),
        history=HistoryConfig(path=tmp_path / "data/chatd.db"),
    )


def test_tools_can_read_settings_without_the_tls_files(tmp_path: Path) -> None:
    config_file = tmp_path / "chatd.yaml"
    config_file.write_text("control:\n  socket: run/control.sock\n")  # certs/server.* do not exist
    with pytest.raises(ConfigError, match=r"tls.cert"):
        load_config(config_file)
    config = load_config(config_file, check_files=False)
    assert config.control.socket == tmp_path / "run" / "control.sock"


# -- accounts (issue 21) ----------------------------------------------------------------


def test_accounts_default_to_open_registration_with_guests(tmp_path: Path) -> None:
    accounts = load_config(write(tmp_path, ""), check_files=False).accounts
    assert (accounts.enabled, accounts.registration, accounts.guests) == (True, "open", True)
    assert (accounts.argon2.memory_kib, accounts.argon2.time_cost, accounts.argon2.parallelism) == (19456, 2, 1)


def test_accounts_nested_keys_load(tmp_path: Path) -> None:
    text = "accounts:\n  registration: invite\n  guests: false\n  argon2:\n    time_cost: 3\n  throttle:\n    window_s: 60\n"
    accounts = load_config(write(tmp_path, text), check_files=False).accounts
    assert (accounts.registration, accounts.guests, accounts.argon2.time_cost) == ("invite", False, 3)
    assert accounts.argon2.memory_kib == 19456 and accounts.throttle.window_s == 60.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accounts:\n  registration: public\n", "accounts.registration: must be one of open, invite, closed"),
        ("accounts:\n  argon2:\n    memory: 1\n", "accounts.argon2.memory: unknown key (known: memory_kib"),
        ("accounts:\n  argon2: 5\n", "accounts.argon2: must be a mapping of keys (memory_kib, time_cost"),
        ("accounts:\n  throttle:\n    window_s: 0\n", "accounts.throttle.window_s: must be a number 1..604800 (got 0)"),
        ("accounts:\n  auth_threads: 0\n", "accounts.auth_threads: must be an integer 1..64 (got 0)"),
        ("accounts:\n  token_days: 400\n", "accounts.token_days: must be at most accounts.token_days_max (365)"),
        ("accounts:\n  argon2:\n    memory_kib: 8\n    parallelism: 2\n", "accounts.argon2.memory_kib: argon2 needs"),
        (
            "accounts:\n  throttle:\n    lockout_s: 10\n    lockout_max_s: 5\n",
            "accounts.throttle.lockout_s: must be at",
        ),
    ],
)
def test_accounts_errors_name_the_dotted_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(write(tmp_path, text))
