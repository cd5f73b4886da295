# -*- test-case-name: tests.unit.test_slots -*-
"""Who holds a listener's connection slots, and who gives one up at the limit.

Pure.  A full listener does not turn the new connection away (that lets
whoever opened the most connections first keep Postfix out for as long as
they like): it takes the slot of the connection that made the least
progress.  Connections that never completed a request go first, oldest
opened first; then those that did, least recently completed first.  So a
Postfix connection idle between lookups outlives any number of connections
that only ever trickle bytes, and a new connection outlives as many newer
ones as there are slots before it can be taken in turn (F9, G6).

Every operation is O(1): two insertion-ordered maps, an entry moved to the
end when its connection completes a request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["SlotTable"]

K = TypeVar("K", bound=Hashable)


class SlotTable(Generic[K]):
    """At most ``limit`` connections, in the order they would be evicted."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._fresh: OrderedDict[K, None] = OrderedDict()  # no request completed
        self._active: OrderedDict[K, None] = OrderedDict()  # by last completion

    def __len__(self) -> int:
        return len(self._fresh) + len(self._active)

    def __contains__(self, conn: object) -> bool:
        return conn in self._fresh or conn in self._active

    def admit(self, conn: K) -> K | None:
        """Give ``conn`` a slot.  At the limit, the connection that made the
        least progress loses its slot and is returned (the caller closes
        it); otherwise None."""
        victim = self.victim() if len(self) >= self.limit else None
        if victim is not None:
            self.release(victim)
        self._fresh[conn] = None
        return victim

    def victim(self) -> K | None:
        """The connection that would lose its slot next, if any."""
        for queue in (self._fresh, self._active):
            if queue:
                return next(iter(queue))
        return None

    def progressed(self, conn: K) -> None:
        """``conn`` completed a request: it goes to the back of the line."""
        if conn in self._active:
            self._active.move_to_end(conn)
        elif conn in self._fresh:
            del self._fresh[conn]
            self._active[conn] = None

    def release(self, conn: K) -> None:
        """``conn`` is gone (no-op if it holds no slot)."""
        self._fresh.pop(conn, None)
        self._active.pop(conn, None)
