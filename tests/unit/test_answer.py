"""Tests for postfix_mtasts.core.answer: rendering a TLS policy value."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import StsReportAttributes, TlsPolicyValue, render_value


def value(*lines: str) -> TlsPolicyValue:
    return TlsPolicyValue(
        level="secure",
        match=("mx.example.net",),
        servername="hostname",
        report=StsReportAttributes("example.net", ("mx.example.net",), lines),
    )


class RenderValueTests(SynchronousTestCase):
    def test_without_report(self) -> None:
        """with_report=False leaves every TLSRPT attribute out (G31)."""
        self.assertEqual(
            render_value(value("mode: enforce"), with_report=False),
            "secure match=mx.example.net servername=hostname",
        )

    def test_braces_dropped(self) -> None:
        """A policy line with ``{`` or ``}`` cannot be wrapped: dropped (G27)."""
        text = render_value(value("mode: enforce", "x-a: {b}", "x-c: d}"))
        self.assertTrue(text.endswith(" { policy_string = mode: enforce }"), text)
        self.assertEqual(text.count("policy_string"), 1)

    def test_control_characters_dropped(self) -> None:
        """A policy line with NUL, CR, LF or DEL is dropped; a TAB (legal
        WSP after ``:``, C2) is kept (G27)."""
        lines = ("mode:\tenforce", "x-a: b\x00c", "x-d: e\rf", "x-g: \n", "x-h: \x7f")
        text = render_value(value(*lines))
        self.assertTrue(text.endswith(" { policy_string = mode:\tenforce }"), text)
        self.assertEqual(text.count("policy_string"), 1)

    def test_utf8_line_kept(self) -> None:
        """A UTF-8 extension value is embedded as it is (C16, G27)."""
        text = render_value(value("x-note: café"))
        self.assertTrue(text.endswith(" { policy_string = x-note: café }"), text)

    def test_blank_lines_dropped(self) -> None:
        """A tolerated blank line (C3, issue 12) is no policy_string: Postfix
        would meet an attribute with no value; indented and stray lines stay."""
        text = render_value(value("mode: enforce", "", " \t", "  mx: a.example", "ok"))
        self.assertTrue(
            text.endswith(
                " { policy_string = mode: enforce }"
                " { policy_string =   mx: a.example } { policy_string = ok }"
            ),
            text,
        )
