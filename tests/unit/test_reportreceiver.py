"""The HTTPS report receiver (RFC 8460 §3, §5.3; issue 14): POST one
report as application/tlsrpt+gzip or +json to the configured path; every
other request is refused with the status HTTP names for it, no body is held
beyond the cap, and a report the store could not keep is a 503 the sender
retries (§5.4), never a silent loss."""

from __future__ import annotations

import gzip
import sqlite3
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from postfix_mtasts.core.config import ReportsConfig, parse_config
from postfix_mtasts.core.tlsreport import MAX_REPORT_BYTES, TlsReport
from postfix_mtasts.reportreceiver import (
    ReceiverError,
    ReportResource,
    open_receiver,
    receiver_service,
    receiver_site,
)
from postfix_mtasts.reportsite import LIFETIME_TIMEOUTS

from .tlsrpt_samples import GOOGLE, report_bytes

PATH = "/tlsrpt"
URL = "http://receiver.example/tlsrpt"
GZ = {b"content-type": [b"application/tlsrpt+gzip"]}
JSON = {b"content-type": [b"application/tlsrpt+json"]}
CAP = 4096
CONFIG = ReportsConfig(
    endpoint="tcp:0", max_body_bytes=CAP, max_connections=3, timeout_s=10.0
)


class FakeStore:
    """Keeps reports by (organization, report-id) in a dict; fails while
    ``broken``; or leaves the answer pending while ``hold``."""

    def __init__(self) -> None:
        self.reports: dict[tuple[str, str], TlsReport] = {}
        self.broken = False
        self.hold: Deferred[bool] | None = None
        self.closed = 0

    def add(self, report: TlsReport) -> Deferred[bool]:
        if self.broken:
            return fail(sqlite3.OperationalError("disk I/O error"))
        if self.hold is not None:
            return self.hold
        key = (report.organization, report.report_id)
        new = key not in self.reports
        self.reports.setdefault(key, report)
        return succeed(new)

    def close(self) -> Deferred[None]:
        self.closed += 1
        return succeed(None)


@implementer(IOpenSSLServerConnectionCreator)
class ServerContext:
    """TLS server connections with a test CA's certificate, as an ssl:
    endpoint makes them."""

    def __init__(self) -> None:
        leaf = trustme.CA().issue_cert("receiver.example")
        self.context = SSL.Context(SSL.TLS_METHOD)
        self.context.use_certificate(
            x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
        )
        self.context.use_privatekey(
            load_pem_private_key(leaf.private_key_pem.bytes(), None)  # type: ignore[arg-type]
        )

    def serverConnectionForTLS(self, protocol: object) -> SSL.Connection:
        return SSL.Connection(self.context, None)


class ResourceTests(SynchronousTestCase):
    """The resource through treq's in-memory client."""

    def setUp(self) -> None:
        self.store = FakeStore()
        self.resource = ReportResource(self.store, PATH)
        self.http: Any = StubTreq(self.resource)

    def post(
        self, body: bytes, headers: dict[bytes, list[bytes]] | None = None, **kw: Any
    ) -> tuple[int, bytes, Any]:
        d = self.http.request(
            kw.pop("method", "POST"),
            kw.pop("url", URL),
            data=body,
            headers=GZ if headers is None else headers,
        )
        self.http.flush()
        response = self.successResultOf(d)
        text = self.successResultOf(self.http.content(response))
        return response.code, text, response.headers

    def test_gzip_report_stored(self) -> None:
        """A gzip report POSTed as application/tlsrpt+gzip (RFC 8460 §5.3)
        is stored and answered 201, with one info event naming the sender's
        organization, the report-id and the outcome."""
        with capturedLogs() as events:
            code, _, _ = self.post(gzip.compress(GOOGLE.read_bytes()))
        self.assertEqual(code, 201)
        [(organization, report_id)] = self.store.reports
        self.assertEqual(organization, "Google Inc.")
        [event] = [e for e in events if "tls report" in e["log_format"]]
        self.assertEqual(event["outcome"], "stored")
        self.assertEqual(event["organization"], repr("Google Inc."))
        self.assertEqual(event["report_id"], repr(report_id))
        self.assertEqual(self.resource.outcomes["stored"], 1)

    def test_json_report_stored(self) -> None:
        """A plain JSON report as application/tlsrpt+json is stored (§5.3);
        a media type in another case or with a parameter is the same type."""
        code, _, _ = self.post(report_bytes(report_id="a"), JSON)
        self.assertEqual(code, 201)
        headers = {b"content-type": [b"Application/TLSRPT+JSON; charset=utf-8"]}
        code, _, _ = self.post(report_bytes(report_id="b"), headers)
        self.assertEqual(code, 201)
        self.assertEqual(len(self.store.reports), 2)

    def test_duplicate_is_200(self) -> None:
        """The same report again (a sender's retry, §5.4; the same
        organization and report-id, §4.4) is answered 200 and counted as a
        duplicate, not stored twice."""
        body = gzip.compress(report_bytes())
        self.assertEqual(self.post(body)[0], 201)
        code, text, _ = self.post(body)
        self.assertEqual((code, text), (200, b"duplicate\n"))
        self.assertEqual(len(self.store.reports), 1)
        self.assertEqual(self.resource.outcomes["duplicate"], 1)

    def test_only_post(self) -> None:
        """Reports are POSTed (§5.3): GET, PUT and HEAD are 405 with Allow."""
        for method in ("GET", "PUT", "HEAD"):
            code, _, headers = self.post(b"", method=method)
            self.assertEqual(code, 405, method)
            self.assertEqual(headers.getRawHeaders(b"allow"), [b"POST"])
        self.assertEqual(self.store.reports, {})

    def test_other_paths_404(self) -> None:
        """Only the configured path takes reports."""
        for url in ("http://receiver.example/", URL + "/", URL + "x"):
            code, _, _ = self.post(gzip.compress(report_bytes()), url=url)
            self.assertEqual(code, 404, url)
        self.assertEqual(self.store.reports, {})

    def test_other_media_types_415(self) -> None:
        """Only the two media types of §5.3: application/json, gzip or none
        at all are 415, with one warning naming the type."""
        for kind in (b"application/json", b"application/gzip", None):
            headers: dict[bytes, list[bytes]] = (
                {} if kind is None else {b"content-type": [kind]}
            )
            with capturedLogs() as events:
                code, _, _ = self.post(report_bytes(), headers)
            self.assertEqual(code, 415, kind)
            [event] = events
            self.assertEqual(event["outcome"], "bad_media_type")
        self.assertEqual(self.resource.outcomes["bad_media_type"], 3)

    def test_invalid_reports_400(self) -> None:
        """A body that is no report (RFC 8460 §7: untrusted input) is a 400
        with one short reason, and one warning: invalid JSON, a report
        missing a field, truncated gzip, an empty body."""
        good = gzip.compress(report_bytes())
        for body, headers, reason in (
            (b"{not json", JSON, b"not JSON"),
            (report_bytes(policies="x"), JSON, b"not an array"),
            (good[: len(good) // 2], GZ, b"truncated gzip"),
            (b"", GZ, b"not JSON"),
        ):
            with capturedLogs() as events:
                code, text, _ = self.post(body, headers)
            self.assertEqual(code, 400, body[:20])
            self.assertIn(reason, text)
            self.assertEqual(text.count(b"\n"), 1)
            self.assertEqual([e["outcome"] for e in events], ["invalid"])
        self.assertEqual(self.store.reports, {})

    def test_gzip_bomb_400(self) -> None:
        """A small body that would inflate past the report cap is refused
        (400) once the cap is passed, never inflated whole (core.gunzip)."""
        bomb = gzip.compress(b" " * (MAX_REPORT_BYTES + 1024), 9)
        self.assertLess(len(bomb), CAP * 16)
        code, text, _ = self.post(bomb)
        self.assertEqual(code, 400)
        self.assertIn(b"more than", text)

    def test_store_failure_503(self) -> None:
        """When the store fails the report is answered 503 with
        Retry-After, so the sender keeps it and retries (§5.4), and one
        error names it; the retry, once the store works, stores it."""
        self.store.broken = True
        body = gzip.compress(report_bytes())
        with capturedLogs() as events:
            code, _, headers = self.post(body)
        self.assertEqual(code, 503)
        self.assertEqual(headers.getRawHeaders(b"retry-after"), [b"300"])
        [event] = events
        self.assertEqual(event["log_level"].name, "error")
        self.assertIn("disk I/O error", event["error"])
        self.assertEqual(self.resource.outcomes["store_failed"], 1)
        self.store.broken = False
        self.assertEqual(self.post(body)[0], 201)


def http_post(body: bytes, *, length: int | None = None, extra: bytes = b"") -> bytes:
    """A report POST's bytes, with Content-Length ``length`` (default:
    the body's)."""
    size = len(body) if length is None else length
    return (
        b"POST /tlsrpt HTTP/1.1\r\nHost: r\r\nContent-Type: application/tlsrpt+gzip\r\n"
        b"Content-Length: %d\r\n%s\r\n%s" % (size, extra, body)
    )


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)


CHUNKED_HEAD = (
    b"POST /tlsrpt HTTP/1.1\r\nHost: r\r\nContent-Type: application/tlsrpt+gzip\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


class SiteTests(SynchronousTestCase):
    """The site over a StringTransport: sizes, connections and time."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = FakeStore()
        self.site: Any = receiver_site(CONFIG, self.store, self.clock)

    def connect(self) -> tuple[Any, StringTransport]:
        proto = self.site.buildProtocol(None)
        assert proto is not None
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_stored_whole_and_byte_by_byte(self) -> None:
        """A POST read at once or one byte at a time is the same report,
        stored once (201, then 200)."""
        data = http_post(gzip.compress(report_bytes()))
        for step, status in ((len(data), b"201"), (1, b"200")):
            proto, transport = self.connect()
            for i in range(0, len(data), step):
                proto.dataReceived(data[i : i + step])
            self.assertTrue(
                transport.value().startswith(b"HTTP/1.1 " + status), transport.value()
            )
        self.assertEqual(len(self.store.reports), 1)

    def test_content_length_over_cap_413_before_body(self) -> None:
        """A Content-Length over max_body_bytes is answered 413 as soon as
        the headers end, with no 100 Continue, and the connection closed:
        no byte of the body is read or held."""
        proto, transport = self.connect()
        with capturedLogs() as events:
            proto.dataReceived(
                http_post(b"", length=CAP + 1, extra=b"Expect: 100-continue\r\n")
            )
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 413 "), out)
        self.assertNotIn(b"100 Continue", out)
        self.assertTrue(transport.disconnecting)
        self.assertEqual([e["outcome"] for e in events], ["too_large"])
        proto.dataReceived(b"x" * CAP)  # still arriving: dropped
        self.assertEqual(proto.requests[0].content.getvalue(), b"")
        self.assertEqual(self.store.reports, {})

    def test_chunked_over_cap_413_while_arriving(self) -> None:
        """A chunked body is counted as it arrives: past the cap it is
        answered 413 at once, before its end, and nothing of it is kept."""
        proto, transport = self.connect()
        proto.dataReceived(CHUNKED_HEAD + chunked(b"a" * (CAP - 10)))
        self.assertEqual(transport.value(), b"")
        proto.dataReceived(chunked(b"b" * 11))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(transport.disconnecting)
        proto.dataReceived(chunked(b"c" * CAP) + b"0\r\n\r\n")
        self.assertEqual(proto.requests[0].content.getvalue(), b"")
        self.assertEqual(transport.value().count(b"HTTP/1.1"), 1)
        self.assertEqual(self.store.reports, {})

    def test_chunked_within_cap_stored(self) -> None:
        """A chunked body within the cap is read and stored (201)."""
        body = gzip.compress(report_bytes())
        proto, transport = self.connect()
        half = len(body) // 2
        proto.dataReceived(CHUNKED_HEAD + chunked(body[:half], body[half:]))
        proto.dataReceived(b"0\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 201 "))

    def test_length_required_411(self) -> None:
        """A POST with neither Content-Length nor chunked coding is 411."""
        proto, transport = self.connect()
        proto.dataReceived(
            b"POST /tlsrpt HTTP/1.1\r\nHost: r\r\n"
            b"Content-Type: application/tlsrpt+gzip\r\n\r\n"
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 411 "))

    def test_headers_bounded(self) -> None:
        """Headers beyond the bound close the connection: too many is a
        400, one too long is dropped unanswered; nothing is stored."""
        proto, transport = self.connect()
        proto.dataReceived(http_post(b"{}", extra=b"X-Pad: " + b"a" * 20000 + b"\r\n"))
        self.assertTrue(transport.disconnecting)
        self.assertNotIn(b"HTTP/1.1 2", transport.value())
        proto, transport = self.connect()
        proto.dataReceived(http_post(b"{}", extra=b"X-Pad: a\r\n" * 100))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 "))
        self.assertEqual(self.store.reports, {})

    def test_sender_gone_before_store_answers(self) -> None:
        """A sender that hangs up while the store writes gets no answer
        written to a closed connection; the report is still stored."""
        self.store.hold = Deferred()
        proto, transport = self.connect()
        proto.dataReceived(http_post(gzip.compress(report_bytes())))
        proto.connectionLost(Failure(ConnectionDone()))
        self.store.hold.callback(True)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.site.resource.outcomes["stored"], 1)

    def test_connection_limit(self) -> None:
        """At most max_connections at once: one more is closed as soon as
        it is made, also behind an ssl: endpoint's TLS layer; a closed one
        frees its place."""
        protos = [self.connect()[0] for _ in range(CONFIG.max_connections)]
        _, transport = self.connect()
        self.assertTrue(transport.disconnecting)
        tls = TLSMemoryBIOFactory(ServerContext(), False, self.site)
        wrapped = tls.buildProtocol(None)
        over = StringTransport()
        wrapped.makeConnection(over)
        self.assertTrue(over.disconnecting)
        protos[0].connectionLost(None)
        _, transport = self.connect()
        self.assertFalse(transport.disconnecting)

    def test_idle_connection_times_out(self) -> None:
        """A connection that sends nothing is closed after the timeout."""
        _, transport = self.connect()
        self.clock.advance(CONFIG.timeout_s + 1)
        self.assertTrue(transport.disconnecting)

    def test_trickling_connection_ends(self) -> None:
        """A sender trickling a byte before each timeout is aborted
        LIFETIME_TIMEOUTS timeouts after it connected: no slow sender holds
        a connection slot for ever."""
        proto, transport = self.connect()
        data = CHUNKED_HEAD + b"1\r\nx\r\n" * 1000
        for i in range(LIFETIME_TIMEOUTS * 2 - 1):
            proto.dataReceived(data[i : i + 1])
            self.clock.advance(CONFIG.timeout_s / 2)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(data[i + 1 : i + 2])
        self.clock.advance(CONFIG.timeout_s / 2)
        self.assertTrue(transport.disconnected or transport.disconnecting)
        proto.connectionLost(None)
        self.assertEqual(self.site.open, 0)


class ServiceTests(SynchronousTestCase):
    def test_listens_and_closes_the_store(self) -> None:
        """The service listens on the endpoint while it runs, and closes
        the report store when it stops."""
        reactor = MemoryReactorClock()
        store = FakeStore()
        service = receiver_service(CONFIG, store, reactor)
        service.startService()
        [(port, _, _, _)] = reactor.tcpServers
        self.assertEqual(port, 0)
        self.successResultOf(service.stopService())
        self.assertEqual(store.closed, 1)

    def test_bind_failure_raised(self) -> None:
        """An endpoint that cannot be bound fails the start."""

        class Refusing(MemoryReactorClock):
            def listenTCP(self, *args: Any, **kw: Any) -> Any:
                raise CannotListenError("", 1, OSError("in use"))

        service = receiver_service(CONFIG, FakeStore(), Refusing())
        self.assertRaises(CannotListenError, service.startService)

    def test_open_receiver(self) -> None:
        """The receiver opens the configured store ([reports] store, else
        beside [store] path); a store or an ssl: key that cannot be used is
        a ReceiverError naming the key, with the store closed again."""
        opened: list[str] = []
        store = FakeStore()

        async def open_store(path: str, reactor: Any) -> FakeStore:
            opened.append(path)
            if path.endswith("bad.sqlite3"):
                raise sqlite3.DatabaseError("file is not a database")
            return store

        def receiver(store_path: str, **reports: Any) -> Deferred[Any]:
            config = parse_config(
                '[store]\npath = "/var/lib/x/policies.sqlite3"\n[reports]\n'
                + "".join(f'{k} = "{v}"\n' for k, v in reports.items())
                + (f'store = "{store_path}"\n' if store_path else "")
            )
            return Deferred.fromCoroutine(
                open_receiver(config, MemoryReactorClock(), open_store)
            )

        service = self.successResultOf(
            receiver("", endpoint="tcp:8080:interface=127.0.0.1")
        )
        self.assertEqual(opened, ["/var/lib/x/tlsrpt.sqlite3"])
        self.assertIs(service.store, store)
        error = self.failureResultOf(receiver("/srv/bad.sqlite3"), ReceiverError)
        self.assertIn("reports.store: cannot use /srv/bad.sqlite3", str(error.value))
        error = self.failureResultOf(
            receiver("/srv/r.sqlite3", endpoint="ssl:8443:privateKey=/nonexistent.pem"),
            ReceiverError,
        )
        self.assertTrue(str(error.value).startswith("reports.endpoint: ssl:8443"))
        self.assertEqual(store.closed, 1)
