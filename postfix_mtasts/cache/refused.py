# -*- test-case-name: tests.unit.test_sqlite_store,tests.unit.test_redis_values -*-
"""One warning for the stored entries a door refused (issue 9).

A refused entry is a miss, never an exception, and never silent: one entry
gives one line naming its key and the reason; a batch (a load at start, an
import) gives one line with the count and the first :data:`SHOWN`.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.logger import Logger

from postfix_mtasts.core.text import quote

__all__ = ["SHOWN", "log_refused"]

SHOWN = 5


def log_refused(
    log: Logger,
    source: str,
    refused: Sequence[tuple[str, str]],
    count: int | None = None,
) -> None:
    """Warn about ``refused``, pairs of (key, reason) read from ``source``;
    ``count`` is the whole number when only the first few were kept."""
    count = len(refused) if count is None else count
    if not refused:
        return
    if count == 1:
        ((key, reason),) = refused
        log.warn(
            "stored entry refused source={source} key={key} reason={reason}",
            source=source,
            key=quote(key),
            reason=reason,
        )
        return
    log.warn(
        "stored entries refused source={source} count={count} first={first}",
        source=source,
        count=count,
        first="; ".join(f"{quote(key)}: {why}" for key, why in refused[:SHOWN]),
    )
