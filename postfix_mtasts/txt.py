# -*- test-case-name: tests.unit.test_txt -*-
"""What the ``_mta-sts`` TXT lookup found (spec A1, A9, A15, A16).

A TXT answer is records, no record (NXDOMAIN, NODATA) or a temporary failure;
:func:`txt_result` reads one DNS answer that way, and :func:`empty_result`
says by its rcode why an answer of any type holds nothing (the checker reads
its MX, A and TLSA answers with it too).  The transport that asks is
:class:`postfix_mtasts.dnsclient.DnsClient`, a :class:`TxtResolver`.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

import dns.rcode
from attrs import frozen
from dns.rdtypes.txtbase import TXTBase
from twisted.internet.defer import Deferred

from postfix_mtasts.core.dnsreply import TxtRdata
from postfix_mtasts.core.value import Value

__all__ = [
    "TxtFailure",
    "TxtNoRecord",
    "TxtRecords",
    "TxtResolver",
    "TxtResult",
    "empty_result",
    "txt_result",
]


@frozen(repr=False)
class TxtRecords(Value):
    """The TXT RRs found; each is its character-strings, not yet joined (A9)."""

    records: tuple[tuple[bytes, ...], ...]
    cname_chain: tuple[str, ...] = ()


@frozen(repr=False)
class TxtNoRecord(Value):
    """NXDOMAIN or NODATA: the name has no TXT record (spec A15)."""

    reason: str


@frozen(repr=False)
class TxtFailure(Value):
    """SERVFAIL, REFUSED, timeout, CNAME loop or malformed reply (spec A15)."""

    reason: str


TxtResult = TxtRecords | TxtNoRecord | TxtFailure


class TxtResolver(typing.Protocol):
    """Looks up the TXT RRset of exactly the name given (spec A1, A16)."""

    def lookup_txt(self, name: str) -> Deferred[TxtResult]: ...


def txt_result(
    rcode: dns.rcode.Rcode,
    rdatas: Sequence[object],
    cname_chain: tuple[str, ...] = (),
) -> TxtResult:
    """The TXT outcome of one answer: its rcode and the RRset at the end of
    ``cname_chain`` (A15): its TXT data, dnspython's or the reply reader's."""
    records = tuple(
        tuple(rdata.strings)
        for rdata in rdatas
        if isinstance(rdata, TXTBase | TxtRdata)
    )
    empty = empty_result(rcode, bool(records))
    return TxtRecords(records, cname_chain) if empty is None else empty


def empty_result(
    rcode: dns.rcode.Rcode, has_records: bool
) -> TxtNoRecord | TxtFailure | None:
    """Why an answer holds nothing, by its rcode (A15): NXDOMAIN, or NOERROR
    without records (NODATA), is no record; any other rcode is a failure
    named by its mnemonic (SERVFAIL, REFUSED...); None when NOERROR brought
    records."""
    if rcode == dns.rcode.NXDOMAIN:
        return TxtNoRecord("NXDOMAIN")
    if rcode != dns.rcode.NOERROR:
        return TxtFailure(dns.rcode.to_text(rcode))
    return None if has_records else TxtNoRecord("NODATA")
