"""The DNS side of DANE precedence: MxFactsGatherer over a dict-backed fake
of the DNS client, and once over the real DnsClient on fake transports
(spec D13, L9-L12; replies are hostile input, F4)."""

from __future__ import annotations

import dns.flags
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.dane import (
    MAX_MX_HOSTS,
    MIN_FACTS_TTL_S,
    FactsFailed,
    MxFacts,
    TlsaState,
)
from postfix_mtasts.dnsclient import DnsAnswer, DnsClient, DnsError
from postfix_mtasts.mxfacts import GATHER_TIMEOUT_S, MxFactsGatherer

from .test_txt import FakeDnsReactor, reply_udp, sent_query

DOMAIN = "example.com"
TLSA = "3 1 1 " + "ab" * 32
NOERROR, NXDOMAIN, SERVFAIL = dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL


def rdatas(rdtype: str, *texts: str) -> tuple[dns.rdata.Rdata, ...]:
    kind = dns.rdatatype.from_text(rdtype)
    return tuple(dns.rdata.from_text(dns.rdataclass.IN, kind, t) for t in texts)


def mx(*texts: str, ad: bool = True, ttl: int = 300) -> DnsAnswer:
    return DnsAnswer(NOERROR, rdatas("MX", *texts), (), ad, ttl)


def tlsa(ad: bool = True, ttl: int = 300) -> DnsAnswer:
    return DnsAnswer(NOERROR, rdatas("TLSA", TLSA), (), ad, ttl)


def empty(rcode: dns.rcode.Rcode = NOERROR, ad: bool = True, ttl: int | None = 300):
    return DnsAnswer(rcode, (), (), ad, ttl)


class FakeDns:
    """Answers from a dict ``(name, type) -> DnsAnswer | DnsError | None``
    (None: never answers); records every question and its DO bit."""

    def __init__(self, answers: dict[tuple[str, str], DnsAnswer | DnsError | None]):
        self.answers = answers
        self.asked: list[tuple[str, str, bool]] = []

    def lookup(
        self, name: str, rdtype: dns.rdatatype.RdataType, *, dnssec: bool = False
    ) -> Deferred[DnsAnswer]:
        kind = dns.rdatatype.to_text(rdtype)
        self.asked.append((name, kind, dnssec))
        found = self.answers.get((name, kind), empty(NXDOMAIN))
        if found is None:
            return Deferred()
        if isinstance(found, DnsError):
            return fail(found)
        return succeed(found)


class GatherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)

    def gather(
        self,
        answers: dict[tuple[str, str], DnsAnswer | DnsError | None],
        *,
        tlsa_wanted: bool = True,
    ) -> tuple[MxFacts | FactsFailed, FakeDns]:
        fake = FakeDns(answers)
        gatherer = MxFactsGatherer(fake, self.clock, tlsa=tlsa_wanted, max_ttl_s=3600)
        return self.successResultOf(gatherer.gather(DOMAIN)), fake

    def test_every_host_with_validated_tlsa(self) -> None:
        """MX with AD, then one TLSA query per host, all with the DO bit
        (D13); both validated."""
        facts, fake = self.gather(
            {
                (DOMAIN, "MX"): mx("10 mx1.example.com.", "20 mx2.example.com."),
                ("_25._tcp.mx1.example.com", "TLSA"): tlsa(),
                ("_25._tcp.mx2.example.com", "TLSA"): tlsa(),
            }
        )
        self.assertEqual(
            facts,
            MxFacts(
                ("mx1.example.com", "mx2.example.com"),
                True,
                (TlsaState.VALIDATED, TlsaState.VALIDATED),
                1000,
                300,
            ),
        )
        self.assertEqual(
            fake.asked,
            [
                (DOMAIN, "MX", True),
                ("_25._tcp.mx1.example.com", "TLSA", True),
                ("_25._tcp.mx2.example.com", "TLSA", True),
            ],
        )

    def test_tlsa_states(self) -> None:
        """Per host: validated TLSA; TLSA without AD is none (Postfix ignores
        it); NXDOMAIN is none; SERVFAIL (bogus) and no answer are failed,
        which counts as TLSA (D13)."""
        hosts = {
            "v.example.com": tlsa(),
            "u.example.com": tlsa(ad=False),
            "n.example.com": empty(NXDOMAIN),
            "s.example.com": empty(SERVFAIL, ttl=None),
            "t.example.com": DnsError("no reply"),
        }
        answers: dict[tuple[str, str], DnsAnswer | DnsError | None] = {
            (DOMAIN, "MX"): mx(*(f"10 {h}." for h in hosts))
        }
        answers.update({(f"_25._tcp.{h}", "TLSA"): a for h, a in hosts.items()})
        facts, _ = self.gather(answers)
        assert isinstance(facts, MxFacts)
        got = dict(zip(facts.hosts, facts.tlsa, strict=True))
        self.assertEqual(
            got,
            {
                "v.example.com": TlsaState.VALIDATED,
                "u.example.com": TlsaState.NONE,
                "n.example.com": TlsaState.NONE,
                "s.example.com": TlsaState.FAILED,
                "t.example.com": TlsaState.FAILED,
            },
        )
        # A failed lookup has no TTL: the facts are asked again soon.
        self.assertEqual(facts.ttl_s, MIN_FACTS_TTL_S)

    def test_unsigned_mx_asks_no_tlsa(self) -> None:
        """No AD on the MX RRset: no DANE, so no TLSA query at all (L12)."""
        facts, fake = self.gather({(DOMAIN, "MX"): mx("10 mx1.example.com.", ad=False)})
        assert isinstance(facts, MxFacts)
        self.assertEqual((facts.secure, facts.tlsa), (False, ()))
        self.assertEqual(fake.asked, [(DOMAIN, "MX", True)])

    def test_mx_names_only(self) -> None:
        """Without DANE (only `match = "mx"`), no TLSA query."""
        facts, fake = self.gather(
            {(DOMAIN, "MX"): mx("10 mx1.example.com.")}, tlsa_wanted=False
        )
        assert isinstance(facts, MxFacts)
        self.assertEqual(facts.hosts, ("mx1.example.com",))
        self.assertEqual(len(fake.asked), 1)

    def test_mx_failures(self) -> None:
        """SERVFAIL (what a validating resolver says of a bogus RRset),
        REFUSED or no answer at all: the facts are not had (D13)."""
        for failure, reason in [
            (empty(SERVFAIL, ttl=None), "MX lookup failed: SERVFAIL"),
            (empty(dns.rcode.REFUSED, ttl=None), "MX lookup failed: REFUSED"),
            (DnsError("no nameserver answered"), "MX lookup failed: no nameserver"),
        ]:
            facts, fake = self.gather({(DOMAIN, "MX"): failure})
            assert isinstance(facts, FactsFailed)
            self.assertTrue(facts.reason.startswith(reason), facts.reason)
            self.assertEqual(len(fake.asked), 1)

    def test_gathering_ends_within_its_timeout(self) -> None:
        """A resolver that never answers: FactsFailed after GATHER_TIMEOUT_S,
        never a hang."""
        fake = FakeDns({(DOMAIN, "MX"): None})
        d = MxFactsGatherer(fake, self.clock, tlsa=True, max_ttl_s=3600).gather(DOMAIN)
        self.assertNoResult(d)
        self.clock.advance(GATHER_TIMEOUT_S)
        result = self.successResultOf(d)
        assert isinstance(result, FactsFailed)
        self.assertIn("not gathered within", result.reason)

    def test_null_mx_nodata_nxdomain(self) -> None:
        """Null MX (RFC 7505) and NXDOMAIN: no hosts, no TLSA query; NODATA:
        the domain is its own MX (RFC 5321 §5.1) and its TLSA is asked."""
        facts, fake = self.gather({(DOMAIN, "MX"): mx("0 .")})
        assert isinstance(facts, MxFacts)
        self.assertEqual((facts.hosts, len(fake.asked)), ((), 1))
        facts, fake = self.gather({(DOMAIN, "MX"): empty(NXDOMAIN)})
        assert isinstance(facts, MxFacts)
        self.assertEqual((facts.hosts, len(fake.asked)), ((), 1))
        facts, fake = self.gather(
            {(DOMAIN, "MX"): empty(), (f"_25._tcp.{DOMAIN}", "TLSA"): tlsa()}
        )
        assert isinstance(facts, MxFacts)
        self.assertEqual(
            (facts.hosts, facts.implicit, facts.tlsa),
            ((DOMAIN,), True, (TlsaState.VALIDATED,)),
        )

    def test_huge_mx_set_is_bounded(self) -> None:
        """Thousands of MX records: MAX_MX_HOSTS TLSA queries at most, the
        rest counted (F4)."""
        records = [f"{i % 50} mx{i}.example.com." for i in range(3000)]
        facts, fake = self.gather({(DOMAIN, "MX"): mx(*records)})
        assert isinstance(facts, MxFacts)
        self.assertEqual(len(facts.hosts), MAX_MX_HOSTS)
        self.assertEqual(facts.more_hosts, 3000 - MAX_MX_HOSTS)
        self.assertEqual(len(fake.asked), 1 + MAX_MX_HOSTS)

    def test_hostile_names_are_not_asked(self) -> None:
        """MX names that are no host names (IP, escapes, localhost) and a
        name too long for `_25._tcp.` are never asked for TLSA (F4, F8)."""
        long = ("a" * 61 + ".") * 4 + "ex"  # 250 octets
        facts, fake = self.gather(
            {
                (DOMAIN, "MX"): mx(
                    "10 192.0.2.1.",
                    "10 bad\\032name.example.",
                    "10 localhost.",
                    f"10 {long}.",
                )
            }
        )
        assert isinstance(facts, MxFacts)
        self.assertEqual(facts.hosts, (long,))
        self.assertEqual(facts.tlsa, (TlsaState.NONE,))
        self.assertEqual(len(fake.asked), 1)

    def test_ttl_is_the_least_clamped(self) -> None:
        """The facts live the least TTL of MX and TLSA, clamped to 60 s ..
        the recheck interval."""
        for mx_ttl, tlsa_ttl, want in ((600, 120, 120), (5, 900, 60), (9e5, 9e5, 3600)):
            facts, _ = self.gather(
                {
                    (DOMAIN, "MX"): mx("10 mx1.example.com.", ttl=int(mx_ttl)),
                    ("_25._tcp.mx1.example.com", "TLSA"): tlsa(ttl=int(tlsa_ttl)),
                }
            )
            assert isinstance(facts, MxFacts)
            self.assertEqual(facts.ttl_s, want)


class OverDnsClientTests(SynchronousTestCase):
    def test_do_bit_and_ad_flag_on_the_wire(self) -> None:
        """Through the daemon's DnsClient: the MX and TLSA queries carry the
        DO bit, and the AD flag of the replies decides (D13)."""
        reactor = FakeDnsReactor()
        client = DnsClient(reactor, [("192.0.2.53", 53)], randomize_case=False)
        d = MxFactsGatherer(client, reactor, tlsa=True, max_ttl_s=3600).gather(DOMAIN)
        mx_port = reactor.udp_ports[0]
        self.assertTrue(sent_query(mx_port).ednsflags & dns.flags.DO)
        reply_udp(mx_port, (DOMAIN, "MX", "10 mx1.example.com."), flags=dns.flags.AD)
        tlsa_port = reactor.udp_ports[1]
        query = sent_query(tlsa_port)
        self.assertTrue(query.ednsflags & dns.flags.DO)
        self.assertEqual(str(query.question[0].name), "_25._tcp.mx1.example.com.")
        reply_udp(
            tlsa_port, ("_25._tcp.mx1.example.com", "TLSA", TLSA), flags=dns.flags.AD
        )
        facts = self.successResultOf(d)
        assert isinstance(facts, MxFacts)
        self.assertEqual(
            (facts.hosts, facts.secure, facts.tlsa),
            (("mx1.example.com",), True, (TlsaState.VALIDATED,)),
        )
