# -*- test-case-name: tests.unit.test_frontdoor -*-
"""One lookup waiting for a refresh, at most the front door's budget (G14),
and the log of budgets spent.

A small slotted object rather than closures: thousands may wait at once
during a flood, and each costs memory until answered.  Thousands may also
run out of budget at once for one slow domain: :class:`SpentBudgets` says so
in one line per domain and minute, with the count.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.entry import CacheEntry

__all__ = ["SPENT_LOG_INTERVAL_S", "Answers", "SpentBudgets", "Wait"]

SPENT_LOG_INTERVAL_S = 60.0


class Answers(Protocol):
    """What a waiting lookup needs of the front door."""

    log: Logger
    clock: IReactorTime
    budget_s: float

    def answer_fetched(
        self,
        map_name: str,
        key: bytes,
        domain: str,
        settings: MapConfig,
        fresh: CacheEntry | None,
    ) -> Answer: ...

    def budget_spent(self, domain: str) -> None: ...


class SpentBudgets:
    """Logs lookups answered because their budget ran out: the first for a
    domain at once, the next ones counted and logged together one interval
    later, as long as more come; then the domain is forgotten."""

    def __init__(
        self,
        clock: IReactorTime,
        log: Logger,
        budget_s: float,
        interval_s: float = SPENT_LOG_INTERVAL_S,
    ) -> None:
        self._clock, self._log = clock, log
        self.budget_s, self._interval_s = budget_s, interval_s
        # domain -> lookups answered since its last line
        self._counts: dict[str, int] = {}

    def spent(self, domain: str) -> None:
        if domain in self._counts:
            self._counts[domain] += 1
        else:
            self._line(domain, 1)

    def _flush(self, domain: str) -> None:
        count = self._counts.pop(domain, 0)
        if count:
            self._line(domain, count)

    def _line(self, domain: str, count: int) -> None:
        self._log.info(
            "lookup budget of {budget_s}s spent for {domain}; lookups answered "
            "from what is known: {count}; discovery goes on",
            domain=domain,
            count=count,
            budget_s=self.budget_s,
        )
        self._counts[domain] = 0
        self._clock.callLater(self._interval_s, self._flush, domain)


class Wait:
    """Answers ``result`` when the refresh ends or the budget does, then
    withdraws from the refresh (the coordinator may drop it)."""

    __slots__ = (
        "_domain",
        "_door",
        "_key",
        "_map",
        "_settings",
        "_timer",
        "_waiting",
        "result",
    )

    def __init__(
        self,
        door: Answers,
        map_name: str,
        key: bytes,
        domain: str,
        settings: MapConfig,
        waiting: Deferred[CacheEntry | None],
    ) -> None:
        self._door, self._map, self._key = door, map_name, key
        self._domain, self._settings, self._waiting = domain, settings, waiting
        self.result: Deferred[Answer] = Deferred()
        self._timer = door.clock.callLater(door.budget_s, self._budget_spent)
        waiting.addCallbacks(self._answer, self._failed)

    def _answer(self, fresh: CacheEntry | None) -> None:
        if self._timer.active():
            self._timer.cancel()
        if not self.result.called:
            self.result.callback(
                self._door.answer_fetched(
                    self._map, self._key, self._domain, self._settings, fresh
                )
            )

    def _failed(self, failure: Failure) -> None:
        if not isinstance(failure.value, CancelledError):
            self._door.log.failure(
                "waiting for {domain} failed", failure, domain=self._domain
            )
            self._answer(None)

    def _budget_spent(self) -> None:
        self._door.budget_spent(self._domain)
        self._answer(None)
        self._waiting.cancel()  # the coordinator may drop a discovery nobody awaits
