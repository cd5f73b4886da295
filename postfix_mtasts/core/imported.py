# -*- test-case-name: tests.unit.test_control_import -*-
"""Which of two entries for a domain is the newer, for ``cache import``.

Pure.  A backup is older than what the daemon learnt since: importing it
must never put an older policy in place of a newer one (issue 11).  The
newer entry is the one fetched later (E1: max_age counts from the last
fetch; a policy fetched later replaces the earlier one whatever the ids,
RFC 8461 §3.3, E10); for one fetch, the one whose TXT id was re-checked
later (D11).  An entry exactly as new as the cached one is taken: it is
the same knowledge, and importing it again changes nothing.
"""

from __future__ import annotations

from attrs import frozen

from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.value import Value

__all__ = ["KeptNewer", "kept_newer"]


@frozen(repr=False)
class KeptNewer(Value):
    """The import of an entry older than the cached one: the cached one stays."""

    cached: CacheEntry
    imported: CacheEntry


def kept_newer(cached: CacheEntry | None, imported: CacheEntry) -> KeptNewer | None:
    """:class:`KeptNewer` when ``cached`` is newer than ``imported``, else
    None (``imported`` may replace it)."""
    if cached is None:
        return None
    if (cached.fetched_at, cached.checked_at) > (
        imported.fetched_at,
        imported.checked_at,
    ):
        return KeptNewer(cached, imported)
    return None
