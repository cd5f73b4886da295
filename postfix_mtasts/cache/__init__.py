# -*- test-case-name: tests.unit.test_cache -*-
"""Cached policies: the entry value and the store interface (spec E13)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Protocol

from attrs import frozen

from postfix_mtasts.policy import Mode, Policy, parse_policy

__all__ = ["STORE_GRACE_S", "CacheEntry", "PolicyCache"]

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
            lines = raw["lines"]
            if not isinstance(lines, list) or not all(
                isinstance(x, str) for x in lines
            ):
                return None
            policy = parse_policy("\n".join(lines).encode())
            if not isinstance(policy, Policy):
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


class PolicyCache(Protocol):
    """A store of policies keyed by lower-case A-label domain."""

    def get(self, domain: str) -> CacheEntry | None: ...

    def put(self, entry: CacheEntry) -> None: ...

    def delete(self, domain: str) -> None: ...

    def scan(self) -> Iterator[CacheEntry]: ...
