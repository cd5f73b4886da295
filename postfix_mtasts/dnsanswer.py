# -*- test-case-name: tests.unit.test_dnsanswer -*-
"""What one lookup found, read from its replies as they come (spec A11).

:class:`Chase` follows a name's CNAMEs through the replies that
:mod:`postfix_mtasts.core.dnsreply` read: the asked type's records at the
end of the chain, or the name still to ask, or why there is nothing (the
rcode, and for NXDOMAIN and NODATA the negative TTL of RFC 2308 §5).  It
reads what dnspython's ``Message.get_rrset`` used to: records of class IN
whose owner is the name sought, case aside; an RRset's TTL is the least of
its records', and its data are the distinct ones in the order they came
(of a CNAME or SOA RRset, which holds one record, the last one read).
A, AAAA and TXT data are the reader's own values; other types' rdata
(MX, TLSA) is parsed by dnspython's per-rdata parser from its place in the
wire.  Used by :class:`postfix_mtasts.dnsclient.DnsClient`.
"""

from __future__ import annotations

import typing

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from attrs import frozen

from postfix_mtasts.core.dnsquery import name_wire
from postfix_mtasts.core.dnsreply import (
    CLASS_IN,
    CNAME,
    SOA,
    AddressRdata,
    Record,
    Reply,
    TxtRdata,
)
from postfix_mtasts.core.dnstext import name_labels, name_text, split_name
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.value import Value
from postfix_mtasts.dnstransport import DnsError

__all__ = ["MAX_CNAME_HOPS", "AnswerRdata", "Chase", "DnsAnswer", "parse_name"]

MAX_CNAME_HOPS = 8
_AD = 0x0020  # header flag: authenticated data
_ANSWERED = (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
# The types whose data the reply reader decodes itself; dnspython the rest.
_DECODED = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT})
_RCODES = {rcode.value: rcode for rcode in dns.rcode.Rcode}
#: An answer's record data: the reader's own for A, AAAA and TXT (each has
#: dnspython's ``to_text()``, TXT its ``strings``), dnspython's for others.
AnswerRdata = dns.rdata.Rdata | AddressRdata | TxtRdata
#: A name as the client carries it: its labels, the root's empty one last.
Labels = tuple[bytes, ...]


@frozen(repr=False)
class DnsAnswer(Value):
    """One lookup's outcome after CNAME chasing (spec A11).

    ``rdatas`` is the asked type's RRset at the end of ``cname_chain`` (empty
    for NXDOMAIN, NODATA and error rcodes); ``authenticated`` is the AD flag
    of every reply on the way.  ``ttl`` is the least TTL of the RRsets read
    (CNAMEs included), or for NXDOMAIN and NODATA the negative TTL of the
    SOA in the authority section (RFC 2308 §5); None when neither is known.
    """

    rcode: dns.rcode.Rcode
    rdatas: tuple[AnswerRdata, ...]
    cname_chain: tuple[str, ...]
    authenticated: bool
    ttl: int | None = None


def parse_name(name: str) -> Labels:
    """The labels of ``name``; plain names are split without dnspython."""
    labels = split_name(name)
    if labels is not None:
        return labels
    try:
        return dns.name.from_text(name).labels
    except dns.exception.DNSException as e:
        raise DnsError(f"invalid name {quote(name)}: {e}") from e


class Chase:
    """One lookup of ``name``/``rdtype`` and the CNAMEs it meets (A11).

    Hand each reply to :meth:`read`: it gives the answer, or the name to
    ask next when a chain stops short of the data; :class:`DnsError` for a
    CNAME loop, a chain longer than :data:`MAX_CNAME_HOPS` or a record
    dnspython cannot parse.
    """

    def __init__(self, name: str, rdtype: dns.rdatatype.RdataType) -> None:
        self._name = name
        self._rdtype = rdtype
        self.labels = parse_name(name)  # to ask first
        self._asked = name_wire(self.labels).lower()  # the name now asked
        self._keys = [self._asked]  # every name met, without case
        self._chain: list[bytes] = []  # the CNAME targets, in wire form
        self._authenticated = True
        self._ttls: list[int] = []  # of the CNAMEs read

    def read(self, reply: Reply) -> DnsAnswer | Labels:
        """The answer ``reply`` completes, or the labels to ask next."""
        self._authenticated = self._authenticated and bool(reply.flags & _AD)
        rcode = reply.rcode
        if rcode not in _ANSWERED:
            return self._answer(rcode, (), None)
        answer = [(r.name.lower(), r) for r in reply.answer if r.rdclass == CLASS_IN]
        target = self._asked
        while True:
            found = [
                r for key, r in answer if key == target and r.rdtype == self._rdtype
            ]
            if found:
                least = min([*self._ttls, *(r.ttl for r in found)])
                return self._answer(rcode, self._rdatas(found, reply.wire), least)
            cnames = [r for key, r in answer if key == target and r.rdtype == CNAME]
            if not cnames:
                break
            self._ttls.append(min(r.ttl for r in cnames))
            # A CNAME RRset holds one record: dnspython keeps the last read.
            alias = typing.cast(bytes, cnames[-1].data)
            target = alias.lower()
            if target in self._keys:
                raise DnsError(f"CNAME loop at {name_text(alias, final_dot=True)}")
            self._chain.append(alias)
            self._keys.append(target)
            if len(self._chain) > MAX_CNAME_HOPS:
                raise DnsError(f"CNAME chain longer than {MAX_CNAME_HOPS}")
        if rcode == dns.rcode.NXDOMAIN or target == self._asked:
            return self._answer(rcode, (), _negative_ttl(reply, self._ttls))
        self._asked = target  # the chain stops short of the data: ask its end
        return name_labels(self._chain[-1])

    def _answer(
        self, rcode: int, rdatas: tuple[AnswerRdata, ...], ttl: int | None
    ) -> DnsAnswer:
        chain = tuple(name_text(name) for name in self._chain)
        return DnsAnswer(_rcode(rcode), rdatas, chain, self._authenticated, ttl)

    def _rdatas(self, found: list[Record], wire: bytes) -> tuple[AnswerRdata, ...]:
        """The distinct data of ``found`` in order, as dnspython's RRset holds
        them: the reader's for A, AAAA and TXT, dnspython's for other types."""
        if self._rdtype in _DECODED:
            data = (r.data for r in found)
            return tuple(dict.fromkeys(d for d in data if isinstance(d, AnswerRdata)))
        try:
            rdatas = [
                dns.rdata.from_wire(
                    dns.rdataclass.IN, self._rdtype, wire, r.offset, r.length
                )
                for r in found
            ]
        except (dns.exception.DNSException, ValueError) as e:
            kind = dns.rdatatype.to_text(self._rdtype)
            raise DnsError(
                f"malformed {kind} record for {quote(self._name)}: {e}"
            ) from e
        return tuple(dict.fromkeys(rdatas))


def _rcode(value: int) -> dns.rcode.Rcode:
    rcode = _RCODES.get(value)
    return dns.rcode.Rcode.make(value) if rcode is None else rcode


def _negative_ttl(reply: Reply, ttls: list[int]) -> int | None:
    """How long a negative answer holds (RFC 2308 §5): the least of the SOA
    RRset's TTL and its record's MINIMUM field (an SOA RRset holds one
    record: the last read), and of the CNAMEs on the way."""
    for soa in reply.authority:
        if soa.rdtype == SOA:
            key = (soa.name.lower(), soa.rdclass)
            rrset = [
                r
                for r in reply.authority
                if r.rdtype == SOA and (r.name.lower(), r.rdclass) == key
            ]
            minimum = typing.cast(int, rrset[-1].data)
            return min([*ttls, *(r.ttl for r in rrset), minimum])
    return min(ttls) if ttls else None
