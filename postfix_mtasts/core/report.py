# -*- test-case-name: tests.unit.test_report -*-
"""The TLSRPT attributes of an STS answer, and the report-only answers.

Postfix >= 3.10 reports on a TLS policy the map hands it (spec G25-G29).
An enforced policy carries them beside ``secure`` (:mod:`postfix_mtasts.core.mx`);
two more answers exist only to carry them, at the level Postfix would use
without this map (``default_level``), so the admin's own TLS level applies:

- testing mode (RFC 8461 §5: deliver as if no failure, report): the policy's
  attributes and ``servername=hostname``, never ``match=`` (spec L2, L3);
- no valid policy could be had though a record exists (RFC 8461 §3.3, §5;
  RFC 8460 §4.3): ``policy_failure=<type>`` alone, never with ``secure``
  (Postfix would then defer, spec L4).

``servername=hostname`` is harmless at ``dane``: Postfix sends the TLSA base
domain as SNI whenever DANE is in effect, and the MX name only where ``dane``
falls back to opportunistic TLS (an unsigned domain), as RFC 8461 §7.1 wants.
"""

from __future__ import annotations

from postfix_mtasts.core.answer import (
    PolicyFailure,
    StsReportAttributes,
    TlsPolicyValue,
)
from postfix_mtasts.core.policy import Policy

__all__ = ["failure_value", "sts_report", "testing_value"]


def sts_report(domain: str, policy: Policy) -> StsReportAttributes:
    """The attributes that describe ``policy`` (G26-G28): the policy domain,
    each ``mx`` pattern as written (``*.`` kept, duplicates once) and the
    policy's lines in order."""
    return StsReportAttributes(
        policy_domain=domain,
        mx_host_patterns=tuple(dict.fromkeys(p.text for p in policy.mx)),
        policy_strings=policy.lines,
    )


def testing_value(domain: str, policy: Policy, level: str) -> TlsPolicyValue:
    """Report a testing-mode ``policy`` without enforcing it (D9, L3)."""
    return TlsPolicyValue(
        level=level,
        servername="hostname",
        report=sts_report(domain, policy),
        report_only=True,
    )


def failure_value(domain: str, failure: PolicyFailure, level: str) -> TlsPolicyValue:
    """Report that ``domain``'s policy could not be had, and why (B16, D14, G29)."""
    return TlsPolicyValue(
        level=level,
        report=StsReportAttributes(policy_domain=domain, policy_failure=failure),
        report_only=True,
    )
