# -*- test-case-name: tests.unit.test_text -*-
"""How values from outside and instants appear in messages.

Pure.  :func:`quote` is the one way to show peer input (DNS answers, HTTP
headers, policy lines, Postfix keys, SMTP replies) in a reason, a note or a
log field: its repr, so that control characters and odd bytes stay visible
and one event stays on one line, cut at :data:`QUOTE_LIMIT` characters
(style section 4).  :func:`utc_timestamp` is the one way to show a POSIX
time: RFC 3339 in UTC with a ``Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["QUOTE_LIMIT", "cut", "quote", "utc_timestamp"]

#: The most characters a quoted value takes in a message, "..." included.
QUOTE_LIMIT = 200
_MORE = "..."


def cut(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and
    ``...``, ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(_MORE), 0)] + _MORE


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """Peer input (``str``, ``bytes``, None, or a list of them) for a
    message: its repr, cut at ``limit`` characters."""
    return cut(repr(value), limit)


def utc_timestamp(t: float) -> str:
    """A POSIX time as RFC 3339 in UTC to the whole second:
    ``2026-11-29T12:00:00Z`` (the fraction is dropped, not rounded)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
