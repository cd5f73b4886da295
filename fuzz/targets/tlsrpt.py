# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz the ``_smtp._tls`` TLSRPT record parser (RFC 8460 §3, spec H17, I).

Input: ``<record separator> <string separator> <payload>``
(fuzz/contract.txt_rrset).

Contract: ``parse_tlsrpt_records`` never raises (the checker reads these
records from any domain's DNS) and returns a TlsRptRecord with one or more
``mailto:`` or ``https:`` URIs, or a TlsRptInvalid with a one-line reason;
the way a record is cut into strings changes nothing.
"""

from __future__ import annotations

from fuzz.contract import require, single_line, txt_rrset
from postfix_mtasts.checker.tlsrpt import (
    TlsRptInvalid,
    TlsRptRecord,
    parse_tlsrpt_records,
)

_SCHEMES = ("mailto:", "https:")


def one_input(data: bytes) -> None:
    records = txt_rrset(data)
    result = parse_tlsrpt_records(records)
    if isinstance(result, TlsRptRecord):
        require(bool(result.rua), "a record without report URIs")
        for uri in result.rua:
            require(uri.lower().startswith(_SCHEMES), "rua URI %r", uri)
            require(single_line(uri), "rua URI %r", uri)
    else:
        require(isinstance(result, TlsRptInvalid), "result %r", result)
        require(single_line(result.reason), "reason %r", result.reason)
    joined = parse_tlsrpt_records([[b"".join(strings)] for strings in records])
    require(joined == result, "%r: %r, joined %r", records, result, joined)
