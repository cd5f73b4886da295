"""The counters the adapters keep where their events happen (issue 11,
point 3): DNS questions, HTTPS fetches and their durations, discoveries,
cached policies by mode.  Each is read by /metrics and ``status``."""

from __future__ import annotations

import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.memory import MemoryCache
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.dnsclient import DnsClient
from postfix_mtasts.fetch import fault_kind
from postfix_mtasts.fetch_errors import (
    FetchContentTypeError,
    FetchError,
    FetchHeadersTooLargeError,
    FetchStatusError,
    FetchTimeoutError,
    FetchTooLargeError,
)
from postfix_mtasts.resolver import PolicyResolver

from .fakes import make_policy
from .test_fetch import POLICY, FetcherTestCase
from .test_resolver import FakeFetcher, FakeTxt, records
from .test_txt import NAME, NS1, FakeDnsReactor, reply_udp


class DnsCountTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeDnsReactor()
        self.client = DnsClient(self.reactor, [NS1], timeout_s=5.0, attempts=1)

    def test_answers_counted_by_type_and_rcode(self) -> None:
        """Each question asked is counted once by type and rcode (A15:
        NXDOMAIN and SERVFAIL apart)."""
        for rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL):
            d = self.client.lookup_txt(NAME)
            reply_udp(self.reactor.udp_ports[-1], rcode=rcode)
            self.successResultOf(d)
        self.assertEqual(
            dict(self.client.results),
            {("txt", "noerror"): 1, ("txt", "nxdomain"): 1, ("txt", "servfail"): 1},
        )

    def test_timeout_counted(self) -> None:
        """A question no server answers is counted as a timeout (A15)."""
        d = self.client.lookup_txt(NAME)
        self.reactor.advance(5.0)
        self.successResultOf(d)
        self.assertEqual(dict(self.client.results), {("txt", "timeout"): 1})


class FetchCountTests(FetcherTestCase):
    def test_ok_and_duration(self) -> None:
        """A fetch that succeeds after 0.3 s counts as ok, in the 0.5 s
        bucket (B1, B7)."""
        d = self.fetch()
        self.clock.advance(0.3)
        response = self.respond()
        response.write(POLICY)
        response.finish()
        self.successResultOf(d)
        self.assertEqual(dict(self.fetcher.results), {"ok": 1})
        histogram = self.fetcher.durations
        self.assertEqual(histogram.count, 1)
        self.assertAlmostEqual(histogram.sum, 0.3)
        self.assertEqual(dict(histogram.cumulative())[0.25], 0)
        self.assertEqual(dict(histogram.cumulative())[0.5], 1)

    def test_faults_by_kind(self) -> None:
        """A 404 (B7) and a timeout (B12) are counted by their kind."""
        d = self.fetch()
        self.respond(code=404)
        self.failureResultOf(d, FetchStatusError)
        d = self.fetch()
        self.clock.advance(20)
        self.failureResultOf(d, FetchTimeoutError)
        self.assertEqual(dict(self.fetcher.results), {"status": 1, "timeout": 1})
        self.assertEqual(self.fetcher.durations.count, 2)

    def test_fault_kind_words(self) -> None:
        """Each fault class gives a fixed snake_case word."""
        self.assertEqual(fault_kind(FetchTooLargeError("x")), "too_large")
        self.assertEqual(
            fault_kind(FetchHeadersTooLargeError("x")), "headers_too_large"
        )
        self.assertEqual(fault_kind(FetchContentTypeError(None)), "content_type")
        self.assertEqual(fault_kind(FetchError("x")), "error")
        self.assertEqual(fault_kind(ValueError("x")), "other")


class DiscoveryCountTests(SynchronousTestCase):
    def resolve(self, resolver: PolicyResolver, known_id: str | None = None) -> None:
        self.successResultOf(resolver.resolve("example.com", known_id, lambda _: None))

    def test_outcomes(self) -> None:
        """Discoveries are counted by outcome; an invalid policy file (C17)
        apart from other failed fetches (B7)."""
        good = PolicyResolver(FakeTxt(records(b"v=STSv1; id=abc;")), FakeFetcher())
        self.resolve(good)
        self.resolve(good, known_id="abc")
        self.assertEqual(dict(good.outcomes), {"fetched": 1, "unchanged": 1})
        bad = PolicyResolver(
            FakeTxt(records(b"v=STSv1; id=abc;")), FakeFetcher(b"not a policy")
        )
        self.resolve(bad)
        failing = PolicyResolver(
            FakeTxt(records(b"v=STSv1; id=abc;")), FakeFetcher(FetchStatusError(500))
        )
        self.resolve(failing)
        self.assertEqual(dict(bad.outcomes), {"policy_invalid": 1})
        self.assertEqual(dict(failing.outcomes), {"fetch_failed": 1})


def entry(domain: str, mode: Mode) -> CacheEntry:
    return CacheEntry.fetched(domain, "1", make_policy(mode), 0.0)


class ModeCountTests(SynchronousTestCase):
    def test_put_replace_delete_evict(self) -> None:
        """The count by mode follows every change of the LRU: a new entry,
        one replaced by another mode, a delete and an eviction."""
        cache = MemoryCache(2)
        cache.put(entry("a.example", Mode.ENFORCE))
        cache.put(entry("b.example", Mode.TESTING))
        cache.put(entry("a.example", Mode.NONE))
        self.assertEqual(+cache.modes, {Mode.TESTING: 1, Mode.NONE: 1})
        cache.put(entry("c.example", Mode.ENFORCE))  # evicts b.example
        self.assertEqual(+cache.modes, {Mode.NONE: 1, Mode.ENFORCE: 1})
        cache.delete("a.example")
        cache.delete("a.example")
        self.assertEqual(+cache.modes, {Mode.ENFORCE: 1})
