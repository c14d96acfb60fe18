"""Operator text (`chatctl broadcast`, `kick` reasons) goes on the wire as one clean line."""

from __future__ import annotations

from chatd.operations import _one_line


def test_c0_del_and_c1_controls_become_spaces() -> None:
    # \x9b is a C1 CSI: a terminal would start an escape sequence with it, and
    # client text may not contain it either (protocol.clean_line refuses it).
    assert _one_line("a\x1b[2Jb\x7fc\x9b31md\x85e\r\nf") == "a [2Jb c 31md e  f"


def test_printable_text_is_kept() -> None:
    assert _one_line("  maintenance at noon — ça va  ") == "maintenance at noon — ça va"
