"""The systemd unit passes systemd-analyze's checks (where systemd-analyze exists)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "chatd.service"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def test_unit_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart binaries exist: point them at this checkout's chatd.
    chatd = Path(sys.executable).with_name("chatd")
    unit = tmp_path / "chatd.service"
    unit.write_text(UNIT.read_text().replace("/opt/chatd/bin/chatd", str(chatd)))
    result = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "chatd.service" not in result.stderr, result.stderr


def test_security_exposure_is_ok_or_better() -> None:
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", str(UNIT)], capture_output=True, text=True, timeout=60
    )
    match = re.search(r"Overall exposure level for chatd\.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 4.0, result.stdout


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
    ):
        assert line in text, line
