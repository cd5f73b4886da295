"""Tests for ``check --suggest`` (spec H.2)."""

from __future__ import annotations

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.facts import (
    AddressFacts,
    Found,
    MxFacts,
    MxRecord,
    TxtFacts,
)
from postfix_mtasts.checker.rules import suggestion
from postfix_mtasts.checker.suggest import new_policy_id, suggest
from postfix_mtasts.core.policy import Mode, Policy, parse_policy
from postfix_mtasts.core.record import StsRecord, parse_sts_records

from .checker_facts import DOMAIN, MX1, MX2, NOW, facts, txt


class SuggestTests(SynchronousTestCase):
    def test_policy_id(self):
        """The id is the UTC time, letters and digits only (H.2, A4)."""
        self.assertEqual(new_policy_id(NOW), "20270115T080000")

    def test_policy_and_records(self):
        """Testing mode, max_age 604800, one exact mx line per MX, version first (H.2)."""
        result = suggest(DOMAIN, (MX1, MX2), NOW)
        assert result is not None
        self.assertEqual(
            result.policy,
            "version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: mx2.example.com\nmax_age: 604800\n",
        )
        policy = parse_policy(result.policy.encode())
        assert isinstance(policy, Policy)
        self.assertEqual((policy.mode, policy.notes), (Mode.TESTING, ()))
        sts, tlsrpt, host = result.records
        self.assertEqual(
            sts, '_mta-sts.example.com. 3600 IN TXT "v=STSv1; id=20270115T080000"'
        )
        record = parse_sts_records([[sts.split('"')[1].encode()]])
        self.assertEqual(record, StsRecord("20270115T080000"))
        self.assertIn('"v=TLSRPTv1; rua=mailto:tlsrpt@example.com"', tlsrpt)
        self.assertTrue(host.startswith("mta-sts.example.com."))
        self.assertEqual(
            result.policy_url, "https://mta-sts.example.com/.well-known/mta-sts.txt"
        )
        self.assertTrue(any("two weeks" in hint for hint in result.hints))

    def test_nothing_to_suggest_without_mx(self):
        """No MX host known (null MX, DNS failure): no suggestion (H.2, H13)."""
        self.assertIsNone(suggest(DOMAIN, (), NOW))

    def test_from_facts(self):
        """From facts: current MX set, the valid TLSRPT record kept as it is (H.2)."""
        good = facts(mx=MxFacts(Found.YES, (MxRecord(20, MX2), MxRecord(10, MX1))))
        result = suggestion(good, NOW)
        assert result is not None
        self.assertIn("mx: mx1.example.com\nmx: mx2.example.com\n", result.policy)
        self.assertIn('"v=TLSRPTv1; rua=mailto:tls@example.com"', result.records[1])
        bad = evolve(good, tlsrpt_txt=txt("_smtp._tls.example.com", "v=TLSRPTv1; x=1"))
        result = suggestion(bad, NOW)
        assert result is not None
        self.assertIn("rua=mailto:tlsrpt@example.com", result.records[1])

    def test_implicit_mx(self):
        """No MX record but an address: the domain itself is the MX (H13, H.2)."""
        implicit = facts(
            mx=MxFacts(Found.NONE, reason="NODATA"),
            implicit_mx=AddressFacts(DOMAIN, Found.YES, ("192.0.2.9",)),
            tlsrpt_txt=TxtFacts("_smtp._tls.example.com", Found.NONE),
        )
        result = suggestion(implicit, NOW)
        assert result is not None
        self.assertIn(f"mx: {DOMAIN}\n", result.policy)
