# -*- test-case-name: tests.unit.test_connections -*-
"""A Postfix listener's side of its connections: the factory that builds
them with the listener's settings, their slots, warnings about closing them.

:class:`ConnectionSlots` lets every new connection in: at the limit the one
that made the least progress is evicted (:mod:`postfix_mtasts.core.slots`
chooses), so whoever opens every slot and trickles bytes into them cannot
keep Postfix out (F9, G6).  Its warnings go through :class:`BurstLog`: a
flood of 10,000 connections is a few lines, not 10,000.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from postfix_mtasts.core import socketmap
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.slots import SlotTable

__all__ = [
    "BURST_WINDOW_S",
    "MAX_PENDING_PER_CONNECTION",
    "REQUEST_TIMEOUT_S",
    "BurstLog",
    "ConnectionSlots",
    "Lookup",
    "LookupFactory",
    "Slotted",
]

#: ``lookup(map_name, key, source)``; the source is the asking connection.
Lookup = Callable[[str, bytes, Hashable], "Answer | Deferred[Answer]"]

#: How long a burst of one kind of warning is summed up in one line.
BURST_WINDOW_S = 10.0
#: Postfix waits for each reply before it sends the next request, so it
#: owes at most one; the rest is room for pipelining tools (F9, G6).
MAX_PENDING_PER_CONNECTION = 16
#: Postfix writes a request whole; a peer that trickles one is not idle,
#: but it is not asking anything either (F9).
REQUEST_TIMEOUT_S = 5.0


class Slotted(Hashable, Protocol):
    """A connection as its listener's slots see it."""

    def peer(self) -> str:
        """Who is at the other end, for logs."""

    def evict(self) -> None:
        """Drop the connection now: its slot has gone to another."""


class Served(Slotted, Protocol):
    """A connection protocol that :class:`LookupFactory` builds."""

    factory: LookupFactory[Any]


C = TypeVar("C", bound=Slotted)
P = TypeVar("P", bound=Served)


class BurstLog:
    """The first warning of a burst in full; the others of the same window
    counted, in one line ``"{count} more {what} in the last {window_s}s"``
    when the window ends, and so on while the burst lasts."""

    def __init__(
        self,
        log: Logger,
        clock: IReactorTime,
        what: str,
        window_s: float = BURST_WINDOW_S,
    ) -> None:
        self._log, self._clock, self._what = log, clock, what
        self._window_s = window_s
        self._quiet_until = float("-inf")
        self._more = 0
        self._summary: IDelayedCall | None = None

    def warn(self, format: str, **fields: object) -> None:
        now = self._clock.seconds()
        if now >= self._quiet_until:
            self._quiet_until = now + self._window_s
            self._log.warn(format, **fields)
            return
        self._more += 1
        if self._summary is None:
            self._summary = self._clock.callLater(self._quiet_until - now, self._sum_up)

    def _sum_up(self) -> None:
        self._summary = None
        self._log.warn(
            "{count} more {what} in the last {window_s}s",
            count=self._more,
            what=self._what,
            window_s=self._window_s,
        )
        self._more = 0
        self._quiet_until = self._clock.seconds() + self._window_s


class ConnectionSlots(Generic[C]):
    """At most ``limit`` connections; at the limit, the newest is let in and
    the one that made the least progress evicted.  O(1) per event."""

    def __init__(self, limit: int, clock: IReactorTime, log: Logger) -> None:
        self._table: SlotTable[C] = SlotTable(limit)
        self._evictions = BurstLog(log, clock, "connections evicted at the limit")
        self._closes = BurstLog(log, clock, "connections closed for their requests")

    @property
    def limit(self) -> int:
        return self._table.limit

    @limit.setter
    def limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._table.limit = limit

    def __len__(self) -> int:
        return len(self._table)

    def admit(self, conn: C) -> None:
        """Give ``conn`` a slot, evicting another at the limit."""
        victim = self._table.admit(conn)
        if victim is not None:
            self._evictions.warn(
                "connection limit {limit} reached: evicting the connection from "
                "{peer} that made the least progress, for one from {new_peer}",
                limit=self._table.limit,
                peer=victim.peer(),
                new_peer=conn.peer(),
            )
            victim.evict()

    def progressed(self, conn: C) -> None:
        """``conn`` completed a request."""
        self._table.progressed(conn)

    def release(self, conn: C) -> None:
        """``conn`` is gone."""
        self._table.release(conn)

    def closing(self, conn: C, error: str) -> None:
        """Warn that ``conn`` is closed for what it sent (bursts summed up)."""
        self._closes.warn(
            "closing connection from {peer}: {error}", peer=conn.peer(), error=error
        )


class LookupFactory(Factory[Any], Generic[P]):
    """Builds one protocol per connection, with the listener's settings;
    bounds connections (:class:`ConnectionSlots`)."""

    noisy = False  # the listener logs its own start, in our words
    log = Logger()

    def __init__(
        self,
        protocol: Callable[[], P],
        lookup: Lookup,
        clock: IReactorTime,
        *,
        max_connections: int,
        idle_timeout_s: float,
        max_request_bytes: int = socketmap.MAX_QUERY_BYTES,
        tcp_map_name: str = "postfix",
        max_pending_per_connection: int = MAX_PENDING_PER_CONNECTION,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.protocol_class = protocol
        self.lookup = lookup
        self.clock = clock
        self.slots: ConnectionSlots[P] = ConnectionSlots(
            max_connections, clock, self.log
        )
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_request_bytes = max_request_bytes
        self.tcp_map_name = tcp_map_name
        self.max_pending_per_connection = max_pending_per_connection
        self.encoded: dict[Answer, bytes] = {}  # shared bytes of shared answers
        self.map_names: dict[bytes, str] = {}  # map names already seen valid

    def retune(
        self,
        *,
        max_connections: int,
        idle_timeout_s: float,
        max_request_bytes: int,
        max_pending_per_connection: int,
        request_timeout_s: float,
        tcp_map_name: str,
    ) -> None:
        """Settings of a configuration reload: the connection limit holds at
        once (a lower one closes nobody; new connections take the slots of
        the least busy), the rest for connections opened from now on."""
        self.slots.limit = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.max_request_bytes = max_request_bytes
        self.max_pending_per_connection = max_pending_per_connection
        self.request_timeout_s = request_timeout_s
        self.tcp_map_name = tcp_map_name

    @property
    def connections(self) -> int:
        return len(self.slots)

    def buildProtocol(self, addr: IAddress | None) -> P:
        proto = self.protocol_class()
        proto.factory = self
        return proto
