"""The daemon's report store: every call in its worker thread, so the
receiver never waits for the disk on the reactor (issue 14; RFC 8460
§4.4: one copy per organization and report-id)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.tlsreport import TlsReport, parse_report
from postfix_mtasts.reportstore import ReportStore, ReportStoreError
from postfix_mtasts.reportwriter import open_report_store

from .tlsrpt_samples import report_bytes

_T = TypeVar("_T")


class InlineRunner:
    """A worker "thread" that runs each call at once, and records them."""

    def __init__(self) -> None:
        self.calls = 0
        self.stopped = 0

    def __call__(self, reactor: Any) -> tuple[Any, Callable[[], None]]:
        def run(f: Callable[[], _T]) -> Deferred[_T]:
            self.calls += 1
            return maybeDeferred(f)

        def stop() -> None:
            self.stopped += 1

        return run, stop


class ThreadedStoreTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reportwriter-"))
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = str(self.dir / "tlsrpt.sqlite3")
        self.clock = Clock()
        self.clock.advance(1_733_000_000)
        self.runner = InlineRunner()

    def test_add_new_then_duplicate(self) -> None:
        """A report is stored once, through the worker: True when new,
        False for the same organization and report-id again (§4.4);
        close closes the store and stops the worker."""
        store = self.successResultOf(
            Deferred.fromCoroutine(
                open_report_store(self.path, self.clock, self.runner)
            )
        )
        report = parse_report(report_bytes())
        assert isinstance(report, TlsReport)
        self.assertIs(self.successResultOf(store.add(report)), True)
        self.assertIs(self.successResultOf(store.add(report)), False)
        self.successResultOf(store.close())
        self.assertEqual((self.runner.calls, self.runner.stopped), (4, 1))
        reopened = ReportStore(self.path)
        self.addCleanup(reopened.close)
        self.assertEqual(reopened.count(), 1)

    def test_open_failure_stops_the_worker(self) -> None:
        """A path that is no report store fails the open, with the
        worker stopped (no thread left behind)."""
        Path(self.path).write_bytes(b"not a database" * 100)
        opening = Deferred.fromCoroutine(
            open_report_store(self.path, self.clock, self.runner)
        )
        self.failureResultOf(opening, ReportStoreError)
        self.assertEqual(self.runner.stopped, 1)
