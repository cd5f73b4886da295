# -*- test-case-name: tests.unit.test_cache -*-
"""The cache entry, its stored form, and how long a store keeps it (spec E13).

Stored bytes are untrusted input: :meth:`CacheEntry.decode` checks them as
strictly as a fetch (:mod:`postfix_mtasts.core.stored`) and returns the reason
for a refusal rather than raise."""

from __future__ import annotations

import json

from attrs import evolve, frozen

from postfix_mtasts.core.policy import Mode, Note, Policy, Tolerance
from postfix_mtasts.core.stored import (
    FORMAT_VERSION,
    MAX_TOLERATED_TEXT,
    StoredInvalid,
    ahead_of,
    check_times,
    read_fields,
)
from postfix_mtasts.core.text import cut
from postfix_mtasts.core.value import Value

__all__ = ["STORE_GRACE_S", "CacheEntry", "StoredInvalid", "summarise_tolerated"]

# A stored entry is kept this long past its expiry: an expired policy no
# longer applies (E9), but its id still tells a returning host what changed.
STORE_GRACE_S = 86400.0


@frozen(repr=False)
class CacheEntry(Value):
    """A policy as fetched for a domain (spec E1, E13).

    ``fetched_at`` is the last successful fetch, ``expires_at`` is
    ``fetched_at + max_age`` (E1), and ``checked_at`` is when the TXT id was
    last seen unchanged (D11).  ``tolerated`` says, one line per kind, where
    the fetched body departed from the RFC 8461 grammar and was read anyway
    (:func:`summarise_tolerated`); it informs, it decides nothing.
    """

    domain: str
    policy_id: str
    policy: Policy
    fetched_at: float
    expires_at: float
    checked_at: float
    tolerated: tuple[str, ...] = ()

    @classmethod
    def fetched(
        cls, domain: str, policy_id: str, policy: Policy, now: float
    ) -> CacheEntry:
        # The notes are summarised once; the entry keeps the policy as a store
        # gives it back (a tolerant body may carry a hundred notes).
        tolerated = summarise_tolerated(policy.tolerated)
        kept = evolve(policy, notes=()) if policy.notes else policy
        return cls(domain, policy_id, kept, now, now + policy.max_age, now, tolerated)

    def live_in_store(self, now: float, grace_s: float = STORE_GRACE_S) -> bool:
        """Still kept by a store: past its expiry by less than ``grace_s``."""
        return now < self.expires_at + grace_s

    def is_valid(self, now: float) -> bool:
        """Unexpired: the policy still applies (E9: past max_age it does not)."""
        return now < self.expires_at

    @property
    def mode(self) -> Mode:
        return self.policy.mode

    def fault(self) -> str | None:
        """Why this entry would be refused when read back (its times), or
        None; a writer drops such an entry rather than store it."""
        return check_times(
            self.fetched_at, self.expires_at, self.checked_at, self.policy.max_age
        )

    def ahead_of(self, now: float) -> str | None:
        """Why this entry is from the future at ``now``, or None."""
        return ahead_of(self.fetched_at, self.checked_at, now)

    def to_bytes(self) -> bytes:
        """The stored form; ValueError for a time that is not finite."""
        return json.dumps(
            {
                "v": FORMAT_VERSION,
                "domain": self.domain,
                "id": self.policy_id,
                "fetched_at": self.fetched_at,
                "expires_at": self.expires_at,
                "checked_at": self.checked_at,
                "mode": self.policy.mode.value,
                "max_age": self.policy.max_age,
                "mx": [pattern.text for pattern in self.policy.mx],
                "lines": list(self.policy.lines),
                **({"tolerated": list(self.tolerated)} if self.tolerated else {}),
            },
            separators=(",", ":"),
            allow_nan=False,
        ).encode()

    @classmethod
    def decode(
        cls, data: bytes, now: float | None = None
    ) -> CacheEntry | StoredInvalid:
        """A stored entry checked as strictly as a fetch, and when ``now`` is
        given not from the future; the reason otherwise, never an exception."""
        fields = read_fields(data)
        if isinstance(fields, StoredInvalid):
            return fields
        entry = cls(*fields)
        if now is not None and (why := entry.ahead_of(now)):
            return StoredInvalid(why)
        return entry

    @classmethod
    def from_bytes(cls, data: bytes) -> CacheEntry | None:
        """Like :meth:`decode`, None for anything refused."""
        entry = cls.decode(data)
        return entry if isinstance(entry, CacheEntry) else None

    @classmethod
    def from_item(cls, item: object) -> CacheEntry | StoredInvalid:
        """An entry given as parsed JSON (a ``cache import`` line)."""
        try:
            data = json.dumps(item, allow_nan=False).encode()
        except (ValueError, TypeError, RecursionError):
            return StoredInvalid("not plain JSON (Infinity, NaN or nesting)")
        return cls.decode(data)


def summarise_tolerated(notes: tuple[Note, ...]) -> tuple[str, ...]:
    """One line per tolerance kind, in the order first met: the kind, its
    rule, the lines (up to 8) and the first note's words, cut to
    :data:`MAX_TOLERATED_TEXT` characters."""
    by_kind: dict[Tolerance, list[Note]] = {}
    for note in notes:
        if note.tolerance is not None:
            by_kind.setdefault(note.tolerance, []).append(note)
    summary = []
    for kind, kind_notes in by_kind.items():
        numbers = [str(note.line) for note in kind_notes if note.line][:9]
        where = f" line(s) {', '.join(numbers[:8])}" if numbers else ""
        more = ", ..." if len(numbers) > 8 else ""
        first = kind_notes[0]
        words = first.text.removeprefix(f"line {first.line}: ")
        text = f"{kind.value} ({first.rule}){where}{more}: {words}"
        summary.append(cut(text, MAX_TOLERATED_TEXT))
    return tuple(summary)
