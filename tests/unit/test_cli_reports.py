"""``postfix-mtasts reports [PATH...]`` (issue 14, RFC 8460): reads
reports into the report store, says what it skipped, prints the summary;
exit 0 when all was read, 1 when something was skipped, 2 for usage and
configuration errors."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cli import main
from postfix_mtasts.cli.reports import BATCH

from .tlsrpt_samples import GOOGLE, GOOGLE_EML, MICROSOFT, report_bytes


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def _run(argv: list[str]) -> tuple[int | str | None, str, str]:
    """(exit status, stdout, stderr) of the command line."""
    with _captured() as (out, err):
        try:
            code: int | str | None = main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


class ReportsCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cli-reports-"))
        self.addCleanup(shutil.rmtree, self.dir)
        self.store = str(self.dir / "reports.sqlite3")

    def _reports(self, *argv: str) -> tuple[int | str | None, str, str]:
        return _run(["reports", "--store", self.store, *argv])

    def test_read_and_summarise(self) -> None:
        """Report files, a gzip file and a mail are read into the store and
        summarised; the counts go to stderr, the table to stdout; exit 0."""
        gz = self.dir / "ms.json.gz"
        gz.write_bytes(gzip.compress(MICROSOFT.read_bytes()))
        code, out, err = self._reports(str(GOOGLE_EML), str(gz))
        self.assertEqual(code, 0, err)
        self.assertEqual(
            err, "postfix-mtasts: 2 new report(s) stored, 0 duplicate(s), 0 skipped\n"
        )
        self.assertTrue(out.startswith("DAY         ORGANISATION"), out)
        self.assertIn(
            "2024-11-29  Google Inc.                  1        1184      23", out
        )

    def test_duplicates(self) -> None:
        """Reading the same reports again stores nothing new: duplicates are
        counted, not errors (exit 0), and the summary is unchanged."""
        self.assertEqual(self._reports(str(GOOGLE))[0], 0)
        first = self._reports()[1]
        code, out, err = self._reports(str(GOOGLE), str(GOOGLE_EML))
        self.assertEqual((code, out), (0, first))
        self.assertIn("0 new report(s) stored, 2 duplicate(s), 0 skipped", err)

    def test_skipped_items(self) -> None:
        """Each bad item is one "skipped SOURCE: reason" line; the good ones
        are still stored; exit 1."""
        bad = self.dir / "bad.json"
        bad.write_bytes(report_bytes(report_id=3))
        cut = self.dir / "cut.json.gz"
        cut.write_bytes(gzip.compress(GOOGLE.read_bytes())[:-10])
        code, _, err = self._reports(str(bad), str(MICROSOFT), str(cut))
        self.assertEqual(code, 1)
        self.assertEqual(
            err.splitlines(),
            [
                f"skipped {bad}: the report.report-id is a number, not a string",
                f"skipped {cut}: truncated gzip data",
                "postfix-mtasts: 1 new report(s) stored, 0 duplicate(s), 2 skipped",
            ],
        )

    def test_show_stored(self) -> None:
        """Without PATH the stored reports are shown; --json is one
        document; --domain and --since/--until select."""
        self._reports(str(GOOGLE), str(MICROSOFT))
        code, out, err = self._reports("--json")
        self.assertEqual((code, err), (0, ""))
        days = json.loads(out)["days"]
        self.assertEqual(
            [d["organization"] for d in days], ["Google Inc.", "Microsoft Corporation"]
        )
        out = self._reports("--json", "--domain", "lists.example.com")[1]
        self.assertEqual([d["failed_sessions"] for d in json.loads(out)["days"]], [2])
        out = self._reports("--json", "--since", "2024-11-30")[1]
        self.assertEqual(json.loads(out), {"days": []})
        out = self._reports("--json", "--since", "2024-11-29", "--until", "2024-11-29")[
            1
        ]
        self.assertEqual(len(json.loads(out)["days"]), 2)
        self.assertEqual(
            self._reports("--until", "2024-11-28")[1],
            "no TLS reports stored (for this selection)\n",
        )

    def test_many_reports(self) -> None:
        """More reports than one write batch are all stored."""
        directory = self.dir / "many"
        directory.mkdir()
        for n in range(BATCH + 1):
            (directory / f"{n}.json").write_bytes(report_bytes(report_id=f"r{n}"))
        code, out, err = self._reports(str(directory))
        self.assertEqual(code, 0, err)
        self.assertIn(f"{BATCH + 1} new report(s)", err)
        self.assertIn(f"Sender Org        {BATCH + 1}", out)

    def test_tampered_store(self) -> None:
        """A stored report that no longer reads is skipped like a bad file
        (exit 1); the others are still summarised."""
        self._reports(str(GOOGLE), str(MICROSOFT))
        with sqlite3.connect(self.store) as db:
            db.execute(
                "UPDATE reports SET data = x'7b' WHERE organization = 'Google Inc.'"
            )
        db.close()
        code, out, err = self._reports()
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith("skipped store: stored report "), err)
        self.assertIn("Microsoft Corporation", out)
        self.assertNotIn("Google Inc.", out)

    def test_store_beside_policy_store(self) -> None:
        """Without --store the reports go beside the configured [store]
        path, as tlsrpt.sqlite3."""
        config = self.dir / "postfix-mtasts.toml"
        config.write_text(f'[store]\npath = "{self.dir}/policies.sqlite3"\n')
        code, _, err = _run(["reports", "--config", str(config), str(GOOGLE)])
        self.assertEqual(code, 0, err)
        self.assertTrue((self.dir / "tlsrpt.sqlite3").exists())
        self.assertFalse((self.dir / "policies.sqlite3").exists())

    def test_store_named_in_reports(self) -> None:
        """[reports] store, where the daemon's HTTPS receiver writes (RFC
        8460 §5.3), is the store the command reads without --store."""
        config = self.dir / "postfix-mtasts.toml"
        config.write_text(
            f'[store]\npath = "{self.dir}/policies.sqlite3"\n'
            f'[reports]\nstore = "{self.dir}/received.sqlite3"\n'
        )
        code, _, err = _run(["reports", "--config", str(config), str(GOOGLE)])
        self.assertEqual(code, 0, err)
        self.assertTrue((self.dir / "received.sqlite3").exists())
        self.assertFalse((self.dir / "tlsrpt.sqlite3").exists())

    def test_no_store(self) -> None:
        """Neither --store nor a [store] path: a configuration error naming
        both ways out, exit 2; a broken configuration is exit 2 too."""
        config = self.dir / "postfix-mtasts.toml"
        config.write_text("")
        code, out, err = _run(["reports", "--config", str(config)])
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(
            err,
            "<3>postfix-mtasts: configuration error: no report store: name one"
            " with --store or [reports] store, or set [store] path in the"
            " configuration (the reports go beside it)\n",
        )
        config.write_text("[store]\npath = 5\n")
        code, _, err = _run(["reports", "--config", str(config)])
        self.assertEqual(code, 2)
        self.assertIn("configuration error: ", err)

    def test_unusable_store(self) -> None:
        """A --store that is no report store (a policy store, a directory)
        is exit 2 with the reason, and is left alone."""
        junk = self.dir / "junk"
        junk.write_bytes(b"x" * 4096)
        for path, reason in (
            (str(junk), f"{junk}: file is not a database"),
            (str(self.dir), f"{self.dir}: unable to open database file"),
        ):
            code, out, err = _run(["reports", "--store", path])
            self.assertEqual((code, out), (2, ""))
            self.assertIn("cannot use the report store: ", err)
            self.assertIn(reason.lower(), err.lower())
        self.assertEqual(junk.read_bytes(), b"x" * 4096)

    def test_usage_errors(self) -> None:
        """A day that is not YYYY-MM-DD is a usage error, exit 2."""
        code, out, err = self._reports("--since", "yesterday")
        self.assertEqual((code, out), (2, ""))
        self.assertIn("--since: must be a date, YYYY-MM-DD", err)


class HtmlOptionTests(SynchronousTestCase):
    """``reports --html FILE``: the summary as one self-contained HTML file
    (issue 14)."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cli-reports-html-"))
        self.addCleanup(shutil.rmtree, self.dir)
        self.store = str(self.dir / "reports.sqlite3")

    def test_writes_the_file(self) -> None:
        """The file holds the chart and the tables of the selection; stdout
        stays empty, one line on stderr names the file; exit 0."""
        page = self.dir / "report.html"
        code, out, err = _run(
            [
                "reports",
                "--store",
                self.store,
                "--html",
                str(page),
                "--domain",
                "example.com",
                str(GOOGLE),
                str(MICROSOFT),
            ]
        )
        self.assertEqual((code, out), (0, ""), err)
        self.assertIn(f"postfix-mtasts: summary written to {page}\n", err)
        document = page.read_text(encoding="utf-8")
        self.assertIn("<svg ", document)
        self.assertIn("<td>Microsoft Corporation</td>", document)
        self.assertIn("<p>Selection: policy domain example.com.</p>", document)

    def test_stdout_and_filters(self) -> None:
        """``--html -`` writes the document to stdout; --since/--until
        select days and are named in the heading."""
        _run(["reports", "--store", self.store, str(GOOGLE)])
        code, out, _ = _run(
            [
                "reports",
                "--store",
                self.store,
                "--html",
                "-",
                "--since",
                "2024-11-30",
                "--until",
                "2024-12-01",
            ]
        )
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("<!DOCTYPE html>"))
        self.assertIn("Selection: from 2024-11-30, up to 2024-12-01.", out)
        self.assertIn("No TLS reports stored", out)

    def test_unwritable_file(self) -> None:
        """A file that cannot be written is exit 2 with the reason."""
        code, out, err = _run(
            ["reports", "--store", self.store, "--html", str(self.dir / "no" / "x")]
        )
        self.assertEqual((code, out), (2, ""))
        self.assertIn("cannot write ", err)
        self.assertIn("No such file or directory", err)

    def test_html_or_json(self) -> None:
        """--html with --json is a usage error, exit 2."""
        code, _, err = _run(["reports", "--store", self.store, "--html", "-", "--json"])
        self.assertEqual(code, 2)
        self.assertIn("--html goes with neither --json nor --verdict", err)
