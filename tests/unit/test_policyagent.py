"""Tests for postfix_mtasts.policyagent: one GET per connection, closed when
the response is read or refused, and a cancel at any stage that leaves no
connection and no timer behind (spec B1, B2, B12, G14).

The client is the production one (:func:`make_https_client`) on a memory
reactor; where a stage needs a TLS peer, :mod:`twisted.test.iosim` joins it to
a TLS server in memory, as tests.unit.test_https does.
"""

from __future__ import annotations

import os
import tempfile

from twisted.internet import error as net_error
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IHostnameResolver, IHostResolution
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.error import SchemeNotSupported
from zope.interface import implementer

from postfix_mtasts.fetch import HttpsPolicyFetcher
from postfix_mtasts.fetch_errors import FetchStatusError
from postfix_mtasts.https import make_https_client
from postfix_mtasts.policyagent import split_https_url
from tests.unit.test_https import (
    CA,
    HOST,
    POLICY,
    URL,
    PolicyServers,
    RecordingResolver,
    ServerTls,
    read_body,
    server_context,
)

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"


@implementer(IHostResolution)
class PendingResolution:
    def __init__(self, name):
        self.name = name
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


@implementer(IHostnameResolver)
class PendingResolver:
    """Begins every resolution and never ends it."""

    def __init__(self):
        self.resolutions = []

    def resolveHostName(self, receiver, name, portNumber=0, *_):  # noqa: N803
        resolution = PendingResolution(name)
        self.resolutions.append(resolution)
        receiver.resolutionBegan(resolution)
        return resolution


class AbortingTransport(StringTransport):
    def __init__(self):
        super().__init__()
        self.aborted = False

    def abortConnection(self):
        self.aborted = True
        super().abortConnection()

    def setTcpNoDelay(self, enabled):
        pass


class AgentTestCase(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.resolver = RecordingResolver("192.0.2.7")

    def client(self, resolver=None):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        ca_file = os.path.join(directory.name, "ca.pem")
        with open(ca_file, "wb") as f:
            f.write(CA.cert_pem.bytes())
        return make_https_client(
            self.reactor, ca_file=ca_file, name_resolver=resolver or self.resolver
        )

    def serve(self, answer):
        """A TLS policy host on port 443 that sends ``answer`` once it has
        the request; returns its factory (``built``: the connections)."""
        servers = PolicyServers(answer)
        self.reactor.listenTCP(
            443,
            _tls_server(servers, self.reactor),
        )
        return servers

    def connect(self):
        pump = ConnectionCompleter(self.reactor).succeedOnce()
        assert pump is not None
        pump.flush()
        return pump

    def assert_nothing_left(self):
        """No connection attempt pending and no timer (the TLS layer's write
        flush included) left on the reactor."""
        self.reactor.advance(0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.reactor.tcpClients, [])


def _tls_server(servers, clock):
    return TLSMemoryBIOFactory(ServerTls(server_context()), False, servers, clock=clock)


class RequestTests(AgentTestCase):
    def test_one_request_then_closed(self):
        """The request line is the policy path, Host names the policy host,
        Connection: close; once the body is read the client closes the
        connection: nothing is kept for reuse (B1, B9)."""
        servers = self.serve(HEAD % len(POLICY) + POLICY)
        d = self.client().request(b"GET", URL)
        pump = self.connect()
        body = d.addCallback(read_body)
        pump.flush()
        self.assertEqual(self.successResultOf(body), POLICY)
        [server] = servers.built
        head, _, rest = server.request.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"GET /.well-known/mta-sts.txt HTTP/1.1")
        self.assertEqual(
            sorted(lines[1:]), [b"Connection: close", b"Host: " + HOST.encode()]
        )
        self.assertEqual(rest, b"")
        self.assertIsNotNone(server.lost)
        self.assert_nothing_left()

    def test_refused_answer_closes(self):
        """A 404 refused by the fetcher: its body is not read and the
        connection is closed (B7)."""
        servers = self.serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 1000\r\n\r\n")
        fetcher = HttpsPolicyFetcher(self.client(), self.reactor)
        d = fetcher.fetch("example.com")
        self.connect().flush()
        self.failureResultOf(d, FetchStatusError)
        self.assertIsNotNone(servers.built[0].lost)
        self.assert_nothing_left()

    def test_each_request_its_own_connection(self):
        """Two fetches from one host open two connections (no pool)."""
        servers = self.serve(HEAD % len(POLICY) + POLICY)
        fetcher = HttpsPolicyFetcher(self.client(), self.reactor)
        for _ in range(2):
            d = fetcher.fetch("example.com")
            self.connect().flush()
            self.assertEqual(self.successResultOf(d), POLICY)
        self.assertEqual(len(servers.built), 2)
        self.assertTrue(all(server.lost is not None for server in servers.built))

    def test_plain_http_and_odd_urls_refused(self):
        """Only https URLs of a policy's shape are fetched; nothing connects
        for any other (B2)."""
        client = self.client()
        self.failureResultOf(
            client.request(b"GET", b"http://mta-sts.example.com/"), SchemeNotSupported
        )
        for url in (
            b"https://mta-sts.example.com",
            b"https://user@mta-sts.example.com/",
            b"https://mta-sts.example.com/a b",
            b"https://mta-sts.example.com/#x",
            b"https://mta-sts.example.com:0/",
            b"https://mta-sts.example.com:99999/",
        ):
            self.failureResultOf(client.request(b"GET", url), ValueError)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(self.resolver.names, [])

    def test_split_https_url(self):
        """Host, port and path of a policy URL (B1)."""
        self.assertEqual(split_https_url(URL), (HOST, 443, b"/.well-known/mta-sts.txt"))
        self.assertEqual(
            split_https_url(b"HTTPS://h.example:8443/x?y"), ("h.example", 8443, b"/x?y")
        )

    def test_port_in_host_header(self):
        """Another port than 443 is named in Host, as HTTP wants."""
        servers = PolicyServers(HEAD % len(POLICY) + POLICY)
        self.reactor.listenTCP(8443, _tls_server(servers, self.reactor))
        d = self.client().request(b"GET", b"https://%s:8443/p" % HOST.encode())
        self.connect().flush()
        self.successResultOf(d)
        self.assertIn(
            b"\r\nHost: %s:8443\r\n" % HOST.encode(), servers.built[0].request
        )


class CancelTests(AgentTestCase):
    """A fetch cancelled (by its timeout, or its caller) at each stage."""

    def test_while_resolving(self):
        """The resolution is cancelled; nothing connects (G14)."""
        resolver = PendingResolver()
        d = self.client(resolver).request(b"GET", URL)
        d.cancel()
        self.failureResultOf(d, net_error.ConnectingCancelledError)
        self.assertTrue(resolver.resolutions[0].cancelled)
        self.assert_nothing_left()

    def test_while_connecting(self):
        """The TCP attempt is stopped (G14)."""
        d = self.client().request(b"GET", URL)
        [connector] = self.reactor.connectors
        d.cancel()
        self.failureResultOf(d, net_error.ConnectingCancelledError)
        self.assertTrue(connector.stoppedConnecting)
        self.reactor.tcpClients.clear()  # the memory reactor keeps them
        self.assert_nothing_left()

    def test_during_the_handshake(self):
        """The ClientHello went out; cancelling aborts the TCP connection
        (G14)."""
        d = self.client().request(b"GET", URL)
        [(_host, _port, factory, _timeout, _bind)] = self.reactor.tcpClients
        self.reactor.tcpClients.clear()
        protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.7", 443))
        assert protocol is not None
        transport = AbortingTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.value()[:1], b"\x16")  # a TLS handshake record
        d.cancel()
        self.assertTrue(transport.aborted)
        protocol.connectionLost(Failure(net_error.ConnectionAborted()))
        self.failureResultOf(d)
        self.assert_nothing_left()

    def test_waiting_for_the_head(self):
        """The request was sent and no answer came: cancelling aborts the
        connection, which the server sees end (B12, G14)."""
        servers = self.serve(b"")
        d = self.client().request(b"GET", URL)
        pump = self.connect()
        [server] = servers.built
        self.assertIn(b"GET /.well-known/mta-sts.txt", server.request)
        self.assertIsNone(server.lost)
        d.cancel()
        pump.flush()
        self.failureResultOf(d)
        self.assertIsNotNone(server.lost)
        self.assert_nothing_left()

    def test_reading_the_body(self):
        """Half the body came: cancelling the fetch closes the connection
        (B12, G14)."""
        servers = self.serve(HEAD % len(POLICY) + POLICY[:10])
        fetcher = HttpsPolicyFetcher(self.client(), self.reactor)
        d = fetcher.fetch("example.com")
        pump = self.connect()
        self.assertNoResult(d)
        d.cancel()
        pump.flush()
        self.failureResultOf(d, CancelledError)
        self.assertIsNotNone(servers.built[0].lost)
        self.assert_nothing_left()
