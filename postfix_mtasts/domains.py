# -*- test-case-name: tests.unit.test_domains -*-
"""What the daemon knows of each domain, and every bound on it.

A plain object: no clock, no network.  Callers pass ``now``.  It owns the
policy LRU (never evicting a pinned domain, one being refreshed), the
negative answers, the per-(domain, id) fetch back-off (B14), when Postfix
last asked for each cached domain, and each cached domain's MX facts (DANE
precedence, D13); each map is bounded by ``max_entries``, so a flood of
distinct names cannot grow the daemon.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from postfix_mtasts.cache.memory import MemoryCache
from postfix_mtasts.core.answer import PolicyFailure
from postfix_mtasts.core.dane import FactsRecord
from postfix_mtasts.core.decision import FetchBackoff, Negative, Update
from postfix_mtasts.core.entry import CacheEntry

__all__ = ["STALE_NEGATIVE_S", "USE_GRANULARITY_S", "DomainState"]

# A hot domain's LRU position and last use are refreshed at most this often:
# cheaper hits, and background refresh needs no finer clock.
USE_GRANULARITY_S = 10.0

# A negative outlives its hold-off this long, so a lookup that runs out of
# budget meanwhile still hears the last reason (a TEMP for a DNS failure);
# then it is forgotten, and a stream of unknown names does not grow memory
# up to max_entries.
STALE_NEGATIVE_S = 600.0


class DomainState:
    """Per-domain memory: policies, negatives, back-offs, last use, facts."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._pinned: dict[str, int] = {}
        self._policies = MemoryCache(max_entries, in_use=self._pinned.__contains__)
        self._negative: OrderedDict[str, Negative] = OrderedDict()
        self._backoff: OrderedDict[tuple[str, str], FetchBackoff] = OrderedDict()
        # Only for cached domains, forgotten with their policy: bounded by
        # the LRU itself.
        self._last_used: dict[str, float] = {}
        # MX facts, likewise only for cached domains and forgotten with them.
        self._facts: dict[str, FactsRecord] = {}

    def sizes(self) -> dict[str, int]:
        """How many items each map holds (for tests and the admin)."""
        return {
            "policies": len(self._policies),
            "negative": len(self._negative),
            "backoff": len(self._backoff),
            "last_used": len(self._last_used),
            "facts": len(self._facts),
            "pinned": len(self._pinned),
        }

    def modes(self) -> dict[str, int]:
        """How many cached policies there are of each mode (for metrics)."""
        return {mode.value: count for mode, count in self._policies.modes.items()}

    # -- reads ---------------------------------------------------------------

    def entry(self, domain: str) -> CacheEntry | None:
        """The cached policy entry; counts as a use in the LRU."""
        return self._policies.get(domain)

    def peek(self, domain: str) -> CacheEntry | None:
        """The cached policy entry, without counting as a use."""
        return self._policies.peek(domain)

    def negative(self, domain: str) -> Negative | None:
        return self._negative.get(domain)

    def backing_off(self, domain: str, now: float) -> bool:
        """True while a recent failure holds back network work for ``domain``."""
        negative = self._negative.get(domain)
        return negative is not None and now < negative.until

    def may_fetch(self, domain: str, policy_id: str, now: float) -> bool:
        """False while a failed fetch of this id backs off (B14)."""
        return self.held_back(domain, policy_id, now) is None

    def held_back(
        self, domain: str, policy_id: str, now: float
    ) -> PolicyFailure | None:
        """While a failed fetch of this id backs off (B14), why it failed."""
        backoff = self._backoff.get((domain, policy_id))
        if backoff is None or now >= backoff.until:
            return None
        return backoff.policy_failure

    def last_used(self, domain: str) -> float | None:
        return self._last_used.get(domain)

    def facts(self, domain: str) -> FactsRecord | None:
        """The MX facts of a cached domain, or None if never gathered."""
        return self._facts.get(domain)

    def current(self, entry: CacheEntry, facts: FactsRecord | None, now: float) -> bool:
        """Whether ``entry`` is still its domain's cached policy and ``facts``
        its MX facts; if so, Postfix asked for it (as :meth:`touch`).  One
        call for a remembered answer's check, on the hot path."""
        domain = entry.domain
        if (
            self._policies.peek(domain) is not entry
            or self._facts.get(domain) is not facts
        ):
            return False
        used = self._last_used.get(domain)
        if used is None or now - used > USE_GRANULARITY_S:
            self._policies.get(domain)
            self._last_used[domain] = now
        return True

    def domains(self) -> list[str]:
        return [entry.domain for entry in self._policies.scan()]

    # -- writes --------------------------------------------------------------

    def touch(self, domain: str, now: float) -> None:
        """Postfix asked for ``domain``: keep its policy recently used, and
        remember when (the refresher re-checks recently used domains, D11).
        Only cached domains are remembered: an unknown name leaves nothing."""
        used = self._last_used.get(domain)
        if used is not None and now - used <= USE_GRANULARITY_S:
            return
        if self._policies.get(domain) is None:
            return
        self._last_used[domain] = now

    def pin(self, domain: str) -> None:
        """Keep ``domain``'s policy from eviction until :meth:`unpin`."""
        self._pinned[domain] = self._pinned.get(domain, 0) + 1

    def unpin(self, domain: str) -> None:
        count = self._pinned.pop(domain, 0) - 1
        if count > 0:
            self._pinned[domain] = count

    def apply(self, domain: str, update: Update, now: float) -> None:
        """Make the change :func:`~postfix_mtasts.core.decision.apply_outcome`
        chose (entry stored or deleted, negative, back-off)."""
        if update.entry is not None:
            self._store(update.entry)
        elif update.delete:
            self._forget_policy(domain)
        if update.negative is None:
            self._negative.pop(domain, None)
        else:
            self.remember_failure(domain, update.negative, now)
        if update.backoff is not None:
            key = (domain, update.backoff.policy_id)
            self._backoff[key] = update.backoff
            self._backoff.move_to_end(key)
            self._prune_backoff(now)

    def set_facts(self, domain: str, record: FactsRecord) -> None:
        """Keep ``domain``'s MX facts; only while its policy is cached (so
        the LRU bounds them too)."""
        if self._policies.peek(domain) is not None:
            self._facts[domain] = record

    def resize(self, max_entries: int) -> None:
        """Bound every map by ``max_entries`` from now on (a configuration
        reload); a smaller bound drops the least recently used at once
        (never a pinned domain)."""
        self.max_entries = self._policies.max_entries = max_entries
        for evicted in self._policies.trim():
            self._last_used.pop(evicted, None)
            self._facts.pop(evicted, None)
        while len(self._negative) > max_entries:
            self._negative.popitem(last=False)
        while len(self._backoff) > max_entries:
            self._backoff.popitem(last=False)

    def remember_failure(self, domain: str, negative: Negative, now: float) -> None:
        self._negative[domain] = negative
        self._negative.move_to_end(domain)
        while len(self._negative) > self.max_entries:
            self._negative.popitem(last=False)
        self._forget_stale_negatives(now)

    def put(self, entry: CacheEntry) -> None:
        """Store a policy learnt elsewhere (a store, another host, an import)."""
        self._store(entry)
        self._negative.pop(entry.domain, None)

    def purge(self, domain: str) -> bool:
        """Forget everything about ``domain``; True if a policy was cached."""
        known = self._policies.peek(domain) is not None
        self._forget_policy(domain)
        self._negative.pop(domain, None)
        for key in [k for k in self._backoff if k[0] == domain]:
            del self._backoff[key]
        return known

    def preload(self, entries: Iterable[CacheEntry], now: float) -> int:
        """Fill the LRU from a store at start (E1), the most recently checked
        last; returns how many valid entries were kept."""
        valid = sorted(
            (e for e in entries if e.is_valid(now)), key=lambda e: e.checked_at
        )
        for entry in valid[-self.max_entries :]:
            self._store(entry)
        return min(len(valid), self.max_entries)

    def _store(self, entry: CacheEntry) -> None:
        for evicted in self._policies.put(entry):
            self._last_used.pop(evicted, None)
            self._facts.pop(evicted, None)

    def _forget_policy(self, domain: str) -> None:
        self._policies.delete(domain)
        self._last_used.pop(domain, None)
        self._facts.pop(domain, None)

    def _forget_stale_negatives(self, now: float) -> None:
        """Drop the oldest negatives while they expired long ago: each call
        removes at most what earlier calls added (amortised O(1))."""
        negatives = self._negative
        while negatives:
            oldest = next(iter(negatives.values()))
            if now - oldest.until < STALE_NEGATIVE_S:
                return
            negatives.popitem(last=False)

    def _prune_backoff(self, now: float) -> None:
        if len(self._backoff) <= self.max_entries:
            return
        for key in [k for k, b in self._backoff.items() if b.until <= now]:
            del self._backoff[key]
        while len(self._backoff) > self.max_entries:
            self._backoff.popitem(last=False)
