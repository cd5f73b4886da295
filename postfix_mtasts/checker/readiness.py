# -*- test-case-name: tests.unit.test_readiness -*-
"""Is a domain ready for ``mode: enforce``?  (``reports --verdict``, issue 14)

Pure.  The guide: publish the policy in testing mode, read the daily TLS
reports for two weeks ("2 weeks of report data is enough to learn about
and fix any problems"), fix what they show, then enforce.  :func:`judge`
puts the stored reports (RFC 8460) beside a live check of the domain
(:func:`~postfix_mtasts.checker.rules.evaluate`) and the policy it serves
now, and each rule below is one function of that data, giving findings
ranked most severe first:

10. the policy: none can be read, or it is in mode none (nothing to
    enforce), or the live check could not see the domain at all;
20. the live check FAILs (25: a check could not be made from here);
30. STS failures senders reported in the last ``min_days`` days on a host
    the current policy still matches, or on the policy host (§4.3 result
    types: what ``enforce`` turns into mail not delivered, RFC 8461 §5);
40. an MX host senders reported that the policy's patterns do not match
    (under enforce, senders would not deliver to it, RFC 8461 §4.1);
50. too few reporting organisations; 55. no recent report;
60. too few days of reports.

Beside the findings, each policy senders applied in those days is set
against the one published now (:mod:`.readiness_policies`).

No finding: ready for enforce.  A policy already in enforce mode is said
so; its findings (the same, without the testing-period rules 50-60) are
what enforce is costing now.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from attrs import frozen

from postfix_mtasts.checker.model import Report, Verdict
from postfix_mtasts.checker.readiness_evidence import (
    Evidence,
    Finding,
    gather_evidence,
)
from postfix_mtasts.checker.readiness_policies import (
    PolicyComparison,
    compare_policies,
)
from postfix_mtasts.checker.readiness_rules import (
    rule_days,
    rule_live,
    rule_policy,
    rule_recent,
    rule_senders,
    rule_sts_failures,
    rule_uncovered,
)
from postfix_mtasts.core.policy import Mode, Policy
from postfix_mtasts.core.tlsreport import TlsReport
from postfix_mtasts.core.value import Value

__all__ = ["Outcome", "Readiness", "judge"]


class Outcome(enum.Enum):
    """The verdict word (``--json`` ``verdict``)."""

    READY = "ready-for-enforce"
    NOT_READY = "not-ready"
    ENFORCING = "already-enforce"


@frozen(repr=False)
class Readiness(Value):
    """The verdict of :func:`judge`."""

    domain: str
    checked_at: float
    mode: str | None
    live_verdict: str
    outcome: Outcome
    findings: tuple[Finding, ...]
    evidence: Evidence
    min_days: int
    min_senders: int
    policies: tuple[PolicyComparison, ...] = ()

    @property
    def ready(self) -> bool:
        return self.outcome is Outcome.READY


def judge(
    live: Report,
    policy: Policy | None,
    reports: Iterable[TlsReport],
    *,
    min_days: int,
    min_senders: int,
) -> Readiness:
    """The verdict for ``live.domain`` at ``live.checked_at``."""
    domain, now = live.domain, live.checked_at
    evidence = gather_evidence(reports, domain, now, min_days)
    mode = policy.mode if policy is not None else None
    patterns = policy.mx if policy is not None else None
    findings = rule_live(live)
    if live.verdict is not Verdict.COULD_NOT_CHECK:
        findings += rule_policy(domain, mode)
    findings += rule_sts_failures(evidence, domain, patterns)
    findings += rule_uncovered(evidence, patterns)
    if mode is not Mode.ENFORCE:
        findings += rule_senders(evidence, domain, min_senders)
        findings += rule_recent(evidence, domain, now)
        findings += rule_days(evidence, domain, min_days)
    if mode is Mode.ENFORCE:
        outcome = Outcome.ENFORCING
    else:
        outcome = Outcome.NOT_READY if findings else Outcome.READY
    return Readiness(
        domain,
        now,
        None if mode is None else mode.value,
        live.verdict.value,
        outcome,
        tuple(sorted(findings, key=lambda f: f.rank)),
        evidence,
        min_days,
        min_senders,
        compare_policies(evidence.policies, policy),
    )
