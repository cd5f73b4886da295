# -*- test-case-name: tests.unit.test_stats -*-
"""The daemon's figures in one place, for ``/metrics`` and ``status``.

Counters are kept where their events happen (the front door, the stores)
or, for the DNS client, the fetcher and the resolver that each reload
builds anew, in the daemon's one
:class:`~postfix_mtasts.core.tally.NetworkCounts` they all count into;
:class:`DaemonStats` only reads them, at scrape time, into a
:class:`Snapshot` of plain data.  Nothing here
runs per lookup.  :class:`ErrorRing` is a log observer that keeps the last
warnings and errors for ``postfix-mtasts status``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from attrs import field, frozen
from twisted.application.service import IService, MultiService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import LogEvent, LogLevel, formatEvent

from postfix_mtasts import __version__
from postfix_mtasts.connections import LookupFactory
from postfix_mtasts.core.tally import LookupKey, LookupTally, NetworkCounts
from postfix_mtasts.core.text import cut, utc_timestamp
from postfix_mtasts.core.value import Value

__all__ = [
    "MAX_ERRORS_KEPT",
    "DaemonStats",
    "ErrorRing",
    "ListenerState",
    "LoggedError",
    "Snapshot",
    "StoreState",
]

#: Warnings and errors ``status`` shows, the most recent last.
MAX_ERRORS_KEPT = 10
#: Characters of one logged error kept (a log line quotes peer input).
MAX_ERROR_CHARS = 300


@frozen(repr=False)
class LoggedError(Value):
    at: float
    level: str
    namespace: str
    text: str


class ErrorRing:
    """A log observer keeping the last ``size`` warnings and errors, and
    counting every one by level."""

    def __init__(self, size: int = MAX_ERRORS_KEPT) -> None:
        self.events: deque[LoggedError] = deque(maxlen=size)
        self.counts: Counter[str] = Counter()

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level")
        if level not in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            return
        text = formatEvent(event) or ""
        if "log_failure" in event:  # a bug: its type is worth showing
            failure = event["log_failure"]
            text = f"{text}: {failure.type.__name__}: {failure.getErrorMessage()}"
        at = event.get("log_time")
        self.counts[level.name] += 1
        self.events.append(
            LoggedError(
                float(at) if isinstance(at, int | float) else 0.0,
                level.name,
                str(event.get("log_namespace", "")),
                cut(text.replace("\n", " "), MAX_ERROR_CHARS),
            )
        )


@frozen(repr=False)
class StoreState(Value):
    kind: str  # "sqlite" or "redis"
    up: bool
    errors: int


@frozen(repr=False)
class ListenerState(Value):
    endpoint: str
    protocol: str
    connections: int


@frozen(repr=False)
class Snapshot(Value):
    """Every figure at one moment, as plain data."""

    version: str
    started_at: float
    now: float
    lookups: tuple[tuple[LookupKey, int], ...] = ()
    policies: Mapping[str, int] = field(factory=dict)  # by mode
    fetches: Mapping[str, int] = field(factory=dict)  # by result
    fetch_seconds: tuple[tuple[float, int], ...] = ()  # cumulative, +Inf last
    fetch_seconds_sum: float = 0.0
    dns: Mapping[tuple[str, str], int] = field(factory=dict)  # (type, result)
    discoveries: Mapping[str, int] = field(factory=dict)  # by outcome
    refresh_pending: int = 0  # domains queued or being refreshed
    stores: tuple[StoreState, ...] = ()
    listeners: tuple[ListenerState, ...] = ()
    log_events: Mapping[str, int] = field(factory=dict)  # warnings, errors
    tls_reports: Mapping[str, int] = field(factory=dict)  # POSTs by outcome
    last_errors: tuple[LoggedError, ...] = ()

    def lookups_total(self) -> int:
        return sum(count for _, count in self.lookups)

    def by_cache(self) -> dict[str, int]:
        """Lookups by cache use: hit, miss, none."""
        out: Counter[str] = Counter()
        for (_, _, _, cache), count in self.lookups:
            out[cache] += count
        return dict(out)


class _Store(Protocol):
    @property
    def up(self) -> bool: ...

    @property
    def errors(self) -> int: ...


class _Backlog(Protocol):
    def pending(self) -> int: ...


class _Modes(Protocol):
    def modes(self) -> dict[str, int]: ...


class DaemonStats:
    """Reads the daemon's counters; every part but the clock is optional
    (a part the daemon runs without reads as zero)."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        tally: LookupTally,
        policies: _Modes | None = None,
        backlog: _Backlog | None = None,
        network: NetworkCounts | None = None,
        stores: Iterable[object] = (),
        services: MultiService | None = None,
        errors: ErrorRing | None = None,
        version: str = __version__,
    ) -> None:
        self._clock = clock
        self.started_at = clock.seconds()
        self._tally, self._policies = tally, policies
        self._backlog = backlog
        self._network = NetworkCounts() if network is None else network
        self._stores = tuple(stores)
        self._services = services
        self.errors = ErrorRing() if errors is None else errors
        self._version = version
        #: The report receiver's answers by outcome, once it runs.
        self.tls_reports: Mapping[str, int] = {}

    def snapshot(self) -> Snapshot:
        network = self._network
        histogram = network.fetch_seconds
        return Snapshot(
            version=self._version,
            started_at=self.started_at,
            now=self._clock.seconds(),
            lookups=tuple(self._tally.rows()),
            policies=self._policies.modes() if self._policies is not None else {},
            fetches=dict(network.fetches),
            fetch_seconds=tuple(histogram.cumulative()),
            fetch_seconds_sum=histogram.sum,
            dns=dict(network.dns),
            discoveries=dict(network.discoveries),
            refresh_pending=(
                self._backlog.pending() if self._backlog is not None else 0
            ),
            stores=tuple(self._store_states()),
            listeners=tuple(self._listener_states()),
            log_events=dict(self.errors.counts),
            tls_reports=dict(self.tls_reports),
            last_errors=tuple(self.errors.events),
        )

    def _store_states(self) -> Iterator[StoreState]:
        for store in self._stores:
            kind = str(getattr(store, "kind", type(store).__name__))
            up, errors = getattr(store, "up", True), getattr(store, "errors", 0)
            yield StoreState(kind, bool(up), int(errors))

    def _listener_states(self) -> Iterator[ListenerState]:
        """The Postfix listeners now in the service tree (however deep)."""
        if self._services is None:
            return
        todo: list[IService] = list(self._services)
        while todo:
            service = todo.pop(0)
            if isinstance(service, MultiService):
                todo.extend(service)
                continue
            factory = getattr(service, "factory", None)
            listener = getattr(service, "listener", None)
            if isinstance(factory, LookupFactory) and listener is not None:
                yield ListenerState(
                    str(listener.endpoint), str(listener.protocol), factory.connections
                )

    def status(self) -> dict[str, Any]:
        """The answer of ``postfix-mtasts status``: plain JSON data."""
        return status_data(self.snapshot())


def status_data(snap: Snapshot) -> dict[str, Any]:
    """A snapshot as ``status`` shows it (stable keys)."""
    cache = snap.by_cache()
    return {
        "version": snap.version,
        "started_at": utc_timestamp(snap.started_at),
        "uptime_s": round(max(0.0, snap.now - snap.started_at), 1),
        "policies": dict(sorted(snap.policies.items())),
        "lookups": {
            "total": snap.lookups_total(),
            "cache_hits": cache.get("hit", 0),
            "cache_misses": cache.get("miss", 0),
            "by_answer": _by_answer(snap),
        },
        "fetches": {
            "ok": snap.fetches.get("ok", 0),
            "failed": sum(n for k, n in snap.fetches.items() if k != "ok"),
            "by_result": dict(sorted(snap.fetches.items())),
        },
        "refresh": {"pending": snap.refresh_pending},
        "stores": [
            {"kind": s.kind, "up": s.up, "errors": s.errors} for s in snap.stores
        ],
        "listeners": [
            {
                "endpoint": x.endpoint,
                "protocol": x.protocol,
                "connections": x.connections,
            }
            for x in snap.listeners
        ],
        "last_errors": [
            {"at": utc_timestamp(e.at), "level": e.level, "text": e.text}
            for e in snap.last_errors
        ],
    }


def _by_answer(snap: Snapshot) -> dict[str, dict[str, int]]:
    """map -> "OK secure" / "NOTFOUND" ... -> lookups."""
    out: dict[str, Counter[str]] = {}
    for (map_name, status, level, _), count in snap.lookups:
        answer = f"{status} {level}" if level else status
        out.setdefault(map_name, Counter())[answer] += count
    return {m: dict(sorted(c.items())) for m, c in sorted(out.items())}
