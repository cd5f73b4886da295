# -*- test-case-name: tests.unit.test_lookup -*-
"""Answer lookups from the cache; refresh domains through the resolver.

One refresh per domain at a time however many lookups wait for it
(single-flight), a bounded number of refreshes in flight, and a time budget
after which a waiting lookup is answered from what is known while the refresh
goes on in the background (spec G14).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from postfix_mtasts.cache.memory import MemoryCache
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import (
    DnsFailed,
    Fetched,
    Negative,
    Outcome,
    Timing,
    Update,
    answer_for,
    apply_outcome,
    known_id,
    needs_check,
)
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.sharing import PolicySharing

__all__ = ["LookupService", "Resolves"]

MAX_PENDING_REFRESHES = 10_000
# A hot domain's LRU position and last use are refreshed at most this often:
# cheaper hits, and background refresh needs no finer clock.
USE_GRANULARITY_S = 10.0


class Resolves(Protocol):
    def resolve(
        self, domain: str, known_id: str | None, may_fetch: Callable[[str], bool]
    ) -> Deferred[Outcome]: ...


class LookupService:
    log = Logger()

    def __init__(
        self,
        resolver: Resolves,
        cache: MemoryCache,
        clock: IReactorTime,
        *,
        maps: Callable[[str], MapConfig | None],
        timing: Timing,
        budget_s: float,
        max_in_flight: int,
        refresh_timeout_s: float = 80.0,
        log_lookups: bool = False,
        sharing: PolicySharing | None = None,
    ) -> None:
        self._resolver = resolver
        self._cache = cache
        self._clock = clock
        self._maps = maps
        self._timing = timing
        self._budget_s = budget_s
        self._refresh_timeout_s = refresh_timeout_s
        self._semaphore = DeferredSemaphore(max_in_flight)
        self._waiters: dict[str, list[Deferred[CacheEntry | None]]] = {}
        # Never evict a domain that is being refreshed.
        cache.in_use = self._waiters.__contains__
        self._negative: OrderedDict[str, Negative] = OrderedDict()
        self._backoff: OrderedDict[tuple[str, str], float] = OrderedDict()
        # (map, raw key) -> the entry an answer was rendered from, and the
        # answer: a repeated key skips classification and rendering while
        # that very entry is still current.
        self._memo: dict[tuple[str, bytes], tuple[CacheEntry, Answer]] = {}
        self._log_lookups = log_lookups
        self._sharing = sharing
        # domain -> when Postfix last asked for it (background re-checks).
        self._last_used: dict[str, float] = {}

    # -- the hot path -------------------------------------------------------

    def lookup(self, map_name: str, key: bytes) -> Answer | Deferred[Answer]:
        """Answer one Postfix lookup; cached answers come back synchronously."""
        memo = self._memo.get((map_name, key))
        if memo is not None:
            remembered, answer = memo
            now = self._clock.seconds()
            domain = remembered.domain
            if (
                now < remembered.expires_at
                and now < remembered.checked_at + self._timing.recheck_interval_s
                and self._cache.peek(domain) is remembered
            ):
                if now - self._last_used.get(domain, 0.0) > USE_GRANULARITY_S:
                    self._cache.get(domain)  # keep it recently used in the LRU
                    self._last_used[domain] = now
                return (
                    self._logged(map_name, key, answer) if self._log_lookups else answer
                )
        settings = self._maps(map_name)
        if settings is None:
            return self._logged(
                map_name, key, Answer.perm(f"unknown map name {map_name!r}")
            )
        hop = classify_key(key)
        if hop.kind is not KeyKind.DOMAIN:
            # G11/G12/F8: parent probes, next-hops with ports, IPs: no network.
            return self._logged(map_name, key, Answer.notfound(hop.reason))
        domain = hop.domain
        try:
            now = self._clock.seconds()
            self._last_used[domain] = now
            entry = self._cache.get(domain)
            negative = self._negative.get(domain)
            if not needs_check(entry, negative, now, self._timing):
                answer = answer_for(domain, entry, negative, now, settings)
                if entry is not None and entry.is_valid(now):
                    self._remember_answer(map_name, key, entry, answer)
                return self._logged(map_name, key, answer)
            return self._wait_for_refresh(map_name, key, domain, settings)
        except Exception:
            self.log.failure("internal error answering {domain}", domain=domain)
            return self._logged(map_name, key, self._internal_error(domain))

    def _remember_answer(
        self, map_name: str, key: bytes, entry: CacheEntry, answer: Answer
    ) -> None:
        if len(self._memo) >= self._cache.max_entries:
            self._memo.clear()
        self._memo[(map_name, key)] = (entry, answer)

    def current_answer(self, domain: str, settings: MapConfig) -> Answer:
        """What is known about ``domain`` now, without any network."""
        return answer_for(
            domain,
            self._cache.get(domain),
            self._negative.get(domain),
            self._clock.seconds(),
            settings,
        )

    def state(self, domain: str) -> tuple[CacheEntry | None, Negative | None]:
        return self._cache.get(domain), self._negative.get(domain)

    def _internal_error(self, domain: str) -> Answer:
        # Only defer mail when we know a policy demands TLS (spec G.6).
        entry = self._cache.get(domain)
        if (
            entry is not None
            and entry.is_valid(self._clock.seconds())
            and entry.policy.mode is not Mode.NONE
        ):
            return Answer.temp("internal error")
        return Answer.notfound("internal error")

    def _logged(self, map_name: str, key: bytes, answer: Answer) -> Answer:
        if not self._log_lookups:
            return answer
        self.log.debug(
            "lookup map={map} key={key} answer={answer} reason={reason}",
            map=map_name,
            key=repr(key[:200]),
            answer=answer.status.value,
            reason=answer.reason,
        )
        return answer

    # -- waiting for a refresh ---------------------------------------------

    def _wait_for_refresh(
        self, map_name: str, key: bytes, domain: str, settings: MapConfig
    ) -> Answer | Deferred[Answer]:
        if domain not in self._waiters and len(self._waiters) >= MAX_PENDING_REFRESHES:
            self.log.warn(
                "overloaded: {pending} domains waiting, answering {domain} from cache",
                pending=len(self._waiters),
                domain=domain,
            )
            return self._logged(map_name, key, self.current_answer(domain, settings))
        result: Deferred[Answer] = Deferred()

        def answer(fresh: CacheEntry | None) -> None:
            if timer.active():
                timer.cancel()
            if result.called:
                return
            if fresh is None:
                answered = self.current_answer(domain, settings)
            else:
                # C10: a policy applies to the lookup that fetched it, even
                # with max_age 0.
                answered = answer_for(
                    domain, fresh, None, fresh.fetched_at, settings, just_fetched=True
                )
            result.callback(self._logged(map_name, key, answered))

        def budget_spent() -> None:
            self.log.info(
                "lookup budget spent for {domain}; answering from what is known",
                domain=domain,
            )
            answer(None)

        timer = self._clock.callLater(self._budget_s, budget_spent)
        done: Deferred[CacheEntry | None] = Deferred()
        done.addBoth(answer)
        waiters = self._waiters.get(domain)
        if waiters is None:
            self._waiters[domain] = [done]
            self._start_refresh(domain)
        else:
            waiters.append(done)
        return result

    def _start_refresh(self, domain: str, force_fetch: bool = False) -> None:
        d = self._semaphore.run(self._refresh, domain, force_fetch)
        d.addErrback(self._refresh_bug, domain)
        d.addBoth(self._refresh_done, domain)

    def refresh_in_background(
        self, domain: str, *, force_fetch: bool = False
    ) -> Deferred[CacheEntry | None] | None:
        """Refresh ``domain`` now (proactive refresh, admin ``refresh``);
        None when a refresh of it is already running."""
        if domain in self._waiters:
            return None
        done: Deferred[CacheEntry | None] = Deferred()
        self._waiters[domain] = [done]
        self._start_refresh(domain, force_fetch)
        return done

    # -- what the refresher and the admin verbs see --------------------------

    def domains(self) -> list[str]:
        return [entry.domain for entry in self._cache.scan()]

    def peek(self, domain: str) -> CacheEntry | None:
        """The cached entry, without counting as a use."""
        return self._cache.peek(domain)

    def waiting(self, domain: str) -> bool:
        """True while a recent failure holds back network work for ``domain``."""
        negative = self._negative.get(domain)
        return negative is not None and self._clock.seconds() < negative.until

    def last_used(self, domain: str) -> float | None:
        return self._last_used.get(domain)

    def preload(self, entries: list[CacheEntry]) -> int:
        """Fill the memory cache from a store at start-up (E1); returns the
        number of entries still valid."""
        now = self._clock.seconds()
        valid = sorted(
            (e for e in entries if e.is_valid(now)), key=lambda e: e.checked_at
        )
        for entry in valid[-self._cache.max_entries :]:
            self._cache.put(entry)
        return min(len(valid), self._cache.max_entries)

    def purge(self, domain: str) -> bool:
        """Forget ``domain`` here and in the stores; True if it was cached."""
        known = self._cache.peek(domain) is not None
        self._cache.delete(domain)
        self._negative.pop(domain, None)
        self._last_used.pop(domain, None)
        for key in [k for k in self._backoff if k[0] == domain]:
            del self._backoff[key]
        if self._sharing is not None:
            self._sharing.delete(domain)
        self.log.info("policy purged domain={domain}", domain=domain)
        return known

    def import_entry(self, entry: CacheEntry) -> None:
        self._cache.put(entry)
        self._negative.pop(entry.domain, None)
        if self._sharing is not None:
            self._sharing.write(entry)

    def _refresh_done(self, result: object, domain: str) -> None:
        fresh = result if isinstance(result, CacheEntry) else None
        for waiter in self._waiters.pop(domain, []):
            waiter.callback(fresh)

    def _refresh_bug(self, failure: Failure, domain: str) -> None:
        self.log.failure("refresh of {domain} failed", failure, domain=domain)
        self._remember_negative(
            domain,
            Negative("internal error", self._clock.seconds() + self._timing.retry_s),
        )

    # -- one refresh ---------------------------------------------------------

    def _refresh(self, domain: str, force_fetch: bool) -> Deferred[CacheEntry | None]:
        return Deferred.fromCoroutine(self._refresh_async(domain, force_fetch))

    async def _refresh_async(self, domain: str, force_fetch: bool) -> CacheEntry | None:
        sharing = self._sharing
        if sharing is not None:
            adopted = await sharing.adopt_or_claim(
                domain, self._cache.peek(domain), self._usable(force_fetch)
            )
            if adopted is not None:
                self._cache.put(adopted)
                self._negative.pop(domain, None)
                self.log.info(
                    "policy adopted from store domain={domain} id={policy_id}",
                    domain=domain,
                    policy_id=adopted.policy_id,
                )
                return adopted
        try:
            now = self._clock.seconds()
            known = None if force_fetch else known_id(self._cache.get(domain), now)
            d = self._resolver.resolve(domain, known, self._fetch_allowed(domain))
            d.addTimeout(self._refresh_timeout_s, self._clock, self._timed_out)
            return self._apply(await d, domain)
        finally:
            if sharing is not None:
                sharing.release(domain)

    def _usable(self, force_fetch: bool) -> Callable[[CacheEntry], bool]:
        """Whether a stored entry spares this refresh its network work."""

        def usable(entry: CacheEntry) -> bool:
            now = self._clock.seconds()
            if force_fetch:
                return (
                    entry.is_valid(now)
                    and now - entry.fetched_at < self._timing.recheck_interval_s
                )
            return not needs_check(entry, None, now, self._timing)

        return usable

    @staticmethod
    def _timed_out(result: object, timeout: float) -> Outcome:
        return DnsFailed(f"discovery timed out after {timeout:g} s")

    def _fetch_allowed(self, domain: str) -> Callable[[str], bool]:
        def may_fetch(policy_id: str) -> bool:
            until = self._backoff.get((domain, policy_id))
            return until is None or self._clock.seconds() >= until

        return may_fetch

    def _apply(self, outcome: Outcome, domain: str) -> CacheEntry | None:
        """Store what discovery found; return the entry if it was fetched now."""
        now = self._clock.seconds()
        entry = self._cache.get(domain)
        update = apply_outcome(entry, outcome, domain, now, self._timing)
        if update.entry is not None:
            self._cache.put(update.entry)
            if self._sharing is not None:
                self._sharing.write(update.entry)
        elif update.delete:
            self._cache.delete(domain)
            if self._sharing is not None:
                self._sharing.delete(domain)
        if update.negative is None:
            self._negative.pop(domain, None)
        else:
            self._remember_negative(domain, update.negative)
        if update.backoff is not None:
            policy_id, until = update.backoff
            self._backoff[(domain, policy_id)] = until
            self._prune_backoff(now)
        self._log_update(domain, entry, outcome, update)
        return update.entry if isinstance(outcome, Fetched) else None

    def _remember_negative(self, domain: str, negative: Negative) -> None:
        self._negative[domain] = negative
        self._negative.move_to_end(domain)
        while len(self._negative) > self._cache.max_entries:
            self._negative.popitem(last=False)

    def _prune_backoff(self, now: float) -> None:
        if len(self._backoff) <= self._cache.max_entries:
            return
        for key in [k for k, until in self._backoff.items() if until <= now]:
            del self._backoff[key]
        while len(self._backoff) > self._cache.max_entries:
            self._backoff.popitem(last=False)

    def _log_update(
        self, domain: str, old: CacheEntry | None, outcome: Outcome, update: Update
    ) -> None:
        new = update.entry
        if update.event.changed_policy and new is not None:
            self.log.info(
                "{event} domain={domain} id={policy_id} mode={mode} max_age={max_age}",
                event=update.event.value,
                domain=domain,
                policy_id=new.policy_id,
                mode=new.policy.mode.value,
                max_age=new.policy.max_age,
            )
            return
        reason = update.negative.reason if update.negative is not None else ""
        cached_mode = old.policy.mode if old is not None else None
        # E6: warn on failures, except for a domain whose policy is mode none.
        failing = update.event.failure
        if failing and cached_mode is not Mode.NONE:
            self.log.warn(
                "{event} domain={domain} reason={reason} cached={cached}",
                event=update.event.value,
                domain=domain,
                reason=reason,
                cached=cached_mode.value if cached_mode is not None else "none-cached",
            )
        else:
            self.log.debug(
                "{event} domain={domain} reason={reason}",
                event=update.event.value,
                domain=domain,
                reason=reason,
            )
