"""Tests for postfix_mtasts.core.text: quoting peer input, UTC timestamps."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.text import QUOTE_LIMIT, cut, quote, utc_timestamp


class QuoteTests(SynchronousTestCase):
    def test_repr(self) -> None:
        """Peer input is shown as its repr: controls and odd bytes stay
        visible and the message stays on one line (C17, A3)."""
        self.assertEqual(quote("a\nb"), "'a\\nb'")
        self.assertEqual(quote(b"v=STSv1;\x00"), "b'v=STSv1;\\x00'")
        self.assertEqual(quote(None), "None")
        self.assertEqual(quote(["x", "y"]), "['x', 'y']")

    def test_cut_at_limit(self) -> None:
        """A long value is cut to exactly the limit, ``...`` included, so the
        reader sees it was cut (C17)."""
        shown = quote("a" * 1000)
        self.assertEqual(len(shown), QUOTE_LIMIT)
        self.assertEqual(shown, "'" + "a" * (QUOTE_LIMIT - 4) + "...")
        self.assertEqual(quote("a" * (QUOTE_LIMIT - 2)), "'" + "a" * 198 + "'")
        self.assertEqual(quote(b"\x01" * 100, limit=10), "b'\\x01\\...")

    def test_cut(self) -> None:
        """cut() keeps short text whole and never exceeds its limit."""
        self.assertEqual(cut("abc", 3), "abc")
        self.assertEqual(cut("abcd", 3), "...")
        self.assertEqual(cut("abcdef", 5), "ab...")
        self.assertEqual(cut("abcdef", 1), "...")


class UtcTimestampTests(SynchronousTestCase):
    def test_rfc3339_z(self) -> None:
        """A POSIX time is RFC 3339 in UTC with Z, whole seconds, fraction
        dropped (the form of docs/checker.md and the cache listings)."""
        self.assertEqual(utc_timestamp(0), "1970-01-01T00:00:00Z")
        self.assertEqual(utc_timestamp(1_795_953_600.9), "2026-11-29T12:00:00Z")
