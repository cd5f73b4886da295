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

No finding: ready for enforce.  A policy already in enforce mode is said
so; its findings (the same, without the testing-period rules 50-60) are
what enforce is costing now.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence

from attrs import frozen

from postfix_mtasts.checker.model import Report, Status, Verdict
from postfix_mtasts.core.mx import matching_patterns
from postfix_mtasts.core.policy import Mode, MxPattern, Policy
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.tlsreport import TlsReport
from postfix_mtasts.core.tlsreport_summary import utc_day
from postfix_mtasts.core.value import Value

__all__ = [
    "DAY_S",
    "MX_FAILURES",
    "POLICY_FAILURES",
    "STALE_DAYS",
    "Evidence",
    "Finding",
    "Outcome",
    "Readiness",
    "gather_evidence",
    "judge",
    "rule_days",
    "rule_live",
    "rule_policy",
    "rule_recent",
    "rule_senders",
    "rule_sts_failures",
    "rule_uncovered",
]

DAY_S = 86400
#: The newest report may be this many days older than today before the
#: reports are said to have stopped (a report covers one UTC day and is
#: mailed after it ends, RFC 8460 §4.1: yesterday's is the newest normally).
STALE_DAYS = 3
#: RFC 8460 §4.3 result types about the policy host (policy failures).
POLICY_FAILURES = frozenset(
    {"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"}
)
#: RFC 8460 §4.3 result types about an MX host that an MTA-STS sender in
#: enforce mode does not deliver through (RFC 8461 §4.2, §5).
MX_FAILURES = frozenset(
    {
        "starttls-not-supported",
        "certificate-host-mismatch",
        "certificate-expired",
        "certificate-not-trusted",
        "validation-failure",
    }
)
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


class Outcome(enum.Enum):
    READY = "ready-for-enforce"
    NOT_READY = "not-ready"
    ENFORCING = "already-enforce"


@frozen(repr=False)
class Finding(Value):
    """One thing to fix; a lower ``rank`` is more severe."""

    rank: int
    code: str
    subject: str
    message: str
    fix: str


@frozen(repr=False)
class Evidence(Value):
    """What the stored reports say about one policy domain.

    ``days`` and ``senders``: the UTC days and organisations of the reports
    in which a sender applied an STS policy of the domain (RFC 8460 §4.4
    ``policy-type`` sts).  From ``window_start`` on (the last ``min_days``
    days): ``failures`` the STS-related failed sessions as (MX host, result
    type, sessions), and ``hosts`` every receiving MX host named with its
    failed sessions (§4.4 ``receiving-mx-hostname``).
    """

    days: tuple[str, ...]
    senders: tuple[str, ...]
    window_start: str
    failures: tuple[tuple[str, str, int], ...] = ()
    hosts: tuple[tuple[str, int], ...] = ()


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

    @property
    def ready(self) -> bool:
        return self.outcome is Outcome.READY


def _shown(text: str) -> str:
    """Report text in a message: as is when printable, else its repr."""
    return text if text.isprintable() and len(text) <= 200 else quote(text)


def gather_evidence(
    reports: Iterable[TlsReport], domain: str, now: float, window_days: int
) -> Evidence:
    """The :class:`Evidence` of ``reports`` for ``domain`` at ``now``."""
    window_start = utc_day(now - window_days * DAY_S)
    days: set[str] = set()
    senders: set[str] = set()
    failures: Counter[tuple[str, str]] = Counter()
    hosts: Counter[str] = Counter()
    for report in reports:
        day = utc_day(report.start)
        for policy in report.policies:
            if policy.policy_domain != domain:
                continue
            if policy.policy_type == "sts":
                days.add(day)
                senders.add(report.organization)
            if day < window_start:
                continue
            for detail in policy.failures:
                host = detail.receiving_mx_hostname
                count = detail.failed_session_count
                if host:
                    hosts[host] += count
                if detail.result_type in POLICY_FAILURES | MX_FAILURES:
                    failures[host, detail.result_type] += count
    return Evidence(
        tuple(sorted(days)),
        tuple(sorted(senders)),
        window_start,
        tuple(
            (host, kind, n)
            for (host, kind), n in sorted(
                failures.items(), key=lambda item: (-item[1], item[0])
            )
        ),
        tuple(sorted(hosts.items(), key=lambda item: (-item[1], item[0]))),
    )


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
    )
