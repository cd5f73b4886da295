"""The TLS report store: its own SQLite file beside the policy store,
one copy per (organisation, report-id) (RFC 8460 §4.4), read back through
the report checks, and never written into another database."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.sqlite_db import open_db
from postfix_mtasts.core.tlsreport import ReportRefused, TlsReport, parse_report
from postfix_mtasts.core.tlsreport_json import rfc3339
from postfix_mtasts.reportstore import (
    REPORT_STORE_NAME,
    ReportStore,
    ReportStoreError,
    default_store_path,
)

from .tlsrpt_samples import DAY_START, GOOGLE, MICROSOFT, report_bytes, report_dict

NOW = 1_733_000_000.0


def _report(data: bytes) -> TlsReport:
    report = parse_report(data)
    assert isinstance(report, TlsReport)
    return report


def _on_day(report_id: str, day: int) -> TlsReport:
    """A small report whose date range starts ``day`` days after the
    samples' day."""
    start = DAY_START + day * 86400
    return _report(
        report_bytes(
            report_id=report_id,
            date_range={
                "start-datetime": rfc3339(start),
                "end-datetime": rfc3339(start + 86399),
            },
        )
    )


class ReportStoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reportstore-"))
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = str(self.dir / REPORT_STORE_NAME)

    def _store(self) -> ReportStore:
        store = ReportStore(self.path)
        self.addCleanup(store.close)
        return store

    def test_default_path(self) -> None:
        """The default store sits beside the policy store; with the policies
        in memory only there is none."""
        self.assertEqual(
            default_store_path("/var/lib/postfix-mtasts/policies.sqlite3"),
            "/var/lib/postfix-mtasts/tlsrpt.sqlite3",
        )
        self.assertIsNone(default_store_path(""))

    def test_add_and_read(self) -> None:
        """Reports stored are read back equal, oldest first; the file is the
        owner's alone (reports name hosts and addresses)."""
        store = self._store()
        google, microsoft = (_report(p.read_bytes()) for p in (GOOGLE, MICROSOFT))
        later = _on_day("later", 1)
        self.assertEqual(store.add([later, google, microsoft], NOW), (3, 0))
        self.assertEqual(list(store.reports()), [google, microsoft, later])
        self.assertEqual(store.count(), 3)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_duplicates(self) -> None:
        """A second copy of a report (same organisation and report-id) is
        counted as a duplicate and not stored, in one batch or a later one;
        the same report-id from another organisation is another report."""
        store = self._store()
        report = _on_day("same-id", 0)
        self.assertEqual(store.add([report, report], NOW), (1, 1))
        self.assertEqual(store.add([report], NOW + 1), (0, 1))
        other = _report(
            json.dumps(
                report_dict(report_id="same-id", organization_name="Other Org")
            ).encode()
        )
        self.assertEqual(store.add([other], NOW), (1, 0))
        self.assertEqual(store.count(), 2)

    def test_date_selection(self) -> None:
        """reports(since, until) keeps those starting in [since, until)."""
        store = self._store()
        store.add([_on_day(f"d{n}", n) for n in range(4)], NOW)
        ids = [
            r.report_id
            for r in store.reports(DAY_START + 86400, DAY_START + 3 * 86400)
            if isinstance(r, TlsReport)
        ]
        self.assertEqual(ids, ["d1", "d2"])

    def test_reopen(self) -> None:
        """A store opened again keeps what it had."""
        self._store().add([_on_day("kept", 0)], NOW)
        self.assertEqual(self._store().count(), 1)

    def test_tampered_rows(self) -> None:
        """A row whose data no longer reads, is no blob, or holds another
        report than its key says is returned as a refusal naming the row."""
        store = self._store()
        store.add([_on_day(n, 0) for n in ("a", "b", "c")], NOW)
        db = sqlite3.connect(self.path)
        with db:
            db.execute("UPDATE reports SET data = ? WHERE report_id = 'a'", (b"{",))
            db.execute("UPDATE reports SET data = 'text' WHERE report_id = 'b'")
            db.execute("UPDATE reports SET report_id = 'x' WHERE report_id = 'c'")
        db.close()
        results = list(store.reports())
        self.assertTrue(all(isinstance(r, ReportRefused) for r in results))
        self.assertEqual(
            sorted(r.reason for r in results if isinstance(r, ReportRefused)),
            [
                "stored report 'a' of 'Sender Org': not JSON: Expecting"
                " property name enclosed in double quotes: line 1 column 2 (char 1)",
                "stored report 'b' of 'Sender Org': stored data is not a blob",
                "stored report 'x' of 'Sender Org': stored report does not match"
                " its row",
            ],
        )

    def test_refuses_other_databases(self) -> None:
        """The policy store, another SQLite file, a newer report schema and
        a file that is no database are refused, and left unchanged."""
        policy_store = str(self.dir / "policies.sqlite3")
        open_db(policy_store, 1.0).close()
        other = str(self.dir / "other.sqlite3")
        with sqlite3.connect(other) as db:
            db.execute("CREATE TABLE t (x)")
        db.close()
        newer = str(self.dir / "newer.sqlite3")
        ReportStore(newer).close()
        with sqlite3.connect(newer) as db:
            db.execute("PRAGMA user_version = 9")
        db.close()
        junk = self.dir / "junk.sqlite3"
        junk.write_bytes(b"not a database at all" * 100)
        for path, reason in (
            (policy_store, f"{policy_store} is not a TLS report store"),
            (other, f"{other} is not a TLS report store"),
            (
                newer,
                f"{newer} has report schema version 9, this postfix-mtasts knows 1",
            ),
            (str(junk), f"{junk}: file is not a database"),
        ):
            before = Path(path).read_bytes()
            with self.assertRaises(ReportStoreError) as caught:
                ReportStore(path)
            self.assertEqual(str(caught.exception), reason)
            self.assertEqual(Path(path).read_bytes(), before, path)

    def test_rolls_back(self) -> None:
        """A batch that fails part way stores none of it."""
        store = self._store()

        def reports() -> Iterator[TlsReport]:
            yield _on_day("first", 0)
            raise OSError("reading failed")

        with self.assertRaises(OSError):
            store.add(reports(), NOW)
        self.assertEqual(store.count(), 0)
