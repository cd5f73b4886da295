# -*- test-case-name: tests.unit.test_journal -*-
"""A log observer that writes one line per event for journald.

Text lines carry no timestamp (journald adds one) and start with a ``<N>``
syslog priority, which journald turns into PRIORITY (SyslogLevelPrefix=yes is
its default).  A failure's traceback follows on extra lines, each with the
same prefix.  When the stream is systemd's journal stream, each event goes
to journald's native socket instead (:mod:`postfix_mtasts.journal_native`):
one entry per event, its traceback inside, never an entry per line; if
journald does not take it, the event is one stream line with the traceback's
newlines escaped.  The JSON form writes one object per line for log
ingesters, with the event's time.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, TextIO, cast

from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    globalLogBeginner,
)
from twisted.python.failure import Failure

from postfix_mtasts.journal_native import (
    JOURNAL_SOCKET,
    NativeJournal,
    stream_is_journal,
)

__all__ = [
    "IDENTIFIER",
    "PRIORITY",
    "ObserverSwitch",
    "make_observer",
    "report_crash",
    "start_logging",
]

#: SYSLOG_IDENTIFIER of native entries, as the unit's SyslogIdentifier=.
IDENTIFIER = "postfix-mtasts"

#: syslog priority of each Twisted level (sd-daemon(3) ``<N>`` prefixes).
PRIORITY = {
    LogLevel.debug: 7,
    LogLevel.info: 6,
    LogLevel.warn: 4,
    LogLevel.error: 3,
    LogLevel.critical: 2,
}

_ORDER = list(PRIORITY)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def make_observer(
    stream: TextIO,
    *,
    level: LogLevel | str,
    fmt: Literal["text", "json"],
    environ: Mapping[str, str] = os.environ,
    journal_socket: str = JOURNAL_SOCKET,
) -> ILogObserver:
    """An observer writing events at ``level`` or above to ``stream``.

    ``level`` is a LogLevel or its name (``config.log.level``: "debug",
    "info", "warn", "error").  Events without a level count as info.  The
    stream is flushed after each event, so lines reach journald as they happen.
    Text events go to ``journal_socket`` when ``environ``'s JOURNAL_STREAM
    says ``stream`` is the journal.
    """
    least: LogLevel = (
        LogLevel.levelWithName(level)  # InvalidLogLevelError if unknown
        if isinstance(level, str)
        else level
    )
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    native = None
    if fmt == "text" and stream_is_journal(stream, environ):
        native = NativeJournal(journal_socket)
    return cast(ILogObserver, _JournalObserver(stream, least, fmt == "json", native))


class ObserverSwitch:
    """Provides ILogObserver: hands each event to ``target``, which a
    configuration reload replaces (a new level or format)."""

    def __init__(self, target: ILogObserver) -> None:
        self.target = target

    def __call__(self, event: LogEvent) -> None:
        self.target(event)


def start_logging(observer: ILogObserver) -> None:
    """Send all Twisted log events to ``observer`` (stdio stays as it is)."""
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


class _JournalObserver:
    """Provides ILogObserver: Twisted only calls it (no zope declaration,
    which would need zope.interface type stubs)."""

    def __init__(
        self,
        stream: TextIO,
        level: LogLevel,
        json_lines: bool,
        native: NativeJournal | None = None,
    ) -> None:
        self._stream = stream
        self._least = _ORDER.index(level)
        self._format = _json_line if json_lines else _text_lines
        self._native = native
        self._lock = threading.Lock()  # observers may be called from threads

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level", LogLevel.info)
        if level not in PRIORITY or _ORDER.index(level) < self._least:
            return
        if _is_twisted_chatter(event, level) and self._least > 0:
            return
        if self._native is not None:
            self._to_journal(self._native, event, level)
            return
        text = self._format(event, level)
        if not text:
            return
        with self._lock:
            self._stream.write(text)
            self._stream.flush()

    def _to_journal(
        self, native: NativeJournal, event: LogEvent, level: LogLevel
    ) -> None:
        """One native entry; one escaped stream line if journald refuses it."""
        message, failure = _parts(event)
        if failure is not None:
            message = "\n".join([message, *_traceback(failure, escape=False)])
        if not message:
            return
        fields = [
            ("MESSAGE", message),
            ("PRIORITY", str(PRIORITY[level])),
            ("SYSLOG_IDENTIFIER", IDENTIFIER),
        ]
        with self._lock:
            if native.send(fields):
                return
            self._stream.write(f"<{PRIORITY[level]}>{_escape(message)}\n")
            self._stream.flush()


def report_crash(
    stream: TextIO,
    failure: Failure,
    *,
    environ: Mapping[str, str] = os.environ,
    journal_socket: str = JOURNAL_SOCKET,
) -> None:
    """Report an error that stops the program, with its traceback, on
    ``stream`` as one critical event (one journal entry)."""
    observer = make_observer(
        stream,
        level=LogLevel.critical,
        fmt="text",
        environ=environ,
        journal_socket=journal_socket,
    )
    observer(
        {
            "log_level": LogLevel.critical,
            "log_format": "postfix-mtasts stopped by an unexpected error",
            "log_failure": failure,
            "log_namespace": "postfix_mtasts",
        }
    )


def _is_twisted_chatter(event: LogEvent, level: LogLevel) -> bool:
    """Twisted's own info lines ("Starting factory", "Port closed") say
    nothing an admin needs; they show only at level debug."""
    if level not in (LogLevel.debug, LogLevel.info):
        return False
    namespace = str(event.get("log_namespace", ""))
    return namespace == "log_legacy" or namespace.startswith("twisted.")


def _parts(event: LogEvent) -> tuple[str, object | None]:
    """The event's message and failure.  A ``twisted.python.log.err`` event
    (Twisted's ``react`` and other old callers) carries its traceback in its
    text: its reason and its failure are taken apart instead."""
    failure = event.get("log_failure")
    legacy = event.get("failure")
    if failure is None and event.get("isError") and isinstance(legacy, Failure):
        return str(event.get("why") or "Unhandled Error"), legacy
    return formatEvent(event), failure


def _text_lines(event: LogEvent, level: LogLevel) -> str:
    prefix = f"<{PRIORITY[level]}>"
    raw, failure = _parts(event)
    message = _escape(raw)
    if not message and failure is None:
        return ""
    lines = [prefix + message]
    if failure is not None:
        lines.extend(f"{prefix}    {line}" for line in _traceback(failure))
    return "\n".join(lines) + "\n"


def _json_line(event: LogEvent, level: LogLevel) -> str:
    record: dict[str, object] = {
        "time": _iso_time(event.get("log_time")),
        "priority": PRIORITY[level],
        "level": level.name,
        "namespace": event.get("log_namespace", ""),
    }
    record["message"], failure = _parts(event)
    for key in sorted(event):
        if not key.startswith("log_") and key not in record:
            record[key] = _json_safe(event[key])
    if failure is not None and "traceback" not in record:
        record["traceback"] = "\n".join(_traceback(failure))
    return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"


def _iso_time(when: object) -> str | None:
    """The event's time (Twisted's ``log_time``, POSIX seconds) as ISO 8601
    in UTC to the millisecond: ``2026-12-03T07:11:11.123Z``."""
    if not isinstance(when, int | float) or not math.isfinite(when):
        return None
    try:
        moment = datetime.fromtimestamp(when, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _escape(text: str) -> str:
    """Keep one event on one line: newlines and other controls become
    backslash escapes (tab stays)."""

    def escape(match: re.Match[str]) -> str:
        ch = match.group()
        return {"\n": "\\n", "\r": "\\r"}.get(ch, f"\\x{ord(ch):02x}")

    return _CONTROL.sub(escape, text)


def _traceback(failure: object, *, escape: bool = True) -> list[str]:
    """The traceback's lines; ``escape``: control characters escaped."""
    clean = _escape if escape else str
    if not isinstance(failure, Failure):
        return [clean(repr(failure))]
    try:
        text = failure.getTraceback()
    except Exception as e:  # a broken failure must not break logging
        text = f"(unable to format traceback: {e!r})"
    return [clean(line.rstrip()) for line in text.rstrip("\n").split("\n")]


def _json_safe(value: object) -> object:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return repr(value)
