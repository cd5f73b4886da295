"""Tests for postfix_mtasts.dnsanswer: what a lookup finds in a reply is
what it found when dnspython's Message was read (spec A11, A15)."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from dns.rdtypes.ANY.TXT import TXT
from hypothesis import given

from postfix_mtasts.core.dnsreply import TxtRdata, read_reply
from postfix_mtasts.core.dnstext import name_text
from postfix_mtasts.dnsanswer import MAX_CNAME_HOPS, Chase, DnsAnswer, parse_name
from postfix_mtasts.dnstransport import DnsError

from .dnsreplies import replies

IN = dns.rdataclass.IN


def _texts(rdatas: object) -> tuple[object, ...]:
    assert isinstance(rdatas, tuple | dns.rrset.RRset)
    return tuple(
        (tuple(r.strings), r.to_text())
        if isinstance(r, TXT | TxtRdata)
        else r.to_text()
        for r in rdatas
    )


def dnspython_outcome(wire: bytes) -> tuple[object, ...]:
    """What the lookup made of one reply when dnspython read it (the
    client's code before the reply reader, kept here as the reference)."""
    reply = dns.message.from_wire(wire)
    rdtype = reply.question[0].rdtype
    qname = current = reply.question[0].name
    chain: list[dns.name.Name] = []
    ttls: list[int] = []
    authenticated = bool(reply.flags & dns.flags.AD)
    rcode = reply.rcode()

    def texts() -> tuple[str, ...]:
        return tuple(n.to_text(omit_final_dot=True) for n in chain)

    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return ("answer", rcode, (), texts(), authenticated, None)
    target = current
    while True:
        found = reply.get_rrset(reply.answer, target, IN, rdtype)
        if found is not None:
            least = min([*ttls, int(found.ttl)])
            return ("answer", rcode, _texts(found), texts(), authenticated, least)
        cname = reply.get_rrset(reply.answer, target, IN, dns.rdatatype.CNAME)
        if cname is None or len(cname) == 0:
            break
        ttls.append(int(cname.ttl))
        target = cname[0].target
        if target == qname or target in chain:
            return ("error", f"CNAME loop at {target}")
        chain.append(target)
        if len(chain) > MAX_CNAME_HOPS:
            return ("error", f"CNAME chain longer than {MAX_CNAME_HOPS}")
    if rcode == dns.rcode.NXDOMAIN or target == current:
        ttl = min(ttls) if ttls else None
        for rrset in reply.authority:
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                ttl = min([*ttls, int(rrset.ttl), int(rrset[0].minimum)])
                break
        return ("answer", rcode, (), texts(), authenticated, ttl)
    return ("next", target.labels)


def reader_outcome(wire: bytes) -> tuple[object, ...]:
    reply = read_reply(wire)
    question = reply.question[0]
    chase = Chase(
        name_text(question.name), dns.rdatatype.RdataType.make(question.rdtype)
    )
    try:
        found = chase.read(reply)
    except DnsError as e:
        return ("error", e.reason)
    if not isinstance(found, DnsAnswer):
        return ("next", found)
    rdatas = _texts(found.rdatas)
    return (
        "answer",
        found.rcode,
        rdatas,
        found.cname_chain,
        found.authenticated,
        found.ttl,
    )


@given(replies())
def test_same_outcome_as_dnspython(wire: bytes) -> None:
    """Rcode, the records' text and TXT strings, the CNAME chain, the AD
    flag, the TTL or negative TTL, the next name to ask, a CNAME loop: all
    as when dnspython's Message was read (A11, A15, RFC 2308 §5)."""
    assert reader_outcome(wire) == dnspython_outcome(wire)


def header(an: int, ns: int = 0, flags: int = 0x8180) -> bytes:
    return struct.pack("!HHHHHH", 7, flags, 1, an, ns, 0)


QUESTION = b"\x07mta-sts\x07example\x03com\x00\x00\x01\x00\x01"  # A, at 12
HERE = b"\xc0\x0c"


def rr(rdtype: int, rdata: bytes, owner: bytes = HERE, ttl: int = 300) -> bytes:
    return owner + struct.pack("!HHIH", rdtype, 1, ttl, len(rdata)) + rdata


def test_ttl_top_bit_counts_as_zero() -> None:
    """A record whose TTL has its top bit set makes the answer's TTL 0
    (RFC 2181 §8), where dnspython kept the huge value."""
    wire = header(2) + QUESTION + rr(1, b"\x02" * 4, ttl=2**31) + rr(1, b"\x01" * 4)
    found = Chase("mta-sts.example.com", dns.rdatatype.A).read(read_reply(wire))
    assert isinstance(found, DnsAnswer)
    assert found.ttl == 0
    assert [r.to_text() for r in found.rdatas] == ["2.2.2.2", "1.1.1.1"]


def test_malformed_other_type_is_dns_error() -> None:
    """An MX rdata dnspython cannot parse fails the lookup as a DNS error
    (A15), naming the type and the name."""
    question = QUESTION[:-4] + b"\x00\x0f\x00\x01"
    wire = header(1) + question + rr(15, b"\x00\x0a\x05mx")
    chase = Chase("mta-sts.example.com", dns.rdatatype.MX)
    with pytest.raises(
        DnsError, match=r"malformed MX record for 'mta-sts\.example\.com'"
    ):
        chase.read(read_reply(wire))


def test_unknown_rcode_kept() -> None:
    """An rcode dnspython has no name for is still the answer's rcode."""
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0xFA000000, 0)
    wire = struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 1) + QUESTION + opt
    found = Chase("mta-sts.example.com", dns.rdatatype.A).read(read_reply(wire))
    assert isinstance(found, DnsAnswer)
    assert int(found.rcode) == 0xFA0
    assert found.rdatas == ()


def test_parse_name() -> None:
    """Plain names split without dnspython, others through it, and a name
    dnspython refuses is a DnsError quoting it."""
    assert parse_name("mta-sts.Example.com") == (b"mta-sts", b"Example", b"com", b"")
    assert parse_name("a\\.b.example.") == (b"a.b", b"example", b"")
    with pytest.raises(DnsError, match=r"invalid name 'a\.\.b'"):
        parse_name("a..b")


def test_negative_ttl_from_the_soa_rrset() -> None:
    """NODATA: the negative TTL is the least of the SOA RRset's TTLs and
    MINIMUM of its last record, other authority records aside (RFC 2308
    §5; dnspython keeps one SOA record, the last read)."""
    ns = rr(2, b"\x02ns" + HERE, ttl=5)
    soa = b"\x02ns" + HERE + b"\x02hm" + HERE + struct.pack("!5I", 1, 2, 3, 4, 600)
    soa_low = soa[:-4] + struct.pack("!I", 120)
    wire = header(0, 3) + QUESTION + ns + rr(6, soa_low, ttl=900) + rr(6, soa, ttl=700)
    found = Chase("mta-sts.example.com", dns.rdatatype.A).read(read_reply(wire))
    assert isinstance(found, DnsAnswer)
    assert (found.rdatas, found.ttl) == ((), 600)
    assert dnspython_outcome(wire)[5] == 600
