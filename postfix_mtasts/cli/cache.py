# -*- test-case-name: tests.integration.test_daemon -*-
"""``postfix-mtasts cache list|show|purge|refresh|export|import``.

Talks to the running daemon over its control socket (``[control] socket``);
the socket's file permissions decide who may.  With no daemon answering,
every verb but ``refresh`` works on the SQLite store file directly.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
from contextlib import AbstractContextManager, closing, nullcontext
from typing import Any, TextIO

from twisted.internet.defer import Deferred

from postfix_mtasts.cache.sqlite_db import StoreOpenError, open_db, read_all, write
from postfix_mtasts.control import AdminCommands
from postfix_mtasts.core.config import Config
from postfix_mtasts.core.entry import CacheEntry

__all__ = ["add_cache_parser", "run_cache"]

TIMEOUT_S = 120.0


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
    if args.verb == "import":
        try:
            request["entries"] = _read_export(args.file)
        except (OSError, UnicodeDecodeError, ValueError) as e:
            print(f"postfix-mtasts: cannot import {args.file}: {e}", file=sys.stderr)
            return 2
    try:
        lines = _ask(path, request)
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
            lines = _offline(config, request)
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
    reply = json.loads(lines[0]) if lines else {"ok": False, "error": "no answer"}
    if not reply.get("ok"):
        print(f"postfix-mtasts: {reply.get('error')}", file=sys.stderr)
        return 1
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


def _read_export(path: str) -> list[Any]:
    """The entries of an export file ("-": standard input), one JSON value a
    line; ValueError names the first line that is not JSON."""
    source = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    entries = []
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise ValueError(f"line {number} is not JSON") from None
    return entries


def _offline(config: Config, request: dict[str, Any]) -> list[str]:
    """Run ``request`` on the SQLite store file, for a daemon that is not
    running (it loads the file when it starts)."""
    with closing(_StoreFile(config.store.path, config.cache.max_entries)) as store:
        reply = AdminCommands(store).run(json.dumps(request).encode())
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


def _ask(path: str, request: dict[str, Any]) -> list[str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT_S)
        s.connect(path)
        s.sendall(json.dumps(request).encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode().splitlines()
