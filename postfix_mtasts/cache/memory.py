# -*- test-case-name: tests.unit.test_cache -*-
"""The bounded in-memory LRU that answers every hot-path lookup."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator

from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode

__all__ = ["MemoryCache"]


def _never(domain: str) -> bool:
    return False


class MemoryCache:
    """At most ``max_entries`` policies; the least recently used goes first,
    but never one that ``in_use`` names (a domain being refreshed)."""

    def __init__(
        self, max_entries: int, in_use: Callable[[str], bool] = _never
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._in_use = in_use
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        #: How many entries hold a policy of each mode (read by metrics).
        self.modes: Counter[Mode] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, domain: str) -> CacheEntry | None:
        entry = self._entries.get(domain)
        if entry is not None:
            self._entries.move_to_end(domain)
        return entry

    def peek(self, domain: str) -> CacheEntry | None:
        """Like get, without making the entry recently used."""
        return self._entries.get(domain)

    def put(self, entry: CacheEntry) -> list[str]:
        """Store ``entry`` as the most recently used; returns the domains
        evicted to stay within ``max_entries``."""
        replaced = self._entries.get(entry.domain)
        if replaced is not None:
            self.modes[replaced.policy.mode] -= 1
        self.modes[entry.policy.mode] += 1
        self._entries[entry.domain] = entry
        self._entries.move_to_end(entry.domain)
        return self.trim(keep=entry.domain)

    def trim(self, keep: str | None = None) -> list[str]:
        """Evict the least recently used (never ``keep`` nor one in use)
        down to ``max_entries``; returns the domains evicted."""
        evicted = []
        while len(self._entries) > self.max_entries:
            victim = next(
                (d for d in self._entries if d != keep and not self._in_use(d)),
                None,
            )
            if victim is None:
                break  # everything is in use: over the bound until a refresh ends
            self.modes[self._entries.pop(victim).policy.mode] -= 1
            evicted.append(victim)
        return evicted

    def delete(self, domain: str) -> None:
        gone = self._entries.pop(domain, None)
        if gone is not None:
            self.modes[gone.policy.mode] -= 1

    def scan(self) -> Iterator[CacheEntry]:
        return iter(list(self._entries.values()))
