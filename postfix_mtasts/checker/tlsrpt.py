# -*- test-case-name: tests.unit.test_checker_tlsrpt -*-
"""Parse the ``_smtp._tls`` TLSRPT record (RFC 8460 §3; spec H17, I).

Pure.  ``tlsrpt-record = %s"v=TLSRPTv1" 1*(field-delim tlsrpt-field)
[field-delim]``; ``rua`` is required: one or more comma-separated
``mailto:`` or ``https:`` URIs, in which ``,`` ``!`` and ``;`` must be
%-encoded.  Records not beginning ``v=TLSRPTv1`` (then WSP or ``;``) are
discarded; not exactly one left means the domain has no TLSRPT.  Unknown
fields are ignored, a duplicate field keeps the first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from attrs import frozen

from postfix_mtasts.core.record import (
    is_ext_value,
    split_tag_field,
    split_tag_record,
    version_prefix,
)
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.value import Value

__all__ = ["TlsRptInvalid", "TlsRptRecord", "parse_tlsrpt_records"]

_PREFIX = version_prefix("TLSRPTv1")
_MAILBOX = re.compile(r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_WSP = " \t"


@frozen(repr=False)
class TlsRptRecord(Value):
    """A valid record: its report URIs, in order."""

    rua: tuple[str, ...]
    ignored: tuple[str, ...] = ()  # unknown field names


@frozen(repr=False)
class TlsRptInvalid(Value):
    """No usable record (the domain then has no TLSRPT, RFC 8460 §3)."""

    reason: str


def parse_tlsrpt_records(
    records: Sequence[Sequence[bytes]],
) -> TlsRptRecord | TlsRptInvalid:
    """The one ``v=TLSRPTv1`` record of a TXT RRset, strings joined as-is."""
    joined = [b"".join(strings) for strings in records]
    found = [raw for raw in joined if _PREFIX.match(raw)]
    if len(found) != 1:
        return TlsRptInvalid(
            f"{len(found)} TXT records begin with 'v=TLSRPTv1', need exactly one"
            f" ({len(joined)} record(s) seen)"
        )
    raw = found[0]
    if not raw.isascii():
        return TlsRptInvalid(f"record {quote(raw)} is not US-ASCII")
    return _parse(raw.decode("ascii"))


def _parse(text: str) -> TlsRptRecord | TlsRptInvalid:
    _, fields = split_tag_record(text, "TLSRPTv1")
    rua: tuple[str, ...] | None = None
    ignored: list[str] = []
    for field in fields:
        tag = split_tag_field(field)
        if tag is None:
            return TlsRptInvalid(f"field {quote(field)} is not name=value")
        name, value = tag
        if name == "rua" and rua is None:
            uris = tuple(uri.strip(_WSP) for uri in value.split(","))
            if problem := next(filter(None, map(_uri_problem, uris)), None):
                return TlsRptInvalid(problem)
            rua = uris
        elif not is_ext_value(value):
            return TlsRptInvalid(f"field {quote(field)} has an invalid value")
        elif name not in ("rua", "v"):
            ignored.append(name)
    if rua is None:
        return TlsRptInvalid("no rua= field (where reports go) in the record")
    return TlsRptRecord(rua, tuple(ignored))


def _uri_problem(uri: str) -> str | None:
    """Why ``uri`` is not a usable report URI, or None (RFC 8460 §3)."""
    if not uri:
        return "empty URI in rua="
    if "!" in uri or any(c in uri for c in _WSP):
        return f"rua URI {quote(uri)} has an unencoded '!' or a space"
    if any(c < " " or c == "\x7f" for c in uri):  # urlsplit would drop CR, LF
        return f"rua URI {quote(uri)} has a control character"
    scheme, _, rest = uri.partition(":")
    if scheme.lower() == "mailto":
        if not _MAILBOX.fullmatch(rest.split("?")[0]):
            return f"rua URI {quote(uri)} is not mailto:<address>"
        return None
    if scheme.lower() == "https":
        try:
            host = urlsplit(uri).hostname
        except ValueError:  # e.g. an unclosed IPv6 bracket, "https://[x"
            return f"rua URI {quote(uri)} is not a valid https: URI"
        if not host:
            return f"rua URI {quote(uri)} has no host"
        return None
    return f"rua URI {quote(uri)} is neither mailto: nor https:"
