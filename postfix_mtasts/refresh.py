# -*- test-case-name: tests.unit.test_coordinator -*-
"""One refresh of one domain: adopt from the stores or claim the fleet's
fetch, discover (TXT, then HTTPS when needed), apply what was found to the
domain state and the stores, and release the claim, in one
``try``/``finally`` from claim to release; then, for a domain whose policy
may answer, gather its MX facts when they are due (DANE precedence, D13).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from postfix_mtasts.core.answer import PolicyFailure
from postfix_mtasts.core.dane import (
    FactsFailed,
    FactsRecord,
    MxFacts,
    dane_verdict,
    record_after,
)
from postfix_mtasts.core.decision import (
    DnsFailed,
    Fetched,
    Negative,
    Outcome,
    Timing,
    Update,
    apply_outcome,
    known_id,
    needs_check,
)
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.core.stored import weakening
from postfix_mtasts.core.text import quote
from postfix_mtasts.domains import DomainState
from postfix_mtasts.sharing import PolicySharing

__all__ = ["REFRESH_TIMEOUT_S", "RefreshRound", "Resolves"]

REFRESH_TIMEOUT_S = 80.0  # under Postfix's 100 s, over any one DNS + HTTPS round


class Resolves(Protocol):
    def resolve(
        self,
        domain: str,
        known_id: str | None,
        held_back: Callable[[str], PolicyFailure | None],
    ) -> Deferred[Outcome]: ...


class GathersFacts(Protocol):
    """:class:`postfix_mtasts.mxfacts.MxFactsGatherer`, or a test's fake."""

    def gather(self, domain: str) -> Deferred[MxFacts | FactsFailed]: ...


class RefreshRound:
    log = Logger()

    def __init__(
        self,
        resolver: Resolves,
        domains: DomainState,
        clock: IReactorTime,
        *,
        timing: Timing,
        timeout_s: float = REFRESH_TIMEOUT_S,
        sharing: PolicySharing | None = None,
        facts: GathersFacts | None = None,
    ) -> None:
        self._resolver = resolver
        self._domains = domains
        self._clock = clock
        self._timing = timing
        self._timeout_s = timeout_s
        self._sharing = sharing
        self._facts = facts

    async def run(
        self, domain: str, force_fetch: bool, facts_only: bool = False
    ) -> CacheEntry | None:
        """Refresh ``domain`` (``facts_only``: only its MX facts); the entry
        if a policy was fetched or adopted now, else None (the domain state
        says what is known).  A bug is logged and holds the domain back for
        ``retry_s``; it never raises."""
        fresh = None
        if not facts_only:
            try:
                fresh = await self._run(domain, force_fetch)
            except Exception:
                self.log.failure("refresh of {domain} failed", domain=domain)
                now = self._clock.seconds()
                self._domains.remember_failure(
                    domain, Negative("internal error", now + self._timing.retry_s), now
                )
                return None
        try:
            await self._refresh_facts(domain, fresh, force_fetch or facts_only)
        except Exception:
            self.log.failure("MX facts of {domain} failed", domain=domain)
        return fresh

    async def _refresh_facts(
        self, domain: str, fresh: CacheEntry | None, force: bool
    ) -> None:
        """Gather ``domain``'s MX facts if its policy may answer and they are
        due (never gathered, past their TTL, or ``force``)."""
        if self._facts is None:
            return
        now = self._clock.seconds()
        entry = self._domains.peek(domain)
        if (
            entry is None
            or entry.policy.mode is Mode.NONE
            or not (entry is fresh or entry.is_valid(now))
        ):
            return
        old = self._domains.facts(domain)
        if not force and old is not None and not old.due(now):
            return
        outcome = await self._facts.gather(domain)
        now = self._clock.seconds()
        record = record_after(old, outcome, now, self._timing.retry_s)
        self._domains.set_facts(domain, record)
        self._log_facts(domain, old, record)

    def _log_facts(
        self, domain: str, old: FactsRecord | None, new: FactsRecord
    ) -> None:
        """One line when the verdict changes or a gathering fails."""
        facts = new.facts
        if new.failure:
            self.log.warn(
                "MX facts failed domain={domain} reason={reason} kept={kept}",
                domain=domain,
                reason=new.failure,
                kept=dane_verdict(new).value,
            )
        elif facts is not None and dane_verdict(old) is not dane_verdict(new):
            self.log.info(
                "MX facts domain={domain} verdict={verdict} mx_secure={secure} "
                "hosts={hosts} with_tlsa={with_tlsa}",
                domain=domain,
                verdict=dane_verdict(new).value,
                secure=facts.secure,
                hosts=",".join(facts.hosts),
                with_tlsa=facts.with_tlsa(),
            )

    async def _run(self, domain: str, force_fetch: bool) -> CacheEntry | None:
        sharing = self._sharing
        try:
            if sharing is not None:
                adopted = await sharing.adopt_or_claim(
                    domain, self._domains.peek(domain), self._usable(force_fetch)
                )
                if adopted is not None:
                    self._adopt(domain, adopted)
                    return adopted
            now = self._clock.seconds()
            known = None if force_fetch else known_id(self._domains.peek(domain), now)
            d = self._resolver.resolve(domain, known, self._held_back(domain))
            d.addTimeout(self._timeout_s, self._clock, _timed_out)
            return self._apply(await d, domain)
        finally:
            if sharing is not None:
                sharing.release(domain)

    def _adopt(self, domain: str, adopted: CacheEntry) -> None:
        """Take a policy another host (or this one before a restart) stored;
        a warning when it protects less than the valid one it replaces: the
        owner may have changed the policy, or a store writer forged it."""
        known = self._domains.peek(domain)
        self._domains.put(adopted)
        change = None
        if known is not None and known.is_valid(self._clock.seconds()):
            change = weakening(known.policy, adopted.policy)
        (self.log.info if change is None else self.log.warn)(
            "policy adopted from store domain={domain} id={policy_id}"
            + ("" if change is None else " weakens id={old_id}: {change}"),
            domain=domain,
            policy_id=adopted.policy_id,
            old_id=known.policy_id if known is not None else None,
            change=change,
        )

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

    def _held_back(self, domain: str) -> Callable[[str], PolicyFailure | None]:
        def held_back(policy_id: str) -> PolicyFailure | None:
            now = self._clock.seconds()
            return self._domains.held_back(domain, policy_id, now)

        return held_back

    def _apply(self, outcome: Outcome, domain: str) -> CacheEntry | None:
        """Store what discovery found; return the entry if it was fetched now."""
        now = self._clock.seconds()
        old = self._domains.entry(domain)
        update = apply_outcome(old, outcome, domain, now, self._timing)
        self._domains.apply(domain, update, now)
        if self._sharing is not None:
            if update.entry is not None:
                self._sharing.write(update.entry)
            elif update.delete:
                self._sharing.delete(domain)
        self._log_update(domain, old, update)
        return update.entry if isinstance(outcome, Fetched) else None

    def _reported_failure(
        self, old: CacheEntry | None, update: Update
    ) -> PolicyFailure | None:
        """The TLSRPT result type a tlsrpt map answers from now on, when this
        failure leaves no valid policy to serve (B16, D14); a failed refetch
        of a valid policy is not reported (B17)."""
        if old is not None and old.is_valid(self._clock.seconds()):
            return None
        return update.negative.policy_failure if update.negative else None

    def _log_update(self, domain: str, old: CacheEntry | None, update: Update) -> None:
        new = update.entry
        if update.event.changed_policy and new is not None:
            # Issue 12: what the reader forgave is on the same line, so an
            # admin sees why this domain's file was not taken at its word.
            self.log.info(
                "{event} domain={domain} id={policy_id} mode={mode} max_age={max_age}"
                + (" tolerated={tolerated}" if new.tolerated else ""),
                event=update.event.value,
                domain=domain,
                policy_id=new.policy_id,
                mode=new.policy.mode.value,
                max_age=new.policy.max_age,
                tolerated=quote(list(new.tolerated), 1000),
            )
            return
        reason = update.negative.reason if update.negative is not None else ""
        cached_mode = old.policy.mode if old is not None else None
        # E6: warn on failures, except for a domain whose policy is mode none.
        if update.event.failure and cached_mode is not Mode.NONE:
            failure = self._reported_failure(old, update)
            self.log.warn(
                "{event} domain={domain} reason={reason} cached={cached}"
                + ("" if failure is None else " policy_failure={policy_failure}"),
                event=update.event.value,
                domain=domain,
                reason=reason,
                cached=cached_mode.value if cached_mode is not None else "none-cached",
                policy_failure=failure,
            )
        else:
            self.log.debug(
                "{event} domain={domain} reason={reason}",
                event=update.event.value,
                domain=domain,
                reason=reason,
            )


def _timed_out(result: object, timeout: float) -> Outcome:
    return DnsFailed(f"discovery timed out after {timeout:g} s")
