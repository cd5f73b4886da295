# -*- test-case-name: tests.unit.test_dane -*-
"""The answer of a policy that answers, given the domain's MX facts.

Pure.  RFC 8461 §2 forbids MTA-STS to override DANE, and a ``secure`` answer
makes Postfix skip DANE (spec L9): where :func:`~postfix_mtasts.core.dane.dane_verdict`
finds validated TLSA the answer is Postfix's own ``dane`` or ``dane-only``
(L11), TEMP while the facts are unknown; elsewhere the STS policy, with a
``match=`` list from its patterns or (``match = "mx"``) from the MX names
they allow.  Called by :func:`postfix_mtasts.core.decision.answer_for`.
"""

from __future__ import annotations

from postfix_mtasts.core.answer import Answer, TlsPolicyValue
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.dane import (
    FactsRecord,
    Verdict,
    dane_verdict,
    exact_match_list,
)
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.mx import policy_value
from postfix_mtasts.core.report import sts_report

__all__ = ["dane_answer", "enforced_answer"]


def enforced_answer(
    domain: str, entry: CacheEntry, settings: MapConfig, facts: FactsRecord | None
) -> Answer:
    """An enforced policy's answer: Postfix's own DANE where the domain's MX
    hosts have DNSSEC-validated TLSA (RFC 8461 §2, D13, L9-L11), TEMP while
    that is unknown, else the STS policy with ``match=`` from its patterns
    or from its MX names (``match = "mx"``)."""
    policy = entry.policy
    reason = f"policy {entry.policy_id} mode {policy.mode.value}"
    dane = dane_answer(domain, entry, settings, facts, reason)
    if dane is not None:
        return dane
    match = None
    if settings.match == "mx" and facts is not None and facts.facts is not None:
        match = exact_match_list(facts.facts.hosts, policy.mx)
        if not match:
            # RFC 8461 §4.1, D8: no MX host may receive the mail; defer
            # rather than accept any pattern's certificate (D11).
            return Answer.temp(f"no MX host of {domain} matches its MTA-STS policy")
    return Answer.ok(
        policy_value(domain, policy, report=settings.tlsrpt, match=match),
        reason=reason,
    )


def dane_answer(
    domain: str,
    entry: CacheEntry,
    settings: MapConfig,
    facts: FactsRecord | None,
    reason: str,
) -> Answer | None:
    """``dane``/``dane-only`` where DANE applies, TEMP while unknown, None
    where the STS policy applies.  STS report attributes ride along on a
    tlsrpt map (L11: Postfix 3.10 accepts them at the DANE levels)."""
    if not settings.dane_on or facts is None:
        return None
    verdict = dane_verdict(facts)
    if verdict is Verdict.UNKNOWN:
        return Answer.temp(f"DANE status of {domain} unknown: {facts.failure}")
    known = facts.facts
    if verdict is Verdict.STS or known is None:
        return None
    report = sts_report(domain, entry.policy) if settings.tlsrpt else None
    return Answer.ok(
        TlsPolicyValue(level=verdict.value, report=report),
        reason=f"{reason}; DANE: {known.with_tlsa()}/{len(known.hosts)} MX hosts"
        " with TLSA",
    )
