# -*- test-case-name: tests.integration.test_daemon -*-
"""Wiring: build the daemon's parts from a Config; the only module that
imports them all."""

from __future__ import annotations

import gc
import grp
import os
import pwd
from collections.abc import Callable
from typing import Any

from attrs import frozen
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from postfix_mtasts.admin import Admin
from postfix_mtasts.cache.store import (
    CacheUnavailableError,
    FleetCoordinator,
    PolicyStore,
)
from postfix_mtasts.control import ControlProtocol
from postfix_mtasts.coordinator import RefreshCoordinator
from postfix_mtasts.core.config import Config, ListenerConfig, MapConfig
from postfix_mtasts.core.decision import Timing
from postfix_mtasts.dnsclient import DnsClient, system_nameservers
from postfix_mtasts.domains import DomainState
from postfix_mtasts.fetch import HttpsPolicyFetcher
from postfix_mtasts.frontdoor import FrontDoor
from postfix_mtasts.https import make_https_client
from postfix_mtasts.protocols import LookupFactory, SocketmapProtocol, TcpTableProtocol
from postfix_mtasts.refresh import Resolves
from postfix_mtasts.refresher import Refresher
from postfix_mtasts.resolver import PolicyResolver
from postfix_mtasts.sharing import PolicySharing

__all__ = [
    "Daemon",
    "LookupParts",
    "assemble_lookup",
    "make_lookup",
    "open_sharing",
    "start_daemon",
]

log = Logger()


async def open_sharing(config: Config, reactor: Any) -> PolicySharing | None:
    """The stores behind the memory cache; a store that cannot be opened is
    logged and left out (the daemon then runs without it)."""
    stores: list[PolicyStore] = []
    coordinator: FleetCoordinator | None = None
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
    face the control socket and the proactive refresher use."""

    front_door: FrontDoor
    admin: Admin


def make_lookup(
    config: Config, reactor: Any, sharing: PolicySharing | None = None
) -> LookupParts:
    """The lookup parts with their real DNS, HTTPS and cache parts."""
    nameservers = list(config.dns.nameservers) or system_nameservers()
    dns = DnsClient(
        reactor,
        nameservers,
        timeout_s=config.dns.timeout_s,
        attempts=config.dns.attempts,
    )
    client = make_https_client(reactor, ca_file=config.fetch.ca_file)
    fetcher = HttpsPolicyFetcher(client, reactor, timeout_s=config.fetch.timeout_s)
    timing = Timing(
        recheck_interval_s=config.cache.recheck_interval_s,
        negative_ttl_s=config.cache.negative_ttl_s,
        failure_backoff_s=config.cache.failure_backoff_s,
    )
    return assemble_lookup(
        PolicyResolver(dns, fetcher),
        reactor,
        timing=timing,
        maps=config.map_named,
        max_entries=config.cache.max_entries,
        max_in_flight=config.fetch.max_in_flight,
        budget_s=config.server.lookup_budget_s,
        log_lookups=config.log.level == "debug",
        sharing=sharing,
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
) -> LookupParts:
    """The lookup parts around any resolver (the real one, or a test's)."""
    domains = DomainState(max_entries)
    coordinator = RefreshCoordinator(
        resolver,
        domains,
        clock,
        timing=timing,
        max_in_flight=max_in_flight,
        sharing=sharing,
    )
    front_door = FrontDoor(
        domains,
        coordinator,
        clock,
        maps=maps,
        timing=timing,
        budget_s=budget_s,
        log_lookups=log_lookups,
    )
    return LookupParts(front_door, Admin(domains, coordinator, clock, sharing))


class _ListenerService(StreamServerEndpointService):
    """A listener that also sets a unix socket's owner and group."""

    def __init__(
        self, endpoint: Any, factory: Factory[Any], listener: ListenerConfig
    ) -> None:
        super().__init__(endpoint, factory)  # type: ignore[no-untyped-call]
        self._raiseSynchronously = True
        self._listener = listener

    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        waiting: Deferred[IListeningPort] | None = self._waitingForPort
        if waiting is not None:
            waiting.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        address = port.getHost()
        path = getattr(address, "name", None)
        if isinstance(path, bytes):
            path = path.decode()
        if isinstance(path, str) and (self._listener.owner or self._listener.group):
            uid = (
                pwd.getpwnam(self._listener.owner).pw_uid
                if self._listener.owner
                else -1
            )
            gid = (
                grp.getgrnam(self._listener.group).gr_gid
                if self._listener.group
                else -1
            )
            os.chown(path, uid, gid)
        log.info(
            "listening on {endpoint} protocol={protocol}",
            endpoint=self._listener.endpoint,
            protocol=self._listener.protocol,
        )
        return port


class Daemon(MultiService):
    """The running daemon: listeners, refresher, control socket, stores."""

    def __init__(self, lookup: LookupParts, sharing: PolicySharing | None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.lookup = lookup
        self.sharing = sharing

    def stopService(self) -> Deferred[None]:
        stopped: Deferred[None] = super().stopService()  # type: ignore[no-untyped-call]
        sharing = self.sharing
        if sharing is not None:
            stopped.addCallback(lambda _: Deferred.fromCoroutine(sharing.close()))
        return stopped


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
        protocol = (
            SocketmapProtocol if listener.protocol == "socketmap" else TcpTableProtocol
        )
        factory = LookupFactory(
            protocol,
            lookup.front_door.lookup,
            reactor,
            max_connections=config.server.max_connections,
            idle_timeout_s=config.server.idle_timeout_s,
            max_request_bytes=config.server.max_request_bytes,
            tcp_map_name=listener.map,
        )
        service = _ListenerService(
            serverFromString(reactor, listener.endpoint), factory, listener
        )
        service.setServiceParent(daemon)  # type: ignore[no-untyped-call]
    if config.refresh.enabled:
        Refresher(
            lookup.admin,
            reactor,
            interval_s=config.refresh.interval_s,
            refetch_after_s=config.refresh.refetch_after_s,
            recheck_interval_s=config.cache.recheck_interval_s,
            recently_used_s=config.refresh.recently_used_s,
            max_in_flight=config.refresh.max_in_flight,
        ).setServiceParent(daemon)  # type: ignore[no-untyped-call]
    daemon.privilegedStartService()  # type: ignore[no-untyped-call]
    daemon.startService()  # type: ignore[no-untyped-call]
    if config.control.socket:
        _start_control(config.control.socket, lookup.admin, reactor, daemon)
    return daemon


def _start_control(path: str, admin: Admin, reactor: Any, daemon: Daemon) -> None:
    """The admin socket (mode 660, stale sockets of a dead daemon replaced,
    its directory created if missing); the daemon runs on without it if it
    cannot be created."""
    factory = Factory.forProtocol(lambda: ControlProtocol(admin))
    factory.noisy = False
    endpoint = serverFromString(reactor, f"unix:{path}:mode=660:lockfile=1")
    service = StreamServerEndpointService(endpoint, factory)
    service._raiseSynchronously = True
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
        service.setServiceParent(daemon)
    except (CannotListenError, OSError) as e:
        if service.parent is not None:
            service.disownServiceParent()
        reason = e.socketError if isinstance(e, CannotListenError) else e
        log.warn(
            "control socket {path} unavailable, 'postfix-mtasts cache' cannot reach "
            "this daemon: {error}",
            path=path,
            error=str(reason or e),
        )
        return
    log.info("control socket {path}", path=path)
