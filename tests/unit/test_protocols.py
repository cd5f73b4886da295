"""Socketmap and tcp_table protocols over StringTransport (spec G1-G7, G15-G17, F9)."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer, TlsPolicyValue
from postfix_mtasts.core.config import ServerConfig
from postfix_mtasts.core.socketmap import NetstringDecoder
from postfix_mtasts.protocols import (
    MAX_PENDING_PER_CONNECTION,
    LookupFactory,
    SocketmapProtocol,
    TcpTableProtocol,
    _LookupProtocol,
)

SECURE = Answer.ok(TlsPolicyValue("secure", ("mx1.example.com",), "hostname"))
SECURE_TEXT = b"OK secure match=mx1.example.com servername=hostname"
BOUND = MAX_PENDING_PER_CONNECTION  # lookups one connection may owe


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


def replies(transport: StringTransport) -> list[bytes]:
    """The netstring payloads written so far."""
    return NetstringDecoder(100_000).feed(transport.value())


class FakeLookup:
    """Answers from a dict; keys listed in ``slow`` get a Deferred the test
    fires; keys ending in ``.never`` get a new Deferred each, kept in
    ``waiting`` (oldest first) with their key."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.slow: dict[bytes, Deferred[Answer]] = {}
        self.waiting: list[tuple[bytes, Deferred[Answer]]] = []
        self.answers = {b"example.com": SECURE}

    def __call__(
        self, map_name: str, key: bytes, source: object = None
    ) -> Answer | Deferred[Answer]:
        self.calls.append((map_name, key))
        if key == b"boom":
            raise RuntimeError("bug")
        if key in self.slow:
            return self.slow[key]
        if key.endswith(b".never"):
            waiting: Deferred[Answer] = Deferred()
            self.waiting.append((key, waiting))
            return waiting
        return self.answers.get(key, Answer.notfound())

    def answer_oldest(self) -> None:
        """Fire the oldest waiting lookup with ``TEMP <its key>``."""
        key, waiting = self.waiting.pop(0)
        waiting.callback(Answer.temp(key.decode()))


class SmallBufferTransport(StringTransport):
    """A transport whose write buffer holds ``size`` bytes: past that it
    pauses its producer, as Twisted's does past its high-water mark.
    ``read()`` is the peer reading all of it, which resumes the producer."""

    def __init__(self, size: int) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.size = size
        self.received = b""
        self.producer_paused = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.value()) > self.size and not self.producer_paused:
            self.producer_paused = True
            assert self.producer is not None
            self.producer.pauseProducing()

    def read(self) -> None:
        self.received += self.value()
        self.clear()
        if self.producer_paused:
            self.producer_paused = False
            assert self.producer is not None
            self.producer.resumeProducing()


class ProtocolTestCase(SynchronousTestCase):
    protocol: type[_LookupProtocol] = SocketmapProtocol

    def setUp(self) -> None:
        self.clock = Clock()
        self.lookup = FakeLookup()
        self.factory = LookupFactory(
            self.protocol, self.lookup, self.clock, max_connections=2, idle_timeout_s=60
        )

    def connect(
        self, transport: StringTransport | None = None
    ) -> tuple[_LookupProtocol, StringTransport]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 0))
        if transport is None:
            peer = IPv4Address("TCP", "127.0.0.1", 40000)
            transport = StringTransport(peerAddress=peer)
        proto.makeConnection(transport)
        return proto, transport

    def feed_while_reading(
        self, proto: _LookupProtocol, transport: StringTransport, segments: list[bytes]
    ) -> list[bytes]:
        """Deliver ``segments`` one per read while the transport reads, as
        the reactor does; return those left when it stops reading."""
        segments = list(segments)
        while segments and transport.producerState == "producing":
            proto.dataReceived(segments.pop(0))
        return segments

    def feed_all_ways(self, data: bytes, expected: bytes) -> None:
        """Feed ``data`` whole and in every chunk size; the output never changes."""
        for size in range(1, len(data) + 1):
            proto, transport = self.connect()
            for start in range(0, len(data), size):
                proto.dataReceived(data[start : start + size])
            self.assertEqual(transport.value(), expected, f"chunk size {size}")
            proto.connectionLost()


class SocketmapTests(ProtocolTestCase):
    def test_one_request(self) -> None:
        """One netstring request gets one netstring reply, exact bytes (G1, G4)."""
        self.feed_all_ways(netstring(b"postfix example.com"), netstring(SECURE_TEXT))
        self.assertIn(("postfix", b"example.com"), self.lookup.calls)

    def test_many_requests_one_connection(self) -> None:
        """Several requests in one segment are answered in order (G6, K24)."""
        data = (
            netstring(b"postfix example.com") + netstring(b"postfix other.example") * 2
        )
        expected = netstring(SECURE_TEXT) + netstring(b"NOTFOUND ") * 2
        self.feed_all_ways(data, expected)

    def test_replies_in_request_order(self) -> None:
        """A slow first lookup holds back the fast second reply (G6 ordering)."""
        slow: Deferred[Answer] = Deferred()
        self.lookup.slow[b"slow.example"] = slow
        proto, transport = self.connect()
        proto.dataReceived(
            netstring(b"postfix slow.example") + netstring(b"postfix example.com")
        )
        self.assertEqual(transport.value(), b"")
        slow.callback(Answer.notfound())
        self.assertEqual(
            transport.value(), netstring(b"NOTFOUND ") + netstring(SECURE_TEXT)
        )

    def test_malformed_payload_perm(self) -> None:
        """A payload without a space gets PERM and the connection stays usable (G3)."""
        proto, transport = self.connect()
        proto.dataReceived(netstring(b"postfix") + netstring(b"postfix example.com"))
        value = transport.value()
        self.assertTrue(value.startswith(b"%d:PERM " % 0) is False)
        self.assertIn(b":PERM ", value)
        self.assertTrue(value.endswith(netstring(SECURE_TEXT)))
        self.assertFalse(transport.disconnecting)

    def test_framing_error_closes_after_answering(self) -> None:
        """Missing ',' closes the connection; the request before it is answered (G2, F9)."""
        proto, transport = self.connect()
        proto.dataReceived(netstring(b"postfix example.com") + b"5:abcdeX")
        self.assertEqual(transport.value(), netstring(SECURE_TEXT))
        self.assertTrue(transport.disconnecting)

    def test_oversize_length_closes(self) -> None:
        """A declared length over 10000 closes at once, without buffering (G7, F9)."""
        proto, transport = self.connect()
        proto.dataReceived(b"10001:")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.lookup.calls, [])

    def test_framing_error_waits_for_slow_answer(self) -> None:
        """After a framing error a pending answer is still written before closing."""
        slow: Deferred[Answer] = Deferred()
        self.lookup.slow[b"slow.example"] = slow
        proto, transport = self.connect()
        proto.dataReceived(netstring(b"postfix slow.example") + b"x")
        self.assertFalse(transport.disconnecting)
        slow.callback(SECURE)
        self.assertEqual(transport.value(), netstring(SECURE_TEXT))
        self.assertTrue(transport.disconnecting)

    def test_lookup_bug_answers_temp(self) -> None:
        """A lookup that raises answers TEMP and the connection survives."""
        proto, transport = self.connect()
        proto.dataReceived(
            netstring(b"postfix boom") + netstring(b"postfix example.com")
        )
        self.assertEqual(
            transport.value(),
            netstring(b"TEMP internal error") + netstring(SECURE_TEXT),
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_failed_deferred_answers_temp(self) -> None:
        """A lookup Deferred that fails answers TEMP (never crashes a connection)."""
        slow: Deferred[Answer] = Deferred()
        self.lookup.slow[b"slow.example"] = slow
        proto, transport = self.connect()
        proto.dataReceived(netstring(b"postfix slow.example"))
        slow.errback(RuntimeError("bug"))
        self.assertEqual(transport.value(), netstring(b"TEMP internal error"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_connection_limit(self) -> None:
        """A connection past max_connections is let in and answered; the one
        that made the least progress is aborted, and the count stays at the
        limit when it goes (F9; tests.unit.test_connections has the rest)."""
        first, first_transport = self.connect()
        self.connect()
        proto, transport = self.connect()
        self.assertTrue(first_transport.disconnected)
        self.assertEqual(self.factory.connections, 2)
        first.connectionLost()
        self.assertEqual(self.factory.connections, 2)
        proto.dataReceived(netstring(b"postfix example.com"))
        self.assertEqual(transport.value(), netstring(SECURE_TEXT))
        self.assertFalse(transport.disconnecting)

    def test_idle_timeout(self) -> None:
        """A connection silent for a whole idle period is closed; a request
        postpones it (closed between one and two periods after the last one)."""
        proto, transport = self.connect()
        self.clock.advance(30)
        proto.dataReceived(netstring(b"postfix example.com"))
        self.clock.advance(30)  # t=60: a request since the last check
        self.assertFalse(transport.disconnecting)
        self.clock.advance(59)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)  # t=120: silent since t=60
        self.assertTrue(transport.disconnecting)

    def test_silent_connection_closed(self) -> None:
        """A connection that never sends anything is closed after one period."""
        _, transport = self.connect()
        self.clock.advance(59)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_no_timeout_while_answer_pending(self) -> None:
        """A connection waiting for a slow answer is not closed as idle."""
        self.lookup.slow[b"slow.example"] = Deferred()
        proto, transport = self.connect()
        proto.dataReceived(netstring(b"postfix slow.example"))
        self.clock.advance(120)
        self.assertFalse(transport.disconnecting)


class TcpTableTests(ProtocolTestCase):
    protocol = TcpTableProtocol

    def test_get(self) -> None:
        """``get key`` answers 200 with the policy, for map "postfix" (G15)."""
        self.feed_all_ways(
            b"get example.com\n", SECURE_TEXT.replace(b"OK", b"200") + b"\n"
        )
        self.assertIn(("postfix", b"example.com"), self.lookup.calls)

    def test_notfound_and_pipelined(self) -> None:
        """Unknown domains answer 500; several lines answered in order (G15)."""
        proto, transport = self.connect()
        proto.dataReceived(b"get other.example\r\nget example.com\n")
        lines = transport.value().split(b"\n")
        self.assertTrue(lines[0].startswith(b"500 "))
        self.assertTrue(lines[1].startswith(b"200 secure"))

    def test_percent_decoding(self) -> None:
        """%XX escapes in the key are decoded before the lookup (G16)."""
        proto, _ = self.connect()
        proto.dataReceived(b"get b%C3%BCcher.example\n")
        self.assertIn(("postfix", "bücher.example".encode()), self.lookup.calls)

    def test_bad_request_temp(self) -> None:
        """A request other than ``get`` answers 400 (G15)."""
        proto, transport = self.connect()
        proto.dataReceived(b"put a b\n")
        self.assertTrue(transport.value().startswith(b"400 "))
        self.assertEqual(self.lookup.calls, [])

    def test_long_line_closes(self) -> None:
        """A request line over the limit closes the connection (F9)."""
        proto, transport = self.connect()
        proto.dataReceived(b"get " + b"a" * 20000)
        self.assertTrue(transport.disconnecting)

    def test_pipelined_lines_are_bounded(self) -> None:
        """tcp_table gets the same bound: 10,000 pipelined lines in one
        segment start max_pending lookups and pause reading (F9, G6)."""
        proto, transport = self.connect()
        proto.dataReceived(b"get slow.never\n" * 10_000)
        self.assertEqual(len(self.lookup.calls), BOUND)
        self.assertEqual(transport.producerState, "paused")
        while self.lookup.waiting:
            self.lookup.answer_oldest()
        self.assertEqual(transport.value(), b"400 slow.never\n" * 10_000)
        self.assertEqual(transport.producerState, "producing")


class BackpressureTests(ProtocolTestCase):
    """Per-connection bounds on work and output (F9, G6)."""

    def test_default_bound_is_the_config_default(self) -> None:
        """LookupFactory's max_pending_per_connection default is the one
        ``[server]`` documents, so both stay in step (F9)."""
        self.assertEqual(
            self.factory.max_pending_per_connection,
            ServerConfig().max_pending_per_connection,
        )

    def test_pipelined_unanswered_requests_are_bounded(self) -> None:
        """10,000 pipelined requests whose lookups do not answer, in one
        segment, start only max_pending lookups and pause reading; as answers
        come the held requests start, never more than max_pending owed, and
        every request is answered in request order (F9, G6)."""
        keys = [b"d%d.never" % i for i in range(10_000)]
        proto, transport = self.connect()
        proto.dataReceived(b"".join(netstring(b"postfix " + k) for k in keys))
        self.assertEqual(len(self.lookup.calls), BOUND)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(transport.value(), b"")
        answered = 0
        while self.lookup.waiting:
            self.lookup.answer_oldest()
            answered += 1
            self.assertLessEqual(len(self.lookup.calls) - answered, BOUND)
        self.assertEqual(replies(transport), [b"TEMP " + k for k in keys])
        self.assertEqual(transport.producerState, "producing")

    def test_slow_answer_bounds_the_queue_behind_it(self) -> None:
        """A slow lookup then 1,000 instant ones, one segment each, fed while
        the transport reads: the answers queued behind the slow one stop at
        max_pending, where reading pauses; it resumes when the slow answer
        comes, and the replies keep request order (F9, G6)."""
        slow: Deferred[Answer] = Deferred()
        self.lookup.slow[b"slow.example"] = slow
        proto, transport = self.connect()
        segments = [netstring(b"postfix slow.example")]
        segments += [netstring(b"postfix example.com")] * 1000
        rest = self.feed_while_reading(proto, transport, segments)
        self.assertEqual(len(self.lookup.calls), BOUND)
        self.assertEqual(len(rest), 1001 - BOUND)
        self.assertEqual(transport.value(), b"")
        slow.callback(Answer.notfound())
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(self.feed_while_reading(proto, transport, rest), [])
        self.assertEqual(
            transport.value(), netstring(b"NOTFOUND ") + netstring(SECURE_TEXT) * 1000
        )

    def test_slow_answer_then_one_big_segment(self) -> None:
        """The same with all requests in one segment: the instant requests
        past the bound wait unstarted until the slow answer comes (F9, G6)."""
        slow: Deferred[Answer] = Deferred()
        self.lookup.slow[b"slow.example"] = slow
        proto, transport = self.connect()
        proto.dataReceived(
            netstring(b"postfix slow.example")
            + netstring(b"postfix example.com") * 10_000
        )
        self.assertEqual(len(self.lookup.calls), BOUND)
        self.assertEqual(transport.producerState, "paused")
        slow.callback(Answer.notfound())
        self.assertEqual(len(self.lookup.calls), 10_001)
        self.assertEqual(
            transport.value(), netstring(b"NOTFOUND ") + netstring(SECURE_TEXT) * 10_000
        )
        self.assertEqual(transport.producerState, "producing")

    def test_full_write_buffer_pauses_reading(self) -> None:
        """The protocol is its transport's streaming producer: while the
        write buffer is full (the transport pauses it) reading stops and a
        request already read waits unstarted; when the buffer drains it is
        answered and reading resumes.  It unregisters when the connection
        is lost (F9)."""
        proto, transport = self.connect()
        self.assertIs(transport.producer, proto)
        self.assertTrue(transport.streaming)
        proto.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        proto.dataReceived(netstring(b"postfix example.com"))
        self.assertEqual(self.lookup.calls, [])
        self.assertEqual(transport.value(), b"")
        proto.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(transport.value(), netstring(SECURE_TEXT))
        proto.connectionLost()
        self.assertIsNone(transport.producer)

    def test_instant_answers_wait_for_a_reader(self) -> None:
        """10,000 pipelined requests with cached answers in one segment go
        out in batches of at most max_pending replies, stopping while the
        transport's write buffer is full; each time the peer reads, more
        follow, all in request order (F9, G6)."""
        transport = SmallBufferTransport(4096)
        proto, _ = self.connect(transport)
        reply = netstring(SECURE_TEXT)
        proto.dataReceived(netstring(b"postfix example.com") * 10_000)
        while transport.producer_paused:
            self.assertLessEqual(len(transport.value()), 4096 + BOUND * len(reply))
            self.assertEqual(transport.producerState, "paused")
            transport.read()
        transport.read()
        self.assertEqual(transport.received, reply * 10_000)
        self.assertEqual(transport.producerState, "producing")

    def test_unread_replies_abort(self) -> None:
        """A peer that never reads its replies (the transport keeps the
        protocol paused) is aborted once its output has not moved for a
        whole idle period (between one and two after it stopped):
        loseConnection would wait for it forever (F9)."""
        proto, transport = self.connect()
        proto.dataReceived(netstring(b"postfix example.com"))
        proto.pauseProducing()
        self.clock.advance(60)  # a request since the last check
        self.clock.advance(59)
        self.assertFalse(transport.disconnecting)
        with capturedLogs() as events:  # t=120: paused since t=60
            self.clock.advance(1)
        self.assertTrue(transport.disconnected)  # abortConnection
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["peer"], "127.0.0.1:40000")

    def test_slow_reader_is_not_aborted(self) -> None:
        """A peer that reads, however slowly, is not aborted: only a whole
        idle period without the write buffer draining counts (F9)."""
        proto, transport = self.connect()
        proto.dataReceived(netstring(b"postfix example.com"))
        proto.pauseProducing()
        self.clock.advance(60)
        self.clock.advance(30)
        proto.resumeProducing()
        proto.pauseProducing()
        self.clock.advance(30)  # t=120: paused, but it drained since t=60
        self.assertFalse(transport.disconnecting)
        self.clock.advance(60)  # t=180: paused since t=120 without a drain
        self.assertTrue(transport.disconnected)

    def test_idle_close_that_never_completes_is_aborted(self) -> None:
        """An idle close first unregisters the producer (Twisted would hold
        the close back for it), then waits for unwritten output; still
        connected one idle period later, the connection is aborted.  One
        that goes away in time leaves no timer behind (F9)."""
        _, transport = self.connect()
        proto, closed = self.connect()
        self.clock.advance(60)
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(transport.producer)
        self.assertFalse(transport.disconnected)
        proto.connectionLost()
        self.clock.advance(60)
        self.assertTrue(transport.disconnected)
        self.assertFalse(closed.disconnected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_held_requests_before_framing_error_are_answered(self) -> None:
        """Requests framed before a framing error but held back by the bound
        are still answered, in order, before the connection closes (G2, F9)."""
        self.factory.max_pending_per_connection = 2
        slow: Deferred[Answer] = Deferred()
        self.lookup.slow[b"slow.example"] = slow
        proto, transport = self.connect()
        proto.dataReceived(
            netstring(b"postfix slow.example")
            + netstring(b"postfix example.com") * 4
            + b"5:abcdeX"
        )
        self.assertEqual(len(self.lookup.calls), 2)
        self.assertFalse(transport.disconnecting)
        slow.callback(Answer.notfound())
        self.assertEqual(
            transport.value(), netstring(b"NOTFOUND ") + netstring(SECURE_TEXT) * 4
        )
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(transport.producer)
