# -*- test-case-name: tests.unit.test_coordinator -*-
"""A queue that serves the least-served client first.

Discoveries of unknown domains wait here.  :meth:`FairQueue.pop` picks the
client with the fewest items running, then the fewest waiting, then the
newest item, and takes that client's newest item.  So a client that
pipelines thousands of lookups cannot keep another connection's one lookup
waiting, and under a backlog the newest lookups (those with budget left) go
first; with one client, or one request per client as Postfix sends them,
this is newest first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["FairQueue"]

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._waiting: dict[Hashable, OrderedDict[str, tuple[int, T]]] = {}
        self._running: dict[Hashable, int] = {}
        self._added = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, client: Hashable, key: str, item: T) -> None:
        self._added += 1
        self._waiting.setdefault(client, OrderedDict())[key] = (self._added, item)
        self._size += 1

    def remove(self, client: Hashable, key: str) -> None:
        queue = self._waiting[client]
        del queue[key]
        self._size -= 1
        if not queue:
            del self._waiting[client]

    def pop(self) -> T:
        """The next item to run; the caller reports its end with :meth:`done`."""
        client = min(self._waiting, key=self._service)
        queue = self._waiting[client]
        _, (_, item) = queue.popitem(last=True)
        self._size -= 1
        if not queue:
            del self._waiting[client]
        self._running[client] = self._running.get(client, 0) + 1
        return item

    def done(self, client: Hashable) -> None:
        left = self._running.pop(client) - 1
        if left:
            self._running[client] = left

    def _service(self, client: Hashable) -> tuple[int, int, int]:
        queue = self._waiting[client]
        newest, _ = next(reversed(queue.values()))
        return self._running.get(client, 0), len(queue), -newest
