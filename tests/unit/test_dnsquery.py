"""Tests for postfix_mtasts.core.dnsquery: the query's wire form is the one
dnspython encodes for the same query (RFC 1035 §4.1, RFC 6891 §6.1)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import pytest

from postfix_mtasts.core.dnsquery import name_wire, query_wire, question_wire


@pytest.mark.parametrize(
    ("name", "rdtype", "dnssec"),
    [
        ("_mta-sts.example.com.", dns.rdatatype.TXT, False),
        ("mta-sts.ExAmPle.COM.", dns.rdatatype.A, False),
        ("mta-sts.example.com.", dns.rdatatype.AAAA, True),
        ("_25._tcp.mx.example.net.", dns.rdatatype.TLSA, True),
        (".", dns.rdatatype.DNSKEY, True),
        ("xn--bcher-kva.example.", dns.rdatatype.MX, False),
    ],
)
def test_same_wire_as_dnspython(
    name: str, rdtype: dns.rdatatype.RdataType, dnssec: bool
) -> None:
    """Header (id, RD and AD, one question, one additional), question and
    OPT record (payload, DO) equal dnspython's encoding octet for octet."""
    parsed = dns.name.from_text(name)
    expected = dns.message.make_query(
        parsed,
        rdtype,
        use_edns=0,
        payload=1232,
        want_dnssec=dnssec,
        flags=dns.flags.RD | dns.flags.AD,
        id=0xBEEF,
    ).to_wire()
    wire = name_wire(parsed.labels)
    got = query_wire(0xBEEF, wire, rdtype, payload=1232, dnssec=dnssec)
    assert got == expected
    question = question_wire(wire, rdtype)
    assert got[12 : 12 + len(question)] == question


def test_relative_name_refused() -> None:
    """A name without the root label has no wire form of its own."""
    with pytest.raises(ValueError, match="absolute"):
        name_wire((b"example", b"com"))
    with pytest.raises(ValueError, match="absolute"):
        name_wire(())
    assert name_wire((b"a", b"")) == b"\x01a\x00"
