# -*- test-case-name: tests.unit.test_cli -*-
"""``postfix-mtasts cache --offline``: the verbs on the SQLite store file of
a daemon that is stopped (issue 11).

The file is opened in SQLite's exclusive locking mode: the first read of a
WAL database then takes an exclusive lock on the file, which fails at once
while another process has it open (a running daemon's connection holds a
shared lock for as long as it is open).  So the store is never edited
behind a running daemon, which would go on answering from its memory; a
daemon started while this holds the lock waits for it, then runs without
its store (and says so).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable
from contextlib import closing
from typing import Any

from twisted.internet.defer import Deferred

from postfix_mtasts.cache.sqlite_db import (
    SCHEMA_VERSION,
    StoreOpenError,
    read_all,
    write,
)
from postfix_mtasts.control import AdminCommands, ImportSession
from postfix_mtasts.core.config import Config
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.imported import KeptNewer, kept_newer

__all__ = ["StoreInUseError", "offline_lines", "open_exclusive"]


def offline_lines(
    config: Config, args: Any, request: dict[str, Any], entries: Iterable[bytes] | None
) -> list[str] | None:
    """The answer from the store file, or None (said why on stderr)."""
    store = config.store.path
    if args.verb == "refresh":
        print("postfix-mtasts: refresh needs the running daemon", file=sys.stderr)
        return None
    if not os.path.exists(store):
        print(f"postfix-mtasts: there is no store file at {store}", file=sys.stderr)
        return None
    try:
        return _offline(config, request, entries)
    except StoreInUseError as e:
        print(f"postfix-mtasts: {e}", file=sys.stderr)
    except (OSError, sqlite3.Error, StoreOpenError) as e:
        print(f"postfix-mtasts: cannot use the store: {e}", file=sys.stderr)
    return None


def _offline(
    config: Config, request: dict[str, Any], entries: Iterable[bytes] | None
) -> list[str]:
    """Run ``request`` on the SQLite store file, for a daemon that is not
    running (it loads the file when it starts)."""
    with closing(_StoreFile(config.store.path, config.cache.max_entries)) as store:
        reply = AdminCommands(store).run(json.dumps(request).encode())
        if isinstance(reply, ImportSession):
            for line in entries or ():
                reply.add(line)
            reply = reply.finish()
        if isinstance(reply, Deferred):  # only refresh is asynchronous
            return ['{"ok": false, "error": "refresh needs the running daemon"}']
        return b"".join(reply).decode().splitlines()


class StoreInUseError(Exception):
    """Another process (a running daemon) has the store file open."""


def open_exclusive(path: str) -> sqlite3.Connection:
    """The store file, locked for this process alone until closed.

    In SQLite's exclusive locking mode the first read of a WAL database
    takes an exclusive lock on the file; a daemon's connection holds a
    shared lock for as long as it is open, so this fails at once
    (StoreInUseError) while one is, and a daemon started meanwhile waits
    for it, then runs without its store."""
    db = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            db.execute("BEGIN IMMEDIATE")
            db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            raise StoreInUseError(
                f"the store {path} is in use, by a running daemon most likely: "
                "it is not edited behind the daemon's back; reach the daemon "
                "through its control socket"
            ) from None
        if version != SCHEMA_VERSION:
            raise StoreOpenError(
                f"{path} has schema version {version}, this postfix-mtasts "
                f"knows {SCHEMA_VERSION}"
            )
    except BaseException:
        db.close()
        raise
    return db


class _StoreFile:
    """The Administered face of a store file (no daemon, no network)."""

    def __init__(self, path: str, max_entries: int) -> None:
        self._now = time.time()  # noqa: TID251 - the CLI's own clock, no reactor here
        self._max_entries = max_entries
        self._db = open_exclusive(path)
        entries, _ = read_all(self._db, self._now)
        self._entries = {e.domain: e for e in entries}

    def close(self) -> None:
        self._db.close()

    def domains(self) -> list[str]:
        return list(self._entries)

    def peek(self, domain: str) -> CacheEntry | None:
        return self._entries.get(domain)

    def purge(self, domain: str) -> bool:
        write(self._db, [(domain, None)], self._max_entries)
        return self._entries.pop(domain, None) is not None

    def import_entry(self, entry: CacheEntry) -> KeptNewer | None:
        if kept := kept_newer(self._entries.get(entry.domain), entry):
            return kept
        write(self._db, [(entry.domain, (entry, self._now))], self._max_entries)
        self._entries[entry.domain] = entry
        return None

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False
    ) -> Deferred[CacheEntry | None] | None:
        return None
