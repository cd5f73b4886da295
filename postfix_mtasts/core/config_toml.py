# -*- test-case-name: tests.unit.test_config -*-
"""Read TOML tables into attrs classes, naming the key path of any fault.

Pure.  :class:`Table` hands out typed values and remembers which keys were
read, so that :meth:`Table.close` can reject the rest as unknown;
:func:`section` builds a frozen attrs class from its fields' declared types
and :func:`rule` metadata.  Every fault is a :class:`ConfigError` whose
message starts with the key path (``maps.postfix.dns_failure: ...``).
"""

from __future__ import annotations

import functools
import json
import math
import types
from collections.abc import Callable, Mapping
from typing import (
    Any,
    Literal,
    NoReturn,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from attrs import AttrsInstance, fields

from postfix_mtasts.core.text import cut

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
    """Build ``cls`` from its fields' declared types and :func:`rule`
    metadata; ``given`` are values parsed by the caller, and a field without
    a rule must be among them.  Rejects keys no field reads."""
    readers, unruled = _readers(cls)
    values = dict(given)
    for name, read in readers:
        if name not in given:
            values[name] = read(t)
    if missing := [name for name in unruled if name not in given]:
        raise TypeError(f"{cls.__name__}: no rule() and not given: {missing}")
    t.close()
    return cls(**values)


_Reader = Callable[["Table"], object]
_Readers = tuple[tuple[tuple[str, _Reader], ...], tuple[str, ...]]


@functools.cache
def _readers(cls: type[AttrsInstance]) -> _Readers:
    """How to read each ruled field of ``cls``, chosen once per class from
    the field's declared type (not from its default, which may be written
    ``5`` for a float); and the names of the fields without a rule."""
    hints = get_type_hints(cls)  # the annotations are strings (PEP 563)
    readers: list[tuple[str, _Reader]] = []
    unruled: list[str] = []
    for f in fields(cls):
        if _RULE_KEY not in f.metadata:
            unruled.append(f.name)
            continue
        key, check = f.metadata[_RULE_KEY]
        try:
            read = _reader(hints[f.name], key or f.name, f.default, check)
        except TypeError as e:
            raise TypeError(f"{cls.__name__}.{f.name}: {e}") from None
        readers.append((f.name, read))
    return tuple(readers), tuple(unruled)


def _reader(kind: Any, key: str, default: Any, check: dict[str, Any]) -> _Reader:
    """The :class:`Table` getter for a field declared as ``kind``:
    ``Literal[...]`` or ``str`` with ``choices`` a word, ``bool |
    Literal[...]`` a boolean or one of those words, ``str | None`` an
    optional string ("" = None), then ``bool``, ``int``, ``float`` (seconds)
    and ``str``."""
    if get_origin(kind) is Literal:
        choices = check.get("choices", get_args(kind))
        return lambda t: t.choice(key, default, choices)
    if words := _bool_or_words(kind):
        return lambda t: t.boolean_or_word(key, default, words)
    if get_origin(kind) in (Union, types.UnionType) and set(get_args(kind)) == {
        str,
        type(None),
    }:
        return lambda t: t.string(key, "") or None
    if kind is str and "choices" in check:
        return lambda t: t.choice(key, default, **check)
    if kind is bool:
        return lambda t: t.boolean(key, default)
    if kind is int:
        return lambda t: t.integer(key, default, **check)
    if kind is float:
        return lambda t: t.seconds(key, default, **check)
    if kind is str:
        return lambda t: t.string(key, default)
    raise TypeError(f"no TOML reader for {kind!r}")


def _bool_or_words(kind: Any) -> tuple[str, ...]:
    """The words of a ``bool | Literal[...]`` field (``dane``), else ()."""
    if get_origin(kind) not in (Union, types.UnionType):
        return ()
    parts = get_args(kind)
    literals = [p for p in parts if get_origin(p) is Literal]
    if bool not in parts or len(literals) != 1 or len(parts) != 2:
        return ()
    return tuple(get_args(literals[0]))


def show(value: object) -> str:
    """Render a config value for an error message as the admin wrote it:
    TOML-like (``"text"``, ``true``, ``a table``), cut like peer input.
    Unlike :func:`~postfix_mtasts.core.text.quote` (Python repr) it speaks
    the syntax of the file the message is about."""
    if isinstance(value, str):
        return cut(json.dumps(value, ensure_ascii=False))
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

    def boolean_or_word(self, key: str, default: object, words: tuple[str, ...]) -> Any:
        value = self.get(key, default)
        if not isinstance(value, bool) and value not in words:
            names = [f'"{w}"' for w in words]
            self._fail(key, f"expected true, false or {' or '.join(names)}", value)
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
