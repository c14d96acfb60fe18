"""The operator references cannot go stale: config/chatd.yaml against the config
dataclasses, and the codes in docs/protocol.md against the code base.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from chatd import names
from chatd.config import (
    AccountsConfig,
    ClusterConfig,
    Config,
    ControlConfig,
    HistoryConfig,
    IrcConfig,
    LimitsConfig,
    LogConfig,
    MetricsConfig,
    RoomsConfig,
    ServerConfig,
    TLSConfig,
    WebConfig,
    load_config,
)
from chatd.core import history, protocol

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "chatd.yaml"
PROTOCOL_MD = REPO / "docs" / "protocol.md"

SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "tls": TLSConfig,
    "limits": LimitsConfig,
    "rooms": RoomsConfig,
    "history": HistoryConfig,
    "web": WebConfig,
    "log": LogConfig,
    "control": ControlConfig,
    "metrics": MetricsConfig,
    "irc": IrcConfig,
    "accounts": AccountsConfig,
}
# Differ from the dataclass defaults on purpose: where a checkout keeps them. A
# relative history.path is the default, but loaded it is beside the file.
# irc.listen: off when absent (an older file opens no new port), on in the example.
NOT_DEFAULTS = {("tls", "cert"), ("tls", "key"), ("control", "socket"), ("history", "path"), ("irc", "listen")}


@pytest.fixture
def example(tmp_path: Path) -> Config:
    """config/chatd.yaml loaded from tmp/config/, with the tmp/certs/ it points to."""
    (tmp_path / "config").mkdir()
    (tmp_path / "certs").mkdir()
    for name in ("server.crt", "server.key"):
        (tmp_path / "certs" / name).write_text("dummy PEM\n")
    path = tmp_path / "config" / "chatd.yaml"
    shutil.copy(EXAMPLE, path)
    return load_config(path)


def example_keys() -> list[tuple[str, str, int]]:
    """(section, key, line index) for every key line in the example, in order."""
    keys = []
    section = None
    for index, line in enumerate(EXAMPLE.read_text().splitlines()):
        if match := re.fullmatch(r"([a-z_]+):\s*", line):
            section = match.group(1)
        elif match := re.fullmatch(r"  ([a-z0-9_]+):.*", line):
            assert section is not None, f"line {index + 1}: key outside a section"
            keys.append((section, match.group(1), index))
    return keys


ALL_FIELDS = [(name, f.name) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def nested_keys() -> list[tuple[str, str, str, int]]:
    """(section, key, sub-key, line index) for the keys of a key that is a
    mapping of its own (`accounts:`'s `argon2:` and `throttle:`)."""
    found = []
    section = key = None
    for index, line in enumerate(EXAMPLE.read_text().splitlines()):
        if match := re.fullmatch(r"([a-z_]+):\s*", line):
            section, key = match.group(1), None
        elif match := re.fullmatch(r"  ([a-z0-9_]+):\s*", line):
            key = match.group(1)
        elif match := re.fullmatch(r"  ([a-z0-9_]+):.*", line):
            key = None
        elif (match := re.fullmatch(r"    ([a-z0-9_]+):.*", line)) and key is not None:
            assert section is not None
            found.append((section, key, match.group(1), index))
    return found


def test_every_nested_key_is_in_the_example_with_a_comment_and_its_default(example: Config) -> None:
    lines = EXAMPLE.read_text().splitlines()
    nested = nested_keys()
    for section, key, sub, index in nested:
        assert re.fullmatch(r"    # \S.*", lines[index - 1]), f"{section}.{key}.{sub} has no comment directly above it"
        default = getattr(getattr(SECTIONS[section](), key), sub)
        assert getattr(getattr(getattr(example, section), key), sub) == default, f"{section}.{key}.{sub}"
    expected = {
        ("accounts", name, f.name)
        for name in ("argon2", "throttle")
        for f in dataclasses.fields(type(getattr(AccountsConfig(), name)))
    }
    assert {(s, k, sub) for s, k, sub, _ in nested} == expected


def test_config_has_exactly_these_sections() -> None:
    assert {f.name for f in dataclasses.fields(Config)} == {"path", *SECTIONS, "cluster"}


# -- the optional cluster section: documented commented out --------------------------------------


def commented_cluster() -> list[str]:
    """The example's `# cluster:` section, uncommented."""
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index("# cluster:")
    section = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        section.append(line.removeprefix("# ").removeprefix("#"))
    return section


def test_the_cluster_section_is_commented_out(example: Config) -> None:
    assert example.cluster is None  # standalone is the default


def test_every_cluster_key_is_documented_with_a_comment_above_it() -> None:
    section = commented_cluster()
    keys = [(i, m.group(1)) for i, line in enumerate(section) if (m := re.fullmatch(r"  ([a-z_]+):.*", line))]
    assert [key for _, key in keys] == [f.name for f in dataclasses.fields(ClusterConfig)]
    for index, key in keys:
        assert re.fullmatch(r"  # \S.*", section[index - 1]), f"cluster.{key} has no comment directly above it"


def test_the_cluster_section_loads_uncommented_with_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    for name in ("server.crt", "server.key"):
        (tmp_path / "certs" / name).write_text("dummy PEM\n")
    path = tmp_path / "chatd.yaml"
    # Accounts are not shared between nodes yet: a cluster section needs them off.
    head = "tls:\n  cert: certs/server.crt\n  key: certs/server.key\naccounts:\n  enabled: false\n"
    path.write_text(head + "\n".join(commented_cluster()))
    cluster = load_config(path).cluster
    assert cluster is not None
    assert (cluster.redis, cluster.node) == ("unix:///run/redis/redis.sock", "chat-a")
    defaults = ClusterConfig(redis=cluster.redis, node=cluster.node)
    assert cluster == defaults


def test_example_loads(example: Config, tmp_path: Path) -> None:
    assert example.tls.cert.resolve() == tmp_path / "certs" / "server.crt"
    assert example.tls.key.resolve() == tmp_path / "certs" / "server.key"
    assert example.control.socket == tmp_path / "config" / "chatd.sock"
    assert example.history.path == tmp_path / "config" / HistoryConfig().path


@pytest.mark.parametrize(("section", "key"), ALL_FIELDS)
def test_every_key_is_in_the_example(section: str, key: str) -> None:
    assert (section, key) in {(s, k) for s, k, _ in example_keys()}


def test_the_example_has_no_key_the_dataclasses_lack() -> None:
    assert sorted((s, k) for s, k, _ in example_keys()) == sorted(ALL_FIELDS)


# Keys explained by the comment of the key just above them, on purpose.
SHARES_COMMENT_ABOVE = {("tls", "key"), ("limits", "message_burst")}


@pytest.mark.parametrize(("section", "key"), ALL_FIELDS)
def test_every_key_has_a_comment_above_it(section: str, key: str) -> None:
    lines = EXAMPLE.read_text().splitlines()
    index = next(i for s, k, i in example_keys() if (s, k) == (section, key))
    above = index - 1
    if (section, key) in SHARES_COMMENT_ABOVE:
        assert re.fullmatch(r"  [a-z0-9_]+:.*", lines[above]), f"{section}.{key} no longer shares a comment"
        above -= 1
    assert re.fullmatch(r"  # \S.*", lines[above]), (
        f"{EXAMPLE.name} line {index + 1}: {section}.{key} has no comment directly above it"
    )


@pytest.mark.parametrize(("section", "key"), [k for k in ALL_FIELDS if k not in NOT_DEFAULTS])
def test_example_values_are_the_defaults(example: Config, section: str, key: str) -> None:
    default = getattr(SECTIONS[section](), key)
    assert getattr(getattr(example, section), key) == default


# -- docs/protocol.md codes against the code ----------------------------------------------------


def doc_section(title: str) -> str:
    return PROTOCOL_MD.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_codes(title: str) -> list[str]:
    return re.findall(r"^\| `([a-z_]+)` \|", doc_section(title), re.M)


DOC = PROTOCOL_MD.read_text()
ERR_CODES = table_codes("Errors")
REASON_CODES = table_codes("Reason codes")


def string_literals() -> set[str]:
    """Every string constant in chatd/**/*.py."""
    found: set[str] = set()
    for source in (REPO / "chatd").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def protocol_codes() -> set[str]:
    """The values of chatd/core/protocol.py's ERR code constants (lower-case words)."""
    return {
        value
        for name, value in vars(protocol).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+", value)
    }


def test_doc_tables_were_parsed() -> None:
    assert len(ERR_CODES) >= 10 and len(REASON_CODES) >= 10
    assert len(set(ERR_CODES)) == len(ERR_CODES)
    assert len(set(REASON_CODES)) == len(REASON_CODES)


@pytest.mark.parametrize("code", ERR_CODES)
def test_documented_err_code_is_a_protocol_constant(code: str) -> None:
    assert code in protocol_codes()


def test_every_protocol_err_code_is_documented() -> None:
    assert protocol_codes() == set(ERR_CODES)


@pytest.mark.parametrize("code", REASON_CODES)
def test_documented_reason_code_is_used_by_the_code(code: str) -> None:
    assert code in string_literals() | protocol_codes()


def test_codes_mentioned_in_the_prose_are_in_the_tables() -> None:
    err_mentions = set(re.findall(r"\bERR ([a-z_]+)", DOC))
    bye_mentions = set(re.findall(r"\bBYE ([a-z_]+)", DOC)) | set(re.findall(r"\bLEAVE <?[a-z]+>? ([a-z_]+)", DOC))
    bye_mentions |= set(re.findall(r"reason `([a-z_]+)`", DOC))
    assert err_mentions and bye_mentions
    assert err_mentions <= set(ERR_CODES)
    assert bye_mentions <= set(REASON_CODES)


def test_strike_codes_match_the_doc() -> None:
    strikes = r"^(`[a-z_]+`(?:, `[a-z_]+`)* and `[a-z_]+`) are \*strikes\*"
    sentence = re.search(strikes, doc_section("Errors"), re.M)
    assert sentence is not None
    assert set(re.findall(r"`([a-z_]+)`", sentence.group(1))) == protocol.STRIKE_CODES


def test_limits_named_in_the_doc_exist() -> None:
    named = set(re.findall(r"`limits\.([a-z_]+)`", DOC)) | set(re.findall(r"`tls\.([a-z_]+)`", DOC))
    fields = {f.name for f in dataclasses.fields(LimitsConfig)} | {f.name for f in dataclasses.fields(TLSConfig)}
    assert named and named <= fields


# "`limits.max_line_bytes` (default 4096)", "`limits.max_rooms_per_client`, default 20",
# "`limits.max_rooms` rooms\n  (default 1000": however the sentence wraps.
DOC_DEFAULTS = re.findall(r"`limits\.([a-z_]+)`(?:\s+[a-z]+)?(?:\s+\(|,\s+)default\s+(\d+)", DOC)


def test_doc_defaults_were_found() -> None:
    assert {key for key, _ in DOC_DEFAULTS} >= {
        "max_line_bytes",
        "max_nick_length",
        "max_nick_attempts",
        "max_rooms",
        "max_rooms_per_client",
    }


def test_room_settings_named_in_the_doc_exist() -> None:
    named = set(re.findall(r"`rooms\.([a-z_]+)`", DOC))
    assert named == {f.name for f in dataclasses.fields(RoomsConfig)}


# "`rooms.autojoin`\n(default `#lobby`)", "`rooms.allow_create` is true (the default)"
ROOM_DEFAULTS = re.findall(r"`rooms\.([a-z_]+)`\s+\(default\s+`([^`]+)`\)", DOC)


def test_room_defaults_quoted_in_the_doc_are_the_defaults() -> None:
    assert {key for key, _ in ROOM_DEFAULTS} == {"autojoin", "permanent"}
    for key, default in ROOM_DEFAULTS:
        assert getattr(RoomsConfig(), key) == (default,)
    assert re.search(r"`rooms\.allow_create`\s+is\s+true\s+\(the\s+default\)", DOC)
    assert RoomsConfig().allow_create is True


def test_history_settings_named_in_the_doc_exist() -> None:
    named = set(re.findall(r"`history\.([a-z_]+)[`:]", DOC))  # `history.enabled:\nfalse` too
    assert named >= {"enabled", "backlog", "max_age_days", "max_per_room"}
    assert named <= {f.name for f in dataclasses.fields(HistoryConfig)}


def test_history_defaults_quoted_in_the_doc_are_the_defaults() -> None:
    """ "History": "by default for 90 days and at most 100,000 events per room",
    "the room's last `history.backlog` events (default 50)", "With
    `history.enabled:\nfalse` it keeps none" (so true is the default), and
    `/history`'s "(1 to 500, default 100)"."""
    text = doc_section("History")
    kept = re.search(r"by default for (\d+) days and at most ([\d,]+) events per room", text)
    assert kept is not None
    assert HistoryConfig().max_age_days == int(kept[1])
    assert HistoryConfig().max_per_room == int(kept[2].replace(",", ""))
    backlog = re.search(r"`history\.backlog`\s+events\s+\(default\s+(\d+)\)", text)
    assert backlog is not None and HistoryConfig().backlog == int(backlog[1])
    assert re.search(r"With\s+`history\.enabled:\s+false`", text) and HistoryConfig().enabled is True
    page = re.search(r"up to\s+`<limit>`\s+events\s+\((\d+) to (\d+), default (\d+)\)", text)
    assert page is not None
    assert (int(page[1]), int(page[2]), int(page[3])) == (1, history.PAGE_MAX, history.PAGE_DEFAULT)


def test_bad_argument_limits_in_the_doc_are_the_code() -> None:
    match = re.search(r"a limit outside (\d+)–(\d+)", doc_section("Errors"))
    assert match is not None and (int(match[1]), int(match[2])) == (1, history.PAGE_MAX)


def test_room_name_length_in_the_doc_is_the_code() -> None:
    match = re.search(r"Room names are `#` followed by 1 to (\d+) characters", DOC)
    assert match is not None and int(match[1]) == names.ROOM_NAME_LENGTH


@pytest.mark.parametrize(("key", "default"), DOC_DEFAULTS)
def test_defaults_quoted_in_the_doc_are_the_defaults(key: str, default: str) -> None:
    assert getattr(LimitsConfig(), key) == int(default)
