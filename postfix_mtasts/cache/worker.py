# -*- test-case-name: tests.unit.test_sqlite_store -*-
"""One dedicated worker thread: blocking calls (sqlite3) leave the reactor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

__all__ = ["RunInThread", "thread_runner"]

_T = TypeVar("_T")


class RunInThread(Protocol):
    """Runs ``f`` off the reactor thread, one call at a time, in call order."""

    def __call__(self, f: Callable[[], _T], /) -> Deferred[_T]: ...


def thread_runner(
    reactor: IReactorFromThreads,
) -> tuple[RunInThread, Callable[[], None]]:
    """A single dedicated worker thread: ``(run_in_thread, stop)``.  Call
    ``stop`` (it joins the thread) after the store's close() has fired."""
    pool = ThreadPool(minthreads=1, maxthreads=1, name="postfix-mtasts-sqlite")
    pool.start()

    def run_in_thread(f: Callable[[], _T]) -> Deferred[_T]:
        return deferToThreadPool(reactor, pool, f)

    def stop() -> None:
        if pool.started:
            pool.stop()

    return run_in_thread, stop
