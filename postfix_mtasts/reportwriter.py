# -*- test-case-name: tests.unit.test_reportwriter -*-
"""The report store, for the daemon: every call in one worker thread.

:class:`~postfix_mtasts.reportstore.ReportStore` is blocking sqlite3, made
for the ``reports`` command.  The daemon's report receiver must not wait
for the disk on the reactor thread, so :class:`ThreadedReportStore` opens,
writes and closes the store in one dedicated thread (sqlite3 connections
belong to the thread that made them), one call at a time and in order, as
the policy store does (:mod:`postfix_mtasts.cache.worker`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from postfix_mtasts.cache.worker import RunInThread, thread_runner
from postfix_mtasts.core.tlsreport import TlsReport
from postfix_mtasts.reportstore import ReportStore

__all__ = ["StoresReports", "ThreadedReportStore", "open_report_store"]


class StoresReports(Protocol):
    """Where received reports go."""

    def add(self, report: TlsReport) -> Deferred[bool]:
        """Store ``report``: True when new, False when already stored (the
        same organization and report-id, RFC 8460 §4.4); fails when the
        store does."""

    def close(self) -> Deferred[None]:
        """Close the store once the writes asked for are done."""


class ThreadedReportStore:
    """A :class:`ReportStore` used from the reactor through one thread."""

    def __init__(
        self,
        store: ReportStore,
        run: RunInThread,
        stop: Callable[[], None],
        clock: Any,
    ) -> None:
        self._store = store
        self._run = run
        self._stop = stop
        self._clock = clock

    def add(self, report: TlsReport) -> Deferred[bool]:
        now = self._clock.seconds()
        done = self._run(lambda: self._store.add([report], now))
        return done.addCallback(lambda counts: counts[0] == 1)

    def close(self) -> Deferred[None]:
        def stop(result: object) -> object:
            self._stop()
            return result

        return self._run(self._store.close).addBoth(stop)


async def open_report_store(
    path: str,
    reactor: Any,
    runner: Callable[[Any], tuple[RunInThread, Callable[[], None]]] = thread_runner,
) -> ThreadedReportStore:
    """The store at ``path``, opened in its thread (``runner`` makes it);
    raises what :class:`ReportStore` raises (ReportStoreError, OSError,
    sqlite3.Error)."""
    run, stop = runner(reactor)
    try:
        store = await run(lambda: ReportStore(path))
    except BaseException:
        stop()
        raise
    return ThreadedReportStore(store, run, stop, reactor)
