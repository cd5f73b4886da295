# -*- test-case-name: tests.unit.test_udpsocket -*-
"""One DNS question's UDP socket, read by the reactor directly.

Each question gets a socket of its own, on a port the kernel picks at
random (the source port is half of what an off-path spoofer must guess),
connected to the server asked, so the kernel drops datagrams from anyone
else.  Twisted's ``listenUDP`` port does the same with more around it: two
log events, a protocol start and stop and a deferred close per port, about
half of a question's CPU on a discovery (issue 13).  This socket is only
what a question needs: it is registered as the reactor's reader, hands each
datagram to its protocol, and is unregistered and closed with the
question.  Its receiver is the question's DatagramProtocol; an ICMP "port
unreachable" from the peer is the receiver's ``connectionRefused``, as with
Twisted's port.
"""

from __future__ import annotations

import socket
import typing
from collections.abc import Callable

from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = [
    "MAX_DATAGRAM_BYTES",
    "READS_PER_EVENT",
    "DatagramReceiver",
    "UdpSocket",
    "open_udp_socket",
]

#: Read at most this much of one datagram (as Twisted's port): the queries
#: advertise 1232 octets (EDNS0), a longer reply is cut and fails to parse.
MAX_DATAGRAM_BYTES = 8192
#: Datagrams read per readiness event; more wait for the next one, so a
#: flood on one socket cannot hold the reactor thread.
READS_PER_EVENT = 16


class DatagramReceiver(typing.Protocol):
    """Where the datagrams go: a DatagramProtocol's two methods."""

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None: ...
    def connectionRefused(self) -> None: ...  # noqa: N802


@implementer(IReadDescriptor)
class UdpSocket:
    """A UDP socket whose datagrams go to ``protocol`` once connected."""

    def __init__(
        self, reactor: IReactorFDSet, protocol: DatagramReceiver, sock: socket.socket
    ) -> None:
        self._reactor = reactor
        self._protocol = protocol
        self._socket = sock
        self._reading = False

    def connect(self, host: str, port: int) -> None:
        """Send to, and receive from, ``host``:``port`` only; start reading."""
        self._socket.connect((host, port))
        if not self._reading:
            self._reading = True
            self._reactor.addReader(self)

    def write(self, datagram: bytes) -> None:
        """Send ``datagram`` to the connected peer; OSError if it cannot."""
        self._socket.send(datagram)

    def stopListening(self) -> None:  # noqa: N802 (the name of Twisted's port)
        """Stop reading and close; again is a no-op."""
        if self._reading:
            self._reading = False
            self._reactor.removeReader(self)
        self._socket.close()

    # IReadDescriptor

    def fileno(self) -> int:
        return self._socket.fileno()  # -1 once closed

    def logPrefix(self) -> str:  # noqa: N802 (Twisted's names, here and below)
        return "dns-udp"

    def doRead(self) -> None:  # noqa: N802
        for _ in range(READS_PER_EVENT):
            if not self._reading:  # the last datagram ended the question
                return
            try:
                datagram, address = self._socket.recvfrom(MAX_DATAGRAM_BYTES)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                self._protocol.connectionRefused()
                return
            except OSError:
                # An ICMP error of another kind for the peer: the wait for a
                # reply goes on, to the question's own timeout.
                return
            self._protocol.datagramReceived(datagram, address)

    def connectionLost(self, reason: Failure) -> None:
        self.stopListening()


def open_udp_socket(
    reactor: IReactorFDSet,
) -> Callable[[int, DatagramReceiver, str], UdpSocket]:
    """Opens a socket bound to ``interface`` (on ``port``, 0: one the kernel
    picks): ``listenUDP``'s signature, so a reactor's own may stand in."""

    def opener(port: int, protocol: DatagramReceiver, interface: str) -> UdpSocket:
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((interface, port))
        except OSError:
            sock.close()
            raise
        return UdpSocket(reactor, protocol, sock)

    return opener
