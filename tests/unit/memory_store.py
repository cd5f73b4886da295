# -*- test-case-name: tests.unit.test_store_contract -*-
"""A PolicyStore in a dict: the memory-only configuration, and the reference
the store contract holds every other store to."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from postfix_mtasts.cache.memory import MemoryCache
from postfix_mtasts.core.entry import CacheEntry

__all__ = ["MemoryStore"]


class MemoryStore:
    """At most ``max_entries`` entries, the least recently put or got evicted
    first; an entry past ``expires_at + STORE_GRACE_S`` is dropped when seen.
    Nothing outlives the process."""

    def __init__(self, clock: IReactorTime, max_entries: int) -> None:
        self._clock = clock
        self._entries = MemoryCache(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def load(self) -> Deferred[list[CacheEntry]]:
        now = self._clock.seconds()
        live = []
        for entry in self._entries.scan():
            if entry.live_in_store(now):
                live.append(entry)
            else:
                self._entries.delete(entry.domain)
        return succeed(live)

    def get(self, domain: str) -> Deferred[CacheEntry | None]:
        entry = self._entries.get(domain)
        if entry is not None and not entry.live_in_store(self._clock.seconds()):
            self._entries.delete(domain)
            entry = None
        return succeed(entry)

    def put(self, entry: CacheEntry) -> Deferred[None]:
        self._entries.put(entry)
        return succeed(None)

    def delete(self, domain: str) -> Deferred[None]:
        self._entries.delete(domain)
        return succeed(None)

    def close(self) -> Deferred[None]:
        return succeed(None)
