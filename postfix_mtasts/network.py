# -*- test-case-name: tests.unit.test_reload -*-
"""Wiring: the parts of the daemon that ask DNS and HTTPS, built from a
Config; built at start and again by each reload (the CA file read anew),
while the cache, the listeners and the counts
(:class:`~postfix_mtasts.core.tally.NetworkCounts`) stay."""

from __future__ import annotations

from typing import Any

from attrs import frozen
from twisted.internet.interfaces import IReactorTime

from postfix_mtasts.core.config import Config
from postfix_mtasts.core.decision import Timing
from postfix_mtasts.core.tally import NetworkCounts
from postfix_mtasts.dnsclient import DnsClient, system_nameservers
from postfix_mtasts.fetch import HttpsPolicyFetcher
from postfix_mtasts.hostnames import DnsHostnameResolver
from postfix_mtasts.https import make_https_client
from postfix_mtasts.mxfacts import MxFactsGatherer
from postfix_mtasts.resolver import PolicyResolver

__all__ = ["Network", "facts_gatherer", "make_network", "timing_of"]


@frozen
class Network:
    """The parts that ask DNS and HTTPS, built from a Config: made anew by
    a reload (its CA file read again), while the cache stays."""

    dns: DnsClient
    resolver: PolicyResolver
    facts: MxFactsGatherer | None


def make_network(config: Config, reactor: Any, counts: NetworkCounts) -> Network:
    """DNS client, HTTPS client and MX facts gatherer for ``config``,
    counting into the daemon's ``counts``; raises OSError or ValueError when
    ``fetch.ca_file`` cannot be read or holds no certificate."""
    nameservers = list(config.dns.nameservers) or system_nameservers()
    dns = DnsClient(
        reactor,
        nameservers,
        timeout_s=config.dns.timeout_s,
        attempts=config.dns.attempts,
        randomize_case=config.dns.case_randomization,
        results=counts.dns,
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
        reactor, ca_file=config.fetch.ca_file, name_resolver=policy_hosts
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
    maps = [profile for _, profile in config.maps]
    tlsa = any(profile.dane_on for profile in maps)
    if not tlsa and not any(profile.match == "mx" for profile in maps):
        return None
    return MxFactsGatherer(
        dns, clock, tlsa=tlsa, max_ttl_s=config.cache.recheck_interval_s
    )
