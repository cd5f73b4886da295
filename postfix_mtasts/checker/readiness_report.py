# -*- test-case-name: tests.unit.test_readiness -*-
"""Show a :class:`~.readiness.Readiness` (``reports --verdict``): text
lines or one JSON object, and the exit status scripts read.  Pure."""

from __future__ import annotations

from typing import Any

from postfix_mtasts.checker.readiness import Outcome, Readiness
from postfix_mtasts.core.text import utc_timestamp

__all__ = [
    "EXIT_NOT_READY",
    "EXIT_READY",
    "JSON_SCHEMA_VERSION",
    "exit_status",
    "readiness_json",
    "render_readiness",
]

JSON_SCHEMA_VERSION = 1
EXIT_READY = 0  # ready for enforce (or enforcing, nothing to fix)
EXIT_NOT_READY = 1  # something to fix first: the findings say what
_ENFORCE_STEPS = (
    "switch the policy to 'mode: enforce', raise max_age to 1209600 or more"
    " (RFC 8461 §3.2: weeks), and change the id in the _mta-sts TXT record"
)


def exit_status(readiness: Readiness) -> int:
    """0 when nothing is to be fixed, else 1."""
    return EXIT_NOT_READY if readiness.findings else EXIT_READY


def _verdict_line(readiness: Readiness) -> str:
    if readiness.outcome is Outcome.READY:
        return f"verdict: ready for enforce — {_ENFORCE_STEPS}"
    if readiness.outcome is Outcome.ENFORCING:
        if not readiness.findings:
            return "verdict: already in enforce mode, and nothing to fix"
        return "verdict: already in enforce mode — fix these (most severe first):"
    return "verdict: not ready for enforce — fix these first (most severe first):"


def render_readiness(readiness: Readiness) -> str:
    """The verdict as lines of text, each finding ``N. subject: message —
    fix``."""
    evidence = readiness.evidence
    days = len(evidence.days)
    span = f", {evidence.days[0]} to {evidence.days[-1]}" if days else ""
    lines = [
        f"MTA-STS enforce readiness of {readiness.domain}"
        f" at {utc_timestamp(readiness.checked_at)}",
        f"published policy: mode {readiness.mode or '(none)'}"
        f" (live check: {readiness.live_verdict})",
        f"reports: {days} day(s){span} (wanted {readiness.min_days});"
        f" {len(evidence.senders)} organisation(s) (wanted"
        f" {readiness.min_senders}); failures counted since {evidence.window_start}",
        _verdict_line(readiness),
    ]
    for n, finding in enumerate(readiness.findings, start=1):
        message = finding.message
        if finding.subject not in message:
            message = f"{finding.subject}: {message}"
        lines.append(f"  {n}. {message} — {finding.fix}")
    if readiness.policies:
        lines.append(f"policies senders applied since {evidence.window_start}:")
    for compared in readiness.policies:
        seen = compared.seen
        versus = (
            "as published now"
            if compared.as_published
            else f"not as published now: {compared.difference}"
        )
        lines.append(
            f"  {compared.described}: {len(seen.senders)} organisation(s),"
            f" {seen.first_day} to {seen.last_day}, {seen.sessions} session(s)"
            f" — {versus}"
        )
    return "\n".join(lines) + "\n"


def readiness_json(readiness: Readiness) -> dict[str, Any]:
    """The ``--verdict --json`` object (schema :data:`JSON_SCHEMA_VERSION`)."""
    evidence = readiness.evidence
    return {
        "schema": JSON_SCHEMA_VERSION,
        "domain": readiness.domain,
        "checked_at": utc_timestamp(readiness.checked_at),
        "mode": readiness.mode,
        "verdict": readiness.outcome.value,
        "ready": readiness.ready,
        "exit_status": exit_status(readiness),
        "live_verdict": readiness.live_verdict,
        "reports": {
            "days": list(evidence.days),
            "organizations": list(evidence.senders),
            "failures_since": evidence.window_start,
        },
        "thresholds": {
            "min_days": readiness.min_days,
            "min_senders": readiness.min_senders,
        },
        "policies_seen": [
            {
                "policy_type": c.seen.policy_type,
                "policy_string": list(c.seen.policy_strings),
                "described": c.described,
                "organizations": list(c.seen.senders),
                "first_day": c.seen.first_day,
                "last_day": c.seen.last_day,
                "sessions": c.seen.sessions,
                "as_published": c.as_published,
                "difference": c.difference,
            }
            for c in readiness.policies
        ],
        "findings": [
            {
                "rank": f.rank,
                "code": f.code,
                "subject": f.subject,
                "message": f.message,
                "fix": f.fix,
            }
            for f in readiness.findings
        ],
    }
