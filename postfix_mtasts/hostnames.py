# -*- test-case-name: tests.unit.test_hostnames -*-
"""Host names resolved by our own DNS client, never getaddrinfo (spec B19, F4, G14).

Twisted's default name resolver runs ``getaddrinfo`` in the reactor's thread
pool: a few policy hosts whose names never resolve hold every thread and
delay unrelated fetches.  :class:`DnsHostnameResolver` is an
``IHostnameResolver`` over :class:`~postfix_mtasts.dnsclient.DnsClient`
instead: A and AAAA asked in parallel, CNAMEs followed by the client (B19),
no thread, at most ``max_in_flight`` resolutions at once, each given up after
``timeout_s`` on the injected clock.  The daemon hands it to
:func:`~postfix_mtasts.https.make_https_client`; the checker installs it on
its reactor so that ``--nameserver`` applies to HTTPS too.
"""

from __future__ import annotations

import ipaddress
import typing
from collections.abc import Callable, Sequence

import dns.rdatatype
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHostnameResolver,
    IHostResolution,
    IReactorTime,
    IResolutionReceiver,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from postfix_mtasts.dnsclient import DnsAnswer, DnsError

__all__ = [
    "HOSTNAME_TIMEOUT_S",
    "MAX_RESOLUTIONS_IN_FLIGHT",
    "RESOLUTION_DELAY_S",
    "AddressLookups",
    "DnsHostnameResolver",
]

HOSTNAME_TIMEOUT_S = 10.0  # DnsClient's default: 2 attempts of 5 s
# Once one family has addresses, how long the other may still take (RFC 8305 §3).
RESOLUTION_DELAY_S = 0.05
MAX_RESOLUTIONS_IN_FLIGHT = 64  # two UDP sockets each, at most
_FAMILIES: tuple[
    tuple[type[IPv4Address | IPv6Address], dns.rdatatype.RdataType], ...
] = (
    (IPv4Address, dns.rdatatype.A),
    (IPv6Address, dns.rdatatype.AAAA),
)

log = Logger()


class AddressLookups(typing.Protocol):
    """What is asked of :class:`~postfix_mtasts.dnsclient.DnsClient`."""

    def lookup(
        self, name: str, rdtype: dns.rdatatype.RdataType, *, dnssec: bool = False
    ) -> Deferred[DnsAnswer]: ...


@implementer(IHostResolution)
class _Resolution:
    """One name being resolved: its lookups, its timer and its one ending."""

    def __init__(
        self,
        name: str,
        receiver: IResolutionReceiver,
        make_address: Callable[[str], IAddress],
        on_end: Callable[[_Resolution], None],
    ) -> None:
        self.name = name
        self._receiver = receiver
        self._make_address = make_address
        self._on_end = on_end
        self._lookups: list[Deferred[tuple[str, ...]]] = []
        self._found: dict[int, tuple[str, ...]] = {}
        self._timer: IDelayedCall | None = None
        self._clock: IReactorTime | None = None
        self._done = False

    def start(
        self,
        lookups: Sequence[Deferred[tuple[str, ...]]],
        clock: IReactorTime,
        timeout_s: float,
    ) -> None:
        self._lookups = list(lookups)
        self._clock = clock
        self._timer = clock.callLater(timeout_s, self._timed_out, timeout_s)
        for index, lookup in enumerate(self._lookups):
            lookup.addCallback(self._answered, index)

    def resolved(self, addresses: tuple[str, ...]) -> None:
        """End at once with ``addresses``: nothing to ask the DNS."""
        self._found[0] = addresses
        self._end()

    def cancel(self) -> None:
        """Stop asking: the receiver hears of the addresses found so far,
        then of the end (Twisted's own endpoints never call this; the timer
        and :class:`DnsHostnameResolver`'s bound do)."""
        self._end()

    def _timed_out(self, timeout_s: float) -> None:
        self._timer = None
        log.warn(
            "host name {host} not resolved in {timeout_s}s",
            host=self.name,
            timeout_s=timeout_s,
        )
        self._end()

    def _answered(self, addresses: tuple[str, ...], index: int) -> None:
        self._found[index] = addresses
        if len(self._found) == len(self._lookups):
            self._end()
        elif addresses and self._clock is not None and not self._done:
            # Something to connect to: the other family gets a short grace only.
            self._cancel_timer()
            self._timer = self._clock.callLater(RESOLUTION_DELAY_S, self._end)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _end(self) -> None:
        if self._done:
            return
        self._done = True  # before anything else: a cancelled lookup calls back
        self._cancel_timer()
        self._on_end(self)
        for lookup in self._lookups:
            lookup.cancel()  # no-op for those that answered
        for index in sorted(self._found):  # A before AAAA, whichever came first
            for address in self._found[index]:
                self._receiver.addressResolved(self._make_address(address))
        self._receiver.resolutionComplete()


@implementer(IHostnameResolver)
class DnsHostnameResolver:
    """An ``IHostnameResolver`` over ``dns_client.lookup`` (A, AAAA).

    A name that does not resolve (NXDOMAIN, NODATA, an error rcode, a DNS
    failure or ``timeout_s`` on ``clock``) completes with no address; the
    connection attempt then fails with ``DNSLookupError``.  Once one family
    has addresses, the other has RESOLUTION_DELAY_S more, so that a lost AAAA
    query does not hold up the A addresses until the DNS client's retry.
    IP literals are delivered as they are, without DNS.

    At most ``max_in_flight`` resolutions run at once.  A new one never waits
    and is never refused: when every slot is taken, the oldest resolution is
    ended with what it has found so far.  Waiting would queue a fresh name
    behind names that may never answer, which is the thread pool's failure
    mode again; refusing would let stuck names lock every fresh one out until
    their timeouts.  The oldest has spent most of its ``timeout_s``, is the
    likeliest never to answer, and its caller is the nearest to giving up.
    """

    def __init__(
        self,
        dns_client: AddressLookups,
        clock: IReactorTime,
        *,
        max_in_flight: int = MAX_RESOLUTIONS_IN_FLIGHT,
        timeout_s: float = HOSTNAME_TIMEOUT_S,
    ) -> None:
        if max_in_flight < 1 or timeout_s <= 0:
            raise ValueError("need max_in_flight >= 1 and timeout_s > 0")
        self._dns = dns_client
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._timeout_s = timeout_s
        # Insertion order is age order: the first is the oldest.
        self._active: dict[_Resolution, None] = {}

    @property
    def in_flight(self) -> int:
        """Resolutions started and not yet ended."""
        return len(self._active)

    def resolveHostName(  # noqa: N802 (Twisted's names, here and below)
        self,
        resolutionReceiver: IResolutionReceiver,  # noqa: N803
        hostName: str,  # noqa: N803
        portNumber: int = 0,  # noqa: N803
        addressTypes: Sequence[type[IAddress]] | None = None,  # noqa: N803
        transportSemantics: str = "TCP",  # noqa: N803
    ) -> IHostResolution:
        semantics: typing.Literal["TCP", "UDP"] = (
            "UDP" if transportSemantics == "UDP" else "TCP"
        )

        def make_address(ip: str) -> IAddress:
            kind = IPv6Address if ":" in ip else IPv4Address
            return kind(semantics, ip, portNumber)

        families = [
            (kind, rdtype)
            for kind, rdtype in _FAMILIES
            if addressTypes is None or kind in addressTypes
        ]
        resolution = _Resolution(
            hostName, resolutionReceiver, make_address, self._ended
        )
        resolutionReceiver.resolutionBegan(resolution)
        literal = _ip_literal(hostName)
        if literal is not None:
            kind = IPv6Address if ":" in literal else IPv4Address
            wanted = any(kind is k for k, _ in families)
            resolution.resolved((literal,) if wanted else ())
            return resolution
        if not families:
            resolution.resolved(())
            return resolution
        while len(self._active) >= self._max_in_flight:
            oldest = next(iter(self._active))
            log.warn(
                "host name {host} given up to resolve {new}: {count} resolutions "
                "in flight",
                host=oldest.name,
                new=hostName,
                count=len(self._active),
            )
            oldest.cancel()
        self._active[resolution] = None
        resolution.start(
            [self._addresses(hostName, rdtype) for _, rdtype in families],
            self._clock,
            self._timeout_s,
        )
        return resolution

    def _ended(self, resolution: _Resolution) -> None:
        self._active.pop(resolution, None)

    def _addresses(
        self, name: str, rdtype: dns.rdatatype.RdataType
    ) -> Deferred[tuple[str, ...]]:
        """The ``rdtype`` addresses of ``name``; () when there are none."""
        d = self._dns.lookup(name, rdtype).addCallback(_texts)
        return d.addErrback(_no_addresses, name)


def _texts(answer: DnsAnswer) -> tuple[str, ...]:
    return tuple(rdata.to_text() for rdata in answer.rdatas)


def _no_addresses(failure: Failure, name: str) -> tuple[str, ...]:
    if not isinstance(failure.value, DnsError | CancelledError):
        log.failure("resolving {host}", failure, host=name)
    return ()


def _ip_literal(name: str) -> str | None:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return None
