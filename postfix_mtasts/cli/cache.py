# -*- test-case-name: tests.integration.test_daemon -*-
"""``postfix-mtasts cache list|show|purge|refresh|export|import``.

Talks to the running daemon over its control socket (``[control] socket``);
the socket's file permissions decide who may.  When the socket cannot be
reached that is an error: a wrong ``--socket`` must never lead to the store
being edited behind a running daemon, which would go on answering from its
memory (issue 11).  Only ``--offline`` works on the SQLite store file
directly (every verb but ``refresh``), and only when no process has the file
open: it is opened in SQLite's exclusive locking mode, which a daemon's open
connection (WAL mode, a shared lock held while open) refuses at once.

``import`` checks the whole file first (standard input is kept in a
temporary file meanwhile), then streams it one entry per line; a line over
:data:`~postfix_mtasts.control.MAX_LINE_BYTES` holds no valid entry and is
counted as rejected without being sent.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, closing, nullcontext, suppress
from typing import IO, Any, TextIO

from postfix_mtasts.cli.offline import offline_lines
from postfix_mtasts.control import MAX_LINE_BYTES
from postfix_mtasts.core.config import Config

__all__ = ["run_cache"]

TIMEOUT_S = 120.0
SEND_BYTES = 64 * 1024  # entry lines are sent in batches of about this


def run_cache(config: Config, args: Any, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    path = args.socket or config.control.socket
    if args.offline and not config.store.path:
        print(
            "postfix-mtasts: --offline needs a store file ([store] path)",
            file=sys.stderr,
        )
        return 2
    if not path and not args.offline:
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
    if args.offline:
        offline = offline_lines(
            config, args, request, entries.lines() if entries else None
        )
        if offline is None:
            return 2
        lines = offline
    else:
        try:
            lines = _ask(path, request, entries.lines() if entries else None)
        except OSError as e:
            print(
                f"postfix-mtasts: cannot reach the daemon at {path}: {e}",
                file=sys.stderr,
            )
            if config.store.path and args.verb != "refresh":
                print(
                    "postfix-mtasts: if the daemon is stopped, 'cache --offline "
                    f"{args.verb}' works on its store {config.store.path}",
                    file=sys.stderr,
                )
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
        rows = sorted(reply["entries"], key=lambda e: str(e.get("domain")))
        if args.json:
            out.write(json.dumps(rows, indent=2) + "\n")
            return
        for e in rows:
            tolerated = " tolerated" if e.get("tolerated") else ""
            out.write(
                f"{e['domain']:<40} {e['mode']:<8} id={e['id']}"
                f" expires={e['expires_at']}{tolerated}\n"
            )
    elif args.verb in ("show", "refresh"):
        out.write(json.dumps(reply["entry"], indent=2) + "\n")
    elif args.verb == "purge":
        out.write(
            ("purged" if reply["purged"] else "was not cached") + f": {args.domain}\n"
        )
    else:
        out.write(
            f"imported {reply['imported']}, kept {reply.get('kept', 0)} newer, "
            f"rejected {reply['rejected']}\n"
        )


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
