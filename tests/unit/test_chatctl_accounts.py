"""chatctl's secrets and the operator's account commands without a daemon:
password files and rules (chatctl/credentials.py), durations
(chatctl/accounts.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatctl.accounts import parse_duration
from chatctl.credentials import CredentialError, check_password, read_password_file


def test_password_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("with spaces \r\nsecond line\n")
    os.chmod(path, 0o600)
    assert read_password_file(path) == "with spaces "
    os.chmod(path, 0o400)
    assert read_password_file(path) == "with spaces "
    for mode in (0o644, 0o604, 0o660):
        os.chmod(path, mode)
        with pytest.raises(CredentialError, match=f"mode {mode:04o}.*chmod 600"):
            read_password_file(path)
    os.chmod(path, 0o600)
    path.write_text("\n")
    with pytest.raises(CredentialError, match="no password"):
        read_password_file(path)
    with pytest.raises(CredentialError, match="cannot read"):
        read_password_file(tmp_path / "missing")
    with pytest.raises(CredentialError, match="shorter than 8"):
        check_password("short", 8)
    with pytest.raises(CredentialError, match="longer than 1024 bytes"):
        check_password("é" * 513, 8)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1d12h", 129600)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "7x", "d", "-1d", "0d", "1.5h", "7 d", "1234567d"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"30m, 12h, 7d|longer than 0"):
        parse_duration(text)
