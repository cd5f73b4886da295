# -*- test-case-name: tests.unit.test_mxfacts -*-
"""The DNS side of DANE precedence: a domain's MX hosts and their TLSA.

One MX query with the DO bit (the AD flag of the reply says whether the
validating resolver validated the RRset), then, when it did, one
``_25._tcp.<mx>`` TLSA query per MX host, in parallel.  Replies are hostile
input: names are checked and counts bounded by
:mod:`postfix_mtasts.core.dane`, which also reads the result.  The queries go
through the daemon's :class:`~postfix_mtasts.dnsclient.DnsClient` (0x20, TC
fallback, bounded sockets).  Facts are this host's own: each host validates
with its own resolver, so they are never shared through a store.
"""

from __future__ import annotations

import typing

import dns.name
import dns.rcode
import dns.rdatatype
from dns.rdtypes.ANY.MX import MX
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime

from postfix_mtasts.core.dane import (
    FactsFailed,
    MxFacts,
    TlsaState,
    clamp_ttl,
    mx_hosts,
    tlsa_name,
)
from postfix_mtasts.dnsclient import DnsAnswer, DnsError

__all__ = ["GATHER_TIMEOUT_S", "DnsLookup", "MxFactsGatherer"]

#: One gathering ends after this long whatever DNS does (the client bounds
#: each query too: its timeout times its attempts).
GATHER_TIMEOUT_S = 30.0
_ANSWERED = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


class DnsLookup(typing.Protocol):
    """What the gatherer needs of :class:`~postfix_mtasts.dnsclient.DnsClient`."""

    def lookup(
        self, name: str, rdtype: dns.rdatatype.RdataType, *, dnssec: bool = False
    ) -> Deferred[DnsAnswer]: ...


class MxFactsGatherer:
    """Gathers :class:`~postfix_mtasts.core.dane.MxFacts` for a domain.

    ``tlsa``: ask for TLSA records (DANE precedence); without, only the MX
    names are gathered (``match = "mx"``).  ``max_ttl_s`` caps how long
    facts are kept (the policy's recheck interval).
    """

    def __init__(
        self,
        dns_client: DnsLookup,
        clock: IReactorTime,
        *,
        tlsa: bool,
        max_ttl_s: float,
        timeout_s: float = GATHER_TIMEOUT_S,
    ) -> None:
        self._dns = dns_client
        self._clock = clock
        self.tlsa = tlsa
        self._max_ttl_s = max_ttl_s
        self._timeout_s = timeout_s

    def gather(self, domain: str) -> Deferred[MxFacts | FactsFailed]:
        """The facts of ``domain``, or why they could not be had; never fails."""
        d = Deferred.fromCoroutine(self._gather(domain))
        d.addTimeout(self._timeout_s, self._clock, _timed_out)
        return d

    async def _gather(self, domain: str) -> MxFacts | FactsFailed:
        checked_at = self._clock.seconds()
        try:
            mx = await self._dns.lookup(domain, dns.rdatatype.MX, dnssec=True)
        except DnsError as e:
            return FactsFailed(f"MX lookup failed: {e.reason}")
        if mx.rcode not in _ANSWERED:
            # A validating resolver answers SERVFAIL for a bogus RRset.
            return FactsFailed(f"MX lookup failed: {dns.rcode.to_text(mx.rcode)}")
        implicit = mx.rcode == dns.rcode.NOERROR and not mx.rdatas
        hosts: tuple[str, ...]
        if implicit:
            hosts, more = (domain,), 0  # RFC 5321 §5.1: the implicit MX
        else:
            hosts, more = mx_hosts(
                (rdata.preference, _host(rdata.exchange))
                for rdata in mx.rdatas
                if isinstance(rdata, MX)
            )
        ttls = [mx.ttl]
        states: tuple[TlsaState, ...] = ()
        if mx.authenticated and self.tlsa and hosts:
            looked = await gatherResults([self._tlsa(host) for host in hosts])
            states = tuple(state for state, _ in looked)
            ttls.extend(ttl for _, ttl in looked)
        known = [ttl for ttl in ttls if ttl is not None]
        # A failed lookup (no TTL) is asked again soon.
        least = min(known) if len(known) == len(ttls) else None
        return MxFacts(
            hosts=hosts,
            secure=mx.authenticated,
            tlsa=states,
            checked_at=checked_at,
            ttl_s=clamp_ttl(least, self._max_ttl_s),
            more_hosts=more,
            implicit=implicit,
        )

    def _tlsa(self, host: str) -> Deferred[tuple[TlsaState, int | None]]:
        return Deferred.fromCoroutine(self._tlsa_state(host))

    async def _tlsa_state(self, host: str) -> tuple[TlsaState, int | None]:
        name = tlsa_name(host)
        if name is None:
            return TlsaState.NONE, None  # too long a name to hold TLSA
        try:
            answer = await self._dns.lookup(name, dns.rdatatype.TLSA, dnssec=True)
        except DnsError:
            return TlsaState.FAILED, None
        if answer.rcode not in _ANSWERED:
            return TlsaState.FAILED, None  # bogus, or its servers fail
        if answer.rdatas and answer.authenticated:
            return TlsaState.VALIDATED, answer.ttl
        return TlsaState.NONE, answer.ttl  # none, or not DNSSEC-validated


def _host(name: dns.name.Name) -> str:
    """An MX exchange as text without the final dot; ``""`` for the root."""
    if name == dns.name.root:
        return ""
    return str(name.to_text(omit_final_dot=True))


def _timed_out(result: object, timeout: float) -> FactsFailed:
    return FactsFailed(f"MX facts not gathered within {timeout:g} s")
