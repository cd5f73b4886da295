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
  (Postfix would then defer, spec L4), and not at ``dane``: Postfix forces
  verification to fail, which defers a domain whose MX has usable TLSA
  records (read in the Postfix 3.10.13 source; MTA-STS must never break
  DANE, D13), so a ``dane`` map answers ``NOTFOUND`` there.

``servername=hostname`` is harmless at ``dane``: Postfix sends the TLSA base
domain as SNI whenever DANE is in effect, and the MX name only where ``dane``
falls back to opportunistic TLS (an unsigned domain), as RFC 8461 §7.1 wants.
"""

from __future__ import annotations

from postfix_mtasts.core.answer import (
    POLICY_FAILURE_LEVELS,
    PolicyFailure,
    StsReportAttributes,
    TlsPolicyValue,
)
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.policy import Policy

__all__ = [
    "failure_report",
    "failure_value",
    "sts_report",
    "testing_report",
    "testing_value",
]


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


def testing_report(domain: str, policy: Policy, settings: MapConfig) -> TlsPolicyValue:
    """What a tlsrpt map answers for a testing-mode ``policy`` (D9)."""
    return testing_value(domain, policy, settings.default_level)


def failure_report(
    domain: str, failure: PolicyFailure | None, settings: MapConfig
) -> TlsPolicyValue | None:
    """What a map answers when ``failure`` kept a policy from being had, or
    None (NOTFOUND): no failure, no tlsrpt, or a ``dane`` map (B16, D13, D14)."""
    level = settings.default_level
    if failure is None or not settings.tlsrpt or level not in POLICY_FAILURE_LEVELS:
        return None
    return failure_value(domain, failure, level)
