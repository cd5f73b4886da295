# -*- test-case-name: tests.integration.test_daemon -*-
"""Wiring: build the daemon's parts from a Config; the only module that
imports them all."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from attrs import frozen
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from postfix_mtasts.admin import Admin
from postfix_mtasts.cache.store import (
    CacheUnavailableError,
    FleetCoordinator,
    PolicyStore,
)
from postfix_mtasts.coordinator import RefreshCoordinator
from postfix_mtasts.core.config import Config, ConfigError, MapConfig
from postfix_mtasts.core.decision import Timing
from postfix_mtasts.dnsclient import DnsClient, system_nameservers
from postfix_mtasts.dnssecprobe import probe_dnssec
from postfix_mtasts.domains import DomainState
from postfix_mtasts.frontdoor import FrontDoor
from postfix_mtasts.listeners import listener_service, start_control
from postfix_mtasts.network import make_network, timing_of
from postfix_mtasts.refresh import GathersFacts, RefreshRound, Resolves
from postfix_mtasts.refresher import Refresher
from postfix_mtasts.sharing import PolicySharing

__all__ = [
    "Daemon",
    "LookupParts",
    "assemble_lookup",
    "make_lookup",
    "make_refresher",
    "open_sharing",
    "start_daemon",
]

log = Logger()


async def open_sharing(config: Config, reactor: Any) -> PolicySharing | None:
    """The stores behind the memory cache; a store that cannot be opened is
    logged and left out (the daemon then runs without it).  A fleet key file
    that cannot be used stops the start (exit status 2)."""
    stores: list[PolicyStore] = []
    coordinator: FleetCoordinator | None = None
    fleet_keys: tuple[bytes, ...] = ()
    if config.redis.url and config.redis.fleet_key_file:
        from postfix_mtasts.cache.fleet_key import read_fleet_keys

        try:
            fleet_keys = read_fleet_keys(config.redis.fleet_key_file)
        except ConfigError as e:
            log.error("configuration error: {error}", error=str(e))
            raise SystemExit(2) from None
    if config.store.path:
        from postfix_mtasts.cache.sqlite import (
            SqliteStore,
            StoreOpenError,
            thread_runner,
        )

        run_in_thread, stop = thread_runner(reactor)
        sqlite = SqliteStore(
            config.store.path,
            reactor,
            run_in_thread=run_in_thread,
            max_entries=config.cache.max_entries,
        )
        try:
            await sqlite.open()
        except (StoreOpenError, CacheUnavailableError) as e:
            stop()
            log.error(
                "persistent store {path} unavailable, policies will not survive a "
                "restart: {error}",
                path=config.store.path,
                error=str(e),
            )
        else:
            reactor.addSystemEventTrigger("after", "shutdown", stop)
            stores.append(sqlite)
    if config.redis.url:
        from postfix_mtasts.cache.redis import make_redis

        redis_store, coordinator = make_redis(
            reactor,
            config.redis.url,
            prefix=config.redis.prefix,
            timeout_s=config.redis.timeout_s,
            fleet_keys=fleet_keys,
        )
        stores.append(redis_store)
    if not stores:
        return None
    return PolicySharing(
        stores, reactor, coordinator=coordinator, claim_ttl_s=config.redis.claim_ttl_s
    )


@frozen
class LookupParts:
    """The lookup side of the daemon: Postfix's front door, and the admin
    face the control socket and the proactive refresher use; the state a
    reload keeps (``domains``) and the coordinator it retunes."""

    front_door: FrontDoor
    admin: Admin
    dns: DnsClient | None = None
    domains: DomainState | None = None
    coordinator: RefreshCoordinator | None = None


def make_lookup(
    config: Config, reactor: Any, sharing: PolicySharing | None = None
) -> LookupParts:
    """The lookup parts with their real DNS, HTTPS and cache parts."""
    network = make_network(config, reactor)
    parts = assemble_lookup(
        network.resolver,
        reactor,
        timing=timing_of(config),
        maps=config.map_named,
        max_entries=config.cache.max_entries,
        max_in_flight=config.fetch.max_in_flight,
        budget_s=config.server.lookup_budget_s,
        log_lookups=config.log.level == "debug",
        sharing=sharing,
        facts=network.facts,
    )
    return LookupParts(
        parts.front_door, parts.admin, network.dns, parts.domains, parts.coordinator
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
        max_in_flight=max_in_flight,
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
    """The running daemon: listeners, refresher, control socket, stores.
    ``listeners`` by endpoint and ``refresher`` are what a reload changes."""

    def __init__(self, lookup: LookupParts, sharing: PolicySharing | None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.lookup = lookup
        self.sharing = sharing
        self.listeners: dict[str, StreamServerEndpointService] = {}
        self.refresher: Refresher | None = None

    def stopService(self) -> Deferred[None]:
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


async def start_daemon(config: Config, reactor: Any) -> Daemon:
    """Load the stored policies (E1), then start listening: Postfix's first
    lookups are answered from them without network.  Raises
    CannotListenError when a listener cannot bind."""
    sharing = await open_sharing(config, reactor)
    lookup = make_lookup(config, reactor, sharing)
    if sharing is not None:
        loaded = lookup.admin.preload(await sharing.load())
        log.info("loaded {count} stored policies", count=loaded)
        gc.freeze()  # the loaded policies live long: keep them out of GC passes
    daemon = Daemon(lookup, sharing)
    for listener in config.listeners:
        service = listener_service(
            listener, config.server, lookup.front_door.lookup, reactor
        )
        service.setServiceParent(daemon)
        daemon.listeners[listener.endpoint] = service
    daemon.refresher = make_refresher(config, lookup.admin, reactor)
    if daemon.refresher is not None:
        daemon.refresher.setServiceParent(daemon)  # type: ignore[no-untyped-call]
    daemon.privilegedStartService()  # type: ignore[no-untyped-call]
    daemon.startService()  # type: ignore[no-untyped-call]
    check_resolver(config, lookup)
    if config.control.socket:
        start_control(config.control.socket, lookup.admin, reactor, daemon)
    return daemon
