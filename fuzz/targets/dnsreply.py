# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz the DNS reply reader and the CNAME chase over it (spec A11, A15).

Input: the octets of a reply, as a server (or a spoofer) sends them.

Contract (core/dnsreply.py, dnsanswer.py): ``read_reply`` returns a Reply
or raises DnsReplyError with a one-line reason, nothing else.  A Reply's
names are well-formed (labels of at most 63 octets, at most 255 in all,
the root last) and its rdata lies inside the message.  Whenever dnspython
reads the same octets, the reader reads them too and agrees on the
header, the extended rcode, the question and the answer and authority
records' owners, types, classes and decoded data (A, AAAA, TXT, CNAME,
SOA MINIMUM).  The chase over an accepted reply ends in an answer, a name
to ask, or a DnsError; never another exception.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT

from fuzz.contract import require, single_line
from postfix_mtasts.core.dnsreply import (
    AddressRdata,
    DnsReplyError,
    Record,
    Reply,
    TxtRdata,
    read_reply,
)
from postfix_mtasts.core.dnstext import name_labels, name_text
from postfix_mtasts.dnsanswer import Chase, DnsAnswer
from postfix_mtasts.dnstransport import DnsError

_CHASED = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT, dns.rdatatype.MX)


def one_input(data: bytes) -> None:
    try:
        reply = read_reply(data)
    except DnsReplyError as e:
        require(single_line(str(e)) and bool(str(e)), "reason %r", str(e))
        reply = None
    try:
        message = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError):
        message = None
    if reply is None:
        require(message is None, "dnspython reads what the reader refused: %r", data)
        return
    check_reply(reply, data)
    if message is not None:
        compare(reply, message)
    if reply.question and reply.question[0].rdtype in _CHASED:
        question = reply.question[0]
        rdtype = dns.rdatatype.RdataType.make(question.rdtype)
        try:
            found = Chase(name_text(question.name), rdtype).read(reply)
        except DnsError as e:
            require(single_line(e.reason), "chase reason %r", e.reason)
            return
        require(isinstance(found, DnsAnswer | tuple), "chase gave %r", found)


def check_name(name: bytes) -> None:
    labels = name_labels(name)
    require(len(name) <= 255, "name of %d octets", len(name))
    require(all(len(label) <= 63 for label in labels), "label over 63 octets")
    require(b"".join(bytes((len(x),)) + x for x in labels) == name, "name %r", name)


def check_reply(reply: Reply, data: bytes) -> None:
    require(reply.wire == data, "wire changed")
    for question in reply.question:
        check_name(question.name)
    for record in reply.answer + reply.authority:
        check_name(record.name)
        end = record.offset + record.length
        require(0 < record.offset <= end <= len(data), "rdata at %r", record)
        require(0 <= record.ttl < 2**31, "TTL %d (RFC 2181 §8)", record.ttl)
        if isinstance(record.data, bytes):
            check_name(record.data)


def _data(record: Record) -> object:
    data = record.data
    if isinstance(data, AddressRdata | TxtRdata):
        return data.to_text()
    if isinstance(data, bytes):
        return name_text(data)
    return data


def _dnspython_data(rd: dns.rdata.Rdata) -> object:
    if rd.rdclass == 1 and rd.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return rd.to_text()
    if isinstance(rd, TXT):
        return rd.to_text()
    if isinstance(rd, CNAME):
        return rd.target.to_text(omit_final_dot=True)
    if isinstance(rd, SOA):
        return rd.minimum
    return None


def _wire(name: dns.name.Name) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in name.labels)


def compare(reply: Reply, message: dns.message.Message) -> None:
    """The reader and dnspython read the same reply."""
    require(reply.id == message.id, "id")
    require(reply.flags == int(message.flags), "flags")
    require(reply.rcode == int(message.rcode()), "rcode %d", reply.rcode)
    asked = [(_wire(q.name), q.rdtype, q.rdclass) for q in message.question]
    require([tuple(q) for q in reply.question] == asked, "question %r", asked)
    for records, rrsets in (
        (reply.answer, message.answer),
        (reply.authority, message.authority),
    ):
        ours = {(r.name.lower(), r.rdclass, r.rdtype, _data(r)) for r in records}
        theirs = {
            (
                _wire(rrset.name).lower(),
                rrset.rdclass,
                rrset.rdtype,
                _dnspython_data(rd),
            )
            for rrset in rrsets
            for rd in rrset
        }
        require(theirs <= ours, "records %r, dnspython %r", ours, theirs)
