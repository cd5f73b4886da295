# -*- test-case-name: tests.unit.test_checker_report -*-
"""Render a :class:`~.model.Report` as text lines or as the ``--json``
object documented in docs/checker.md.  Pure."""

from __future__ import annotations

from collections import Counter
from typing import Any

from postfix_mtasts.checker.model import Check, Report, Status, Verdict
from postfix_mtasts.checker.suggest import Suggestion
from postfix_mtasts.core.text import utc_timestamp

__all__ = [
    "EXIT_COULD_NOT_CHECK",
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_USAGE",
    "JSON_SCHEMA_VERSION",
    "exit_status",
    "render_text",
    "to_json",
]

JSON_SCHEMA_VERSION = 1
EXIT_OK = 0  # nothing FAILs
EXIT_FAIL = 1  # some check FAILs
EXIT_USAGE = 2  # a bad DOMAIN or option: nothing was checked
EXIT_COULD_NOT_CHECK = 3  # no DNS answer: nothing could be checked


def exit_status(report: Report) -> int:
    """1 when something FAILs; else 3 when the domain could not be checked;
    else 0.  A cron job or CI step passes only on 0."""
    if report.failed:
        return EXIT_FAIL
    if report.verdict is Verdict.COULD_NOT_CHECK:
        return EXIT_COULD_NOT_CHECK
    return EXIT_OK


def _line(check: Check, width: int) -> str:
    message = check.message
    if check.subject not in message:
        message = f"{check.subject}: {message}"
    fix = f" — {check.fix}" if check.fix else ""
    return f"{check.rule:<4}{check.status.value:<{width}}{message}{fix}"


def render_text(report: Report, suggestion: Suggestion | None = None) -> str:
    """One line per check, ``RULE STATUS message — fix``, then the verdict."""
    width = max((len(c.status.value) for c in report.checks), default=4) + 2
    lines = [f"MTA-STS check of {report.domain} at {utc_timestamp(report.checked_at)}"]
    lines += [_line(check, width) for check in report.checks]
    counts = Counter(c.status for c in report.checks)
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    lines.append(f"{summary or 'no checks'}")
    lines.append(f"verdict: {report.verdict.value} — {report.verdict_reason}")
    if suggestion is not None:
        lines += ["", *_suggestion_lines(suggestion)]
    return "\n".join(lines) + "\n"


def _suggestion_lines(suggestion: Suggestion) -> list[str]:
    lines = [f"Suggested policy file, to serve at {suggestion.policy_url}:", ""]
    lines += [f"    {line}" for line in suggestion.policy.splitlines()]
    lines += ["", "Suggested DNS records:", ""]
    lines += [f"    {record}" for record in suggestion.records]
    lines += ["", "How to publish:", ""]
    lines += [f"  - {hint}" for hint in suggestion.hints]
    return lines


def to_json(report: Report, suggestion: Suggestion | None = None) -> dict[str, Any]:
    """The ``--json`` object (schema version :data:`JSON_SCHEMA_VERSION`)."""
    counts = Counter(c.status for c in report.checks)
    return {
        "schema": JSON_SCHEMA_VERSION,
        "domain": report.domain,
        "checked_at": utc_timestamp(report.checked_at),
        "mode": report.mode,
        "verdict": report.verdict.value,
        "verdict_reason": report.verdict_reason,
        "exit_status": exit_status(report),
        "summary": {status.value: counts[status] for status in Status},
        "checks": [
            {
                "rule": c.rule,
                "check": c.check,
                "status": c.status.value,
                "subject": c.subject,
                "message": c.message,
                "fix": c.fix or None,
            }
            for c in report.checks
        ],
        "suggestion": None
        if suggestion is None
        else {
            "policy_id": suggestion.policy_id,
            "policy_url": suggestion.policy_url,
            "policy": suggestion.policy,
            "records": list(suggestion.records),
            "hints": list(suggestion.hints),
        },
    }
