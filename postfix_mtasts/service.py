# -*- test-case-name: tests.integration.test_daemon -*-
"""Wiring: build the daemon's parts from a Config; the only module that
imports them all."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from attrs import evolve, field, frozen
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, Logger, globalLogPublisher
from twisted.python.failure import Failure

from postfix_mtasts.admin import Admin
from postfix_mtasts.coordinator import RefreshCoordinator
from postfix_mtasts.core.config import Config, MapConfig
from postfix_mtasts.core.decision import Timing
from postfix_mtasts.core.tally import NetworkCounts
from postfix_mtasts.core.value import Value
from postfix_mtasts.domains import DomainState
from postfix_mtasts.endpointservice import EndpointService
from postfix_mtasts.frontdoor import FrontDoor
from postfix_mtasts.governor import LagGovernor
from postfix_mtasts.latenetwork import Importer, LateNetwork, import_now
from postfix_mtasts.listeners import listener_service, start_control
from postfix_mtasts.network import (
    PARTS,
    gathers_facts,
    make_network,
    prepare_tls,
    timing_of,
)
from postfix_mtasts.refresh import GathersFacts, RefreshRound, Resolves
from postfix_mtasts.refresher import Refresher
from postfix_mtasts.sharing import PolicySharing
from postfix_mtasts.stats import DaemonStats
from postfix_mtasts.storage import open_sharing

if TYPE_CHECKING:
    from postfix_mtasts.dnsclient import DnsClient
    from postfix_mtasts.dnstransport import UdpOpener

__all__ = [
    "Daemon",
    "LookupParts",
    "assemble_lookup",
    "make_lookup",
    "make_refresher",
    "start_daemon",
    "start_receiver",
]

log = Logger()


@frozen(repr=False)
class LookupParts(Value):
    """The lookup side of the daemon: Postfix's front door, and the admin
    face the control socket and the proactive refresher use; the state a
    reload keeps (``domains``), the coordinator it retunes, and the counts
    every DNS client, fetcher and resolver it builds adds to (``counts``,
    read with the rest by :class:`~postfix_mtasts.stats.DaemonStats`)."""

    front_door: FrontDoor
    admin: Admin
    dns: DnsClient | None = None
    domains: DomainState | None = None
    coordinator: RefreshCoordinator | None = None
    counts: NetworkCounts = field(factory=NetworkCounts)


def make_lookup(
    config: Config, reactor: Any, sharing: PolicySharing | None = None
) -> LookupParts:
    """The lookup parts with their real DNS, HTTPS and cache parts."""
    counts = NetworkCounts()
    network = make_network(config, reactor, counts)
    parts = _configured_lookup(
        config, reactor, network.resolver, network.facts, sharing
    )
    return evolve(parts, dns=network.dns, counts=counts)


def _configured_lookup(
    config: Config,
    reactor: Any,
    resolver: Resolves,
    facts: GathersFacts | None,
    sharing: PolicySharing | None,
) -> LookupParts:
    return assemble_lookup(
        resolver,
        reactor,
        timing=timing_of(config),
        maps=config.map_named,
        max_entries=config.cache.max_entries,
        max_in_flight=config.fetch.max_in_flight,
        budget_s=config.server.lookup_budget_s,
        log_lookups=config.log.level == "debug",
        sharing=sharing,
        facts=facts,
    )


def assemble_lookup(
    resolver: Resolves,
    clock: IReactorTime,
    *,
    timing: Timing,
    maps: Callable[[str], MapConfig | None],
    max_entries: int,
    max_in_flight: int,
    budget_s: float,
    log_lookups: bool = False,
    sharing: PolicySharing | None = None,
    facts: GathersFacts | None = None,
) -> LookupParts:
    """The lookup parts around any resolver (the real one, or a test's);
    ``facts`` gathers MX facts (DANE precedence, ``match = "mx"``)."""
    domains = DomainState(max_entries)
    coordinator = RefreshCoordinator(
        RefreshRound(
            resolver, domains, clock, timing=timing, sharing=sharing, facts=facts
        ),
        domains,
        clock,
        max_in_flight=max_in_flight,
        governor=LagGovernor(clock, max_in_flight),
        newest_first_after_s=budget_s / 2,
    )
    front_door = FrontDoor(
        domains,
        coordinator,
        clock,
        maps=maps,
        timing=timing,
        budget_s=budget_s,
        log_lookups=log_lookups,
        gathers_facts=facts is not None,
    )
    admin = Admin(
        domains, coordinator, clock, sharing, lookup=front_door.lookup, maps=maps
    )
    return LookupParts(front_door, admin, None, domains, coordinator)


def check_resolver(config: Config, lookup: LookupParts) -> Deferred[None] | None:
    """When a map has DANE precedence, ask the DNSSEC probe once and warn
    if the resolver does not validate (D13); in the background, never
    fatal."""
    probe, client = config.dns.dnssec_probe, lookup.dns
    if probe is None or client is None or not any(m.dane_on for _, m in config.maps):
        return None
    from postfix_mtasts.dnsclient import system_nameservers
    from postfix_mtasts.dnssecprobe import probe_dnssec

    servers = config.dns.nameservers or tuple(system_nameservers())
    resolvers = ", ".join(f"{host}:{port}" for host, port in servers)

    def report(warning: str | None) -> None:
        if warning is None:
            log.info("resolver {resolvers} validates DNSSEC", resolvers=resolvers)
        else:
            log.warn("{warning}", warning=warning)

    d = Deferred.fromCoroutine(probe_dnssec(client, probe, resolvers))
    return d.addCallback(report)


class Daemon(MultiService):
    """The running daemon: listeners, refresher, control socket, stores,
    and its figures (``stats``, for ``status`` and ``/metrics``).
    ``listeners`` by endpoint and ``refresher`` are what a reload changes."""

    def __init__(
        self, lookup: LookupParts, sharing: PolicySharing | None, clock: IReactorTime
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.lookup = lookup
        self.sharing = sharing
        self.listeners: dict[str, EndpointService] = {}
        self.refresher: Refresher | None = None
        # Every part read here lives as long as the daemon: a reload retunes
        # them or, for the parts it builds anew, hands them these counts.
        self.stats = DaemonStats(
            clock,
            tally=lookup.front_door.tally,
            policies=lookup.domains,
            backlog=lookup.coordinator,
            network=lookup.counts,
            stores=sharing.stores if sharing is not None else (),
            services=self,  # listeners read from the tree at each scrape
        )
        globalLogPublisher.addObserver(cast(ILogObserver, self.stats.errors))

    def stopService(self) -> Deferred[None]:
        globalLogPublisher.removeObserver(cast(ILogObserver, self.stats.errors))
        stopped: Deferred[None] = super().stopService()  # type: ignore[no-untyped-call]
        sharing = self.sharing
        if sharing is not None:
            stopped.addCallback(lambda _: Deferred.fromCoroutine(sharing.close()))
        return stopped


def make_refresher(config: Config, admin: Admin, reactor: Any) -> Refresher | None:
    """The proactive refresher ``[refresh]`` asks for, unstarted."""
    if not config.refresh.enabled:
        return None
    return Refresher(
        admin,
        reactor,
        interval_s=config.refresh.interval_s,
        refetch_after_s=config.refresh.refetch_after_s,
        recheck_interval_s=config.cache.recheck_interval_s,
        recently_used_s=config.refresh.recently_used_s,
        max_in_flight=config.refresh.max_in_flight,
    )


async def start_daemon(
    config: Config,
    reactor: Any,
    *,
    importer: Importer = import_now,
    opening: Deferred[PolicySharing | None] | None = None,
    udp: UdpOpener | None = None,
) -> Daemon:
    """Load the stored policies (E1), then start listening: Postfix's first
    lookups are answered from them without network.  Then the DNS and
    HTTPS parts are built, their modules imported and the trust store loaded
    by ``importer`` first (``serve`` does it in a thread, so the listeners
    answer meanwhile; a discovery asked before they are built waits for
    them), and last the
    metrics server and the control socket start.  ``opening``: the stores
    already being opened (:func:`~postfix_mtasts.storage.open_sharing`;
    ``serve`` opens them while Postfix is asked about DANE).  ``udp``: how
    the DNS client opens its UDP sockets (:func:`make_network`).  Raises
    CannotListenError when a listener or the metrics endpoint cannot bind."""
    if opening is None:
        opening = Deferred.fromCoroutine(open_sharing(config, reactor))
    sharing = await opening
    late = LateNetwork()
    lookup = _configured_lookup(
        config, reactor, late, late if gathers_facts(config) else None, sharing
    )
    if sharing is not None:
        loaded = lookup.admin.preload(await sharing.load())
        log.info("loaded {count} stored policies", count=loaded)
    daemon = Daemon(lookup, sharing, reactor)
    for listener in config.listeners:
        service = listener_service(
            listener, config.server, lookup.front_door.lookup, reactor
        )
        service.setServiceParent(daemon)  # type: ignore[no-untyped-call]
        daemon.listeners[listener.endpoint] = service
    daemon.refresher = make_refresher(config, lookup.admin, reactor)
    if daemon.refresher is not None:
        daemon.refresher.setServiceParent(daemon)  # type: ignore[no-untyped-call]
    daemon.privilegedStartService()  # type: ignore[no-untyped-call]
    daemon.startService()  # type: ignore[no-untyped-call]
    metrics = ("postfix_mtasts.metrics",) if config.metrics.endpoint else ()
    control = ("postfix_mtasts.controlsocket",) if config.control.socket else ()
    receiver = ("postfix_mtasts.reportreceiver",) if config.reports.endpoint else ()
    try:
        modules = (*PARTS, *metrics, *control, *receiver)
        tls = await importer(modules, partial(prepare_tls, config))
        network = make_network(config, reactor, lookup.counts, tls, udp)
    except BaseException:
        late.failed(Failure())  # type: ignore[no-untyped-call]
        raise
    late.built(network)
    daemon.lookup = evolve(lookup, dns=network.dns)
    if config.metrics.endpoint:  # [metrics] needs a restart (config_diff)
        from postfix_mtasts.metrics import metrics_service

        server = metrics_service(
            config.metrics.endpoint, daemon.stats.snapshot, reactor
        )
        # The daemon runs: joining it binds the endpoint now.
        server.setServiceParent(daemon)  # type: ignore[no-untyped-call]
    if config.reports.endpoint:  # [reports] needs a restart (config_diff)
        await start_receiver(config, reactor, daemon)
    check_resolver(config, daemon.lookup)
    if config.control.socket:
        status = daemon.stats.status
        start_control(config.control.socket, lookup.admin, reactor, daemon, status)
    if config.metrics.endpoint:
        log.info("metrics on {endpoint}", endpoint=config.metrics.endpoint)
    return daemon


async def start_receiver(config: Config, reactor: Any, daemon: Daemon) -> None:
    """Take TLS reports on ``[reports] endpoint`` (RFC 8460 §5.3), into
    the report store; a store or ``ssl:`` key that cannot be used is a
    ListenerError, an endpoint that cannot be bound CannotListenError."""
    from postfix_mtasts.listeners import ListenerError
    from postfix_mtasts.reportreceiver import ReceiverError, open_receiver

    try:
        server = await open_receiver(config, reactor)
    except ReceiverError as e:
        raise ListenerError(str(e), config_problem=True) from None
    try:
        server.setServiceParent(daemon)  # type: ignore[no-untyped-call]
    except BaseException:
        await server.store.close()
        raise
    daemon.stats.tls_reports = server.outcomes  # counted on /metrics
    log.info("tls reports received on {endpoint}", endpoint=config.reports.endpoint)
