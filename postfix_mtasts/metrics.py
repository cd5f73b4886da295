# -*- test-case-name: tests.unit.test_metrics -*-
"""Prometheus text at ``/metrics`` (``[metrics] endpoint``).

:class:`MtastsCollector` turns a :class:`~postfix_mtasts.stats.Snapshot`,
taken at scrape time, into ``postfix_mtasts_*`` families; prometheus_client
renders them (its registry and text format, not its threaded server).  The
page is served by a small twisted.web resource on the reactor: ``GET
/metrics`` and nothing else (404), a request of bounded size (no body, few
and short headers), a few connections at once, each with a short timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.process_collector import ProcessCollector
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from postfix_mtasts.core.policy import Mode
from postfix_mtasts.endpointservice import EndpointService
from postfix_mtasts.stats import Snapshot

__all__ = [
    "MAX_CONNECTIONS",
    "METRICS_PATH",
    "MetricsResource",
    "MtastsCollector",
    "make_registry",
    "metrics_service",
    "metrics_site",
]

METRICS_PATH = b"/metrics"
#: Scrapers open one connection at a time; a few more are let in.
MAX_CONNECTIONS = 8
#: An idle or slow scrape connection is closed after this.
TIMEOUT_S = 10.0
#: A scrape request is a request line and a few short headers, no body.
MAX_HEADER_BYTES = 8192
MAX_HEADERS = 32

log = Logger()


class MtastsCollector:
    """The ``postfix_mtasts_*`` families from one snapshot per scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        info = InfoMetricFamily("postfix_mtasts_build", "The daemon's version.")
        info.add_metric([], {"version": snap.version})
        yield info
        yield GaugeMetricFamily(
            "postfix_mtasts_start_time_seconds",
            "When the daemon started, in seconds since the epoch.",
            value=snap.started_at,
        )
        yield from self._lookups(snap)
        policies = GaugeMetricFamily(
            "postfix_mtasts_policies",
            "Policies cached in memory, by mode.",
            labels=["mode"],
        )
        for mode in Mode:
            policies.add_metric([mode.value], snap.policies.get(mode.value, 0))
        yield policies
        yield from self._fetches(snap)
        dns = CounterMetricFamily(
            "postfix_mtasts_dns_queries",
            "DNS questions asked, by type and result (rcode, timeout, error).",
            labels=["type", "result"],
        )
        for (qtype, result), count in sorted(snap.dns.items()):
            dns.add_metric([qtype, result], count)
        yield dns
        discoveries = CounterMetricFamily(
            "postfix_mtasts_discoveries",
            "Policy discoveries (TXT record, then fetch if its id changed), by outcome.",
            labels=["outcome"],
        )
        for outcome, count in sorted(snap.discoveries.items()):
            discoveries.add_metric([outcome], count)
        yield discoveries
        yield GaugeMetricFamily(
            "postfix_mtasts_refresh_backlog",
            "Domains queued for a refresh or being refreshed.",
            value=snap.refresh_pending,
        )
        yield from self._stores(snap)
        connections = GaugeMetricFamily(
            "postfix_mtasts_connections",
            "Postfix connections open, by listener.",
            labels=["endpoint", "protocol"],
        )
        for listener in snap.listeners:
            connections.add_metric(
                [listener.endpoint, listener.protocol], listener.connections
            )
        yield connections
        logged = CounterMetricFamily(
            "postfix_mtasts_log_events",
            "Warnings and errors logged, by level.",
            labels=["level"],
        )
        for level in ("warn", "error", "critical"):
            logged.add_metric([level], snap.log_events.get(level, 0))
        yield logged
        reports = CounterMetricFamily(
            "postfix_mtasts_tls_reports_received",
            "TLS reports POSTed to the report receiver, by outcome (stored,"
            " duplicate, invalid, too_large, store_failed, ...).",
            labels=["outcome"],
        )
        for outcome, count in sorted(snap.tls_reports.items()):
            reports.add_metric([outcome], count)
        yield reports

    def _lookups(self, snap: Snapshot) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "postfix_mtasts_lookups",
            "Lookups answered, by map, status word and (for OK) TLS level.",
            labels=["map", "status", "level"],
        )
        answers: dict[tuple[str, str, str], int] = {}
        for (map_name, status, level, _), count in snap.lookups:
            key = (map_name, status, level)
            answers[key] = answers.get(key, 0) + count
        for labels, count in sorted(answers.items()):
            lookups.add_metric(list(labels), count)
        yield lookups
        cache = CounterMetricFamily(
            "postfix_mtasts_cache_lookups",
            "Lookups of a domain answered at once from memory (hit) or after "
            "waiting for DNS and HTTPS (miss).",
            labels=["result"],
        )
        by_cache = snap.by_cache()
        for result in ("hit", "miss"):
            cache.add_metric([result], by_cache.get(result, 0))
        yield cache

    def _fetches(self, snap: Snapshot) -> Iterator[Metric]:
        fetches = CounterMetricFamily(
            "postfix_mtasts_fetches",
            "HTTPS policy fetches, by result (ok, or the fault).",
            labels=["result"],
        )
        for result, count in sorted(snap.fetches.items()):
            fetches.add_metric([result], count)
        yield fetches
        if snap.fetch_seconds:
            yield HistogramMetricFamily(
                "postfix_mtasts_fetch_duration_seconds",
                "How long HTTPS policy fetches took, whatever their result.",
                buckets=[(_le(bound), count) for bound, count in snap.fetch_seconds],
                sum_value=snap.fetch_seconds_sum,
            )

    def _stores(self, snap: Snapshot) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "postfix_mtasts_store_up",
            "1 while a persistent store (sqlite, redis) works, 0 while it fails.",
            labels=["store"],
        )
        errors = CounterMetricFamily(
            "postfix_mtasts_store_errors",
            "Persistent store operations that failed.",
            labels=["store"],
        )
        for store in snap.stores:
            up.add_metric([store.kind], 1 if store.up else 0)
            errors.add_metric([store.kind], store.errors)
        yield up
        yield errors


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def make_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of our families plus the process ones (CPU, memory, fds)."""
    registry = CollectorRegistry()
    registry.register(MtastsCollector(snapshot))
    ProcessCollector(registry=registry)
    return registry


class MetricsResource(Resource):
    """``GET /metrics`` renders the registry; anything else is a 404."""

    isLeaf = True  # noqa: N815 (Twisted's names, here and below)

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._registry = registry

    def render(self, request: Any) -> bytes:
        if request.method != b"GET" or request.path != METRICS_PATH:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"" if request.method == b"HEAD" else b"not found\n"
        try:
            body = generate_latest(self._registry)
        except Exception:
            log.failure("metrics could not be rendered")
            request.setResponseCode(500)
            return b"internal error\n"
        # The text format every Prometheus reads; our names need no escaping.
        request.setHeader(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode())
        return body


class _BoundedRequest(Request):
    """A request with a body is not a scrape: its connection is dropped
    before the body is read, and it is not answered."""

    refused = False

    def gotLength(self, length: int | None) -> None:  # noqa: N802
        if length != 0:
            self.refused = True
            self.channel.transport.abortConnection()  # type: ignore[union-attr]
            length = 0  # what came with the headers is kept, at most one read
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def process(self) -> None:
        if not self.refused:
            super().process()  # type: ignore[no-untyped-call]


class _BoundedChannel(HTTPChannel):
    totalHeadersSize = MAX_HEADER_BYTES  # noqa: N815
    maxHeaders = MAX_HEADERS  # noqa: N815
    site: _MetricsSite

    def connectionMade(self) -> None:
        self.site.open += 1
        super().connectionMade()  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.open -= 1
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class _MetricsSite(Site):
    """At most ``MAX_CONNECTIONS`` open; one more is closed at once."""

    noisy = False
    # The channel itself, not HTTP/2's switching proxy: HTTP/1.1 is enough.
    protocol = _BoundedChannel  # type: ignore[assignment]
    requestFactory = _BoundedRequest  # noqa: N815

    def __init__(self, resource: Resource, reactor: Any) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            resource, timeout=TIMEOUT_S, reactor=reactor
        )
        self.open = 0

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if self.open >= MAX_CONNECTIONS:
            return None
        return super().buildProtocol(addr)  # type: ignore[no-untyped-call]

    def log(self, request: Any) -> None:
        """No access log: a scrape every few seconds is not news."""


def metrics_site(snapshot: Callable[[], Snapshot], reactor: Any) -> Site:
    return _MetricsSite(MetricsResource(make_registry(snapshot)), reactor)


def metrics_service(
    endpoint: str, snapshot: Callable[[], Snapshot], reactor: Any
) -> EndpointService:
    """An unstarted service serving ``/metrics`` on ``endpoint``; it fails
    the start (CannotListenError) when the endpoint cannot be bound."""
    service = EndpointService(
        serverFromString(reactor, endpoint), metrics_site(snapshot, reactor)
    )
    return service
