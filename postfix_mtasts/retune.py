# -*- test-case-name: tests.unit.test_reload -*-
"""Apply a checked configuration to the running daemon, in place.

Kept: the cache (:class:`~postfix_mtasts.domains.DomainState`, resized to
``max_entries``), the stores, the control socket, every open connection and
every listener whose endpoint stays.  Made anew: the DNS and HTTPS parts
(:class:`~postfix_mtasts.network.Network`: new fetches trust the CA file as
read now) and the refresh round they serve; the proactive refresher when
its settings change.  Retuned: the front door (maps, timing, budget), the
coordinator's bound, each listener factory's limits, the log observer.
Added listeners are bound before anything changes (:func:`bind_listeners`);
removed ones stop listening, their open connections are served until they
close.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from attrs import evolve
from twisted.logger import Logger

from postfix_mtasts.connections import LookupFactory
from postfix_mtasts.core.config import Config, ListenerConfig
from postfix_mtasts.core.config_diff import ConfigDiff
from postfix_mtasts.endpointservice import EndpointService
from postfix_mtasts.journal import ObserverSwitch, make_observer
from postfix_mtasts.listeners import listener_service
from postfix_mtasts.network import Network, timing_of
from postfix_mtasts.protocols import Lookup
from postfix_mtasts.refresh import RefreshRound
from postfix_mtasts.service import Daemon, check_resolver, make_refresher

__all__ = ["BindError", "Retuner", "bind_listeners"]

log = Logger()


class BindError(Exception):
    """An added listener cannot listen; the message names its endpoint."""


def bind_listeners(
    added: Sequence[ListenerConfig], config: Config, lookup: Lookup, reactor: Any
) -> list[tuple[ListenerConfig, EndpointService]]:
    """Listen on every added endpoint, or on none: a failure stops those
    already bound and raises :class:`BindError`."""
    bound: list[tuple[ListenerConfig, EndpointService]] = []
    for listener in added:
        index = config.listeners.index(listener)
        try:
            service = listener_service(listener, config.server, lookup, reactor)
            service.privilegedStartService()
        except Exception as e:
            for _, started in bound:
                started.stopService()
            reason = getattr(e, "socketError", None) or e
            raise BindError(
                f"listener[{index}].endpoint: cannot listen on "
                f"{listener.endpoint}: {reason}"
            ) from None
        bound.append((listener, service))
    return bound


class Retuner:
    """Changes the running ``daemon`` from the ``config`` it runs to a new
    one; remembers which it runs."""

    def __init__(
        self,
        daemon: Daemon,
        config: Config,
        reactor: Any,
        logging: ObserverSwitch | None = None,
    ) -> None:
        self.daemon = daemon
        self.config = config
        self._reactor = reactor
        self._logging = logging

    def apply(
        self,
        config: Config,
        diff: ConfigDiff,
        network: Network,
        added: list[tuple[ListenerConfig, EndpointService]],
    ) -> None:
        """Apply ``config`` (checked, its added listeners already bound);
        never raises for what the configuration says."""
        self._lookup(config, network)
        self._listeners(config, diff, added)
        if diff.touches("refresh", "cache.recheck_interval"):
            self._refresher(config)
        if diff.touches("log"):
            self._log(config)
        dane_before = [m.dane_on for _, m in self.config.maps]
        if diff.touches("dns") or dane_before != [m.dane_on for _, m in config.maps]:
            check_resolver(config, self.daemon.lookup)
        self.config = config

    def _lookup(self, config: Config, network: Network) -> None:
        lookup = self.daemon.lookup
        domains, coordinator = lookup.domains, lookup.coordinator
        if domains is None or coordinator is None:
            raise TypeError("the daemon's lookup parts lack their cache state")
        timing = timing_of(config)
        refresh = RefreshRound(
            network.resolver,
            domains,
            self._reactor,
            timing=timing,
            sharing=self.daemon.sharing,
            facts=network.facts,
        )
        domains.resize(config.cache.max_entries)
        if self.daemon.sharing is not None:
            self.daemon.sharing.resize(config.cache.max_entries)
        coordinator.retune(
            refresh,
            max_in_flight=config.fetch.max_in_flight,
            newest_first_after_s=config.server.lookup_budget_s / 2,
        )
        lookup.front_door.retune(
            maps=config.map_named,
            timing=timing,
            budget_s=config.server.lookup_budget_s,
            log_lookups=config.log.level == "debug",
            gathers_facts=network.facts is not None,
        )
        self.daemon.lookup = evolve(lookup, dns=network.dns)

    def _listeners(
        self,
        config: Config,
        diff: ConfigDiff,
        added: list[tuple[ListenerConfig, EndpointService]],
    ) -> None:
        daemon = self.daemon
        for listener in diff.listeners.removed:
            service = daemon.listeners.pop(listener.endpoint)
            # Stops listening; connections already open are not closed.
            service.disownServiceParent()  # type: ignore[no-untyped-call]
        for listener, service in added:
            service.startService()
            # Already listening: join the tree without a second start, so it
            # stops with the daemon.
            service.parent = daemon
            daemon.services.append(service)
            daemon.listeners[listener.endpoint] = service
        for _, listener in diff.listeners.kept:
            factory = daemon.listeners[listener.endpoint].factory
            if isinstance(factory, LookupFactory):
                server = config.server
                factory.retune(
                    max_connections=server.max_connections,
                    idle_timeout_s=server.idle_timeout_s,
                    max_request_bytes=server.max_request_bytes,
                    max_pending_per_connection=server.max_pending_per_connection,
                    request_timeout_s=server.request_timeout_s,
                    tcp_map_name=listener.map,
                )

    def _refresher(self, config: Config) -> None:
        daemon = self.daemon
        if daemon.refresher is not None:
            daemon.refresher.disownServiceParent()  # type: ignore[no-untyped-call]
        daemon.refresher = make_refresher(config, daemon.lookup.admin, self._reactor)
        if daemon.refresher is not None:
            daemon.refresher.setServiceParent(daemon)  # type: ignore[no-untyped-call]

    def _log(self, config: Config) -> None:
        if self._logging is not None:
            self._logging.target = make_observer(
                sys.stdout, level=config.log.level, fmt=config.log.format
            )
