# -*- test-case-name: tests.unit.test_sqlite_store,tests.unit.test_store_contract -*-
"""The SQL of the SQLite store: schema, reads and writes on one connection.

Plain blocking sqlite3 code, run only in the store's worker thread; no
Twisted, no clock (``now`` is a value), errors propagate to the caller.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from attrs import frozen

from postfix_mtasts.core.entry import STORE_GRACE_S, CacheEntry, StoredInvalid
from postfix_mtasts.core.value import Value

__all__ = [
    "SCHEMA_VERSION",
    "Item",
    "Refused",
    "Row",
    "StoreOpenError",
    "delete_exact",
    "open_db",
    "prune",
    "read_all",
    "read_one",
    "write",
]

SCHEMA_VERSION = 1

Item = tuple[CacheEntry, float] | None  # (entry, updated_at) to write; None: delete
Row = tuple[str, object]  # (domain, data) of an unreadable row


@frozen(repr=False)
class Refused(Value):
    """An unreadable row, and why: not loaded, and deleted."""

    domain: str
    data: object
    reason: str


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS policies (domain TEXT PRIMARY KEY,"
    " expires_at REAL NOT NULL, updated_at REAL NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS policies_expires_at ON policies (expires_at)",
    "CREATE INDEX IF NOT EXISTS policies_updated_at ON policies (updated_at)",
    f"PRAGMA user_version = {SCHEMA_VERSION:d}",
)


class StoreOpenError(Exception):
    """The database has a schema this code does not know: refuse to use it."""


def open_db(path: str, busy_timeout_s: float) -> sqlite3.Connection:
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version not in (0, SCHEMA_VERSION):
            raise StoreOpenError(
                f"{path} has schema version {version}, this postfix-mtasts knows"
                f" {SCHEMA_VERSION}: move the file away or run a matching version"
            )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if version == 0:
            with _transaction(db):
                for statement in _SCHEMA:
                    db.execute(statement)
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _decode(domain: str, expires_at: float, data: object) -> CacheEntry | Refused:
    """The row's entry, checked like a fetch and against its key."""
    if not isinstance(data, bytes):
        return Refused(domain, data, "data is not a blob")
    entry = CacheEntry.decode(data)
    if isinstance(entry, StoredInvalid):
        return Refused(domain, data, entry.reason)
    if entry.domain != domain or entry.expires_at != expires_at:
        return Refused(domain, data, "entry does not match its row")
    return entry


def read_all(
    db: sqlite3.Connection, now: float
) -> tuple[list[CacheEntry], list[Refused]]:
    entries: list[CacheEntry] = []
    refused: list[Refused] = []
    # "+expires_at": a full scan beats 100,000 index look-ups.
    for domain, expires_at, data in db.execute(
        "SELECT domain, expires_at, data FROM policies WHERE +expires_at > ?",
        (now - STORE_GRACE_S,),
    ):
        entry = _decode(domain, expires_at, data)
        if isinstance(entry, Refused):
            refused.append(entry)
        else:
            entries.append(entry)
    return entries, refused


def read_one(
    db: sqlite3.Connection, domain: str, now: float
) -> tuple[CacheEntry | None, list[Refused]]:
    row = db.execute(
        "SELECT expires_at, data FROM policies WHERE domain = ? AND expires_at > ?",
        (domain, now - STORE_GRACE_S),
    ).fetchone()
    if row is None:
        return None, []
    entry = _decode(domain, row[0], row[1])
    return (None, [entry]) if isinstance(entry, Refused) else (entry, [])


def write(
    db: sqlite3.Connection,
    items: list[tuple[str, Item]],
    max_entries: int,
) -> int:
    rows = [
        (domain, item[0].expires_at, item[1], item[0].to_bytes())
        for domain, item in items
        if item is not None
    ]
    gone = [(domain,) for domain, item in items if item is None]
    with _transaction(db):
        # REPLACE gives the row a new rowid: the tie-break of equal updated_at.
        db.executemany(
            "INSERT OR REPLACE INTO policies (domain, expires_at, updated_at, data)"
            " VALUES (?, ?, ?, ?)",
            rows,
        )
        db.executemany("DELETE FROM policies WHERE domain = ?", gone)
        return _trim(db, max_entries)


def _trim(db: sqlite3.Connection, max_entries: int) -> int:
    (count,) = db.execute("SELECT count(*) FROM policies").fetchone()
    if count <= max_entries:
        return 0
    return db.execute(
        "DELETE FROM policies WHERE rowid IN (SELECT rowid FROM policies"
        " ORDER BY updated_at, rowid LIMIT ?)",
        (count - max_entries,),
    ).rowcount


def prune(db: sqlite3.Connection, now: float, max_entries: int) -> int:
    with _transaction(db):
        expired = db.execute(
            "DELETE FROM policies WHERE expires_at <= ?", (now - STORE_GRACE_S,)
        ).rowcount
        return expired + _trim(db, max_entries)


def delete_exact(db: sqlite3.Connection, bad: list[Row]) -> None:
    """Delete the unreadable rows, unless rewritten since they were read."""
    with _transaction(db):
        db.executemany("DELETE FROM policies WHERE domain = ? AND data IS ?", bad)
