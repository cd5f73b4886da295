# -*- test-case-name: tests.unit.test_readiness -*-
"""What the stored TLS reports say about a domain's readiness for
enforce, and the finding the rules of :mod:`.readiness_rules` give.

Pure.  :func:`gather_evidence` reads the reports (RFC 8460 §4.4) of one
policy domain: the days and organisations that applied its STS policy,
and, from the first day of the window on, the STS-related failures
(§4.3), the receiving MX hosts named and the policies senders applied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from attrs import frozen

from postfix_mtasts.core.tlsreport import PolicyResult, TlsReport
from postfix_mtasts.core.tlsreport_summary import utc_day
from postfix_mtasts.core.value import Value

__all__ = [
    "DAY_S",
    "MX_FAILURES",
    "POLICY_FAILURES",
    "STALE_DAYS",
    "Evidence",
    "Finding",
    "SeenPolicy",
    "gather_evidence",
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


@frozen(repr=False)
class Finding(Value):
    """One thing to fix; a lower ``rank`` is more severe."""

    rank: int
    code: str
    subject: str
    message: str
    fix: str


@frozen(repr=False)
class SeenPolicy(Value):
    """One policy senders reported applying to the domain (RFC 8460 §4.4
    ``policy-type`` and ``policy-string``), over the window: by whom, on
    which days, for how many sessions."""

    policy_type: str
    policy_strings: tuple[str, ...]
    senders: tuple[str, ...]
    first_day: str
    last_day: str
    sessions: int


@frozen(repr=False)
class Evidence(Value):
    """What the stored reports say about one policy domain.

    ``days`` and ``senders``: the UTC days and organisations of the reports
    in which a sender applied an STS policy of the domain (RFC 8460 §4.4
    ``policy-type`` sts).  From ``window_start`` on (the last ``min_days``
    days): ``failures`` the STS-related failed sessions as (MX host, result
    type, sessions), ``hosts`` every receiving MX host named with its
    failed sessions (§4.4 ``receiving-mx-hostname``), and ``policies`` the
    policies senders applied, most sessions first.
    """

    days: tuple[str, ...]
    senders: tuple[str, ...]
    window_start: str
    failures: tuple[tuple[str, str, int], ...] = ()
    hosts: tuple[tuple[str, int], ...] = ()
    policies: tuple[SeenPolicy, ...] = ()


def gather_evidence(
    reports: Iterable[TlsReport], domain: str, now: float, window_days: int
) -> Evidence:
    """The :class:`Evidence` of ``reports`` for ``domain`` at ``now``."""
    window_start = utc_day(now - window_days * DAY_S)
    days: set[str] = set()
    senders: set[str] = set()
    failures: Counter[tuple[str, str]] = Counter()
    hosts: Counter[str] = Counter()
    seen: dict[tuple[str, tuple[str, ...]], _Seen] = {}
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
            key = policy.policy_type, policy.policy_strings
            seen.setdefault(key, _Seen()).add(report.organization, day, policy)
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
        tuple(
            tally.seen(*key)
            for key, tally in sorted(
                seen.items(), key=lambda item: (-item[1].sessions, item[0])
            )
        ),
    )


class _Seen:
    """The tally of one seen policy while the reports are read."""

    def __init__(self) -> None:
        self.senders: set[str] = set()
        self.days: set[str] = set()
        self.sessions = 0

    def add(self, organization: str, day: str, policy: PolicyResult) -> None:
        self.senders.add(organization)
        self.days.add(day)
        self.sessions += policy.successful + policy.failed

    def seen(self, policy_type: str, strings: tuple[str, ...]) -> SeenPolicy:
        return SeenPolicy(
            policy_type,
            strings,
            tuple(sorted(self.senders)),
            min(self.days),
            max(self.days),
            self.sessions,
        )
