"""TLS reports (RFC 8460 §4.4) dated relative to the checker tests' NOW,
for the verdict tests (issue 14)."""

from __future__ import annotations

from postfix_mtasts.checker.readiness_evidence import DAY_S
from postfix_mtasts.core.tlsreport import FailureDetail, PolicyResult, TlsReport

from .checker_facts import DOMAIN, NOW


def daily_report(
    days_ago: int,
    organization: str = "Sender A",
    *,
    failures: tuple[tuple[str, str, int], ...] = (),
    policy_type: str = "sts",
    domain: str = DOMAIN,
    policy_strings: tuple[str, ...] = (),
) -> TlsReport:
    """One daily report ``days_ago`` days before NOW's day."""
    start = (NOW // DAY_S - days_ago) * DAY_S
    details = tuple(
        FailureDetail(kind, count, receiving_mx_hostname=host)
        for host, kind, count in failures
    )
    failed = sum(count for _, _, count in failures)
    policy = PolicyResult(
        policy_type,
        domain,
        100,
        failed,
        policy_strings=policy_strings,
        failures=details,
    )
    return TlsReport(
        organization,
        f"{organization}-{days_ago}-{policy_type}-{domain}",
        start,
        start + DAY_S - 1,
        "",
        (policy,),
    )


def two_weeks(*extra: TlsReport) -> list[TlsReport]:
    """Clean reports of two senders for each of the last 14 days."""
    clean = [
        daily_report(d, org) for d in range(1, 15) for org in ("Sender A", "Sender B")
    ]
    return clean + list(extra)
