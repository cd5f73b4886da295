# -*- test-case-name: tests.integration.test_daemon -*-
"""``postfix-mtasts cache list|show|purge|refresh|export|import``.

Talks to the running daemon over its control socket (``[control] socket``);
the socket's file permissions decide who may.  With no daemon answering,
every verb but ``refresh`` works on the SQLite store file directly.

``import`` checks the whole file first (standard input is kept in a
temporary file meanwhile), then streams it one entry per line; a line over
:data:`~postfix_mtasts.control.MAX_LINE_BYTES` holds no valid entry and is
counted as rejected without being sent.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, nullcontext, suppress
from typing import IO, Any, TextIO

from twisted.internet.defer import Deferred

from postfix_mtasts.cache.sqlite_db import StoreOpenError, open_db, read_all, write
from postfix_mtasts.control import MAX_LINE_BYTES, AdminCommands, ImportSession
from postfix_mtasts.core.config import Config
from postfix_mtasts.core.entry import CacheEntry

__all__ = ["add_cache_parser", "run_cache"]

TIMEOUT_S = 120.0
SEND_BYTES = 64 * 1024  # entry lines are sent in batches of about this


def add_cache_parser(commands: Any) -> None:
    cache = commands.add_parser(
        "cache", help="inspect and manage the running daemon's cache"
    )
    cache.add_argument("--config", metavar="FILE", help="TOML configuration")
    cache.add_argument(
        "--socket", metavar="PATH", help="control socket (default: from the config)"
    )
    verbs = cache.add_subparsers(dest="verb", metavar="VERB", required=True)
    listing = verbs.add_parser("list", help="one line per cached domain")
    listing.add_argument("--json", action="store_true", help="print JSON")
    for verb, text in (
        ("show", "the whole cached policy of a domain"),
        ("purge", "forget a domain (here and in the stores); it is discovered again"),
        ("refresh", "fetch a domain's policy now"),
    ):
        verbs.add_parser(verb, help=text).add_argument("domain")
    export = verbs.add_parser("export", help="every entry as JSON lines")
    export.add_argument(
        "file", nargs="?", default="-", help="output file (default: stdout)"
    )
    imports = verbs.add_parser("import", help="load entries written by export")
    imports.add_argument("file", help="input file ('-' for stdin)")


def run_cache(config: Config, args: Any, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    path = args.socket or config.control.socket
    if not path:
        print(
            "postfix-mtasts: no control socket configured ([control] socket)",
            file=sys.stderr,
        )
        return 2
    request: dict[str, Any] = {"cmd": args.verb}
    if args.verb in ("show", "purge", "refresh"):
        request["domain"] = args.domain
    entries: _ExportFile | None = None
    if args.verb == "import":
        try:
            entries = _ExportFile(args.file)
        except (OSError, ValueError) as e:
            print(f"postfix-mtasts: cannot import {args.file}: {e}", file=sys.stderr)
            return 2
    with closing(entries) if entries is not None else nullcontext():
        status = _run(config, args, path, request, entries, out)
    return status


def _run(
    config: Config,
    args: Any,
    path: str,
    request: dict[str, Any],
    entries: _ExportFile | None,
    out: TextIO,
) -> int:
    try:
        lines = _ask(path, request, entries.lines() if entries else None)
    except OSError as e:
        if not config.store.path or args.verb == "refresh":
            print(
                f"postfix-mtasts: cannot reach the daemon at {path}: {e}",
                file=sys.stderr,
            )
            return 2
        if not os.path.exists(config.store.path):
            print(
                f"postfix-mtasts: cannot reach the daemon at {path} ({e}), and there "
                f"is no store file at {config.store.path}",
                file=sys.stderr,
            )
            return 2
        print(
            f"postfix-mtasts: the daemon is not answering at {path} ({e}); "
            f"working on the store {config.store.path} directly",
            file=sys.stderr,
        )
        try:
            lines = _offline(config, request, entries.lines() if entries else None)
        except (OSError, sqlite3.Error, StoreOpenError) as e:
            print(f"postfix-mtasts: cannot use the store: {e}", file=sys.stderr)
            return 2
    if args.verb == "export":
        target: AbstractContextManager[TextIO] = (
            nullcontext(out)
            if args.file == "-"
            else open(args.file, "w", encoding="utf-8")  # noqa: SIM115 - closed by with
        )
        with target as f:
            for line in lines:
                f.write(line + "\n")
        return 0
    reply: dict[str, Any] = (
        json.loads(lines[0]) if lines else {"ok": False, "error": "no answer"}
    )
    if not reply.get("ok"):
        print(f"postfix-mtasts: {reply.get('error')}", file=sys.stderr)
        return 1
    if entries is not None:
        reply["rejected"] += entries.skipped
    _print(args, reply, out)
    return 0


def _print(args: Any, reply: dict[str, Any], out: TextIO) -> None:
    if args.verb == "list":
        if args.json:
            out.write(json.dumps(reply["entries"], indent=2) + "\n")
            return
        for e in reply["entries"]:
            out.write(
                f"{e['domain']:<40} {e['mode']:<8} id={e['id']} expires={e['expires_at']}\n"
            )
    elif args.verb in ("show", "refresh"):
        out.write(json.dumps(reply["entry"], indent=2) + "\n")
    elif args.verb == "purge":
        out.write(
            ("purged" if reply["purged"] else "was not cached") + f": {args.domain}\n"
        )
    else:
        out.write(f"imported {reply['imported']}, rejected {reply['rejected']}\n")


class _ExportFile:
    """An export file ("-": standard input, copied to a temporary file)
    checked to hold one JSON value a line before anything is imported
    (ValueError names the first line that does not)."""

    def __init__(self, path: str) -> None:
        if path == "-":
            self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
            shutil.copyfileobj(sys.stdin.buffer, self._file)
        else:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.skipped = 0
        try:
            for number, line in enumerate(self._read(), 1):
                try:
                    if line:
                        json.loads(line.decode("utf-8"))
                except ValueError:
                    raise ValueError(f"line {number} is not JSON") from None
        except BaseException:
            self._file.close()
            raise

    def lines(self) -> Iterator[bytes]:
        """The entry lines, counting the over-long ones in ``skipped``."""
        for line in self._read():
            if line is None:
                self.skipped += 1
            elif line:
                yield line

    def _read(self) -> Iterator[bytes | None]:
        """Each line stripped; None for one over MAX_LINE_BYTES, which is
        never held whole."""
        self._file.seek(0)
        while chunk := self._file.readline(MAX_LINE_BYTES + 2):
            if len(chunk) > MAX_LINE_BYTES + 1 and not chunk.endswith(b"\n"):
                while chunk and not chunk.endswith(b"\n"):
                    chunk = self._file.readline(MAX_LINE_BYTES)
                yield None
            else:
                line = chunk.strip()
                yield line if len(line) <= MAX_LINE_BYTES else None

    def close(self) -> None:
        self._file.close()


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


class _StoreFile:
    """The Administered face of a store file (no daemon, no network)."""

    def __init__(self, path: str, max_entries: int) -> None:
        self._now = time.time()  # noqa: TID251 - the CLI's own clock, no reactor here
        self._max_entries = max_entries
        self._db = open_db(path, busy_timeout_s=5.0)
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

    def import_entry(self, entry: CacheEntry) -> None:
        write(self._db, [(entry.domain, (entry, self._now))], self._max_entries)
        self._entries[entry.domain] = entry

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False
    ) -> Deferred[CacheEntry | None] | None:
        return None


def _ask(
    path: str, request: dict[str, Any], entries: Iterable[bytes] | None = None
) -> list[str]:
    """The daemon's answer to ``request`` (and the entry lines of an import,
    then an empty line).  OSError: the daemon cannot be reached; once it
    is, a connection that breaks gives an error answer instead."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT_S)
        s.connect(path)
        chunks: list[bytes] = []
        try:
            s.sendall(json.dumps(request).encode() + b"\n")
            if entries is not None:
                _send_lines(s, entries)
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError as e:
            if not chunks:  # it may have answered before it stopped reading
                with suppress(OSError):
                    while chunk := s.recv(65536):
                        chunks.append(chunk)
            if not chunks:
                error = f"the daemon at {path} closed the connection: {e}"
                return [json.dumps({"ok": False, "error": error})]
    return b"".join(chunks).decode().splitlines()


def _send_lines(s: socket.socket, lines: Iterable[bytes]) -> None:
    batch: list[bytes] = []
    size = 0
    for line in lines:
        batch.append(line + b"\n")
        size += len(line) + 1
        if size >= SEND_BYTES:
            s.sendall(b"".join(batch))
            batch, size = [], 0
    batch.append(b"\n")  # the end of the import
    s.sendall(b"".join(batch))
