"""The store contract (spec E1, E13) run against the memory and SQLite stores."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.sqlite import SqliteStore
from postfix_mtasts.cache.store import PolicyStore
from tests.unit.memory_store import MemoryStore

from .store_contract import (
    MAX_AGE_S,
    START,
    BoundedStoreContract,
    DurableStoreContract,
    run_now,
)

T = TypeVar("T")


class MemoryStoreContractTests(BoundedStoreContract, SynchronousTestCase):
    def make_store(self, clock: Clock, max_entries: int = 1000) -> PolicyStore:
        return MemoryStore(clock, max_entries)

    def wait(self, d: Deferred[T]) -> T:
        return self.successResultOf(d)

    def flush(self, store: PolicyStore) -> None:
        pass


class SqliteStoreContractTests(
    BoundedStoreContract, DurableStoreContract, SynchronousTestCase
):
    """The SQLite store with a synchronous runner, on a file in a temp dir."""

    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="store-contract-")
        self.addCleanup(shutil.rmtree, directory)
        self.path = os.path.join(directory, "policies.sqlite")
        self.max_entries = 1000

    def make_store(self, clock: Clock, max_entries: int = 1000) -> PolicyStore:
        self.max_entries = max_entries
        store = SqliteStore(
            self.path, clock, run_in_thread=run_now, max_entries=max_entries
        )
        self.addCleanup(store.close)
        return store

    def wait(self, d: Deferred[T]) -> T:
        return self.successResultOf(d)

    def flush(self, store: PolicyStore) -> None:
        assert isinstance(store, SqliteStore)
        self.successResultOf(store.flush())

    def reopen(self, store: PolicyStore, clock: Clock) -> PolicyStore:
        return self.make_store(clock, self.max_entries)

    def corrupt(self, store: PolicyStore, domain: str, data: bytes) -> None:
        assert isinstance(store, SqliteStore)
        self.successResultOf(store.open())
        with sqlite3.connect(self.path) as db:
            db.execute(
                "INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?)",
                (domain, START + MAX_AGE_S, 0.0, data),  # make_entry's expiry
            )
        db.close()
