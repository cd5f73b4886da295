"""Tests for postfix_mtasts.hostnames: policy hosts resolved by our own DNS
client, bounded and on the injected clock, never in a thread (spec B19, F4, G14)."""

from __future__ import annotations

import threading

import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IResolutionReceiver
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from postfix_mtasts.dnsclient import DnsAnswer, DnsError, DnsTimeoutError
from postfix_mtasts.hostnames import (
    HOSTNAME_TIMEOUT_S,
    MAX_RESOLUTIONS_IN_FLIGHT,
    RESOLUTION_DELAY_S,
    DnsHostnameResolver,
)

A, AAAA = dns.rdatatype.A, dns.rdatatype.AAAA
HOST = "mta-sts.example.com"


def answer(rdtype, *addresses, chain=(), rcode=dns.rcode.NOERROR):
    rdatas = tuple(
        dns.rdata.from_text(dns.rdataclass.IN, rdtype, address) for address in addresses
    )
    return DnsAnswer(rcode, rdatas, tuple(chain), False)


NXDOMAIN = answer(A, rcode=dns.rcode.NXDOMAIN)


class FakeDns:
    """A hand-made DnsClient: ``answers`` are given at once; any other
    question stays pending until :meth:`reply` (or forever)."""

    def __init__(self, answers=None):
        self.answers = dict(answers or {})
        self.asked: list[tuple[str, dns.rdatatype.RdataType]] = []
        self.cancelled: list[tuple[str, dns.rdatatype.RdataType]] = []
        self.pending: dict[
            tuple[str, dns.rdatatype.RdataType], Deferred[DnsAnswer]
        ] = {}

    def lookup(self, name, rdtype, *, dnssec=False):
        key = (name, rdtype)
        self.asked.append(key)
        if key in self.answers:
            result = self.answers[key]
            return fail(result) if isinstance(result, Exception) else succeed(result)

        def cancel(d):
            self.cancelled.append(key)
            del self.pending[key]

        d: Deferred[DnsAnswer] = Deferred(cancel)
        self.pending[key] = d
        return d

    def reply(self, name, rdtype, result):
        d = self.pending.pop((name, rdtype))
        if isinstance(result, Exception):
            d.errback(result)
        else:
            d.callback(result)


class ThreadlessClock(Clock):
    """A reactor clock with no thread pool: any use of a thread fails."""

    def callInThread(self, f, *args, **kwargs):
        raise AssertionError("a thread was asked for")

    def getThreadPool(self):
        raise AssertionError("the thread pool was asked for")


@implementer(IResolutionReceiver)
class Receiver:
    def __init__(self):
        self.events = []

    def resolutionBegan(self, resolution):
        self.events.append(("began", resolution.name))

    def addressResolved(self, address):
        self.events.append(("address", address))

    def resolutionComplete(self):
        self.events.append(("complete",))

    @property
    def complete(self):
        return ("complete",) in self.events

    @property
    def addresses(self):
        return [event[1] for event in self.events if event[0] == "address"]


class ResolverTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = ThreadlessClock()
        self.dns = FakeDns()
        self.resolver = DnsHostnameResolver(self.dns, self.clock)

    def resolve(self, name=HOST, port=443, resolver=None, **kwargs):
        receiver = Receiver()
        resolver = resolver or self.resolver
        resolution = resolver.resolveHostName(receiver, name, port, **kwargs)
        return receiver, resolution


class AddressTests(ResolverTestCase):
    def test_a_and_aaaa_delivered(self):
        """A and AAAA addresses reach the receiver with the port, then one
        completion (B19: the policy host is found by our DNS client)."""
        self.dns.answers = {
            (HOST, A): answer(A, "192.0.2.1", "192.0.2.2"),
            (HOST, AAAA): answer(AAAA, "2001:db8::1"),
        }
        receiver, _ = self.resolve()
        self.assertEqual(
            receiver.events,
            [
                ("began", HOST),
                ("address", IPv4Address("TCP", "192.0.2.1", 443)),
                ("address", IPv4Address("TCP", "192.0.2.2", 443)),
                ("address", IPv6Address("TCP", "2001:db8::1", 443)),
                ("complete",),
            ],
        )
        self.assertEqual(self.resolver.in_flight, 0)

    def test_asked_in_parallel(self):
        """Both families are asked at once; the resolution completes when the
        last answers, A addresses first whatever the order of the answers (F4)."""
        receiver, _ = self.resolve()
        self.assertEqual(self.dns.asked, [(HOST, A), (HOST, AAAA)])
        self.assertEqual(set(self.dns.pending), {(HOST, A), (HOST, AAAA)})
        self.dns.reply(HOST, AAAA, answer(AAAA, "2001:db8::1"))
        self.assertFalse(receiver.complete)
        self.dns.reply(HOST, A, answer(A, "192.0.2.1"))
        self.assertEqual(
            receiver.addresses,
            [
                IPv4Address("TCP", "192.0.2.1", 443),
                IPv6Address("TCP", "2001:db8::1", 443),
            ],
        )
        self.assertTrue(receiver.complete)

    def test_cname_chain_end(self):
        """The addresses at the end of a CNAME chain are the host's (B19, A11:
        the DNS client follows the chain)."""
        self.dns.answers = {
            (HOST, A): answer(A, "198.51.100.7", chain=["sts.provider.example"]),
            (HOST, AAAA): answer(AAAA, chain=["sts.provider.example"]),
        }
        receiver, _ = self.resolve()
        self.assertEqual(receiver.addresses, [IPv4Address("TCP", "198.51.100.7", 443)])

    def test_address_types(self):
        """Only the families asked for are looked up."""
        self.dns.answers = {(HOST, AAAA): answer(AAAA, "2001:db8::1")}
        receiver, _ = self.resolve(addressTypes=[IPv6Address])
        self.assertEqual(self.dns.asked, [(HOST, AAAA)])
        self.assertEqual(receiver.addresses, [IPv6Address("TCP", "2001:db8::1", 443)])
        receiver, _ = self.resolve(addressTypes=[])
        self.assertEqual(receiver.events, [("began", HOST), ("complete",)])
        self.assertEqual(len(self.dns.asked), 1)

    def test_ip_literal(self):
        """An IP literal is its own address: no DNS question, no slot."""
        receiver, _ = self.resolve("2001:db8::5", port=8443)
        self.assertEqual(receiver.addresses, [IPv6Address("TCP", "2001:db8::5", 8443)])
        self.assertTrue(receiver.complete)
        receiver, _ = self.resolve("192.0.2.9", addressTypes=[IPv6Address])
        self.assertEqual(receiver.events, [("began", "192.0.2.9"), ("complete",)])
        self.assertEqual((self.dns.asked, self.resolver.in_flight), ([], 0))

    def test_udp_semantics(self):
        """The address type follows the transport asked for."""
        self.dns.answers = {(HOST, A): answer(A, "192.0.2.1")}
        receiver, _ = self.resolve(addressTypes=[IPv4Address], transportSemantics="UDP")
        self.assertEqual(receiver.addresses, [IPv4Address("UDP", "192.0.2.1", 443)])


class NoAddressTests(ResolverTestCase):
    def test_nxdomain(self):
        """NXDOMAIN completes with no address: the connect then fails (B3)."""
        self.dns.answers = {(HOST, A): NXDOMAIN, (HOST, AAAA): NXDOMAIN}
        receiver, _ = self.resolve()
        self.assertEqual(receiver.events, [("began", HOST), ("complete",)])

    def test_dns_failures(self):
        """A DNS failure of one family leaves the other's addresses; of both,
        no address (A15: a DNS failure is not an exception here)."""
        self.dns.answers = {
            (HOST, A): answer(A, "192.0.2.1"),
            (HOST, AAAA): DnsError("SERVFAIL"),
        }
        receiver, _ = self.resolve()
        self.assertEqual(receiver.addresses, [IPv4Address("TCP", "192.0.2.1", 443)])
        self.dns.answers = {
            (HOST, A): DnsTimeoutError("no reply"),
            (HOST, AAAA): DnsError("SERVFAIL"),
        }
        receiver, _ = self.resolve()
        self.assertEqual(receiver.events, [("began", HOST), ("complete",)])
        self.assertEqual(self.resolver.in_flight, 0)

    def test_unexpected_error_logged(self):
        """A bug in the DNS client is logged; the resolution still completes."""
        self.dns.answers = {(HOST, A): ZeroDivisionError(), (HOST, AAAA): NXDOMAIN}
        receiver, _ = self.resolve()
        self.assertEqual(receiver.events, [("began", HOST), ("complete",)])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_timeout(self):
        """A name whose DNS never answers completes with no address after
        timeout_s on the injected clock, its lookups cancelled and its slot
        freed (G14: the fetch budget is not spent waiting)."""
        with capturedLogs() as events:
            receiver, _ = self.resolve()
            self.clock.advance(HOSTNAME_TIMEOUT_S - 0.1)
            self.assertFalse(receiver.complete)
            self.assertEqual(self.resolver.in_flight, 1)
            self.clock.advance(0.1)
        self.assertEqual(receiver.events, [("began", HOST), ("complete",)])
        self.assertEqual(sorted(self.dns.cancelled), [(HOST, A), (HOST, AAAA)])
        self.assertEqual(
            (self.resolver.in_flight, self.clock.getDelayedCalls()), (0, [])
        )
        [event] = events
        self.assertEqual(
            (event["host"], event["timeout_s"]), (HOST, HOSTNAME_TIMEOUT_S)
        )

    def test_other_family_gets_a_short_grace(self):
        """Once A has addresses, AAAA has RESOLUTION_DELAY_S more, then the
        A addresses go out alone and the AAAA question is dropped (G14)."""
        receiver, _ = self.resolve()
        self.dns.reply(HOST, A, answer(A, "192.0.2.1"))
        self.clock.advance(RESOLUTION_DELAY_S * 0.9)
        self.assertFalse(receiver.complete)
        self.clock.advance(RESOLUTION_DELAY_S * 0.1)
        self.assertEqual(
            receiver.events,
            [
                ("began", HOST),
                ("address", IPv4Address("TCP", "192.0.2.1", 443)),
                ("complete",),
            ],
        )
        self.assertEqual(self.dns.cancelled, [(HOST, AAAA)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_grace_without_addresses(self):
        """An empty answer (NXDOMAIN, NODATA) does not cut the wait for the
        other family short."""
        receiver, _ = self.resolve()
        self.dns.reply(HOST, A, NXDOMAIN)
        self.clock.advance(HOSTNAME_TIMEOUT_S / 2)
        self.assertFalse(receiver.complete)
        self.dns.reply(HOST, AAAA, answer(AAAA, "2001:db8::1"))
        self.assertEqual(receiver.addresses, [IPv6Address("TCP", "2001:db8::1", 443)])

    def test_cancel(self):
        """cancel() ends a resolution once: lookups cancelled, slot and timer
        freed; a late answer or a second cancel changes nothing."""
        receiver, resolution = self.resolve()
        self.dns.reply(HOST, AAAA, answer(AAAA, "2001:db8::1"))
        resolution.cancel()
        self.assertEqual(
            receiver.events,
            [
                ("began", HOST),
                ("address", IPv6Address("TCP", "2001:db8::1", 443)),
                ("complete",),
            ],
        )
        self.assertEqual(self.dns.cancelled, [(HOST, A)])
        resolution.cancel()
        self.clock.advance(HOSTNAME_TIMEOUT_S)
        self.assertEqual(len(receiver.events), 3)
        self.assertEqual(
            (self.resolver.in_flight, self.clock.getDelayedCalls()), (0, [])
        )


class BoundTests(ResolverTestCase):
    def test_stuck_names_cannot_block_others(self):
        """100 names whose DNS never answers keep at most max_in_flight
        resolutions (and twice as many DNS questions) open, and a 101st name
        is still resolved as soon as the DNS answers it (F4: the thread pool
        no longer exists to be exhausted)."""
        stuck = [Receiver() for _ in range(100)]
        with capturedLogs() as events:
            for number, receiver in enumerate(stuck):
                self.resolver.resolveHostName(
                    receiver, f"mta-sts.stuck{number}.example", 443
                )
                self.assertLessEqual(self.resolver.in_flight, MAX_RESOLUTIONS_IN_FLIGHT)
                self.assertLessEqual(
                    len(self.dns.pending), 2 * MAX_RESOLUTIONS_IN_FLIGHT
                )
        self.assertEqual(self.resolver.in_flight, MAX_RESOLUTIONS_IN_FLIGHT)
        given_up = 100 - MAX_RESOLUTIONS_IN_FLIGHT
        # The oldest were given up, with no address: their callers fail now.
        self.assertEqual(
            [r.complete for r in stuck],
            [True] * given_up + [False] * MAX_RESOLUTIONS_IN_FLIGHT,
        )
        self.assertEqual(len(self.dns.cancelled), 2 * given_up)
        self.assertEqual(
            [e["host"] for e in events],
            [f"mta-sts.stuck{n}.example" for n in range(given_up)],
        )

        receiver, _ = self.resolve("mta-sts.fresh.example")
        self.assertEqual(self.resolver.in_flight, MAX_RESOLUTIONS_IN_FLIGHT)
        self.dns.reply("mta-sts.fresh.example", A, answer(A, "192.0.2.80"))
        self.dns.reply("mta-sts.fresh.example", AAAA, answer(AAAA))
        self.assertEqual(receiver.addresses, [IPv4Address("TCP", "192.0.2.80", 443)])
        self.assertTrue(receiver.complete)
        self.assertEqual(self.clock.seconds(), 0)  # no waiting for the stuck ones

    def test_timed_out_resolution_frees_its_slot(self):
        """With one slot, a timed-out resolution makes room for the next without
        anyone being given up early (F4)."""
        resolver = DnsHostnameResolver(
            self.dns, self.clock, max_in_flight=1, timeout_s=3
        )
        first, _ = self.resolve("mta-sts.stuck.example", resolver=resolver)
        self.clock.advance(3)
        self.assertTrue(first.complete)
        self.assertEqual(resolver.in_flight, 0)
        with capturedLogs() as events:
            second, _ = self.resolve(resolver=resolver)
        self.assertEqual((events, resolver.in_flight, second.complete), ([], 1, False))

    def test_abandoned_connect_frees_its_slot(self):
        """Twisted's HostnameEndpoint never cancels a resolution when its
        connect is cancelled: the timeout still frees the slot, and the late
        completion reaches no one (G14)."""
        reactor = MemoryReactorClock()
        resolver = DnsHostnameResolver(self.dns, reactor, max_in_flight=1)
        reactor.nameResolver = resolver
        endpoint = HostnameEndpoint(reactor, HOST, 443)
        connecting = endpoint.connect(Factory.forProtocol(Protocol))
        self.assertEqual(resolver.in_flight, 1)
        connecting.cancel()
        self.failureResultOf(connecting)
        reactor.advance(HOSTNAME_TIMEOUT_S)
        self.assertEqual((resolver.in_flight, reactor.tcpClients), (0, []))

    def test_invalid_settings(self):
        """A bound below one or a non-positive timeout is a configuration bug."""
        for kwargs in ({"max_in_flight": 0}, {"timeout_s": 0}):
            with self.assertRaises(ValueError):
                DnsHostnameResolver(self.dns, self.clock, **kwargs)


class NoThreadTests(ResolverTestCase):
    def test_no_thread(self):
        """Resolving, answering and timing out never use a thread: the clock
        has no thread pool and no thread is started (the getaddrinfo pool is gone)."""
        threads = threading.active_count()
        self.dns.answers = {(HOST, A): answer(A, "192.0.2.1"), (HOST, AAAA): NXDOMAIN}
        receiver, _ = self.resolve()
        stuck, _ = self.resolve("mta-sts.stuck.example")
        self.clock.advance(HOSTNAME_TIMEOUT_S)
        self.assertTrue(receiver.complete and stuck.complete)
        self.assertEqual(threading.active_count(), threads)
