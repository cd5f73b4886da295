# -*- test-case-name: tests.unit.test_config_diff -*-
"""What changed between the running configuration and a re-read one, and
which of it a reload cannot apply.

Pure.  Keys are named as the file spells them (``maps.postfix.strict_testing``,
``fetch.timeout``, ``listener[1].map``).  Listeners are matched by endpoint
string: one in both is kept (its socket untouched), others are added or
removed.  A reload applies everything in place except :data:`RESTART_SECTIONS`
(the stores, the admin socket, the metrics endpoint and the report
receiver are opened once, at start) and a kept listener's ``protocol``, ``owner`` or ``group`` (its
socket would have to be made again); those are listed in
:attr:`ConfigDiff.restart`.
"""

from __future__ import annotations

from collections.abc import Iterator

from attrs import fields, frozen, has

from postfix_mtasts.core.config import Config, ListenerConfig, MapConfig
from postfix_mtasts.core.value import Value

__all__ = [
    "RESTART_LISTENER_KEYS",
    "RESTART_SECTIONS",
    "ConfigDiff",
    "ListenerChanges",
    "diff_configs",
]

#: Sections opened once at start: a change needs a restart.
RESTART_SECTIONS = ("store", "redis", "control", "metrics", "reports")
#: A kept listener's keys that only a new socket could change.
RESTART_LISTENER_KEYS = ("protocol", "owner", "group")
_RULE_KEY = "postfix_mtasts.core.config"  # config_toml's metadata key


@frozen(repr=False)
class ListenerChanges(Value):
    """Listeners by endpoint: ``kept`` pairs (running, re-read)."""

    added: tuple[ListenerConfig, ...] = ()
    removed: tuple[ListenerConfig, ...] = ()
    kept: tuple[tuple[ListenerConfig, ListenerConfig], ...] = ()


@frozen(repr=False)
class ConfigDiff(Value):
    """``changed``: keys a reload applies; ``restart``: keys it cannot."""

    changed: tuple[str, ...]
    restart: tuple[str, ...]
    listeners: ListenerChanges

    def touches(self, *prefixes: str) -> bool:
        """Whether a changed key is one of ``prefixes`` or below one."""
        return any(
            key == p or key.startswith((p + ".", p + "["))
            for key in self.changed
            for p in prefixes
        )

    def describe(self) -> str:
        """The changes applied, for the reload's log line."""
        parts = list(self.changed)
        parts += [f"listener {x.endpoint} added" for x in self.listeners.added]
        parts += [f"listener {x.endpoint} removed" for x in self.listeners.removed]
        return ", ".join(parts) if parts else "nothing changed"


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """Compare the running ``old`` with the re-read ``new`` (both with
    ``dane = "auto"`` already resolved, so a Postfix change shows)."""
    changed: list[str] = []
    restart: list[str] = []
    for f in fields(Config):
        if f.name in ("listeners", "maps", "warnings"):
            continue
        keys = list(_changed_keys(f.name, getattr(old, f.name), getattr(new, f.name)))
        (restart if f.name in RESTART_SECTIONS else changed).extend(keys)
    changed.extend(_map_changes(old.maps, new.maps))
    listeners, listener_changed, listener_restart = _listener_changes(
        old.listeners, new.listeners
    )
    return ConfigDiff(
        tuple(changed + listener_changed), tuple(restart + listener_restart), listeners
    )


def _changed_keys(path: str, old: object, new: object) -> Iterator[str]:
    """The file's key paths under ``path`` whose values differ."""
    if old == new:
        return
    kind = type(old)
    if not (has(kind) and kind is type(new)):
        yield path
        return
    for f in fields(kind):
        key = f.metadata.get(_RULE_KEY, ("", None))[0] or f.name
        a = getattr(old, f.name)
        b = getattr(new, f.name)
        if a != b:
            yield f"{path}.{key}"


def _map_changes(
    old: tuple[tuple[str, MapConfig], ...], new: tuple[tuple[str, MapConfig], ...]
) -> Iterator[str]:
    before, after = dict(old), dict(new)
    for name in before.keys() - after.keys():
        yield f"maps.{name} removed"
    for name, profile in after.items():
        if name not in before:
            yield f"maps.{name} added"
        else:
            yield from _changed_keys(f"maps.{name}", before[name], profile)


def _listener_changes(
    old: tuple[ListenerConfig, ...], new: tuple[ListenerConfig, ...]
) -> tuple[ListenerChanges, list[str], list[str]]:
    running = {x.endpoint: x for x in old}
    wanted = {x.endpoint for x in new}
    added: list[ListenerConfig] = []
    kept: list[tuple[ListenerConfig, ListenerConfig]] = []
    changed: list[str] = []
    restart: list[str] = []
    for i, listener in enumerate(new):
        was = running.get(listener.endpoint)
        if was is None:
            added.append(listener)
            continue
        kept.append((was, listener))
        for key in _changed_keys(f"listener[{i}]", was, listener):
            name = key.rpartition(".")[2]
            (restart if name in RESTART_LISTENER_KEYS else changed).append(key)
    removed = tuple(x for x in old if x.endpoint not in wanted)
    return ListenerChanges(tuple(added), removed, tuple(kept)), changed, restart
