"""The optional `cluster:` section of chatd/config.py: absent is standalone;
present, every key is checked, and errors name file, key, expectation and value."""

from __future__ import annotations

import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from chatd.config import ClusterConfig, load_config
from chatd.errors import ConfigError
from tests.conftest import PKI


def write(folder: Path, document: dict[str, Any]) -> Path:
    """chatd.yaml in `folder`, with the (dummy) certificate files it names."""
    (folder / "certs").mkdir(exist_ok=True)
    for name in ("server.crt", "server.key"):
        (folder / "certs" / name).write_text("dummy PEM; load_config only opens it\n")
    path = folder / "chatd.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def minimal() -> dict[str, Any]:
    # Accounts are not shared between nodes yet: a cluster section needs them off.
    return {"tls": {"cert": "certs/server.crt", "key": "certs/server.key"}, "accounts": {"enabled": False}}


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def cluster_config(tmp_path: Path, section: Any) -> ClusterConfig | None:
    return load_config(write(tmp_path, minimal() | {"cluster": section})).cluster


def test_absent_or_empty_is_standalone(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, minimal())).cluster is None
    assert cluster_config(tmp_path, None) is None  # `cluster:` with everything commented out


def test_every_key(tmp_path: Path) -> None:
    section = {
        "redis": "redis://:pw@10.0.0.5:6380/2",
        "node": "chat-b.example",
        "lease_s": 4.5,
        "log_max": 5000,
        "prefix": "net1:",
        "require_appendonly": False,
    }
    assert cluster_config(tmp_path, section) == ClusterConfig(**section)


def test_defaults(tmp_path: Path) -> None:
    cluster = cluster_config(tmp_path, {"redis": "unix:///run/redis/redis.sock"})
    assert cluster == ClusterConfig(
        "unix:///run/redis/redis.sock", socket.gethostname(), 10.0, 1_000_000, "chatd:", True
    )
    assert isinstance(cluster.lease_s, float)


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://localhost:6379/0",
        "redis://user:secret@redis.example.org:6379/15",
        "rediss://redis.example.org",
        "redis://[::1]:6379",
        "unix:///run/redis/redis.sock",
        "unix:///tmp/r.sock?db=3",
    ],
)
def test_redis_urls_accepted(tmp_path: Path, url: str) -> None:
    cluster = cluster_config(tmp_path, {"redis": url})
    assert cluster is not None and cluster.redis == url


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "http://localhost",
        "redis://",
        "redis://localhost:99999",
        "redis://localhost:0",
        "redis://localhost/zero",
        "redis://localhost/0?protocol=3",
        "unix://run/redis.sock",
        "unix:///run/redis.sock?db=x",
        "unix:///run/redis.sock?timeout=3",
        "",
        42,
        None,
    ],
)
def test_bad_redis_urls(tmp_path: Path, url: Any) -> None:
    message = config_error(write(tmp_path, minimal() | {"cluster": {"redis": url}}))
    assert ": cluster.redis: " in message and "unix:///path/to/redis.sock" in message
    assert f"(got {url!r})" in message


def test_redis_is_required(tmp_path: Path) -> None:
    for section in ({}, {"node": "a"}):
        message = config_error(write(tmp_path, minimal() | {"cluster": section}))
        assert ": cluster.redis: required in a cluster section; must be redis://" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("node", "chat a", "must be 1-63 characters of A-Z a-z 0-9 _ . -"),
        ("node", "-chat", "must be 1-63 characters"),
        ("node", "a:1", "must be 1-63 characters"),  # ':' separates node and epoch in the keys
        ("node", "x" * 64, "must be 1-63 characters"),
        ("lease_s", 2, "must be a number 3..3600"),
        ("lease_s", "10", "must be a number 3..3600"),
        ("log_max", 999, "must be an integer 1000..1099511627776"),
        ("log_max", 1e6, "must be an integer"),
        ("prefix", "", "must be 1-64 printable characters without spaces"),
        ("prefix", "chat d:", "must be 1-64 printable characters without spaces"),
        ("prefix", "a\nb", "must be 1-64 printable characters"),
        ("require_appendonly", "no", "must be true or false"),
    ],
)
def test_bad_values(tmp_path: Path, key: str, value: Any, expected: str) -> None:
    message = config_error(write(tmp_path, minimal() | {"cluster": {"redis": "redis://r", key: value}}))
    assert f": cluster.{key}: {expected}" in message
    assert f"(got {value!r})" in message


def test_unknown_key_and_not_a_mapping(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, minimal() | {"cluster": {"redis": "redis://r", "lease": 5}}))
    assert ": cluster.lease: unknown key (known: redis, node, lease_s, log_max, prefix, require_appendonly)" in message
    message = config_error(write(tmp_path, minimal() | {"cluster": "redis://r"}))
    assert ": cluster: must be a mapping of keys (redis, " in message


def test_accounts_are_refused_beside_a_cluster_section(tmp_path: Path) -> None:
    message = config_error(
        write(tmp_path, minimal() | {"accounts": {"enabled": True}, "cluster": {"redis": "redis://r"}})
    )
    assert ": accounts.enabled: accounts are not shared between the nodes of a cluster yet;" in message
    assert load_config(write(tmp_path, minimal() | {"accounts": {"enabled": True}})).cluster is None


def test_the_irc_listener_is_refused_beside_a_cluster_section(tmp_path: Path) -> None:
    """The IRC codec matches replies to commands on the connection's own
    thread while the session handles each; a node's answers come later, from
    the log's reader: refused, naming the key."""
    irc = {"irc": {"listen": "127.0.0.1:6697"}}
    message = config_error(write(tmp_path, minimal() | irc | {"cluster": {"redis": "redis://r"}}))
    assert ": irc.listen: the IRC listener does not run on the nodes of a cluster yet;" in message
    assert "set irc.listen: null beside a cluster section (got '127.0.0.1:6697')" in message
    assert load_config(write(tmp_path, minimal() | irc)).cluster is None
    node = load_config(write(tmp_path, minimal() | {"irc": {"listen": None}, "cluster": {"redis": "redis://r"}}))
    assert node.cluster is not None and node.irc.listen is None


def test_a_node_without_its_redis_says_so_and_exits_69(tmp_path: Path, certs: PKI) -> None:
    """The section is checked (`--check-config`), and a node that cannot reach
    Redis at start does not serve: systemd may try again (EX_UNAVAILABLE)."""
    document = {
        "tls": {"cert": str(certs.server_cert), "key": str(certs.server_key)},
        "accounts": {"enabled": False},
        "history": {"enabled": False},
        "metrics": {"listen": None},
        "server": {"port": 0},
        "cluster": {"redis": f"unix://{tmp_path}/nothing.sock", "node": "a"},
    }
    path = tmp_path / "chatd.yaml"
    path.write_text(yaml.safe_dump(document))
    checked = subprocess.run(
        [sys.executable, "-m", "chatd", "--check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    started = subprocess.run(
        [sys.executable, "-m", "chatd", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 69, started.stderr
    last = started.stderr.splitlines()[-1]  # after the log's lines (the test runs as root: a warning)
    assert last.startswith(f"chatd: cannot reach Redis at unix://{tmp_path}/nothing.sock (cluster.redis): "), last


def test_standalone_chatd_imports_no_redis(tmp_path: Path) -> None:
    """Without a cluster section nothing of the cluster engine, redis-py or
    hiredis is imported: the daemon's modules, a loaded config, the server."""
    path = write(tmp_path, minimal())
    code = (
        "import sys, chatd.cli, chatd.server, chatd.config, chatd.operations, chatd.control\n"
        f"chatd.config.load_config({str(path)!r})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'hiredis') or m.startswith('chatd.cluster'))\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_base_install_gains_no_dependency() -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.split(">")[0].split("=")[0] in ("redis", "hiredis")]
    assert project["optional-dependencies"]["cluster"] == ["redis>=5", "hiredis>=3"]
