# -*- test-case-name: tests.unit.test_control -*-
"""The local admin socket behind ``postfix-mtasts cache ...``.

One JSON request line per connection; the answer is JSON lines, then the
connection closes.  The unix socket's file permissions are the access
control.  Commands: ``list``, ``show``, ``purge``, ``refresh``, ``export``
(one stored entry per line, the store's own format) and ``import``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from postfix_mtasts.cache import CacheEntry
from postfix_mtasts.nexthop import KeyKind, classify_key

__all__ = ["Administered", "ControlProtocol", "describe_entry"]

MAX_REQUEST_BYTES = 64 * 1024 * 1024  # an import of ~100,000 entries


class Administered(Protocol):
    def domains(self) -> list[str]: ...

    def peek(self, domain: str) -> CacheEntry | None: ...

    def purge(self, domain: str) -> bool: ...

    def import_entry(self, entry: CacheEntry) -> None: ...

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False
    ) -> Deferred[CacheEntry | None] | None: ...


def describe_entry(entry: CacheEntry) -> dict[str, Any]:
    """An entry as plain data for ``cache list``/``show`` (stable keys)."""

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        "domain": entry.domain,
        "id": entry.policy_id,
        "mode": entry.policy.mode.value,
        "max_age": entry.policy.max_age,
        "mx": [p.text for p in entry.policy.mx],
        "fetched_at": iso(entry.fetched_at),
        "checked_at": iso(entry.checked_at),
        "expires_at": iso(entry.expires_at),
        "policy": list(entry.policy.lines),
    }


class ControlProtocol(LineOnlyReceiver):
    log = Logger()
    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST_BYTES

    def __init__(self, service: Administered) -> None:
        self._service = service
        self._answered = False

    def lineReceived(self, line: bytes) -> None:
        if self._answered:
            return
        self._answered = True
        try:
            request = json.loads(line)
            command = request["cmd"]
        except (ValueError, KeyError, TypeError):
            self._reply({"ok": False, "error": "expected a JSON object with a cmd"})
            return
        handler = (
            getattr(self, f"_cmd_{command}", None) if isinstance(command, str) else None
        )
        if handler is None:
            self._reply({"ok": False, "error": f"unknown command {command!r}"})
            return
        self.log.info("admin command {command}", command=command)
        try:
            handler(request)
        except Exception:
            self.log.failure("admin command {command} failed", command=command)
            self._reply({"ok": False, "error": "internal error, see the daemon's log"})

    def lineLengthExceeded(self, line: bytes) -> None:
        self._reply({"ok": False, "error": "request too long"})

    def _reply(self, *objects: dict[str, Any]) -> None:
        if self.transport is None:
            return
        self.transport.write(b"".join(json.dumps(o).encode() + b"\n" for o in objects))
        self.transport.loseConnection()

    def _domain(self, request: dict[str, Any]) -> str | None:
        raw = request.get("domain")
        hop = classify_key(raw.encode()) if isinstance(raw, str) else None
        if hop is None or hop.kind is not KeyKind.DOMAIN:
            self._reply({"ok": False, "error": f"not a domain: {raw!r}"})
            return None
        return hop.domain

    def _cmd_list(self, request: dict[str, Any]) -> None:
        rows = []
        for domain in sorted(self._service.domains()):
            entry = self._service.peek(domain)
            if entry is not None:
                row = describe_entry(entry)
                del row["policy"]
                rows.append(row)
        self._reply({"ok": True, "entries": rows})

    def _cmd_show(self, request: dict[str, Any]) -> None:
        domain = self._domain(request)
        if domain is None:
            return
        entry = self._service.peek(domain)
        if entry is None:
            self._reply({"ok": False, "error": f"{domain} is not cached"})
        else:
            self._reply({"ok": True, "entry": describe_entry(entry)})

    def _cmd_purge(self, request: dict[str, Any]) -> None:
        domain = self._domain(request)
        if domain is not None:
            self._reply({"ok": True, "purged": self._service.purge(domain)})

    def _cmd_refresh(self, request: dict[str, Any]) -> None:
        domain = self._domain(request)
        if domain is None:
            return
        started = self._service.refresh_in_background(domain, force_fetch=True)
        if started is None:
            self._reply({"ok": False, "error": f"{domain} is being refreshed already"})
            return

        def done(_: object) -> None:
            entry = self._service.peek(domain)
            if entry is None:
                self._reply(
                    {"ok": False, "error": f"{domain}: no policy (see the log)"}
                )
            else:
                self._reply({"ok": True, "entry": describe_entry(entry)})

        started.addBoth(done)

    def _cmd_export(self, request: dict[str, Any]) -> None:
        entries = [self._service.peek(d) for d in self._service.domains()]
        lines = [e.to_bytes() + b"\n" for e in entries if e is not None]
        if self.transport is not None:
            self.transport.write(b"".join(lines))
            self.transport.loseConnection()

    def _cmd_import(self, request: dict[str, Any]) -> None:
        raw = request.get("entries")
        if not isinstance(raw, list):
            self._reply({"ok": False, "error": "import needs a list of entries"})
            return
        imported, rejected = 0, 0
        for item in raw:
            entry = CacheEntry.from_bytes(json.dumps(item).encode())
            if (
                entry is None
                or classify_key(entry.domain.encode()).kind is not KeyKind.DOMAIN
            ):
                rejected += 1
                continue
            self._service.import_entry(entry)
            imported += 1
        self._reply({"ok": True, "imported": imported, "rejected": rejected})
