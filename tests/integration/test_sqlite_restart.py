"""The SQLite store on its real worker thread and the real reactor, and a real
``kill -9`` of a process writing to it (spec E1 persist).  No test world needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet.task import Clock

from postfix_mtasts.cache.sqlite import SqliteStore, thread_runner
from postfix_mtasts.core.entry import CacheEntry
from tests.unit.store_contract import START, make_entry, run_now

ROOT = Path(__file__).resolve().parents[2]
F = TypeVar("F", bound=Callable[..., Any])


def async_test(f: F) -> F:
    """pytest-twisted's mark for an ``async def`` test, typed."""
    return pytest_twisted.ensureDeferred(f)  # type: ignore[no-any-return]


# Puts 50 entries and waits for their flush, puts 50 more that never flush
# (the interval is an hour), says so, and waits to be killed.
CHILD = textwrap.dedent(
    """
    import sys
    from twisted.internet import defer, task
    from postfix_mtasts.cache.sqlite import SqliteStore, thread_runner
    from tests.unit.store_contract import make_entry

    async def main(reactor, path):
        run_in_thread, stop = thread_runner(reactor)
        store = SqliteStore(path, reactor, run_in_thread=run_in_thread,
                            flush_interval_s=3600)
        for i in range(50):
            store.put(make_entry(f"flushed{i}.example"))
        await store.flush()
        print("flushed", flush=True)
        for i in range(50):
            store.put(make_entry(f"pending{i}.example"))
        print("pending", flush=True)
        await defer.Deferred()

    task.react(lambda r: defer.Deferred.fromCoroutine(main(r, sys.argv[1])))
    """
)


@pytest.fixture
def reactor() -> Any:
    # pytest-twisted runs the global reactor; the test hands it in.
    from twisted.internet import reactor  # noqa: TID251 - the running one

    return reactor


@async_test
async def test_worker_thread(tmp_path: Path, reactor: Any) -> None:
    """All sqlite work runs on one worker thread, never the reactor's, and a
    full put/flush/get/load/close cycle works there (check_same_thread holds,
    E1 persist)."""
    path = str(tmp_path / "store" / "policies.sqlite")
    run_in_thread, stop = thread_runner(reactor)
    try:
        store = SqliteStore(path, reactor, run_in_thread=run_in_thread)
        now = reactor.seconds()
        entries = [make_entry(f"d{i}.example", f"id{i}", now) for i in range(100)]
        for entry in entries:
            await store.put(entry)
        await store.flush()
        assert await store.get("d7.example") == entries[7]
        assert _by_domain(await store.load()) == _by_domain(entries)
        workers = {await run_in_thread(threading.get_ident) for _ in range(5)}
        assert len(workers) == 1
        assert threading.get_ident() not in workers
        await store.close()
    finally:
        stop()
    again = SqliteStore(path, reactor, run_in_thread=run_now)
    assert _by_domain(await again.load()) == _by_domain(entries)
    await again.close()


def test_kill_9_loses_only_unflushed(tmp_path: Path) -> None:
    """A process killed with SIGKILL keeps every flushed write and loses only
    the pending ones; the file opens clean afterwards (E1: at most one flush
    interval is lost)."""
    path = str(tmp_path / "policies.sqlite")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, path], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "flushed\n"
        assert child.stdout.readline() == "pending\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    clock = Clock()
    clock.advance(START)  # the entries' fetch time
    store = SqliteStore(path, clock, run_in_thread=run_now)
    loaded: list[CacheEntry] = []
    store.load().addCallback(loaded.extend)
    store.close()
    assert {entry.domain for entry in loaded} == {
        f"flushed{i}.example" for i in range(50)
    }


def _by_domain(entries: list[CacheEntry]) -> dict[str, CacheEntry]:
    return {entry.domain: entry for entry in entries}
