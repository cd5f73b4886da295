# -*- test-case-name: tests.unit.test_fetch,tests.unit.test_httpbounds -*-
"""Why a policy fetch failed, as typed errors carrying their TLSRPT result
type (spec B, RFC 8460 §4.3), and the mapping of Twisted, OpenSSL and
service_identity failures onto them, in words that read in one log line:
"connection closed after 10 of 70 body bytes", not ``_DataLoss``."""

from __future__ import annotations

from typing import ClassVar

from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure
from twisted.web._newclient import ConnectionAborted as HttpConnectionAborted
from twisted.web._newclient import (
    ParseError,
    RequestGenerationFailed,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)

from postfix_mtasts.core.answer import PolicyFailure
from postfix_mtasts.core.text import cut, quote

__all__ = [
    "FetchConnectError",
    "FetchContentTypeError",
    "FetchEncodingError",
    "FetchError",
    "FetchHeadersTooLargeError",
    "FetchIncompleteError",
    "FetchRedirectError",
    "FetchStatusError",
    "FetchTimeoutError",
    "FetchTlsError",
    "FetchTooLargeError",
    "as_fetch_error",
    "body_cut_short",
    "connection_end",
    "ssl_error_text",
]

_WRAPPERS = (ResponseFailed, RequestTransmissionFailed, RequestGenerationFailed)


class FetchError(Exception):
    """The policy could not be fetched; ``report_type`` is its TLSRPT result
    type: ``sts-webpki-invalid`` for the certificate, else
    ``sts-policy-fetch-error`` (RFC 8460 §4.3)."""

    report_type: ClassVar[PolicyFailure] = PolicyFailure.FETCH_ERROR

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchConnectError(FetchError):
    """DNS, TCP or a TLS handshake failure other than the certificate's."""


class FetchTlsError(FetchError):
    """The certificate is untrusted, expired or not for the host (B3, B4)."""

    report_type = PolicyFailure.WEBPKI_INVALID


class FetchStatusError(FetchError):
    """Any status but 200 (B7)."""

    def __init__(self, status: int, reason: str | None = None) -> None:
        super().__init__(reason or f"HTTP status {status}, not 200")
        self.status = status


class FetchRedirectError(FetchStatusError):
    """A 3xx answer; redirects are never followed (B8)."""

    def __init__(self, status: int, location: str | None) -> None:
        super().__init__(status, f"HTTP redirect {status} to {quote(location)} refused")
        self.location = location


class FetchContentTypeError(FetchError):
    """Media type not ``text/plain``, or no Content-Type at all (B10)."""

    def __init__(self, content_type: str | None) -> None:
        super().__init__(f"Content-Type {quote(content_type)} is not text/plain")
        self.content_type = content_type


class FetchTooLargeError(FetchError):
    """The body is longer than the cap (B12)."""


class FetchHeadersTooLargeError(FetchError):
    """The response headers are longer or more numerous than their bounds
    (B12's limits carried over to the head; :mod:`postfix_mtasts.httpbounds`)."""


class FetchIncompleteError(FetchConnectError):
    """The connection ended before the whole response came (B7, B12)."""


class FetchTimeoutError(FetchError):
    """Connect, headers and body did not finish within the timeout (B12, G14)."""


class FetchEncodingError(FetchError):
    """A Content-Encoding other than identity (B21)."""

    def __init__(self, content_encoding: str) -> None:
        super().__init__(f"Content-Encoding {quote(content_encoding)} refused")
        self.content_encoding = content_encoding


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and, depth first, the failures it wraps (ResponseFailed & co.)."""
    found = [error]
    for reason in getattr(error, "reasons", None) or ():
        if isinstance(reason, Failure) and reason.value is not None:
            found.extend(_causes(reason.value))
    return found


def ssl_error_text(error: SSL.Error) -> str:
    """The OpenSSL reasons an ``SSL.Error`` carries, as one line."""
    details = error.args[0] if error.args and isinstance(error.args[0], list) else []
    texts = [str(d[-1]) for d in details if isinstance(d, tuple) and d]
    return "; ".join(texts) or str(error) or "unknown TLS error"


def _one_line(error: BaseException) -> str:
    return cut(" ".join((str(error) or type(error).__name__).split()))


def connection_end(error: BaseException) -> str:
    """How a connection ended, in plain words ("connection closed"), or the
    text of whatever else ended the response."""
    if isinstance(error, net_error.ConnectionDone):
        return "connection closed"
    if isinstance(error, net_error.ConnectionAborted | HttpConnectionAborted):
        return "connection aborted"
    if isinstance(error, net_error.ConnectionLost):  # a reset, or no close_notify
        return "connection lost"
    return _one_line(error)


def _first_inner(error: BaseException) -> BaseException:
    """The first failure ``error`` wraps, its own cause for a plain one: for
    Twisted's wrappers, how the connection ended."""
    inner = [c for c in _causes(error) if not isinstance(c, _WRAPPERS)]
    return inner[0] if inner else error


def body_cut_short(
    reason: Failure, received: int, expected: int | None
) -> FetchIncompleteError:
    """The body ended early: after ``received`` of ``expected`` bytes (None:
    chunked or unknown length) and for the connection's ``reason``."""
    end = connection_end(_first_inner(reason.value)) if reason.value else "ended"
    if expected is None:
        return FetchIncompleteError(f"{end} after {received} body bytes, unfinished")
    return FetchIncompleteError(f"{end} after {received} of {expected} body bytes")


def _early_end(error: BaseException, inner: BaseException) -> FetchError | None:
    """``error`` in words, if it is one of Twisted's ways to say that the
    connection ended before the response did."""
    end = connection_end(inner)
    if isinstance(error, ResponseNeverReceived):
        return FetchIncompleteError(f"{end} before any response")
    if isinstance(error, ResponseFailed):
        if getattr(error, "response", None) is not None:
            return FetchIncompleteError(f"{end} before the end of the body")
        return FetchIncompleteError(f"{end} during the response headers")
    if isinstance(error, RequestTransmissionFailed):
        return FetchIncompleteError(f"{end} while sending the request")
    return None


def as_fetch_error(failure: Failure) -> Failure:
    """Map a Twisted, OpenSSL or service_identity failure to a FetchError."""
    if isinstance(failure.value, FetchError | CancelledError):
        return failure
    causes = _causes(failure.value) if failure.value is not None else []
    for cause in causes:
        if isinstance(cause, FetchError):  # e.g. a header bound, inside ResponseFailed
            raise cause
    for cause in causes:
        if isinstance(cause, VerificationError):
            raise FetchTlsError("certificate does not name the policy host")
        if isinstance(cause, CertificateError):
            raise FetchTlsError(f"unusable certificate: {cause}")
        if isinstance(cause, SSL.Error):
            text = ssl_error_text(cause)
            if "certificate" in text:
                raise FetchTlsError(f"certificate rejected: {text}")
            raise FetchConnectError(f"TLS handshake failed: {text}")
    inner = [c for c in causes if not isinstance(c, _WRAPPERS)] or causes
    if isinstance(inner[-1], ParseError):
        what, data = (*inner[-1].args, b"")[:2]
        raise FetchConnectError(f"malformed response: {what} {quote(data)}")
    if isinstance(inner[-1], net_error.DNSLookupError):
        raise FetchConnectError(f"host name lookup failed: {_one_line(inner[-1])}")
    early = _early_end(causes[0], inner[0])
    if early is not None:
        raise early
    raise FetchConnectError(_one_line(inner[-1]))
