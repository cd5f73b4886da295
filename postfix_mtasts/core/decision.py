# -*- test-case-name: tests.unit.test_decision -*-
"""The only place that chooses what Postfix hears, and how the cache moves.

Pure: every function takes the cached entry, what the network said, and
``now``; none does I/O.  Rule ids refer to spec.md.
"""

from __future__ import annotations

import enum

from attrs import evolve, frozen

from postfix_mtasts.core.answer import Answer, PolicyFailure, Status
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.dane import FactsRecord
from postfix_mtasts.core.dane_answer import dane_answer, enforced_answer
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode, Policy
from postfix_mtasts.core.report import failure_report, testing_report
from postfix_mtasts.core.value import Value

__all__ = [
    "BackedOff",
    "DnsFailed",
    "Event",
    "FetchBackoff",
    "FetchFailed",
    "Fetched",
    "Negative",
    "NoPolicy",
    "Outcome",
    "Timing",
    "Unchanged",
    "Update",
    "answer_for",
    "apply_outcome",
    "known_id",
    "needs_check",
]


# What one round of discovery found (resolver.py produces these).
@frozen(repr=False)
class NoPolicy(Value):
    """No usable ``_mta-sts`` record: NXDOMAIN, NODATA or invalid (A7, A15)."""

    reason: str


@frozen(repr=False)
class DnsFailed(Value):
    """The TXT lookup failed: SERVFAIL, timeout, CNAME loop (A11, A15)."""

    reason: str


@frozen(repr=False)
class Unchanged(Value):
    """The TXT id equals the cached policy's id (E3)."""

    policy_id: str


@frozen(repr=False)
class BackedOff(Value):
    """A fetch for this id failed recently; no new attempt yet (B14).
    ``policy_failure`` is why it failed, still reported meanwhile."""

    policy_id: str
    policy_failure: PolicyFailure | None = None


@frozen(repr=False)
class Fetched(Value):
    policy_id: str
    policy: Policy


@frozen(repr=False)
class FetchFailed(Value):
    """HTTPS failed or the policy was invalid (B7-B12, C17); ``report_type``
    is its TLSRPT result type (RFC 8460 §4.3)."""

    policy_id: str
    reason: str
    report_type: PolicyFailure


Outcome = NoPolicy | DnsFailed | Unchanged | BackedOff | Fetched | FetchFailed


@frozen(repr=False)
class Negative(Value):
    """Why a domain has no usable policy now, and until when not to ask again.
    ``policy_failure``: a record exists but no valid policy could be had, and
    this is the TLSRPT result type a tlsrpt map reports (B16, D14)."""

    reason: str
    until: float
    dns_failure: bool = False
    policy_failure: PolicyFailure | None = None


@frozen(repr=False)
class FetchBackoff(Value):
    """No new fetch of ``policy_id`` before ``until`` (B14); the failure it
    backs off from is reported meanwhile."""

    policy_id: str
    until: float
    policy_failure: PolicyFailure


@frozen(repr=False)
class Timing(Value):
    recheck_interval_s: float
    negative_ttl_s: float
    failure_backoff_s: float
    retry_s: float = 60.0


class Event(enum.Enum):
    """What one round of discovery did to a domain's cache state (for the log)."""

    UPDATED = "policy updated"
    RENEWED = "policy renewed"
    UNCHANGED = "policy id unchanged"
    RECORD_GONE = "record gone, cached policy kept"
    NO_POLICY = "no policy"
    DNS_FAILURE = "dns failure"
    BACKED_OFF = "fetch backed off"
    FETCH_FAILED = "policy fetch failed"

    @property
    def changed_policy(self) -> bool:
        return self in (Event.UPDATED, Event.RENEWED)

    @property
    def failure(self) -> bool:
        """A failure an admin hears of at warning level, unless mode none (E6)."""
        return self in (Event.DNS_FAILURE, Event.FETCH_FAILED)


@frozen(repr=False)
class Update(Value):
    """How the cache changes after an outcome.

    ``entry`` is the entry to store (``None``: leave the store alone unless
    ``delete``); ``backoff`` is a fetch back-off to remember (B14);
    ``event`` names what happened, for the log.
    """

    event: Event
    entry: CacheEntry | None = None
    delete: bool = False
    negative: Negative | None = None
    backoff: FetchBackoff | None = None


def needs_check(
    entry: CacheEntry | None,
    negative: Negative | None,
    now: float,
    timing: Timing,
) -> bool:
    """Must this lookup ask DNS (and perhaps HTTPS) before answering?

    A valid entry is served without network until its TXT id is due for a
    re-check (E2, D11); a negative answer or a recent failure holds for its
    own short time.
    """
    if negative is not None and now < negative.until:
        return False
    if entry is not None and entry.is_valid(now):
        return now >= entry.checked_at + timing.recheck_interval_s
    return True


def known_id(entry: CacheEntry | None, now: float) -> str | None:
    """The id to compare the TXT record with; ``None`` forces a fetch.

    An expired entry is never extended without a fetch (E4 decision).
    """
    if entry is not None and entry.is_valid(now):
        return entry.policy_id
    return None


def apply_outcome(
    entry: CacheEntry | None,
    outcome: Outcome,
    domain: str,
    now: float,
    timing: Timing,
) -> Update:
    """The cache rules of spec E (and B14, B16, B17, C17)."""
    valid = entry is not None and entry.is_valid(now)
    if isinstance(outcome, Fetched):
        new = CacheEntry.fetched(domain, outcome.policy_id, outcome.policy, now)
        if entry is not None and entry.policy_id == outcome.policy_id:
            return Update(Event.RENEWED, entry=new)
        return Update(Event.UPDATED, entry=new)
    if isinstance(outcome, Unchanged):
        if entry is not None and valid:
            return Update(Event.UNCHANGED, entry=_checked(entry, now))
        # The entry expired while its TXT was asked: nothing to extend (E4).
        return Update(Event.UNCHANGED, negative=None)
    if isinstance(outcome, NoPolicy):
        if entry is not None and valid:
            # E7/A10: a missing or invalid record never removes a valid policy.
            return Update(Event.RECORD_GONE, entry=_checked(entry, now))
        return Update(
            Event.NO_POLICY,
            delete=entry is not None,
            negative=Negative(outcome.reason, now + timing.negative_ttl_s),
        )
    if isinstance(outcome, DnsFailed):
        # A15/E7: never delete the cache on a DNS error; retry soon.
        return Update(
            Event.DNS_FAILURE,
            negative=Negative(outcome.reason, now + timing.retry_s, dns_failure=True),
        )
    if isinstance(outcome, BackedOff):
        # The failure backed off from is still the answer (D14).
        return Update(
            Event.BACKED_OFF,
            negative=Negative(
                f"policy fetch for id {outcome.policy_id} failed recently",
                now + timing.retry_s,
                policy_failure=outcome.policy_failure,
            ),
        )
    # FetchFailed: B17/E8 keep the old policy, do not record the new id, and
    # wait before fetching this id again (B14).
    failure = outcome.report_type
    return Update(
        Event.FETCH_FAILED,
        negative=Negative(outcome.reason, now + timing.retry_s, policy_failure=failure),
        backoff=FetchBackoff(
            outcome.policy_id, now + timing.failure_backoff_s, failure
        ),
    )


def answer_for(
    domain: str,
    entry: CacheEntry | None,
    negative: Negative | None,
    now: float,
    settings: MapConfig,
    *,
    just_fetched: bool = False,
    facts: FactsRecord | None = None,
) -> Answer:
    """What Postfix hears for a domain (spec G.6 table).

    ``just_fetched``: the entry was fetched for this very lookup, so it
    applies even if its max_age is 0 (C10).  A tlsrpt map reports what it
    does not enforce (testing mode, a policy that could not be had) with a
    report-only answer at its ``default_level`` (D9, B16, D14, G29;
    :mod:`postfix_mtasts.core.report`).  ``facts``: what DNS said of the
    domain's MX hosts (None: the daemon does not gather them; then neither
    DANE precedence nor ``match = "mx"`` applies).
    """
    if entry is not None and (just_fetched or entry.is_valid(now)):
        mode = entry.policy.mode
        reason = f"policy {entry.policy_id} mode {mode.value}"
        if mode is Mode.ENFORCE or (mode is Mode.TESTING and settings.strict_testing):
            return enforced_answer(domain, entry, settings, facts)
        if mode is Mode.TESTING and settings.tlsrpt:
            # Reported, not enforced (D9); where DANE applies, Postfix's own
            # DANE runs with the report attributes (D13, L11).
            dane = dane_answer(domain, entry, settings, facts, reason)
            if dane is not None and dane.status is Status.OK:
                return dane
            return Answer.ok(testing_report(domain, entry.policy, settings), reason)
        return Answer.notfound(reason)
    if negative is not None:
        if negative.dns_failure and settings.dns_failure == "temp":
            return Answer.temp(f"MTA-STS lookup failed: {negative.reason}")
        reported = failure_report(domain, negative.policy_failure, settings)
        if reported is not None:
            return Answer.ok(reported, negative.reason)
        return Answer.notfound(negative.reason)
    return Answer.notfound("no policy")


def _checked(entry: CacheEntry, now: float) -> CacheEntry:
    """``entry`` seen unchanged at ``now``.  After the clock was stepped back
    ``now`` may precede the fetch; checked_at never does (a store refuses
    such an entry, E1)."""
    return evolve(entry, checked_at=max(now, entry.fetched_at))
