"""Tests for postfix_mtasts.core.dnsreply and core.dnstext: a reply read from
its octets says what dnspython reads in them (spec A11, A15), and hostile
octets end in one DnsReplyError (RFC 1035 §4.1.4, RFC 2181 §8, RFC 6891)."""

from __future__ import annotations

import contextlib
import struct

import dns.ipv6
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from dns.rdtypes.ANY.TXT import TXT
from hypothesis import example, given
from hypothesis import strategies as st

from postfix_mtasts.core.dnsreply import (
    AddressRdata,
    DnsReplyError,
    Record,
    Reply,
    TxtRdata,
    read_reply,
)
from postfix_mtasts.core.dnstext import address_text, name_text, split_name, txt_text

from .dnsreplies import IN, ipv6, labels, replies

_RrsetView = tuple[str, int, int, int, list[object]]


def _data_view(rd: dns.rdata.Rdata) -> object:
    if rd.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return rd.to_text()
    if isinstance(rd, TXT):
        return (tuple(rd.strings), rd.to_text())
    if rd.rdtype == dns.rdatatype.CNAME:
        return rd.target.to_text(omit_final_dot=True)  # type: ignore[attr-defined]
    if rd.rdtype == dns.rdatatype.SOA:
        return rd.minimum  # type: ignore[attr-defined]
    return rd


def dnspython_view(wire: bytes) -> tuple[object, ...]:
    """What dnspython reads: header, question, answer and authority RRsets."""
    m = dns.message.from_wire(wire)
    questions = [(q.name.to_wire(), q.rdtype, q.rdclass) for q in m.question]
    sections = [
        [
            (r.name.to_text(), r.rdclass, r.rdtype, r.ttl, [_data_view(d) for d in r])
            for r in section
        ]
        for section in (m.answer, m.authority)
    ]
    return (m.id, int(m.flags), int(m.rcode()), questions, *sections)


def _record_view(record: Record, wire: bytes) -> object:
    data = record.data
    if isinstance(data, AddressRdata):
        return data.to_text()
    if isinstance(data, TxtRdata):
        return (data.strings, data.to_text())
    if isinstance(data, bytes):
        return name_text(data)
    if isinstance(data, int):
        return data
    rdclass = dns.rdataclass.RdataClass.make(record.rdclass)
    rdtype = dns.rdatatype.RdataType.make(record.rdtype)
    return dns.rdata.from_wire(rdclass, rdtype, wire, record.offset, record.length)


def _rrsets(records: tuple[Record, ...], wire: bytes) -> list[_RrsetView]:
    """Records grouped as dnspython groups them: by owner (case aside),
    class and type, in order; least TTL, distinct data."""
    groups: dict[tuple[bytes, int, int], list[Record]] = {}
    for r in records:
        groups.setdefault((r.name.lower(), r.rdclass, r.rdtype), []).append(r)
    views: list[_RrsetView] = []
    for group in groups.values():
        first = group[0]
        if first.rdtype in (dns.rdatatype.CNAME, dns.rdatatype.SOA):
            # A singleton: dnspython keeps the last record read, even when
            # it repeats an earlier one.
            data = [_record_view(group[-1], wire)]
        else:
            data = list(dict.fromkeys(_record_view(r, wire) for r in group))
        ttl = min(r.ttl for r in group)
        owner = name_text(first.name, final_dot=True)
        views.append((owner, first.rdclass, first.rdtype, ttl, data))
    return views


def reader_view(reply: Reply) -> tuple[object, ...]:
    questions = [(q.name, q.rdtype, q.rdclass) for q in reply.question]
    return (
        reply.id,
        reply.flags,
        reply.rcode,
        questions,
        _rrsets(reply.answer, reply.wire),
        _rrsets(reply.authority, reply.wire),
    )


@given(replies())
@example(
    # Three CNAMEs for one name, the last repeating the first: dnspython's
    # RRset holds the last one read, not the last distinct one.
    b"\x00\x00\x81\x00\x00\x01\x00\x04\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x01"
    b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00"
    b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x00\x00\x02\xc0\x0c"
    b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x00\x00\x04\x01\x00\xc0\x0c"
    b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x00\x00\x02\xc0\x0c"
)
def test_reader_agrees_with_dnspython(wire: bytes) -> None:
    """For replies as servers send them (compressed, mixed case, A, AAAA,
    TXT, CNAME, MX, SOA, EDNS extended rcodes), the reader gives the header,
    question, RRsets, TTLs and data dnspython reads (A11, A15)."""
    reply = read_reply(wire)
    assert reply_counts(wire) == reply.counts
    assert reader_view(reply) == dnspython_view(wire)


def reply_counts(wire: bytes) -> tuple[int, int, int, int]:
    qd, an, ns, ar = struct.unpack_from("!HHHH", wire, 4)
    return (qd, an, ns, ar)


@given(replies(), st.data())
def test_any_cut_is_one_error(wire: bytes, data: st.DataObject) -> None:
    """A reply cut short, or with octets after it, is a DnsReplyError."""
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(DnsReplyError):
        read_reply(wire[:cut])
    with pytest.raises(DnsReplyError, match="after the last record"):
        read_reply(wire + b"\x00")


@given(st.binary(max_size=600))
@example(b"\x00" * 12)
def test_arbitrary_octets_only_reply_error(wire: bytes) -> None:
    """Arbitrary octets read as a reply or fail with DnsReplyError only."""
    with contextlib.suppress(DnsReplyError):
        read_reply(wire)


# Hand-made replies: a header, then sections.
def header(
    qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x8180
) -> bytes:
    return struct.pack("!HHHHHH", 0xBEEF, flags, qd, an, ns, ar)


QUESTION = b"\x07example\x03com\x00" + struct.pack("!HH", 1, 1)  # at offset 12
HERE = b"\xc0\x0c"  # a pointer to the question's name


def rr(
    rdtype: int, rdata: bytes, owner: bytes = HERE, ttl: int = 300, rdclass: int = 1
) -> bytes:
    return owner + struct.pack("!HHIH", rdtype, rdclass, ttl, len(rdata)) + rdata


def test_hand_made_reply() -> None:
    """A reply with A, CNAME (compressed target) and an SOA in authority."""
    wire = (
        header(an=2, ns=1)
        + QUESTION
        + rr(1, b"\xc0\x00\x02\x01")
        + rr(5, b"\x03www" + HERE)
        + rr(
            6, b"\x02ns" + HERE + b"\x02hm" + HERE + struct.pack("!5I", 1, 2, 3, 4, 60)
        )
    )
    reply = read_reply(wire)
    assert reply.answer[0].data == AddressRdata("192.0.2.1")
    assert reply.answer[1].data == b"\x03www\x07example\x03com\x00"
    assert reply.authority[0].data == 60
    assert reply.question[0].name == b"\x07example\x03com\x00"
    assert reader_view(reply) == dnspython_view(wire)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x00" * 11, "shorter than a DNS header"),
        (header(an=3) + QUESTION + rr(1, b"\x01\x02\x03\x04"), "counts exceed"),
        (header(qd=5) + QUESTION, "counts exceed"),
        # Pointers: forwards, to themselves, into a later part of the name.
        (header(qd=1) + b"\xc0\x0e\x00\x00\x01\x00\x01", "backwards"),
        (header(qd=1) + b"\xc0\x0c" + b"\x00\x01\x00\x01", "backwards"),
        (header(an=1) + QUESTION + b"\x01a\xc0\x1d" + b"\x00" * 10, "backwards"),
        (header(an=1) + QUESTION + rr(5, b"\xc0\x29"), "backwards"),  # itself
        # Label types 01 and 10, a label or name past the end.
        (header(qd=1) + b"\x41" + b"\x00" * 8, "label type 0x40"),
        (header(qd=1) + b"\x81" + b"\x00" * 8, "label type 0x80"),
        (header(qd=1) + b"\x3fabc" + b"\x00" * 4, "label runs past"),
        (header(an=1) + QUESTION + rr(5, b"\x03www"), "name runs past"),
        (header(an=1) + QUESTION + rr(5, b"\xc0"), "pointer runs past"),
        # Records and rdata that do not fit.
        (
            header(an=1) + QUESTION + b"\xc0\x0c\x00\x01\x00\x01\x00\x00",
            "record header",
        ),
        (
            header(an=1) + QUESTION + rr(1, b"\x01\x02\x03\x04")[:-1],
            "runs past the end",
        ),
        (header(qd=1) + b"\x01a\x00\x00\x01\x00", "question runs past"),
        # Decoded types that do not fill their rdata exactly.
        (header(an=1) + QUESTION + rr(1, b"\x01\x02\x03"), "rdata of 3 octets"),
        (header(an=1) + QUESTION + rr(1, b"\x01\x02\x03\x04\x05"), "rdata of 5"),
        (header(an=1) + QUESTION + rr(28, bytes(15)), "rdata of 15 octets"),
        (header(an=1) + QUESTION + rr(16, b"\x05abc"), "character-string runs"),
        (header(an=1) + QUESTION + rr(5, HERE + b"\x00"), "longer than its name"),
        (header(an=1) + QUESTION + rr(6, HERE + HERE + bytes(19)), "five numbers"),
        (header(an=1) + QUESTION + rr(6, HERE + HERE + bytes(21)), "five numbers"),
        # OPT only once, only in the additional section, only the root's.
        (header(an=1) + QUESTION + rr(41, b"", owner=b"\x00"), "OPT record"),
        (header(ar=2) + QUESTION + rr(41, b"", b"\x00") * 2, "OPT record"),
        (header(ar=1) + QUESTION + rr(41, b"", owner=HERE), "OPT record"),
        (header(an=1) + QUESTION + rr(1, bytes(4)) + b"\x00", "1 octets after"),
    ],
)
def test_hostile_reply(wire: bytes, reason: str) -> None:
    """Each malformation is one DnsReplyError naming it, never another
    exception (A15: a malformed reply is a DNS failure)."""
    with pytest.raises(DnsReplyError, match=reason):
        read_reply(wire)
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(wire)  # dnspython refuses it too


def test_empty_txt_rdata_refused() -> None:
    """A TXT record with no character-string at all (RFC 1035 §3.3.14 asks
    for one or more) is one DnsReplyError.  Not cross-checked against
    dnspython: its oldest supported version (2.4) still reads it."""
    with pytest.raises(DnsReplyError, match="without a character-string"):
        read_reply(header(an=1) + QUESTION + rr(16, b""))


def test_pointer_chain_is_bounded() -> None:
    """At most 16 pointers make a name, as in dnspython: a long chain of
    backward pointers cannot make reading a name cost more."""
    base = 12 + 11  # the first record's rdata: after a root owner and 10 octets
    chain = b"\x01a\x00"
    offsets = [base]
    for _ in range(16):  # piece k: label "b", then a pointer to piece k - 1
        offsets.append(base + len(chain))
        chain += b"\x01b" + struct.pack("!H", 0xC000 | offsets[-2])
    body = header(qd=0, an=2) + rr(65280, chain, owner=b"\x00")
    pointing = struct.pack("!H", 0xC000 | offsets[16])  # 17 pointers
    with pytest.raises(DnsReplyError, match="more than 16 compression pointers"):
        read_reply(body + rr(1, bytes(4), owner=pointing))
    pointing = struct.pack("!H", 0xC000 | offsets[15])  # 16 pointers
    reply = read_reply(body + rr(1, bytes(4), owner=pointing))
    assert reply.answer[1].name == b"\x01b" * 15 + b"\x01a\x00"


def test_name_longer_than_255_octets() -> None:
    """A name over 255 octets is refused, also when compression builds it
    from pieces that are each short enough."""
    long_label = b"\x3f" + b"x" * 63
    piece = long_label * 3 + b"\x00"  # 193 octets
    with pytest.raises(DnsReplyError, match="longer than 255"):
        read_reply(header() + long_label * 4 + b"\x00" + b"\x00\x01\x00\x01")
    wire = header(an=1) + b"\x00" * 0 + piece[:0]
    question = piece + b"\x00\x01\x00\x01"
    owner = long_label + b"\xc0\x0c"  # 64 + 193 octets
    wire = header(an=1) + question + rr(1, bytes(4), owner=owner)
    with pytest.raises(DnsReplyError, match="longer than 255"):
        read_reply(wire)
    fits = b"\x3d" + b"x" * 61 + b"\xc0\x0c"  # 62 + 193 = 255
    assert len(read_reply(header(an=1) + question + rr(1, bytes(4), fits)).answer) == 1


def test_ttl_with_top_bit_is_zero() -> None:
    """A TTL with its top bit set is read as 0 (RFC 2181 §8)."""
    wire = (
        header(an=2)
        + QUESTION
        + rr(1, bytes(4), ttl=2**31)
        + rr(1, bytes(4), ttl=2**31 - 1)
    )
    assert [r.ttl for r in read_reply(wire).answer] == [0, 2**31 - 1]


def test_extended_rcode() -> None:
    """The OPT record's TTL brings the rcode's upper 8 bits (RFC 6891 §6.1.3);
    other additional records are kept out of the answer."""
    opt = rr(41, b"", owner=b"\x00", ttl=0x01000000, rdclass=1232)
    glue = rr(1, b"\x01\x02\x03")  # not decoded: the additional section
    wire = header(ar=2, flags=0x8180 | 0x0003) + QUESTION + glue + opt
    reply = read_reply(wire)
    assert reply.rcode == 0x13
    assert reply.answer == ()
    assert reply.counts == (1, 0, 0, 2)


def test_other_types_keep_their_place() -> None:
    """An MX (or any type not decoded) keeps its rdata's offset and length,
    for dnspython's per-rdata parser."""
    mx = struct.pack("!H", 10) + b"\x02mx" + HERE
    wire = header(an=1) + QUESTION + rr(15, mx)
    (record,) = read_reply(wire).answer
    assert record.data is None
    assert wire[record.offset : record.offset + record.length] == mx
    mx_type = dns.rdatatype.MX
    parsed = dns.rdata.from_wire(IN, mx_type, wire, record.offset, record.length)
    assert parsed.to_text() == "10 mx.example.com."


@given(st.lists(labels, max_size=5))
def test_name_text_as_dnspython(name: list[bytes]) -> None:
    """Names are written as dnspython writes them: escapes included."""
    parsed = dns.name.Name([*name, b""])
    wire = b"".join(bytes((len(label),)) + label for label in parsed.labels)
    assert name_text(wire) == parsed.to_text(omit_final_dot=True)
    assert name_text(wire, final_dot=True) == parsed.to_text()


@given(ipv6)
@example(bytes(16))
@example(bytes(12) + b"\x01\x02\x03\x04")
@example(bytes(10) + b"\xff\xff\x01\x02\x03\x04")
@example(bytes(11) + b"\x01" + bytes(4))
@example(b"\x00\x01" + bytes(2) + b"\x00\x01" + bytes(10))
def test_ipv6_text_as_dnspython(octets: bytes) -> None:
    """AAAA addresses are written as dnspython writes them."""
    assert address_text(octets) == dns.ipv6.inet_ntoa(octets)


@given(st.lists(st.binary(max_size=30), min_size=1, max_size=3))
def test_txt_text_as_dnspython(strings: list[bytes]) -> None:
    """A TXT record's presentation is dnspython's."""
    txt = TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
    assert txt_text(tuple(strings)) == txt.to_text()


@given(
    st.one_of(
        st.text(alphabet="abcXYZ019-_.", max_size=30),
        st.text(max_size=12),
        st.sampled_from(["@", ".", "a..b", "a.", "é.example", "a\\.b", "x" * 64]),
        st.just(".".join(["x" * 63] * 4)),
        st.just(".".join(["x" * 62] * 4) + "." + "y"),
    )
)
def test_split_name_as_dnspython(text: str) -> None:
    """Plain names split to dnspython's labels; the rest is left to it."""
    labels_ = split_name(text)
    if labels_ is not None:
        assert labels_ == dns.name.from_text(text).labels
    elif text.isascii() and text.replace(".", "").isalnum() and text.strip("."):
        with pytest.raises(dns.exception.DNSException):
            dns.name.from_text(text)
