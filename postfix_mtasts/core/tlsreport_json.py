# -*- test-case-name: tests.unit.test_tlsreport -*-
"""A :class:`~postfix_mtasts.core.tlsreport.TlsReport` written back as
RFC 8460 §4.4 JSON: how the report store keeps it.

Pure.  Only the fields the reader knows are written, under their RFC
names, so that :func:`~postfix_mtasts.core.tlsreport.parse_report` reads
the same report back (the store's bytes are untrusted input too, and go
through the same checks as a mailed report).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from postfix_mtasts.core.tlsreport import FailureDetail, PolicyResult, TlsReport

__all__ = ["encode_report", "report_to_json", "rfc3339"]

_DETAIL_FIELDS = (
    ("sending-mta-ip", "sending_mta_ip"),
    ("receiving-mx-hostname", "receiving_mx_hostname"),
    ("receiving-mx-helo", "receiving_mx_helo"),
    ("receiving-ip", "receiving_ip"),
    ("additional-information", "additional_information"),
    ("failure-reason-code", "failure_reason_code"),
)


def rfc3339(t: float) -> str:
    """A POSIX time as an RFC 3339 date-time in UTC, with microseconds only
    when it has a fraction of a second."""
    moment = datetime.fromtimestamp(t, UTC)
    spec = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(spec)


def report_to_json(report: TlsReport) -> dict[str, object]:
    """The report as the JSON object RFC 8460 §4.4 describes."""
    out: dict[str, object] = {
        "organization-name": report.organization,
        "date-range": {
            "start-datetime": rfc3339(report.start),
            "end-datetime": rfc3339(report.end),
        },
        "report-id": report.report_id,
        "policies": [_policy(p) for p in report.policies],
    }
    if report.contact:
        out["contact-info"] = report.contact
    return out


def encode_report(report: TlsReport) -> bytes:
    """Compact UTF-8 JSON of :func:`report_to_json`."""
    return json.dumps(
        report_to_json(report), ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def _policy(result: PolicyResult) -> dict[str, object]:
    policy: dict[str, object] = {
        "policy-type": result.policy_type,
        "policy-string": list(result.policy_strings),
        "policy-domain": result.policy_domain,
    }
    if result.mx_hosts:
        policy["mx-host"] = list(result.mx_hosts)
    out: dict[str, object] = {
        "policy": policy,
        "summary": {
            "total-successful-session-count": result.successful,
            "total-failure-session-count": result.failed,
        },
    }
    if result.failures:
        out["failure-details"] = [_detail(d) for d in result.failures]
    return out


def _detail(detail: FailureDetail) -> dict[str, object]:
    out: dict[str, object] = {
        "result-type": detail.result_type,
        "failed-session-count": detail.failed_session_count,
    }
    for name, attribute in _DETAIL_FIELDS:
        if value := getattr(detail, attribute):
            out[name] = value
    return out
