"""``postfix-mtasts reports --verdict DOMAIN`` (issue 14): the stored
reports and a live check, judged; exit 0 ready, 1 not ready, 2 usage.
The live check is a fake standing in at the seam
(:data:`~postfix_mtasts.cli.verdict.LiveCheck`): it returns checker facts
built in memory and records what it was asked."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.facts import Facts
from postfix_mtasts.cli import build_parser, main
from postfix_mtasts.cli.reports import run_reports
from postfix_mtasts.core.tlsreport import TlsReport
from postfix_mtasts.core.tlsreport_json import encode_report
from postfix_mtasts.reportstore import ReportStore

from .checker_facts import DOMAIN, MX2, NOW, facts, fetched, policy_body, policy_host
from .readiness_samples import daily_report, two_weeks


class FakeLiveCheck:
    """Answers every live check with ``facts`` at NOW."""

    def __init__(self, observed: Facts) -> None:
        self.observed = observed
        self.asked: list[tuple[str, str]] = []

    def __call__(self, domain: str, input_domain: str) -> tuple[Facts, float]:
        self.asked.append((domain, input_domain))
        return self.observed, NOW


def _testing_facts() -> Facts:
    body = policy_body("testing", max_age=604800)
    return facts(policy_host=policy_host(fetched(body)))


class VerdictCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cli-verdict-"))
        self.addCleanup(shutil.rmtree, self.dir)
        self.store = str(self.dir / "reports.sqlite3")

    def _store(self, reports: list[TlsReport]) -> None:
        store = ReportStore(self.store)
        try:
            store.add(reports, NOW)
        finally:
            store.close()

    def _verdict(self, live: FakeLiveCheck, *argv: str) -> tuple[int, str, str]:
        args = build_parser().parse_args(
            ["reports", "--store", self.store, "--nameserver", "192.0.2.53", *argv]
        )
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run_reports(args, live=live)
        return code, out.getvalue(), err.getvalue()

    def test_ready(self) -> None:
        """Two weeks of clean reports of two senders and a clean testing-mode
        domain: "ready for enforce", exit 0; the live check is asked once,
        for the A-label domain (the guide: testing, then enforce)."""
        self._store(two_weeks())
        live = FakeLiveCheck(_testing_facts())
        code, out, err = self._verdict(live, "--verdict", "Example.COM.")
        self.assertEqual((code, err), (0, ""), out)
        self.assertEqual(live.asked, [(DOMAIN, "Example.COM.")])
        self.assertIn("verdict: ready for enforce", out)

    def test_not_ready_json(self) -> None:
        """Too few days and an MX host the policy does not match: not
        ready, exit 1, the findings in --json most severe first; --min-days
        and --min-senders set the thresholds (RFC 8461 §4.1)."""
        self._store(
            [
                daily_report(1, failures=((MX2, "validation-failure", 3),)),
                daily_report(2),
            ]
        )
        code, out, _ = self._verdict(
            FakeLiveCheck(_testing_facts()),
            "--verdict",
            DOMAIN,
            "--json",
            "--min-days",
            "3",
            "--min-senders",
            "1",
        )
        document = json.loads(out)
        self.assertEqual(
            (code, document["verdict"], document["ready"]), (1, "not-ready", False)
        )
        self.assertEqual(
            [f["code"] for f in document["findings"]], ["mx-not-covered", "few-days"]
        )
        self.assertEqual(document["thresholds"], {"min_days": 3, "min_senders": 1})

    def test_reads_paths_first(self) -> None:
        """PATHs are read into the store before the verdict, which counts
        them; only the --since/--until days are judged."""
        path = self.dir / "r.json"
        path.write_bytes(encode_report(daily_report(1, "Sender Z")))
        code, out, err = self._verdict(
            FakeLiveCheck(_testing_facts()), "--verdict", DOMAIN, "--json", str(path)
        )
        self.assertEqual(code, 1)
        self.assertIn("1 new report(s) stored", err)
        self.assertEqual(json.loads(out)["reports"]["organizations"], ["Sender Z"])
        code, out, _ = self._verdict(
            FakeLiveCheck(_testing_facts()),
            "--verdict",
            DOMAIN,
            "--json",
            "--until",
            "2027-01-01",
        )
        self.assertEqual(json.loads(out)["reports"]["days"], [])

    def test_usage_errors(self) -> None:
        """A DOMAIN that is no domain, a bad --nameserver, --html with
        --verdict: exit 2, and no live check is made."""
        live = FakeLiveCheck(_testing_facts())
        for argv, why in (
            (["--verdict", "[192.0.2.1]"], "is not a domain name"),
            (["--verdict", DOMAIN, "--nameserver", "ns.example"], "--nameserver: "),
            (["--verdict", DOMAIN, "--html", "-"], "--html goes with neither"),
        ):
            code, out, err = self._verdict(live, *argv)
            self.assertEqual((code, out), (2, ""), argv)
            self.assertIn(why, err)
        self.assertEqual(live.asked, [])

    def test_through_main(self) -> None:
        """The command line reaches the verdict: a bad DOMAIN is exit 2
        before any network; --min-days must be 1 or more."""
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["reports", "--store", self.store, "--verdict", "localhost"])
            with self.assertRaises(SystemExit):
                build_parser().parse_args(["reports", "--min-days", "0"])
        self.assertEqual(code, 2)
        self.assertIn("is not a domain name", err.getvalue())
        self.assertIn("must be a whole number, 1 or more", err.getvalue())
