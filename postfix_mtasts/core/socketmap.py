# -*- test-case-name: tests.unit.test_socketmap -*-
"""The Postfix socketmap protocol, sans I/O (socketmap(5), spec G1-G7).

Each request and each reply is one netstring, ``<length>:<payload>,``.  A
request payload is ``<map name> <key>``; a reply payload is ``OK <value>``,
``NOTFOUND ``, ``TEMP <reason>`` or ``PERM <reason>``.

Framing (G2, F9): :class:`NetstringDecoder` accepts what Postfix's reader
accepts (leading zeros in the length) and raises :class:`NetstringError` on
anything else; the protocol then closes the connection.  A length over the
decoder's ``max_length`` (default :data:`MAX_QUERY_BYTES`) is refused as soon
as its digits show it, before any payload is buffered.  At most
:data:`MAX_LENGTH_DIGITS` length digits are read, so endless leading zeros
cannot hold a connection.

Size rule for replies (G7, F4): the payload (the netstring without its
``<length>:`` and ``,``) is at most ``limit`` bytes, as counted by Postfix's
``socketmap_max_reply_size``.  An ``OK`` value that is too long with the
TLSRPT attributes is sent without them (Postfix then has no report data but
still enforces the full ``match=`` list); if it is still too long the reply is
``TEMP policy too large for this map``, which defers the mail.  The ``match=``
list is never shortened: that would weaken the policy.  A report-only value
(testing mode, policy failure) means nothing without its attributes: when
they do not fit the reply is ``NOTFOUND ``, what the map says without TLSRPT.

Reasons sent with ``TEMP``/``PERM`` are cut to printable ASCII (anything else
becomes ``?``) and to :data:`MAX_REASON_CHARS` characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from attrs import frozen

from postfix_mtasts.core.answer import Answer, Status, TlsPolicyValue, render_value
from postfix_mtasts.core.value import Value

__all__ = [
    "MAX_LENGTH_DIGITS",
    "MAX_QUERY_BYTES",
    "MAX_REASON_CHARS",
    "MAX_REPLY_BYTES",
    "MIN_REPLY_LIMIT",
    "TOO_LARGE_REASON",
    "NetstringDecoder",
    "NetstringError",
    "Request",
    "RequestError",
    "encode_netstring",
    "encode_reply",
    "parse_request",
    "render_within",
    "reply_reason",
]

MAX_QUERY_BYTES = 10_000
MAX_REPLY_BYTES = 100_000
MAX_LENGTH_DIGITS = 32
MAX_REASON_CHARS = 200
MIN_REPLY_LIMIT = 1024
TOO_LARGE_REASON = "policy too large for this map"

_LENGTH, _PAYLOAD, _COMMA = range(3)
_DIGITS = b"0123456789"
_PRINTABLE_NAME = re.compile(rb"[!-~]+\Z")
_DEFAULT_REASONS = {Status.TEMP: "temporary failure", Status.PERM: "permanent failure"}


class NetstringError(ValueError):
    """A framing error: the connection must be closed (spec G2, F9).

    ``payloads`` holds the complete payloads decoded by the same ``feed``
    call before the error, so they can still be answered.
    """

    def __init__(self, reason: str, payloads: tuple[bytes, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payloads = payloads


class NetstringDecoder:
    """Incremental netstring decoder; data may be split anywhere."""

    def __init__(self, max_length: int = MAX_QUERY_BYTES) -> None:
        self._max_length = max_length
        self._state = _LENGTH
        self._length = 0
        self._digits = 0
        self._payload = bytearray()
        self._error: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Decode ``data``; return the payloads completed by it, in order.

        Raises :class:`NetstringError` on a framing error, and again on every
        later call.
        """
        if self._error is not None:
            raise NetstringError(self._error)
        done: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._state == _LENGTH and self._digits == 0:
                # Fast path: a whole netstring at ``pos`` (the usual case).
                colon = data.find(b":", pos, pos + MAX_LENGTH_DIGITS + 1)
                if colon > pos and data[pos:colon].isdigit():
                    length = int(data[pos:colon])
                    stop = colon + 1 + length
                    if length <= self._max_length and stop < end and data[stop] == 0x2C:
                        done.append(data[colon + 1 : stop])
                        pos = stop + 1
                        continue
                pos = self._read_length(data, pos)
            elif self._state == _LENGTH:
                pos = self._read_length(data, pos)
            elif self._state == _PAYLOAD:
                take = min(self._length - len(self._payload), end - pos)
                self._payload += data[pos : pos + take]
                pos += take
                if len(self._payload) == self._length:
                    self._state = _COMMA
            else:
                if data[pos] != ord(","):
                    self._error = "missing ',' after the payload"
                else:
                    done.append(bytes(self._payload))
                    self._payload.clear()
                    self._length = self._digits = 0
                    self._state = _LENGTH
                pos += 1
            if self._error is not None:
                raise NetstringError(self._error, tuple(done))
        return done

    def whole(self, data: bytes) -> bytes | None:
        """The payload when ``data`` is exactly one netstring and none is
        begun (the usual read from Postfix), else None: then :meth:`feed`
        it.  Accepts what ``feed`` accepts, nothing more; changes nothing."""
        if self._state != _LENGTH or self._digits or self._error is not None:
            return None
        colon = data.find(b":", 0, MAX_LENGTH_DIGITS + 1)
        if colon <= 0 or not data[:colon].isdigit():
            return None
        length = int(data[:colon])
        if (
            length > self._max_length
            or colon + length + 2 != len(data)
            or data[-1] != 0x2C  # ","
        ):
            return None
        return data[colon + 1 : -1]

    def _read_length(self, data: bytes, pos: int) -> int:
        byte = data[pos]
        if byte == ord(":"):
            if self._digits == 0:
                self._error = "empty length"
            elif self._length == 0:
                # ``0:,`` goes straight to the comma.
                self._state = _COMMA
            else:
                self._state = _PAYLOAD
        elif byte in _DIGITS:
            self._length = self._length * 10 + byte - ord("0")
            self._digits += 1
            if self._length > self._max_length:
                self._error = f"length over {self._max_length} bytes"
            elif self._digits > MAX_LENGTH_DIGITS:
                self._error = f"more than {MAX_LENGTH_DIGITS} length digits"
        else:
            self._error = "non-digit in the length"
        return pos + 1


def encode_netstring(payload: bytes) -> bytes:
    """Frame ``payload`` as Postfix does: ``%d:`` without leading zeros (G2)."""
    return b"%d:%s," % (len(payload), payload)


class Request(NamedTuple):
    """One socketmap lookup: the map name from main.cf and the raw key (G3).
    A named tuple: it is built for every request on the hot path."""

    name: str
    key: bytes


@frozen(repr=False)
class RequestError(Value):
    """A payload that is not ``<name> <key>``; answered ``PERM <reason>``."""

    reason: str


def parse_request(payload: bytes) -> Request | RequestError:
    """Split a request at its first space into map name and key (G3).

    The key may be empty (the lookup then classifies it as invalid).  The map
    name must be printable ASCII.  Never raises.
    """
    if not payload:
        return RequestError("empty request")
    name, space, key = payload.partition(b" ")
    if not space:
        return RequestError("request has no space between map name and key")
    if not name:
        return RequestError("empty map name")
    if _PRINTABLE_NAME.match(name) is None:
        return RequestError("map name is not printable ASCII")
    return Request(name.decode("ascii"), key)


def reply_reason(answer: Answer) -> str:
    """The reason sent with a TEMP or PERM ``answer``: printable ASCII, at
    most MAX_REASON_CHARS long, a generic text when there is none (G4)."""
    text = answer.reason.strip()[:MAX_REASON_CHARS]
    safe = "".join(c if " " <= c <= "~" else "?" for c in text)
    return safe or _DEFAULT_REASONS.get(answer.status, "failure")


def render_within(value: TlsPolicyValue, fits: Callable[[str], bool]) -> str | None:
    """Render ``value`` with its report attributes if ``fits`` accepts that,
    else without them (never a report-only value), else ``None`` (the size
    rule above)."""
    if value.report is not None:
        text = render_value(value, with_report=True)
        if fits(text):
            return text
    if value.report_only:
        return None
    text = render_value(value, with_report=False)
    return text if fits(text) else None


def encode_reply(answer: Answer, *, limit: int = MAX_REPLY_BYTES) -> bytes:
    """The framed reply to one request (G4, G7); never over ``limit``.

    ``limit`` below MIN_REPLY_LIMIT is a configuration bug: ValueError.
    """
    return encode_netstring(_reply_payload(answer, limit))


def _reply_payload(answer: Answer, limit: int) -> bytes:
    if limit < MIN_REPLY_LIMIT:
        raise ValueError(f"reply limit {limit} is below {MIN_REPLY_LIMIT}")
    if answer.status is Status.NOTFOUND:
        return b"NOTFOUND "
    if answer.status is Status.OK:
        if answer.value is None:
            return b"TEMP internal error: OK answer without a value"
        text = render_within(answer.value, lambda t: len(_ok(t)) <= limit)
        if text is not None:
            return _ok(text)
        if answer.value.report_only:
            return b"NOTFOUND "
        return b"TEMP " + TOO_LARGE_REASON.encode()
    return f"{answer.status.value} {reply_reason(answer)}".encode("ascii")


def _ok(text: str) -> bytes:
    return b"OK " + text.encode("utf-8", errors="replace")
