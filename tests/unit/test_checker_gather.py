"""Tests for the checker's fact gathering (spec H) with hand-made fakes of its
DNS client, fetcher and prober."""

from __future__ import annotations

import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.facts import (
    AddressFacts,
    FetchProblem,
    Found,
    MxRecord,
    Stage,
)
from postfix_mtasts.checker.gather import Gatherer
from postfix_mtasts.dnsclient import DnsAnswer, DnsError
from postfix_mtasts.fetch import (
    PolicyResponse,
)
from postfix_mtasts.fetch_errors import (
    FetchError,
    FetchHeadersTooLargeError,
    FetchRedirectError,
    FetchTimeoutError,
)
from postfix_mtasts.txt import TxtNoRecord, TxtRecords

from .checker_facts import session

A, AAAA, MX, TLSA = (
    dns.rdatatype.A,
    dns.rdatatype.AAAA,
    dns.rdatatype.MX,
    dns.rdatatype.TLSA,
)
TLSA_DATA = "3 1 1 " + "ab" * 32


def answer(rdtype, *texts, rcode=dns.rcode.NOERROR, chain=(), ad=False):
    rdatas = tuple(dns.rdata.from_text(dns.rdataclass.IN, rdtype, t) for t in texts)
    return DnsAnswer(rcode, rdatas, tuple(chain), ad)


class FakeDns:
    """Answers from a dict; unknown names are NXDOMAIN.  Records the questions."""

    def __init__(self, answers, txt=None):
        self.answers = answers
        self.txt = txt or {}
        self.asked = []

    def lookup(self, name, rdtype, *, dnssec=False):
        self.asked.append((name, rdtype, dnssec))
        found = self.answers.get((name, rdtype))
        if isinstance(found, DnsError):
            return fail(found)
        return succeed(found or DnsAnswer(dns.rcode.NXDOMAIN, (), (), False))

    def lookup_txt(self, name):
        return succeed(self.txt.get(name, TxtNoRecord("NXDOMAIN")))


class FakeFetcher:
    def __init__(self, result):
        self.result = result
        self.domains = []

    def fetch_response(self, domain):
        self.domains.append(domain)
        if isinstance(self.result, Exception):
            return fail(self.result)
        return succeed(self.result)


class FakeProber:
    """Returns a completed session unless told otherwise per (address, sni)."""

    def __init__(self, results=None):
        self.results = results or {}
        self.calls = []

    def smtp(self, address, sni):
        self.calls.append(("smtp", address, sni))
        return succeed(self.results.get((address, sni)) or session(address, sni))

    def tls(self, address, port, sni):
        self.calls.append(("tls", address, port, sni))
        return succeed(session(address, sni, port=port))


GOOD_DNS = {
    ("example.com", MX): answer(MX, "20 mx2.example.com.", "10 mx1.example.com."),
    ("mx1.example.com", A): answer(A, "192.0.2.1"),
    ("mx1.example.com", AAAA): answer(AAAA, "2001:db8::1"),
    ("mx2.example.com", A): answer(A, "192.0.2.2"),
    ("mta-sts.example.com", A): answer(A, "192.0.2.80", chain=("web.example.net",)),
    ("_25._tcp.mx1.example.com", TLSA): answer(TLSA, TLSA_DATA, ad=True),
}
GOOD_TXT = {
    "_mta-sts.example.com": TxtRecords(((b"v=STSv1; id=1",),)),
    "_smtp._tls.example.com": TxtRecords(((b"v=TLSRPTv1; rua=mailto:a@example.com",),)),
}


class GatherTests(SynchronousTestCase):
    def gather(self, answers=None, fetch=None, smtp=None, txt=None):
        self.clock = Clock()
        self.dns = FakeDns(
            GOOD_DNS if answers is None else answers, GOOD_TXT if txt is None else txt
        )
        self.fetcher = FakeFetcher(fetch or PolicyResponse(b"body", "text/plain"))
        self.smtp = smtp or FakeProber()
        self.https = FakeProber()
        gatherer = Gatherer(self.clock, self.dns, self.fetcher, self.smtp, self.https)
        return self.successResultOf(gatherer.gather("example.com", "Example.com"))

    def test_everything_observed(self):
        """DNS records, policy host session and fetch, and every MX address probed (H1-H19)."""
        facts = self.gather()
        self.assertEqual(
            (facts.domain, facts.input_domain), ("example.com", "Example.com")
        )
        self.assertEqual(facts.sts_txt.records, ((b"v=STSv1; id=1",),))
        self.assertEqual(facts.tlsrpt_txt.found, Found.YES)
        self.assertEqual(
            set(facts.mx.records),
            {MxRecord(10, "mx1.example.com"), MxRecord(20, "mx2.example.com")},
        )
        host = facts.policy_host
        self.assertEqual(host.addresses.cname_chain, ("web.example.net",))
        self.assertEqual(
            self.https.calls, [("tls", "192.0.2.80", 443, "mta-sts.example.com")]
        )
        assert host.fetch is not None
        self.assertEqual(
            (host.fetch.body, host.fetch.content_type, host.fetch.problem),
            (b"body", "text/plain", None),
        )
        mx1 = next(h for h in facts.mx_hosts if h.host == "mx1.example.com")
        self.assertEqual(mx1.addresses.addresses, ("192.0.2.1", "2001:db8::1"))
        self.assertEqual(
            [(p.address, p.sni, n.sni if n else "-") for p, n in mx1.probes],
            [
                ("192.0.2.1", "mx1.example.com", None),
                ("2001:db8::1", "mx1.example.com", None),
            ],
        )
        self.assertEqual(
            (mx1.tlsa.found, mx1.tlsa.count, mx1.tlsa.authenticated),
            (Found.YES, 1, True),
        )
        self.assertIn(("_25._tcp.mx1.example.com", TLSA, True), self.dns.asked)
        self.assertEqual(self.fetcher.domains, ["example.com"])

    def test_no_sni_session_only_after_starttls(self):
        """The SNI-less session runs only when the first one reached the handshake (H16)."""
        stopped = session(
            "192.0.2.2",
            "mx2.example.com",
            stage=Stage.EHLO,
            starttls_offered=False,
            tls=None,
        )
        failed = session(
            "192.0.2.1", "mx1.example.com", stage=Stage.HANDSHAKE, tls=None, error="x"
        )
        prober = FakeProber(
            {
                ("192.0.2.2", "mx2.example.com"): stopped,
                ("192.0.2.1", "mx1.example.com"): failed,
            }
        )
        facts = self.gather(smtp=prober)
        by_host = {h.host: h for h in facts.mx_hosts}
        self.assertIsNone(by_host["mx2.example.com"].probes[0][1])
        self.assertIsNotNone(by_host["mx1.example.com"].probes[0][1])
        self.assertNotIn(("smtp", "192.0.2.2", None), prober.calls)

    def test_null_mx_and_implicit_mx(self):
        """A null MX probes nothing; no MX falls back to the domain's address (H13)."""
        facts = self.gather({("example.com", MX): answer(MX, "0 .")})
        self.assertEqual((facts.mx.records, facts.mx_hosts), ((MxRecord(0, ""),), ()))
        facts = self.gather({("example.com", A): answer(A, "192.0.2.9")})
        self.assertEqual(facts.mx.found, Found.NONE)
        assert facts.implicit_mx is not None
        self.assertEqual(facts.implicit_mx.addresses, ("192.0.2.9",))
        self.assertEqual([h.host for h in facts.mx_hosts], ["example.com"])

    def test_dns_failures_become_facts(self):
        """SERVFAIL and resolver errors are Found.ERROR, NXDOMAIN/NODATA Found.NONE (H5, H13)."""
        answers = {
            ("example.com", MX): answer(MX, rcode=dns.rcode.SERVFAIL),
            ("mta-sts.example.com", A): DnsError("timeout"),
            ("mta-sts.example.com", AAAA): answer(AAAA),
        }
        facts = self.gather(answers, txt={})
        self.assertEqual((facts.mx.found, facts.mx.reason), (Found.ERROR, "SERVFAIL"))
        self.assertEqual(
            (facts.policy_host.addresses.found, facts.policy_host.addresses.reason),
            (Found.ERROR, "timeout"),
        )
        self.assertIsNone(facts.policy_host.fetch)
        self.assertEqual(
            (facts.sts_txt.found, facts.sts_txt.reason), (Found.NONE, "NXDOMAIN")
        )
        nodata = self.gather({("mta-sts.example.com", A): answer(A)})
        self.assertEqual(
            nodata.policy_host.addresses,
            AddressFacts("mta-sts.example.com", Found.NONE, reason="NODATA"),
        )

    def test_fetch_errors_become_facts(self):
        """Fetch faults keep their kind, status and Location (H7, H9)."""
        facts = self.gather(fetch=FetchRedirectError(301, "https://elsewhere.example/"))
        fetch = facts.policy_host.fetch
        assert fetch is not None
        self.assertEqual(
            (fetch.problem, fetch.status, fetch.location, fetch.body),
            (FetchProblem.REDIRECT, 301, "https://elsewhere.example/", None),
        )
        for error, problem in (
            (FetchTimeoutError("slow"), FetchProblem.TIMEOUT),
            (FetchHeadersTooLargeError("huge"), FetchProblem.HEADERS_TOO_LARGE),
            (FetchError("odd"), FetchProblem.CONNECT),
        ):
            fetch = self.gather(fetch=error).policy_host.fetch
            assert fetch is not None
            self.assertEqual((fetch.problem, fetch.reason), (problem, error.reason))
