# -*- test-case-name: tests.unit.test_config -*-
"""Read TOML tables into attrs classes, naming the key path of any fault.

Pure.  :class:`Table` hands out typed values and remembers which keys were
read, so that :meth:`Table.close` can reject the rest as unknown;
:func:`section` builds a frozen attrs class from the :func:`rule` metadata on
its fields.  Every fault is a :class:`ConfigError` whose message starts with
the key path (``maps.postfix.dns_failure: ...``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NoReturn, TypeVar

from attrs import AttrsInstance, fields

__all__ = ["ConfigError", "Table", "rule", "section", "show"]

_RULE_KEY = "postfix_mtasts.core.config"
_T = TypeVar("_T", bound=AttrsInstance)


class ConfigError(ValueError):
    """The configuration is unreadable or invalid; the message names the key."""


def rule(key: str = "", **check: Any) -> dict[str, Any]:
    """Field metadata read by :func:`section`: the TOML key (default: the
    field name) and its check: ``least``/``most`` for integers,
    ``above``/``least``/``most``/``why`` for seconds, ``choices`` for words."""
    return {_RULE_KEY: (key, check)}


def section(cls: type[_T], t: Table, **given: Any) -> _T:
    """Build ``cls`` from its fields' :func:`rule` metadata; ``given`` are
    values parsed by the caller.  Rejects keys no field reads."""
    values = dict(given)
    for f in fields(cls):
        if f.name in given:
            continue
        key, check = f.metadata[_RULE_KEY]
        key = key or f.name
        if f.default is None:  # optional string: "" = None
            values[f.name] = t.string(key, "") or None
        elif isinstance(f.default, bool):
            values[f.name] = t.boolean(key, f.default)
        elif isinstance(f.default, int):
            values[f.name] = t.integer(key, f.default, **check)
        elif isinstance(f.default, float):
            values[f.name] = t.seconds(key, f.default, **check)
        elif isinstance(f.default, str) and "choices" not in check:
            values[f.name] = t.string(key, f.default)
        else:
            values[f.name] = t.choice(key, f.default, **check)
    t.close()
    return cls(**values)


def show(value: object) -> str:
    """Render a config value for an error message, TOML-like and cut short."""
    if isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
        return shown if len(shown) <= 200 else shown[:200] + "..."
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


class Table:
    """One TOML table being read: typed getters that record which keys were
    read, so :meth:`close` can reject the rest as unknown."""

    def __init__(self, raw: Mapping[str, Any], path: str) -> None:
        self._raw = raw
        self._path = path
        self._read: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _fail(self, key: str, expected: str, value: object, why: str = "") -> NoReturn:
        reason = f" ({why})" if why else ""
        raise ConfigError(f"{self._key(key)}: {expected}, got {show(value)}{reason}")

    def has(self, key: str) -> bool:
        return key in self._raw

    def names(self) -> list[str]:
        self._read.update(self._raw)
        return list(self._raw)

    def get(self, key: str, default: object = None) -> object:
        self._read.add(key)
        return self._raw.get(key, default)

    def close(self) -> None:
        for key in self._raw:
            if key not in self._read:
                raise ConfigError(f"{self._key(key)}: unknown key")

    def table(self, key: str) -> Table:
        value = self.get(key, {})
        if not isinstance(value, dict):
            self._fail(key, "expected a table", value)
        return Table(value, self._key(key))

    def string(self, key: str, default: str) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            self._fail(key, "expected a string", value)
        return value

    def string_list(self, key: str) -> list[str]:
        value = self.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._fail(key, "expected an array of strings", value)
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> Any:
        value = self.get(key, default)
        if value not in choices:
            names = [f'"{c}"' for c in choices]
            self._fail(key, f"expected {', '.join(names[:-1])} or {names[-1]}", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            self._fail(key, "expected true or false", value)
        return value

    def integer(
        self, key: str, default: int, least: int = 0, most: int | None = None
    ) -> int:
        value = self.get(key, default)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < least
            or (most is not None and value > most)
        ):
            bounds = f">= {least}" + (f" and <= {most}" if most is not None else "")
            self._fail(key, f"expected an integer {bounds}", value)
        return value

    def seconds(
        self,
        key: str,
        default: float,
        *,
        above: float | None = None,
        least: float | None = None,
        most: float | None = None,
        why: str = "",
    ) -> float:
        value = self.get(key, default)
        seconds = math.nan
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        if (
            not math.isfinite(seconds)
            or (above is not None and seconds <= above)
            or (least is not None and seconds < least)
            or (most is not None and seconds > most)
        ):
            bounds = [
                f"> {above:g}" if above is not None else "",
                f">= {least:g}" if least is not None else "",
                f"<= {most:g}" if most is not None else "",
            ]
            expected = "expected seconds " + " and ".join(b for b in bounds if b)
            self._fail(key, expected, value, why)
        return seconds
