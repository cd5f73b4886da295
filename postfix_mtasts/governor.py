# -*- test-case-name: tests.unit.test_governor -*-
"""How many refreshes may run at once, from how late the reactor runs.

Cold discoveries and refetches are CPU work on the reactor thread (DNS
messages, the TLS handshake, HTTP).  While 32 of them run, one reactor
iteration can take 20 ms, and a hot cached lookup from Postfix waits for
it.  :class:`LagGovernor` measures the iteration: a timer due every
``interval_s`` runs late by about as long as the iteration that held it.
Late by more than ``late_s``: the number of refreshes allowed to start
halves (down to ``least``); on time: it grows by one per tick, back up to
the configured bound.  When the world is slow (far policy hosts, long
round trips) the reactor idles, nothing is late, and every configured
slot is used to hide the latency; when the CPU is the limit, fewer run at
once and hot lookups are answered between them.  The timer runs only
while refreshes do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["BUSY_SHARE", "LAG_INTERVAL_S", "LATE_S", "LEAST_IN_FLIGHT", "LagGovernor"]

LAG_INTERVAL_S = 0.02
#: Later than this, the reactor is busy enough to delay hot lookups.
LATE_S = 0.005
LEAST_IN_FLIGHT = 2
#: The share of a tick the reactor thread must have run for its lateness to
#: be its own work.
BUSY_SHARE = 0.7


class LagGovernor:
    """The current bound on refreshes in flight: :attr:`limit`."""

    def __init__(
        self,
        clock: IReactorTime,
        most: int,
        *,
        least: int = LEAST_IN_FLIGHT,
        interval_s: float = LAG_INTERVAL_S,
        late_s: float = LATE_S,
        busy_share: float = BUSY_SHARE,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._busy_share = busy_share
        self._most = most
        self._least = min(least, most)
        self._interval_s = interval_s
        self._late_s = late_s
        self.limit = most
        self._timer: IDelayedCall | None = None
        self._due = 0.0
        self._since = 0.0  # when the tick was scheduled, by clock and by CPU
        self._cpu_since = 0.0
        self._on_raise: Callable[[], object] = lambda: None
        self._busy: Callable[[], bool] = lambda: False
        self.lowered = 0  # times the limit was halved (a metric of CPU pressure)

    def watch(self, busy: Callable[[], bool], on_raise: Callable[[], object]) -> None:
        """``busy()``: whether refreshes run (the timer stops when not);
        ``on_raise()``: called when the limit grew, to start queued ones."""
        self._busy = busy
        self._on_raise = on_raise

    def retune(self, most: int) -> None:
        """A new configured bound (a reload)."""
        self._most = most
        self._least = min(self._least, most)
        self.limit = min(self.limit, most)

    def running(self) -> None:
        """Refreshes run: measure the reactor's lag until they stop."""
        if self._timer is None:
            self._schedule()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _schedule(self) -> None:
        self._since = self._clock.seconds()
        self._cpu_since = self._cpu_clock()
        self._due = self._since + self._interval_s
        self._timer = self._clock.callLater(self._interval_s, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self._clock.seconds()
        late = now - self._due
        ran = self._cpu_clock() - self._cpu_since
        own_work = ran >= self._busy_share * (now - self._since)
        raised = False
        if late > self._late_s and own_work:
            lowered = max(self._least, self.limit // 2)
            self.lowered += lowered < self.limit
            self.limit = lowered
        elif self.limit < self._most:
            self.limit += 1
            raised = True
        if self._busy():
            self._schedule()  # before on_raise, whose refreshes call running()
        if raised:
            self._on_raise()
