# -*- test-case-name: tests.unit.test_dnsreply -*-
"""A DNS reply read from its wire octets: pure, and strict about them.

The discovery path asks three questions per new domain (TXT, A, AAAA) and
reads little of each reply: the header, the question, the answer and
authority records, and in them A, AAAA, TXT, CNAME and SOA data.
Building dnspython's message objects for that took about an eighth of a
new domain's CPU; :func:`read_reply` reads those octets directly.  Any
other record keeps its rdata's place in the wire (``offset``, ``length``)
so the caller can have dnspython parse that one record.

A reply comes from outside and is hostile until read (RFC 1035 §4.1): a
name's compression pointer must point strictly backwards into what was
already read and at most 16 of them make a name, a label is at most 63
octets and a name at most 255, every record and rdata must fit in the
message and the decoded types must fill their rdata exactly, a TXT
record holds at least one character-string, at most one OPT record (in
the additional section, owned by the root) brings the extended rcode
(RFC 6891 §6.1.3), and nothing may follow the last record.  Each fault is
one :class:`DnsReplyError`; the work is bounded by the message's length.
A TTL with its top bit set is read as 0 (RFC 2181 §8).

Names stay in uncompressed wire form (``bytes``); ``name.lower()`` is
their case-insensitive key, since length octets are below ``A``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from postfix_mtasts.core.dnstext import address_text, txt_text

__all__ = [
    "AAAA",
    "CLASS_IN",
    "CNAME",
    "SOA",
    "TXT",
    "A",
    "AddressRdata",
    "DnsReplyError",
    "Question",
    "Record",
    "Reply",
    "TxtRdata",
    "read_reply",
]

A, CNAME, SOA, TXT, AAAA, _OPT = 1, 5, 6, 16, 28, 41
CLASS_IN = 1
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_TYPE_CLASS = struct.Struct("!HH")
_SOA_MINIMUM = struct.Struct("!I")
_MAX_NAME = 255
_MAX_POINTERS = 16  # dnspython's bound on a name's pointer chain
_TTL_TOP_BIT = 0x80000000
_MIN_QUESTION, _MIN_RECORD = 5, 11  # octets: root name, fixed fields


class DnsReplyError(ValueError):
    """The octets are not a well-formed DNS reply; the reason says why."""


class AddressRdata(NamedTuple):
    """An A or AAAA record's address, as dnspython's ``to_text()`` writes it."""

    text: str

    def to_text(self) -> str:
        return self.text


class TxtRdata(NamedTuple):
    """A TXT record's character-strings, as read (RFC 1035 §3.3.14)."""

    strings: tuple[bytes, ...]

    def to_text(self) -> str:
        return txt_text(self.strings)


#: What a record's data is read as: the address, the strings, a CNAME's
#: target name (wire form), an SOA's MINIMUM; None for the other types.
Rdata = AddressRdata | TxtRdata | bytes | int | None


class Question(NamedTuple):
    name: bytes
    rdtype: int
    rdclass: int


class Record(NamedTuple):
    """One resource record; ``offset``/``length``: its rdata in the wire."""

    name: bytes
    rdtype: int
    rdclass: int
    ttl: int
    data: Rdata
    offset: int
    length: int


class Reply(NamedTuple):
    """A reply as read; ``rcode`` includes the OPT record's extended bits."""

    id: int
    flags: int
    rcode: int
    counts: tuple[int, int, int, int]
    question: tuple[Question, ...]
    answer: tuple[Record, ...]
    authority: tuple[Record, ...]
    wire: bytes


def read_reply(wire: bytes) -> Reply:
    """Read ``wire``; :class:`DnsReplyError` if it is not a well-formed reply."""
    size = len(wire)
    if size < _HEADER.size:
        raise DnsReplyError(f"{size} octets: shorter than a DNS header")
    query_id, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    records = ancount + nscount + arcount
    if qdcount * _MIN_QUESTION + records * _MIN_RECORD > size - _HEADER.size:
        raise DnsReplyError("record counts exceed the message")
    pos = _HEADER.size
    questions = []
    for _ in range(qdcount):
        name, pos = _name(wire, pos, size)
        if pos + 4 > size:
            raise DnsReplyError("question runs past the end")
        rdtype, rdclass = _TYPE_CLASS.unpack_from(wire, pos)
        questions.append(Question(name, rdtype, rdclass))
        pos += 4
    answer, pos = _records(wire, pos, ancount, size)
    authority, pos = _records(wire, pos, nscount, size)
    additional, pos = _records(wire, pos, arcount, size, additional=True)
    if pos != size:
        raise DnsReplyError(f"{size - pos} octets after the last record")
    rcode = flags & 0xF
    for record in additional:
        if record.rdtype == _OPT:
            rcode |= (record.data if isinstance(record.data, int) else 0) >> 20 & 0xFF0
    return Reply(
        query_id,
        flags,
        rcode,
        (qdcount, ancount, nscount, arcount),
        tuple(questions),
        answer,
        authority,
        wire,
    )


def _records(
    wire: bytes, pos: int, count: int, size: int, *, additional: bool = False
) -> tuple[tuple[Record, ...], int]:
    records = []
    opt = False
    for _ in range(count):
        name, pos = _name(wire, pos, size)
        if pos + 10 > size:
            raise DnsReplyError("record header runs past the end")
        rdtype, rdclass, ttl, length = _RR.unpack_from(wire, pos)
        pos += 10
        end = pos + length
        if end > size:
            raise DnsReplyError(f"type {rdtype} rdata runs past the end")
        data: Rdata = None
        if rdtype == _OPT:
            if not additional or opt or name != b"\x00":
                raise DnsReplyError("OPT record misplaced, repeated or not the root's")
            opt = True
            data = ttl  # its TTL field carries the extended rcode and flags
        else:
            if ttl & _TTL_TOP_BIT:
                ttl = 0
            if not additional:
                data = _rdata(wire, rdtype, rdclass, pos, end)
        records.append(Record(name, rdtype, rdclass, ttl, data, pos, length))
        pos = end
    return tuple(records), pos


def _rdata(wire: bytes, rdtype: int, rdclass: int, pos: int, end: int) -> Rdata:
    """The decoded data of the types discovery reads, else None."""
    if rdclass == CLASS_IN and rdtype in (A, AAAA):
        if end - pos != (4 if rdtype == A else 16):
            raise DnsReplyError(f"type {rdtype} rdata of {end - pos} octets")
        return AddressRdata(address_text(wire[pos:end]))
    if rdtype == TXT:
        strings = []
        while pos < end:
            after = pos + 1 + wire[pos]
            if after > end:
                raise DnsReplyError("TXT character-string runs past its rdata")
            strings.append(wire[pos + 1 : after])
            pos = after
        if not strings:
            raise DnsReplyError("TXT record without a character-string")
        return TxtRdata(tuple(strings))
    if rdtype == CNAME:
        target, pos = _name(wire, pos, end)
        if pos != end:
            raise DnsReplyError("CNAME rdata longer than its name")
        return target
    if rdtype == SOA:
        _, pos = _name(wire, pos, end)  # MNAME
        _, pos = _name(wire, pos, end)  # RNAME
        if pos + 20 != end:
            raise DnsReplyError("SOA rdata is not two names and five numbers")
        (minimum,) = _SOA_MINIMUM.unpack_from(wire, end - 4)
        return int(minimum)
    return None


def _name(wire: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """The name at ``pos`` (uncompressed wire form) and the offset after it.

    Octets are read below ``end``; a pointer must point before the start of
    the piece being read, whose octets then must end before that start.
    """
    start = segment = pos
    after = -1  # where the name ends in the record: after its first pointer
    pieces: list[bytes] = []
    octets = 1  # the root's length octet
    pointers = 0
    while True:
        if pos >= end:
            raise DnsReplyError("name runs past the end")
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length < 64:
            following = pos + 1 + length
            octets += 1 + length
            if following > end:
                raise DnsReplyError("label runs past the end")
            if octets > _MAX_NAME:
                raise DnsReplyError("name longer than 255 octets")
            pos = following
            continue
        if length < 0xC0:
            raise DnsReplyError(f"unknown label type 0x{length & 0xC0:02x}")
        if pos + 1 >= end:
            raise DnsReplyError("compression pointer runs past the end")
        target = (length & 0x3F) << 8 | wire[pos + 1]
        if target >= segment:
            raise DnsReplyError("compression pointer does not point backwards")
        pointers += 1
        if pointers > _MAX_POINTERS:
            raise DnsReplyError(f"more than {_MAX_POINTERS} compression pointers")
        pieces.append(wire[start:pos])
        if after < 0:
            after = pos + 2
        end, segment, start, pos = segment, target, target, target
    if after < 0:
        return wire[start:pos], pos
    pieces.append(wire[start:pos])
    return b"".join(pieces), after
