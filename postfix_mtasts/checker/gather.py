# -*- test-case-name: tests.unit.test_checker_gather -*-
"""Collect the :class:`~.facts.Facts` of one domain: DNS through the daemon's
:class:`~postfix_mtasts.dnsclient.DnsClient`, the policy through its
:class:`~postfix_mtasts.fetch.HttpsPolicyFetcher`, TLS sessions through
:class:`~.probe.Prober`.  Independent lookups and all MX sessions run
concurrently; nothing blocks the reactor, and no failure escapes as an
exception: it becomes a fact.
"""

from __future__ import annotations

import typing

import dns.name
import dns.rdatatype
from dns.rdtypes.ANY.MX import MX
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime

from postfix_mtasts.checker.facts import (
    AddressFacts,
    Facts,
    FetchFacts,
    FetchProblem,
    Found,
    MxFacts,
    MxHostFacts,
    MxRecord,
    PolicyHostFacts,
    ProbeFacts,
    Stage,
    TlsaFacts,
    TxtFacts,
)
from postfix_mtasts.core.policyhost import policy_url
from postfix_mtasts.dnsclient import DnsAnswer, DnsError
from postfix_mtasts.fetch import (
    PolicyResponse,
)
from postfix_mtasts.fetch_errors import (
    FetchConnectError,
    FetchEncodingError,
    FetchError,
    FetchHeadersTooLargeError,
    FetchRedirectError,
    FetchStatusError,
    FetchTimeoutError,
    FetchTlsError,
    FetchTooLargeError,
)
from postfix_mtasts.txt import (
    TxtFailure,
    TxtNoRecord,
    TxtRecords,
    TxtResult,
    empty_result,
)

__all__ = [
    "MAX_ADDRESSES_PER_HOST",
    "DnsLookups",
    "Gatherer",
    "ResponseFetcher",
    "SessionProber",
]

MAX_ADDRESSES_PER_HOST = 4
HTTPS_PORT = 443
_FETCH_PROBLEMS: tuple[tuple[type[FetchError], FetchProblem], ...] = (
    (FetchRedirectError, FetchProblem.REDIRECT),
    (FetchStatusError, FetchProblem.STATUS),
    (FetchTlsError, FetchProblem.TLS),
    (FetchTimeoutError, FetchProblem.TIMEOUT),
    (FetchTooLargeError, FetchProblem.TOO_LARGE),
    (FetchHeadersTooLargeError, FetchProblem.HEADERS_TOO_LARGE),
    (FetchEncodingError, FetchProblem.ENCODING),
    (FetchConnectError, FetchProblem.CONNECT),
)


class DnsLookups(typing.Protocol):
    """What is asked of :class:`~postfix_mtasts.dnsclient.DnsClient`."""

    def lookup(
        self, name: str, rdtype: dns.rdatatype.RdataType, *, dnssec: bool = False
    ) -> Deferred[DnsAnswer]: ...
    def lookup_txt(self, name: str) -> Deferred[TxtResult]: ...


class ResponseFetcher(typing.Protocol):
    """:class:`~postfix_mtasts.fetch.HttpsPolicyFetcher`, media type unchecked."""

    def fetch_response(self, domain: str) -> Deferred[PolicyResponse]: ...


class SessionProber(typing.Protocol):
    """:class:`~postfix_mtasts.checker.probe.Prober`."""

    def smtp(self, address: str, sni: str | None) -> Deferred[ProbeFacts]: ...
    def tls(self, address: str, port: int, sni: str) -> Deferred[ProbeFacts]: ...


class Gatherer:
    """Observes one domain; ``https`` probes the policy host, ``smtp`` the MXs.

    ``fetcher`` must let any media type through (``check_media_type=False``):
    the rules judge the Content-Type (H8).
    """

    def __init__(
        self,
        clock: IReactorTime,
        dns_client: DnsLookups,
        fetcher: ResponseFetcher,
        smtp: SessionProber,
        https: SessionProber,
    ) -> None:
        self._clock = clock
        self._dns = dns_client
        self._fetcher = fetcher
        self._smtp = smtp
        self._https = https

    def gather(self, domain: str, input_domain: str) -> Deferred[Facts]:
        """Everything about ``domain`` (lower-case A-label, no trailing dot)."""
        return Deferred.fromCoroutine(self._gather(domain, input_domain))

    def addresses(self, name: str) -> Deferred[AddressFacts]:
        """The A, then AAAA, addresses of ``name``."""
        return Deferred.fromCoroutine(self._addresses(name))

    async def _gather(self, domain: str, input_domain: str) -> Facts:
        sts = Deferred.fromCoroutine(self._txt(f"_mta-sts.{domain}"))
        tlsrpt = Deferred.fromCoroutine(self._txt(f"_smtp._tls.{domain}"))
        host = Deferred.fromCoroutine(self._policy_host(domain))
        mx = await self._mx(domain)
        implicit = None
        hosts = tuple(
            sorted(
                (r for r in mx.records if r.host), key=lambda r: (r.preference, r.host)
            )
        )
        if mx.found is Found.NONE:
            implicit = await self._addresses(domain)
            if implicit.found is Found.YES:
                hosts = (MxRecord(0, domain),)
        mx_hosts = await gatherResults(
            [Deferred.fromCoroutine(self._mx_host(r)) for r in hosts]
        )
        return Facts(
            domain=domain,
            input_domain=input_domain,
            sts_txt=await sts,
            tlsrpt_txt=await tlsrpt,
            mx=mx,
            policy_host=await host,
            mx_hosts=tuple(mx_hosts),
            implicit_mx=implicit,
        )

    async def _lookup(
        self, name: str, rdtype: dns.rdatatype.RdataType, dnssec: bool = False
    ) -> tuple[Found, DnsAnswer | None, str]:
        try:
            answer = await self._dns.lookup(name, rdtype, dnssec=dnssec)
        except DnsError as e:
            return Found.ERROR, None, e.reason
        empty = empty_result(answer.rcode, bool(answer.rdatas))
        if empty is None:
            return Found.YES, answer, ""
        return _found(empty), answer, empty.reason

    async def _txt(self, name: str) -> TxtFacts:
        result = await self._dns.lookup_txt(name)
        if isinstance(result, TxtRecords):
            return TxtFacts(name, Found.YES, result.records, result.cname_chain)
        return TxtFacts(name, _found(result), reason=result.reason)

    async def _addresses(self, name: str) -> AddressFacts:
        v4 = Deferred.fromCoroutine(self._lookup(name, dns.rdatatype.A))
        v6 = Deferred.fromCoroutine(self._lookup(name, dns.rdatatype.AAAA))
        results = [await v4, await v6]
        addresses = tuple(
            rdata.to_text()
            for _, answer, _ in results
            if answer
            for rdata in answer.rdatas
        )
        chain = next((a.cname_chain for _, a, _ in results if a and a.cname_chain), ())
        if addresses:
            return AddressFacts(name, Found.YES, addresses, chain)
        errors = [why for found, _, why in results if found is Found.ERROR]
        if errors:
            return AddressFacts(name, Found.ERROR, cname_chain=chain, reason=errors[0])
        return AddressFacts(name, Found.NONE, cname_chain=chain, reason=results[0][2])

    async def _mx(self, domain: str) -> MxFacts:
        found, answer, reason = await self._lookup(domain, dns.rdatatype.MX)
        if found is not Found.YES or answer is None:
            return MxFacts(found, reason=reason)
        records = tuple(
            MxRecord(rdata.preference, _host(rdata.exchange))
            for rdata in answer.rdatas
            if isinstance(rdata, MX)
        )
        return MxFacts(Found.YES, records)

    async def _tlsa(self, host: str) -> TlsaFacts:
        name = f"_25._tcp.{host}"
        found, answer, _ = await self._lookup(name, dns.rdatatype.TLSA, dnssec=True)
        if answer is None or found is not Found.YES:
            return TlsaFacts(found)
        return TlsaFacts(found, len(answer.rdatas), answer.authenticated)

    async def _mx_host(self, record: MxRecord) -> MxHostFacts:
        tlsa = Deferred.fromCoroutine(self._tlsa(record.host))
        addresses = await self._addresses(record.host)
        sessions = [
            Deferred.fromCoroutine(self._sessions(record.host, ip))
            for ip in addresses.addresses[:MAX_ADDRESSES_PER_HOST]
        ]
        probes = await gatherResults(sessions)
        return MxHostFacts(
            record.host, record.preference, addresses, tuple(probes), await tlsa
        )

    async def _sessions(
        self, host: str, address: str
    ) -> tuple[ProbeFacts, ProbeFacts | None]:
        with_sni = await self._smtp.smtp(address, host)
        if with_sni.stage not in (Stage.HANDSHAKE, Stage.DONE):
            return with_sni, None
        return with_sni, await self._smtp.smtp(address, None)

    async def _policy_host(self, domain: str) -> PolicyHostFacts:
        host = f"mta-sts.{domain}"
        addresses = await self._addresses(host)
        if addresses.found is not Found.YES:
            return PolicyHostFacts(addresses)
        probe = self._https.tls(addresses.addresses[0], HTTPS_PORT, host)
        fetch = Deferred.fromCoroutine(self._fetch(domain))
        return PolicyHostFacts(addresses, await probe, await fetch)

    async def _fetch(self, domain: str) -> FetchFacts:
        url = policy_url(domain)
        start = self._clock.seconds()
        try:
            response = await self._fetcher.fetch_response(domain)
        except FetchError as e:
            elapsed = self._clock.seconds() - start
            problem = next(
                (p for kind, p in _FETCH_PROBLEMS if isinstance(e, kind)),
                FetchProblem.CONNECT,
            )
            return FetchFacts(
                url,
                elapsed,
                problem=problem,
                reason=e.reason,
                status=getattr(e, "status", None),
                location=getattr(e, "location", None),
            )
        elapsed = self._clock.seconds() - start
        return FetchFacts(url, elapsed, response.body, response.content_type)


def _found(empty: TxtNoRecord | TxtFailure) -> Found:
    """NXDOMAIN or NODATA is no record; anything else an error (A15, H13)."""
    return Found.NONE if isinstance(empty, TxtNoRecord) else Found.ERROR


def _host(name: dns.name.Name) -> str:
    """An MX exchange as a lower-case name without the dot; ``""`` for ``.``."""
    if name == dns.name.root:
        return ""
    return name.to_text(omit_final_dot=True).lower()
