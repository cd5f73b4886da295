"""DnsClient's defences against spoofed replies: DNS 0x20 case mixing, and
query sockets bound to loopback for a loopback server and connected to it."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.dnsclient import DnsClient, DnsError
from postfix_mtasts.txt import TxtFailure, TxtRecords

from .test_txt import FakeDnsReactor, response, sent_query, tcp_client

NS = ("192.0.2.53", 53)
NAME = "_mta-sts.example.com"
RECORD = (NAME, "TXT", '"v=STSv1; id=1"')


def folded(query: dns.message.Message, *answer: tuple[str, ...]) -> bytes:
    """A reply to ``query`` whose question is in lower case: what a server
    that folds case, or a spoofer who does not know the case, sends."""
    reply = response(query, *answer)
    reply.question[0].name = dns.name.from_text(str(reply.question[0].name).lower())
    wire: bytes = reply.to_wire()
    return wire


class CaseRandomizationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeDnsReactor()
        self.client = DnsClient(self.reactor, [NS], timeout_s=5.0, attempts=1)

    def test_query_name_case_is_random(self) -> None:
        """Each query spells the asked name with letters in a random case
        (0x20); it is the same name ignoring case (A1)."""
        spellings = set()
        for i in range(4):
            self.client.lookup_txt(NAME)
            qname = sent_query(self.reactor.udp_ports[i]).question[0].name
            self.assertEqual(qname, dns.name.from_text(NAME))
            spellings.add(qname.to_text())
        self.assertGreater(len(spellings), 1)  # 16 letters: 2**-48 to fail
        self.assertTrue(any(s != s.lower() for s in spellings))

    def test_echoed_case_accepted_and_not_kept(self) -> None:
        """A reply echoing the exact case is the answer; names read from it
        (a CNAME target compressed against the question) come back in the
        case asked, never the random one (A11, E13)."""
        d = self.client.lookup_txt(NAME)
        port = self.reactor.udp_ports[0]
        target = "sts.example.com"
        reply = response(
            sent_query(port),
            (NAME, "CNAME", target + "."),
            (target, "TXT", '"v=STSv1; id=1"'),
        )
        port.protocol.datagramReceived(reply.to_wire(), NS)
        result = self.successResultOf(d)
        self.assertEqual(result, TxtRecords(((b"v=STSv1; id=1",),), (target,)))
        self.assertEqual(self.reactor.tcpClients, [])

    def test_folded_case_is_asked_again_over_tcp(self) -> None:
        """A UDP reply whose question is not in the exact case sent is not
        taken (a spoofer cannot know the case); the question goes over TCP,
        where the case is not required, and one warning names the server,
        once (0x20, A15)."""
        with capturedLogs() as events:
            for round_ in range(2):
                d = self.client.lookup_txt(NAME)
                port = self.reactor.udp_ports[round_]
                port.protocol.datagramReceived(
                    folded(sent_query(port), (NAME, "TXT", '"spoofed"')), NS
                )
                self.assertNoResult(d)
                _dest, _factory, proto = tcp_client(self.reactor, round_)
                transport = StringTransport()
                proto.makeConnection(transport)
                tcp_query = dns.message.from_wire(transport.value()[2:])
                wire = folded(tcp_query, RECORD)
                proto.dataReceived(struct.pack("!H", len(wire)) + wire)
                self.assertEqual(
                    self.successResultOf(d), TxtRecords(((b"v=STSv1; id=1",),), ())
                )
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual([w["server"] for w in warnings], ["192.0.2.53"])

    def test_wrong_id_is_still_ignored(self) -> None:
        """A datagram with a wrong id is ignored whatever its case: no TCP,
        the exchange times out (A15)."""
        d = self.client.lookup_txt(NAME)
        port = self.reactor.udp_ports[0]
        query = sent_query(port)
        query.id ^= 1
        port.protocol.datagramReceived(response(query, RECORD).to_wire(), NS)
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(5)
        self.assertIsInstance(self.successResultOf(d), TxtFailure)

    def test_only_a_response_to_our_query_is_taken(self) -> None:
        """A datagram from the server that is not the response to our query
        is ignored: QR clear (a query), another opcode (NOTIFY), two
        questions, or no question with NOERROR; the exchange then times
        out (A15)."""

        def query_flag(reply: dns.message.Message) -> dns.message.Message:
            reply.flags &= ~dns.flags.QR
            return reply

        def notify(reply: dns.message.Message) -> dns.message.Message:
            reply.set_opcode(dns.opcode.NOTIFY)
            return reply

        def two_questions(reply: dns.message.Message) -> dns.message.Message:
            reply.question.append(reply.question[0])
            return reply

        def no_question(reply: dns.message.Message) -> dns.message.Message:
            reply.question = []
            return reply

        for i, spoil in enumerate((query_flag, notify, two_questions, no_question)):
            d = self.client.lookup_txt(NAME)
            port = self.reactor.udp_ports[i]
            reply = spoil(response(sent_query(port), RECORD))
            port.protocol.datagramReceived(reply.to_wire(), NS)
            self.reactor.advance(5)
            self.assertIsInstance(self.successResultOf(d), TxtFailure, spoil)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_questionless_error_is_taken(self) -> None:
        """SERVFAIL or REFUSED without the question, with our id: the
        server's answer, as dnspython reads it (RFC 6891 §7); without 0x20,
        which would want the question's case echoed."""
        client = DnsClient(self.reactor, [NS], attempts=1, randomize_case=False)
        for i, rcode in enumerate((dns.rcode.SERVFAIL, dns.rcode.REFUSED)):
            d = client.lookup_txt(NAME)
            port = self.reactor.udp_ports[i]
            reply = response(sent_query(port))
            reply.question = []
            reply.set_rcode(rcode)
            port.protocol.datagramReceived(reply.to_wire(), NS)
            failure = self.successResultOf(d)
            assert isinstance(failure, TxtFailure)
            self.assertIn(dns.rcode.to_text(rcode), failure.reason)

    def test_off_takes_folded_case(self) -> None:
        """With randomize_case off the name is sent as asked and a reply in
        another case is taken over UDP ([dns] case_randomization = false)."""
        client = DnsClient(self.reactor, [NS], randomize_case=False)
        d = client.lookup_txt("_MTA-STS.Example.COM")
        port = self.reactor.udp_ports[0]
        query = sent_query(port)
        self.assertEqual(query.question[0].name.to_text(), "_MTA-STS.Example.COM.")
        port.protocol.datagramReceived(folded(query, RECORD), NS)
        self.assertEqual(
            self.successResultOf(d), TxtRecords(((b"v=STSv1; id=1",),), ())
        )


class SocketTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeDnsReactor()

    def ask(self, server: tuple[str, int]) -> None:
        DnsClient(self.reactor, [server]).lookup_txt(NAME)

    def test_udp_bound_by_server_and_connected(self) -> None:
        """A loopback nameserver is asked from loopback, any other from the
        unspecified address of its family; the socket is connected to the
        server so the kernel drops other senders' datagrams (A15)."""
        table = [
            (("127.0.0.1", 53), "127.0.0.1"),
            (("127.0.0.53", 53), "127.0.0.1"),
            (("::1", 5353), "::1"),
            (("192.0.2.53", 53), "0.0.0.0"),  # noqa: S104
            (("2001:db8::53", 53), "::"),
        ]
        for i, (server, interface) in enumerate(table):
            self.ask(server)
            port = self.reactor.udp_ports[i]
            self.assertEqual((port.interface, port.connected), (interface, server))

    def test_tcp_bound_to_loopback_for_loopback_server(self) -> None:
        """Over TCP (a truncated reply), a loopback server is reached from
        the loopback address; elsewhere the kernel picks the source."""
        for i, server in enumerate([("127.0.0.1", 53), ("192.0.2.53", 53)]):
            self.ask(server)
            port = self.reactor.udp_ports[i]
            reply = response(sent_query(port))
            reply.flags |= dns.flags.TC
            port.protocol.datagramReceived(reply.to_wire(), server)
        binds = [client[4] for client in self.reactor.tcpClients]
        self.assertEqual(binds, [("127.0.0.1", 0), None])

    def test_port_unreachable_moves_on_at_once(self) -> None:
        """An ICMP port unreachable on the connected socket ends the wait
        for that server at once: the next one is asked without a timeout."""
        client = DnsClient(self.reactor, [("127.0.0.1", 53), NS])
        d = client.lookup_txt(NAME)
        self.reactor.udp_ports[0].protocol.connectionRefused()
        port = self.reactor.udp_ports[1]
        port.protocol.datagramReceived(
            response(sent_query(port), RECORD, rcode=dns.rcode.NOERROR).to_wire(), NS
        )
        self.assertEqual(
            self.successResultOf(d), TxtRecords(((b"v=STSv1; id=1",),), ())
        )
        self.assertEqual(self.reactor.udp_ports[0].stopped, True)


class ReplyReaderTests(SynchronousTestCase):
    """Replies are read by core/dnsreply.py: what it refuses is dropped like
    a spoofed datagram, and what dnspython cannot parse fails (A15)."""

    def setUp(self) -> None:
        self.reactor = FakeDnsReactor()
        self.client = DnsClient(self.reactor, [NS], attempts=1, randomize_case=False)

    def test_malformed_datagrams_are_ignored(self) -> None:
        """Our id and question, but octets after the last record, a record
        count beyond the data or an A rdata of 3 octets: ignored; the well
        formed reply after them is the answer (A15)."""
        d = self.client.lookup("mta-sts.example.com", dns.rdatatype.A)
        port = self.reactor.udp_ports[0]
        good = response(sent_query(port), ("mta-sts.example.com", "A", "192.0.2.7"))
        good.use_edns(False)  # the A record ends the reply
        wire = good.to_wire()
        counts = wire[:6] + struct.pack("!H", 9) + wire[8:]
        short_a = wire[:-6] + struct.pack("!H", 3) + wire[-4:-1]
        for datagram in (wire + b"\x00", counts, short_a):
            port.protocol.datagramReceived(datagram, NS)
        self.assertNoResult(d)
        port.protocol.datagramReceived(wire, NS)
        answer = self.successResultOf(d)
        self.assertEqual([r.to_text() for r in answer.rdatas], ["192.0.2.7"])
        self.assertEqual(answer.ttl, 300)

    def test_rdata_dnspython_refuses_fails_the_query(self) -> None:
        """An MX rdata that runs short of its exchange name: lookup() and
        query() fail with a DnsError naming it, at once (A15)."""
        for ask in (self.client.lookup, self.client.query):
            d = ask("example.com", dns.rdatatype.MX)
            port = self.reactor.udp_ports[-1]
            reply = response(sent_query(port), ("example.com", "MX", "10 mx.example."))
            reply.use_edns(False)  # the MX record ends the reply
            wire = reply.to_wire()
            size = struct.unpack("!H", wire[-16:-14])[0]
            self.assertEqual(size, 14)  # preference, then 2mx 7example 0
            bad = wire[:-16] + struct.pack("!H", 5) + wire[-14:-9]
            port.protocol.datagramReceived(bad, NS)
            failure = self.failureResultOf(d, DnsError)
            self.assertIn("malformed", failure.value.reason)

    def test_source_compared_as_an_address(self) -> None:
        """The reply's source is the server asked when it is the same
        address spelt otherwise; a server named by a non-address matches
        no other text (spoofed datagrams are dropped, A15)."""
        spelt = DnsClient(self.reactor, [("2001:db8:0::53", 53)], attempts=1)
        named = DnsClient(self.reactor, [("ns.example", 53)], attempts=1)
        for client, source, taken in (
            (spelt, ("2001:db8::53", 53), True),
            (named, ("192.0.2.53", 53), False),
        ):
            d = client.lookup("mta-sts.example.com", dns.rdatatype.A)
            port = self.reactor.udp_ports[-1]
            wire = response(sent_query(port)).to_wire()
            port.protocol.datagramReceived(wire, source)
            if taken:
                self.assertEqual(self.successResultOf(d).rdatas, ())
            else:
                self.assertNoResult(d)
