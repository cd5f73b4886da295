# -*- test-case-name: tests.unit.test_frontdoor -*-
"""The front door: every Postfix lookup enters here and gets one answer.

Cached answers come back synchronously (a memo of rendered answers spares a
repeated key its classification and rendering); a domain due for discovery
waits for the refresh coordinator at most ``budget_s`` (spec G14), then is
answered from what is known while the refresh goes on.  A cached policy's MX
facts (DANE precedence, D13) are waited for the same way only when none were
ever gathered; facts past their TTL answer as they are while a background
refresh runs, so the hot path stays memory-only.  A bug answers per spec
G.6: TEMP only where a policy is known to demand TLS.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from postfix_mtasts.coordinator import RefreshCoordinator
from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.dane import NOT_GATHERED, FactsRecord
from postfix_mtasts.core.decision import Timing, answer_for, needs_check
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.core.tally import (
    CACHE_HIT,
    CACHE_MISS,
    CACHE_NONE,
    UNKNOWN_MAP,
    LookupTally,
)
from postfix_mtasts.core.text import quote
from postfix_mtasts.domains import DomainState
from postfix_mtasts.waiting import SpentBudgets, Wait

__all__ = ["OVERLOAD_LOG_INTERVAL_S", "FrontDoor"]

OVERLOAD_LOG_INTERVAL_S = 60.0

# A remembered answer: the entry and facts it was rendered from, the answer,
# its tally cell, and the time from which it must be decided again.
_Remembered = tuple[CacheEntry, FactsRecord | None, Answer, list[int], float]


class FrontDoor:
    log = Logger()

    def __init__(
        self,
        domains: DomainState,
        coordinator: RefreshCoordinator,
        clock: IReactorTime,
        *,
        maps: Callable[[str], MapConfig | None],
        timing: Timing,
        budget_s: float,
        log_lookups: bool = False,
        gathers_facts: bool = False,
    ) -> None:
        self._domains = domains
        self._gathers_facts = gathers_facts
        self._coordinator = coordinator
        self.clock = clock
        self._maps = maps
        self._recheck_s = timing.recheck_interval_s
        self._timing = timing
        self.budget_s = budget_s
        self._log_lookups = log_lookups
        # Lookups answered, by map, answer and cache use (read by metrics).
        self.tally = LookupTally()
        # (map, raw key) -> the entry and facts an answer was rendered from,
        # the answer, its tally cell and until when it may be given again:
        # a repeated key skips classification and rendering while that very
        # entry and those very facts are still current.
        self._memo: dict[tuple[str, bytes], _Remembered] = {}
        self._seconds = clock.seconds
        self._overloaded_since_log = 0
        self._overload_logged_at: float | None = None
        self._spent = SpentBudgets(clock, self.log, budget_s)

    def retune(
        self,
        *,
        maps: Callable[[str], MapConfig | None],
        timing: Timing,
        budget_s: float,
        log_lookups: bool,
        gathers_facts: bool,
    ) -> None:
        """Answer from now on with these settings (a configuration reload):
        the cache stays, remembered answers are forgotten (they were
        rendered for the old maps); lookups waiting keep their settings."""
        self._maps = maps
        self._timing = timing
        self._recheck_s = timing.recheck_interval_s
        self.budget_s = budget_s
        self._spent.budget_s = budget_s
        self._log_lookups = log_lookups
        self._gathers_facts = gathers_facts
        self._memo.clear()

    def lookup(
        self, map_name: str, key: bytes, source: Hashable | None = None
    ) -> Answer | Deferred[Answer]:
        """Answer one Postfix lookup; cached answers come back synchronously.
        ``source`` is the asking connection: discoveries are shared fairly
        between connections."""
        memo = self._memo.get((map_name, key))
        if memo is not None:
            remembered, facts, answer, counted, until = memo
            now = self._seconds()
            if now < until and self._domains.current(remembered, facts, now):
                counted[0] += 1
                if self._log_lookups:
                    return self._logged(map_name, key, answer, counted=True)
                return answer
        settings = self._maps(map_name)
        if settings is None:
            answer = Answer.perm(f"unknown map name {quote(map_name)}")
            self.tally.count(UNKNOWN_MAP, answer, CACHE_NONE)
            return self._logged(map_name, key, answer, counted=True)
        hop = classify_key(key)
        if hop.kind is not KeyKind.DOMAIN:
            # G11/G12/F8: parent probes, next-hops with ports, IPs: no network.
            return self._logged(
                map_name, key, Answer.notfound(hop.reason), cache=CACHE_NONE
            )
        domain = hop.domain
        try:
            now = self.clock.seconds()
            self._domains.touch(domain, now)
            entry = self._domains.entry(domain)
            negative = self._domains.negative(domain)
            if not needs_check(entry, negative, now, self._timing):
                facts = self._domains.facts(domain)
                valid = entry if entry is not None and entry.is_valid(now) else None
                if valid is not None and facts is None and self._wants(valid, settings):
                    # Never gathered (a new policy, or after a restart): the
                    # facts are worth a wait within the budget.
                    return self._wait_for_refresh(
                        map_name, key, domain, settings, source, facts_only=True
                    )
                answer = answer_for(
                    domain, entry, negative, now, settings, facts=self._known(facts)
                )
                if facts is not None and facts.due(now):
                    # Past their TTL: answered as known, refreshed behind.
                    self._coordinator.refresh_in_background(domain, facts_only=True)
                elif valid is not None:
                    self._remember_answer(map_name, key, valid, facts, answer)
                return self._logged(map_name, key, answer, cache=CACHE_HIT)
            return self._wait_for_refresh(map_name, key, domain, settings, source)
        except Exception:
            self.log.failure("internal error answering {domain}", domain=domain)
            answer = self._internal_error(domain)
            return self._logged(map_name, key, answer, cache=CACHE_NONE)

    def current_answer(self, domain: str, settings: MapConfig) -> Answer:
        """What is known about ``domain`` now, without any network."""
        now = self.clock.seconds()
        entry, negative = self._domains.peek(domain), self._domains.negative(domain)
        facts = self._known(self._domains.facts(domain))
        return answer_for(domain, entry, negative, now, settings, facts=facts)

    def _wants(self, entry: CacheEntry, settings: MapConfig) -> bool:
        """Whether this map's answer from ``entry`` depends on MX facts this
        daemon gathers: a policy it answers from, on a map with DANE
        precedence or ``match = "mx"``."""
        if not self._gathers_facts or not (settings.dane_on or settings.match == "mx"):
            return False
        mode = entry.policy.mode
        return mode is Mode.ENFORCE or (
            mode is Mode.TESTING and (settings.strict_testing or settings.tlsrpt)
        )

    def _known(self, facts: FactsRecord | None) -> FactsRecord | None:
        """The facts to answer with: None when this daemon gathers none (no
        DANE precedence), "not gathered yet" when it does but has none."""
        if facts is None and self._gathers_facts:
            return NOT_GATHERED
        return facts

    def _remember_answer(
        self,
        map_name: str,
        key: bytes,
        entry: CacheEntry,
        facts: FactsRecord | None,
        answer: Answer,
    ) -> None:
        if len(self._memo) >= self._domains.max_entries:
            self._memo.clear()
        counted = self.tally.cell(map_name, answer, CACHE_HIT)
        # Given again while the entry is unexpired and checked recently
        # enough, and the facts are within their TTL.
        until = min(entry.expires_at, entry.checked_at + self._recheck_s)
        if facts is not None:
            until = min(until, facts.due_at)
        self._memo[(map_name, key)] = (entry, facts, answer, counted, until)

    def _internal_error(self, domain: str) -> Answer:
        # Only defer mail when we know a policy demands TLS (spec G.6).
        entry = self._domains.peek(domain)
        if (
            entry is not None
            and entry.is_valid(self.clock.seconds())
            and entry.policy.mode is not Mode.NONE
        ):
            return Answer.temp("internal error")
        return Answer.notfound("internal error")

    def _logged(
        self,
        map_name: str,
        key: bytes,
        answer: Answer,
        *,
        cache: str = CACHE_MISS,
        counted: bool = False,
    ) -> Answer:
        """Count the answer (unless ``counted``) and log it at debug level."""
        if not counted:
            self.tally.count(map_name, answer, cache)
        if not self._log_lookups:
            return answer
        self.log.debug(
            "lookup map={map} key={key} answer={answer} reason={reason}",
            map=map_name,
            key=quote(key),
            answer=answer.status.value,
            reason=answer.reason,
        )
        return answer

    # -- waiting for a refresh ---------------------------------------------

    def _wait_for_refresh(
        self,
        map_name: str,
        key: bytes,
        domain: str,
        settings: MapConfig,
        source: Hashable | None,
        *,
        facts_only: bool = False,
    ) -> Answer | Deferred[Answer]:
        waiting = self._coordinator.wait(domain, source, facts_only=facts_only)
        if waiting is None:
            self._note_overload()
            return self._logged(map_name, key, self.current_answer(domain, settings))
        return Wait(self, map_name, key, domain, settings, waiting).result

    def answer_fetched(
        self,
        map_name: str,
        key: bytes,
        domain: str,
        settings: MapConfig,
        fresh: CacheEntry | None,
    ) -> Answer:
        """The answer once a refresh ended (``fresh``: the entry fetched for
        this lookup) or the budget did (None)."""
        try:
            if fresh is None:
                answered = self.current_answer(domain, settings)
            else:
                # C10: a policy applies to the lookup that fetched it, even
                # with max_age 0.
                answered = answer_for(
                    domain,
                    fresh,
                    None,
                    fresh.fetched_at,
                    settings,
                    just_fetched=True,
                    facts=self._known(self._domains.facts(domain)),
                )
        except Exception:
            self.log.failure("internal error answering {domain}", domain=domain)
            answered = self._internal_error(domain)
        return self._logged(map_name, key, answered)

    def budget_spent(self, domain: str) -> None:
        """A lookup of ``domain`` ran out of budget (logged per domain and
        minute, not per lookup)."""
        self._spent.spent(domain)

    def _note_overload(self) -> None:
        """One warning a minute while the coordinator's queue is full."""
        self._overloaded_since_log += 1
        now = self.clock.seconds()
        logged = self._overload_logged_at
        if logged is not None and now - logged < OVERLOAD_LOG_INTERVAL_S:
            return
        self.log.warn(
            "overloaded: {pending} domains waiting for discovery; {count} lookups "
            "answered from cache without waiting",
            pending=self._coordinator.pending(),
            count=self._overloaded_since_log,
        )
        self._overload_logged_at = now
        self._overloaded_since_log = 0
