"""``dane = "auto"``: DANE precedence exactly where Postfix does DANE (spec
D13; docs/postfix-versions.md V6: Postfix defers every ``dane-only`` answer
unless its smtp_dns_support_level is dnssec).  Pure functions."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.dane_auto import (
    MAX_POSTCONF_LINE,
    PostfixDns,
    Unexpected,
    auto_maps,
    dane_reason,
    dane_summary,
    does_dane,
    postconf_value,
    resolve_dane,
)

MAPS = (
    ("postfix", MapConfig()),
    ("forced", MapConfig(dane=True)),
    ("off", MapConfig(dane=False)),
    ("report", MapConfig(tlsrpt=True, dane="auto")),
)
SOURCE = "postconf -c /etc/postfix"


def effective(maps: tuple[tuple[str, MapConfig], ...]) -> dict[str, bool | str]:
    return {name: profile.dane for name, profile in maps}


class ResolveTests(SynchronousTestCase):
    def test_only_dnssec_does_dane(self) -> None:
        """Postfix does DANE only at smtp_dns_support_level = dnssec, a word
        it reads in any case; enabled, disabled, unset ("") and unknown
        (None) do not (V6)."""
        for level in ("dnssec", "DNSSEC", " dnssec "):
            self.assertTrue(does_dane(level), level)
        for other in ("enabled", "disabled", "", "dnssec2", "dns sec", None):
            self.assertFalse(does_dane(other), other)

    def test_dnssec_turns_auto_on(self) -> None:
        """At dnssec every "auto" map becomes dane = true; forced maps stay
        as they are, and the other settings too (D13)."""
        got = resolve_dane(MAPS, "dnssec")
        self.assertEqual(
            effective(got),
            {"postfix": True, "forced": True, "off": False, "report": True},
        )
        self.assertEqual(got[3][1], MapConfig(tlsrpt=True, dane=True))

    def test_other_levels_turn_auto_off(self) -> None:
        """enabled, unset, or unknown (postconf failed): "auto" is off, so no
        dane-only answer that this Postfix would defer; dane = true stays on
        (V6)."""
        for level in ("enabled", "", "disabled", None):
            self.assertEqual(
                effective(resolve_dane(MAPS, level)),
                {"postfix": False, "forced": True, "off": False, "report": False},
            )

    def test_dane_on_reads_only_true(self) -> None:
        """An "auto" not resolved has no DANE precedence: the answers read
        dane_on, never the word's truth (D13)."""
        self.assertEqual(
            [MapConfig(dane=d).dane_on for d in ("auto", True, False)],
            [False, True, False],
        )
        self.assertEqual(MapConfig().dane, "auto")

    def test_auto_maps(self) -> None:
        self.assertEqual(auto_maps(MAPS), ("postfix", "report"))
        self.assertEqual(auto_maps(resolve_dane(MAPS, "dnssec")), ())


class PostconfOutputTests(SynchronousTestCase):
    def test_one_value(self) -> None:
        """postconf -h prints one value and a newline; stripped."""
        self.assertEqual(postconf_value(b"dnssec\n"), "dnssec")
        self.assertEqual(postconf_value(b"\n"), "")
        self.assertEqual(postconf_value(b"/etc/postfix\n", path=True), "/etc/postfix")

    def test_hostile_output_refused(self) -> None:
        """Anything else (two lines, no newline, non-ASCII, control
        characters, a line too long, a path that is not absolute) is not a
        value: output from outside is checked, and shown quoted."""
        long = b"d" * (MAX_POSTCONF_LINE + 1)
        for out in (
            b"dnssec\nenabled\n",
            b"dnssec",
            b"",
            b"dnss\xc3\xa9c\n",
            b"dnssec\x1b[2J\n",
            long + b"\n",
        ):
            self.assertIsInstance(postconf_value(out), Unexpected, out)
        self.assertIsInstance(postconf_value(b"etc/postfix\n", path=True), Unexpected)
        why = postconf_value(b"dnssec\x1b[2J\n")
        assert isinstance(why, Unexpected)
        self.assertEqual(why.reason, "postconf wrote 'dnssec\\x1b[2J\\n'")


class SummaryTests(SynchronousTestCase):
    def test_on(self) -> None:
        """The one start-up line names the auto maps, the level and where
        Postfix's configuration was read."""
        summary = dane_summary(MAPS, PostfixDns("dnssec", SOURCE))
        self.assertEqual(
            (summary.on, summary.maps, summary.warn),
            (True, ("postfix", "report"), False),
        )
        self.assertEqual(
            summary.reason,
            "Postfix smtp_dns_support_level = 'dnssec' (postconf -c /etc/postfix)",
        )

    def test_off_says_why_and_how_to_force(self) -> None:
        """At another level: off, an info line that says dane-only would be
        deferred and that dane = true forces it (V6)."""
        summary = dane_summary(MAPS, PostfixDns("enabled", SOURCE))
        self.assertEqual((summary.on, summary.warn), (False, False))
        self.assertIn("= 'enabled' (postconf -c /etc/postfix)", summary.reason)
        self.assertIn("defer every dane-only answer", summary.reason)
        self.assertIn("dane = true forces", summary.reason)

    def test_unknown_warns(self) -> None:
        """postconf could not be asked: off, as a warning that names the
        error, [postfix] config_directory and dane = true."""
        summary = dane_summary(MAPS, PostfixDns(None, "postconf", "no postconf"))
        self.assertEqual((summary.on, summary.warn), (False, True))
        self.assertIn("(no postconf)", summary.reason)
        self.assertIn("[postfix] config_directory", summary.reason)
        self.assertIn("dane = true on a map", summary.reason)

    def test_reason_per_map(self) -> None:
        """What `query` shows for a map: its dane as written, and for
        "auto" what Postfix said."""
        known = PostfixDns("dnssec", SOURCE)
        self.assertEqual(dane_reason(MapConfig(dane=True), known), "dane = true")
        self.assertEqual(dane_reason(MapConfig(dane=False), None), "dane = false")
        self.assertEqual(
            dane_reason(MapConfig(), known),
            "dane = \"auto\", Postfix smtp_dns_support_level = 'dnssec' "
            "(postconf -c /etc/postfix)",
        )
        self.assertEqual(
            dane_reason(MapConfig(), PostfixDns(None, "postconf", "it failed")),
            'dane = "auto", Postfix not known: it failed',
        )
        self.assertEqual(
            dane_reason(MapConfig(), None), 'dane = "auto", Postfix not asked'
        )
