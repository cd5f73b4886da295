"""The start-up DNSSEC probe: one query with the DO bit, one warning when the
resolver does not validate (spec D13), over the real DnsClient on fake
transports."""

from __future__ import annotations

import dns.flags
import dns.rcode
from twisted.internet.defer import Deferred
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import DnssecProbe, parse_config
from postfix_mtasts.dnsclient import DnsClient
from postfix_mtasts.dnssecprobe import probe_dnssec
from postfix_mtasts.service import LookupParts, check_resolver

from .test_txt import FakeDnsReactor, reply_udp, sent_query

NS = ("192.0.2.53", 53)
PROBE = DnssecProbe("NS", ".")


class ProbeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeDnsReactor()
        self.client = DnsClient(self.reactor, [NS], timeout_s=2, attempts=1)

    def probe(self) -> Deferred[str | None]:
        return Deferred.fromCoroutine(probe_dnssec(self.client, PROBE, "192.0.2.53"))

    def test_validated_answer_is_quiet(self) -> None:
        """The probe asks with the DO bit; an AD answer means the resolver
        validates: no warning (D13)."""
        d = self.probe()
        port = self.reactor.udp_ports[0]
        query = sent_query(port)
        self.assertTrue(query.ednsflags & dns.flags.DO)
        self.assertEqual(str(query.question[0].name), ".")
        reply_udp(port, (".", "NS", "a.root-servers.example."), flags=dns.flags.AD)
        self.assertIsNone(self.successResultOf(d))

    def test_no_ad_warns(self) -> None:
        """An answer without AD: the resolver does not validate, and DANE
        precedence cannot work (D13)."""
        d = self.probe()
        reply_udp(self.reactor.udp_ports[0], (".", "NS", "a.root-servers.example."))
        warning = self.successResultOf(d)
        assert warning is not None
        self.assertIn("resolver 192.0.2.53 does not validate DNSSEC", warning)
        self.assertIn("DANE precedence cannot work", warning)

    def test_refused_or_silent_warns(self) -> None:
        """REFUSED (no root in a closed world) and no answer both warn."""
        d = self.probe()
        reply_udp(self.reactor.udp_ports[0], rcode=dns.rcode.REFUSED)
        self.assertIn("REFUSED", self.successResultOf(d) or "")
        d = self.probe()
        self.reactor.advance(2)
        self.assertIn("got no answer", self.successResultOf(d) or "")


class CheckResolverTests(SynchronousTestCase):
    def test_one_warning_only_for_dane_maps(self) -> None:
        """The daemon probes once at start when a map has DANE precedence
        and logs one warning; with it off everywhere (dane = false, or an
        "auto" that Postfix turned off), or no probe, it sends nothing."""
        reactor = FakeDnsReactor()
        client = DnsClient(reactor, [NS], timeout_s=2, attempts=1)
        parts = LookupParts(None, None, client)  # type: ignore[arg-type]
        config = parse_config(
            '[maps.postfix]\ndane = true\n[dns]\nnameservers = ["192.0.2.53"]\n'
        )
        with capturedLogs() as events:
            d = check_resolver(config, parts)
            reply_udp(reactor.udp_ports[0], (".", "NS", "a.root-servers.example."))
        assert d is not None
        self.successResultOf(d)
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertIn("192.0.2.53:53 does not validate", warnings[0]["warning"])
        for text in (
            "[maps.postfix]\ndane = false\n",
            '[maps.postfix]\ndane = "auto"\n',
            '[maps.postfix]\ndane = true\n[dns]\ndnssec_probe = ""\n',
        ):
            self.assertIsNone(check_resolver(parse_config(text), parts))
        self.assertEqual(len(reactor.udp_ports), 1)
