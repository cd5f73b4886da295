"""A DNS question's UDP socket, read by the reactor (issue 13; spec A15).

Real sockets on the loopback interface, a MemoryReactor for the reader
registrations: each test waits (select, bounded) for the kernel to make a
datagram readable, then calls doRead as the reactor would.
"""

from __future__ import annotations

import select
import socket

from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.udpsocket import READS_PER_EVENT, UdpSocket, open_udp_socket

WAIT_S = 5.0


class Receiver:
    """Records what the socket hands over; may stop it on the first datagram."""

    def __init__(self) -> None:
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []
        self.refused = 0
        self.stop_on_first: UdpSocket | None = None

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((datagram, addr))
        if self.stop_on_first is not None:
            self.stop_on_first.stopListening()

    def connectionRefused(self) -> None:
        self.refused += 1


def readable(sock: UdpSocket) -> None:
    ready, _, _ = select.select([sock.fileno()], [], [], WAIT_S)
    assert ready, "nothing to read"


class UdpSocketTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactor()
        self.server = self.udp("127.0.0.1")
        self.receiver = Receiver()

    def udp(self, host: str) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.settimeout(WAIT_S)
        sock.bind((host, 0))
        return sock

    def question(self, interface: str = "127.0.0.1") -> UdpSocket:
        sock = open_udp_socket(self.reactor)(0, self.receiver, interface)
        self.addCleanup(sock.stopListening)
        return sock

    def test_one_question(self) -> None:
        """The question is sent from a port of its own to the server asked,
        read only once connected, the reply handed over with the server's
        address; closing unregisters the reader, and again does nothing."""
        sock = self.question()
        self.assertEqual(self.reactor.readers, set())
        sock.connect(*self.server.getsockname())
        self.assertEqual(self.reactor.readers, {sock})
        sock.write(b"query")
        datagram, client = self.server.recvfrom(512)
        self.assertEqual(datagram, b"query")
        self.assertNotEqual(client[1], 0)
        self.server.sendto(b"reply", client)
        readable(sock)
        sock.doRead()
        self.assertEqual(
            self.receiver.datagrams, [(b"reply", self.server.getsockname())]
        )
        sock.doRead()  # nothing more: no datagram, no error
        self.assertEqual(len(self.receiver.datagrams), 1)
        sock.stopListening()
        self.assertEqual(self.reactor.readers, set())
        self.assertEqual(sock.fileno(), -1)
        sock.stopListening()
        self.assertEqual(self.reactor.readers, set())

    def test_random_port_per_question(self) -> None:
        """Two questions never share a source port (a spoofer must guess it)."""
        ports = set()
        for _ in range(2):
            sock = self.question()
            sock.connect(*self.server.getsockname())
            sock.write(b"q")
            ports.add(self.server.recvfrom(512)[1][1])
        self.assertEqual(len(ports), 2)

    def test_others_dropped(self) -> None:
        """A datagram from any address but the server's never arrives: the
        socket is connected, the kernel drops it (A15: spoofed replies)."""
        sock = self.question()
        sock.connect(*self.server.getsockname())
        sock.write(b"q")
        _, client = self.server.recvfrom(512)
        stranger = self.udp("127.0.0.1")
        stranger.sendto(b"spoofed", client)
        self.server.sendto(b"genuine", client)
        readable(sock)
        sock.doRead()
        self.assertEqual([d for d, _ in self.receiver.datagrams], [b"genuine"])

    def test_refused(self) -> None:
        """An ICMP port unreachable from the server is connectionRefused."""
        closed = self.udp("127.0.0.1")
        address = closed.getsockname()
        closed.close()
        sock = self.question()
        sock.connect(*address)
        sock.write(b"q")
        readable(sock)
        sock.doRead()
        self.assertEqual(self.receiver.refused, 1)
        self.assertEqual(self.receiver.datagrams, [])

    def test_reads_per_event_bounded(self) -> None:
        """One readiness event reads at most READS_PER_EVENT datagrams: a
        flood on one socket cannot hold the reactor thread."""
        sock = self.question()
        sock.connect(*self.server.getsockname())
        sock.write(b"q")
        _, client = self.server.recvfrom(512)
        for n in range(READS_PER_EVENT + 4):
            self.server.sendto(b"%d" % n, client)
        readable(sock)
        sock.doRead()
        self.assertEqual(len(self.receiver.datagrams), READS_PER_EVENT)
        sock.doRead()
        self.assertEqual(len(self.receiver.datagrams), READS_PER_EVENT + 4)

    def test_stopped_by_its_datagram(self) -> None:
        """A datagram that ends the question is the last one read."""
        sock = self.question()
        self.receiver.stop_on_first = sock
        sock.connect(*self.server.getsockname())
        sock.write(b"q")
        _, client = self.server.recvfrom(512)
        for _ in range(3):
            self.server.sendto(b"reply", client)
        readable(sock)
        sock.doRead()
        self.assertEqual(len(self.receiver.datagrams), 1)
        self.assertEqual(self.reactor.readers, set())
        self.assertEqual(sock.fileno(), -1)

    def test_connection_lost_closes(self) -> None:
        """The reactor's connectionLost (a doRead that raised) closes it."""
        sock = self.question()
        sock.connect(*self.server.getsockname())
        sock.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual(self.reactor.readers, set())
        self.assertEqual(sock.fileno(), -1)
        self.assertEqual(sock.logPrefix(), "dns-udp")

    def test_ipv6(self) -> None:
        """An IPv6 source address makes an IPv6 socket."""
        server = self.udp("::1")
        sock = self.question("::1")
        sock.connect(*server.getsockname()[:2])
        sock.write(b"q6")
        datagram, client = server.recvfrom(512)
        self.assertEqual(datagram, b"q6")
        server.sendto(b"r6", client)
        readable(sock)
        sock.doRead()
        self.assertEqual(self.receiver.datagrams[0][0], b"r6")

    def test_bind_failure(self) -> None:
        """An interface that is not this host's: OSError, nothing registered
        (the client answers it as a DNS error)."""
        opener = open_udp_socket(self.reactor)
        self.assertRaises(OSError, opener, 0, self.receiver, "192.0.2.1")
        self.assertEqual(self.reactor.readers, set())

    def test_connect_again(self) -> None:
        """Connecting again moves the peer; the reader stays registered once."""
        sock = self.question()
        sock.connect(*self.server.getsockname())
        other = self.udp("127.0.0.1")
        sock.connect(*other.getsockname())
        self.assertEqual(self.reactor.readers, {sock})
        sock.write(b"q")
        self.assertEqual(other.recvfrom(512)[0], b"q")


class UnreachableSocket:
    """A socket whose peer's network is unreachable (an ICMP error that is
    not "port unreachable")."""

    def __init__(self) -> None:
        self.closed = False

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        raise OSError(113, "No route to host")

    def connect(self, address: tuple[str, int]) -> None:
        pass

    def fileno(self) -> int:
        return -1 if self.closed else 7

    def close(self) -> None:
        self.closed = True


class UdpSocketErrorTests(SynchronousTestCase):
    def test_other_icmp_errors_wait(self) -> None:
        """Another ICMP error is neither a reply nor a refusal: the question
        waits for its own timeout (another server may yet be asked)."""
        receiver = Receiver()
        reactor = MemoryReactor()
        sock = UdpSocket(reactor, receiver, UnreachableSocket())  # type: ignore[arg-type]
        sock.connect("192.0.2.53", 53)
        sock.doRead()
        self.assertEqual((receiver.datagrams, receiver.refused), ([], 0))
        self.assertEqual(reactor.readers, {sock})
