# -*- test-case-name: tests.unit.test_tally -*-
"""Counts kept where events happen, cheap enough for the lookup hot path.

Pure.  :class:`LookupTally` hands out one mutable cell per (map, answer,
cache) so the front door can remember a cell with a cached answer and count
a repeated lookup with ``cell[0] += 1``: no hashing, no allocation.
:class:`Histogram` keeps cumulative-ready bucket counts of one duration.
:class:`NetworkCounts` holds the DNS, fetch and discovery counts: made once
per daemon and handed to each DNS client, fetcher and resolver a reload
builds, so the counts run on across reloads.
The metrics endpoint and ``postfix-mtasts status`` read both at scrape time.
Every label value comes from a small fixed set (configured map names, status
words, levels), never from a peer, so the number of series stays bounded.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Sequence

from attrs import define, field

from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.value import Value

__all__ = [
    "CACHE_HIT",
    "CACHE_MISS",
    "CACHE_NONE",
    "FETCH_BUCKETS_S",
    "UNKNOWN_MAP",
    "Histogram",
    "LookupKey",
    "LookupTally",
    "NetworkCounts",
    "answer_labels",
]

#: Answered at once from memory.
CACHE_HIT = "hit"
#: Waited for the network (or found the discovery queue full).
CACHE_MISS = "miss"
#: No cache involved: a parent probe, a next-hop with a port, an unknown map.
CACHE_NONE = "none"
#: The map label of lookups naming a map the configuration does not define:
#: the name itself comes from the peer and would make series without bound.
UNKNOWN_MAP = "(unknown)"
#: Upper bounds of the fetch duration buckets, in seconds (the fetch timeout
#: is at most 90 s, spec G14).
FETCH_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 45.0, 90.0)

#: (map, status word, level or "", cache)
LookupKey = tuple[str, str, str, str]


def answer_labels(answer: Answer) -> tuple[str, str]:
    """The status word (OK, NOTFOUND, TEMP, PERM) and, for OK, the security
    level Postfix is told (``secure``, ``dane-only``, ``may``...); else ""."""
    value = answer.value
    return answer.status.value, value.level if value is not None else ""


class LookupTally:
    """Lookups answered, by map, answer and cache use."""

    def __init__(self) -> None:
        self.cells: dict[LookupKey, list[int]] = {}

    def cell(self, map_name: str, answer: Answer, cache: str) -> list[int]:
        """The counter of lookups like this one: a one-item list to add to."""
        status, level = answer_labels(answer)
        key = (map_name, status, level, cache)
        found = self.cells.get(key)
        if found is None:
            found = self.cells[key] = [0]
        return found

    def count(self, map_name: str, answer: Answer, cache: str) -> None:
        self.cell(map_name, answer, cache)[0] += 1

    def rows(self) -> Iterator[tuple[LookupKey, int]]:
        """Each key and its count, in a stable order."""
        for key in sorted(self.cells):
            yield key, self.cells[key][0]

    def total(self) -> int:
        return sum(cell[0] for cell in self.cells.values())


class Histogram:
    """Observations of one duration: a count per bucket (``le`` upper
    bounds, then +Inf), their sum and number."""

    def __init__(self, bounds: Sequence[float] = FETCH_BUCKETS_S) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bucket bounds must be increasing")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at most that), +Inf last."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@define(repr=False)
class NetworkCounts(Value):
    """What the network side counts, kept apart from the parts that count
    it: a reload replaces those parts, and an old part still finishing a
    fetch counts into the same place."""

    #: (query type, rcode word or "timeout"/"error") -> DNS questions
    dns: Counter[tuple[str, str]] = field(factory=Counter)
    #: Fetches by result: "ok" or the fault's word.
    fetches: Counter[str] = field(factory=Counter)
    fetch_seconds: Histogram = field(factory=Histogram)
    #: Discoveries by outcome word.
    discoveries: Counter[str] = field(factory=Counter)
