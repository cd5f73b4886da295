# -*- test-case-name: tests.unit.test_refresher -*-
"""Proactive refresh: known policies are renewed before Postfix needs them.

RFC 8461 §3.3 and §10.2 ask senders to refresh cached policies before they
expire, whatever the TXT record says (E5), and a recently used domain's TXT
id is re-checked before the lookup path would have to (D11); its MX facts
(DANE precedence, D13) are gathered again one tick before their TTL ends.  Work is spread
over time: each tick looks at a slice of the cache, thresholds carry a
per-domain jitter, and a bounded number of refreshes run at once.
"""

from __future__ import annotations

import zlib
from typing import Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from postfix_mtasts.core.entry import CacheEntry

__all__ = ["Refreshable", "Refresher"]

SLICE = 2000
JITTER = 0.2  # thresholds move earlier by up to this fraction, per domain


class Refreshable(Protocol):
    def domains(self) -> list[str]: ...

    def peek(self, domain: str) -> CacheEntry | None: ...

    def waiting(self, domain: str) -> bool: ...

    def last_used(self, domain: str) -> float | None: ...

    def facts_due_at(self, domain: str) -> float | None: ...

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False, facts_only: bool = False
    ) -> Deferred[CacheEntry | None] | None: ...


class Refresher(Service):
    log = Logger()

    def __init__(
        self,
        lookup: Refreshable,
        clock: IReactorTime,
        *,
        interval_s: float,
        refetch_after_s: float,
        recheck_interval_s: float,
        recently_used_s: float,
        max_in_flight: int,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self._interval_s = interval_s
        self._refetch_after_s = refetch_after_s
        self._recheck_interval_s = recheck_interval_s
        self._recently_used_s = recently_used_s
        self._max_in_flight = max_in_flight
        self._running = 0
        self._pass: list[str] = []
        self._loop = LoopingCall(self.tick)
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._loop.start(self._interval_s, now=False)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._loop.running:
            self._loop.stop()

    def due(self, entry: CacheEntry, now: float) -> bool | None:
        """True: fetch again (E5); False: re-check the TXT id (D11); None: nothing."""
        early = 1.0 - JITTER * (zlib.crc32(entry.domain.encode()) % 1000) / 1000
        refetch_after = min(self._refetch_after_s, entry.policy.max_age / 2)
        if now >= entry.fetched_at + refetch_after * early:
            return True
        if (
            self._recently_used(entry.domain, now)
            and now >= entry.checked_at + self._recheck_interval_s * 0.9 * early
        ):
            return False
        return None

    def facts_due(self, domain: str, now: float) -> bool:
        """Whether a recently used domain's MX facts end before the next
        tick (D13): gathered again now, Postfix does not meet them stale."""
        due_at = self._lookup.facts_due_at(domain)
        return (
            due_at is not None
            and now >= due_at - self._interval_s
            and self._recently_used(domain, now)
        )

    def _recently_used(self, domain: str, now: float) -> bool:
        used = self._lookup.last_used(domain)
        return used is not None and now - used <= self._recently_used_s

    def tick(self) -> None:
        """Start due refreshes from the next slice of the cache; never raises
        (a failure is logged and the loop goes on)."""
        try:
            self._tick()
        except Exception:
            self.log.failure("proactive refresh tick failed")

    def _tick(self) -> None:
        if not self._pass:
            self._pass = self._lookup.domains()
        now = self._clock.seconds()
        chunk, self._pass = self._pass[:SLICE], self._pass[SLICE:]
        for domain in chunk:
            if self._running >= self._max_in_flight:
                self._pass.append(domain)  # look again next tick
                continue
            entry = self._lookup.peek(domain)
            if entry is None or self._lookup.waiting(domain):
                continue
            force = self.due(entry, now)
            if force is None:
                if not self.facts_due(domain, now):
                    continue
                started = self._lookup.refresh_in_background(domain, facts_only=True)
            else:
                started = self._lookup.refresh_in_background(domain, force_fetch=force)
            if started is not None:
                self._running += 1
                started.addBoth(self._finished)

    def _finished(self, result: object) -> None:
        self._running -= 1
