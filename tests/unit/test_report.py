"""Tests for postfix_mtasts.core.report: the report-only answers of a tlsrpt
map (testing mode, policy failure), their exact bytes on both codecs, and the
checks that keep them from enforcing anything (spec D9, D14, G25-G31, L2-L4).
"""

from __future__ import annotations

import itertools

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core import tcptable
from postfix_mtasts.core.answer import (
    POLICY_FAILURE_LEVELS,
    REPORT_ONLY_LEVELS,
    Answer,
    PolicyFailure,
    Status,
    StsReportAttributes,
    TlsPolicyValue,
    render_value,
)
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import Negative, answer_for
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.core.report import failure_value, sts_report
from postfix_mtasts.core.report import testing_value as reported_testing
from postfix_mtasts.core.socketmap import encode_reply

from .fakes import make_policy

DOMAIN = "example.com"
NOW = 1_000_000.0
TESTING = make_policy(Mode.TESTING, ("mx1.example.com", "*.example.net"))
ATTRIBUTES = (
    " policy_type=sts policy_domain=example.com"
    " mx_host_pattern=mx1.example.com mx_host_pattern=*.example.net"
    " { policy_string = version: STSv1 } { policy_string = mode: testing }"
    " { policy_string = mx: mx1.example.com } { policy_string = mx: *.example.net }"
    " { policy_string = max_age: 86400 }"
)

# (level, exact socketmap reply, exact tcp_table reply) for testing mode.
TESTING_GOLDEN = [
    (
        level,
        b"%d:%s," % (len(payload), payload),
        b"200 " + payload[3:] + b"\n",
    )
    for level in ("may", "encrypt", "dane")
    for payload in [f"OK {level} servername=hostname{ATTRIBUTES}".encode()]
]

# (level, failure, exact socketmap reply, exact tcp_table reply)
FAILURE_GOLDEN = [
    (
        "may",
        PolicyFailure.FETCH_ERROR,
        b"86:OK may policy_type=sts policy_domain=example.com"
        b" policy_failure=sts-policy-fetch-error,",
        b"200 may policy_type=sts policy_domain=example.com"
        b" policy_failure=sts-policy-fetch-error\n",
    ),
    (
        "may",
        PolicyFailure.WEBPKI_INVALID,
        b"82:OK may policy_type=sts policy_domain=example.com"
        b" policy_failure=sts-webpki-invalid,",
        b"200 may policy_type=sts policy_domain=example.com"
        b" policy_failure=sts-webpki-invalid\n",
    ),
    (
        "may",
        PolicyFailure.POLICY_INVALID,
        b"82:OK may policy_type=sts policy_domain=example.com"
        b" policy_failure=sts-policy-invalid,",
        b"200 may policy_type=sts policy_domain=example.com"
        b" policy_failure=sts-policy-invalid\n",
    ),
    (
        "encrypt",
        PolicyFailure.FETCH_ERROR,
        b"90:OK encrypt policy_type=sts policy_domain=example.com"
        b" policy_failure=sts-policy-fetch-error,",
        b"200 encrypt policy_type=sts policy_domain=example.com"
        b" policy_failure=sts-policy-fetch-error\n",
    ),
]


class GoldenTests(SynchronousTestCase):
    def test_testing_mode_bytes(self) -> None:
        """A testing-mode policy on a tlsrpt map: the map's default_level,
        servername=hostname, every TLSRPT attribute, and no match= (D9, G24-G28,
        L2, L3), byte for byte on socketmap and tcp_table."""
        self.assertEqual(
            TESTING_GOLDEN[0][1],
            b"312:OK may servername=hostname" + ATTRIBUTES.encode() + b",",
        )
        for level, socketmap_bytes, tcp_bytes in TESTING_GOLDEN:
            answer = Answer.ok(reported_testing(DOMAIN, TESTING, level))
            self.assertEqual(encode_reply(answer), socketmap_bytes, level)
            self.assertEqual(tcptable.encode_reply(answer), tcp_bytes, level)

    def test_policy_failure_bytes(self) -> None:
        """A policy that could not be had: the map's default_level, the domain
        and the RFC 8460 result type, nothing else (B16, D14, G29, L4)."""
        for level, failure, socketmap_bytes, tcp_bytes in FAILURE_GOLDEN:
            answer = Answer.ok(failure_value(DOMAIN, failure, level))
            self.assertEqual(encode_reply(answer), socketmap_bytes, failure)
            self.assertEqual(tcptable.encode_reply(answer), tcp_bytes, failure)

    def test_sts_report_is_the_enforce_report(self) -> None:
        """The enforce answer and the testing answer describe a policy with
        the same attributes: patterns as written, deduplicated, lines in
        order (G26-G28)."""
        policy = make_policy(
            Mode.TESTING, ("mx1.example.com", "*.example.net", "mx1.example.com")
        )
        report = sts_report(DOMAIN, policy)
        self.assertEqual(report.mx_host_patterns, ("mx1.example.com", "*.example.net"))
        self.assertEqual(report.policy_strings, policy.lines)
        self.assertIsNone(report.policy_failure)


class FitTests(SynchronousTestCase):
    def test_testing_answer_too_large_for_tcp_table_is_notfound(self) -> None:
        """A report-only answer whose attributes do not fit tcp_table's 4096
        bytes is NOTFOUND (what the map says without TLSRPT), never a bare
        level nor a TEMP that defers mail (G17, G31)."""
        many = tuple(f"mx{i:03d}.example.com" for i in range(200))
        value = reported_testing(DOMAIN, make_policy(Mode.TESTING, many), "may")
        self.assertEqual(tcptable.encode_reply(Answer.ok(value)), b"500 not found\n")
        self.assertIn(b"OK may servername=hostname", encode_reply(Answer.ok(value)))

    def test_report_only_over_the_socketmap_limit_is_notfound(self) -> None:
        """The same rule on socketmap with a small reply limit (G7)."""
        many = tuple(f"mx{i:03d}.example.com" for i in range(200))
        value = reported_testing(DOMAIN, make_policy(Mode.TESTING, many), "may")
        self.assertEqual(encode_reply(Answer.ok(value), limit=1024), b"9:NOTFOUND ,")


class InvariantTests(SynchronousTestCase):
    def test_report_only_never_secure_nor_match(self) -> None:
        """A report-only value cannot carry secure, verify or match=: Postfix
        would enforce or defer (L2, L4)."""
        report = StsReportAttributes(DOMAIN, policy_failure=PolicyFailure.FETCH_ERROR)
        for level in ("secure", "verify", "dane-only", "none", "fingerprint"):
            with self.assertRaises(ValueError, msg=level):
                TlsPolicyValue(level, report=report, report_only=True)
        with self.assertRaises(ValueError):
            TlsPolicyValue("may", ("mx.example.com",), report=report, report_only=True)
        with self.assertRaises(ValueError):
            TlsPolicyValue("may", report_only=True)

    def test_policy_failure_never_at_dane(self) -> None:
        """policy_failure forces Postfix's verification to fail, which a
        DANE-verified MX cannot survive: no failure value at dane, and a
        dane map answers NOTFOUND for a policy failure (D13, D14)."""
        with self.assertRaises(ValueError):
            failure_value(DOMAIN, PolicyFailure.FETCH_ERROR, "dane")
        failed = Negative(
            "HTTP 500", NOW + 60, policy_failure=PolicyFailure.FETCH_ERROR
        )
        dane = MapConfig(tlsrpt=True, default_level="dane")
        answer = answer_for(DOMAIN, None, failed, NOW, dane)
        self.assertEqual(encode_reply(answer), b"9:NOTFOUND ,")

    def test_policy_failure_never_enforced(self) -> None:
        """policy_failure on an enforcing value is refused: with secure,
        Postfix defers every message (L4)."""
        report = StsReportAttributes(DOMAIN, policy_failure=PolicyFailure.FETCH_ERROR)
        with self.assertRaises(ValueError):
            TlsPolicyValue("secure", ("mx.example.com",), "hostname", report)

    def test_every_answer_of_every_map(self) -> None:
        """Over every cache state, negative answer and tlsrpt map level: a
        rendered answer with policy_failure never starts with secure, and a
        report-only answer never carries match= (L2, L4, G29)."""
        entries: list[CacheEntry | None] = [None]
        entries += [
            CacheEntry.fetched(DOMAIN, "1", make_policy(mode), NOW - 10)
            for mode in Mode
        ]
        negatives = [None, Negative("x", NOW + 60, dns_failure=True)] + [
            Negative("x", NOW + 60, policy_failure=f) for f in PolicyFailure
        ]
        seen = 0
        for entry, negative, level in itertools.product(
            entries, negatives, REPORT_ONLY_LEVELS
        ):
            settings = MapConfig(tlsrpt=True, default_level=level)  # type: ignore[arg-type]
            answer = answer_for(DOMAIN, entry, negative, NOW, settings)
            if answer.value is None:
                continue
            text = render_value(answer.value)
            if "policy_failure=" in text:
                seen += 1
                self.assertFalse(text.startswith("secure"), text)
            if answer.value.report_only:
                self.assertNotIn("match=", text)
                self.assertTrue(text.startswith(level + " "), text)
        self.assertEqual(seen, len(PolicyFailure) * len(POLICY_FAILURE_LEVELS))


class TlsrptOffTests(SynchronousTestCase):
    def test_default_level_without_tlsrpt_changes_nothing(self) -> None:
        """Without tlsrpt, default_level changes no answer: testing is
        NOTFOUND and a policy failure is NOTFOUND, as before (G31, D9, B16)."""
        testing = CacheEntry.fetched(DOMAIN, "1", TESTING, NOW - 10)
        failed = Negative(
            "HTTP 500", NOW + 60, policy_failure=PolicyFailure.FETCH_ERROR
        )
        for level in REPORT_ONLY_LEVELS:
            settings = MapConfig(default_level=level)  # type: ignore[arg-type]
            for entry, negative in ((testing, None), (None, failed)):
                answer = answer_for(DOMAIN, entry, negative, NOW, settings)
                self.assertEqual(answer.status, Status.NOTFOUND)
                self.assertEqual(encode_reply(answer), b"9:NOTFOUND ,")
