"""Connection slots, unfinished requests and bursts of warnings, over
StringTransport and Clock (issue 9; spec F9, G6)."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionAborted
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.connections import BURST_WINDOW_S, REQUEST_TIMEOUT_S, BurstLog
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.protocols import (
    LookupFactory,
    SocketmapProtocol,
    TcpTableProtocol,
    _LookupProtocol,
)

from .test_protocols import SECURE_TEXT, FakeLookup, SmallBufferTransport, netstring

REQUEST = netstring(b"postfix example.com")
REPLY = netstring(SECURE_TEXT)


class BurstLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.burst = BurstLog(Logger(), self.clock, "things")

    def test_single_events_are_logged_in_full(self) -> None:
        """Warnings a window apart are each written, with their fields."""
        with capturedLogs() as events:
            self.burst.warn("thing {n}", n=1)
            self.clock.advance(BURST_WINDOW_S)
            self.burst.warn("thing {n}", n=2)
        self.assertEqual([e["n"] for e in events], [1, 2])

    def test_a_burst_is_summed_up(self) -> None:
        """10,000 warnings in a burst are the first one, then one line per
        window with the count of the others, then nothing (issue 9)."""
        with capturedLogs() as events:
            for _ in range(10_000):
                self.burst.warn("thing {n}", n=1)
            self.clock.advance(BURST_WINDOW_S)
            self.burst.warn("thing {n}", n=2)  # still the burst: counted
            self.clock.advance(BURST_WINDOW_S)
            self.clock.advance(BURST_WINDOW_S)
            self.burst.warn("thing {n}", n=3)  # the burst is over
        self.assertEqual(
            [(e.get("n"), e.get("count"), e.get("what")) for e in events],
            [
                (1, None, None),
                (None, 9_999, "things"),
                (None, 1, "things"),
                (3, None, None),
            ],
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ReactorLikeTransport(StringTransport):
    """Reports an abort to its protocol, as the reactor does."""

    protocol: _LookupProtocol | None = None

    def abortConnection(self) -> None:
        super().abortConnection()
        assert self.protocol is not None
        self.protocol.connectionLost(Failure(ConnectionAborted()))


class SlotTests(SynchronousTestCase):
    protocol: type[_LookupProtocol] = SocketmapProtocol
    request, reply = REQUEST, REPLY
    slow_request = netstring(b"postfix slow.example")
    notfound = netstring(b"NOTFOUND ")

    def setUp(self) -> None:
        self.clock = Clock()
        self.lookup = FakeLookup()
        self.factory = LookupFactory(
            self.protocol, self.lookup, self.clock, max_connections=3, idle_timeout_s=60
        )
        self.port = 40000

    def connect(
        self, transport: StringTransport | None = None
    ) -> tuple[_LookupProtocol, StringTransport]:
        self.port += 1
        proto = self.factory.buildProtocol(None)
        if transport is None:
            peer = IPv4Address("TCP", "127.0.0.1", self.port)
            transport = ReactorLikeTransport(peerAddress=peer)
        if isinstance(transport, ReactorLikeTransport):
            transport.protocol = proto
        proto.makeConnection(transport)
        return proto, transport

    def test_idle_postfix_connection_outlives_tricklers(self) -> None:
        """At the limit, connections that never completed a request are
        evicted, oldest first, however long a connection that did has been
        idle since; each new connection is answered (F9, G6)."""
        postfix, postfix_wire = self.connect()
        postfix.dataReceived(self.request)
        self.clock.advance(4)
        tricklers = [self.connect() for _ in range(2)]
        for proto, _ in tricklers:
            proto.dataReceived(self.request[:1])
        with capturedLogs() as events:
            new, new_wire = self.connect()
        self.assertTrue(tricklers[0][1].disconnected)
        self.assertFalse(tricklers[1][1].disconnecting)
        self.assertFalse(postfix_wire.disconnecting)
        [event] = events
        self.assertEqual(
            (event["peer"], event["new_peer"], event["limit"]),
            ("127.0.0.1:40002", "127.0.0.1:40004", 3),
        )
        new.dataReceived(self.request)
        self.assertEqual(new_wire.value(), self.reply)
        postfix.dataReceived(self.request)
        self.assertEqual(postfix_wire.value(), self.reply * 2)

    def test_least_recently_active_is_evicted_last_resort(self) -> None:
        """When every connection has completed a request, the one whose last
        request is oldest is evicted (F9)."""
        conns = [self.connect() for _ in range(3)]
        for proto, _ in conns:
            proto.dataReceived(self.request)
        conns[0][0].dataReceived(self.request)
        self.connect()
        self.assertEqual([wire.disconnected for _, wire in conns], [False, True, False])

    def test_evicted_connection_is_done(self) -> None:
        """An evicted connection answers nothing more, its slot is gone at
        once (not when the transport reports the loss), and a lookup it
        started ends without a write; its loss later changes no count."""
        self.lookup.slow[b"slow.example"] = slow = Deferred[Answer]()
        victim, wire = self.connect()
        victim.dataReceived(self.slow_request)
        victim.dataReceived(self.request[:1])
        wire.abortConnection = wire.loseConnection  # type: ignore[method-assign]
        for _ in range(2):
            proto, _ = self.connect()
            proto.dataReceived(self.request)
        self.connect()
        self.assertTrue(wire.disconnecting)
        self.assertEqual(self.factory.connections, 3)
        victim.dataReceived(self.request[1:])
        victim.connectionLost()
        slow.callback(Answer.notfound())
        self.assertEqual(wire.value(), b"")
        self.assertEqual(self.factory.connections, 3)

    def test_flood_logs_a_few_lines(self) -> None:
        """10,000 connections opened at the limit: every one is let in in
        turn, and the evictions are two log lines, not 10,000 (issue 9)."""
        postfix, postfix_wire = self.connect()
        postfix.dataReceived(self.request)
        with capturedLogs() as events:
            for _ in range(10_000):
                self.connect()
            self.clock.advance(BURST_WINDOW_S)
        self.assertEqual(len(events), 2)
        self.assertEqual(events[1]["count"], 9_997)
        self.assertEqual(self.factory.connections, 3)
        postfix.dataReceived(self.request)
        self.assertEqual(postfix_wire.value(), self.reply * 2)

    def test_partial_request_deadline(self) -> None:
        """A request begun must be complete within the request timeout,
        whatever trickles in meanwhile; the connection is then closed with
        one warning (F9)."""
        proto, wire = self.connect()
        for byte in self.request[:-1]:
            proto.dataReceived(bytes([byte]))
            self.clock.advance(REQUEST_TIMEOUT_S / len(self.request))
        self.assertFalse(wire.disconnecting)
        with capturedLogs() as events:
            self.clock.advance(REQUEST_TIMEOUT_S)
        self.assertTrue(wire.disconnecting)
        [event] = events
        self.assertEqual(
            event["error"], f"request not complete after {REQUEST_TIMEOUT_S}s"
        )
        self.assertEqual(wire.value(), b"")

    def test_deadline_counts_from_the_last_complete_request(self) -> None:
        """Requests completed in time keep the connection; the deadline of a
        partial one starts when it begins, even in the read that completed
        the one before (F9, G6)."""
        proto, wire = self.connect()
        for _ in range(5):
            proto.dataReceived(self.request[:3])
            self.clock.advance(REQUEST_TIMEOUT_S - 1)
            proto.dataReceived(self.request[3:] + self.request[:2])
            self.clock.advance(REQUEST_TIMEOUT_S - 1)
            proto.dataReceived(self.request[2:])
        self.assertFalse(wire.disconnecting)
        self.assertEqual(wire.value(), self.reply * 10)
        self.clock.advance(60)  # idle, nothing begun: the idle timeout applies
        self.assertFalse(wire.disconnecting)
        self.clock.advance(60)
        self.assertTrue(wire.disconnecting)

    def test_idle_connection_has_no_request_deadline(self) -> None:
        """A connection with no request begun is only subject to the idle
        timeout, however long past the request timeout (G6)."""
        proto, wire = self.connect()
        proto.dataReceived(self.request)
        self.clock.advance(59)
        self.assertFalse(wire.disconnecting)

    def test_paused_reading_stops_the_deadline(self) -> None:
        """While the daemon reads nothing from a connection (its replies are
        unread), its partial request is not held against it (F9)."""
        self.factory.max_pending_per_connection = 1
        self.lookup.slow[b"slow.example"] = slow = Deferred[Answer]()
        proto, wire = self.connect(SmallBufferTransport(10_000))
        proto.dataReceived(self.slow_request + self.request + self.request[:1])
        self.assertEqual(wire.producerState, "paused")
        self.clock.advance(REQUEST_TIMEOUT_S * 3)
        self.assertFalse(wire.disconnecting)
        slow.callback(Answer.notfound())
        self.assertEqual(wire.producerState, "producing")
        self.clock.advance(REQUEST_TIMEOUT_S - 0.5)
        self.assertFalse(wire.disconnecting)
        self.clock.advance(0.5)
        self.assertTrue(wire.disconnecting)

    def test_deadline_closes_after_answering(self) -> None:
        """Requests complete before the unfinished one are still answered,
        then the connection closes (F9)."""
        self.lookup.slow[b"slow.example"] = slow = Deferred[Answer]()
        proto, wire = self.connect()
        proto.dataReceived(self.slow_request + self.request[:2])
        self.clock.advance(REQUEST_TIMEOUT_S)
        self.assertFalse(wire.disconnecting)
        slow.callback(Answer.notfound())
        self.assertTrue(wire.disconnecting)
        self.assertEqual(wire.value(), self.notfound)


class TcpTableSlotTests(SlotTests):
    """The same over tcp_table lines (G15)."""

    protocol = TcpTableProtocol
    request = b"get example.com\n"
    reply = b"200 " + SECURE_TEXT[3:] + b"\n"
    slow_request = b"get slow.example\n"
    notfound = b"500 not found\n"
