# -*- test-case-name: tests.unit.test_tlsreport_summary -*-
"""What the TLS reports say, per day and per reporting organisation.

Pure.  A report counts on the UTC day its date range starts (RFC 8460 §4.4:
a report covers one UTC day, but senders may send other ranges).  For each
(day, organisation): the reports, the sessions that succeeded and failed,
the failed sessions by result type (§4.3), by receiving MX host and by
receiving IP, and the policies the sender applied (§4.4: type, domain,
policy strings, MX patterns) with the sessions counted under each.
``domain`` keeps only the policies of that policy domain; ``since`` and
``until`` (ISO dates, both included) keep only those days.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from attrs import define, frozen

from postfix_mtasts.core.tlsreport import PolicyResult, TlsReport
from postfix_mtasts.core.value import Value

__all__ = ["DaySummary", "PolicySeen", "summarize", "summary_json", "utc_day"]


@frozen(repr=False)
class PolicySeen(Value):
    """A policy as a sender reported it (RFC 8460 §4.4 ``policy``)."""

    policy_type: str
    policy_domain: str
    policy_strings: tuple[str, ...]
    mx_hosts: tuple[str, ...]


@frozen(repr=False)
class DaySummary(Value):
    """One (day, organisation) row; the tallies run most failures first."""

    day: str
    organization: str
    reports: int
    successful: int
    failed: int
    result_types: tuple[tuple[str, int], ...]
    mx_hosts: tuple[tuple[str, int], ...]
    receiving_ips: tuple[tuple[str, int], ...]
    policies: tuple[tuple[PolicySeen, int], ...]


@define(repr=False)
class _Tally(Value):
    reports: set[str]
    sessions: Counter[str]
    result_types: Counter[str]
    mx_hosts: Counter[str]
    receiving_ips: Counter[str]
    policies: Counter[PolicySeen]


def utc_day(t: float) -> str:
    """The UTC date of a POSIX time, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def summarize(
    reports: Iterable[TlsReport],
    *,
    domain: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[DaySummary]:
    """The (day, organisation) rows of ``reports``, in that order."""
    wanted = domain.lower().removesuffix(".") if domain is not None else None
    tallies: dict[tuple[str, str], _Tally] = {}
    for report in reports:
        day = utc_day(report.start)
        if (since is not None and day < since) or (until is not None and day > until):
            continue
        for policy in report.policies:
            if wanted is not None and policy.policy_domain != wanted:
                continue
            key = (day, report.organization)
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = _Tally(
                    set(), Counter(), Counter(), Counter(), Counter(), Counter()
                )
            _add(tally, report.report_id, policy)
    return [_row(day, org, tally) for (day, org), tally in sorted(tallies.items())]


def _add(tally: _Tally, report_id: str, policy: PolicyResult) -> None:
    tally.reports.add(report_id)
    tally.sessions["successful"] += policy.successful
    tally.sessions["failed"] += policy.failed
    seen = PolicySeen(
        policy.policy_type,
        policy.policy_domain,
        policy.policy_strings,
        policy.mx_hosts,
    )
    tally.policies[seen] += policy.successful + policy.failed
    for detail in policy.failures:
        count = detail.failed_session_count
        tally.result_types[detail.result_type] += count
        tally.mx_hosts[detail.receiving_mx_hostname or "-"] += count
        tally.receiving_ips[detail.receiving_ip or "-"] += count


def _ranked(counter: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _row(day: str, organization: str, tally: _Tally) -> DaySummary:
    return DaySummary(
        day=day,
        organization=organization,
        reports=len(tally.reports),
        successful=tally.sessions["successful"],
        failed=tally.sessions["failed"],
        result_types=_ranked(tally.result_types),
        mx_hosts=_ranked(tally.mx_hosts),
        receiving_ips=_ranked(tally.receiving_ips),
        policies=tuple(
            sorted(
                tally.policies.items(),
                key=lambda item: (-item[1], item[0].policy_domain, item[0].policy_type),
            )
        ),
    )


def summary_json(rows: Iterable[DaySummary]) -> dict[str, object]:
    """The rows as one JSON document (the ``--json`` output)."""
    return {
        "days": [
            {
                "day": row.day,
                "organization": row.organization,
                "reports": row.reports,
                "successful_sessions": row.successful,
                "failed_sessions": row.failed,
                "failures_by_result_type": dict(row.result_types),
                "failures_by_mx_host": dict(row.mx_hosts),
                "failures_by_receiving_ip": dict(row.receiving_ips),
                "policies": [
                    {
                        "policy_type": seen.policy_type,
                        "policy_domain": seen.policy_domain,
                        "policy_string": list(seen.policy_strings),
                        "mx_host": list(seen.mx_hosts),
                        "sessions": sessions,
                    }
                    for seen, sessions in row.policies
                ],
            }
            for row in rows
        ]
    }
