# -*- test-case-name: tests.unit.test_coordinator -*-
"""Refreshes: one per domain however many lookups wait for it, and bounded.

A refresh is queued in one of two lanes: re-checks and refetches of domains
with a cached policy, and discovery of domains with none, each with its own
concurrency bound, so a flood of unknown names cannot starve the domains
mail already depends on (one refresh itself is :mod:`postfix_mtasts.refresh`).
A queued discovery that every waiting lookup has
given up on is dropped before it starts, and discoveries are shared between
the connections that ask, least-served first, then oldest first while
the queue keeps up and newest first once it falls behind
(:mod:`postfix_mtasts.fairqueue`): every lookup is served in turn, under
a backlog the lookups that still have budget left go first, and one
client's flood cannot hold back another connection's lookup.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Hashable

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.value import Value
from postfix_mtasts.domains import DomainState
from postfix_mtasts.fairqueue import FairQueue
from postfix_mtasts.governor import LagGovernor
from postfix_mtasts.refresh import RefreshRound

__all__ = [
    "MAX_PENDING_REFRESHES",
    "NEWEST_FIRST_AFTER_S",
    "Lane",
    "RefreshCoordinator",
]

MAX_PENDING_REFRESHES = 10_000
#: Discoveries go newest first once the oldest has waited this long (the
#: daemon sets half the lookup budget: what is left may not fit a fetch).
NEWEST_FIRST_AFTER_S = 7.5


class Lane(enum.Enum):
    KNOWN = "known"  # the domain has a cached policy
    NEW = "new"  # nothing cached: first discovery


#: The lanes in the order a pump serves them; iterating an Enum class runs
#: its metaclass on every pass, and the pump passes once per started refresh.
_LANES = tuple(Lane)


@define(eq=False, repr=False)
class _Flight(Value):
    """One domain's refresh: queued, then running, then done."""

    domain: str
    lane: Lane
    force_fetch: bool
    kept: bool  # the refresher or the admin asked: runs even if nobody waits
    source: Hashable | None  # who asked first (a Postfix connection)
    facts_only: bool = False  # only the MX facts are due, not the TXT record
    waiters: dict[Deferred[CacheEntry | None], None] = field(factory=dict)
    started: bool = False


class RefreshCoordinator:
    log = Logger()

    def __init__(
        self,
        refresh: RefreshRound,
        domains: DomainState,
        clock: IReactorTime,
        *,
        max_in_flight: int,
        max_pending: int = MAX_PENDING_REFRESHES,
        governor: LagGovernor | None = None,
        newest_first_after_s: float = NEWEST_FIRST_AFTER_S,
    ) -> None:
        self._round = refresh
        self._clock = clock
        self._domains = domains
        self._max_in_flight = max_in_flight
        self._max_pending = max_pending
        self._flights: dict[str, _Flight] = {}
        self._known = OrderedDict[str, _Flight]()  # first in, first out
        self._new = FairQueue[_Flight](newest_first_after_s)
        self._running = dict.fromkeys(Lane, 0)
        self._flying = dict.fromkeys(Lane, 0)  # queued or running
        self._pumping = False
        self.dropped = 0  # queued discoveries nobody waited for any more
        self._governor = governor
        if governor is not None:
            governor.watch(lambda: any(self._running.values()), self._pump)

    def retune(
        self,
        refresh: RefreshRound,
        *,
        max_in_flight: int,
        newest_first_after_s: float = NEWEST_FIRST_AFTER_S,
    ) -> None:
        """Start refreshes with ``refresh`` and at most ``max_in_flight`` per
        lane from now on (a configuration reload); running ones go on."""
        self._round = refresh
        self._max_in_flight = max_in_flight
        self._new.newest_first_after = newest_first_after_s
        if self._governor is not None:
            self._governor.retune(max_in_flight)
        self._pump()

    def pending(self) -> int:
        """Domains queued or being refreshed."""
        return len(self._flights)

    def queued(self, lane: Lane) -> int:
        return len(self._known) if lane is Lane.KNOWN else len(self._new)

    def running(self, lane: Lane) -> int:
        return self._running[lane]

    def wait(
        self,
        domain: str,
        source: Hashable | None = None,
        *,
        facts_only: bool = False,
    ) -> Deferred[CacheEntry | None] | None:
        """Wait for a refresh of ``domain`` (joining one already queued or
        running): fires with the entry if a policy was fetched for it, else
        None.  Cancel it to give up.  None when overloaded.  ``source`` (a
        Postfix connection) is who asks: discoveries are shared fairly
        between sources.  ``facts_only``: only the MX facts are wanted."""
        flight = self._flights.get(domain)
        if flight is None:
            # Only discoveries are capped: cached domains are bounded by the cache.
            new = self._domains.peek(domain) is None
            if new and self._flying[Lane.NEW] >= self._max_pending:
                return None
            flight = self._enqueue(domain, False, False, source, facts_only)
        elif not facts_only and not flight.started:
            flight.facts_only = False  # a queued facts refresh now does it all
        waiter: Deferred[CacheEntry | None] = Deferred(
            lambda d: self._withdraw(flight, d)
        )
        flight.waiters[waiter] = None
        self._pump()
        return waiter

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False, facts_only: bool = False
    ) -> Deferred[CacheEntry | None] | None:
        """Refresh ``domain`` (proactive refresh, admin ``refresh``, MX facts
        past their TTL) even if no lookup waits; None when a refresh of it
        is already queued or running."""
        if domain in self._flights:
            return None
        flight = self._enqueue(domain, force_fetch, True, None, facts_only)
        done: Deferred[CacheEntry | None] = Deferred()
        flight.waiters[done] = None
        self._pump()
        return done

    # -- the queue -----------------------------------------------------------

    def _enqueue(
        self,
        domain: str,
        force_fetch: bool,
        kept: bool,
        source: Hashable | None,
        facts_only: bool = False,
    ) -> _Flight:
        lane = Lane.KNOWN if self._domains.peek(domain) is not None else Lane.NEW
        flight = _Flight(domain, lane, force_fetch, kept, source, facts_only)
        self._flights[domain] = flight
        if lane is Lane.KNOWN:
            self._known[domain] = flight
        else:
            self._new.push(source, domain, flight, self._clock.seconds())
        self._flying[lane] += 1
        self._domains.pin(domain)
        return flight

    def _withdraw(self, flight: _Flight, waiter: Deferred[CacheEntry | None]) -> None:
        """A lookup gave up waiting; drop a discovery nobody waits for now."""
        flight.waiters.pop(waiter, None)
        if (
            flight.waiters
            or flight.started
            or flight.kept
            or flight.lane is Lane.KNOWN
            or self._domains.peek(flight.domain) is not None
        ):
            return
        self._new.remove(flight.source, flight.domain)
        self._forget(flight)
        self.dropped += 1

    def _forget(self, flight: _Flight) -> None:
        del self._flights[flight.domain]
        self._flying[flight.lane] -= 1
        self._domains.unpin(flight.domain)

    def _pump(self) -> None:
        """Start queued refreshes while their lane has room.  A refresh that
        completes at once pumps again; the flag keeps that a loop, not a
        recursion."""
        if self._pumping:
            return
        self._pumping = True
        governor = self._governor
        limit = self._max_in_flight if governor is None else governor.limit
        try:
            started = True
            while started:
                started = False
                for lane in _LANES:
                    if self._running[lane] >= limit:
                        continue
                    if lane is Lane.KNOWN and self._known:
                        flight = self._known.popitem(last=False)[1]
                    elif lane is Lane.NEW and self._new:
                        flight = self._new.pop(self._clock.seconds())
                    else:
                        continue
                    self._running[lane] += 1
                    flight.started = True
                    self._start(flight)
                    started = True
        finally:
            self._pumping = False
        if governor is not None and any(self._running.values()):
            governor.running()

    def _start(self, flight: _Flight) -> None:
        d = Deferred.fromCoroutine(
            self._round.run(flight.domain, flight.force_fetch, flight.facts_only)
        )
        d.addCallback(self._finished, flight)

    def _finished(self, result: CacheEntry | None, flight: _Flight) -> None:
        self._running[flight.lane] -= 1
        if flight.lane is Lane.NEW:
            self._new.done(flight.source)
        self._forget(flight)
        waiters, flight.waiters = flight.waiters, {}
        for waiter in waiters:
            waiter.callback(result)
        self._pump()
