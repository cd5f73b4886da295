"""Tests for postfix_mtasts.httpbounds: a policy host's response head is
bounded in bytes, lines and line length (spec B12, issue 9), and a fetch that
ends early says how (B7).

The real Twisted HTTP/1.1 client protocol and parser run on a
StringTransport; the fetch goes through HttpsPolicyFetcher as in the daemon,
with a Clock for its timeout.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

from twisted.internet import error as net_error
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import HTTPClientParser, Request, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent
from zope.interface import implementer

from postfix_mtasts.fetch import HttpsPolicyFetcher
from postfix_mtasts.fetch_errors import (
    FetchError,
    FetchHeadersTooLargeError,
    FetchIncompleteError,
    FetchTimeoutError,
)
from postfix_mtasts.httpbounds import (
    MAX_RESPONSE_HEADER_BYTES,
    MAX_RESPONSE_HEADER_LINE_BYTES,
    MAX_RESPONSE_HEADER_LINES,
    BoundedHTTP11ClientProtocol,
)

POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n"
STATUS = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"


def head(*lines: bytes, length: int | None = len(POLICY)) -> bytes:
    """A 200 text/plain head with these extra header lines."""
    extra = b"".join(line + b"\r\n" for line in lines)
    if length is not None:
        extra += b"Content-Length: %d\r\n" % length
    return STATUS + extra + b"\r\n"


def filler(total: int) -> bytes:
    """One header line of exactly ``total`` bytes, CRLF included."""
    return b"X-Filler: " + b"a" * (total - len(b"X-Filler: \r\n"))


class AbortingTransport(StringTransport):
    """A StringTransport that records abortConnection apart from close."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


@implementer(IAgent)
class ProtocolAgent:
    """An IAgent that sends each request on one bounded protocol connected
    to an AbortingTransport, as a persistent connection would."""

    def __init__(self) -> None:
        self.quiescent: list[Any] = []
        self.protocol = BoundedHTTP11ClientProtocol(self.quiescent.append)
        self.transport = AbortingTransport()
        self.protocol.makeConnection(self.transport)

    def request(self, method, uri, headers=None, bodyProducer=None):  # noqa: N803
        headers = Headers() if headers is None else headers.copy()
        headers.setRawHeaders(b"Host", [b"mta-sts.example.com"])
        request = Request(method, b"/.well-known/mta-sts.txt", headers, None, True)
        return self.protocol.request(request)

    def receive(self, data: bytes, chunk: int | None = None) -> None:
        """``data`` as the server sends it: whole, or ``chunk`` bytes at a time."""
        step = chunk or len(data) or 1
        for i in range(0, len(data), step):
            self.protocol.dataReceived(data[i : i + step])

    def lose(self, reason: Exception | None = None) -> None:
        """The connection ends, as the reactor reports it after a close or
        an abort."""
        self.protocol.connectionLost(Failure(reason or net_error.ConnectionDone()))


class BoundsTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()

    def fetch(self) -> tuple[ProtocolAgent, Deferred[bytes]]:
        agent = ProtocolAgent()
        fetcher = HttpsPolicyFetcher(agent, self.clock)
        return agent, fetcher.fetch("example.com")

    def refused(self, data: bytes, chunk: int | None = None) -> FetchError:
        """Feeds ``data``; the connection must be aborted and the fetch fail
        with FetchHeadersTooLargeError once the reactor reports the loss."""
        agent, d = self.fetch()
        agent.receive(data, chunk)
        self.assertTrue(agent.transport.aborted)
        self.assertNoResult(d)
        agent.lose(net_error.ConnectionAborted())
        error = self.failureResultOf(d, FetchHeadersTooLargeError).value
        self.assertEqual(error.report_type, "sts-policy-fetch-error")
        self.assertEqual(agent.quiescent, [])  # never reusable
        assert isinstance(error, FetchError)
        return error

    def accepted(self, data: bytes, chunk: int | None = None) -> bytes:
        agent, d = self.fetch()
        agent.receive(data, chunk)
        self.assertFalse(agent.transport.aborted)
        return self.successResultOf(d)


class HeaderFloodTests(BoundsTestCase):
    def test_flood_of_long_lines_aborted(self):
        """A 200 followed by 1 kB header lines without end is aborted past
        32 KiB with a reason for one log line (B12, issue 9), whole or in
        chunks of any size."""
        flood = STATUS + (b"X-Flood: " + b"a" * 1015 + b"\r\n") * 64
        for chunk in (None, 1, 7, 1000, 4096, 16384):
            error = self.refused(flood, chunk)
            self.assertEqual(
                error.reason,
                f"response headers exceed {MAX_RESPONSE_HEADER_BYTES} bytes",
            )

    def test_flood_of_short_lines_aborted(self):
        """Tiny header lines are bounded by their number (B12, issue 9)."""
        flood = STATUS + b"A: b\r\n" * 1000
        for chunk in (None, 1, 5, 4096):
            error = self.refused(flood, chunk)
            self.assertEqual(
                error.reason,
                f"response headers exceed {MAX_RESPONSE_HEADER_LINES} lines",
            )

    def test_one_endless_line_aborted(self):
        """A header line that never ends is bounded by the line length, with
        its own reason rather than Twisted's silent close (B12)."""
        error = self.refused(STATUS + b"X-Long: " + b"a" * 100_000, 4096)
        limit = MAX_RESPONSE_HEADER_LINE_BYTES
        self.assertEqual(error.reason, f"a response header line exceeds {limit} bytes")

    def test_line_bound_below_twisteds(self):
        """Our line bound bites before Twisted's parser drops the line without
        a reason; fails if Twisted lowers its own (B12)."""
        self.assertLess(MAX_RESPONSE_HEADER_LINE_BYTES, HTTPClientParser.MAX_LENGTH)

    def test_interim_responses_count(self):
        """Endless 100 Continue heads share the final head's bounds (B12)."""
        self.refused(b"HTTP/1.1 100 Continue\r\n\r\n" * 2000, 4096)

    def test_flood_memory_bounded(self):
        """A megabyte of header lines leaves well under 64 KiB allocated
        (the bound plus the parser's own objects); unbounded, the headers
        alone would hold the whole megabyte (issue 9: 57.7 -> 415 MiB)."""
        agent, d = self.fetch()
        line = b"X-Flood: " + b"a" * 1015 + b"\r\n"
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            agent.receive(STATUS)
            for _ in range(1024):
                agent.receive(line)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        self.assertLess(held, 64 * 1024)
        agent.lose(net_error.ConnectionAborted())
        self.failureResultOf(d, FetchHeadersTooLargeError)

    def test_data_after_refusal_ignored(self):
        """Bytes that arrive after the abort are not parsed (B12)."""
        agent, d = self.fetch()
        agent.receive(STATUS + b"A: b\r\n" * 200)
        agent.receive(b"\r\n" + POLICY)  # would have ended the head
        agent.lose()
        self.failureResultOf(d, FetchHeadersTooLargeError)


class WithinBoundsTests(BoundsTestCase):
    def test_many_small_headers_accepted(self):
        """Exactly 100 header lines are accepted (B12)."""
        extra = [b"X-H%d: v" % i for i in range(MAX_RESPONSE_HEADER_LINES - 2)]
        data = head(*extra) + POLICY  # + Content-Type and Content-Length
        for chunk in (None, 1, 3, 4096):
            self.assertEqual(self.accepted(data, chunk), POLICY)

    def test_one_line_more_refused(self):
        """101 header lines are refused (B12)."""
        extra = [b"X-H%d: v" % i for i in range(MAX_RESPONSE_HEADER_LINES - 1)]
        self.refused(head(*extra) + POLICY)

    def test_exact_byte_bound_accepted(self):
        """A head of exactly 32 KiB is accepted, one byte more is refused (B12)."""
        lines = [filler(8000)] * 3 + [filler(7000)]
        size = len(head(*lines, filler(1000)))
        last = filler(1000 + MAX_RESPONSE_HEADER_BYTES - size)
        exact = head(*lines, last)
        self.assertEqual(len(exact), MAX_RESPONSE_HEADER_BYTES)
        for chunk in (None, 1, 1000):
            self.assertEqual(self.accepted(exact + POLICY, chunk), POLICY)
        over = head(*lines, last + b"a")
        self.refused(over + POLICY)

    def test_exact_line_bound_accepted(self):
        """A header line of exactly 8 KiB with CRLF is accepted (B12)."""
        data = head(filler(MAX_RESPONSE_HEADER_LINE_BYTES)) + POLICY
        self.assertEqual(self.accepted(data), POLICY)
        self.refused(head(filler(MAX_RESPONSE_HEADER_LINE_BYTES + 1)) + POLICY)

    def test_body_in_the_same_read_not_counted(self):
        """A 60 KB body that arrives with the head, in one read, is body, not
        head (B12: only the body cap applies to it)."""
        body = b"#" * 60_000 + b"\n" + POLICY
        agent, d = self.fetch()
        agent.receive(head(length=len(body)) + body)
        self.assertEqual(self.successResultOf(d), body)
        self.assertFalse(agent.transport.aborted)

    def test_each_response_has_its_own_bounds(self):
        """A reused connection counts each response's head afresh (B12)."""
        agent = ProtocolAgent()
        fetcher = HttpsPolicyFetcher(agent, self.clock)
        data = head(*[filler(4000)] * 5) + POLICY  # 20 kB head
        for _ in range(3):
            d = fetcher.fetch("example.com")
            agent.receive(data)
            self.assertEqual(self.successResultOf(d), POLICY)
        self.assertEqual(len(agent.quiescent), 3)
        self.assertFalse(agent.transport.aborted)


class SlowHeadTests(BoundsTestCase):
    def test_head_at_one_byte_a_second_times_out(self):
        """A head dripped at one byte a second ends at the fetch timeout,
        with the connection aborted (B12, G14)."""
        agent, d = self.fetch()
        drip = STATUS + b"X-Slow: " + b"a" * 100
        for byte in drip[:20]:
            agent.receive(bytes([byte]))
            self.clock.advance(1)
        self.failureResultOf(d, FetchTimeoutError)
        self.assertTrue(agent.transport.aborted)


class EarlyEndTests(BoundsTestCase):
    """The reasons an early-ended fetch logs, from the real parser (B7)."""

    def ended(self, data: bytes, reason: Exception) -> str:
        agent, d = self.fetch()
        agent.receive(data)
        agent.lose(reason)
        error = self.failureResultOf(d, FetchIncompleteError).value
        assert isinstance(error, FetchError)
        self.assertEqual(error.report_type, "sts-policy-fetch-error")
        return error.reason

    def test_content_length_lie(self):
        """A body shorter than its Content-Length says how short (B7, B12)."""
        data = head(length=456) + b"x" * 123
        self.assertEqual(
            self.ended(data, net_error.ConnectionDone()),
            "connection closed after 123 of 456 body bytes",
        )
        self.assertEqual(
            self.ended(data, net_error.ConnectionLost()),
            "connection lost after 123 of 456 body bytes",
        )

    def test_unfinished_chunked_body(self):
        """A chunked body cut before its last chunk (B7)."""
        data = head(b"Transfer-Encoding: chunked", length=None) + b"5\r\nhello\r\n"
        self.assertEqual(
            self.ended(data, net_error.ConnectionLost()),
            "connection lost after 5 body bytes, unfinished",
        )

    def test_no_response(self):
        """A connection closed before any byte of a response (B16)."""
        reason = self.ended(b"", net_error.ConnectionDone())
        self.assertEqual(reason, "connection closed before any response")

    def test_partial_head(self):
        """A connection reset in the middle of the head (B16)."""
        reason = self.ended(STATUS, net_error.ConnectionLost())
        self.assertEqual(reason, "connection lost during the response headers")

    def test_malformed_status_line(self):
        """A status line that is not HTTP is named, quoted (B7)."""
        agent, d = self.fetch()
        agent.receive(b"SSH-2.0-OpenSSH_9.6\r\n")
        agent.lose()
        error = self.failureResultOf(d, FetchError).value
        assert isinstance(error, FetchError)
        self.assertEqual(
            error.reason,
            "malformed response: wrong number of parts b'SSH-2.0-OpenSSH_9.6'",
        )


class ReuseTests(SynchronousTestCase):
    def test_finished_response_leaves_the_connection_reusable(self):
        """A complete response leaves the connection quiescent for reuse."""
        agent = ProtocolAgent()
        d = agent.request(b"GET", b"/", Headers())
        agent.receive(head() + POLICY)
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        body: list[bytes] = []

        class Collect:
            def makeConnection(self, transport):
                pass

            def dataReceived(self, data):
                body.append(data)

            def connectionLost(self, reason):
                body.append(b"" if reason.check(ResponseDone) else b"!")

        response.deliverBody(Collect())
        self.assertEqual(b"".join(body), POLICY)
        self.assertEqual(agent.quiescent, [agent.protocol])
