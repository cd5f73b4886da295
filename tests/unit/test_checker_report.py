"""Tests for the checker's text and JSON output (spec H, docs/checker.md)."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.model import Check, Report, Status, Verdict
from postfix_mtasts.checker.report import exit_status, render_text, to_json
from postfix_mtasts.checker.rules import evaluate
from postfix_mtasts.checker.suggest import suggest

from .checker_facts import DOMAIN, MX1, NOW, facts

STS = "_mta-sts.example.com"


def report(*checks: Check, verdict: Verdict = Verdict.READY_FOR_ENFORCE) -> Report:
    return Report(DOMAIN, NOW, checks, verdict, "why", "enforce")


class TextTests(SynchronousTestCase):
    def test_line_format(self):
        """RULE STATUS message — fix, one line per check, then summary and verdict (H)."""
        text = render_text(
            report(
                Check(
                    "H1",
                    "sts-record",
                    Status.PASS,
                    STS,
                    f"{STS} has one v=STSv1 record (id 1)",
                ),
                Check(
                    "H17",
                    "tlsrpt-record",
                    Status.WARN,
                    "_smtp._tls.example.com",
                    "no record",
                    "publish one",
                ),
            )
        )
        lines = text.splitlines()
        self.assertEqual(
            lines[0], "MTA-STS check of example.com at 2027-01-15T08:00:00Z"
        )
        self.assertEqual(
            lines[1], "H1  PASS  _mta-sts.example.com has one v=STSv1 record (id 1)"
        )
        self.assertEqual(
            lines[2], "H17 WARN  _smtp._tls.example.com: no record — publish one"
        )
        self.assertEqual(lines[3], "1 PASS, 1 WARN")
        self.assertEqual(lines[4], "verdict: ready-for-enforce — why")

    def test_status_column_widens(self):
        """With INCONCLUSIVE present the status column is wide enough for it."""
        text = render_text(
            report(
                Check("H1", "sts-record", Status.PASS, "a", "a ok"),
                Check("H15", "mx-connect", Status.INCONCLUSIVE, "b", "b unreachable"),
            )
        )
        self.assertIn("H1  PASS          a ok\n", text)
        self.assertIn("H15 INCONCLUSIVE  b unreachable\n", text)

    def test_suggestion_printed(self):
        """--suggest adds the policy file, records and hints (H.2)."""
        text = render_text(report(), suggest(DOMAIN, (MX1,), NOW))
        self.assertIn("    version: STSv1\n", text)
        self.assertIn(
            '    _mta-sts.example.com. 3600 IN TXT "v=STSv1; id=20270115T080000"\n',
            text,
        )
        self.assertIn("  - Serve the policy file at", text)


class JsonTests(SynchronousTestCase):
    def test_schema(self):
        """The documented top-level keys, check keys and values (docs/checker.md)."""
        data = to_json(evaluate(facts(), NOW))
        json.dumps(data)  # serialisable
        self.assertEqual(
            sorted(data),
            [
                "checked_at",
                "checks",
                "domain",
                "exit_status",
                "mode",
                "schema",
                "suggestion",
                "summary",
                "verdict",
                "verdict_reason",
            ],
        )
        self.assertEqual(data["schema"], 1)
        self.assertEqual(
            (data["domain"], data["mode"], data["verdict"]),
            (DOMAIN, "enforce", "ready-for-enforce"),
        )
        self.assertEqual(data["exit_status"], 0)
        self.assertEqual(
            sorted(data["summary"]), ["FAIL", "INCONCLUSIVE", "INFO", "PASS", "WARN"]
        )
        self.assertIsNone(data["suggestion"])
        check = data["checks"][0]
        self.assertEqual(
            sorted(check), ["check", "fix", "message", "rule", "status", "subject"]
        )
        self.assertEqual(
            (check["rule"], check["check"], check["status"], check["fix"]),
            ("H1", "sts-record", "PASS", None),
        )

    def test_suggestion_and_exit_status(self):
        """A FAIL gives exit status 1; --suggest fills "suggestion"."""
        failed = report(
            Check("H1", "sts-record", Status.FAIL, STS, "x", "y"),
            verdict=Verdict.BROKEN,
        )
        self.assertEqual(exit_status(failed), 1)
        data = to_json(failed, suggest(DOMAIN, (MX1,), NOW))
        self.assertEqual(data["exit_status"], 1)
        self.assertEqual(
            sorted(data["suggestion"]),
            ["hints", "policy", "policy_id", "policy_url", "records"],
        )

    def test_could_not_check(self):
        """could-not-check: exit status 3 in JSON and the verdict word, and
        a FAIL still gives 1 (issue 12, docs/checker.md)."""
        blind = report(
            Check("H13", "mx-records", Status.INCONCLUSIVE, DOMAIN, "x"),
            verdict=Verdict.COULD_NOT_CHECK,
        )
        self.assertEqual(exit_status(blind), 3)
        data = to_json(blind)
        self.assertEqual((data["verdict"], data["exit_status"]), ("could-not-check", 3))
        self.assertTrue(render_text(blind).endswith("verdict: could-not-check — why\n"))
        failed = report(
            Check("H17", "tlsrpt-record", Status.FAIL, DOMAIN, "x"),
            verdict=Verdict.BROKEN,
        )
        self.assertEqual(exit_status(failed), 1)
        self.assertEqual(exit_status(report()), 0)
