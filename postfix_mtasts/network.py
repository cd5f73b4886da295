# -*- test-case-name: tests.unit.test_reload -*-
"""Wiring: the parts of the daemon that ask DNS and HTTPS, built from a
Config; built at start and again by each reload (the CA file read anew),
while the cache, the listeners and the counts
(:class:`~postfix_mtasts.core.tally.NetworkCounts`) stay.

Importing this module is cheap: the parts' own modules (:data:`PARTS`:
dnspython, twisted.web's HTTP client) are imported by :func:`make_network`,
which at start runs after the listeners listen and after :data:`PARTS` were
imported off the reactor thread (:mod:`postfix_mtasts.latenetwork`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from postfix_mtasts.core.config import Config
from postfix_mtasts.core.decision import Timing
from postfix_mtasts.core.tally import NetworkCounts
from postfix_mtasts.core.value import Value

if TYPE_CHECKING:
    from postfix_mtasts.dnsclient import DnsClient
    from postfix_mtasts.dnstransport import UdpOpener
    from postfix_mtasts.https import StsTlsPolicy
    from postfix_mtasts.mxfacts import MxFactsGatherer
    from postfix_mtasts.resolver import PolicyResolver

__all__ = [
    "PARTS",
    "Network",
    "facts_gatherer",
    "gathers_facts",
    "make_network",
    "prepare_tls",
    "timing_of",
]

#: Every module :func:`make_network` imports; once they are imported it
#: imports nothing more (tests/unit/test_latenetwork.py holds it to that).
PARTS = (
    "postfix_mtasts.dnsclient",
    "postfix_mtasts.fetch",
    "postfix_mtasts.hostnames",
    "postfix_mtasts.https",
    "postfix_mtasts.mxfacts",
    "postfix_mtasts.resolver",
)


@frozen(repr=False)
class Network(Value):
    """The parts that ask DNS and HTTPS, built from a Config: made anew by
    a reload (its CA file read again), while the cache stays."""

    dns: DnsClient
    resolver: PolicyResolver
    facts: MxFactsGatherer | None


def prepare_tls(config: Config) -> StsTlsPolicy:
    """The policy hosts' TLS for ``config``: its CA file read and the trust
    store loaded.  Blocking work, done before :func:`make_network` and at
    start off the reactor thread; raises OSError or ValueError when
    ``fetch.ca_file`` cannot be read or holds no certificate."""
    from postfix_mtasts.https import policy_tls

    return policy_tls(config.fetch.ca_file)


def make_network(
    config: Config,
    reactor: Any,
    counts: NetworkCounts,
    tls: StsTlsPolicy | None = None,
    udp: UdpOpener | None = None,
) -> Network:
    """DNS client, HTTPS client and MX facts gatherer for ``config``,
    counting into the daemon's ``counts``, the HTTPS client with ``tls``
    (None: :func:`prepare_tls` now), the DNS client's UDP sockets opened
    by ``udp`` (None: the reactor's ``listenUDP``); raises OSError or ValueError when
    ``fetch.ca_file`` cannot be read or holds no certificate."""
    from postfix_mtasts.dnsclient import DnsClient, system_nameservers
    from postfix_mtasts.fetch import HttpsPolicyFetcher
    from postfix_mtasts.hostnames import DnsHostnameResolver
    from postfix_mtasts.https import make_https_client
    from postfix_mtasts.resolver import PolicyResolver

    nameservers = list(config.dns.nameservers) or system_nameservers()
    dns = DnsClient(
        reactor,
        nameservers,
        timeout_s=config.dns.timeout_s,
        attempts=config.dns.attempts,
        randomize_case=config.dns.case_randomization,
        results=counts.dns,
        udp=udp,
    )
    # Policy host names go through the same DNS client, never getaddrinfo in
    # the reactor's thread pool; one slot per discovery that can run at once
    # (two refresh lanes).
    policy_hosts = DnsHostnameResolver(
        dns,
        reactor,
        max_in_flight=2 * config.fetch.max_in_flight,
        timeout_s=config.dns.timeout_s * config.dns.attempts,
    )
    client = make_https_client(
        reactor,
        tls=prepare_tls(config) if tls is None else tls,
        name_resolver=policy_hosts,
    )
    fetcher = HttpsPolicyFetcher(
        client,
        reactor,
        timeout_s=config.fetch.timeout_s,
        results=counts.fetches,
        durations=counts.fetch_seconds,
    )
    resolver = PolicyResolver(dns, fetcher, outcomes=counts.discoveries)
    return Network(dns, resolver, facts_gatherer(config, dns, reactor))


def timing_of(config: Config) -> Timing:
    """The cache timing ``[cache]`` sets."""
    return Timing(
        recheck_interval_s=config.cache.recheck_interval_s,
        negative_ttl_s=config.cache.negative_ttl_s,
        failure_backoff_s=config.cache.failure_backoff_s,
    )


def facts_gatherer(
    config: Config, dns: DnsClient, clock: IReactorTime
) -> MxFactsGatherer | None:
    """MX facts are gathered when a map needs them: TLSA for DANE
    precedence (``dane`` resolved on, :attr:`MapConfig.dane_on`), MX
    names alone for ``match = "mx"``; None when no map does."""
    if not gathers_facts(config):
        return None
    from postfix_mtasts.mxfacts import MxFactsGatherer

    tlsa = any(profile.dane_on for _, profile in config.maps)
    return MxFactsGatherer(
        dns, clock, tlsa=tlsa, max_ttl_s=config.cache.recheck_interval_s
    )


def gathers_facts(config: Config) -> bool:
    """Some map needs MX facts: DANE precedence on, or ``match = "mx"``."""
    return any(p.dane_on or p.match == "mx" for _, p in config.maps)
