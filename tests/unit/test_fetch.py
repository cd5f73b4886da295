"""Tests for postfix_mtasts.fetch and .https: the HTTPS policy fetch (spec B).
The TLS policy and the client's name resolution are proved in test_https."""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from treq.testing import RequestTraversalAgent
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import ConnectionAborted
from twisted.web.client import (
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from postfix_mtasts import __version__
from postfix_mtasts.core.policyhost import policy_url
from postfix_mtasts.fetch import HttpsPolicyFetcher, PolicyResponse
from postfix_mtasts.fetch_errors import (
    FetchConnectError,
    FetchContentTypeError,
    FetchEncodingError,
    FetchError,
    FetchHeadersTooLargeError,
    FetchIncompleteError,
    FetchRedirectError,
    FetchStatusError,
    FetchTimeoutError,
    FetchTlsError,
    FetchTooLargeError,
)

URL = b"https://mta-sts.example.com/.well-known/mta-sts.txt"
POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n"
TEXT_PLAIN = {b"Content-Type": [b"text/plain"]}


class FakeBodyTransport:
    """The producer a response body is delivered through; records stopProducing."""

    def __init__(self):
        self.stopped = False

    def stopProducing(self):
        self.stopped = True


class FakeResponse:
    """An IResponse whose body the test writes and finishes by hand."""

    version = (b"HTTP", 1, 1)
    phrase = b"Whatever"
    previousResponse = None  # noqa: N815 (IResponse's name)
    request = None

    def __init__(self, code=200, headers=None, length=UNKNOWN_LENGTH):
        self.code = code
        self.headers = Headers(TEXT_PLAIN if headers is None else headers)
        self.length = length
        self.transport = FakeBodyTransport()
        self.protocol: Any = None

    def deliverBody(self, protocol):
        assert self.protocol is None, "the body is delivered once"
        self.protocol = protocol
        protocol.makeConnection(self.transport)

    def write(self, data):
        self.protocol.dataReceived(data)

    def finish(self, reason=None):
        self.protocol.connectionLost(Failure(reason or ResponseDone()))


class FakeRequest:
    def __init__(self, method, uri, headers):
        self.method = method
        self.uri = uri
        self.headers = headers
        self.cancelled = False
        self.deferred: Deferred[Any] = Deferred(
            lambda _: setattr(self, "cancelled", True)
        )


@implementer(IAgent)
class FakeAgent:
    """An IAgent that records requests; the test fires their Deferreds."""

    def __init__(self):
        self.requests = []

    def request(self, method, uri, headers=None, bodyProducer=None):  # noqa: N803
        request = FakeRequest(method, uri, headers)
        self.requests.append(request)
        return request.deferred


class FetcherTestCase(SynchronousTestCase):
    def setUp(self):
        self.agent = FakeAgent()
        self.clock = Clock()
        self.fetcher = HttpsPolicyFetcher(self.agent, self.clock)

    def fetch(self, domain="example.com"):
        return self.fetcher.fetch(domain)

    def respond(self, code=200, headers=None, length=UNKNOWN_LENGTH):
        response = FakeResponse(code, headers, length)
        self.agent.requests[-1].deferred.callback(response)
        return response

    def fetch_body(self, headers):
        d = self.fetch()
        response = self.respond(headers=headers)
        response.write(POLICY)
        response.finish()
        return d

    def assert_fails(self, d, error_type):
        failure = self.failureResultOf(d, error_type)
        self.assertIsInstance(failure.value, FetchError)
        return failure.value


class FetchSuccessTests(FetcherTestCase):
    def test_body_returned(self):
        """A 200 text/plain answer yields its body, read in chunks (B1, B7)."""
        d = self.fetch()
        [request] = self.agent.requests
        self.assertEqual((request.method, request.uri), (b"GET", URL))
        response = self.respond()
        for i in range(0, len(POLICY), 7):
            response.write(POLICY[i : i + 7])
        self.assertNoResult(d)
        response.finish()
        self.assertEqual(self.successResultOf(d), POLICY)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(response.transport.stopped)

    def test_url(self):
        """The URL is exactly https://mta-sts.<domain>/.well-known/mta-sts.txt (B1)."""
        self.assertEqual(policy_url("example.net"), URL.decode().replace("com", "net"))
        self.fetch("example.com.")
        self.assertEqual(self.agent.requests[0].uri, URL)

    def test_request_headers(self):
        """No Accept-Encoding, cookies or conditional/cache headers go out (B9, B21)."""
        self.fetch()
        headers = self.agent.requests[0].headers
        for name in (
            b"Accept-Encoding",
            b"If-None-Match",
            b"If-Modified-Since",
            b"Cache-Control",
            b"Cookie",
        ):
            self.assertFalse(headers.hasHeader(name), name)
        user_agent = f"postfix-mtasts/{__version__}".encode()
        self.assertEqual(headers.getRawHeaders(b"User-Agent"), [user_agent])

    def test_no_cookies_kept(self):
        """A Set-Cookie is not sent back on the next fetch (B9: no HTTP state)."""
        d = self.fetch()
        response = self.respond(
            headers={**TEXT_PLAIN, b"Set-Cookie": [b"a=b; Domain=example.com"]}
        )
        response.finish()
        self.successResultOf(d)
        self.fetch()
        self.assertFalse(self.agent.requests[1].headers.hasHeader(b"Cookie"))

    def test_media_type_case_and_parameters(self):
        """Text/Plain with any parameters is accepted, body unchanged (B10, B11)."""
        for value in (
            b"Text/Plain; charset=UTF-8",
            b"text/plain; charset=iso-8859-1; foo=bar",
            b"TEXT/PLAIN",
        ):
            d = self.fetch_body({b"Content-Type": [value]})
            self.assertEqual(self.successResultOf(d), POLICY)

    def test_exact_limit_accepted(self):
        """A body of exactly 65536 bytes is accepted (B12)."""
        d = self.fetch()
        response = self.respond(length=65536)
        for _ in range(64):
            response.write(b"x" * 1024)
        response.finish()
        self.assertEqual(len(self.successResultOf(d)), 65536)
        self.assertFalse(response.transport.stopped)

    def test_potential_data_loss_accepted(self):
        """A body ended by connection close (no length) is complete (B7)."""
        d = self.fetch()
        response = self.respond()
        response.write(POLICY)
        response.finish(PotentialDataLoss())
        self.assertEqual(self.successResultOf(d), POLICY)

    def test_identity_encoding_accepted(self):
        """Content-Encoding: identity is no encoding (B21)."""
        d = self.fetch_body({**TEXT_PLAIN, b"Content-Encoding": [b"identity"]})
        self.assertEqual(self.successResultOf(d), POLICY)

    def test_cache_headers_ignored(self):
        """Cache-Control and ETag in the answer change nothing (B9)."""
        d = self.fetch_body(
            {**TEXT_PLAIN, b"Cache-Control": [b"max-age=999999"], b"ETag": [b'"x"']}
        )
        self.assertEqual(self.successResultOf(d), POLICY)


class FetchResponseTests(FetcherTestCase):
    def test_response_carries_content_type(self):
        """fetch_response gives the body and the Content-Type as sent (H8)."""
        d = self.fetcher.fetch_response("example.com")
        response = self.respond(headers={b"Content-Type": [b"text/plain; charset=x"]})
        response.write(POLICY)
        response.finish()
        self.assertEqual(
            self.successResultOf(d), PolicyResponse(POLICY, "text/plain; charset=x")
        )

    def test_media_type_check_can_be_left_to_the_caller(self):
        """With check_media_type=False, text/html and no type get through (H8)."""
        fetcher = HttpsPolicyFetcher(self.agent, self.clock, check_media_type=False)
        for headers, expected in (
            ({b"Content-Type": [b"text/html"]}, "text/html"),
            ({}, None),
        ):
            d = fetcher.fetch_response("example.com")
            response = self.respond(headers=headers)
            response.write(POLICY)
            response.finish()
            self.assertEqual(self.successResultOf(d), PolicyResponse(POLICY, expected))

    def test_other_checks_stay_with_lenient_media_type(self):
        """check_media_type=False still refuses redirects and codings (B8, B21)."""
        fetcher = HttpsPolicyFetcher(self.agent, self.clock, check_media_type=False)
        d = fetcher.fetch_response("example.com")
        self.respond(code=301, headers={b"Location": [b"https://x.example/"]})
        self.assert_fails(d, FetchRedirectError)


class FetchRejectionTests(FetcherTestCase):
    def test_status_not_200(self):
        """204, 404 and 500 are fetch failures; the body is not read (B7)."""
        for code in (204, 404, 500):
            d = self.fetch()
            response = self.respond(code=code)
            error = self.assert_fails(d, FetchStatusError)
            self.assertEqual(error.status, code)
            self.assertEqual(error.report_type, "sts-policy-fetch-error")
            self.assertTrue(response.transport.stopped)

    def test_redirect_not_followed(self):
        """301 and 302 fail with their Location, and nothing else is asked (B8)."""
        for code in (301, 302):
            d = self.fetch()
            location = b"https://policy.example.net/mta-sts.txt"
            self.respond(code=code, headers={b"Location": [location]})
            error = self.assert_fails(d, FetchRedirectError)
            self.assertEqual((error.status, error.location), (code, location.decode()))
            self.assertIsInstance(error, FetchStatusError)
        self.assertEqual(len(self.agent.requests), 2)

    def test_wrong_media_type(self):
        """text/html is refused, and the body is not read (B10)."""
        d = self.fetch()
        response = self.respond(headers={b"Content-Type": [b"text/html"]})
        error = self.assert_fails(d, FetchContentTypeError)
        self.assertEqual(error.content_type, "text/html")
        self.assertTrue(response.transport.stopped)

    def test_refusal_quotes_and_cuts_header(self):
        """The refused header is quoted with repr and cut to 200 characters,
        "..." included, in the reason (B10; peer input is quoted one way)."""
        d = self.fetch()
        self.respond(headers={b"Content-Type": [b"text/html;" + b"x" * 300]})
        error = self.assert_fails(d, FetchContentTypeError)
        shown = ("'text/html;" + "x" * 300)[:197] + "..."
        self.assertEqual(error.reason, f"Content-Type {shown} is not text/plain")

    def test_missing_media_type(self):
        """A missing Content-Type is refused (B10, DECISION)."""
        d = self.fetch()
        self.respond(headers={})
        self.assertIsNone(self.assert_fails(d, FetchContentTypeError).content_type)

    def test_content_length_too_large(self):
        """Content-Length 70000 is refused before reading the body (B12)."""
        d = self.fetch()
        response = self.respond(length=70000)
        self.assert_fails(d, FetchTooLargeError)
        self.assertTrue(response.transport.stopped)

    def test_streamed_body_too_large(self):
        """70 KB without Content-Length is cut off past the cap (B12)."""
        d = self.fetch()
        response = self.respond()
        for _ in range(64):
            response.write(b"x" * 1024)
        self.assertNoResult(d)
        self.assertFalse(response.transport.stopped)
        response.write(b"x")
        self.assert_fails(d, FetchTooLargeError)
        self.assertTrue(response.transport.stopped)
        response.write(b"x" * 5 * 1024)  # late data and close: ignored
        response.finish(ResponseFailed([Failure(net_error.ConnectionAborted())]))

    def test_gzip_refused(self):
        """Content-Encoding gzip is refused, never decompressed (B21)."""
        d = self.fetch()
        response = self.respond(headers={**TEXT_PLAIN, b"Content-Encoding": [b"gzip"]})
        self.assertEqual(
            self.assert_fails(d, FetchEncodingError).content_encoding, "gzip"
        )
        self.assertTrue(response.transport.stopped)

    def test_encoding_refused_by_the_fetcher_itself(self):
        """Any coding but identity is refused by the fetcher, whatever the
        agent, also with the media type left to the caller (B21)."""
        fetcher = HttpsPolicyFetcher(self.agent, self.clock, check_media_type=False)
        for coding in (b"br", b"identity, gzip", b"x-custom"):
            d = fetcher.fetch("example.com")
            response = self.respond(headers={b"Content-Encoding": [coding]})
            error = self.assert_fails(d, FetchEncodingError)
            self.assertEqual(error.content_encoding, coding.decode())
            self.assertTrue(response.transport.stopped)

    def test_invalid_domain(self):
        """A domain that cannot form the URL is refused before any request (B1)."""
        for domain in ("example.com/evil", "ex ample.com", "", "user@example.com"):
            self.assert_fails(self.fetch(domain), FetchError)
        self.assertEqual(self.agent.requests, [])


class FetchTimeoutTests(FetcherTestCase):
    def test_headers_never_come(self):
        """No answer in 20 s: timeout, and the request is cancelled (B12, G14)."""
        d = self.fetch()
        self.clock.advance(19.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        error = self.assert_fails(d, FetchTimeoutError)
        self.assertEqual(error.report_type, "sts-policy-fetch-error")
        self.assertTrue(self.agent.requests[0].cancelled)

    def test_body_stalls(self):
        """A body that stops coming: timeout and the connection aborted (B12, G14)."""
        d = self.fetch()
        self.clock.advance(10)
        response = self.respond()
        response.write(POLICY[:10])
        self.clock.advance(10)
        self.assert_fails(d, FetchTimeoutError)
        self.assertTrue(response.transport.stopped)
        response.finish(ResponseFailed([Failure(net_error.ConnectionAborted())]))

    def test_custom_timeout(self):
        """The timeout is a constructor argument (G14)."""
        fetcher = HttpsPolicyFetcher(self.agent, self.clock, timeout_s=5)
        d = fetcher.fetch("example.com")
        self.clock.advance(5)
        self.assert_fails(d, FetchTimeoutError)

    def test_caller_cancel(self):
        """Cancelling the fetch cancels the request (no timeout error)."""
        d = self.fetch()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.agent.requests[0].cancelled)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FetchErrorMappingTests(FetcherTestCase):
    def fail_with(self, exception):
        d = self.fetch()
        self.agent.requests[-1].deferred.errback(exception)
        return d

    def test_certificate_chain(self):
        """An untrusted or expired certificate is sts-webpki-invalid (B3)."""
        ssl_error = SSL.Error([("SSL routines", "", "certificate verify failed")])
        d = self.fail_with(ResponseNeverReceived([Failure(ssl_error)]))
        error = self.assert_fails(d, FetchTlsError)
        self.assertEqual(error.report_type, "sts-webpki-invalid")
        self.assertIn("certificate verify failed", error.reason)

    def test_certificate_name(self):
        """A wrong name, or no SAN at all, is sts-webpki-invalid (B3, B4)."""
        for exception in (VerificationError([]), CertificateError("no SAN")):
            d = self.fail_with(ResponseNeverReceived([Failure(exception)]))
            error = self.assert_fails(d, FetchTlsError)
            self.assertEqual(error.report_type, "sts-webpki-invalid")

    def test_handshake_failure(self):
        """A TLS failure not about the certificate is a fetch error (B20)."""
        ssl_error = SSL.Error([("SSL routines", "", "unsupported protocol")])
        d = self.fail_with(ResponseNeverReceived([Failure(ssl_error)]))
        error = self.assert_fails(d, FetchConnectError)
        self.assertEqual(error.report_type, "sts-policy-fetch-error")
        self.assertIn("unsupported protocol", error.reason)

    def test_connect_errors(self):
        """DNS, refused and lost connections are sts-policy-fetch-error (B16)."""
        for exception, text in [
            (net_error.DNSLookupError("mta-sts.example.com"), "lookup"),
            (net_error.ConnectionRefusedError(), "refused"),
            (ResponseFailed([Failure(net_error.ConnectionLost())]), "lost"),
        ]:
            error = self.assert_fails(self.fail_with(exception), FetchConnectError)
            self.assertIn(text, error.reason.lower())
            self.assertNotIn("\n", error.reason)

    def test_body_connection_lost(self):
        """A connection lost mid-body is a fetch error, not a short policy,
        and says how far the body came (B7)."""
        d = self.fetch()
        response = self.respond(length=len(POLICY))
        response.write(POLICY[:10])
        response.finish(ResponseFailed([Failure(net_error.ConnectionLost())]))
        error = self.assert_fails(d, FetchIncompleteError)
        self.assertIsInstance(error, FetchConnectError)
        self.assertEqual(
            error.reason, f"connection lost after 10 of {len(POLICY)} body bytes"
        )

    def test_body_data_loss_in_words(self):
        """Twisted's _DataLoss (a Content-Length lie, or a chunked body cut
        before its last chunk) never shows; the reason says what happened
        (B7)."""
        for length, data_loss, expected in [
            (456, Exception(), "connection closed after 3 of 456 body bytes"),
            (
                UNKNOWN_LENGTH,
                Exception("Chunked decoder in 'BODY' state"),
                "connection closed after 3 body bytes, unfinished",
            ),
        ]:
            d = self.fetch()
            response = self.respond(length=length)
            response.write(b"abc")
            reasons = [Failure(net_error.ConnectionDone()), Failure(data_loss)]
            response.finish(ResponseFailed(reasons))
            self.assertEqual(
                self.assert_fails(d, FetchIncompleteError).reason, expected
            )

    def test_early_end_in_words(self):
        """A connection that ends before or during the head, or while the
        request is sent, is named in plain words (B16)."""
        done, lost = net_error.ConnectionDone(), net_error.ConnectionLost()
        for exception, expected in [
            (
                ResponseNeverReceived([Failure(done)]),
                "connection closed before any response",
            ),
            (
                ResponseFailed([Failure(lost)]),
                "connection lost during the response headers",
            ),
            (
                RequestTransmissionFailed([Failure(lost)]),
                "connection lost while sending the request",
            ),
            (
                ResponseNeverReceived([Failure(ConnectionAborted())]),
                "connection aborted before any response",
            ),
        ]:
            error = self.assert_fails(self.fail_with(exception), FetchIncompleteError)
            self.assertEqual(error.reason, expected)
            self.assertEqual(error.report_type, "sts-policy-fetch-error")

    def test_fetch_error_inside_twisted_failure(self):
        """A FetchError that ended the connection (a header bound) comes out
        as itself, not as a lost connection (B12)."""
        bound = FetchHeadersTooLargeError("response headers exceed 32768 bytes")
        d = self.fail_with(ResponseFailed([Failure(bound)]))
        self.assertIs(self.assert_fails(d, FetchHeadersTooLargeError), bound)


class PolicyResource(Resource):
    """A policy host for treq's in-memory agent; counts requests."""

    isLeaf = True  # noqa: N815 (Resource's name)

    def __init__(self, code=200, body=POLICY, stream=False):
        super().__init__()
        self.code = code
        self.body = body
        self.stream = stream
        self.requests = []
        self.finished = []

    def render_GET(self, request):
        self.requests.append(request)
        self.finished.append(request.notifyFinish())
        request.setResponseCode(self.code)
        request.setHeader(b"Content-Type", b"text/plain")
        if self.code == 301:
            request.setHeader(b"Location", b"https://elsewhere.example/policy")
        if not self.stream:
            return self.body
        for i in range(0, len(self.body), 4096):
            request.write(self.body[i : i + 4096])
        return NOT_DONE_YET


class FetchThroughTwistedWebTests(SynchronousTestCase):
    """The real Twisted HTTP client and server, in memory (treq.testing's
    agent, an IAgent like the daemon's)."""

    def fetch(self, resource):
        agent = RequestTraversalAgent(resource)
        fetcher = HttpsPolicyFetcher(agent, Clock())
        d = fetcher.fetch("example.com")
        agent.flush()
        return d

    def test_policy(self):
        """A real 200 text/plain response yields the policy (B1, B7, B10)."""
        resource = PolicyResource()
        self.assertEqual(self.successResultOf(self.fetch(resource)), POLICY)
        [request] = resource.requests
        self.assertEqual(request.uri, b"/.well-known/mta-sts.txt")
        self.assertEqual(request.getHeader(b"host"), b"mta-sts.example.com")
        self.assertIsNone(request.getHeader(b"accept-encoding"))

    def test_redirect(self):
        """A real 301 is not followed: one request only (B8)."""
        resource = PolicyResource(code=301)
        self.failureResultOf(self.fetch(resource), FetchRedirectError)
        self.assertEqual(len(resource.requests), 1)

    def test_streamed_too_large(self):
        """A chunked 70 KB body is cut off and the connection closed (B12)."""
        resource = PolicyResource(body=b"x" * 70 * 1024, stream=True)
        self.failureResultOf(self.fetch(resource), FetchTooLargeError)
        self.failureResultOf(
            resource.finished[0], net_error.ConnectionLost, net_error.ConnectionDone
        )
