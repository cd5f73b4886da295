# -*- test-case-name: tests.unit.test_readiness -*-
"""The rules of the enforce verdict (:mod:`.readiness`), each a function
of data giving :class:`~.readiness_evidence.Finding` values; the rank
says how severe (lower first).  Pure."""

from __future__ import annotations

from collections.abc import Sequence

from postfix_mtasts.checker.model import Report, Status, Verdict
from postfix_mtasts.checker.readiness_evidence import (
    DAY_S,
    POLICY_FAILURES,
    STALE_DAYS,
    Evidence,
    Finding,
)
from postfix_mtasts.core.mx import matching_patterns
from postfix_mtasts.core.policy import Mode, MxPattern
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.tlsreport_summary import utc_day

__all__ = [
    "rule_days",
    "rule_live",
    "rule_policy",
    "rule_recent",
    "rule_senders",
    "rule_sts_failures",
    "rule_uncovered",
]

_FIXES = {
    "starttls-not-supported": "offer STARTTLS on {host}",
    "certificate-host-mismatch": "give {host} a certificate that names it"
    " (subjectAltName)",
    "certificate-expired": "renew the certificate of {host}, and automate renewal",
    "certificate-not-trusted": "give {host} a certificate from a public CA, and"
    " serve the whole chain",
    "validation-failure": "check the certificate chain and TLS setup of {host}"
    " (postfix-mtasts check {domain})",
    "sts-policy-fetch-error": "serve the policy at https://mta-sts.{domain}"
    "/.well-known/mta-sts.txt (status 200, text/plain, no redirect)",
    "sts-policy-invalid": "fix the policy file (postfix-mtasts check {domain}"
    " says which line)",
    "sts-webpki-invalid": "give mta-sts.{domain} a certificate from a public CA"
    " that names it",
}


def _shown(text: str) -> str:
    """Report text in a message: as is when printable, else its repr."""
    return text if text.isprintable() and len(text) <= 200 else quote(text)


def rule_policy(domain: str, mode: Mode | None) -> list[Finding]:
    """Rank 10: there must be a policy, in testing (or enforce) mode."""
    if mode is None:
        return [
            Finding(
                10,
                "no-policy",
                domain,
                "no valid MTA-STS policy is published: there is nothing to enforce",
                f"publish a policy in mode testing (postfix-mtasts check {domain}"
                " --suggest prints one), read the reports for two weeks, then"
                " ask again",
            )
        ]
    if mode is Mode.NONE:
        return [
            Finding(
                10,
                "mode-none",
                domain,
                "the policy is in mode none: MTA-STS is switched off",
                "publish mode testing with a new id, read the reports for two"
                " weeks, then ask again",
            )
        ]
    return []


def rule_live(live: Report) -> list[Finding]:
    """Rank 10 when the live check saw nothing; 20 for each check that
    FAILs, 25 for each that could not be made (spec H.1)."""
    if live.verdict is Verdict.COULD_NOT_CHECK:
        return [
            Finding(
                10,
                "live-check",
                live.domain,
                f"the live check could not see {live.domain}: {live.verdict_reason}",
                "make the domain's DNS answer, then ask again",
            )
        ]
    ranks = {Status.FAIL: 20, Status.INCONCLUSIVE: 25}
    return [
        Finding(
            ranks[c.status],
            f"check-{c.check}",
            c.subject,
            f"live check {c.rule} {c.check} {c.status.value}: {c.message}",
            c.fix or "run postfix-mtasts check from a host that reaches it",
        )
        for c in live.checks
        if c.status in ranks
    ]


def rule_sts_failures(
    evidence: Evidence, domain: str, patterns: Sequence[MxPattern] | None
) -> list[Finding]:
    """Rank 30: no STS-related failure reported since the window started,
    on the policy host or on an MX host the current policy still matches
    (a host it no longer matches is rule 40's; ``patterns`` None: no
    policy, every host counts)."""
    out = []
    for host, kind, sessions in evidence.failures:
        if kind in POLICY_FAILURES:
            subject = f"mta-sts.{domain}"
        elif not host or patterns is None or matching_patterns(host, patterns):
            subject = _shown(host) if host else f"an MX host of {domain}"
        else:
            continue
        out.append(
            Finding(
                30,
                kind,
                subject,
                f"senders reported {sessions} session(s) failing with {kind} on"
                f" {subject} since {evidence.window_start}: under enforce they"
                " would not deliver those messages",
                _FIXES[kind].format(host=subject, domain=domain),
            )
        )
    return out


def rule_uncovered(
    evidence: Evidence, patterns: Sequence[MxPattern] | None
) -> list[Finding]:
    """Rank 40: every MX host senders reported since the window started is
    matched by the policy's mx patterns (RFC 8461 §4.1)."""
    if patterns is None:
        return []
    listed = ", ".join(p.text for p in patterns)
    return [
        Finding(
            40,
            "mx-not-covered",
            _shown(host),
            f"senders reported {sessions} failed session(s) with {_shown(host)},"
            f" which the policy's mx patterns ({listed}) do not match: under"
            " enforce they would not deliver to it",
            f"add 'mx: {_shown(host)}' to the policy and change its id, or take"
            " the host out of the MX records",
        )
        for host, sessions in evidence.hosts
        if not matching_patterns(host, patterns)
    ]


def rule_senders(evidence: Evidence, domain: str, min_senders: int) -> list[Finding]:
    """Rank 50: at least ``min_senders`` organisations reported."""
    if len(evidence.senders) >= min_senders:
        return []
    names = ", ".join(_shown(s) for s in evidence.senders) or "none"
    return [
        Finding(
            50,
            "few-senders",
            domain,
            f"{len(evidence.senders)} organisation(s) reported on the policy"
            f" ({names}), {min_senders} wanted: one sender's view can miss what"
            " others see",
            "keep collecting reports (the _smtp._tls record's rua address must"
            " receive them), then ask again",
        )
    ]


def rule_recent(evidence: Evidence, domain: str, now: float) -> list[Finding]:
    """Rank 55: the newest report is at most STALE_DAYS days old."""
    if not evidence.days or evidence.days[-1] >= utc_day(now - STALE_DAYS * DAY_S):
        return []
    return [
        Finding(
            55,
            "stale-reports",
            domain,
            f"the newest report is of {evidence.days[-1]}: reports seem to have"
            " stopped coming in",
            "check the _smtp._tls record and its rua mailbox, then read the new"
            " reports (postfix-mtasts reports PATH)",
        )
    ]


def rule_days(evidence: Evidence, domain: str, min_days: int) -> list[Finding]:
    """Rank 60: reports cover at least ``min_days`` UTC days (the guide:
    two weeks of testing mode)."""
    covered = len(evidence.days)
    if covered >= min_days:
        return []
    span = f" ({evidence.days[0]} to {evidence.days[-1]})" if covered else ""
    return [
        Finding(
            60,
            "few-days",
            domain,
            f"reports cover {covered} day(s){span}; the guide asks for two"
            f" weeks of testing mode ({min_days} days)",
            f"stay in testing mode and ask again when {min_days - covered} more"
            " day(s) of reports have come in",
        )
    ]
