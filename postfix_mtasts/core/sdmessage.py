# -*- test-case-name: tests.unit.test_sdnotify -*-
"""The sd_notify(3) protocol's text, and what the environment asks of it.

Pure.  systemd passes ``NOTIFY_SOCKET`` (where to send), ``WATCHDOG_USEC``
and ``WATCHDOG_PID`` (how often to ping, and whom it asks); a message is a
few ``KEY=value`` lines in one datagram.  Everything read from the
environment is bounded and validated: a bad value means "not asked", never
an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "MAX_STATUS_CHARS",
    "notify_address",
    "ready",
    "reloading",
    "status",
    "status_line",
    "stopping",
    "watchdog",
    "watchdog_interval_s",
]

#: Longest STATUS= text sent (``systemctl status`` shows one line).
MAX_STATUS_CHARS = 400
#: sun_path holds 108 bytes; a path needs its terminating NUL.
_MAX_PATH_BYTES = 107
#: A watchdog longer than a day is no watchdog; a value beyond this is junk.
_MAX_WATCHDOG_USEC = 86_400_000_000
_MAX_ENV_CHARS = 32


def notify_address(value: str | None) -> str | None:
    """The socket address ``NOTIFY_SOCKET`` names, as Python's AF_UNIX
    sendto takes it: an absolute path, or an abstract name (``@name``
    becomes ``\\0name``); None when unset, too long, or of a kind this
    daemon does not speak (``vsock:``)."""
    if not value or "\0" in value or len(value.encode()) > _MAX_PATH_BYTES:
        return None
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval_s(env: Mapping[str, str], pid: int) -> float | None:
    """How often to send WATCHDOG=1: half of ``WATCHDOG_USEC`` (as
    sd_watchdog_enabled(3) advises), or None when no watchdog is asked for,
    the value is junk, or ``WATCHDOG_PID`` names another process."""
    usec = _number(env.get("WATCHDOG_USEC"))
    if usec is None or not 0 < usec <= _MAX_WATCHDOG_USEC:
        return None
    if "WATCHDOG_PID" in env and _number(env["WATCHDOG_PID"]) != pid:
        return None
    return usec / 2 / 1_000_000


def status_line(policies: int, endpoints: Sequence[str]) -> str:
    """``systemctl status``'s line: how many policies are cached and where
    the daemon listens."""
    noun = "policy" if policies == 1 else "policies"
    where = ", ".join(endpoints) if endpoints else "no listener"
    return f"{policies} {noun} cached; listening on {where}"


def ready(status_text: str | None = None) -> bytes:
    """Start-up (or a reload) is complete: every listener accepts."""
    return _message([("READY", "1"), ("STATUS", status_text)])


def reloading(monotonic_usec: int, status_text: str | None = None) -> bytes:
    """A reload begins (systemd >= 253 waits for READY=1 again; older ones
    ignore both lines); ``monotonic_usec`` is CLOCK_MONOTONIC now."""
    return _message(
        [
            ("RELOADING", "1"),
            ("MONOTONIC_USEC", str(monotonic_usec)),
            ("STATUS", status_text),
        ]
    )


def stopping() -> bytes:
    """Shutdown has begun."""
    return _message([("STOPPING", "1"), ("STATUS", "stopping")])


def watchdog() -> bytes:
    """The reactor is alive."""
    return b"WATCHDOG=1\n"


def status(text: str) -> bytes:
    """A new STATUS= line alone."""
    return _message([("STATUS", text)])


def _message(fields: Sequence[tuple[str, str | None]]) -> bytes:
    """``KEY=value`` lines; a value is one line (newlines and other control
    characters become spaces), cut at MAX_STATUS_CHARS."""
    lines = []
    for key, value in fields:
        if value is None:
            continue
        clean = "".join(" " if ord(c) < 32 or c == "\x7f" else c for c in value)
        lines.append(f"{key}={clean[:MAX_STATUS_CHARS]}\n")
    return "".join(lines).encode("utf-8", "replace")


def _number(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit():
        return None
    if len(value) > _MAX_ENV_CHARS:
        return None
    return int(value)
