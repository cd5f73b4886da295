# -*- test-case-name: tests.unit.test_txt -*-
"""A non-blocking stub resolver over Twisted transports (spec A11, A15).

Queries are packed by :mod:`postfix_mtasts.core.dnsquery` and replies read
by :mod:`postfix_mtasts.core.dnsreply`; :mod:`postfix_mtasts.dnsanswer`
follows CNAMEs through them.  Only :meth:`DnsClient.query` (the DNSSEC
probe) and record types other than A, AAAA and TXT have dnspython parse
what came.  Twisted UDP and TCP transports carry them (TCP when a reply
comes back truncated).  Timeouts run on the injected
reactor's clock.  No thread per lookup, no blocking call, no global reactor.
:meth:`DnsClient.lookup_txt` gives the TXT answer the meaning of
:mod:`postfix_mtasts.txt`.

Each UDP query has its own socket, bound to the loopback address when the
server is a loopback one (else the unspecified address of its family) and
connected to the server, so the kernel drops datagrams from anyone else.
With ``randomize_case`` (DNS 0x20) the query name's letters get a random
case the reply must echo; a server that does not is asked over TCP, and
warned about once.
"""

from __future__ import annotations

import secrets
import typing
from collections import Counter
from collections.abc import Sequence

import dns.exception
import dns.message
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.core.dnscase import count_letters, mix_case, source_address
from postfix_mtasts.core.dnsquery import name_wire, query_wire, question_wire
from postfix_mtasts.core.dnsreply import Reply
from postfix_mtasts.dnsanswer import (
    MAX_CNAME_HOPS,
    AnswerRdata,
    Chase,
    DnsAnswer,
    Labels,
    parse_name,
)
from postfix_mtasts.dnstransport import (
    CaseNotEchoedError,
    DnsError,
    DnsReactor,
    DnsTimeoutError,
    TcpExchange,
    UdpExchange,
    UdpOpener,
)
from postfix_mtasts.txt import TxtFailure, TxtResult, txt_result

__all__ = [
    "MAX_CNAME_HOPS",
    "AnswerRdata",
    "DnsAnswer",
    "DnsClient",
    "DnsError",
    "DnsReactor",
    "DnsTimeoutError",
    "system_nameservers",
]

DNS_PORT = 53
EDNS_PAYLOAD_BYTES = 1232
_FALLBACK_NAMESERVERS = [("127.0.0.1", DNS_PORT)]
# A server that answers these may be alone in its trouble: ask the next one.
_TRY_NEXT_SERVER = frozenset({dns.rcode.SERVFAIL, dns.rcode.REFUSED})
_TC = 0x0200  # header flag: truncated
# TCP binds only to reach a loopback server from loopback; elsewhere the
# kernel picks the source when it connects.
_LOOPBACK_SOURCES = frozenset({"127.0.0.1", "::1"})
# The rcode words counted as themselves; a server's other rcodes are "other".
_RCODE_WORDS = {
    rcode.value: rcode.name.lower()
    for rcode in (
        dns.rcode.NOERROR,
        dns.rcode.NXDOMAIN,
        dns.rcode.SERVFAIL,
        dns.rcode.REFUSED,
        dns.rcode.FORMERR,
    )
}
_KINDS: dict[int, str] = {}  # query type -> its word in results, as asked
# The query, its wire form, and its question section as the caller asked it.
_Question = tuple[int, bytes, bytes]  # query id, query, question as asked


class DnsClient:
    """A stub resolver over Twisted transports; a :class:`~.txt.TxtResolver`.

    Asks ``nameservers`` in order, ``attempts`` rounds, ``timeout_s`` per try;
    ``randomize_case``: DNS 0x20 on every query.  ``results`` counts the
    questions by type and outcome (given: the daemon's, kept across reloads).
    ``udp`` opens each question's UDP socket (default: the reactor's
    ``listenUDP``; the daemon passes :func:`~.udpsocket.open_udp_socket`).
    """

    log = Logger()

    def __init__(
        self,
        reactor: DnsReactor,
        nameservers: Sequence[tuple[str, int]],
        *,
        timeout_s: float = 5.0,
        attempts: int = 2,
        randomize_case: bool = True,
        results: Counter[tuple[str, str]] | None = None,
        udp: UdpOpener | None = None,
    ) -> None:
        if not nameservers or attempts < 1 or timeout_s <= 0:
            raise ValueError("need nameservers, attempts >= 1 and timeout_s > 0")
        self._reactor = reactor
        self._listen_udp = udp
        self._nameservers = tuple(nameservers)
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._randomize_case = randomize_case
        self._case_folders: set[tuple[str, int]] = set()  # warned about once
        self._sources: dict[tuple[str, int], str] = {}  # server -> bind address
        # (query type, rcode word or "timeout"/"error") -> questions answered
        self.results = Counter() if results is None else results

    def query(
        self, qname: str, rdtype: dns.rdatatype.RdataType, *, dnssec: bool = False
    ) -> Deferred[dns.message.Message]:
        """Ask ``qname``/``rdtype`` (RD, AD, EDNS0, DO if ``dnssec``): one reply."""
        return Deferred.fromCoroutine(self._query(qname, rdtype, dnssec))

    def lookup(
        self, name: str, rdtype: dns.rdatatype.RdataType, *, dnssec: bool = False
    ) -> Deferred[DnsAnswer]:
        """Ask for ``name`` and follow CNAMEs (A11); fails with :class:`DnsError`."""
        return Deferred.fromCoroutine(self._chase(name, rdtype, dnssec))

    def lookup_txt(self, name: str) -> Deferred[TxtResult]:
        """The TXT RRset of exactly ``name``, never a parent's (A1, A16)."""
        d = self.lookup(name, dns.rdatatype.TXT)
        return d.addCallbacks(_txt_answer, _txt_failure)

    async def _query(
        self, qname: str, rdtype: dns.rdatatype.RdataType, dnssec: bool
    ) -> dns.message.Message:
        reply = await self._ask(parse_name(qname), rdtype, dnssec)
        try:
            return dns.message.from_wire(reply.wire)
        except (dns.exception.DNSException, ValueError) as e:
            raise DnsError(f"malformed reply for {qname}: {e}") from e

    async def _chase(
        self, name: str, rdtype: dns.rdatatype.RdataType, dnssec: bool
    ) -> DnsAnswer:
        chase = Chase(name, rdtype)
        labels = chase.labels
        while True:
            found = chase.read(await self._ask(labels, rdtype, dnssec))
            if isinstance(found, DnsAnswer):
                return found
            labels = found

    async def _ask(
        self, labels: Labels, rdtype: dns.rdatatype.RdataType, dnssec: bool
    ) -> Reply:
        """One question, counted in :attr:`results` by type and outcome."""
        kind = _KINDS.get(rdtype)
        if kind is None:  # one of the few types asked
            kind = _KINDS[rdtype] = dns.rdatatype.to_text(rdtype).lower()
        try:
            reply = await self._exchange(labels, rdtype, dnssec)
        except DnsError as e:
            timed_out = isinstance(e, DnsTimeoutError)
            self.results[kind, "timeout" if timed_out else "error"] += 1
            raise
        self.results[kind, _RCODE_WORDS.get(reply.rcode, "other")] += 1
        return reply

    async def _exchange(
        self, labels: Labels, rdtype: dns.rdatatype.RdataType, dnssec: bool
    ) -> Reply:
        name = name_wire(labels)
        sent = name
        if self._randomize_case:
            sent = mix_case(name, secrets.token_bytes(len(name)))
        query_id = secrets.randbits(16)
        wire = query_wire(
            query_id, sent, rdtype, payload=EDNS_PAYLOAD_BYTES, dnssec=dnssec
        )
        # The question section as the caller asked it: replies are read so.
        exchange = (query_id, wire, question_wire(name, rdtype))
        error: DnsError | None = None
        servfail: Reply | None = None
        for _ in range(self._attempts):
            for server in self._nameservers:
                try:
                    try:
                        reply = await self._udp(exchange, server)
                    except CaseNotEchoedError:
                        self._warn_case_folder(server, labels)
                        reply = await self._tcp(exchange, server)
                    if reply.flags & _TC:
                        reply = await self._tcp(exchange, server)
                except DnsError as e:
                    error = e
                    continue
                if reply.rcode in _TRY_NEXT_SERVER:
                    servfail = reply
                    continue
                return reply
            if servfail is not None:
                return servfail
        # Every try that returns no reply sets the error: it is not None.
        raise typing.cast(DnsError, error)

    def _warn_case_folder(self, server: tuple[str, int], labels: Labels) -> None:
        if count_letters(labels) and server not in self._case_folders:
            self._case_folders.add(server)
            self.log.warn(
                "nameserver {server} did not echo the case of a query name "
                "(DNS 0x20): spoofed, or it folds case; its answers are taken "
                "over TCP (dns.case_randomization = false turns 0x20 off)",
                server=server[0],
            )

    def _source(self, server: tuple[str, int]) -> str:
        """The address to ask ``server`` from, worked out once per server."""
        source = self._sources.get(server)
        if source is None:
            source = self._sources[server] = source_address(server[0])
        return source

    def _udp(self, exchange: _Question, server: tuple[str, int]) -> Deferred[Reply]:
        query_id, wire, question = exchange
        udp = UdpExchange(
            self._reactor, self._timeout_s, query_id, wire, server, question
        )
        udp.exact_case = self._randomize_case
        try:
            listen = self._listen_udp or self._reactor.listenUDP
            port = listen(0, udp, self._source(server))
            udp.on_close(port.stopListening)
            port.connect(*server)  # the kernel drops datagrams from others
            port.write(wire)
        except (CannotListenError, OSError) as e:
            udp.finish(DnsError(f"cannot ask {server[0]} over UDP: {e}"))
        return udp.deferred

    def _tcp(self, exchange: _Question, server: tuple[str, int]) -> Deferred[Reply]:
        query_id, wire, question = exchange
        tcp = TcpExchange(
            self._reactor, self._timeout_s, query_id, wire, server, question
        )
        source = self._source(server)
        bind = (source, 0) if source in _LOOPBACK_SOURCES else None
        connector = self._reactor.connectTCP(
            *server, tcp, self._timeout_s, bindAddress=bind
        )
        tcp.on_close(connector.disconnect)
        return tcp.deferred


def _txt_answer(answer: DnsAnswer) -> TxtResult:
    return txt_result(answer.rcode, answer.rdatas, answer.cname_chain)


def _txt_failure(failure: Failure) -> TxtResult | Failure:
    if isinstance(failure.value, DnsError):
        return TxtFailure(failure.value.reason)
    return failure


def system_nameservers(resolv_conf: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The ``nameserver`` lines of ``resolv_conf``; ``127.0.0.1`` if none."""
    try:
        resolver = dns.resolver.Resolver(filename=resolv_conf, configure=True)
    except (dns.exception.DNSException, ValueError):
        return list(_FALLBACK_NAMESERVERS)
    servers: list[tuple[str, int]] = []
    for nameserver in resolver.nameservers:
        if isinstance(nameserver, str):
            servers.append((nameserver, resolver.port))
        elif isinstance(nameserver, dns.nameserver.Do53Nameserver):
            servers.append((nameserver.address, nameserver.port))
    return servers or list(_FALLBACK_NAMESERVERS)
