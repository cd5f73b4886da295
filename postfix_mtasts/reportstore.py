# -*- test-case-name: tests.unit.test_reportstore -*-
"""The TLS report store: one SQLite file of its own (RFC 8460 reports).

Kept apart from the policy store (its file, schema and daemon are
untouched): by default ``tlsrpt.sqlite3`` beside the policy store, or the
file the admin names.  The file is marked with its own application id, so
that a path naming some other database (the policy store itself) is
refused rather than written into.

A report is kept once per (organization-name, report-id): RFC 8460 §4.4
gives the report-id as the sender's unique id, and two senders' ids may
meet (Google's and others' are built from the date and the domain).  A
second copy is counted as a duplicate and not stored.  Reports are stored
as the RFC 8460 JSON of what was read (:mod:`postfix_mtasts.core.
tlsreport_json`) and read back through the same checks as a mailed one: a
row that fails them is returned as a refusal.

Blocking sqlite3: this serves the ``reports`` command, not the daemon.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import suppress

from postfix_mtasts.core.tlsreport import ReportRefused, TlsReport, parse_report
from postfix_mtasts.core.tlsreport_json import encode_report

__all__ = [
    "APPLICATION_ID",
    "REPORT_STORE_NAME",
    "SCHEMA_VERSION",
    "ReportStore",
    "ReportStoreError",
    "default_store_path",
]

#: ``PRAGMA application_id`` of a report store: "TLSR".
APPLICATION_ID = 0x544C5352
SCHEMA_VERSION = 1
#: The file name of the default store, beside the policy store.
REPORT_STORE_NAME = "tlsrpt.sqlite3"

_SCHEMA = (
    "CREATE TABLE reports (organization TEXT NOT NULL, report_id TEXT NOT NULL,"
    " start REAL NOT NULL, end REAL NOT NULL, stored_at REAL NOT NULL,"
    " data BLOB NOT NULL, PRIMARY KEY (organization, report_id))",
    "CREATE INDEX reports_start ON reports (start)",
    f"PRAGMA application_id = {APPLICATION_ID:d}",
    f"PRAGMA user_version = {SCHEMA_VERSION:d}",
)


class ReportStoreError(Exception):
    """The file is no report store this code can use."""


def default_store_path(policy_store: str) -> str | None:
    """The report store beside the policy store file, or None when the
    daemon keeps its policies in memory only."""
    if not policy_store:
        return None
    return os.path.join(
        os.path.dirname(os.path.abspath(policy_store)), REPORT_STORE_NAME
    )


class ReportStore:
    """An open report store; close it when done."""

    def __init__(self, path: str, busy_timeout_s: float = 5.0) -> None:
        with suppress(FileExistsError):  # readable by its owner alone
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            self._db = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None
            )
        except sqlite3.Error as e:  # a directory, say
            raise ReportStoreError(f"{path}: {e}") from None
        try:
            self._prepare(path)
        except BaseException:
            self._db.close()
            raise

    def _prepare(self, path: str) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            (app,) = self._db.execute("PRAGMA application_id").fetchone()
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            (tables,) = self._db.execute(
                "SELECT count(*) FROM sqlite_master"
            ).fetchone()
            if (app, version, tables) == (0, 0, 0):
                for statement in _SCHEMA:
                    self._db.execute(statement)
            elif app != APPLICATION_ID:
                raise ReportStoreError(f"{path} is not a TLS report store")
            elif version != SCHEMA_VERSION:
                raise ReportStoreError(
                    f"{path} has report schema version {version}, this"
                    f" postfix-mtasts knows {SCHEMA_VERSION}"
                )
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as e:  # not a database, locked, ...
            raise ReportStoreError(f"{path}: {e}") from None
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()

    def add(self, reports: Iterable[TlsReport], now: float) -> tuple[int, int]:
        """Store ``reports`` in one transaction: (added, duplicates)."""
        added = duplicates = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for report in reports:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO reports"
                    " (organization, report_id, start, end, stored_at, data)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        report.organization,
                        report.report_id,
                        report.start,
                        report.end,
                        now,
                        encode_report(report),
                    ),
                )
                if cursor.rowcount:
                    added += 1
                else:
                    duplicates += 1
            self._db.execute("COMMIT")
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        return added, duplicates

    def reports(
        self, since: float | None = None, until: float | None = None
    ) -> Iterator[TlsReport | ReportRefused]:
        """The stored reports whose date range starts in [since, until),
        oldest first; a row that no longer reads is a refusal."""
        rows = self._db.execute(
            "SELECT organization, report_id, data FROM reports"
            " WHERE start >= ? AND start < ? ORDER BY start, organization, report_id",
            (
                float("-inf") if since is None else since,
                float("inf") if until is None else until,
            ),
        )
        for organization, report_id, data in rows:
            report = (
                parse_report(data)
                if isinstance(data, bytes)
                else ReportRefused("stored data is not a blob")
            )
            if isinstance(report, TlsReport) and (
                report.organization,
                report.report_id,
            ) != (organization, report_id):
                report = ReportRefused("stored report does not match its row")
            if isinstance(report, ReportRefused):
                report = ReportRefused(
                    f"stored report {report_id!r} of {organization!r}: {report.reason}"
                )
            yield report

    def count(self) -> int:
        (n,) = self._db.execute("SELECT count(*) FROM reports").fetchone()
        return int(n)
