"""Socketmap and tcp_table protocols over StringTransport (spec G1-G7, G15-G17, F9)."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer, TlsPolicyValue
from postfix_mtasts.protocols import (
    LookupFactory,
    SocketmapProtocol,
    TcpTableProtocol,
    _LookupProtocol,
)

SECURE = Answer.ok(TlsPolicyValue("secure", ("mx1.example.com",), "hostname"))
SECURE_TEXT = b"OK secure match=mx1.example.com servername=hostname"


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class FakeLookup:
    """Answers from a dict; keys listed in ``slow`` get a Deferred the test fires."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.slow: dict[bytes, Deferred[Answer]] = {}
        self.answers = {b"example.com": SECURE}

    def __call__(self, map_name: str, key: bytes) -> Answer | Deferred[Answer]:
        self.calls.append((map_name, key))
        if key == b"boom":
            raise RuntimeError("bug")
        if key in self.slow:
            return self.slow[key]
        return self.answers.get(key, Answer.notfound())


class ProtocolTestCase(SynchronousTestCase):
    protocol: type[_LookupProtocol] = SocketmapProtocol

    def setUp(self) -> None:
        self.clock = Clock()
        self.lookup = FakeLookup()
        self.factory = LookupFactory(
            self.protocol, self.lookup, self.clock, max_connections=2, idle_timeout_s=60
        )

    def connect(self) -> tuple[_LookupProtocol, StringTransport]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 0))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        proto.makeConnection(transport)
        return proto, transport

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
        """Connections past max_connections are closed at once (bounded connections)."""
        self.connect()
        self.connect()
        proto, transport = self.connect()
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.factory.connections, 2)
        proto.connectionLost()
        self.assertEqual(self.factory.connections, 2)

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
