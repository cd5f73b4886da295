# -*- test-case-name: tests.unit.test_resolver -*-
"""One round of discovery: TXT record, id comparison, HTTPS fetch, parse.

No cache and no timers: the caller says which id it already has and which
ids it may fetch now; the result is a :data:`~postfix_mtasts.core.decision.Outcome`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from twisted.internet.defer import Deferred

from postfix_mtasts.core.answer import PolicyFailure
from postfix_mtasts.core.decision import (
    BackedOff,
    DnsFailed,
    Fetched,
    FetchFailed,
    NoPolicy,
    Outcome,
    Unchanged,
)
from postfix_mtasts.core.nexthop import TXT_PREFIX, policy_names_fit
from postfix_mtasts.core.policy import PolicyInvalid, parse_policy
from postfix_mtasts.core.record import RecordInvalid, parse_sts_records
from postfix_mtasts.fetch import PolicyFetcher
from postfix_mtasts.fetch_errors import FetchError
from postfix_mtasts.txt import TxtFailure, TxtNoRecord, TxtResolver

__all__ = ["PolicyResolver", "outcome_word"]

_WORDS = {
    NoPolicy: "no_policy",
    DnsFailed: "dns_failed",
    Unchanged: "unchanged",
    BackedOff: "backed_off",
    Fetched: "fetched",
    FetchFailed: "fetch_failed",
}


def outcome_word(outcome: Outcome) -> str:
    """A discovery's outcome as a label word; an invalid policy file is
    ``policy_invalid``, apart from the other failed fetches."""
    if (
        isinstance(outcome, FetchFailed)
        and outcome.report_type is PolicyFailure.POLICY_INVALID
    ):
        return "policy_invalid"
    return _WORDS[type(outcome)]


class PolicyResolver:
    def __init__(
        self,
        txt: TxtResolver,
        fetcher: PolicyFetcher,
        outcomes: Counter[str] | None = None,
    ) -> None:
        self._txt = txt
        self._fetcher = fetcher
        #: Discoveries by outcome (read by metrics): :func:`outcome_word`;
        #: given: the daemon's, kept across reloads.
        self.outcomes: Counter[str] = Counter() if outcomes is None else outcomes

    def resolve(
        self,
        domain: str,
        known_id: str | None,
        held_back: Callable[[str], PolicyFailure | None],
    ) -> Deferred[Outcome]:
        """Discover ``domain``'s policy.

        ``known_id`` is the id of a valid cached policy (``None`` forces a
        fetch, E4); ``held_back(id)`` is, while a failed fetch of that id
        backs off (B14), the failure it backs off from, else None.
        """
        d = Deferred.fromCoroutine(self._resolve(domain, known_id, held_back))
        return d.addCallback(self._counted)

    def _counted(self, outcome: Outcome) -> Outcome:
        self.outcomes[outcome_word(outcome)] += 1
        return outcome

    async def _resolve(
        self,
        domain: str,
        known_id: str | None,
        held_back: Callable[[str], PolicyFailure | None],
    ) -> Outcome:
        if not policy_names_fit(domain):
            # A1: no record can exist at a name DNS cannot carry; never a
            # DNS failure (a stored entry may name such a domain).
            return NoPolicy(f"{TXT_PREFIX}<domain> is not a DNS name (A1)")
        # A1/A16: exactly this name, never a parent.
        txt = await self._txt.lookup_txt(TXT_PREFIX + domain)
        if isinstance(txt, TxtNoRecord):
            return NoPolicy(txt.reason)
        if isinstance(txt, TxtFailure):
            return DnsFailed(txt.reason)
        record = parse_sts_records(txt.records)
        if isinstance(record, RecordInvalid):
            return NoPolicy(f"{record.rule}: {record.reason}")
        if record.id == known_id:  # A5: exact, case-sensitive comparison
            return Unchanged(record.id)
        if (failure := held_back(record.id)) is not None:
            return BackedOff(record.id, failure)
        try:
            body = await self._fetcher.fetch(domain)
        except FetchError as e:
            return FetchFailed(record.id, e.reason, e.report_type)
        policy = parse_policy(body)
        if isinstance(policy, PolicyInvalid):
            return FetchFailed(
                record.id,
                f"invalid policy: {policy.rule}: {policy.reason}",
                PolicyFailure.POLICY_INVALID,
            )
        return Fetched(record.id, policy)
