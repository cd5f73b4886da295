# -*- test-case-name: tests.unit.test_control -*-
"""The daemon's state as the control socket and the proactive refresher see
it: list, peek, purge, import, refresh, query, when a domain was last used,
and its MX facts."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from postfix_mtasts.coordinator import RefreshCoordinator
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.dane import FactsRecord
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.imported import KeptNewer, kept_newer
from postfix_mtasts.core.stored import weakening
from postfix_mtasts.domains import DomainState
from postfix_mtasts.sharing import PolicySharing

__all__ = ["QUERY_SOURCE", "Admin", "Lookup"]

#: The ``source`` of a ``query`` verb's lookup: not a Postfix connection.
QUERY_SOURCE = "control query"

Lookup = Callable[[str, bytes, Hashable | None], Answer | Deferred[Answer]]


class Admin:
    log = Logger()

    def __init__(
        self,
        domains: DomainState,
        coordinator: RefreshCoordinator,
        clock: IReactorTime,
        sharing: PolicySharing | None = None,
        *,
        lookup: Lookup | None = None,
        maps: Callable[[str], MapConfig | None] | None = None,
    ) -> None:
        self._domains = domains
        self._coordinator = coordinator
        self._clock = clock
        self._sharing = sharing
        self._lookup = lookup
        self._maps = maps

    def query(self, map_name: str, key: bytes) -> Answer | Deferred[Answer]:
        """What Postfix hears for ``key`` on ``map_name``: the front door's
        own lookup, from the cache when it can (a discovery where Postfix's
        lookup would do one)."""
        if self._lookup is None:
            return Answer.temp("this daemon answers no queries")
        return self._lookup(map_name, key, QUERY_SOURCE)

    def map_settings(self, map_name: str) -> MapConfig | None:
        return self._maps(map_name) if self._maps is not None else None

    def now(self) -> float:
        return self._clock.seconds()

    def domains(self) -> list[str]:
        return self._domains.domains()

    def policy_count(self) -> int:
        """How many policies are cached (for systemd's STATUS= line)."""
        return self._domains.sizes()["policies"]

    def peek(self, domain: str) -> CacheEntry | None:
        """The cached entry, without counting as a use."""
        return self._domains.peek(domain)

    def waiting(self, domain: str) -> bool:
        """True while a recent failure holds back network work for ``domain``."""
        return self._domains.backing_off(domain, self._clock.seconds())

    def last_used(self, domain: str) -> float | None:
        return self._domains.last_used(domain)

    def facts(self, domain: str) -> FactsRecord | None:
        """The MX facts (DANE precedence) of a cached domain, if gathered."""
        return self._domains.facts(domain)

    def facts_due_at(self, domain: str) -> float | None:
        """When ``domain``'s MX facts are due again; None if never gathered."""
        record = self._domains.facts(domain)
        return record.due_at if record is not None else None

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False, facts_only: bool = False
    ) -> Deferred[CacheEntry | None] | None:
        """Refresh ``domain`` now; None when a refresh of it is already running."""
        return self._coordinator.refresh_in_background(
            domain, force_fetch=force_fetch, facts_only=facts_only
        )

    def preload(self, entries: Iterable[CacheEntry]) -> int:
        """Fill the memory cache from a store at start-up (E1); returns the
        number of entries still valid."""
        return self._domains.preload(entries, self._clock.seconds())

    def purge(self, domain: str) -> bool:
        """Forget ``domain`` here and in the stores; True if it was cached."""
        known = self._domains.purge(domain)
        if self._sharing is not None:
            self._sharing.delete(domain)
        self.log.info("policy purged domain={domain}", domain=domain)
        return known

    def import_entry(self, entry: CacheEntry) -> str | KeptNewer | None:
        """Take an entry from ``cache import``, checked as stored data, into
        the cache and the stores; the reason it is refused (from the future),
        :class:`KeptNewer` when the cached entry is newer (it stays), or
        None.  A warning when it protects less than the valid one it
        replaces."""
        now = self._clock.seconds()
        if why := entry.ahead_of(now):
            return why
        known = self._domains.peek(entry.domain)
        if kept := kept_newer(known, entry):
            return kept
        self._domains.put(entry)
        change = None
        if known is not None and known.is_valid(now):
            change = weakening(known.policy, entry.policy)
        if known is not None and change is not None:
            self.log.warn(
                "policy imported domain={domain} id={policy_id} weakens"
                " id={old_id}: {change}",
                domain=entry.domain,
                policy_id=entry.policy_id,
                old_id=known.policy_id,
                change=change,
            )
        if self._sharing is not None:
            self._sharing.write(entry)
        return None
