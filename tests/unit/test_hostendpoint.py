"""Tests for postfix_mtasts.hostendpoint: a policy host's addresses tried
in order, the next after a delay or at once on a failure, the first
connection winning (spec B19, G14; issue 13: without HostnameEndpoint's
per-connect cost)."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import IHostnameResolver, IHostResolution
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from postfix_mtasts.hostendpoint import ATTEMPT_DELAY_S, HostEndpoint

HOST = "mta-sts.example.com"


@implementer(IHostResolution)
class Resolution:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@implementer(IHostnameResolver)
class HeldResolver:
    """Records each resolution; the test completes it with addresses."""

    def __init__(self) -> None:
        self.asked: list[tuple[Any, str, int, Resolution]] = []

    def resolveHostName(
        self,
        receiver: Any,
        name: str,
        portNumber: int = 0,  # noqa: N803
        *_: Any,
    ) -> Resolution:
        resolution = Resolution(name)
        receiver.resolutionBegan(resolution)
        self.asked.append((receiver, name, portNumber, resolution))
        return resolution

    def complete(self, *hosts: str) -> None:
        receiver = self.asked[-1][0]
        for host in hosts:
            kind = IPv6Address if ":" in host else IPv4Address
            receiver.addressResolved(kind("TCP", host, 443))
        receiver.resolutionComplete()


class HostEndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.resolver = HeldResolver()
        self.endpoint = HostEndpoint(
            self.reactor, self.resolver, HOST, 443, timeout_s=10.0
        )
        self.connecting = self.endpoint.connect(Factory.forProtocol(Protocol))

    def hosts(self) -> list[str]:
        return [host for host, *_ in self.reactor.tcpClients]

    def succeed(self, index: int) -> None:
        factory = self.reactor.tcpClients[index][2]
        protocol = factory.buildProtocol(None)
        assert protocol is not None
        protocol.makeConnection(StringTransport())

    def refuse(self, index: int) -> None:
        factory = self.reactor.tcpClients[index][2]
        connector = self.reactor.connectors[index]
        factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))

    def test_resolves_then_connects_to_the_first_address(self) -> None:
        """The host name goes to the resolver with the port; nothing
        connects before it completes; then the first address is tried with
        the connect timeout, and its connection is the result."""
        self.assertEqual([(n, p) for _, n, p, _ in self.resolver.asked], [(HOST, 443)])
        self.assertEqual(self.reactor.tcpClients, [])
        self.resolver.complete("2001:db8::7", "192.0.2.7")
        self.assertEqual(self.hosts(), ["2001:db8::7"])
        self.assertEqual(self.reactor.tcpClients[0][3], 10.0)
        self.assertNoResult(self.connecting)
        self.succeed(0)
        self.assertIsInstance(self.successResultOf(self.connecting), Protocol)
        self.reactor.advance(ATTEMPT_DELAY_S * 10)
        self.assertEqual(self.hosts(), ["2001:db8::7"])  # no more attempts

    def test_next_address_after_the_delay_first_connection_wins(self) -> None:
        """While the first attempt hangs, the next starts after the attempt
        delay; the one that connects wins and the other is abandoned."""
        self.resolver.complete("2001:db8::7", "192.0.2.7")
        self.reactor.advance(ATTEMPT_DELAY_S - 0.01)
        self.assertEqual(self.hosts(), ["2001:db8::7"])
        self.reactor.advance(0.01)
        self.assertEqual(self.hosts(), ["2001:db8::7", "192.0.2.7"])
        self.succeed(1)
        self.successResultOf(self.connecting)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)

    def test_refused_tries_the_next_at_once(self) -> None:
        """A refused attempt starts the next address without waiting."""
        self.resolver.complete("192.0.2.7", "192.0.2.8")
        self.refuse(0)
        self.assertEqual(self.hosts(), ["192.0.2.7", "192.0.2.8"])
        self.succeed(1)
        self.successResultOf(self.connecting)

    def test_refused_while_another_attempt_runs(self) -> None:
        """The last address refused while an earlier attempt still runs:
        the connect waits for that one."""
        self.resolver.complete("192.0.2.7", "192.0.2.8")
        self.reactor.advance(ATTEMPT_DELAY_S)
        self.refuse(1)
        self.assertNoResult(self.connecting)
        self.succeed(0)
        self.successResultOf(self.connecting)

    def test_all_refused_fails_with_the_last(self) -> None:
        """Every address refused: the connect fails with the last failure,
        and no timer is left behind."""
        self.resolver.complete("192.0.2.7", "192.0.2.8")
        self.refuse(0)
        self.refuse(1)
        self.failureResultOf(self.connecting, ConnectionRefusedError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_no_address_is_a_lookup_error(self) -> None:
        """A name without addresses fails with DNSLookupError naming it
        (fetch_errors reports "host name lookup failed")."""
        self.resolver.complete()
        failure = self.failureResultOf(self.connecting, DNSLookupError)
        self.assertIn(HOST, str(failure.value))
        self.assertEqual(self.reactor.tcpClients, [])

    def test_cancel_while_resolving_ends_the_resolution(self) -> None:
        """Cancelled before the addresses came: the resolution is cancelled,
        the result is ConnectingCancelledError, and a late completion
        connects nowhere (G14)."""
        self.connecting.cancel()
        self.failureResultOf(self.connecting, ConnectingCancelledError)
        self.assertTrue(self.resolver.asked[0][3].cancelled)
        self.resolver.complete("192.0.2.7")
        self.assertEqual(self.reactor.tcpClients, [])

    def test_cancel_while_connecting_abandons_every_attempt(self) -> None:
        """Cancelled with attempts under way: each stops connecting, the
        next one is never started."""
        self.resolver.complete("192.0.2.7", "192.0.2.8", "192.0.2.9")
        self.reactor.advance(ATTEMPT_DELAY_S)
        self.connecting.cancel()
        self.failureResultOf(self.connecting, ConnectingCancelledError)
        self.assertTrue(all(c.stoppedConnecting for c in self.reactor.connectors))
        self.reactor.advance(ATTEMPT_DELAY_S * 10)
        self.assertEqual(self.hosts(), ["192.0.2.7", "192.0.2.8"])
