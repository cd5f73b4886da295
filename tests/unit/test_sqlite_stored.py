"""The SQLite store as a door for stored entries (issue 9; spec E1, E13): rows
are checked like a fetch when loaded at start and read, each refusal is
logged (a load: one summary line), unreadable rows are deleted, rows from the
future kept for when the clock is right, and an entry that could not be read
back is never written."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.sqlite import SqliteStore
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.stored import MAX_CLOCK_SKEW_S

from .fakes import make_policy
from .store_contract import START, make_entry, run_now


def at(events: Sequence[Mapping[str, Any]], level: LogLevel) -> list[Mapping[str, Any]]:
    return [e for e in events if e["log_level"] is level]


class SqliteDoorTests(SynchronousTestCase):
    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="sqlite-stored-")
        self.addCleanup(shutil.rmtree, directory)
        self.path = os.path.join(directory, "policies.sqlite")
        self.clock = Clock()
        self.clock.advance(START)

    def store(self) -> SqliteStore:
        store = SqliteStore(self.path, self.clock, run_in_thread=run_now)
        self.addCleanup(store.close)
        self.successResultOf(store.open())
        return store

    def insert(self, domain: str, expires_at: float, data: object) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?)",
                (domain, expires_at, 0.0, data),
            )
        db.close()

    def domains(self) -> set[str]:
        db = sqlite3.connect(self.path)
        try:
            return {domain for (domain,) in db.execute("SELECT domain FROM policies")}
        finally:
            db.close()

    def test_refused_rows_at_start(self) -> None:
        """Rows that are not valid entries are not loaded, logged in one line
        with the count and the first five, and deleted; good rows load
        (issue 9: an Infinity entry survived FLUSHALL and a restart)."""
        store = self.store()
        good = make_entry("good.example")
        store.put(good)
        self.successResultOf(store.flush())
        base = make_entry("bad.example").to_bytes()
        raw = json.loads(base)
        bad = {
            "inf.example": base.replace(
                b'"checked_at":1000000.0', b'"checked_at":Infinity'
            ),
            "nest.example": b"[" * 100_000,
            "digits.example": base.replace(
                b'"fetched_at":1000000.0', b'"fetched_at":' + b"9" * 400
            ),
            "forged.example": json.dumps({**raw, "mode": "none", "mx": []}).encode(),
            "moved.example": base,
            "text.example": "not a blob",
            "upper.example": json.dumps({**raw, "domain": "UPPER.example"}).encode(),
        }
        for domain, data in bad.items():
            self.insert(domain, START + 86400, data)
        with capturedLogs() as events:
            loaded = self.successResultOf(self.store().load())
        self.assertEqual(loaded, [good])
        (warning,) = at(events, LogLevel.warn)
        self.assertEqual(warning["count"], len(bad))
        self.assertEqual(warning["first"].count(".example'"), 5)
        self.assertEqual(self.domains(), {"good.example"})

    def test_row_from_the_future_kept(self) -> None:
        """A row fetched an hour ahead of this clock is not loaded nor read,
        one warning each time, but stays in the file: when the clock has
        caught up it loads (E1; the clock may be wrong, not the row)."""
        store = self.store()
        ahead = make_entry("ahead.example", now=START + 3600)
        self.insert("ahead.example", ahead.expires_at, ahead.to_bytes())
        with capturedLogs() as events:
            self.assertEqual(self.successResultOf(store.load()), [])
            self.assertIsNone(self.successResultOf(store.get("ahead.example")))
        warnings = at(events, LogLevel.warn)
        self.assertEqual(len(warnings), 2)
        self.assertIn("from the future", warnings[0]["reason"])
        self.assertEqual(self.domains(), {"ahead.example"})
        self.clock.advance(3600 - MAX_CLOCK_SKEW_S)
        self.assertEqual(self.successResultOf(store.load()), [ahead])

    def test_unreadable_entry_never_written(self) -> None:
        """put() of an entry with an infinite expiry is one error line and no
        row; later flushes do not fail over it (it once failed every flush)."""
        store = self.store()
        bad = CacheEntry("x.example", "id1", make_policy(), START, float("inf"), START)
        with capturedLogs() as events:
            self.successResultOf(store.put(bad))
            self.successResultOf(store.flush())
            self.clock.advance(10)
        (error,) = at(events, LogLevel.error)
        self.assertEqual(error["domain"], "x.example")
        self.assertEqual(len(events), 1)
        self.assertEqual(self.domains(), set())
