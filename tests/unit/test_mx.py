"""Tests for postfix_mtasts.core.mx: MX pattern matching and the Postfix reply value."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import StsReportAttributes, TlsPolicyValue, render_value
from postfix_mtasts.core.mx import (
    matching_patterns,
    mx_matches,
    policy_value,
    postfix_match_list,
)
from postfix_mtasts.core.policy import Mode, MxPattern, Policy


def pattern(text: str) -> MxPattern:
    """An MxPattern as parse_mx_pattern would build it (C12)."""
    wildcard = text.startswith("*.")
    return MxPattern(text=text, wildcard=wildcard, base=text.removeprefix("*."))


def enforce(*mx: str) -> Policy:
    lines = ("version: STSv1", "mode: enforce", *(f"mx: {p}" for p in mx))
    return Policy(
        mode=Mode.ENFORCE,
        max_age=86400,
        mx=tuple(pattern(p) for p in mx),
        lines=(*lines, "max_age: 86400"),
    )


# (host, pattern, matches) -- spec D4, K18
MATCHES: list[tuple[str, str, bool]] = [
    ("mail.example.com", "mail.example.com", True),
    ("MAIL.Example.COM", "mail.example.com", True),
    ("mail.example.com.", "mail.example.com", True),
    ("mail.example.com..", "mail.example.com", False),
    ("mail.example.com", "mx.example.com", False),
    ("example.com", "mail.example.com", False),
    ("a.mail.example.com", "mail.example.com", False),
    ("a.example.com", "*.example.com", True),
    ("A.EXAMPLE.COM.", "*.example.com", True),
    ("example.com", "*.example.com", False),
    ("a.b.example.com", "*.example.com", False),
    (".example.com", "*.example.com", False),
    ("aexample.com", "*.example.com", False),
    ("a.example.co", "*.example.com", False),
    ("", "*.example.com", False),
    (".", "mail.example.com", False),
    ("mx.bücher.example", "*.xn--bcher-kva.example", True),
    ("MX.BÜCHER.EXAMPLE.", "mx.xn--bcher-kva.example", True),
    ("bücher.example", "xn--bcher-kva.example", True),
    ("mx.xn--bcher-kva.example", "*.xn--bcher-kva.example", True),
    ("a\u200db.example", "*.example", False),
]


class MatchTests(SynchronousTestCase):
    def test_table(self) -> None:
        """RFC 8461 §4.1 matching: case-insensitive, one trailing dot, ``*.``
        is exactly one whole left-most label, U-labels compared as A-labels
        (D4, K18)."""
        for host, text, expected in MATCHES:
            self.assertEqual(
                mx_matches(host, pattern(text)), expected, f"D4: {host!r} {text!r}"
            )

    def test_matching_patterns_order(self) -> None:
        """matching_patterns keeps policy order and drops non-matches (D4, H14)."""
        patterns = [
            pattern("*.example.com"),
            pattern("mx.example.net"),
            pattern("a.example.com"),
        ]
        self.assertEqual(
            matching_patterns("A.example.com", patterns),
            (patterns[0], patterns[2]),
        )
        self.assertEqual(matching_patterns("b.c.example.com", patterns), ())


class MatchListTests(SynchronousTestCase):
    def test_wildcard_becomes_dot(self) -> None:
        """``*.x`` becomes ``.x``, exact names stay, policy order, no
        duplicates, never ``*.`` (G22, K18)."""
        patterns = [
            pattern("mx1.example.net"),
            pattern("*.example.net"),
            pattern("mx1.example.net"),
            pattern("*.example.net"),
            pattern("mx2.example.org"),
        ]
        self.assertEqual(
            postfix_match_list(patterns),
            ("mx1.example.net", ".example.net", "mx2.example.org"),
        )

    def test_empty_is_a_bug(self) -> None:
        """An empty list would make Postfix fall back to nexthop matching:
        ValueError (G19)."""
        self.assertRaises(ValueError, postfix_match_list, [])

    def test_bad_pattern_is_a_bug(self) -> None:
        """An IP, an empty base or a stray ``*`` never reaches ``match=``
        (C13, G22)."""
        bad = [
            MxPattern("192.0.2.1", False, "192.0.2.1"),
            MxPattern("[192.0.2.1]", False, "[192.0.2.1]"),
            MxPattern("*.", True, ""),
            MxPattern("*.*.example.com", True, "*.example.com"),
        ]
        for p in bad:
            self.assertRaises(ValueError, postfix_match_list, [pattern("ok.x"), p])


class PolicyValueTests(SynchronousTestCase):
    def test_without_report(self) -> None:
        """An enforce answer is ``secure`` with a match list and
        ``servername=hostname`` and no TLSRPT data when report is off
        (G24, D6, G31)."""
        value = policy_value("example.net", enforce("*.example.net"), report=False)
        self.assertEqual(
            value,
            TlsPolicyValue(
                level="secure", match=(".example.net",), servername="hostname"
            ),
        )
        self.assertEqual(
            render_value(value), "secure match=.example.net servername=hostname"
        )

    def test_with_report(self) -> None:
        """With report on, the value carries the policy domain, the patterns
        verbatim (``*.`` kept) and the policy lines in order; the exact
        rendering is the G24 canonical reply (G25-G28, K19)."""
        policy = enforce("mx1.example.net", "*.example.net")
        value = policy_value("example.net", policy, report=True)
        self.assertEqual(
            value.report,
            StsReportAttributes(
                policy_domain="example.net",
                mx_host_patterns=("mx1.example.net", "*.example.net"),
                policy_strings=policy.lines,
            ),
        )
        self.assertEqual(
            render_value(value),
            "secure match=mx1.example.net:.example.net servername=hostname"
            " policy_type=sts policy_domain=example.net"
            " mx_host_pattern=mx1.example.net mx_host_pattern=*.example.net"
            " { policy_string = version: STSv1 } { policy_string = mode: enforce }"
            " { policy_string = mx: mx1.example.net }"
            " { policy_string = mx: *.example.net }"
            " { policy_string = max_age: 86400 }",
        )
