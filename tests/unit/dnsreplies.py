"""DNS replies built by dnspython, for the reply reader's tests and fuzz seeds.

Hypothesis strategies draw replies the way servers send them: compressed
names of mixed case sharing suffixes with the question, several record
types, CNAME chains, an SOA in the authority section, EDNS with an
extended rcode.  ``build`` packs one with dnspython (compression on).
"""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from hypothesis import strategies as st

IN = dns.rdataclass.IN
#: (owner index, type word, data) as drawn; owners index the name pool.
RecordSpec = tuple[int, str, object]

_LETTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
labels = st.one_of(
    st.binary(min_size=1, max_size=12).filter(lambda b: len(b) <= 63),
    st.lists(st.sampled_from(list(_LETTERS)), min_size=1, max_size=10).map(bytes),
    st.sampled_from([b"_mta-sts", b"mta-sts", b"Example", b"COM", b"a.b", b"\\"]),
)
#: A base name of 1-3 labels, and 2-5 names under it (shared suffixes).
names = st.lists(labels, min_size=1, max_size=3).flatmap(
    lambda base: st.lists(
        st.lists(labels, max_size=2).map(lambda head: (*head, *base)),
        min_size=2,
        max_size=5,
    )
)
_groups = st.one_of(st.just(0), st.just(0xFFFF), st.integers(0, 0xFFFF))
ipv6 = st.lists(_groups, min_size=8, max_size=8).map(
    lambda gs: b"".join(g.to_bytes(2, "big") for g in gs)
)
txt_strings = st.lists(st.binary(max_size=40), min_size=1, max_size=3)
ttls = st.integers(0, 2**31 - 1)


def name(pool: list[tuple[bytes, ...]], index: int) -> dns.name.Name:
    return dns.name.Name([*pool[index % len(pool)], b""])


def rdata(kind: str, data: object, pool: list[tuple[bytes, ...]]) -> dns.rdata.Rdata:
    """The dnspython rdata of a drawn record."""
    if kind == "A":
        assert isinstance(data, bytes)
        return dns.rdata.from_wire(IN, dns.rdatatype.A, data, 0, 4)
    if kind == "AAAA":
        assert isinstance(data, bytes)
        return dns.rdata.from_wire(IN, dns.rdatatype.AAAA, data, 0, 16)
    if kind == "TXT":
        assert isinstance(data, list)
        return TXT(IN, dns.rdatatype.TXT, data)
    assert isinstance(data, int)
    if kind == "CNAME":
        return CNAME(IN, dns.rdatatype.CNAME, name(pool, data))
    if kind == "MX":
        return MX(IN, dns.rdatatype.MX, data % 100, name(pool, data))
    mname, rname = name(pool, data), name(pool, data + 1)
    return SOA(IN, dns.rdatatype.SOA, mname, rname, data, 7200, 900, 86400, data % 7000)


records = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 1, 2, 3, 4]),
        st.sampled_from(["A", "AAAA", "TXT", "CNAME", "CNAME", "MX"]),
        st.integers(0, 2**16),
    ).flatmap(
        lambda spec: st.tuples(
            st.just(spec[0]),
            st.just(spec[1]),
            {
                "A": st.binary(min_size=4, max_size=4),
                "AAAA": ipv6,
                "TXT": txt_strings,
            }.get(spec[1], st.just(spec[2])),
            ttls,
        )
    ),
    max_size=6,
)


@st.composite
def replies(draw: st.DrawFn) -> bytes:
    """A reply to a query for one of the drawn names, compressed."""
    pool = draw(names)
    qtype = draw(st.sampled_from(["A", "AAAA", "TXT", "MX"]))
    query = dns.message.make_query(
        name(pool, 0),
        dns.rdatatype.from_text(qtype),
        use_edns=draw(st.sampled_from([None, 0])),
        flags=dns.flags.RD | dns.flags.AD,
        id=draw(st.integers(0, 0xFFFF)),
    )
    reply = dns.message.make_response(query)
    rcodes = [0, 0, 0, 0, 0, 3, 3, 2, 5, 16, 4000]
    reply.set_rcode(dns.rcode.Rcode.make(draw(st.sampled_from(rcodes))))
    if draw(st.booleans()):
        reply.flags |= dns.flags.AD
    for section, specs in (
        (reply.answer, draw(records)),
        (reply.authority, draw(st.lists(st.integers(0, 2**16), max_size=2))),
    ):
        for spec in specs:
            owner: int
            kind: str
            data: object
            ttl: int
            if isinstance(spec, int):  # an SOA in the authority section
                owner, kind, data, ttl = spec % 3, "SOA", spec, spec * 7
            else:
                owner, kind, data, ttl = spec
            rd = rdata(kind, data, pool)
            rrset = reply.find_rrset(
                section,
                name(pool, owner),
                IN,
                rd.rdtype,
                create=True,
                force_unique=draw(st.booleans()),  # a record of its own
            )
            rrset.add(rd, ttl)
    return build(reply)


def build(reply: dns.message.Message) -> bytes:
    """The reply's wire form; an rcode above 15 needs EDNS, so it gets it."""
    rcode = reply.rcode()
    if rcode > 15 and reply.edns < 0:
        reply.use_edns(0)
        reply.set_rcode(rcode)
    return reply.to_wire(max_size=65535)
