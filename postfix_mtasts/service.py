# -*- test-case-name: tests.integration.test_daemon -*-
"""Wiring: build the daemon's parts from a Config; the only module that
imports them all."""

from __future__ import annotations

import grp
import os
import pwd
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from postfix_mtasts.cache.memory import MemoryCache
from postfix_mtasts.config import Config, ListenerConfig
from postfix_mtasts.decision import Timing
from postfix_mtasts.fetch import HttpsPolicyFetcher, make_https_client
from postfix_mtasts.lookup import LookupService
from postfix_mtasts.protocols import LookupFactory, SocketmapProtocol, TcpTableProtocol
from postfix_mtasts.resolver import PolicyResolver
from postfix_mtasts.txt import DnsClient, system_nameservers

__all__ = ["make_lookup_service", "make_service"]

log = Logger()


def make_lookup_service(config: Config, reactor: Any) -> LookupService:
    """The lookup core with its real DNS, HTTPS and cache parts."""
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
    return LookupService(
        PolicyResolver(dns, fetcher),
        MemoryCache(config.cache.max_entries),
        reactor,
        maps=config.map_named,
        timing=timing,
        budget_s=config.server.lookup_budget_s,
        max_in_flight=config.fetch.max_in_flight,
        log_lookups=config.log.level == "debug",
    )


class _ListenerService(StreamServerEndpointService):
    """A listener that also sets a unix socket's owner and group."""

    def __init__(
        self, endpoint: Any, factory: LookupFactory, listener: ListenerConfig
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


def make_service(config: Config, reactor: Any) -> MultiService:
    """The whole daemon: one lookup core behind every configured listener."""
    lookup = make_lookup_service(config, reactor)
    top = MultiService()
    for listener in config.listeners:
        protocol = (
            SocketmapProtocol if listener.protocol == "socketmap" else TcpTableProtocol
        )
        factory = LookupFactory(
            protocol,
            lookup.lookup,
            reactor,
            max_connections=config.server.max_connections,
            idle_timeout_s=config.server.idle_timeout_s,
            max_request_bytes=config.server.max_request_bytes,
            tcp_map_name=listener.map,
        )
        service = _ListenerService(
            serverFromString(reactor, listener.endpoint), factory, listener
        )
        service.setServiceParent(top)  # type: ignore[no-untyped-call]
    return top
