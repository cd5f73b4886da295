# -*- test-case-name: tests.unit.test_control -*-
"""The admin commands behind ``postfix-mtasts cache ...``, run by the
daemon for its control socket (:mod:`postfix_mtasts.controlsocket`) or by
the CLI on a store file.

One JSON request line; the answer is JSON lines, made lazily (a step per
entry) so a long one is made and written in slices between lookups
(:mod:`postfix_mtasts.slicing`).  Commands: ``list`` (in cache order; the
CLI sorts), ``show``, ``purge``, ``refresh``, ``query`` (what Postfix hears
for a key on a map, and the cached entry: :mod:`postfix_mtasts.queryreport`),
``status`` (the daemon's figures), ``export`` (one stored entry per line,
the store's own format) and ``import`` (:class:`ImportSession`: after the
request line, one entry per line as export wrote it, then an empty line;
entries are checked and applied in slices, and one older than the cached
entry is kept out; the
answer counts them).  No line is over ``MAX_LINE_BYTES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeGuard

from twisted.internet.defer import Deferred
from twisted.internet.task import Cooperator
from twisted.logger import Logger

from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.dane import FactsRecord
from postfix_mtasts.core.entry import CacheEntry, StoredInvalid
from postfix_mtasts.core.imported import KeptNewer
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.socketmap import MAX_QUERY_BYTES
from postfix_mtasts.core.stored import MAX_STORED_BYTES
from postfix_mtasts.core.text import quote, utc_timestamp
from postfix_mtasts.importsession import ImportSession, Reply
from postfix_mtasts.queryreport import describe

__all__ = [
    "MAX_LINE_BYTES",
    "AdminCommands",
    "Administered",
    "ImportSession",
    "Queried",
    "Reply",
    "describe_entry",
]

#: A request, or one imported entry: no larger than a stored entry may be.
MAX_LINE_BYTES = MAX_STORED_BYTES


class Administered(Protocol):
    def domains(self) -> list[str]: ...

    def peek(self, domain: str) -> CacheEntry | None: ...

    def purge(self, domain: str) -> bool: ...

    def import_entry(self, entry: CacheEntry) -> str | KeptNewer | None:
        """Take a checked entry; why it is refused (from the future), the
        newer cached entry kept, or None."""
        ...

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False
    ) -> Deferred[CacheEntry | None] | None: ...


class Queried(Administered, Protocol):
    """A running daemon: it also answers as Postfix hears it."""

    def query(self, map_name: str, key: bytes) -> Answer | Deferred[Answer]: ...

    def map_settings(self, map_name: str) -> MapConfig | None: ...

    def facts(self, domain: str) -> FactsRecord | None: ...

    def now(self) -> float: ...


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
        "tolerated": list(entry.tolerated),
    }


def _line(obj: dict[str, Any]) -> Reply:
    return [json.dumps(obj).encode() + b"\n"]


def _error(text: str) -> Reply:
    return _line({"ok": False, "error": text})


class AdminCommands:
    """Runs one admin request against a cache (the daemon's, or a store
    file read directly); the answer is JSON lines.  With a ``cooperator``
    an import is applied in its slices; without, as each line arrives."""

    log = Logger()

    def __init__(
        self,
        service: Administered,
        cooperator: Cooperator | None = None,
        settle: Callable[[], None] | None = None,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._service = service
        self.cooperator = cooperator
        self._settle = settle
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
        """One JSON line, made a row at a time as it is written, in cache
        order (sorting 100,000 names would hold the reactor: the CLI sorts)."""
        yield b'{"ok": true, "entries": ['
        comma = b""
        for domain in self._service.domains():
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

    def _cmd_query(self, request: dict[str, Any]) -> Reply | Deferred[Reply]:
        """What Postfix hears for ``key`` on ``map`` (default "postfix"),
        through the front door as its lookups go, and the cached entry."""
        service = self._service
        key, map_name = request.get("key"), request.get("map", "postfix")
        if not isinstance(key, str) or not isinstance(map_name, str):
            return _error("query needs a key and a map name (strings)")
        raw = key.encode("utf-8", "surrogateescape")
        if len(raw) > MAX_QUERY_BYTES:
            return _error(f"key over {MAX_QUERY_BYTES} bytes")
        if not _queried(service):
            return _error("query needs the running daemon")
        result = service.query(map_name, raw)

        def report(answer: Answer) -> Reply:
            hop = classify_key(raw)
            domain = hop.domain if hop.kind is KeyKind.DOMAIN else ""
            settings = service.map_settings(map_name)
            dane = None
            if settings is not None:
                dane = (settings.dane_on, "as the running daemon resolved it")
            described = describe(
                key,
                hop.domain,
                answer,
                service.peek(domain) if domain else None,
                service.now(),
                service.facts(domain) if domain else None,
                dane=dane,
                source="cache",
            )
            return _line({"ok": True, "report": described})

        if isinstance(result, Deferred):
            return result.addCallback(report)
        return report(result)

    def _cmd_export(self, request: dict[str, Any]) -> Iterator[bytes]:
        for domain in self._service.domains():
            entry = self._service.peek(domain)
            if entry is not None:
                yield entry.to_bytes() + b"\n"

    def _cmd_import(self, request: dict[str, Any]) -> Reply | ImportSession:
        if "entries" in request:
            return _error("import sends its entries one per line, after this line")
        return ImportSession(self.import_line, self.cooperator, self._settle)

    def import_line(self, line: bytes) -> str | KeptNewer | None:
        """Import one entry as ``export`` wrote it (a JSON line), checked as
        strictly as a fetch, not from the future and not older than the
        cached one; the reason it is refused, the newer entry kept, or
        None."""
        entry = CacheEntry.decode(line)
        if isinstance(entry, StoredInvalid):
            return entry.reason
        return self._service.import_entry(entry)


def _queried(service: Administered) -> TypeGuard[Queried]:
    return all(
        callable(getattr(service, name, None))
        for name in ("query", "map_settings", "facts", "now")
    )
