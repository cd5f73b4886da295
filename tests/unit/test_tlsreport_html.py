"""The TLS report summary as one self-contained HTML file with an inline
SVG chart (issue 14): the same tables as the terminal, a bounded per-day
chart, nothing loaded from anywhere, and every string from a report
(RFC 8460 §7: reports come from strangers) inert."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.tlsreport import TlsReport, parse_report
from postfix_mtasts.core.tlsreport_chart import (
    MAX_DAYS,
    MAX_TYPES,
    DayTotal,
    daily_totals,
    escape,
    render_chart,
)
from postfix_mtasts.core.tlsreport_html import CSP, render_html
from postfix_mtasts.core.tlsreport_json import rfc3339
from postfix_mtasts.core.tlsreport_summary import summarize

from .tlsrpt_samples import DAY_START, GOOGLE, MICROSOFT, report_dict

HOSTILE = "<script>alert(1)</script>\"'</svg><img src=x onerror=alert(2)>&amp;"


def _report(data: dict[str, object] | bytes) -> TlsReport:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    report = parse_report(data)
    assert isinstance(report, TlsReport), report
    return report


def _on_day(day: int, *, report_id: str = "r", failed: int = 1, **top: object):
    """A report of the sample sender ``day`` days after the sample day."""
    start = DAY_START + day * 86400
    data = report_dict(
        report_id=f"{report_id}-{day}",
        date_range={
            "start-datetime": rfc3339(start),
            "end-datetime": rfc3339(start + 86399),
        },
        **top,
    )
    data["policies"][0]["summary"]["total-failure-session-count"] = failed
    if not failed:
        del data["policies"][0]["failure-details"]
    return _report(data)


class _Elements(HTMLParser):
    """Every start tag and attribute name the browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.update(name for name, _ in attrs)


def _elements(document: str) -> _Elements:
    parser = _Elements()
    parser.feed(document)
    parser.close()
    return parser


class HtmlDocumentTests(SynchronousTestCase):
    def test_tables_and_chart(self) -> None:
        """The document holds the terminal's three tables (sessions,
        failures by result type/MX host/IP, policies; RFC 8460 §4.3-4.4)
        and one inline SVG chart."""
        rows = summarize(_report(p.read_bytes()) for p in (GOOGLE, MICROSOFT))
        document = render_html(rows, "Reports of policy domain example.com.")
        self.assertTrue(document.startswith("<!DOCTYPE html>\n"))
        self.assertEqual(document.count("<svg "), 1)
        self.assertEqual(document.count("<table>"), 3)
        self.assertIn("<td>Google Inc.</td>", document)
        self.assertIn('<td class="n">1184</td>', document)
        self.assertIn("<td>certificate-expired</td>", document)
        self.assertIn("<p>Reports of policy domain example.com.</p>", document)

    def test_self_contained(self) -> None:
        """No script, no external resource, no link: a CSP that forbids
        loading anything, and no src/href attribute anywhere."""
        rows = summarize(_report(p.read_bytes()) for p in (GOOGLE, MICROSOFT))
        document = render_html(rows)
        elements = _elements(document)
        self.assertNotIn("script", elements.tags)
        self.assertFalse({"src", "href", "xlink:href"} & elements.attributes)
        self.assertNotIn("http://", document.replace('xmlns="http://www.w3.org', ""))
        self.assertNotIn("https://", document)
        self.assertIn(f'content="{CSP}"', document)
        self.assertIn("default-src 'none'", CSP)

    def test_nothing(self) -> None:
        """No rows: a sentence, no chart and no table."""
        document = render_html([])
        self.assertIn("No TLS reports stored (for this selection).", document)
        self.assertNotIn("<svg", document)
        self.assertNotIn("<table>", document)

    def test_no_failures(self) -> None:
        """A day without failures says so instead of an empty table."""
        document = render_html(summarize([_on_day(0, failed=0)]))
        self.assertIn("No failed sessions reported.", document)
        self.assertEqual(document.count("<table>"), 2)

    def test_hostile_report_is_inert(self) -> None:
        """An organisation, MX host, result type and policy domain holding
        <script>, quotes and </svg> come out as text: no element or
        attribute of theirs, in the tables or the chart (RFC 8460 §7)."""
        data = report_dict(organization_name=HOSTILE)
        data["policies"][0]["policy"]["mx-host"] = [HOSTILE]
        detail = data["policies"][0]["failure-details"][0]
        detail.update(
            {
                "result-type": HOSTILE,
                "receiving-mx-hostname": HOSTILE,
                "receiving-ip": HOSTILE,
            }
        )
        document = render_html(summarize([_report(data)]), HOSTILE)
        elements = _elements(document)
        self.assertNotIn("script", elements.tags)
        self.assertNotIn("img", elements.tags)
        self.assertNotIn("onerror", elements.attributes)
        self.assertEqual(document.count("</svg>"), 1)
        self.assertNotIn("<script", document)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;", document)

    def test_control_characters(self) -> None:
        """Report text with control characters is shown as its repr."""
        self.assertEqual(escape("a\x1b[31mb"), "&#x27;a\\x1b[31mb&#x27;")
        self.assertEqual(escape("x" * 100), "x" * 57 + "...")


class ChartTests(SynchronousTestCase):
    def test_daily_totals(self) -> None:
        """Rows of several organisations add up per day, oldest first."""
        rows = summarize(
            [
                _on_day(1, failed=2),
                _on_day(0, organization_name="Other Org", failed=3),
                _on_day(0, failed=0),
                _on_day(0, report_id="s", failed=0),
            ]
        )
        self.assertEqual(
            daily_totals(rows),
            [
                DayTotal("2024-11-29", 30, 3, (("certificate-expired", 1),)),
                DayTotal("2024-11-30", 10, 2, (("certificate-expired", 1),)),
            ],
        )

    def test_bars_and_titles(self) -> None:
        """One bar per day and kind, its count in a tooltip; a single
        failure among many successes still gets a pixel."""
        chart = render_chart(
            [
                DayTotal("2024-11-29", 100000, 1, (("certificate-expired", 1),)),
                DayTotal("2024-11-30", 5, 0, ()),
            ]
        )
        self.assertIn("<title>2024-11-29: 1 failed</title>", chart)
        self.assertIn("<title>2024-11-29: 100000 successful</title>", chart)
        self.assertIn("<title>2024-11-29: 1 certificate-expired</title>", chart)
        failed = re.search(
            r'height="(\d+)" fill="#c62828"><title>2024-11-29: 1 f', chart
        )
        assert failed is not None
        self.assertEqual(failed.group(1), "1")
        self.assertNotIn("earlier day", chart)

    def test_bounded_days(self) -> None:
        """At most MAX_DAYS days are drawn (the latest); the earlier ones
        are summed in one line."""
        totals = [
            DayTotal(f"d{n:04d}", 10, 1, (("validation-failure", 1),))
            for n in range(MAX_DAYS + 5)
        ]
        chart = render_chart(totals)
        self.assertEqual(chart.count("successful</title>"), MAX_DAYS)
        self.assertNotIn("d0004:", chart)
        self.assertIn("d0005: 10 successful", chart)
        self.assertIn(
            "<p>5 earlier day(s) not charted (d0000 to d0004): 50 successful,"
            " 5 failed session(s).</p>",
            chart,
        )

    def test_bounded_result_types(self) -> None:
        """At most MAX_TYPES result types get a colour; the rest are drawn
        together as "other"."""
        kinds = tuple((f"type-{n}", n + 1) for n in range(MAX_TYPES + 3))
        chart = render_chart([DayTotal("2024-11-29", 0, 45, kinds)])
        self.assertIn(">other result types</text>", chart)
        self.assertIn("<title>2024-11-29: 6 other result types</title>", chart)
        self.assertNotIn(">type-0</text>", chart)
        self.assertIn(">type-8</text>", chart)

    def test_no_sessions(self) -> None:
        """Nothing to draw: a sentence; a day with no sessions draws no bar."""
        self.assertEqual(render_chart([]), "<p>No sessions to chart.</p>")
        chart = render_chart([DayTotal("2024-11-29", 0, 0, ())])
        self.assertNotIn('<rect x="72"', chart)
        self.assertIn(">0</text>", chart)
