# -*- test-case-name: tests.unit.test_control -*-
"""The admin commands behind ``postfix-mtasts cache ...``, and the local
socket that carries them to the running daemon.

One JSON request line per connection; the answer is JSON lines, then the
connection closes.  The unix socket's file permissions are the access
control.  Commands: ``list``, ``show``, ``purge``, ``refresh``, ``export``
(one stored entry per line, the store's own format) and ``import``.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from postfix_mtasts.cache.refused import log_refused
from postfix_mtasts.core.entry import CacheEntry, StoredInvalid
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.text import quote, utc_timestamp

__all__ = ["AdminCommands", "Administered", "ControlProtocol", "describe_entry"]

MAX_REQUEST_BYTES = 64 * 1024 * 1024  # an import of ~100,000 entries

Reply = list[bytes]


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

    def __init__(self, service: Administered) -> None:
        self._service = service

    def run(self, line: bytes) -> Reply | Deferred[Reply]:
        try:
            request = json.loads(line)
            command = request["cmd"]
        except (ValueError, KeyError, TypeError):
            return _error("expected a JSON object with a cmd")
        handler = (
            getattr(self, f"_cmd_{command}", None) if isinstance(command, str) else None
        )
        if handler is None:
            return _error(f"unknown command {quote(command)}")
        self.log.info("admin command {command}", command=command)
        result: Reply | Deferred[Reply] = handler(request)
        return result

    def _domain(self, request: dict[str, Any]) -> str | None:
        raw = request.get("domain")
        hop = classify_key(raw.encode()) if isinstance(raw, str) else None
        return hop.domain if hop is not None and hop.kind is KeyKind.DOMAIN else None

    def _cmd_list(self, request: dict[str, Any]) -> Reply:
        rows = []
        for domain in sorted(self._service.domains()):
            entry = self._service.peek(domain)
            if entry is not None:
                row = describe_entry(entry)
                del row["policy"]
                rows.append(row)
        return _line({"ok": True, "entries": rows})

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

    def _cmd_export(self, request: dict[str, Any]) -> Reply:
        entries = [self._service.peek(d) for d in self._service.domains()]
        return [e.to_bytes() + b"\n" for e in entries if e is not None]

    def _cmd_import(self, request: dict[str, Any]) -> Reply:
        raw = request.get("entries")
        if not isinstance(raw, list):
            return _error("import needs a list of entries")
        imported = sum(self.import_line(json.dumps(item).encode()) for item in raw)
        return _line(
            {"ok": True, "imported": imported, "rejected": len(raw) - imported}
        )

    def import_line(self, line: bytes) -> bool:
        """Import one entry as ``export`` wrote it (a JSON line), checked as
        strictly as a fetch and not from the future; False (logged) if it is
        refused."""
        entry = CacheEntry.decode(line)
        why = (
            entry.reason
            if isinstance(entry, StoredInvalid)
            else self._service.import_entry(entry)
        )
        if why is not None:
            log_refused(
                self.log, "import", [(line[:100].decode(errors="replace"), why)]
            )
        return why is None


class ControlProtocol(LineOnlyReceiver):
    """One request line in, the answer out, then the connection closes."""

    log = Logger()
    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST_BYTES

    def __init__(self, service: Administered) -> None:
        self._commands = AdminCommands(service)
        self._answered = False

    def lineReceived(self, line: bytes) -> None:
        if self._answered:
            return
        self._answered = True
        try:
            result = self._commands.run(line)
        except Exception:
            self.log.failure("admin command failed")
            result = _error("internal error, see the daemon's log")
        if isinstance(result, Deferred):
            result.addCallback(self._reply)
        else:
            self._reply(result)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._reply(_error("request too long"))

    def _reply(self, lines: Reply) -> None:
        if self.transport is not None:
            self.transport.write(b"".join(lines))
            self.transport.loseConnection()
