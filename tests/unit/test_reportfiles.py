"""Reading reports from the paths an admin names (RFC 8460 §5.3 as
received: report files, mail messages, an mbox, a maildir, a directory):
every item is one report or one refusal, and reading goes on."""

from __future__ import annotations

import gzip
import mailbox
import os
import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.tlsreport import ReportRefused, TlsReport
from postfix_mtasts.reportfiles import (
    MAX_INPUT_BYTES,
    Read,
    _read_file,
    _read_mailbox,
    read_paths,
)

from .tlsrpt_samples import GOOGLE, GOOGLE_EML, MICROSOFT, report_bytes

GOOGLE_ID = "2024-11-29T00:00:00Z_example.com"
MICROSOFT_ID = "133773312000000000+example.com"


def _outcomes(reads: list[Read], base: Path) -> list[tuple[str, str]]:
    """(source relative to ``base``, report id or refusal reason)."""
    return [
        (
            r.source.replace(f"{base}/", ""),
            r.result.report_id if isinstance(r.result, TlsReport) else r.result.reason,
        )
        for r in reads
    ]


class ReadPathsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reports-"))
        self.addCleanup(shutil.rmtree, self.dir)

    def _read(self, *names: str) -> list[tuple[str, str]]:
        return _outcomes(list(read_paths([str(self.dir / n) for n in names])), self.dir)

    def test_report_files(self) -> None:
        """.json and .json.gz files are read by their content, whatever the
        name; a mail message file (.eml) gives the report it carries."""
        (self.dir / "a.json").write_bytes(MICROSOFT.read_bytes())
        (self.dir / "b.json.gz").write_bytes(gzip.compress(GOOGLE.read_bytes()))
        (self.dir / "c.bin").write_bytes(gzip.compress(MICROSOFT.read_bytes()))
        shutil.copy(GOOGLE_EML, self.dir / "d.eml")
        self.assertEqual(
            self._read("a.json", "b.json.gz", "c.bin", "d.eml"),
            [
                ("a.json", MICROSOFT_ID),
                ("b.json.gz", GOOGLE_ID),
                ("c.bin", MICROSOFT_ID),
                (
                    "d.eml: part 3 'google.com!example.com!1732838400!1732924799.json.gz'",
                    GOOGLE_ID,
                ),
            ],
        )

    def test_bad_items_go_on(self) -> None:
        """A missing path, a truncated gzip, a bad report and a mail without
        a report are one refusal each; the good file after them is read."""
        (self.dir / "cut.json.gz").write_bytes(gzip.compress(report_bytes())[:-5])
        (self.dir / "bad.json").write_bytes(report_bytes(policies=None))
        (self.dir / "plain.eml").write_bytes(b"Subject: hello\n\nno report\n")
        (self.dir / "good.json").write_bytes(report_bytes())
        self.assertEqual(
            self._read(
                "missing.json", "cut.json.gz", "bad.json", "plain.eml", "good.json"
            ),
            [
                ("missing.json", "No such file or directory"),
                ("cut.json.gz", "truncated gzip data"),
                ("bad.json", "the report.policies is null, not an array"),
                ("plain.eml", "no TLS report attached to the message"),
                ("good.json", "r-1"),
            ],
        )

    def test_too_big(self) -> None:
        """A file over MAX_INPUT_BYTES is refused without reading it all."""
        with open(self.dir / "huge.json", "wb") as f:
            f.truncate(MAX_INPUT_BYTES + 1)  # sparse: no disk used
        self.assertEqual(
            self._read("huge.json"), [("huge.json", f"over {MAX_INPUT_BYTES} bytes")]
        )

    def test_not_a_regular_file(self) -> None:
        """A FIFO (which would block) is refused without being opened."""
        os.mkfifo(self.dir / "pipe")
        self.assertEqual(
            self._read("pipe"), [("pipe", "not a regular file or a directory")]
        )

    def test_vanished_file(self) -> None:
        """A file gone between listing and opening is one refusal."""
        self.assertEqual(
            _outcomes(list(_read_file(str(self.dir / "gone.json"))), self.dir),
            [("gone.json", "No such file or directory")],
        )

    def test_mbox(self) -> None:
        """Each message of an mbox is read in turn and named by its number."""
        box = mailbox.mbox(self.dir / "reports.mbox")
        box.add(GOOGLE_EML.read_bytes())
        box.add(b"From: someone\nSubject: not a report\n\nhello\n")
        box.add(GOOGLE_EML.read_bytes())
        box.close()
        self.assertEqual(
            [(s.split(": part")[0], r) for s, r in self._read("reports.mbox")],
            [
                ("reports.mbox: message 1", GOOGLE_ID),
                ("reports.mbox: message 2", "no TLS report attached to the message"),
                ("reports.mbox: message 3", GOOGLE_ID),
            ],
        )

    def test_maildir(self) -> None:
        """A maildir's messages (new and cur) are read; a directory holding
        files and a maildir reads both, in name order."""
        (self.dir / "tree").mkdir()
        box = mailbox.Maildir(self.dir / "tree" / "Maildir")
        box.add(GOOGLE_EML.read_bytes())
        key = box.add(GOOGLE_EML.read_bytes())
        message = box[key]
        message.set_subdir("cur")  # a message the admin's client has seen
        box[key] = message
        box.close()
        (self.dir / "tree" / "a.json").write_bytes(MICROSOFT.read_bytes())
        (self.dir / "tree" / "sub").mkdir()
        (self.dir / "tree" / "sub" / "b.json").write_bytes(report_bytes())
        reads = self._read("tree")
        self.assertEqual(
            [(s.split(": part")[0], r) for s, r in reads],
            [
                ("tree/Maildir: message 1", GOOGLE_ID),
                ("tree/Maildir: message 2", GOOGLE_ID),
                ("tree/a.json", MICROSOFT_ID),
                ("tree/sub/b.json", "r-1"),
            ],
        )
        self.assertEqual(
            self._read("tree/Maildir")[0][1], GOOGLE_ID, "a maildir named itself"
        )

    def test_oversized_message(self) -> None:
        """A message over MAX_INPUT_BYTES in an mbox is refused; the next
        message is still read."""
        box = mailbox.mbox(self.dir / "big.mbox")
        box.add(b"Subject: big\n\n" + b"x" * MAX_INPUT_BYTES)
        box.add(GOOGLE_EML.read_bytes())
        box.close()
        reads = self._read("big.mbox")
        self.assertEqual(
            reads[0], ("big.mbox: message 1", f"over {MAX_INPUT_BYTES} bytes")
        )
        self.assertEqual(reads[1][1], GOOGLE_ID)

    def test_directory_gone_meanwhile(self) -> None:
        """A subdirectory removed while its parent is being read is one
        refusal naming it (the walk goes on)."""
        (self.dir / "a.json").write_bytes(report_bytes())
        (self.dir / "sub").mkdir()
        reads = read_paths([str(self.dir)])
        first = next(reads)
        (self.dir / "sub").rmdir()
        self.assertEqual(
            _outcomes([first, *reads], self.dir),
            [("a.json", "r-1"), ("sub", "No such file or directory")],
        )

    def test_message_gone_meanwhile(self) -> None:
        """A maildir message delivered elsewhere (moved, deleted) while the
        maildir is read is one refusal; a maildir whose cur/ is gone is
        one refusal for the whole maildir."""
        path = self.dir / "Maildir"
        box = mailbox.Maildir(path)
        keys = [box.add(GOOGLE_EML.read_bytes()) for _ in range(2)]
        box.close()
        reads = read_paths([str(path)])
        first = next(reads)
        for key in keys:
            (path / "new" / key).unlink(missing_ok=True)
        rest = _outcomes(list(reads), self.dir)
        self.assertIsInstance(first.result, TlsReport)
        self.assertEqual(len(rest), 1)
        self.assertTrue(rest[0][1].startswith("unreadable message ("), rest)
        (path / "cur").rmdir()
        (gone,) = _read_mailbox(str(path), mailbox.Maildir(path, create=False))
        assert isinstance(gone.result, ReportRefused)
        self.assertTrue(gone.result.reason.startswith("unreadable mailbox ("))

    def test_results_are_reports_or_refusals(self) -> None:
        """Every item is a Read holding a report or a refusal."""
        (self.dir / "x.json").write_bytes(b"{")
        (read,) = read_paths([str(self.dir / "x.json")])
        self.assertIsInstance(read.result, TlsReport | ReportRefused)
