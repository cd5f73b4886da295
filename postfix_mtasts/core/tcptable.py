# -*- test-case-name: tests.unit.test_tcptable -*-
"""The Postfix tcp_table protocol, sans I/O (tcp_table(5), spec G15-G17).

A request is one line, ``get <key>`` with the key ``%XX``-encoded (Postfix's
``hex_quote``: ``%``, whitespace and non-printable bytes; hex digits in any
case, G16).  A reply is one line: ``200 <value>`` (found), ``500 <text>``
(not found) or ``400 <text>`` (try again later).  Postfix %-decodes every
reply and refuses one with a malformed escape, so ``%``, CR, LF, the other
control bytes and non-ASCII bytes are encoded; spaces pass through.

tcp_table has no permanent-error code: ``PERM`` answers (bad requests,
unknown profiles) go out as ``400``, which Postfix also treats as an error
that defers the mail (G5).

Size rule (G17): a reply, newline included and after %-encoding, is at most
``limit`` bytes (:data:`MAX_REPLY_BYTES`, Postfix's fixed 4096).  An ``OK``
value too long with the TLSRPT attributes is sent without them; if it is
still too long the reply is ``400 policy too large for this map`` (mail is
deferred, the ``match=`` list is never shortened); a report-only value that
does not fit is ``500`` (not found).  See
:mod:`postfix_mtasts.core.socketmap` for the same rule there.

A request line is at most :data:`MAX_REQUEST_BYTES` bytes, not counting its
LF; a longer one raises :class:`RequestTooLongError` as soon as it is seen,
and the protocol closes the connection.
"""

from __future__ import annotations

from attrs import frozen

from postfix_mtasts.core.answer import Answer, Status
from postfix_mtasts.core.socketmap import (
    MIN_REPLY_LIMIT,
    TOO_LARGE_REASON,
    render_within,
    reply_reason,
)
from postfix_mtasts.core.value import Value

__all__ = [
    "MAX_REPLY_BYTES",
    "MAX_REQUEST_BYTES",
    "LineDecoder",
    "Request",
    "RequestError",
    "RequestTooLongError",
    "TcpTableError",
    "encode_reply",
    "parse_request",
    "quote",
    "unquote",
]

MAX_REPLY_BYTES = 4096
MAX_REQUEST_BYTES = 10_240

_GET = b"get "
_HEX = b"0123456789abcdefABCDEF"
_NOT_FOUND = b"500 not found\n"


class TcpTableError(ValueError):
    """Base of this module's errors."""


class RequestTooLongError(TcpTableError):
    """A request line over MAX_REQUEST_BYTES: close the connection.

    ``lines`` holds the complete lines decoded by the same ``feed`` call
    before the error, so they can still be answered.
    """

    def __init__(self, reason: str, lines: tuple[bytes, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lines = lines


class LineDecoder:
    """Incremental LF-terminated line splitter; one trailing CR is dropped."""

    def __init__(self, max_length: int = MAX_REQUEST_BYTES) -> None:
        self._max_length = max_length
        self._buffer = bytearray()
        self._failed = False

    def feed(self, data: bytes) -> list[bytes]:
        """Return the lines completed by ``data``, in order, without LF.

        Raises :class:`RequestTooLongError` for an over-long line, and again
        on every later call.
        """
        if self._failed:
            raise RequestTooLongError(self._reason())
        lines: list[bytes] = []
        scanned = len(self._buffer)  # the pending bytes hold no LF
        self._buffer += data
        start = 0
        while (end := self._buffer.find(b"\n", max(start, scanned))) != -1:
            if end - start > self._max_length:
                break
            line = bytes(self._buffer[start:end])
            lines.append(line[:-1] if line.endswith(b"\r") else line)
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > self._max_length:
            self._failed = True
            self._buffer.clear()
            raise RequestTooLongError(self._reason(), tuple(lines))
        return lines

    def whole(self, data: bytes) -> bytes | None:
        """The line when ``data`` is exactly one line and none is begun,
        else None: then :meth:`feed` it.  Changes nothing."""
        end = len(data) - 1  # where its LF must be, and nowhere before
        if self._buffer or self._failed or end < 0 or data.find(b"\n") != end:
            return None
        if end > self._max_length:
            return None
        return data[:-2] if data.endswith(b"\r\n") else data[:-1]

    def _reason(self) -> str:
        return f"request line over {self._max_length} bytes"


@frozen(repr=False)
class Request(Value):
    """One ``get``: the %-decoded key."""

    key: bytes


@frozen(repr=False)
class RequestError(Value):
    """A line that is not a well-formed ``get``; answered ``400 <reason>``."""

    reason: str


def parse_request(line: bytes) -> Request | RequestError:
    """Parse ``get SP key`` and %-decode the key (G15, G16).  Never raises."""
    if not line.startswith(_GET):
        return RequestError("unknown command (only 'get' is served)")
    key = unquote(line[len(_GET) :])
    if key is None:
        return RequestError("malformed %XX escape in the key")
    return Request(key)


def quote(data: bytes, *, keep_space: bool = False) -> bytes:
    """%XX-encode ``%``, whitespace and non-printable bytes (Postfix
    ``hex_quote``); with ``keep_space`` a plain space passes (replies)."""
    out = bytearray()
    for byte in data:
        if (0x21 <= byte <= 0x7E and byte != 0x25) or (keep_space and byte == 0x20):
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def unquote(data: bytes) -> bytes | None:
    """Decode ``%XX`` escapes (hex in any case); ``None`` if one is malformed."""
    if b"%" not in data:
        return data
    out = bytearray()
    pos = 0
    while (cut := data.find(b"%", pos)) != -1:
        digits = data[cut + 1 : cut + 3]
        if len(digits) != 2 or not all(d in _HEX for d in digits):
            return None
        out += data[pos:cut]
        out.append(int(digits, 16))
        pos = cut + 3
    out += data[pos:]
    return bytes(out)


def encode_reply(answer: Answer, *, limit: int = MAX_REPLY_BYTES) -> bytes:
    """The reply line to one request (G15-G17); never over ``limit`` bytes.

    ``limit`` below socketmap.MIN_REPLY_LIMIT is a configuration bug:
    ValueError.
    """
    if limit < MIN_REPLY_LIMIT:
        raise ValueError(f"reply limit {limit} is below {MIN_REPLY_LIMIT}")
    if answer.status is Status.NOTFOUND:
        return _NOT_FOUND
    if answer.status is Status.OK:
        if answer.value is None:
            return _line(b"400 ", "internal error: OK answer without a value")
        text = render_within(answer.value, lambda t: len(_line(b"200 ", t)) <= limit)
        if text is not None:
            return _line(b"200 ", text)
        if answer.value.report_only:  # nothing to report within the limit
            return _NOT_FOUND
        return _line(b"400 ", TOO_LARGE_REASON)
    return _line(b"400 ", reply_reason(answer))


def _line(code: bytes, text: str) -> bytes:
    data = text.encode("utf-8", errors="replace")
    return code + quote(data, keep_space=True) + b"\n"
