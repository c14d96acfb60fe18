"""How one section of the configuration is read against its schema: a
mapping of keys, unknown keys refused, each value put through its check
(config_values.py), keys that are mappings of their own (`Section`) read the
same way, file paths resolved against the config file's folder; every error
names the file, the dotted key, what was expected and what was found.

What does not live here: the sections themselves and their schema, what
several keys must be together, and reading the file (chatd/config.py); the
check of each single value (chatd/config_values.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from chatd import config_values as values
from chatd.config_values import Section
from chatd.errors import ConfigError

PATH: Final = object()  # marker: a file path, resolved against the config file's folder
OPTIONAL_PATH: Final = object()  # the same, or null


def load_mapping(path: Path, name: str, cls: type, checks: dict[str, Any], value: object) -> object:
    """`value` (a section, or a key that is a mapping of its own) as a `cls`.

    Raises:
        ConfigError: `value` is no mapping, has an unknown key or a bad value.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name}: must be a mapping of keys ({', '.join(checks)}) (got {value!r})")
    converted: dict[str, Any] = {}
    for key, raw in value.items():
        if key not in checks:
            raise ConfigError(f"{path}: {name}.{key}: unknown key (known: {', '.join(checks)})")
        check = checks[key]
        if isinstance(check, Section):
            converted[key] = load_mapping(path, f"{name}.{key}", check.cls, check.checks, raw)
            continue
        try:
            if check is PATH or (check is OPTIONAL_PATH and raw is not None):
                converted[key] = path.parent / values.text(raw)
            elif check is OPTIONAL_PATH:
                converted[key] = None
            else:
                converted[key] = check(raw)
        except ValueError as exc:
            raise ConfigError(f"{path}: {name}.{key}: {exc} (got {raw!r})") from None
    return cls(**converted)
