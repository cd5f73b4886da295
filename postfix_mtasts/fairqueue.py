# -*- test-case-name: tests.unit.test_fairqueue -*-
"""A queue that serves the least-served client first, oldest first until
the queue falls behind, then newest first.

Discoveries of unknown domains wait here.  :meth:`FairQueue.pop` picks the
client with the fewest items running, then the fewest waiting, so a client
that pipelines thousands of lookups cannot keep another connection's one
lookup waiting.  Among equals (Postfix sends one request per connection,
so its connections are all equal) the order depends on how long the
oldest item has waited: below ``newest_first_after`` seconds the oldest
goes first, and every lookup is served in turn; past it the queue is
behind, the oldest lookups are about to give up anyway, and the newest,
which still have budget left, go first (adaptive LIFO).  Newest first all
the time starves: when the queue stays a little longer than the number of
slots, each slot that frees takes the lookup that just came in, and the
oldest few wait until their budget ends (30 of 10,000 new domains over 100
connections answered NOTFOUND that way, with the daemon at 82 % CPU).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Hashable
from itertools import count
from typing import Generic, TypeVar

__all__ = ["FairQueue"]

T = TypeVar("T")

# (running, waiting, item order, stamp, client): the order is the oldest
# item's number, or minus the newest's; a stamp that is no longer the
# client's marks an entry left behind by a later change.
_Entry = tuple[int, int, int, int, Hashable]


class FairQueue(Generic[T]):
    """Each client's place is kept in two heaps (oldest first, newest
    first), so choosing costs O(log clients) rather than a scan of every
    waiting client: Postfix runs a hundred connections, a hostile local
    user may open the thousands ``[server] max_connections`` allows."""

    def __init__(self, newest_first_after: float) -> None:
        self.newest_first_after = newest_first_after
        self._waiting: dict[Hashable, OrderedDict[str, tuple[int, T]]] = {}
        self._running: dict[Hashable, int] = {}
        # Every waiting item's push time, oldest first: the queue's delay.
        self._since: OrderedDict[tuple[Hashable, str], float] = OrderedDict()
        self._added = 0
        self._stamps = count()
        self._stamp: dict[Hashable, int] = {}  # waiting clients only
        self._by_oldest: list[_Entry] = []
        self._by_newest: list[_Entry] = []

    def __len__(self) -> int:
        return len(self._since)

    def push(self, client: Hashable, key: str, item: T, now: float) -> None:
        self._added += 1
        self._waiting.setdefault(client, OrderedDict())[key] = (self._added, item)
        self._since[client, key] = now
        self._place(client)

    def remove(self, client: Hashable, key: str) -> None:
        queue = self._waiting[client]
        del queue[key]
        del self._since[client, key]
        if not queue:
            del self._waiting[client]
        self._place(client)

    def newest_first(self, now: float) -> bool:
        """Whether the oldest waiting item has waited past the threshold."""
        oldest = next(iter(self._since.values()), now)
        return now - oldest > self.newest_first_after

    def pop(self, now: float) -> T:
        """The next item to run; the caller reports its end with :meth:`done`."""
        newest = self.newest_first(now)
        heap = self._by_newest if newest else self._by_oldest
        while self._stamp.get(heap[0][4]) != heap[0][3]:
            heapq.heappop(heap)  # left behind by a later change
        client = heapq.heappop(heap)[4]
        queue = self._waiting[client]
        key, (_, item) = queue.popitem(last=newest)
        del self._since[client, key]
        if not queue:
            del self._waiting[client]
        self._running[client] = self._running.get(client, 0) + 1
        self._place(client)
        return item

    def done(self, client: Hashable) -> None:
        left = self._running.pop(client) - 1
        if left:
            self._running[client] = left
        if client in self._waiting:
            self._place(client)

    def _place(self, client: Hashable) -> None:
        """Enter ``client``'s current place in both heaps (a waiting client)
        or forget it (none waiting); older entries of it go stale."""
        queue = self._waiting.get(client)
        if queue is None:
            self._stamp.pop(client, None)
            if not self._waiting:  # nothing waits: drop every stale entry
                self._by_oldest.clear()
                self._by_newest.clear()
            return
        stamp = self._stamp[client] = next(self._stamps)
        running, waiting = self._running.get(client, 0), len(queue)
        oldest, _ = next(iter(queue.values()))
        newest, _ = next(reversed(queue.values()))
        heapq.heappush(self._by_oldest, (running, waiting, oldest, stamp, client))
        heapq.heappush(self._by_newest, (running, waiting, -newest, stamp, client))
        if len(self._by_oldest) + len(self._by_newest) > 8 * len(self._waiting) + 128:
            self._compact()

    def _compact(self) -> None:
        """Keep only current entries, so stale ones cannot pile up."""
        for heap in (self._by_oldest, self._by_newest):
            heap[:] = [e for e in heap if self._stamp.get(e[4]) == e[3]]
            heapq.heapify(heap)
