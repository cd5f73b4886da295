# -*- test-case-name: tests.unit.test_store_contract -*-
"""The interfaces of the stores behind the memory cache."""

from __future__ import annotations

from typing import Protocol

from twisted.internet.defer import Deferred

from postfix_mtasts.core.entry import CacheEntry

__all__ = ["CacheUnavailableError", "FleetCoordinator", "PolicyStore"]


class CacheUnavailableError(Exception):
    """A store could not be reached or answered badly; never fails a lookup."""


class PolicyStore(Protocol):
    """A durable (SQLite) or shared (Redis) store behind the memory cache.

    Every method returns a Deferred; a failure is only ever
    :class:`CacheUnavailableError`.  Entries past ``expires_at + STORE_GRACE_S``
    (by the store's clock) are never returned and may be removed.
    """

    def load(self) -> Deferred[list[CacheEntry]]:
        """Every live entry, for start-up and ``cache list``/``export``."""
        ...

    def get(self, domain: str) -> Deferred[CacheEntry | None]: ...

    def put(self, entry: CacheEntry) -> Deferred[None]:
        """Store ``entry`` (replacing the domain's).  May complete later
        (write-behind); the caller never waits for it on the hot path."""
        ...

    def delete(self, domain: str) -> Deferred[None]: ...

    def close(self) -> Deferred[None]:
        """Flush pending writes and release resources."""
        ...


class FleetCoordinator(Protocol):
    """Lets one host of a fleet fetch a domain while the others wait (Redis)."""

    def claim(self, domain: str, ttl_s: float) -> Deferred[bool]:
        """True when this host should fetch ``domain`` now; False when another
        host holds the claim (it expires after ``ttl_s``)."""
        ...

    def release(self, domain: str) -> Deferred[None]: ...
