"""The systemd unit passes systemd-analyze's checks (where systemd-analyze exists) and
agrees with the production config and the install recipe."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chatd.config import load_config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "chatd.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


@needs_analyze
def test_unit_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart binaries exist: point them at this checkout's chatd.
    chatd = Path(sys.executable).with_name("chatd")
    unit = tmp_path / "chatd.service"
    unit.write_text(UNIT.read_text().replace("/opt/chatd/bin/chatd", str(chatd)))
    result = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "chatd.service" not in result.stderr, result.stderr


@needs_analyze
def test_security_exposure_is_at_its_floor() -> None:
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for chatd\.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    # Issue 19: 1.4 before PrivateMounts=, the filter without @resources and the
    # IP allow list that leaves out link-local and multicast; 1.0 after. Every
    # other setting systemd-analyze weighs is at its best except what a network
    # daemon needs (the network, AF_INET/AF_INET6/AF_UNIX, the host's root, and
    # the rtc read that ProtectClock= itself adds). 1.1 since setpriority is
    # allowed (the background threads' lower priority, docs/operations.md):
    # systemd-analyze weighs @resources as one, whatever else of it stays refused.
    assert float(match.group(1)) <= 1.1, result.stdout


def test_the_ip_allow_list_is_everything_but_link_local_and_multicast() -> None:
    allowed = [
        ipaddress.ip_network(net)
        for line in UNIT.read_text().splitlines()
        if line.startswith("IPAddressAllow=")
        for net in line.removeprefix("IPAddressAllow=").split()
    ]
    assert "IPAddressDeny=any" in UNIT.read_text().splitlines()

    def admitted(address: str) -> bool:
        return any(ipaddress.ip_address(address) in net for net in allowed)

    for address in ("127.0.0.1", "::1", "10.1.2.3", "192.168.1.9", "203.0.113.7", "2001:db8::1", "fd00::1"):
        assert admitted(address), address
    for address in ("169.254.169.254", "169.254.0.1", "224.0.0.251", "239.255.255.250", "fe80::1", "ff02::1"):
        assert not admitted(address), address
    # Nothing else is left out: the allow list and the two holes cover each family exactly.
    for family, total, holes in ((4, 2**32, 2**16 + 2**28), (6, 2**128, 2**118 + 2**120)):
        assert sum(net.num_addresses for net in allowed if net.version == family) == total - holes


def test_unit_has_the_operational_essentials() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "User=chatd",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=78",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "PrivateMounts=yes",
    ):
        assert line in text, line


def test_the_filter_refuses_resources_but_lets_threads_lower_their_priority() -> None:
    """`SystemCallFilter=setpriority` after the deny list adds the call back to
    the allow list (systemd.exec(5): after the first line, each adds or removes
    calls); before it, the deny list would remove it again."""
    for unit in (UNIT, TEMPLATE):
        filters = _directives(unit.read_text())["SystemCallFilter"]
        assert filters == ["@system-service", "~@privileged @resources", "setpriority"], unit


@needs_analyze
def test_systemd_reads_the_filter_as_allowing_setpriority() -> None:
    """setpriority is one of @resources, which the filter refuses, and
    systemd's own reading of the unit allows it."""
    assert ANALYZE is not None
    listed = subprocess.run([ANALYZE, "syscall-filter", "@resources"], capture_output=True, text=True, timeout=60)
    calls = {line.strip() for line in listed.stdout.splitlines()[1:] if line.strip() and "#" not in line}
    assert "setpriority" in calls and "sched_setscheduler" in calls
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    line = next(line for line in result.stdout.splitlines() if "SystemCallFilter=~@resources" in line)
    assert "setpriority is allowed" in line, line


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_a_config_error_is_not_retried() -> None:
    unit = _directives(UNIT.read_text())
    assert unit["RestartPreventExitStatus"] == ["78"]
    # systemd applies RestartPreventExitStatus= to the main process only: a config
    # error caught by ExecStartPre= would be restarted every RestartSec, forever.
    assert "ExecStartPre" not in unit


def test_production_config_matches_the_unit_and_the_loader(tmp_path: Path) -> None:
    production = REPO / "config" / "chatd.production.yaml"
    document = yaml.safe_load(production.read_text())
    default = yaml.safe_load((REPO / "config" / "chatd.yaml").read_text())
    assert {s: sorted(keys) for s, keys in document.items()} == {s: sorted(keys) for s, keys in default.items()}
    unit = _directives(UNIT.read_text())
    assert unit["RuntimeDirectory"] == ["chatd"]
    assert document["control"]["socket"] == "/run/chatd/control.sock"
    # The history database is in the state folder systemd makes, the one place
    # ProtectSystem=strict leaves writable without a ReadWritePaths=.
    assert unit["StateDirectory"] == ["chatd"] and unit["StateDirectoryMode"] == ["0700"]
    assert unit["ProtectSystem"] == ["strict"] and "ReadWritePaths" not in unit
    assert document["history"]["path"] == "/var/lib/chatd/chatd.db"
    assert document["log"]["format"] == "json"  # journald stores it; the console renderer is for TTYs
    assert (document["tls"]["cert"], document["tls"]["key"]) == (
        "/etc/chatd/certs/server.crt",
        "/etc/chatd/certs/server.key",
    )
    assert unit["ExecStart"] == ["/opt/chatd/bin/chatd --config /etc/chatd/chatd.yaml"]
    install = (REPO / "scripts" / "install.sh").read_text()
    assert "prefix=/opt/chatd" in install and "/etc/chatd/chatd.yaml" in install
    # The loader accepts it once the certificate paths exist.
    for name in ("server.crt", "server.key"):
        (tmp_path / name).write_text("readable")
    document["tls"].update(cert=str(tmp_path / "server.crt"), key=str(tmp_path / "server.key"))
    (tmp_path / "chatd.yaml").write_text(yaml.safe_dump(document))
    config = load_config(tmp_path / "chatd.yaml")
    assert config.control.socket == Path("/run/chatd/control.sock")
    assert config.history.path == Path("/var/lib/chatd/chatd.db")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_install_script_parses() -> None:
    script = REPO / "scripts" / "install.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


TEMPLATE = REPO / "systemd" / "chatd@.service"


def _settings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_cluster_template_is_the_unit_with_a_config_and_folders_per_node() -> None:
    """chatd@.service (issue 24) keeps every setting of chatd.service, so that
    their hardening cannot drift apart; only what each node has of its own differs."""
    unit, template = _settings(UNIT.read_text()), _settings(TEMPLATE.read_text())
    assert len(unit) == len(template)
    assert {(a, b) for a, b in zip(unit, template, strict=True) if a != b} == {
        ("Description=chatd TLS chat server", "Description=chatd TLS chat server, cluster node %i"),
        ("After=network-online.target", "After=network-online.target redis-server.service"),
        (
            "ExecStart=/opt/chatd/bin/chatd --config /etc/chatd/chatd.yaml",
            "ExecStart=/opt/chatd/bin/chatd --config /etc/chatd/node-%i.yaml",
        ),
        ("RuntimeDirectory=chatd", "RuntimeDirectory=chatd-%i"),
        ("StateDirectory=chatd", "StateDirectory=chatd/%i"),
    }


@needs_analyze
def test_the_cluster_template_verifies_and_is_as_hardened(tmp_path: Path) -> None:
    chatd = Path(sys.executable).with_name("chatd")
    unit = tmp_path / "chatd@.service"
    unit.write_text(TEMPLATE.read_text().replace("/opt/chatd/bin/chatd", str(chatd)))
    result = subprocess.run(
        [ANALYZE, "verify", str(tmp_path / "chatd@1.service")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "chatd@" not in result.stderr, result.stderr
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(tmp_path / "chatd@1.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for chatd@1\.service: ([\d.]+)", result.stdout)
    assert match and float(match.group(1)) <= 1.1, result.stdout + result.stderr
