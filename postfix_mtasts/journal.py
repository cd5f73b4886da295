# -*- test-case-name: tests.unit.test_journal -*-
"""A log observer that writes one line per event for journald.

Text lines carry no timestamp (journald adds one) and start with a ``<N>``
syslog priority, which journald turns into PRIORITY (SyslogLevelPrefix=yes is
its default).  A failure's traceback follows on extra lines, each with the
same prefix.  The JSON form writes one object per line for log ingesters.
"""

from __future__ import annotations

import json
import math
import re
import threading
from typing import Literal, TextIO, cast

from twisted.logger import (
    ILogObserver,
    LogEvent,
    LogLevel,
    formatEvent,
    globalLogBeginner,
)
from twisted.python.failure import Failure

__all__ = ["PRIORITY", "ObserverSwitch", "make_observer", "start_logging"]

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
    stream: TextIO, *, level: LogLevel | str, fmt: Literal["text", "json"]
) -> ILogObserver:
    """An observer writing events at ``level`` or above to ``stream``.

    ``level`` is a LogLevel or its name (``config.log.level``: "debug",
    "info", "warn", "error").  Events without a level count as info.  The
    stream is flushed after each event, so lines reach journald as they happen.
    """
    least: LogLevel = (
        LogLevel.levelWithName(level)  # InvalidLogLevelError if unknown
        if isinstance(level, str)
        else level
    )
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    return cast(ILogObserver, _JournalObserver(stream, least, fmt == "json"))


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

    def __init__(self, stream: TextIO, level: LogLevel, json_lines: bool) -> None:
        self._stream = stream
        self._least = _ORDER.index(level)
        self._format = _json_line if json_lines else _text_lines
        self._lock = threading.Lock()  # observers may be called from threads

    def __call__(self, event: LogEvent) -> None:
        level = event.get("log_level", LogLevel.info)
        if level not in PRIORITY or _ORDER.index(level) < self._least:
            return
        if _is_twisted_chatter(event, level) and self._least > 0:
            return
        text = self._format(event, level)
        if not text:
            return
        with self._lock:
            self._stream.write(text)
            self._stream.flush()


def _is_twisted_chatter(event: LogEvent, level: LogLevel) -> bool:
    """Twisted's own info lines ("Starting factory", "Port closed") say
    nothing an admin needs; they show only at level debug."""
    if level not in (LogLevel.debug, LogLevel.info):
        return False
    namespace = str(event.get("log_namespace", ""))
    return namespace == "log_legacy" or namespace.startswith("twisted.")


def _text_lines(event: LogEvent, level: LogLevel) -> str:
    prefix = f"<{PRIORITY[level]}>"
    message = _escape(formatEvent(event))
    failure = event.get("log_failure")
    if not message and failure is None:
        return ""
    lines = [prefix + message]
    if failure is not None:
        lines.extend(f"{prefix}    {line}" for line in _traceback(failure))
    return "\n".join(lines) + "\n"


def _json_line(event: LogEvent, level: LogLevel) -> str:
    record: dict[str, object] = {
        "priority": PRIORITY[level],
        "level": level.name,
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    for key in sorted(event):
        if not key.startswith("log_") and key not in record:
            record[key] = _json_safe(event[key])
    failure = event.get("log_failure")
    if failure is not None and "traceback" not in record:
        record["traceback"] = "\n".join(_traceback(failure))
    return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"


def _escape(text: str) -> str:
    """Keep one event on one line: newlines and other controls become
    backslash escapes (tab stays)."""

    def escape(match: re.Match[str]) -> str:
        ch = match.group()
        return {"\n": "\\n", "\r": "\\r"}.get(ch, f"\\x{ord(ch):02x}")

    return _CONTROL.sub(escape, text)


def _traceback(failure: object) -> list[str]:
    if not isinstance(failure, Failure):
        return [_escape(repr(failure))]
    try:
        text = failure.getTraceback()
    except Exception as e:  # a broken failure must not break logging
        text = f"(unable to format traceback: {e!r})"
    return [_escape(line.rstrip()) for line in text.rstrip("\n").split("\n")]


def _json_safe(value: object) -> object:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return repr(value)
