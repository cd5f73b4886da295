# -*- test-case-name: tests.unit.test_control -*-
"""The admin commands behind ``postfix-mtasts cache ...``, run by the
daemon for its control socket (:mod:`postfix_mtasts.controlsocket`) or by
the CLI on a store file.

One JSON request line; the answer is JSON lines, made lazily so a long one
is written a chunk at a time.  Commands: ``list``, ``show``, ``purge``,
``refresh``, ``status`` (the daemon's figures), ``export`` (one stored
entry per line, the store's own format) and ``import``
(:class:`ImportSession`: after the request line, one entry per line as
export wrote it, each applied as it arrives, then an empty line; the
answer counts them).  No line is over ``MAX_LINE_BYTES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from postfix_mtasts.cache.refused import SHOWN, log_refused
from postfix_mtasts.core.entry import CacheEntry, StoredInvalid
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.stored import MAX_STORED_BYTES
from postfix_mtasts.core.text import quote, utc_timestamp

__all__ = [
    "MAX_LINE_BYTES",
    "AdminCommands",
    "Administered",
    "ImportSession",
    "Reply",
    "describe_entry",
]

#: A request, or one imported entry: no larger than a stored entry may be.
MAX_LINE_BYTES = MAX_STORED_BYTES

Reply = Iterable[bytes]


class Administered(Protocol):
    def domains(self) -> list[str]: ...

    def peek(self, domain: str) -> CacheEntry | None: ...

    def purge(self, domain: str) -> bool: ...

    def import_entry(self, entry: CacheEntry) -> str | None:
        """Take a checked entry; why it is refused (from the future), or None."""
        ...

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False
    ) -> Deferred[CacheEntry | None] | None: ...


def describe_entry(entry: CacheEntry) -> dict[str, Any]:
    """An entry as plain data for ``cache list``/``show`` (stable keys)."""

    return {
        "domain": entry.domain,
        "id": entry.policy_id,
        "mode": entry.policy.mode.value,
        "max_age": entry.policy.max_age,
        "mx": [p.text for p in entry.policy.mx],
        "fetched_at": utc_timestamp(entry.fetched_at),
        "checked_at": utc_timestamp(entry.checked_at),
        "expires_at": utc_timestamp(entry.expires_at),
        "policy": list(entry.policy.lines),
    }


def _line(obj: dict[str, Any]) -> Reply:
    return [json.dumps(obj).encode() + b"\n"]


def _error(text: str) -> Reply:
    return _line({"ok": False, "error": text})


class AdminCommands:
    """Runs one admin request against a cache (the daemon's, or a store
    file read directly); the answer is JSON lines."""

    log = Logger()

    def __init__(
        self,
        service: Administered,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._service = service
        self._status = status

    def run(self, line: bytes) -> Reply | Deferred[Reply] | ImportSession:
        try:
            request = json.loads(line)
            command = request["cmd"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return _error("expected a JSON object with a cmd")
        handler = (
            getattr(self, f"_cmd_{command}", None) if isinstance(command, str) else None
        )
        if handler is None:
            return _error(f"unknown command {quote(command)}")
        self.log.info("admin command {command}", command=command)
        result: Reply | Deferred[Reply] | ImportSession = handler(request)
        return result

    def _domain(self, request: dict[str, Any]) -> str | None:
        raw = request.get("domain")
        hop = classify_key(raw.encode()) if isinstance(raw, str) else None
        return hop.domain if hop is not None and hop.kind is KeyKind.DOMAIN else None

    def _cmd_list(self, request: dict[str, Any]) -> Iterator[bytes]:
        """One JSON line, made a row at a time as it is written."""
        yield b'{"ok": true, "entries": ['
        comma = b""
        for domain in sorted(self._service.domains()):
            entry = self._service.peek(domain)
            if entry is not None:
                row = describe_entry(entry)
                del row["policy"]
                yield comma + json.dumps(row).encode()
                comma = b", "
        yield b"]}\n"

    def _cmd_status(self, request: dict[str, Any]) -> Reply:
        """The daemon's figures (:meth:`~postfix_mtasts.stats.DaemonStats.status`)."""
        if self._status is None:
            return _error("status needs the running daemon")
        return _line({"ok": True, "status": self._status()})

    def _cmd_show(self, request: dict[str, Any]) -> Reply:
        domain = self._domain(request)
        if domain is None:
            return _error(f"not a domain: {quote(request.get('domain'))}")
        entry = self._service.peek(domain)
        if entry is None:
            return _error(f"{domain} is not cached")
        return _line({"ok": True, "entry": describe_entry(entry)})

    def _cmd_purge(self, request: dict[str, Any]) -> Reply:
        domain = self._domain(request)
        if domain is None:
            return _error(f"not a domain: {quote(request.get('domain'))}")
        return _line({"ok": True, "purged": self._service.purge(domain)})

    def _cmd_refresh(self, request: dict[str, Any]) -> Reply | Deferred[Reply]:
        domain = self._domain(request)
        if domain is None:
            return _error(f"not a domain: {quote(request.get('domain'))}")
        started = self._service.refresh_in_background(domain, force_fetch=True)
        if started is None:
            return _error(f"{domain} cannot be refreshed now (a refresh is running?)")

        def done(_: object) -> Reply:
            entry = self._service.peek(domain)
            if entry is None:
                return _error(f"{domain}: no policy (see the log)")
            return _line({"ok": True, "entry": describe_entry(entry)})

        return started.addBoth(done)

    def _cmd_export(self, request: dict[str, Any]) -> Iterator[bytes]:
        for domain in self._service.domains():
            entry = self._service.peek(domain)
            if entry is not None:
                yield entry.to_bytes() + b"\n"

    def _cmd_import(self, request: dict[str, Any]) -> Reply | ImportSession:
        if "entries" in request:
            return _error("import sends its entries one per line, after this line")
        return ImportSession(self)

    def import_line(self, line: bytes) -> str | None:
        """Import one entry as ``export`` wrote it (a JSON line), checked as
        strictly as a fetch and not from the future; the reason it is
        refused, or None."""
        entry = CacheEntry.decode(line)
        if isinstance(entry, StoredInvalid):
            return entry.reason
        return self._service.import_entry(entry)


class ImportSession:
    """An ``import`` under way: each entry line is applied as it arrives;
    ``finish`` gives the answer with the counts."""

    def __init__(self, commands: AdminCommands) -> None:
        self._commands = commands
        self.imported = self.rejected = 0
        self._first_refused: list[tuple[str, str]] = []

    def add(self, line: bytes) -> None:
        why = self._commands.import_line(line)
        if why is None:
            self.imported += 1
            return
        self.rejected += 1
        if len(self._first_refused) < SHOWN:
            self._first_refused.append((line[:100].decode(errors="replace"), why))

    def finish(self) -> Reply:
        # One line for the whole import, however many entries it refused.
        log_refused(
            AdminCommands.log, "import", self._first_refused, count=self.rejected
        )
        AdminCommands.log.info(
            "cache import done imported={imported} rejected={rejected}",
            imported=self.imported,
            rejected=self.rejected,
        )
        return _line({"ok": True, "imported": self.imported, "rejected": self.rejected})
