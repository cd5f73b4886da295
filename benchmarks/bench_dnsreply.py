"""DNS reply reading, in-process and single-threaded: dnspython against the
reply reader, and a whole ``DnsClient.lookup`` on a fake reactor.

The three replies a new domain's discovery reads, packed by dnspython as
a resolver sends them (compressed, EDNS0 OPT record):

- ``a``: ``mta-sts.example.com`` A, one address;
- ``txt``: ``_mta-sts.example.com`` TXT, one record of two strings;
- ``nodata``: ``mta-sts.example.com`` AAAA, no answer, the zone's SOA in
  the authority section (the negative TTL comes from it).

Timed per reply, each a ``time.perf_counter`` loop of ``--seconds``,
best of ``--reps`` (microseconds per reply):

- ``from_wire``: ``dns.message.from_wire`` alone;
- ``dnspython``: from_wire, then what the client read from the Message
  before the reply reader (``get_rrset`` of the type and of CNAME, the
  records' text or strings, the SOA's TTL and MINIMUM);
- ``read_reply``: :func:`postfix_mtasts.core.dnsreply.read_reply` alone;
- ``reader``: read_reply, then :class:`postfix_mtasts.dnsanswer.Chase`;
- ``lookup``: ``DnsClient.lookup`` from the call to its result, through
  the UDP exchange (query packed, 0x20 case mixing, reply accepted and
  read), with a fake reactor that hands the reply back at once.

``lookup`` runs on whatever tree is first on the path, so the tree before
the reply reader can be timed the same way::

    .venv/bin/python benchmarks/bench_dnsreply.py [--seconds 1] [--reps 5]
    git archive <commit> postfix_mtasts | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/bench_dnsreply.py --lookup-only
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock

SERVER = ("127.0.0.1", 53)
_QUERY = {
    "a": ("mta-sts.example.com.", "A"),
    "txt": ("_mta-sts.example.com.", "TXT"),
    "nodata": ("mta-sts.example.com.", "AAAA"),
}
_SOA = "ns1.example.com. hostmaster.example.com. 2024010101 7200 900 1209600 300"


def replies() -> dict[str, bytes]:
    """The three replies, as a resolver sends them."""
    out = {}
    for kind, (name, rdtype) in _QUERY.items():
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, id=7)
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.RA
        if kind == "a":
            reply.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.7"))
        elif kind == "txt":
            record = '"v=STSv1; " "id=20240101T000000"'
            reply.answer.append(dns.rrset.from_text(name, 300, "IN", "TXT", record))
        else:
            soa = dns.rrset.from_text("example.com.", 3600, "IN", "SOA", _SOA)
            reply.authority.append(soa)
        out[kind] = reply.to_wire()
    return out


def dnspython_read(wire: bytes) -> object:
    """What the client read from a dnspython Message before the reader."""
    reply = dns.message.from_wire(wire)
    question = reply.question[0]
    found = reply.get_rrset(
        reply.answer, question.name, dns.rdataclass.IN, question.rdtype
    )
    if found is not None:
        if question.rdtype == dns.rdatatype.TXT:
            return found.ttl, [tuple(r.strings) for r in found]
        return found.ttl, [r.to_text() for r in found]
    reply.get_rrset(reply.answer, question.name, dns.rdataclass.IN, dns.rdatatype.CNAME)
    for rrset in reply.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return min(rrset.ttl, rrset[0].minimum)
    return None


def per_call_us(call: Callable[[], object], seconds: float, reps: int) -> float:
    """Best of ``reps`` loops of about ``seconds``: microseconds per call."""
    best = float("inf")
    for _ in range(reps):
        n, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(100):
                call()
            n += 100
            now = time.perf_counter()
            if now >= deadline:
                break
        best = min(best, (now - start) / n * 1e6)
    return best


class _Port:
    def __init__(self, protocol: DatagramProtocol) -> None:
        self.protocol = protocol
        self.sent = b""

    def connect(self, host: str, port: int) -> None:
        pass

    def write(self, datagram: bytes, addr: object = None) -> None:
        self.sent = datagram

    def stopListening(self) -> None:  # noqa: N802 (Twisted's name)
        pass


class _Reactor(Clock):
    """A clock with a UDP port per query that keeps what was sent."""

    port: _Port

    def listenUDP(  # noqa: N802 (Twisted's name)
        self, port: int, protocol: DatagramProtocol, interface: str = ""
    ) -> _Port:
        self.port = _Port(protocol)
        return self.port


def lookup_call(kind: str, wire: bytes) -> Callable[[], object]:
    """One ``DnsClient.lookup`` answered with ``wire`` (id and question,
    in the case sent, copied from the query)."""
    from postfix_mtasts.dnsclient import DnsClient  # the tree on the path

    reactor = _Reactor()
    client = DnsClient(reactor, [SERVER])  # type: ignore[arg-type]
    name, rdtype = _QUERY[kind]
    qtype = dns.rdatatype.from_text(rdtype)
    question_end = 12 + len(dns.name.from_text(name).to_wire() or b"") + 4
    rest = wire[question_end:]
    flags_counts = wire[2:12]

    def call() -> object:
        d = client.lookup(name.rstrip("."), qtype)
        sent = reactor.port.sent
        reply = sent[:2] + flags_counts + sent[12:question_end] + rest
        reactor.port.protocol.datagramReceived(reply, SERVER)
        results: list[object] = []
        d.addBoth(results.append)
        return results[0]

    return call


def reading(kind: str, wire: bytes, seconds: float, reps: int) -> dict[str, float]:
    """The four ways of reading ``wire``, timed."""
    from postfix_mtasts.core.dnsreply import read_reply
    from postfix_mtasts.dnsanswer import Chase

    name, rdtype = _QUERY[kind]
    qtype = dns.rdatatype.from_text(rdtype)
    return {
        "from_wire": per_call_us(lambda: dns.message.from_wire(wire), seconds, reps),
        "dnspython": per_call_us(lambda: dnspython_read(wire), seconds, reps),
        "read_reply": per_call_us(lambda: read_reply(wire), seconds, reps),
        "reader": per_call_us(
            lambda: Chase(name, qtype).read(read_reply(wire)), seconds, reps
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--lookup-only", action="store_true")
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    for kind, wire in replies().items():
        row: dict[str, float] = {}
        lookup = lookup_call(kind, wire)
        answer = lookup()
        assert "DnsAnswer" in type(answer).__name__, answer
        if not args.lookup_only:
            row.update(reading(kind, wire, args.seconds, args.reps))
        row["lookup"] = per_call_us(lookup, args.seconds, args.reps)
        figures[kind] = row
        cells = "  ".join(f"{k} {v:7.1f}" for k, v in row.items())
        print(f"{kind:7} {len(wire):4d} octets  {cells}  (us per reply)")
    print(json.dumps({"us_per_reply": figures}))


if __name__ == "__main__":
    main()
