# -*- test-case-name: tests.unit.test_reportreceiver -*-
"""Receive TLS reports over HTTPS (RFC 8460 §3, §5.3; ``[reports] endpoint``).

A sender POSTs one report to the ``rua`` URI, as ``application/tlsrpt+gzip``
or ``application/tlsrpt+json``.  The receiver answers only that: another
path is a 404, another method a 405, another media type a 415, a body of
unknown length (no Content-Length, not chunked) a 411; a body over the cap
is a 413 before it is held (:mod:`postfix_mtasts.reportsite`, which also
bounds connections and time).  The body is inflated with a hard cap
(:mod:`postfix_mtasts.core.gunzip`, so a gzip bomb is a 400), read with the
report reader's checks (:mod:`postfix_mtasts.core.tlsreport`) and stored
through the store's worker thread: 201 when new, 200 when the same report
was stored before (senders retry, §5.4), 503 when the store fails (the
sender keeps the report and retries).  One event is logged per POST, with
its outcome.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from postfix_mtasts.core.config import Config
from postfix_mtasts.core.config_reports import ReportsConfig
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.tlsreport import TlsReport
from postfix_mtasts.core.tlsreport_mail import REPORT_MEDIA_TYPES, decode_report
from postfix_mtasts.endpointservice import EndpointService
from postfix_mtasts.reportsite import ReceiverSite, log_refused, peer
from postfix_mtasts.reportstore import default_store_path
from postfix_mtasts.reportwriter import StoresReports, open_report_store

__all__ = [
    "ReceiverError",
    "ReceiverService",
    "ReportResource",
    "open_receiver",
    "receiver_service",
    "receiver_site",
]

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
        gone: list[Failure] = []  # the sender hung up before the answer
        request.notifyFinish().addErrback(gone.append)
        self._store.add(report).addCallbacks(
            lambda new: self._stored(request, gone, report, new),
            lambda failure: self._not_stored(request, gone, report, failure),
        )
        return NOT_DONE_YET

    def refuse(
        self, request: Any, status: int, outcome: str, reason: str, detail: str = ""
    ) -> bytes:
        """Answer ``status`` with ``reason``; one event."""
        self.outcomes[outcome] += 1
        log_refused(request, status, outcome, reason, detail)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return reason.encode("utf-8", "replace") + b"\n"

    def _stored(
        self, request: Any, gone: list[Failure], report: TlsReport, new: bool
    ) -> None:
        outcome = "stored" if new else "duplicate"
        self.outcomes[outcome] += 1
        log.info(
            "tls report {outcome} organization={organization} report_id={report_id}"
            " peer={peer}",
            outcome=outcome,
            organization=quote(report.organization),
            report_id=quote(report.report_id),
            peer=peer(request),
        )
        _answer(request, gone, 201 if new else 200, outcome)

    def _not_stored(
        self, request: Any, gone: list[Failure], report: TlsReport, failure: Failure
    ) -> None:
        self.outcomes["store_failed"] += 1
        log.error(
            "tls report not stored organization={organization}"
            " report_id={report_id} peer={peer}: {error}",
            organization=quote(report.organization),
            report_id=quote(report.report_id),
            peer=peer(request),
            error=str(failure.value) or type(failure.value).__name__,
        )
        request.setHeader(b"retry-after", str(RETRY_AFTER_S).encode())
        _answer(request, gone, 503, "the report store failed; try again later")


def _answer(request: Any, gone: list[Failure], status: int, text: str) -> None:
    if gone:  # nobody to tell; a retry will be a duplicate
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.write(text.encode() + b"\n")
    request.finish()


def receiver_site(
    config: ReportsConfig, store: StoresReports, reactor: Any
) -> ReceiverSite:
    resource = ReportResource(store, config.path)
    return ReceiverSite(resource, resource.outcomes, config, reactor)


class ReceiverService(EndpointService):
    """Listens while it runs; closes the report store when it stops."""

    def __init__(self, endpoint: Any, site: ReceiverSite, store: StoresReports) -> None:
        super().__init__(endpoint, site)
        self.store = store
        #: The answers given, by outcome word.
        self.outcomes = site.outcomes

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


class ReceiverError(Exception):
    """The report store or the endpoint's key cannot be used."""


async def open_receiver(
    config: Config,
    reactor: Any,
    open_store: Callable[[str, Any], Awaitable[StoresReports]] = open_report_store,
) -> ReceiverService:
    """Open the report store (``open_store``: in its thread) and make the
    unstarted receiver for ``[reports]``; ReceiverError names the key at
    fault."""
    path = config.reports.store or default_store_path(config.store.path) or ""
    try:
        store = await open_store(path, reactor)
    except Exception as e:  # not a report store, unreadable, a directory
        raise ReceiverError(f"reports.store: cannot use {path}: {e}") from None
    try:
        return receiver_service(config.reports, store, reactor)
    except Exception as e:  # serverFromString reads an ssl: key and certificate
        await store.close()
        raise ReceiverError(
            f"reports.endpoint: {config.reports.endpoint}: {e}"
        ) from None
