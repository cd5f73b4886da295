"""Tests for postfix_mtasts.dnsclient and .txt: DNS messages over fake UDP/TCP transports."""

from __future__ import annotations

import itertools
import os
import struct
import tempfile

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.dnsclient import (
    DnsAnswer,
    DnsClient,
    DnsError,
    DnsTimeoutError,
    system_nameservers,
)
from postfix_mtasts.txt import (
    TxtFailure,
    TxtNoRecord,
    TxtRecords,
    empty_result,
    txt_result,
)

NS1 = ("192.0.2.53", 53)
NS2 = ("2001:db8::53", 5353)
NAME = "_mta-sts.example.com"


class FakeUdpPort:
    """A listening UDP port that records what is sent through it."""

    def __init__(self, protocol, interface):
        self.protocol = protocol
        self.interface = interface
        self.connected = None
        self.sent = []
        self.stopped = False

    def connect(self, host, port):
        self.connected = (host, port)

    def write(self, datagram, addr=None):
        assert addr in (None, self.connected), "connected: no other peer"
        self.sent.append((datagram, addr or self.connected))

    def stopListening(self):
        self.stopped = True


class FakeDnsReactor(MemoryReactorClock):
    """MemoryReactorClock plus listenUDP (which MemoryReactor lacks)."""

    def __init__(self):
        super().__init__()
        self.udp_ports = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):  # noqa: N803
        assert port == 0, "always an ephemeral port"
        udp_port = FakeUdpPort(protocol, interface)
        self.udp_ports.append(udp_port)
        protocol.makeConnection(udp_port)
        return udp_port


def tcp_client(reactor, index=0):
    """The TCP protocol the client built for its connection number ``index``."""
    host, port, factory, timeout, _bind = reactor.tcpClients[index]
    return (host, port, timeout), factory, factory.buildProtocol(None)


def failure_reason(result):
    assert isinstance(result, TxtFailure), result
    return result.reason


def sent_query(port):
    [(datagram, _addr)] = port.sent
    return dns.message.from_wire(datagram)


def response(query, *answer, rcode=dns.rcode.NOERROR, flags=0):
    """A reply to ``query``; ``answer`` holds (name, type, rdata texts...)."""
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    reply.flags |= flags
    for name, rdtype, *texts in answer:
        owner = dns.name.from_text(name)
        reply.answer.append(dns.rrset.from_text(owner, 300, "IN", rdtype, *texts))
    return reply


def reply_udp(port, *answer, rcode=dns.rcode.NOERROR, flags=0, source=None):
    reply = response(sent_query(port), *answer, rcode=rcode, flags=flags)
    port.protocol.datagramReceived(reply.to_wire(), source or port.sent[0][1])
    return reply


class DnsClientTxtTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeDnsReactor()
        self.client = DnsClient(self.reactor, [NS1], timeout_s=5.0, attempts=2)

    def lookup(self, name=NAME):
        return self.client.lookup_txt(name)

    def port(self, index=-1):
        return self.reactor.udp_ports[index]

    def test_multi_string_records(self):
        """Each TXT RR comes back as its strings, unjoined, in order (A9, A7)."""
        d = self.lookup()
        reply_udp(self.port(), (NAME, "TXT", '"v=STSv1; i" "d=abc"', '"other"'))
        result = self.successResultOf(d)
        self.assertEqual(  # RR order inside an RRset carries no meaning
            sorted(result.records), [(b"other",), (b"v=STSv1; i", b"d=abc")]
        )
        self.assertEqual(result.cname_chain, ())
        self.assertTrue(self.port().stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_exact_qname_no_parent(self):
        """Exactly ``_mta-sts.<domain>`` is asked, TXT IN, nothing else (A1, A16)."""
        d = self.lookup("_mta-sts.mail.example.com")
        query = sent_query(self.port())
        self.assertEqual(len(query.question), 1)
        question = query.question[0]
        self.assertEqual(question.name.to_text().lower(), "_mta-sts.mail.example.com.")
        self.assertEqual(question.rdtype, dns.rdatatype.TXT)
        self.assertEqual(self.port().sent[0][1], NS1)
        reply_udp(self.port(), rcode=dns.rcode.NXDOMAIN)
        self.assertEqual(self.successResultOf(d), TxtNoRecord("NXDOMAIN"))
        self.assertEqual(len(self.reactor.udp_ports), 1)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_nxdomain(self):
        """NXDOMAIN means no record, not a failure (A15)."""
        d = self.lookup()
        reply_udp(self.port(), rcode=dns.rcode.NXDOMAIN)
        self.assertEqual(self.successResultOf(d), TxtNoRecord("NXDOMAIN"))

    def test_nodata(self):
        """NOERROR without a TXT RRset (NODATA) means no record (A15)."""
        d = self.lookup()
        reply_udp(self.port(), (NAME, "A", "192.0.2.1"))
        self.assertEqual(self.successResultOf(d), TxtNoRecord("NODATA"))
        self.assertEqual(len(self.reactor.udp_ports), 1)

    def test_servfail(self):
        """SERVFAIL is a DNS failure, not an absent record (A15)."""
        d = self.lookup()
        reply_udp(self.port(), rcode=dns.rcode.SERVFAIL)
        self.assertEqual(self.successResultOf(d), TxtFailure("SERVFAIL"))

    def test_refused(self):
        """REFUSED is a DNS failure (A15)."""
        d = self.lookup()
        reply_udp(self.port(), rcode=dns.rcode.REFUSED)
        self.assertEqual(self.successResultOf(d), TxtFailure("REFUSED"))

    def test_servfail_then_next_server(self):
        """A SERVFAIL from one server sends the question to the next (A15)."""
        client = DnsClient(self.reactor, [NS1, NS2])
        d = client.lookup_txt(NAME)
        reply_udp(self.port(0), rcode=dns.rcode.SERVFAIL)
        self.assertNoResult(d)
        self.assertEqual(self.port(1).interface, "::")
        reply_udp(self.port(1), (NAME, "TXT", '"v=STSv1; id=1"'))
        self.assertEqual(
            self.successResultOf(d), TxtRecords(((b"v=STSv1; id=1",),), ())
        )

    def test_timeout_retries_then_fails(self):
        """A timeout moves to the next server, then the next round, then fails (A15)."""
        client = DnsClient(self.reactor, [NS1, NS2], timeout_s=5.0, attempts=2)
        d = client.lookup_txt(NAME)
        query = client.query(NAME, dns.rdatatype.TXT)
        self.reactor.advance(4.9)
        self.assertEqual(len(self.reactor.udp_ports), 2)
        self.reactor.advance(0.1)
        self.assertEqual(len(self.reactor.udp_ports), 4)
        self.assertEqual([p.sent[0][1] for p in self.reactor.udp_ports[2:]], [NS2] * 2)
        for _ in range(2):
            self.reactor.advance(5.0)
        self.assertNoResult(d)
        self.reactor.advance(5.0)
        self.assertEqual(
            [p.sent[0][1] for p in self.reactor.udp_ports[::2]], [NS1, NS2, NS1, NS2]
        )
        self.assertIn("no reply from", failure_reason(self.successResultOf(d)))
        self.failureResultOf(query, DnsTimeoutError)
        self.assertTrue(all(p.stopped for p in self.reactor.udp_ports))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_timeout_then_second_server_answers(self):
        """After a timeout on the first server the second one's answer is used (A15)."""
        client = DnsClient(self.reactor, [NS1, NS2])
        d = client.lookup_txt(NAME)
        self.reactor.advance(5.0)
        reply_udp(self.port(), (NAME, "TXT", '"v=STSv1; id=2"'))
        self.assertEqual(
            self.successResultOf(d), TxtRecords(((b"v=STSv1; id=2",),), ())
        )

    def test_mismatched_reply_ignored(self):
        """Wrong id, wrong question, wrong source or junk do nothing (A15, F)."""
        d = self.lookup()
        port = self.port()
        query = sent_query(port)
        good = response(query, (NAME, "TXT", '"v=STSv1; id=ok"'))
        wrong_id = response(query, (NAME, "TXT", '"v=STSv1; id=evil"'))
        wrong_id.id = (query.id + 1) % 65536
        other_q = dns.message.make_query("_mta-sts.evil.example", "TXT")
        other_q.id = query.id
        wrong_question = response(other_q, ("_mta-sts.evil.example", "TXT", '"x"'))
        for datagram, source in [
            (wrong_id.to_wire(), NS1),
            (wrong_question.to_wire(), NS1),
            (good.to_wire(), ("198.51.100.1", 53)),
            (good.to_wire(), ("192.0.2.53", 5353)),
            (b"\x00junk", NS1),
        ]:
            port.protocol.datagramReceived(datagram, source)
        self.assertNoResult(d)
        port.protocol.datagramReceived(good.to_wire(), NS1)
        self.assertEqual(
            self.successResultOf(d), TxtRecords(((b"v=STSv1; id=ok",),), ())
        )
        port.protocol.datagramReceived(wrong_id.to_wire(), NS1)  # late: harmless

    def tcp_retry(self, chunk_size):
        d = self.lookup()
        udp_query = sent_query(self.port())
        reply_udp(self.port(), flags=dns.flags.TC)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        destination, _factory, proto = tcp_client(self.reactor)
        self.assertEqual(destination, (*NS1, 5.0))
        transport = StringTransport()
        proto.makeConnection(transport)
        sent = transport.value()
        (size,) = struct.unpack("!H", sent[:2])
        self.assertEqual(len(sent), 2 + size)
        tcp_query = dns.message.from_wire(sent[2:])
        self.assertEqual(tcp_query.id, udp_query.id)
        self.assertEqual(tcp_query.question, udp_query.question)
        wire = response(tcp_query, (NAME, "TXT", '"v=STSv1; id=tcp"')).to_wire()
        framed = struct.pack("!H", len(wire)) + wire
        for i in range(0, len(framed), chunk_size):
            self.assertNoResult(d)
            proto.dataReceived(framed[i : i + chunk_size])
        self.assertEqual(
            self.successResultOf(d), TxtRecords(((b"v=STSv1; id=tcp",),), ())
        )
        self.assertTrue(self.reactor.connectors[0]._disconnected)
        proto.connectionLost(Failure(ConnectionRefusedError()))  # after: harmless
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_truncated_retries_over_tcp_whole(self):
        """A TC reply is asked again over TCP, length-framed, reply whole (A11, A15)."""
        self.tcp_retry(chunk_size=4096)

    def test_truncated_retries_over_tcp_in_chunks(self):
        """The TCP reply may arrive one byte at a time (A11, A15)."""
        self.tcp_retry(chunk_size=1)

    def test_tcp_connect_failure_then_timeout(self):
        """A failed TCP retry counts as that try failing; the lookup goes on (A15)."""
        d = self.lookup()
        reply_udp(self.port(), flags=dns.flags.TC)
        _destination, factory, _proto = tcp_client(self.reactor)
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(len(self.reactor.udp_ports), 2)
        self.reactor.advance(5.0)
        result = self.successResultOf(d)
        self.assertIsInstance(result, TxtFailure)

    def test_tcp_malformed_reply(self):
        """A malformed TCP reply is a DNS failure (A15)."""
        client = DnsClient(self.reactor, [NS1], attempts=1)
        d = client.query(NAME, dns.rdatatype.TXT)
        reply_udp(self.port(), flags=dns.flags.TC)
        _destination, _factory, proto = tcp_client(self.reactor)
        proto.makeConnection(StringTransport())
        proto.dataReceived(b"\x00\x03abc")
        failure = self.failureResultOf(d, DnsError)
        self.assertIn("malformed or mismatched TCP reply", failure.value.reason)

    def test_cname_chain_in_one_answer(self):
        """A CNAME chain inside one answer is followed to the TXT (A11)."""
        d = self.lookup()
        reply_udp(
            self.port(),
            (NAME, "CNAME", "sts.provider.example."),
            ("sts.provider.example", "CNAME", "_mta-sts.shared.example."),
            ("_mta-sts.shared.example", "TXT", '"v=STSv1; id=p"'),
        )
        self.assertEqual(
            self.successResultOf(d),
            TxtRecords(
                ((b"v=STSv1; id=p",),),
                ("sts.provider.example", "_mta-sts.shared.example"),
            ),
        )
        self.assertEqual(len(self.reactor.udp_ports), 1)

    def test_cname_needs_second_query(self):
        """When the answer stops at a CNAME its target is asked next (A11)."""
        d = self.lookup()
        reply_udp(self.port(), (NAME, "CNAME", "sts.provider.example."))
        self.assertNoResult(d)
        second = sent_query(self.port(1))
        self.assertEqual(
            second.question[0].name.to_text().lower(), "sts.provider.example."
        )
        reply_udp(self.port(1), ("sts.provider.example", "TXT", '"v=STSv1; id=q"'))
        self.assertEqual(
            self.successResultOf(d),
            TxtRecords(((b"v=STSv1; id=q",),), ("sts.provider.example",)),
        )

    def test_cname_to_nxdomain(self):
        """A CNAME whose target does not exist is no record (A11, A15)."""
        d = self.lookup()
        reply_udp(
            self.port(),
            (NAME, "CNAME", "gone.example."),
            rcode=dns.rcode.NXDOMAIN,
        )
        self.assertEqual(self.successResultOf(d), TxtNoRecord("NXDOMAIN"))
        self.assertEqual(len(self.reactor.udp_ports), 1)

    def test_cname_loop(self):
        """A CNAME loop is a DNS failure (A11)."""
        d = self.lookup()
        reply_udp(
            self.port(),
            (NAME, "CNAME", "a.example."),
            ("a.example", "CNAME", "b.example."),
            ("b.example", "CNAME", f"{NAME}."),
        )
        self.assertIn("CNAME loop", failure_reason(self.successResultOf(d)))

    def test_cname_loop_across_queries(self):
        """A loop spread over two queries is caught too (A11)."""
        d = self.lookup()
        reply_udp(self.port(), (NAME, "CNAME", "a.example."))
        reply_udp(self.port(1), ("a.example", "CNAME", "a.example."))
        self.assertIn("CNAME loop", failure_reason(self.successResultOf(d)))
        self.assertEqual(len(self.reactor.udp_ports), 2)

    def test_cname_chain_too_long(self):
        """A chain of more than 8 CNAMEs is a DNS failure (A11)."""
        names = [NAME] + [f"c{i}.example" for i in range(9)]
        d = self.lookup()
        reply_udp(
            self.port(),
            *[(a, "CNAME", f"{b}.") for a, b in itertools.pairwise(names)],
            (names[-1], "TXT", '"v=STSv1; id=1"'),
        )
        self.assertIn("longer than 8", failure_reason(self.successResultOf(d)))

    def test_cname_chain_of_eight_allowed(self):
        """A chain of exactly 8 CNAMEs is still followed (A11)."""
        names = [NAME] + [f"c{i}.example" for i in range(8)]
        d = self.lookup()
        reply_udp(
            self.port(),
            *[(a, "CNAME", f"{b}.") for a, b in itertools.pairwise(names)],
            (names[-1], "TXT", '"v=STSv1; id=1"'),
        )
        self.assertEqual(len(self.successResultOf(d).cname_chain), 8)

    def test_cancel_closes_everything(self):
        """Cancelling a lookup closes its port and its timer (F: no leaks)."""
        d = self.lookup()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertTrue(self.port().stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_invalid_name(self):
        """A name DNS cannot carry is a failure, never a query (A1)."""
        d = self.lookup("a" * 64 + ".example")
        self.assertIsInstance(self.successResultOf(d), TxtFailure)
        self.assertEqual(self.reactor.udp_ports, [])


class DnsClientQueryTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = FakeDnsReactor()
        self.client = DnsClient(self.reactor, [NS1])

    def test_query_flags(self):
        """Queries carry RD and AD, EDNS0 with a 1232-byte payload, no DO (A17)."""
        self.client.query("example.com", dns.rdatatype.MX)
        query = sent_query(self.reactor.udp_ports[0])
        self.assertTrue(query.flags & dns.flags.RD)
        self.assertTrue(query.flags & dns.flags.AD)
        self.assertEqual((query.edns, query.payload), (0, 1232))
        self.assertFalse(query.ednsflags & dns.flags.DO)

    def test_dnssec_sets_do(self):
        """dnssec=True sets the DO bit, for the checker's TLSA look-ups (D13)."""
        self.client.query("_25._tcp.mx.example.com", dns.rdatatype.TLSA, dnssec=True)
        query = sent_query(self.reactor.udp_ports[0])
        self.assertTrue(query.ednsflags & dns.flags.DO)

    def test_query_returns_whole_message(self):
        """query() hands back the validated reply message (A15)."""
        d = self.client.query("example.com", dns.rdatatype.MX)
        reply = reply_udp(self.reactor.udp_ports[0], rcode=dns.rcode.SERVFAIL)
        message = self.successResultOf(d)
        self.assertEqual((message.id, message.rcode()), (reply.id, dns.rcode.SERVFAIL))

    def test_authenticated_flag(self):
        """lookup() reports the AD flag of the reply (D13)."""
        d = self.client.lookup("mx.example.com", dns.rdatatype.A, dnssec=True)
        reply_udp(
            self.reactor.udp_ports[0],
            ("mx.example.com", "A", "192.0.2.25"),
            flags=dns.flags.AD,
        )
        answer = self.successResultOf(d)
        self.assertIsInstance(answer, DnsAnswer)
        self.assertTrue(answer.authenticated)
        self.assertEqual(answer.rcode, dns.rcode.NOERROR)
        self.assertEqual([r.to_text() for r in answer.rdatas], ["192.0.2.25"])

    def test_not_authenticated(self):
        """Without AD in every reply of a chain, authenticated is False (D13)."""
        d = self.client.lookup("mx.example.com", dns.rdatatype.A)
        reply_udp(
            self.reactor.udp_ports[0],
            ("mx.example.com", "CNAME", "host.example."),
            flags=dns.flags.AD,
        )
        reply_udp(self.reactor.udp_ports[1], ("host.example", "A", "192.0.2.26"))
        answer = self.successResultOf(d)
        self.assertFalse(answer.authenticated)
        self.assertEqual(answer.cname_chain, ("host.example",))

    def test_ttl_is_the_least_on_the_way(self):
        """lookup() reports the least TTL of the RRsets it read, CNAMEs
        included: how long MX facts may be kept (D13)."""
        d = self.client.lookup("mx.example.com", dns.rdatatype.A)
        reply = response(
            sent_query(self.reactor.udp_ports[0]),
            ("mx.example.com", "CNAME", "host.example."),
            ("host.example", "A", "192.0.2.26"),
        )
        reply.answer[0].ttl = 120
        reply.answer[1].ttl = 900
        port = self.reactor.udp_ports[0]
        port.protocol.datagramReceived(reply.to_wire(), port.sent[0][1])
        self.assertEqual(self.successResultOf(d).ttl, 120)

    def test_negative_ttl_from_soa(self):
        """NXDOMAIN and NODATA hold for the SOA's TTL or MINIMUM, the lesser
        (RFC 2308 §5); without a SOA the TTL is unknown (None)."""
        for soa_ttl, minimum, rcode in ((600, 30, "NXDOMAIN"), (20, 300, "NOERROR")):
            d = self.client.lookup("_25._tcp.mx.example.com", dns.rdatatype.TLSA)
            reply = response(
                sent_query(self.reactor.udp_ports[-1]),
                rcode=dns.rcode.from_text(rcode),
            )
            reply.authority.append(
                dns.rrset.from_text(
                    "example.com.",
                    soa_ttl,
                    "IN",
                    "SOA",
                    f"ns.example.com. h.example.com. 1 3600 600 86400 {minimum}",
                )
            )
            port = self.reactor.udp_ports[-1]
            port.protocol.datagramReceived(reply.to_wire(), port.sent[0][1])
            self.assertEqual(self.successResultOf(d).ttl, min(soa_ttl, minimum))
        d = self.client.lookup("_25._tcp.mx.example.com", dns.rdatatype.TLSA)
        reply_udp(self.reactor.udp_ports[-1], rcode=dns.rcode.NXDOMAIN)
        self.assertIsNone(self.successResultOf(d).ttl)

    def test_error_rcode_answer(self):
        """lookup() returns error rcodes as data, with no rdatas (A15)."""
        d = self.client.lookup("mx.example.com", dns.rdatatype.MX)
        reply_udp(self.reactor.udp_ports[0], rcode=dns.rcode.REFUSED)
        answer = self.successResultOf(d)
        self.assertEqual((answer.rcode, answer.rdatas), (dns.rcode.REFUSED, ()))

    def test_bad_arguments(self):
        """A client needs a nameserver and at least one attempt."""
        with self.assertRaises(ValueError):
            DnsClient(self.reactor, [])
        with self.assertRaises(ValueError):
            DnsClient(self.reactor, [NS1], attempts=0)


class EmptyResultTests(SynchronousTestCase):
    """One rcode mapping for the daemon's TXT lookups and the checker's."""

    def test_rcode_table(self):
        """NXDOMAIN and NODATA are no record, every other rcode a failure
        named by its mnemonic, NOERROR with records nothing to say (A15)."""
        for rcode, has_records, expected in (
            (dns.rcode.NOERROR, True, None),
            (dns.rcode.NOERROR, False, TxtNoRecord("NODATA")),
            (dns.rcode.NXDOMAIN, False, TxtNoRecord("NXDOMAIN")),
            (dns.rcode.NXDOMAIN, True, TxtNoRecord("NXDOMAIN")),
            (dns.rcode.SERVFAIL, False, TxtFailure("SERVFAIL")),
            (dns.rcode.SERVFAIL, True, TxtFailure("SERVFAIL")),
            (dns.rcode.REFUSED, False, TxtFailure("REFUSED")),
            (dns.rcode.FORMERR, False, TxtFailure("FORMERR")),
            (dns.rcode.NOTIMP, False, TxtFailure("NOTIMP")),
            (dns.rcode.YXDOMAIN, False, TxtFailure("YXDOMAIN")),
        ):
            self.assertEqual(
                empty_result(rcode, has_records), expected, (rcode, has_records)
            )

    def test_txt_result_follows_it(self):
        """txt_result gives the same answer; only TXT rdatas count as
        records, so an A-only answer is NODATA (A15)."""
        rdata = dns.rdata.from_text("IN", "TXT", '"v=STSv1; id=1"')
        a_rdata = dns.rdata.from_text("IN", "A", "192.0.2.1")
        self.assertEqual(
            txt_result(dns.rcode.NOERROR, [rdata], ("x.example",)),
            TxtRecords(((b"v=STSv1; id=1",),), ("x.example",)),
        )
        self.assertEqual(
            txt_result(dns.rcode.NOERROR, [a_rdata]), TxtNoRecord("NODATA")
        )
        self.assertEqual(
            txt_result(dns.rcode.SERVFAIL, [rdata]), TxtFailure("SERVFAIL")
        )


class SystemNameserversTests(SynchronousTestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.directory = directory.name

    def write(self, text):
        path = os.path.join(self.directory, "resolv.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_reads_resolv_conf(self):
        """nameserver lines are read in order, IPv6 included (A1)."""
        path = self.write(
            "# comment\nsearch example.com\nnameserver 192.0.2.1\n"
            "nameserver 2001:db8::1\noptions timeout:2\n"
        )
        self.assertEqual(
            system_nameservers(path), [("192.0.2.1", 53), ("2001:db8::1", 53)]
        )

    def test_fallback(self):
        """A missing file or one without nameservers falls back to 127.0.0.1 (A1)."""
        missing = os.path.join(self.directory, "missing")
        self.assertEqual(system_nameservers(missing), [("127.0.0.1", 53)])
        path = self.write("search example.com\n")
        self.assertEqual(system_nameservers(path), [("127.0.0.1", 53)])
