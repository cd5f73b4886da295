"""Answers sent at once on an idle connection, queued otherwise (G6, F9).

The transport is Twisted's real TCP connection class over one end of a
socketpair; a small reactor records which sockets it is asked to watch for
writing, so each test sees whether bytes went to the kernel at once or were
queued for the reactor's next iteration, and what the peer reads.
"""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer, TlsPolicyValue
from postfix_mtasts.protocols import LookupFactory, SocketmapProtocol
from postfix_mtasts.sendnow import ImmediateSender, sender_for

SECURE = Answer.ok(TlsPolicyValue("secure", ("mx1.example.com",), "hostname"))


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class WatchingReactor:
    """The part of a reactor a file descriptor calls: it records the writers
    it is asked to watch, and watches nothing."""

    def __init__(self) -> None:
        self.writers: list[object] = []
        self.writes_watched = 0

    def addWriter(self, writer: IWriteDescriptor) -> None:
        if writer not in self.writers:
            self.writers.append(writer)
            self.writes_watched += 1

    def removeWriter(self, writer: IWriteDescriptor) -> None:
        if writer in self.writers:
            self.writers.remove(writer)

    def addReader(self, reader: IReadDescriptor) -> None:
        pass

    def removeReader(self, reader: IReadDescriptor) -> None:
        pass


def read_all(peer: socket.socket) -> bytes:
    """What the peer can read now, without waiting."""
    out = b""
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


class Connected(SynchronousTestCase):
    def setUp(self) -> None:
        ours, self.peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(self.peer.close)
        self.peer.setblocking(False)
        self.reactor = WatchingReactor()
        self.conn = tcp.Connection(ours, Protocol(), self.reactor)  # type: ignore[arg-type]
        self.conn.connected = True  # as the reactor marks an accepted one
        self.send = sender_for(self.conn)

    def reactor_writes(self) -> None:
        """One reactor iteration's worth of writing, while it watches us."""
        if self.conn in self.reactor.writers:
            self.conn.doWrite()


class ImmediateSendTests(Connected):
    def test_idle_connection_sends_at_once(self) -> None:
        """With nothing queued the answer reaches the peer before the reactor
        runs again, and the socket is never watched for writing (G6)."""
        self.send(b"9:NOTFOUND ,")
        self.assertEqual(read_all(self.peer), b"9:NOTFOUND ,")
        self.assertEqual(self.reactor.writes_watched, 0)
        self.send(b"9:NOTFOUND ,")
        self.assertEqual(read_all(self.peer), b"9:NOTFOUND ,")
        self.assertEqual(self.reactor.writes_watched, 0)

    def test_queued_bytes_keep_their_place(self) -> None:
        """Bytes already queued go first: a later answer is queued behind
        them, not sent past them (G6 ordering)."""
        self.conn.write(b"first,")
        self.send(b"second,")
        self.assertEqual(read_all(self.peer), b"")
        self.reactor_writes()
        self.assertEqual(read_all(self.peer), b"first,second,")
        self.send(b"third,")  # the queue drained: at once again
        self.assertEqual(read_all(self.peer), b"third,")

    def test_full_kernel_buffer_queues_the_rest(self) -> None:
        """What the kernel does not take is queued in order; answers after
        it wait behind it, and the transport's buffer (flow control, F9)
        sees the queued part."""
        big = bytes(range(256)) * 16384  # 4 MiB, more than a socket buffer
        self.send(big)
        self.assertEqual(self.reactor.writers, [self.conn])
        self.assertGreater(self.conn._tempDataLen, 0)
        self.send(b"after,")
        got = b""
        for _ in range(10_000):  # bounded: lost bytes fail, never hang
            got += read_all(self.peer)
            if len(got) >= len(big) + len(b"after,"):
                break
            self.reactor_writes()
        self.assertEqual(got, big + b"after,")
        self.assertEqual(self.reactor.writers, [])

    def test_closing_connection_queues(self) -> None:
        """Once a close is under way the transport's write decides (it sends
        what it is given before the close completes)."""
        self.conn.loseConnection()
        self.send(b"last,")
        self.assertEqual(read_all(self.peer), b"")
        self.assertGreater(self.conn._tempDataLen, 0)

    def test_closed_connection_drops(self) -> None:
        """After the connection is lost nothing is sent and nothing queued."""
        self.conn.connected = False
        self.send(b"late,")
        self.assertEqual(read_all(self.peer), b"")
        self.assertEqual(self.conn._tempDataLen, 0)
        self.assertEqual(self.reactor.writes_watched, 0)

    def test_failed_send_left_to_the_transport(self) -> None:
        """A send that fails is queued: the transport meets the error on its
        next write and loses the connection its usual way."""
        self.conn.socket.shutdown(socket.SHUT_WR)
        self.send(b"lost,")
        self.assertEqual(self.reactor.writers, [self.conn])
        self.assertIsInstance(self.conn.doWrite(), ConnectionLost)

    def test_tls_connection_queues(self) -> None:
        """A connection that started TLS is written through the transport,
        which encrypts (our sockets never do: no bytes may skip it)."""

        class TlsLayer(Protocol):
            """Where a TLS transport's writes go to be encrypted."""

            def __init__(self) -> None:
                self.plaintext: list[bytes] = []

            def write(self, data: bytes) -> None:
                self.plaintext.append(data)

        layer = TlsLayer()
        self.conn.protocol = layer
        self.conn.TLS = True
        self.send(b"x,")
        self.assertEqual(read_all(self.peer), b"")
        self.assertEqual(layer.plaintext, [b"x,"])


class ChoiceTests(SynchronousTestCase):
    def test_other_transports_write(self) -> None:
        """A transport that is not a TCP or unix stream connection (a test's
        StringTransport) gets plain ``write``: ``send`` is ``write``."""
        transport = StringTransport()
        self.assertEqual(sender_for(transport), transport.write)

    def test_tcp_connection_sends_at_once(self) -> None:
        """A TCP or unix stream connection gets the immediate sender."""
        ours, peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        conn = tcp.Connection(ours, Protocol(), WatchingReactor())  # type: ignore[arg-type]
        send = sender_for(conn)
        self.assertIsInstance(getattr(send, "__self__", None), ImmediateSender)

    def test_unknown_transport_state_writes(self) -> None:
        """A connection class without the buffer state the sender reads (a
        different Twisted) gets plain ``write``, not a failing sender."""
        ours, peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        conn = tcp.Connection(ours, Protocol(), WatchingReactor())  # type: ignore[arg-type]
        del conn._tempDataLen
        self.assertEqual(sender_for(conn), conn.write)


class SocketmapOnSocketTests(Connected):
    """The socketmap protocol on a real connection."""

    def setUp(self) -> None:
        super().setUp()
        self.slow: Deferred[Answer] = Deferred()

        def lookup(name: str, key: bytes, source: object) -> Answer | Deferred[Answer]:
            return self.slow if key == b"slow.example" else SECURE

        factory = LookupFactory(
            SocketmapProtocol,
            lookup,
            Clock(),
            max_connections=2,
            idle_timeout_s=60,
        )
        self.proto = factory.buildProtocol(None)
        self.conn.protocol = self.proto
        self.proto.makeConnection(self.conn)

    def test_cached_answers_leave_during_the_read(self) -> None:
        """Pipelined cached lookups are answered, in order, in one send while
        their read is handled: no reactor iteration between (G4, G6)."""
        request = netstring(b"postfix example.com")
        self.proto.dataReceived(request * 3)
        reply = netstring(b"OK secure match=mx1.example.com servername=hostname")
        self.assertEqual(read_all(self.peer), reply * 3)
        self.assertEqual(self.reactor.writes_watched, 0)

    def test_one_request_a_read(self) -> None:
        """Postfix's usual read, one request, is answered at once, read
        after read (G4, G6)."""
        reply = netstring(b"OK secure match=mx1.example.com servername=hostname")
        for _ in range(3):
            self.proto.dataReceived(netstring(b"postfix example.com"))
            self.assertEqual(read_all(self.peer), reply)
        self.assertEqual(self.reactor.writes_watched, 0)

    def test_answer_waits_for_the_one_before(self) -> None:
        """A cached answer behind a lookup still under way is not sent past
        it: both go out, in order, when it ends (G6)."""
        self.proto.dataReceived(netstring(b"postfix slow.example"))
        self.proto.dataReceived(netstring(b"postfix example.com"))
        self.assertEqual(read_all(self.peer), b"")
        self.slow.callback(Answer.notfound())
        reply = netstring(b"OK secure match=mx1.example.com servername=hostname")
        self.assertEqual(read_all(self.peer), netstring(b"NOTFOUND ") + reply)
