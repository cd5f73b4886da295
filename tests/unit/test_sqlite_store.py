"""The SQLite store beyond the shared contract: restart, write-behind, faults
(spec E1 persist, E13), with a synchronous or a lagging worker and task.Clock."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any, TypeVar
from unittest import SkipTest

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.sqlite import (
    PRUNE_INTERVAL_S,
    SCHEMA_VERSION,
    RunInThread,
    SqliteStore,
    StoreOpenError,
)
from postfix_mtasts.cache.store import CacheUnavailableError
from postfix_mtasts.core.entry import STORE_GRACE_S

from .store_contract import MAX_AGE_S, START, make_entry, run_now

T = TypeVar("T")


class LaggingWorker:
    """A run_in_thread whose calls wait, in order, until the test runs them."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[[], Any], Deferred[Any]]] = []

    def __call__(self, f: Callable[[], T], /) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        self.calls.append((f, d))
        return d

    def run(self) -> None:
        while self.calls:
            f, d = self.calls.pop(0)
            try:
                result = f()
            except Exception:
                d.errback()
            else:
                d.callback(result)


class SqliteTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sqlite-store-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "state", "policies.sqlite")
        self.clock = Clock()
        self.clock.advance(START)

    def store(
        self,
        path: str | None = None,
        runner: RunInThread = run_now,
        **options: Any,
    ) -> SqliteStore:
        store = SqliteStore(
            path or self.path, self.clock, run_in_thread=runner, **options
        )
        self.addCleanup(store.close)
        return store

    def rows(self, path: str | None = None) -> dict[str, bytes]:
        """The table as another process sees it."""
        db = sqlite3.connect(path or self.path)
        try:
            return dict(db.execute("SELECT domain, data FROM policies"))
        finally:
            db.close()

    def sql(self, statement: str, *args: object) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(statement, args)
        finally:
            db.close()

    def unavailable(self, d: Deferred[Any]) -> CacheUnavailableError:
        error = self.failureResultOf(d, CacheUnavailableError).value
        assert isinstance(error, CacheUnavailableError)
        return error

    def readonly(self, path: str) -> Callable[[], None]:
        """Make ``path`` read-only even for root; returns the undo."""
        if os.geteuid() != 0:
            os.chmod(path, 0o444)
            undo = ["chmod", "600", path]
        elif shutil.which("chattr") is None:
            raise SkipTest("root needs chattr to make a file read-only")
        else:
            done = subprocess.run(["chattr", "+i", path], capture_output=True)
            if done.returncode != 0:
                raise SkipTest(f"chattr +i: {done.stderr!r}")
            undo = ["chattr", "-i", path]

        def writable() -> None:
            subprocess.run(undo, check=True)

        self.addCleanup(writable)
        return writable


class PersistenceTests(SqliteTestCase):
    def test_survives_restart(self) -> None:
        """Entries outlive close and reopen of the file (E1 persist: a restart
        serves the cached policies without the network)."""
        store = self.store()
        entries = [make_entry(f"d{i}.example", f"id{i}") for i in range(10)]
        for entry in entries:
            store.put(entry)
        self.successResultOf(store.close())
        again = self.store()
        loaded = self.successResultOf(again.load())
        self.assertEqual(sorted(loaded, key=lambda e: e.domain), entries)
        self.assertEqual(self.successResultOf(again.get("d3.example")), entries[3])

    def test_schema_and_wal(self) -> None:
        """A new file gets the table, the expiry index, user_version and WAL
        journaling with synchronous=NORMAL; its directory is created 0700 and
        the file is 0600 (policies are no one else's business)."""
        store = self.store()
        self.successResultOf(store.open())
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(
            stat.S_IMODE(os.stat(os.path.dirname(self.path)).st_mode), 0o700
        )
        db = sqlite3.connect(self.path)
        try:
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone(), ("wal",))
            self.assertEqual(
                db.execute("PRAGMA user_version").fetchone(), (SCHEMA_VERSION,)
            )
            columns = [row[1:3] for row in db.execute("PRAGMA table_info(policies)")]
            indexes = {row[1] for row in db.execute("PRAGMA index_list(policies)")}
        finally:
            db.close()
        self.assertEqual(
            columns,
            [
                ("domain", "TEXT"),
                ("expires_at", "REAL"),
                ("updated_at", "REAL"),
                ("data", "BLOB"),
            ],
        )
        self.assertIn("policies_expires_at", indexes)
        connection = store._db
        assert connection is not None
        self.assertEqual(connection.execute("PRAGMA synchronous").fetchone(), (1,))

    def test_flush_interval(self) -> None:
        """put() returns at once; the write reaches the file at the next flush,
        flush_interval_s later, not before (write-behind, E1)."""
        store = self.store(flush_interval_s=1.0)
        self.successResultOf(store.open())
        entry = make_entry("example.com")
        self.assertIsNone(self.successResultOf(store.put(entry)))
        self.assertEqual(self.rows(), {})
        self.clock.advance(0.999)
        self.assertEqual(self.rows(), {})
        self.clock.advance(0.001)
        self.assertEqual(self.rows(), {"example.com": entry.to_bytes()})
        store.delete("example.com")
        self.clock.advance(1.0)
        self.assertEqual(self.rows(), {})

    def test_crash_loses_only_unflushed(self) -> None:
        """A crash (kill -9: no close, no last flush) loses only the writes of
        the last flush interval; the file as left on disk opens clean (E1)."""
        store = self.store()
        flushed = make_entry("flushed.example")
        store.put(flushed)
        self.clock.advance(1.0)
        store.put(make_entry("pending.example"))
        store.put(make_entry("flushed.example", "newer"))
        crashed = os.path.join(self.dir, "crashed", "policies.sqlite")
        os.makedirs(os.path.dirname(crashed))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                shutil.copy(self.path + suffix, crashed + suffix)
        again = self.store(crashed)
        self.assertEqual(self.successResultOf(again.load()), [flushed])

    def test_prune(self) -> None:
        """The daily prune deletes rows past expiry + grace from the file (E1:
        nothing stays forever); load prunes too."""
        store = self.store()
        store.put(make_entry("old.example"))
        self.clock.advance(MAX_AGE_S + STORE_GRACE_S - PRUNE_INTERVAL_S)
        young = make_entry("young.example", now=self.clock.seconds())
        store.put(young)
        self.clock.advance(PRUNE_INTERVAL_S)
        self.assertEqual(set(self.rows()), {"young.example"})
        self.clock.advance(MAX_AGE_S + STORE_GRACE_S - 1)
        self.sql("UPDATE policies SET expires_at = 0")  # as if long expired
        self.sql("INSERT INTO policies VALUES ('x.example', 0, 0, x'00')")
        self.assertEqual(self.successResultOf(store.load()), [])
        self.assertEqual(self.rows(), {})

    def test_bound_on_file(self) -> None:
        """The file holds at most max_entries rows; the oldest updated go."""
        store = self.store(max_entries=3)
        for i in range(5):
            store.put(make_entry(f"d{i}.example"))
            self.clock.advance(0.5)
        self.clock.advance(1.0)
        self.assertEqual(set(self.rows()), {"d2.example", "d3.example", "d4.example"})

    def test_bound_same_time(self) -> None:
        """Puts at one clock reading are evicted in put order, a re-put
        counting as the latest (bounded store)."""
        store = self.store(max_entries=2)
        for domain in ("a.example", "b.example", "a.example", "c.example"):
            store.put(make_entry(domain))
        self.successResultOf(store.flush())
        self.assertEqual(set(self.rows()), {"a.example", "c.example"})


class WriteBehindTests(SqliteTestCase):
    def test_pending_expiry(self) -> None:
        """A write still pending obeys the same expiry as a stored one: kept
        STORE_GRACE_S past expires_at, then not returned (E1, E9)."""
        store = self.store(flush_interval_s=10 * (MAX_AGE_S + STORE_GRACE_S))
        entry = make_entry("example.com")
        store.put(entry)
        self.clock.advance(MAX_AGE_S + STORE_GRACE_S - 1)
        self.assertEqual(self.successResultOf(store.get("example.com")), entry)
        self.assertEqual(self.successResultOf(store.load()), [entry])
        self.clock.advance(2)
        self.assertIsNone(self.successResultOf(store.get("example.com")))
        self.assertEqual(self.successResultOf(store.load()), [])
        self.assertEqual(self.rows(), {})

    def test_reads_during_flush(self) -> None:
        """While a flush is in the worker, reads see the batch being written
        and newer puts win over it; close() waits for the flush (E13 key: one
        latest value per domain)."""
        worker = LaggingWorker()
        store = self.store(runner=worker)
        store.put(make_entry("a.example", "v1"))
        store.put(make_entry("b.example", "v1"))
        flushing = store.flush()
        store.put(make_entry("a.example", "v2"))
        got_a = self.successResultOf(store.get("a.example"))
        got_b = self.successResultOf(store.get("b.example"))
        assert got_a is not None
        assert got_b is not None
        self.assertEqual((got_a.policy_id, got_b.policy_id), ("v2", "v1"))
        self.assertEqual(len(worker.calls), 1)
        worker.run()
        self.successResultOf(flushing)
        self.assertEqual(
            self.rows(),
            {
                "a.example": make_entry("a.example", "v1").to_bytes(),
                "b.example": make_entry("b.example", "v1").to_bytes(),
            },
        )
        closed = store.close()
        self.assertNoResult(closed)
        worker.run()
        self.successResultOf(closed)
        self.assertEqual(
            self.rows()["a.example"], make_entry("a.example", "v2").to_bytes()
        )

    def test_failed_flush_retried(self) -> None:
        """A flush that cannot write (database locked by another process) keeps
        its writes pending, warns once, and the next flush writes them."""
        store = self.store(busy_timeout_s=0)
        self.successResultOf(store.open())
        locker = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(locker.close)
        locker.execute("BEGIN IMMEDIATE")
        entry = make_entry("example.com")
        with capturedLogs() as events:
            store.put(entry)
            self.clock.advance(1.0)
            self.clock.advance(1.0)
            self.unavailable(store.flush())
            self.assertEqual(self.successResultOf(store.get("example.com")), entry)
            locker.execute("ROLLBACK")
            self.clock.advance(1.0)
        self.assertEqual(self.rows(), {"example.com": entry.to_bytes()})
        levels = [(e["log_level"], e.get("op")) for e in events]
        self.assertEqual(levels, [(LogLevel.warn, "write"), (LogLevel.info, "write")])


class FaultTests(SqliteTestCase):
    def test_corrupt_row_deleted(self) -> None:
        """Rows the codec rejects are skipped by load (and get), deleted from
        the file and logged in one event; the good rows are served (E13)."""
        store = self.store()
        good = make_entry("good.example")
        store.put(good)
        self.successResultOf(store.flush())
        for domain in ("bad1.example", "bad2.example"):
            self.sql(
                "INSERT INTO policies VALUES (?, ?, ?, ?)", domain, 1e12, 0.0, b"{x"
            )
        with capturedLogs() as events:
            self.assertEqual(self.successResultOf(store.load()), [good])
        self.assertEqual(set(self.rows()), {"good.example"})
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["count"], 2)
        self.assertEqual(events[0]["log_level"], LogLevel.warn)
        self.sql(
            "INSERT INTO policies VALUES (?, ?, ?, ?)", "bad.example", 1e12, 0.0, b""
        )
        self.assertIsNone(self.successResultOf(store.get("bad.example")))
        self.assertEqual(set(self.rows()), {"good.example"})

    def test_not_a_database(self) -> None:
        """A file that is not SQLite fails every call with
        CacheUnavailableError, warned once per kind of call, never a crash."""
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "wb") as f:
            f.write(b"this is not a database" * 100)
        store = self.store()
        with capturedLogs() as events:
            self.unavailable(store.load())
            self.unavailable(store.get("example.com"))
            self.unavailable(store.get("example.com"))
            self.successResultOf(store.put(make_entry("example.com")))
            self.clock.advance(1.0)
            self.clock.advance(1.0)
            self.unavailable(store.close())
        ops = [e["op"] for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(sorted(ops), ["get", "load", "write"])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_path_is_a_directory(self) -> None:
        """A path that cannot be opened at all fails with CacheUnavailableError."""
        os.makedirs(self.path)
        store = self.store()
        self.unavailable(store.open())
        self.unavailable(store.get("example.com"))

    def test_readonly_file(self) -> None:
        """A read-only file still serves its entries; writes fail with
        CacheUnavailableError and stay pending until the file is writable
        again, then reach it (the connection is reopened)."""
        store = self.store()
        kept = make_entry("kept.example")
        store.put(kept)
        self.successResultOf(store.close())
        writable = self.readonly(self.path)
        store = self.store()
        self.assertEqual(self.successResultOf(store.load()), [kept])
        new = make_entry("new.example")
        store.put(new)
        self.unavailable(store.flush())
        self.assertEqual(self.successResultOf(store.get("new.example")), new)
        writable()
        self.clock.advance(1.0)
        self.assertEqual(set(self.rows()), {"kept.example", "new.example"})

    def test_unknown_schema_refused(self) -> None:
        """A file with a schema version this code does not know is refused at
        open with StoreOpenError, and left untouched."""
        os.makedirs(os.path.dirname(self.path))
        self.sql(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        store = self.store()
        with capturedLogs() as events:
            failure = self.failureResultOf(store.open(), StoreOpenError)
            self.unavailable(store.load())
        self.assertIn("schema version 2", str(failure.value))
        self.assertEqual(events[0]["log_level"], LogLevel.error)
        db = sqlite3.connect(self.path)
        try:
            self.assertEqual(db.execute("PRAGMA user_version").fetchone(), (2,))
            tables = db.execute("SELECT name FROM sqlite_master").fetchall()
        finally:
            db.close()
        self.assertEqual(tables, [])

    def test_closed_store(self) -> None:
        """Calls after close() fail with CacheUnavailableError; close twice is fine."""
        store = self.store()
        self.successResultOf(store.close())
        self.successResultOf(store.close())
        self.unavailable(store.get("example.com"))
        self.unavailable(store.put(make_entry("example.com")))
        self.unavailable(store.load())
