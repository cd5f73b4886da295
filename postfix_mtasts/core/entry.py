# -*- test-case-name: tests.unit.test_cache -*-
"""The cache entry, its stored form, and how long a store keeps it (spec E13).

Stored bytes are untrusted input: :meth:`CacheEntry.from_bytes` validates
them as strictly as a fetch, and returns None rather than raise."""

from __future__ import annotations

import json
import re

from attrs import frozen

from postfix_mtasts.core.policy import (
    MAX_AGE_LIMIT_S,
    Mode,
    MxPattern,
    Policy,
    parse_policy,
)

# A stored pattern, as parse_mx_pattern wrote it: LDH labels, an optional
# leading "*.", a last label with a letter (never an IP, port or bracket).
_STORED_MX = re.compile(
    r"(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?=[a-z0-9-]*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z"
)

__all__ = ["STORE_GRACE_S", "CacheEntry"]

# A stored entry is kept this long past its expiry: an expired policy no
# longer applies (E9), but its id still tells a returning host what changed.
STORE_GRACE_S = 86400.0

_FORMAT_VERSION = 1


@frozen
class CacheEntry:
    """A policy as fetched for a domain (spec E1, E13).

    ``fetched_at`` is the last successful fetch, ``expires_at`` is
    ``fetched_at + max_age`` (E1), and ``checked_at`` is when the TXT id was
    last seen unchanged (D11).
    """

    domain: str
    policy_id: str
    policy: Policy
    fetched_at: float
    expires_at: float
    checked_at: float

    @classmethod
    def fetched(
        cls, domain: str, policy_id: str, policy: Policy, now: float
    ) -> CacheEntry:
        return cls(domain, policy_id, policy, now, now + policy.max_age, now)

    def live_in_store(self, now: float, grace_s: float = STORE_GRACE_S) -> bool:
        """Still kept by a store: past its expiry by less than ``grace_s``."""
        return now < self.expires_at + grace_s

    def is_valid(self, now: float) -> bool:
        """Unexpired: the policy still applies (E9: past max_age it does not)."""
        return now < self.expires_at

    @property
    def mode(self) -> Mode:
        return self.policy.mode

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "v": _FORMAT_VERSION,
                "domain": self.domain,
                "id": self.policy_id,
                "fetched_at": self.fetched_at,
                "expires_at": self.expires_at,
                "checked_at": self.checked_at,
                "mode": self.policy.mode.value,
                "max_age": self.policy.max_age,
                "mx": [pattern.text for pattern in self.policy.mx],
                "lines": list(self.policy.lines),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> CacheEntry | None:
        """Decode a stored entry; ``None`` for anything unreadable, never an
        exception (a corrupt store entry must not crash a lookup)."""
        try:
            raw = json.loads(data)
            if raw["v"] != _FORMAT_VERSION:
                return None
            policy = _stored_policy(raw)
            if policy is None:
                return None
            return cls(
                str(raw["domain"]),
                str(raw["id"]),
                policy,
                float(raw["fetched_at"]),
                float(raw["expires_at"]),
                float(raw["checked_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _stored_policy(raw: dict[str, object]) -> Policy | None:
    """The policy of a stored entry.  Its parsed fields were checked when it
    was fetched, so only their types and the mx patterns (what reaches
    Postfix) are checked again: much faster than re-parsing every policy
    when 100,000 entries load at start."""
    lines, mx = raw["lines"], raw.get("mx")
    mode, max_age = raw.get("mode"), raw.get("max_age")
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        return None
    if not (isinstance(mx, list) and isinstance(mode, str) and type(max_age) is int):
        # written before the parsed fields were stored: parse the lines
        policy = parse_policy("\n".join(lines).encode())
        return policy if isinstance(policy, Policy) else None
    patterns = []
    for text in mx:
        if not isinstance(text, str) or len(text) > 253 or not _STORED_MX.match(text):
            return None
        base = text.removeprefix("*.")
        patterns.append(MxPattern(text, base != text, base))
    if not 0 <= max_age <= MAX_AGE_LIMIT_S or (not patterns and mode != "none"):
        return None
    return Policy(Mode(mode), max_age, tuple(patterns), tuple(lines))
