# -*- test-case-name: tests.unit.test_sqlite_store,tests.unit.test_store_contract -*-
"""The embedded persistent store: SQLite in WAL mode, written behind (spec E1).

Every sqlite3 call runs in one worker thread reached through ``run_in_thread``
(calls run one at a time, in order); the connection is made and used only
there.  put() and delete() record the latest value per domain and return at
once; a flush every ``flush_interval_s`` (and close()) writes them in one
transaction, so a crash loses at most that interval.  A sqlite3 or OS error
fails the call with CacheUnavailableError, logged once per outage and kind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import suppress
from typing import Any, NoReturn, TypeVar

from twisted.internet.defer import Deferred, DeferredLock, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.cache.refused import log_refused
from postfix_mtasts.cache.sqlite_db import (
    SCHEMA_VERSION,
    Item,
    Refused,
    StoreOpenError,
    delete_exact,
    open_db,
    prune,
    read_all,
    read_one,
    write,
)
from postfix_mtasts.cache.store import CacheUnavailableError
from postfix_mtasts.cache.worker import RunInThread, thread_runner
from postfix_mtasts.core.entry import CacheEntry

__all__ = [
    "SCHEMA_VERSION",
    "RunInThread",
    "SqliteStore",
    "StoreOpenError",
    "thread_runner",
]

PRUNE_INTERVAL_S = 86400.0
BUSY_TIMEOUT_S = 2.0

_T = TypeVar("_T")
# domain -> (entry, updated_at) to write, or None to delete
_Pending = dict[str, Item]


class SqliteStore:
    """A PolicyStore in one SQLite file; see the module docstring."""

    log = Logger()
    kind = "sqlite"  # for status and metrics

    def __init__(
        self,
        path: str,
        clock: IReactorTime,
        *,
        run_in_thread: RunInThread,
        max_entries: int = 100_000,
        flush_interval_s: float = 1.0,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.path = path
        self._clock = clock
        self._run_in_thread = run_in_thread
        self._max_entries = max_entries
        self._busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None  # used in the worker only
        self._pending: _Pending = {}
        self._flushing: _Pending = {}  # the batch being written, still readable
        self._flush_lock = DeferredLock()
        self._failing: set[str] = set()
        self.errors = 0  # operations failed (read by metrics)
        self._closing = False
        self._loops: list[LoopingCall] = []
        periodic: tuple[tuple[Callable[[], Deferred[Any]], float], ...] = (
            (self.flush, flush_interval_s),
            (self.prune, PRUNE_INTERVAL_S),
        )
        for work, interval_s in periodic:
            loop = LoopingCall(self._background, work)
            loop.clock = clock
            loop.start(interval_s, now=False)
            self._loops.append(loop)

    @property
    def up(self) -> bool:
        """No operation is failing now (for status and metrics)."""
        return not self._failing

    # -- the PolicyStore interface (reactor thread) --------------------------

    def open(self) -> Deferred[None]:
        """Open (or create) the database now.  Fails with StoreOpenError for an
        unknown schema version, else CacheUnavailableError; any other call
        opens it too, and retries after a failure."""
        return self._closed_error() or self._run("open", lambda db: None)

    def load(self) -> Deferred[list[CacheEntry]]:
        if closed := self._closed_error():
            return closed
        now = self._clock.seconds()
        d = self._run("load", lambda db: read_all(db, now))

        def merge(
            result: tuple[list[CacheEntry], list[Refused]],
        ) -> list[CacheEntry]:
            entries, refused = result
            live = {e.domain: e for e in self._not_ahead(entries, now, refused)}
            for layer in (self._flushing, self._pending):
                for domain, item in layer.items():
                    if item is not None and item[0].live_in_store(now):
                        live[domain] = item[0]
                    else:
                        live.pop(domain, None)
            self._background(self.prune)
            return list(live.values())

        return d.addCallback(merge)

    def get(self, domain: str) -> Deferred[CacheEntry | None]:
        if closed := self._closed_error():
            return closed
        now = self._clock.seconds()
        for layer in (self._pending, self._flushing):
            if domain in layer:
                item = layer[domain]
                if item is None or not item[0].live_in_store(now):
                    return succeed(None)
                return succeed(item[0])
        d = self._run("get", lambda db: read_one(db, domain, now))

        def decoded(
            result: tuple[CacheEntry | None, list[Refused]],
        ) -> CacheEntry | None:
            entry, refused = result
            found = [] if entry is None else [entry]
            return next(iter(self._not_ahead(found, now, refused)), None)

        return d.addCallback(decoded)

    def put(self, entry: CacheEntry) -> Deferred[None]:
        if why := entry.fault():  # never stored: it would be refused at load
            self.log.error(
                "sqlite store dropped a write domain={domain} reason={reason}",
                domain=entry.domain,
                reason=why,
            )
        else:
            self._stage(entry.domain, (entry, self._clock.seconds()))
        return self._closed_error() or succeed(None)

    def delete(self, domain: str) -> Deferred[None]:
        self._stage(domain, None)
        return self._closed_error() or succeed(None)

    def flush(self) -> Deferred[None]:
        """Write every pending put and delete in one transaction."""
        return self._closed_error() or self._flush_lock.run(self._write_pending)

    def prune(self) -> Deferred[int]:
        """Delete rows past expiry + STORE_GRACE_S and the oldest updated rows
        beyond max_entries; the number deleted."""
        if closed := self._closed_error():
            return closed
        now = self._clock.seconds()
        return self._run("prune", lambda db: prune(db, now, self._max_entries))

    def resize(self, max_entries: int) -> None:
        """Keep at most ``max_entries`` from the next write on (a reload)."""
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._max_entries = max_entries

    def close(self) -> Deferred[None]:
        if self._closing:
            return succeed(None)
        for loop in self._loops:
            loop.stop()
        flushed = self._flush_lock.run(self._write_pending)
        self._closing = True

        def disconnect(result: object) -> Deferred[None]:
            closed = self._run_in_thread(self._disconnect)
            return closed.addBoth(lambda _: result).addCallback(lambda _: None)

        return flushed.addBoth(disconnect)

    # -- internals (reactor thread) -------------------------------------------

    def _closed_error(self) -> Deferred[Any] | None:
        if self._closing:
            return fail(CacheUnavailableError(f"{self.path}: store closed"))
        return None

    def _stage(self, domain: str, item: Item) -> None:
        if self._closing:
            return
        self._pending.pop(domain, None)
        self._pending[domain] = item
        while len(self._pending) > self._max_entries:
            # The oldest updated would be trimmed at the flush anyway.
            del self._pending[next(iter(self._pending))]

    def _write_pending(self) -> Deferred[None]:
        if not self._pending:
            return succeed(None)
        batch = self._flushing = self._pending
        self._pending = {}
        items = list(batch.items())
        d = self._run("write", lambda db: write(db, items, self._max_entries))

        def settle(result: int | Failure) -> int | Failure:
            self._flushing = {}
            if isinstance(result, Failure):  # keep them for the next flush
                newer, self._pending = self._pending, batch
                for domain, item in newer.items():
                    self._stage(domain, item)
            return result

        return d.addBoth(settle).addCallback(lambda _: None)

    def _run(self, op: str, work: Callable[[sqlite3.Connection], _T]) -> Deferred[_T]:
        def call() -> _T:  # in the worker
            try:
                return work(self._connect())
            except sqlite3.Error:
                self._disconnect()  # reopen next time: the file may be fixed
                raise

        d = self._run_in_thread(call)

        def succeeded(result: _T) -> _T:
            if op in self._failing:
                self._failing.discard(op)
                self.log.info(
                    "sqlite store {op} works again path={path}", op=op, path=self.path
                )
            return result

        def failed(failure: Failure) -> NoReturn:
            error = failure.value
            if not isinstance(error, sqlite3.Error | OSError | StoreOpenError):
                failure.raiseException()  # our bug: let it show
            self.errors += 1
            if op not in self._failing:
                self._failing.add(op)
                refused = isinstance(error, StoreOpenError)  # an admin must act
                (self.log.error if refused else self.log.warn)(
                    "sqlite store {op} failed path={path} error={error}",
                    op=op,
                    path=self.path,
                    error=str(error),
                )
            if isinstance(error, StoreOpenError) and op == "open":
                failure.raiseException()
            raise CacheUnavailableError(f"{self.path}: {op}: {error}") from error

        return d.addCallbacks(succeeded, failed)

    def _background(self, work: Callable[[], Deferred[Any]]) -> Deferred[None]:
        """Run periodic or follow-up work whose failure is already logged."""

        def survive(failure: Failure) -> None:
            if not isinstance(failure.value, CacheUnavailableError):
                self.log.failure("sqlite store background work failed", failure)

        return work().addCallbacks(lambda _: None, survive)

    def _not_ahead(
        self, entries: list[CacheEntry], now: float, refused: list[Refused]
    ) -> list[CacheEntry]:
        """``entries`` but those from the future, which stay in the file (the
        clock may be wrong, not the row); logs them and the unreadable rows,
        which are deleted."""
        ahead = [(e.domain, why) for e in entries if (why := e.ahead_of(now))]
        kept = [e for e in entries if not e.ahead_of(now)] if ahead else entries
        if self._closing:
            return kept
        source = f"sqlite {self.path}"
        log_refused(self.log, source, [(r.domain, r.reason) for r in refused] + ahead)
        rows = [(r.domain, r.data) for r in refused]
        if rows:
            self._background(
                lambda: self._run("prune", lambda db: delete_exact(db, rows))
            )
        return kept

    # -- the worker thread -----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_db(self.path, self._busy_timeout_s)
        return self._db

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with suppress(sqlite3.Error):
                db.close()
