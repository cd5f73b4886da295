# -*- test-case-name: tests.unit.test_reportreceiver -*-
"""Receive TLS reports over HTTPS (RFC 8460 §3, §5.3; ``[reports] endpoint``).

A sender POSTs one report to the ``rua`` URI, as ``application/tlsrpt+gzip``
or ``application/tlsrpt+json``.  The receiver answers only that: another
path is a 404, another method a 405, another media type a 415, a body of
unknown length (no Content-Length, not chunked) a 411.  The body is never
held beyond ``max_body_bytes``: a Content-Length above it is refused (413)
before a byte of the body is read, and a chunked body is counted as it
arrives and refused the moment it passes the cap (:class:`_BoundedRequest`);
a refused connection is answered and closed.  The body is inflated with a
hard cap (:mod:`postfix_mtasts.core.gunzip`, so a gzip bomb is a 400),
read with the report reader's checks (:mod:`postfix_mtasts.core.tlsreport`)
and stored through the store's worker thread: 201 when new, 200 when the
same report was stored before (senders retry, §5.4), 503 when the store
fails (the sender keeps the report and retries).  One event is logged per
POST, with its outcome.  Connections are few (``max_connections``), idle
ones time out, and none lives longer than :data:`LIFETIME_TIMEOUTS`
timeouts, however slowly it trickles.
"""

from __future__ import annotations

from collections import Counter
from io import BytesIO
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from postfix_mtasts.core.config_reports import ReportsConfig
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.tlsreport import TlsReport
from postfix_mtasts.core.tlsreport_mail import REPORT_MEDIA_TYPES, decode_report
from postfix_mtasts.endpointservice import EndpointService
from postfix_mtasts.reportwriter import StoresReports

__all__ = [
    "LIFETIME_TIMEOUTS",
    "ReceiverService",
    "ReportResource",
    "receiver_service",
    "receiver_site",
]

#: A connection is closed this many ``timeout``s after it opened.
LIFETIME_TIMEOUTS = 4
#: A report POST is a request line and a few headers.
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 64
#: Seconds a sender is asked to wait before it retries after a 503.
RETRY_AFTER_S = 300

log = Logger()


class ReportResource(Resource):
    """POST ``path``: one report in, one status out; ``outcomes`` counts
    the answers by outcome word (stored, duplicate, refused, ...)."""

    isLeaf = True  # noqa: N815 (Twisted's names, here and below)

    def __init__(self, store: StoresReports, path: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._store = store
        self._path = path.encode("ascii")
        self.outcomes: Counter[str] = Counter()

    def render(self, request: Any) -> bytes | int:
        if request.path != self._path:
            return self.refuse(request, 404, "not_found", "no reports here")
        if request.method != b"POST":
            request.setHeader(b"allow", b"POST")
            return self.refuse(request, 405, "bad_method", "only POST")
        raw = request.getHeader(b"content-type") or b""
        media = raw.partition(b";")[0].decode("latin-1").strip().lower()
        if media not in REPORT_MEDIA_TYPES:
            return self.refuse(
                request,
                415,
                "bad_media_type",
                "expected application/tlsrpt+gzip or application/tlsrpt+json",
                detail=quote(raw),
            )
        coding = request.getHeader(b"transfer-encoding") or b""
        chunked = b"chunked" in coding.lower()
        if request.getHeader(b"content-length") is None and not chunked:
            return self.refuse(request, 411, "no_length", "Content-Length required")
        report = decode_report(request.content.getvalue())
        if not isinstance(report, TlsReport):
            return self.refuse(request, 400, "invalid", report.reason)
        self._store.add(report).addCallbacks(
            lambda new: self._stored(request, report, new),
            lambda failure: self._not_stored(request, report, failure),
        )
        return NOT_DONE_YET

    def refuse(
        self, request: Any, status: int, outcome: str, reason: str, detail: str = ""
    ) -> bytes:
        """Answer ``status`` with ``reason``; one event."""
        self.outcomes[outcome] += 1
        _log_refused(request, status, outcome, reason, detail)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return reason.encode("utf-8", "replace") + b"\n"

    def _stored(self, request: Any, report: TlsReport, new: bool) -> None:
        outcome = "stored" if new else "duplicate"
        self.outcomes[outcome] += 1
        log.info(
            "tls report {outcome} organization={organization} report_id={report_id}"
            " peer={peer}",
            outcome=outcome,
            organization=quote(report.organization),
            report_id=quote(report.report_id),
            peer=_peer(request),
        )
        _answer(request, 201 if new else 200, outcome)

    def _not_stored(self, request: Any, report: TlsReport, failure: Failure) -> None:
        self.outcomes["store_failed"] += 1
        log.error(
            "tls report not stored organization={organization}"
            " report_id={report_id} peer={peer}: {error}",
            organization=quote(report.organization),
            report_id=quote(report.report_id),
            peer=_peer(request),
            error=str(failure.value) or type(failure.value).__name__,
        )
        request.setHeader(b"retry-after", str(RETRY_AFTER_S).encode())
        _answer(request, 503, "the report store failed; try again later")


def _answer(request: Any, status: int, text: str) -> None:
    if request.finished or request._disconnected:  # the sender hung up
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.write(text.encode() + b"\n")
    request.finish()


def _log_refused(
    request: Any, status: int, outcome: str, reason: str, detail: str = ""
) -> None:
    log.warn(
        "tls report refused status={status} outcome={outcome} peer={peer}:"
        " {reason}{detail}",
        status=status,
        outcome=outcome,
        peer=_peer(request),
        reason=reason,
        detail=f" {detail}" if detail else "",
    )


def _peer(request: Any) -> str:
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
    def _site(self) -> _ReceiverSite:
        site: _ReceiverSite = self.channel.site  # type: ignore[attr-defined]
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
        self._site.resource.outcomes["too_large"] += 1
        _log_refused(self, 413, "too_large", reason)
        body = reason.encode() + b"\n"
        transport = self.channel.transport
        if transport is None:  # pragma: no cover - data comes from a transport
            return
        transport.write(
            b"HTTP/1.1 413 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (RESPONSES[413], len(body), body)
        )
        transport.loseConnection()


class _ReceiverChannel(HTTPChannel):
    totalHeadersSize = MAX_HEADER_BYTES  # noqa: N815
    maxHeaders = MAX_HEADERS  # noqa: N815
    site: _ReceiverSite
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


class _ReceiverSite(Site):
    """At most ``max_connections`` open; one more is closed at once."""

    noisy = False
    # The channel itself, not HTTP/2's switching proxy: HTTP/1.1 is enough.
    protocol = _ReceiverChannel  # type: ignore[assignment]
    requestFactory = _BoundedRequest  # noqa: N815

    def __init__(self, resource: ReportResource, config: ReportsConfig, reactor: Any):
        super().__init__(  # type: ignore[no-untyped-call]
            resource, timeout=config.timeout_s, reactor=reactor
        )
        self.resource = resource
        self.clock = reactor
        self.max_body_bytes = config.max_body_bytes
        self.max_connections = config.max_connections
        self.lifetime_s = config.timeout_s * LIFETIME_TIMEOUTS
        self.open = 0

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if self.open >= self.max_connections:
            return None
        return super().buildProtocol(addr)  # type: ignore[no-untyped-call]

    def log(self, request: Any) -> None:
        """No access log: each POST logs its own event."""


def receiver_site(config: ReportsConfig, store: StoresReports, reactor: Any) -> Site:
    return _ReceiverSite(ReportResource(store, config.path), config, reactor)


class ReceiverService(EndpointService):
    """Listens while it runs; closes the report store when it stops."""

    def __init__(self, endpoint: Any, site: Site, store: StoresReports) -> None:
        super().__init__(endpoint, site)
        self.store = store

    def stopService(self) -> Any:
        stopping = super().stopService()
        return stopping.addBoth(
            lambda result: self.store.close().addBoth(lambda _: result)
        )


def receiver_service(
    config: ReportsConfig, store: StoresReports, reactor: Any
) -> ReceiverService:
    """An unstarted service taking reports on ``config.endpoint``; it fails
    the start (CannotListenError, or OpenSSL's error for an ``ssl:`` key
    that cannot be read) when the endpoint cannot be used."""
    return ReceiverService(
        serverFromString(reactor, config.endpoint),
        receiver_site(config, store, reactor),
        store,
    )
