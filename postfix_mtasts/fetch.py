# -*- test-case-name: tests.unit.test_fetch,tests.unit.test_httpbounds -*-
"""The HTTPS policy fetch (RFC 8461 §3.2-3.3, spec B).

One GET of ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` through an
injected ``IAgent``: no redirects, no HTTP cache, no content coding, status
200 and ``text/plain`` only, a byte cap counted while streaming and one overall
timeout on the injected clock.  Every fault is a :class:`FetchError` subtype
carrying the TLSRPT result type the caller reports.  The agent itself (TLS,
name checks, one connection per fetch) is built in :mod:`postfix_mtasts.https`;
it follows no redirect and decodes no body, and this module checks both
anyway: any agent may be given.
"""

from __future__ import annotations

import re
import typing
from collections import Counter

from attrs import frozen
from twisted.internet import protocol
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from postfix_mtasts import __version__
from postfix_mtasts.core.policyhost import (
    MAX_POLICY_BYTES,
    policy_url,
    split_content_type,
)
from postfix_mtasts.core.tally import Histogram
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.value import Value
from postfix_mtasts.fetch_errors import (
    FetchContentTypeError,
    FetchEncodingError,
    FetchError,
    FetchRedirectError,
    FetchStatusError,
    FetchTimeoutError,
    FetchTooLargeError,
    as_fetch_error,
    body_cut_short,
)

__all__ = [
    "FETCH_TIMEOUT_S",
    "HttpsPolicyFetcher",
    "PolicyFetcher",
    "PolicyResponse",
    "fault_kind",
]

FETCH_TIMEOUT_S = 20.0  # spec G14: well inside Postfix's 100 s
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")


@frozen(repr=False)
class PolicyResponse(Value):
    """A 200 answer: the body and its Content-Type header (None: absent)."""

    body: bytes
    content_type: str | None


class PolicyFetcher(typing.Protocol):
    """Fetch a policy domain's (A-label) policy file; fails with FetchError only."""

    def fetch(self, domain: str) -> Deferred[bytes]: ...


class HttpsPolicyFetcher:
    """:class:`PolicyFetcher` over HTTPS; cancelling a fetch aborts it.

    ``check_media_type=False`` lets a non-``text/plain`` answer through, for
    the domain-owner checker, which judges the header itself (spec H8).
    """

    def __init__(
        self,
        agent: IAgent,
        clock: IReactorTime,
        *,
        timeout_s: float = FETCH_TIMEOUT_S,
        max_bytes: int = MAX_POLICY_BYTES,
        user_agent: str = f"postfix-mtasts/{__version__}",
        check_media_type: bool = True,
        results: Counter[str] | None = None,
        durations: Histogram | None = None,
    ) -> None:
        self._agent = agent
        self._clock = clock
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._headers = Headers({b"User-Agent": [user_agent.encode("ascii")]})
        self._check_media_type = check_media_type
        #: Fetches by result ("ok", or the fault: :func:`fault_kind`), and
        #: how long each took (read by metrics; given: the daemon's, kept
        #: across reloads).
        self.results: Counter[str] = Counter() if results is None else results
        self.durations = Histogram() if durations is None else durations

    def fetch(self, domain: str) -> Deferred[bytes]:
        return self.fetch_response(domain).addCallback(lambda r: r.body)

    def fetch_response(self, domain: str) -> Deferred[PolicyResponse]:
        """Like :meth:`fetch`, with the response's Content-Type."""
        domain = domain.removesuffix(".")
        if not _DOMAIN.fullmatch(domain):
            return fail(FetchError(f"invalid policy domain {quote(domain)}"))
        url = policy_url(domain).encode("ascii")
        d = Deferred.fromCoroutine(self._fetch(url))
        d.addTimeout(self._timeout_s, self._clock, onTimeoutCancel=_timed_out)
        d.addErrback(as_fetch_error)
        return d.addBoth(self._counted, self._clock.seconds())

    def _counted(
        self, result: PolicyResponse | Failure, started: float
    ) -> PolicyResponse | Failure:
        self.durations.observe(max(0.0, self._clock.seconds() - started))
        failed = result.value if isinstance(result, Failure) else None
        self.results["ok" if failed is None else fault_kind(failed)] += 1
        return result

    async def _fetch(self, url: bytes) -> PolicyResponse:
        # No conditional or cache headers (B9), no Accept-Encoding (B21); the
        # agent follows no redirect (B8) and hands the body over as it comes,
        # so that the byte cap bites while streaming (B12).
        response: IResponse = await self._agent.request(
            b"GET", url, self._headers.copy(), None
        )
        try:
            _check_headers(response, self._max_bytes, self._check_media_type)
        except FetchError:
            _deliver(response, _Discard())
            raise
        length = response.length if isinstance(response.length, int) else None
        reader = _BodyReader(self._max_bytes, length)
        _deliver(response, reader)
        content_type = _header(response.headers, b"content-type")
        return PolicyResponse(await reader.finished, content_type)


def fault_kind(error: BaseException) -> str:
    """A fetch fault as a label word: its class name without ``Fetch`` and
    ``Error``, in snake case (``FetchTooLargeError`` is ``too_large``)."""
    name = type(error).__name__
    if not isinstance(error, FetchError) or not name.startswith("Fetch"):
        return "other"
    words = re.findall(r"[A-Z][a-z]*", name.removeprefix("Fetch").removesuffix("Error"))
    return "_".join(w.lower() for w in words) or "error"


def _check_headers(
    response: IResponse, max_bytes: int, check_media_type: bool = True
) -> None:
    if response.code != 200:
        if 300 <= response.code < 400:
            location = _header(response.headers, b"location")
            raise FetchRedirectError(response.code, location)
        raise FetchStatusError(response.code)
    coding = _header(response.headers, b"content-encoding")
    if coding is not None and not _is_identity(coding):
        raise FetchEncodingError(coding)
    content_type = _header(response.headers, b"content-type")
    media_type = split_content_type(content_type)[0]
    if check_media_type and media_type != "text/plain":  # B10, B11
        raise FetchContentTypeError(content_type)
    if isinstance(response.length, int) and response.length > max_bytes:
        raise FetchTooLargeError(
            f"Content-Length {response.length} exceeds {max_bytes} bytes"
        )


def _deliver(response: IResponse, body_protocol: protocol.Protocol) -> None:
    response.deliverBody(body_protocol)  # type: ignore[no-untyped-call]


def _header(headers: Headers, name: bytes) -> str | None:
    values = headers.getRawHeaders(name)
    return None if not values else b", ".join(values).decode("latin-1")


def _is_identity(coding: str) -> bool:
    return all(t.strip().lower() in ("", "identity") for t in coding.split(","))


class _Discard(protocol.Protocol):
    """Drops an unwanted body by closing the connection."""

    def connectionMade(self) -> None:
        typing.cast(IPushProducer, self.transport).stopProducing()


class _BodyReader(protocol.Protocol):
    """Collects up to ``max_bytes``; aborts the connection past that (B12).
    A body that ends before its Content-Length or last chunk is an error that
    says how far it came."""

    def __init__(self, max_bytes: int, expected: int | None = None) -> None:
        self.finished: Deferred[bytes] = Deferred(lambda _: self._abort())
        self._max_bytes = max_bytes
        self._expected = expected
        self._chunks: list[bytes] = []
        self._size = 0

    def _abort(self) -> None:
        if self.transport is not None:
            typing.cast(IPushProducer, self.transport).stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self._size += len(data)
        if self._size > self._max_bytes:
            self._abort()
            limit = self._max_bytes
            self.finished.errback(FetchTooLargeError(f"body exceeds {limit} bytes"))
        else:
            self._chunks.append(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if self.finished.called:
            return
        if isinstance(reason.value, ResponseDone | PotentialDataLoss):
            self.finished.callback(b"".join(self._chunks))
        else:
            cut_short = body_cut_short(reason, self._size, self._expected)
            self.finished.errback(cut_short)


def _timed_out(result: object, timeout_s: float) -> typing.NoReturn:
    """Whatever the cancelled fetch ended with, it timed out (B12, G14)."""
    raise FetchTimeoutError(f"no complete answer within {timeout_s}s")
