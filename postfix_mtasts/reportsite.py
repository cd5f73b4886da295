# -*- test-case-name: tests.unit.test_reportreceiver -*-
"""The report receiver's HTTP site: what one sender can make it hold.

twisted.web's Request keeps a body over 100 kB in a temporary file and
takes any length.  :class:`_BoundedRequest` holds it in memory up to the
site's ``max_body_bytes`` and no further: a Content-Length over it is
answered 413 before a byte of the body is read (and without the automatic
``100 Continue``), a chunked body is counted as it arrives and answered 413
the moment it passes the cap; the connection is then closed and what
still arrives dropped.  Headers are bounded, connections are few (one over
``max_connections`` is closed as soon as it is made, also under an
``ssl:`` endpoint's TLS layer), idle ones time out, and none lives longer
than :data:`LIFETIME_TIMEOUTS` timeouts however slowly it trickles.
"""

from __future__ import annotations

from collections import Counter
from io import BytesIO
from typing import Any, cast

from twisted.internet.interfaces import IAddress, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from postfix_mtasts.core.config_reports import ReportsConfig

__all__ = ["LIFETIME_TIMEOUTS", "ReceiverSite", "log_refused", "peer"]

#: A connection is closed this many ``timeout``s after it opened.
LIFETIME_TIMEOUTS = 4
#: A report POST is a request line and a few headers.
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 64

log = Logger()


def log_refused(
    request: Any, status: int, outcome: str, reason: str, detail: str = ""
) -> None:
    log.warn(
        "tls report refused status={status} outcome={outcome} peer={peer}:"
        " {reason}{detail}",
        status=status,
        outcome=outcome,
        peer=peer(request),
        reason=reason,
        detail=f" {detail}" if detail else "",
    )


def peer(request: Any) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return f"{host}:{address.port}" if host is not None else str(address)


class _BoundedRequest(Request):
    """A request whose body is held up to the site's cap and no further:
    a Content-Length over it is answered 413 before the body is read, a
    chunked body is answered 413 once it passes it; either way the rest is
    dropped as it comes and the connection closed."""

    refused = False
    _received = 0

    @property
    def _site(self) -> ReceiverSite:
        site: ReceiverSite = self.channel.site  # type: ignore[attr-defined]
        return site

    def gotLength(self, length: int | None) -> None:  # noqa: N802
        self._body = self.content = BytesIO()  # never a temporary file
        cap = self._site.max_body_bytes
        if length is not None and length > cap:
            # No "100 Continue" after the answer: the body is not wanted.
            self.requestHeaders.removeHeader(b"expect")
            self._refuse_body(f"Content-Length {length} is over {cap} bytes")

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        if self.refused:
            return
        self._received += len(data)
        cap = self._site.max_body_bytes
        if self._received > cap:
            self._body = self.content = BytesIO()
            self._refuse_body(f"body over {cap} bytes")
            return
        self._body.write(data)

    def process(self) -> None:
        if not self.refused:
            super().process()  # type: ignore[no-untyped-call]

    def _refuse_body(self, reason: str) -> None:
        self.refused = True
        self._site.outcomes["too_large"] += 1
        log_refused(self, 413, "too_large", reason)
        body = reason.encode() + b"\n"
        # Data arrived, so the channel has its transport.
        transport = cast(ITransport, self.channel.transport)
        transport.write(
            b"HTTP/1.1 413 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (RESPONSES[413], len(body), body)
        )
        transport.loseConnection()


class _ReceiverChannel(HTTPChannel):
    totalHeadersSize = MAX_HEADER_BYTES  # noqa: N815
    maxHeaders = MAX_HEADERS  # noqa: N815
    site: ReceiverSite
    _lifetime: Any = None

    def connectionMade(self) -> None:
        self.site.open += 1
        super().connectionMade()  # type: ignore[no-untyped-call]
        self._lifetime = self.site.clock.callLater(self.site.lifetime_s, self._too_long)

    def _too_long(self) -> None:
        self._lifetime = None
        self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.open -= 1
        if self._lifetime is not None and self._lifetime.active():
            self._lifetime.cancel()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class _TurnedAway(Protocol):
    """A connection over the cap: closed as soon as it is made."""

    def connectionMade(self) -> None:
        self.transport.abortConnection()  # type: ignore[union-attr]


class ReceiverSite(Site):
    """At most ``max_connections`` open; one more is closed at once."""

    noisy = False
    # The channel itself, not HTTP/2's switching proxy: HTTP/1.1 is enough.
    protocol = _ReceiverChannel  # type: ignore[assignment]
    requestFactory = _BoundedRequest  # noqa: N815

    def __init__(
        self,
        resource: Resource,
        outcomes: Counter[str],
        config: ReportsConfig,
        reactor: Any,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            resource, timeout=config.timeout_s, reactor=reactor
        )
        self.outcomes = outcomes  # the resource's, counting refusals here too
        self.clock = reactor
        self.max_body_bytes = config.max_body_bytes
        self.max_connections = config.max_connections
        self.lifetime_s = config.timeout_s * LIFETIME_TIMEOUTS
        self.open = 0

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if self.open >= self.max_connections:
            # Not None: an ssl: endpoint's TLS wrapper would wrap it anyway.
            return _TurnedAway()
        return super().buildProtocol(addr)  # type: ignore[no-untyped-call]

    def log(self, request: Any) -> None:
        """No access log: each POST logs its own event."""
