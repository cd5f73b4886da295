# -*- test-case-name: tests.unit.test_tlsreport_mail -*-
"""Find the TLS reports in what was read: a report file, or a mail message.

Pure (bytes in, reports or one-line refusals out).  RFC 8460 §5.3 mails a
report as a MIME part of type ``application/tlsrpt+gzip`` (or
``application/tlsrpt+json``) named ``sender!domain!begin!end[!id].json.gz``;
some senders label it ``application/gzip``, ``application/json`` or
``application/octet-stream`` instead, so those count too when the file name
ends ``.json`` or ``.json.gz``.  Whatever the label, the bytes decide: gzip
is inflated (bounded, :mod:`postfix_mtasts.core.gunzip`), then read as JSON
(:mod:`postfix_mtasts.core.tlsreport`).
"""

from __future__ import annotations

import email
from email.message import Message

from attrs import frozen

from postfix_mtasts.core.gunzip import GZIP_MAGIC, GunzipRefused, gunzip
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.tlsreport import (
    MAX_REPORT_BYTES,
    ReportRefused,
    TlsReport,
    parse_report,
)
from postfix_mtasts.core.value import Value

__all__ = [
    "MAX_PARTS",
    "REPORT_MEDIA_TYPES",
    "Found",
    "decode_report",
    "looks_like_report",
    "reports_in_message",
]

#: The media types of RFC 8460 §5.3, always read.
REPORT_MEDIA_TYPES = frozenset({"application/tlsrpt+gzip", "application/tlsrpt+json"})
#: Types some senders use instead, read when the file name says JSON.
_LOOSE_TYPES = frozenset(
    {
        "application/gzip",
        "application/x-gzip",
        "application/json",
        "application/octet-stream",
        "text/json",
    }
)
_REPORT_SUFFIXES = (".json", ".json.gz", ".json.gzip")
#: The most MIME parts of one message looked at (a report mail has 2-3).
MAX_PARTS = 64


@frozen(repr=False)
class Found(Value):
    """What one item gave: a report, or why not; ``where`` names the item
    inside its file (``part 2 'x.json.gz'``), "" for the file itself."""

    where: str
    result: TlsReport | ReportRefused


def decode_report(data: bytes) -> TlsReport | ReportRefused:
    """The report in ``data``: gzip (by its magic bytes) or plain JSON."""
    if data.startswith(GZIP_MAGIC):
        inflated = gunzip(data, MAX_REPORT_BYTES)
        if isinstance(inflated, GunzipRefused):
            return ReportRefused(inflated.reason)
        data = inflated
    return parse_report(data)


def looks_like_report(data: bytes) -> bool:
    """Whether ``data`` is a report file rather than a mail message: gzip,
    or JSON (an object, perhaps after a BOM and white space)."""
    head = data[:64].removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return data.startswith(GZIP_MAGIC) or head.startswith(b"{")


def reports_in_message(data: bytes) -> list[Found]:
    """Every report attached to the mail message ``data``; one refusal
    when it carries none, or cannot be read as a message."""
    try:
        message = email.message_from_bytes(data)
        parts = _report_parts(message)
    except Exception as e:  # the email package on hostile input: a bad item
        return [Found("", ReportRefused(f"unreadable message ({type(e).__name__})"))]
    if isinstance(parts, ReportRefused):
        return [Found("", parts)]
    if not parts:
        return [Found("", ReportRefused("no TLS report attached to the message"))]
    return [Found(where, decode_report(payload)) for where, payload in parts]


def _report_parts(message: Message) -> list[tuple[str, bytes]] | ReportRefused:
    """(where, decoded bytes) of each part that holds a report."""
    found: list[tuple[str, bytes]] = []
    for number, part in enumerate(message.walk(), start=1):
        if number > MAX_PARTS:
            return ReportRefused(f"message has more than {MAX_PARTS} MIME parts")
        if part.is_multipart() or not _is_report(part):
            continue
        name = part.get_filename()
        where = f"part {number}" + (f" {quote(name, 80)}" if name else "")
        payload = part.get_payload(decode=True)  # bytes for a leaf part
        found.append((where, bytes(payload or b"")))
    return found


def _is_report(part: Message) -> bool:
    media_type = part.get_content_type()
    if media_type in REPORT_MEDIA_TYPES:
        return True
    name = (part.get_filename() or "").lower()
    return media_type in _LOOSE_TYPES and name.endswith(_REPORT_SUFFIXES)
