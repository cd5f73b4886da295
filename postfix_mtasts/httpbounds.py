# -*- test-case-name: tests.unit.test_httpbounds -*-
"""Bounds on a policy host's response head (spec B12, issue 9).

Twisted's HTTP client limits each header line but not how many there are nor
their total size, so a policy host could answer 200 and stream header lines
until the daemon runs out of memory.  :class:`BoundedHTTP11ClientProtocol`
counts what the parser is given while a response's headers are not complete
and aborts the connection as soon as a bound would be crossed; the request
fails with :class:`~postfix_mtasts.fetch_errors.FetchHeadersTooLargeError`.
:class:`~postfix_mtasts.policyagent.PolicyAgent` connects with it.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web._newclient import HTTP11ClientProtocol, Request
from twisted.web.iweb import IResponse

from postfix_mtasts.core.policyhost import (
    MAX_RESPONSE_HEADER_BYTES,
    MAX_RESPONSE_HEADER_LINE_BYTES,
    MAX_RESPONSE_HEADER_LINES,
)
from postfix_mtasts.fetch_errors import FetchHeadersTooLargeError

__all__ = [
    "MAX_RESPONSE_HEADER_BYTES",
    "MAX_RESPONSE_HEADER_LINES",
    "MAX_RESPONSE_HEADER_LINE_BYTES",
    "BoundedHTTP11ClientProtocol",
]

_MAX_LINE_ENDS = MAX_RESPONSE_HEADER_LINES + 2  # the status and the blank line


class _HeadBudget:
    """What is left of the bounds while one response head is read."""

    def __init__(self) -> None:
        self.total = 0
        self.line_ends = 0
        self.line = 0  # bytes of the current, unfinished line

    def take(self, data: bytes) -> tuple[int, str | None]:
        """How many leading bytes of ``data`` fit, and why no more do (None:
        all of them fit).  Counts only what fits."""
        pos = 0
        while pos < len(data):
            if self.line == 0 and self.line_ends == _MAX_LINE_ENDS:
                return pos, f"response headers exceed {MAX_RESPONSE_HEADER_LINES} lines"
            newline = data.find(b"\n", pos)
            end = len(data) if newline < 0 else newline + 1
            room_total = MAX_RESPONSE_HEADER_BYTES - self.total
            room_line = MAX_RESPONSE_HEADER_LINE_BYTES - self.line
            if end - pos > min(room_total, room_line):
                fit = min(room_total, room_line)
                self.total += fit
                self.line += fit
                if room_total <= room_line:
                    limit = MAX_RESPONSE_HEADER_BYTES
                    return pos + fit, f"response headers exceed {limit} bytes"
                limit = MAX_RESPONSE_HEADER_LINE_BYTES
                return pos + fit, f"a response header line exceeds {limit} bytes"
            self.total += end - pos
            if newline < 0:
                self.line += end - pos
            else:
                self.line = 0
                self.line_ends += 1
            pos = end
        return len(data), None


class BoundedHTTP11ClientProtocol(HTTP11ClientProtocol):
    """An HTTP/1.1 client connection that never hands its response parser
    more than the bounds above before the response's headers are complete.

    Past a bound the connection is aborted at once (nothing more is read or
    buffered, and an aborted connection is never reused) and the
    request fails with :class:`FetchHeadersTooLargeError`.  The headers are
    complete when the Deferred that ``request`` returns fires: for a request
    without a body, which is fully written at once, that is when the parser
    has read the blank line.
    """

    _budget: _HeadBudget | None = None
    _refusal: FetchHeadersTooLargeError | None = None

    def request(self, request: Request) -> Deferred[IResponse]:
        if self.state != "QUIESCENT":  # refused by Twisted: not ours to count
            return super().request(request)
        self._budget = _HeadBudget()
        d = super().request(request)
        d.addBoth(self._head_read)
        return d

    def _head_read(self, result: IResponse | Failure) -> IResponse | Failure:
        self._budget = None
        return result

    def dataReceived(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        budget = self._budget
        if budget is None:
            self._parse(data)
            return
        fit, refusal = budget.take(data)
        if fit:
            self._parse(data[:fit])
        if not self._reading_head():  # the head ended inside data[:fit]
            if fit < len(data):
                self._parse(data[fit:])
        elif refusal is not None:
            self._refuse(refusal)

    def _parse(self, data: bytes) -> None:
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def _reading_head(self) -> bool:
        return self._budget is not None

    def _refuse(self, reason: str) -> None:
        self._refusal = FetchHeadersTooLargeError(reason)
        self._budget = None
        cast(ITCPTransport, self.transport).abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._refusal is not None:
            reason = Failure(self._refusal)  # type: ignore[no-untyped-call]
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
