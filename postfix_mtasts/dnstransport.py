# -*- test-case-name: tests.unit.test_txt -*-
"""One DNS question to one server over a Twisted UDP or TCP transport.

An exchange owns its Deferred, its timer and its cleanups; a reply counts
only if it comes from the server asked and answers the question sent
(spoofed, stray and malformed datagrams are ignored).  Used by
:class:`postfix_mtasts.dnsclient.DnsClient`.

With DNS 0x20 the query name's letters have a random case
(:mod:`postfix_mtasts.core.dnscase`).  A UDP reply must then echo the
question with exactly that case; one that answers our id and question in
another case (or none) ends the exchange with :class:`CaseNotEchoedError`,
and the client asks again over TCP, which an off-path spoofer cannot
answer.  Before a reply is parsed its question is put back in the case the
caller asked, so no name read from it (compressed names point into the
question) carries the random case into a log or a cache.
"""

from __future__ import annotations

import ipaddress
import struct
import typing
from collections.abc import Callable

from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IConnector, IDelayedCall, ITransport
from twisted.python.failure import Failure

from postfix_mtasts.core.dnsreply import DnsReplyError, Reply, read_reply

__all__ = [
    "CaseNotEchoedError",
    "DnsError",
    "DnsReactor",
    "DnsTimeoutError",
    "TcpExchange",
    "UdpExchange",
    "UdpOpener",
    "UdpPort",
]


class DnsError(Exception):
    """A query got no usable answer (spec A15 counts it as a DNS failure)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DnsTimeoutError(DnsError):
    """No server answered in time, after every attempt."""


class CaseNotEchoedError(DnsError):
    """A UDP reply answered our id and question, but not with the exact case
    of the query name (DNS 0x20): spoofed, or a server that folds case."""


_HEADER_BYTES = 12
#: Error replies that may come without the question (RFC 6891 §7).
_QUESTIONLESS_ERRORS = frozenset((1, 2, 4, 5))  # FORMERR SERVFAIL NOTIMP REFUSED
_QR = 0x8000
_OPCODE = 0x7800  # its bits in the header flags; QUERY is 0


class UdpPort(typing.Protocol):
    """What a question needs of its UDP socket: Twisted's ``listenUDP``
    port, or :class:`postfix_mtasts.udpsocket.UdpSocket`."""

    def connect(self, host: str, port: int) -> object: ...
    def write(self, datagram: bytes) -> object: ...
    def stopListening(self) -> object: ...  # noqa: N802 (Twisted's name)


#: Opens a question's UDP socket: ``listenUDP(port, protocol, interface)``.
UdpOpener = Callable[[int, protocol.DatagramProtocol, str], UdpPort]


class DnsReactor(typing.Protocol):
    """What the client needs of a reactor: IReactorUDP, IReactorTCP, IReactorTime."""

    def callLater(  # noqa: N802 (Twisted's names, here and below)
        self, delay: float, callable: Callable[..., object], *args: object
    ) -> IDelayedCall: ...
    def listenUDP(  # noqa: N802
        self, port: int, protocol: protocol.DatagramProtocol, interface: str = ...
    ) -> UdpPort: ...
    def connectTCP(  # noqa: N802
        self,
        host: str,
        port: int,
        factory: TcpExchange,
        timeout: float = ...,
        bindAddress: tuple[str, int] | None = ...,  # noqa: N803
    ) -> IConnector: ...


class _Exchange:
    """One question to one server: its Deferred, its timer and its cleanups.

    ``question`` is the question section as the caller asked it, before any
    case mixing; ``wire`` carries it in the case actually sent.
    """

    def __init__(
        self,
        reactor: DnsReactor,
        timeout_s: float,
        query_id: int,
        wire: bytes,
        server: tuple[str, int],
        question: bytes,
    ) -> None:
        self.query_id, self.wire, self.server = query_id, wire, server
        self._asked = question
        self._sent = wire[_HEADER_BYTES : _HEADER_BYTES + len(question)]
        self.deferred: Deferred[Reply] = Deferred(lambda _: self._close())
        self._done = False
        self._timeout_s = timeout_s
        timer = reactor.callLater(timeout_s, self._timed_out)
        self._cleanups: list[Callable[[], object]] = [
            lambda: timer.cancel() if timer.active() else None
        ]

    def on_close(self, cleanup: Callable[[], object]) -> None:
        self._cleanups.append(cleanup)

    def _timed_out(self) -> None:
        host = self.server[0]
        self.finish(DnsTimeoutError(f"no reply from {host} in {self._timeout_s}s"))

    def finish(self, result: Reply | DnsError) -> None:
        if not self._done:
            self._close()
            if isinstance(result, DnsError):
                self.deferred.errback(result)
            else:
                self.deferred.callback(result)

    def reply(self, wire: bytes) -> tuple[Reply | None, bool]:
        """``wire`` parsed if it answers our query, else None; and whether
        its question echoes the one sent octet for octet (DNS 0x20)."""
        end = _HEADER_BYTES + len(self._sent)
        echoed = wire[_HEADER_BYTES:end]
        exact = echoed == self._sent
        same_question = exact or echoed.lower() == self._sent.lower()
        if same_question:
            wire = wire[:_HEADER_BYTES] + self._asked + wire[end:]
        try:
            reply = read_reply(wire)
        except DnsReplyError:
            return None, False
        if self._answers(reply, same_question):
            return reply, exact
        return None, False

    def _answers(self, reply: Reply, same_question: bool) -> bool:
        """Whether ``reply`` is the response to our query, as dnspython's
        ``Message.is_response`` decides: our id, QR set, opcode QUERY, and
        our one question, or none at all with an error rcode.  The question
        was compared as octets (ASCII case aside) before parsing."""
        if reply.id != self.query_id or not reply.flags & _QR:
            return False
        if reply.flags & _OPCODE:
            return False
        if reply.question:
            return same_question and len(reply.question) == 1
        return reply.rcode in _QUESTIONLESS_ERRORS

    def _close(self) -> None:
        self._done = True
        cleanups, self._cleanups = self._cleanups, []
        for cleanup in cleanups:
            cleanup()


class UdpExchange(_Exchange, protocol.DatagramProtocol):
    """A UDP exchange; ``exact_case``: the reply must echo the question's
    case (DNS 0x20), else :class:`CaseNotEchoedError`."""

    noisy = False  # no "Starting protocol" line per query
    exact_case = False

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if addr[1] != self.server[1] or not _same_host(addr[0], self.server[0]):
            return  # not from the server we asked: spoofed or stray
        reply, exact = self.reply(datagram)
        if reply is None:  # junk, a wrong id or question: ignored
            return
        if self.exact_case and not exact:
            host = self.server[0]
            self.finish(CaseNotEchoedError(f"{host} did not echo the query case"))
        else:
            self.finish(reply)

    def connectionRefused(self) -> None:  # noqa: N802 (Twisted's name)
        # The socket is connected: an ICMP port unreachable ends the wait.
        self.finish(DnsError(f"{self.server[0]} port {self.server[1]} unreachable"))


class _TcpProtocol(protocol.Protocol):
    def __init__(self, exchange: TcpExchange) -> None:
        self._exchange = exchange
        self._buffer = b""

    def connectionMade(self) -> None:
        wire = self._exchange.wire
        typing.cast(ITransport, self.transport).write(
            struct.pack("!H", len(wire)) + wire
        )

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= 2:
            (size,) = struct.unpack("!H", self._buffer[:2])
            if len(self._buffer) >= 2 + size:
                reply, _ = self._exchange.reply(self._buffer[2 : 2 + size])
                host = self._exchange.server[0]
                bad = DnsError(f"malformed or mismatched TCP reply from {host}")
                self._exchange.finish(bad if reply is None else reply)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        host = self._exchange.server[0]
        self._exchange.finish(DnsError(f"TCP connection to {host} closed"))


class TcpExchange(_Exchange, protocol.ClientFactory[_TcpProtocol]):
    noisy = False  # no "Starting factory" line per query

    def buildProtocol(self, addr: IAddress | None) -> _TcpProtocol:
        return _TcpProtocol(self)

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        host, why = self.server[0], reason.getErrorMessage()
        self.finish(DnsError(f"TCP connect to {host}: {why}"))


def _same_host(a: str, b: str) -> bool:
    if a == b:  # the usual case: no address parsing per datagram
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False  # a name, not an address, and not the same text
