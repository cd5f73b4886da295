# -*- test-case-name: tests.unit.test_txt -*-
"""One DNS question to one server over a Twisted UDP or TCP transport.

An exchange owns its Deferred, its timer and its cleanups; a reply counts
only if it comes from the server asked and answers the question sent
(spoofed, stray and malformed datagrams are ignored).  Used by
:class:`postfix_mtasts.dnsclient.DnsClient`.
"""

from __future__ import annotations

import ipaddress
import struct
import typing
from collections.abc import Callable

import dns.exception
import dns.message
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IConnector, IDelayedCall, ITransport
from twisted.python.failure import Failure

__all__ = [
    "DnsError",
    "DnsReactor",
    "DnsTimeoutError",
    "TcpExchange",
    "UdpExchange",
]


class DnsError(Exception):
    """A query got no usable answer (spec A15 counts it as a DNS failure)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DnsTimeoutError(DnsError):
    """No server answered in time, after every attempt."""


class _UdpPort(typing.Protocol):
    def write(self, datagram: bytes, addr: tuple[str, int]) -> object: ...
    def stopListening(self) -> object: ...  # noqa: N802 (Twisted's name)


class DnsReactor(typing.Protocol):
    """What the client needs of a reactor: IReactorUDP, IReactorTCP, IReactorTime."""

    def callLater(  # noqa: N802 (Twisted's names, here and below)
        self, delay: float, callable: Callable[..., object], *args: object
    ) -> IDelayedCall: ...
    def listenUDP(  # noqa: N802
        self, port: int, protocol: protocol.DatagramProtocol, interface: str = ...
    ) -> _UdpPort: ...
    def connectTCP(  # noqa: N802
        self, host: str, port: int, factory: TcpExchange, timeout: float = ...
    ) -> IConnector: ...


class _Exchange:
    """One question to one server: its Deferred, its timer and its cleanups."""

    def __init__(
        self,
        reactor: DnsReactor,
        timeout_s: float,
        query: dns.message.Message,
        wire: bytes,
        server: tuple[str, int],
    ) -> None:
        self.query, self.wire, self.server = query, wire, server
        self.deferred: Deferred[dns.message.Message] = Deferred(lambda _: self._close())
        self._done = False
        error = DnsTimeoutError(f"no reply from {server[0]} in {timeout_s}s")
        timer = reactor.callLater(timeout_s, self.finish, error)
        self._cleanups: list[Callable[[], object]] = [
            lambda: timer.cancel() if timer.active() else None
        ]

    def on_close(self, cleanup: Callable[[], object]) -> None:
        self._cleanups.append(cleanup)

    def finish(self, result: dns.message.Message | DnsError) -> None:
        if not self._done:
            self._close()
            if isinstance(result, DnsError):
                self.deferred.errback(result)
            else:
                self.deferred.callback(result)

    def reply(self, wire: bytes) -> dns.message.Message | None:
        """``wire`` parsed if it answers our query, else None."""
        try:
            reply = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError):
            return None
        return reply if self.query.is_response(reply) else None

    def _close(self) -> None:
        self._done = True
        cleanups, self._cleanups = self._cleanups, []
        for cleanup in cleanups:
            cleanup()


class UdpExchange(_Exchange, protocol.DatagramProtocol):
    noisy = False  # no "Starting protocol" line per query

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if addr[1] != self.server[1] or not _same_host(addr[0], self.server[0]):
            return  # not from the server we asked: spoofed or stray
        reply = self.reply(datagram)
        if reply is not None:  # junk, a wrong id or question: ignored
            self.finish(reply)


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
                reply = self._exchange.reply(self._buffer[2 : 2 + size])
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
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b
