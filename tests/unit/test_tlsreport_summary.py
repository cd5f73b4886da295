"""What the TLS reports say per day and per sender (issue 14, RFC 8460
§4.3-4.4): sessions, failures by result type, MX host and IP, and the
policies senders applied; as tables and as JSON."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.tlsreport import TlsReport, parse_report
from postfix_mtasts.core.tlsreport_json import rfc3339
from postfix_mtasts.core.tlsreport_summary import (
    PolicySeen,
    summarize,
    summary_json,
    utc_day,
)
from postfix_mtasts.core.tlsreport_text import COLUMN_CHARS, render_summary

from .tlsrpt_samples import DAY_START, GOOGLE, MICROSOFT, report_dict

STS = PolicySeen(
    "sts",
    "example.com",
    (
        "version: STSv1",
        "mode: testing",
        "mx: mx1.example.com",
        "mx: *.mx.example.net",
        "max_age: 604800",
    ),
    ("mx1.example.com", "*.mx.example.net"),
)


def _report(data: bytes | dict[str, object]) -> TlsReport:
    if isinstance(data, dict):
        data = json.dumps(data).encode()
    report = parse_report(data)
    assert isinstance(report, TlsReport), report
    return report


def _samples() -> list[TlsReport]:
    return [_report(p.read_bytes()) for p in (GOOGLE, MICROSOFT)]


def _next_day(report_id: str, organization: str = "Sender Org") -> TlsReport:
    start = DAY_START + 86400
    return _report(
        report_dict(
            report_id=report_id,
            organization_name=organization,
            date_range={
                "start-datetime": rfc3339(start + 3600),
                "end-datetime": rfc3339(start + 86399),
            },
        )
    )


class SummaryTests(SynchronousTestCase):
    def test_per_day_and_sender(self) -> None:
        """One row per (UTC day of the range's start, organisation), with the
        sessions and the failures ranked most first."""
        google, microsoft = summarize([*_samples(), _next_day("n1"), _next_day("n2")])[
            :2
        ]
        self.assertEqual(
            (google.day, google.organization, google.reports),
            ("2024-11-29", "Google Inc.", 1),
        )
        self.assertEqual((google.successful, google.failed), (1184, 23))
        self.assertEqual(
            google.result_types,
            (("certificate-expired", 17), ("starttls-not-supported", 6)),
        )
        self.assertEqual(
            google.mx_hosts, (("mx1.example.com", 17), ("backup.mx.example.net", 6))
        )
        self.assertEqual(
            google.receiving_ips, (("192.0.2.10", 17), ("2001:db8::25", 6))
        )
        self.assertEqual(google.policies, ((STS, 1207),))
        self.assertEqual((microsoft.successful, microsoft.failed), (449, 11))
        self.assertEqual(
            microsoft.result_types,
            (
                ("certificate-host-mismatch", 5),
                ("sts-policy-fetch-error", 4),
                ("validation-failure", 2),
            ),
        )
        self.assertEqual(
            [(seen.policy_type, n) for seen, n in microsoft.policies],
            [("sts", 421), ("no-policy-found", 39)],
        )

    def test_reports_of_one_sender_add_up(self) -> None:
        """Two reports of one sender on one day are one row that counts
        both."""
        rows = summarize([_samples()[0], _next_day("n1"), _next_day("n2")])
        self.assertEqual(
            [(r.day, r.organization, r.reports, r.successful) for r in rows],
            [
                ("2024-11-29", "Google Inc.", 1, 1184),
                ("2024-11-30", "Sender Org", 2, 20),
            ],
        )

    def test_domain_filter(self) -> None:
        """--domain keeps only that policy domain's policies (a final dot
        and case do not matter); a report without one drops out."""
        rows = summarize(_samples(), domain="Lists.Example.COM.")
        self.assertEqual(
            [(r.organization, r.successful, r.failed) for r in rows],
            [("Microsoft Corporation", 37, 2)],
        )
        self.assertEqual(summarize(_samples(), domain="other.example"), [])

    def test_date_filter(self) -> None:
        """--since and --until keep the days between them, both included."""
        reports = [*_samples(), _next_day("n1")]
        self.assertEqual(
            {r.day for r in summarize(reports, since="2024-11-30")}, {"2024-11-30"}
        )
        self.assertEqual(
            {r.day for r in summarize(reports, until="2024-11-29")}, {"2024-11-29"}
        )
        self.assertEqual(summarize(reports, since="2024-12-01"), [])

    def test_failures_without_names(self) -> None:
        """A failure detail without an MX host or IP counts under "-"."""
        data = report_dict()
        data["policies"][0]["failure-details"] = [
            {"result-type": "dnssec-invalid", "failed-session-count": 3}
        ]
        (row,) = summarize([_report(data)])
        self.assertEqual((row.mx_hosts, row.receiving_ips), ((("-", 3),), (("-", 3),)))

    def test_utc_day(self) -> None:
        """The day is the UTC date."""
        self.assertEqual(utc_day(DAY_START - 1), "2024-11-28")

    def test_json(self) -> None:
        """--json: one document, every row with its tallies and policies."""
        document = summary_json(summarize(_samples()))
        google = document["days"][0]  # type: ignore[index]
        self.assertEqual(
            google,
            {
                "day": "2024-11-29",
                "organization": "Google Inc.",
                "reports": 1,
                "successful_sessions": 1184,
                "failed_sessions": 23,
                "failures_by_result_type": {
                    "certificate-expired": 17,
                    "starttls-not-supported": 6,
                },
                "failures_by_mx_host": {
                    "mx1.example.com": 17,
                    "backup.mx.example.net": 6,
                },
                "failures_by_receiving_ip": {"192.0.2.10": 17, "2001:db8::25": 6},
                "policies": [
                    {
                        "policy_type": "sts",
                        "policy_domain": "example.com",
                        "policy_string": list(STS.policy_strings),
                        "mx_host": list(STS.mx_hosts),
                        "sessions": 1207,
                    }
                ],
            },
        )
        json.dumps(document)  # serialisable as it is


class TextTests(SynchronousTestCase):
    def test_tables(self) -> None:
        """Three fixed-width tables: sessions, failures, policies."""
        text = render_summary(summarize(_samples()))
        self.assertEqual(
            text.split("\n\n")[0].splitlines(),
            [
                "DAY         ORGANISATION           REPORTS  SUCCESSFUL  FAILED",
                "2024-11-29  Google Inc.                  1        1184      23",
                "2024-11-29  Microsoft Corporation        1         449      11",
            ],
        )
        failures = text.split("\n\n")[1].splitlines()
        self.assertEqual(
            failures[:2],
            [
                "DAY         ORGANISATION           BY            VALUE"
                "                      FAILED",
                "2024-11-29  Google Inc.            result-type   certificate-expired"
                "            17",
            ],
        )
        self.assertEqual(len(failures), 1 + 6 + 9)
        policies = text.split("\n\n")[2].splitlines()
        self.assertEqual(
            policies[-1],
            "2024-11-29  Microsoft Corporation  no-policy-found  lists.example.com"
            "  -" + " " * 39 + "39",
        )

    def test_nothing(self) -> None:
        """No rows: one line saying so."""
        self.assertEqual(
            render_summary([]), "no TLS reports stored (for this selection)\n"
        )

    def test_no_failures(self) -> None:
        """Without failures there is no failure table."""
        data = report_dict()
        del data["policies"][0]["failure-details"]
        text = render_summary(summarize([_report(data)]))
        self.assertEqual(text.count("\n\n"), 1)
        self.assertNotIn("BY", text)

    def test_hostile_text(self) -> None:
        """Control characters from a report are shown quoted, and long text
        is cut, so a sender cannot write escapes to the admin's terminal."""
        data = report_dict(organization_name="Evil\x1b[2J Org" + "x" * 100)
        text = render_summary(summarize([_report(data)]))
        self.assertNotIn("\x1b", text)
        self.assertIn("'Evil\\x1b[2J Org", text)
        longest = max(len(line) for line in text.splitlines())
        self.assertLess(longest, 2 * COLUMN_CHARS + 60)
