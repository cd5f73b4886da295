# -*- test-case-name: tests.unit.test_tlsreport_summary -*-
"""The TLS report summary as fixed-width tables for a terminal.

Pure.  Three tables: sessions per (day, organisation); failed sessions by
result type, receiving MX host and receiving IP; the policies senders
applied.  Every value from a report is shown through :func:`quote` when it
is not plain printable text, so a hostile sender cannot write control
characters to the admin's terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

from postfix_mtasts.core.text import cut, quote
from postfix_mtasts.core.tlsreport_summary import DaySummary

__all__ = ["render_summary"]

#: Widest column of report text before it is cut.
COLUMN_CHARS = 40


def render_summary(rows: Sequence[DaySummary]) -> str:
    """The tables, or one line saying there is nothing to show."""
    if not rows:
        return "no TLS reports stored (for this selection)\n"
    sections = [
        _table(
            ("DAY", "ORGANISATION", "REPORTS", "SUCCESSFUL", "FAILED"),
            [
                (
                    r.day,
                    _show(r.organization),
                    str(r.reports),
                    str(r.successful),
                    str(r.failed),
                )
                for r in rows
            ],
            numeric=3,
        )
    ]
    failures = [
        (r.day, _show(r.organization), kind, _show(value), str(count))
        for r in rows
        for kind, tally in (
            ("result-type", r.result_types),
            ("mx-host", r.mx_hosts),
            ("receiving-ip", r.receiving_ips),
        )
        for value, count in tally
    ]
    if failures:
        sections.append(
            _table(
                ("DAY", "ORGANISATION", "BY", "VALUE", "FAILED"), failures, numeric=1
            )
        )
    policies = [
        (
            r.day,
            _show(r.organization),
            seen.policy_type,
            _show(seen.policy_domain),
            _show(" ".join(seen.mx_hosts) or "-"),
            str(sessions),
        )
        for r in rows
        for seen, sessions in r.policies
    ]
    sections.append(
        _table(
            ("DAY", "ORGANISATION", "POLICY", "DOMAIN", "MX PATTERNS", "SESSIONS"),
            policies,
            numeric=1,
        )
    )
    return "\n".join(sections)


def _show(value: str) -> str:
    """Report text for a column: as is when printable, else quoted; cut."""
    text = value if value.isprintable() else quote(value)
    return cut(text, COLUMN_CHARS)


def _table(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, numeric: int
) -> str:
    """Columns padded to their widest cell; the last ``numeric`` columns
    right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    first_numeric = len(header) - numeric
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if i >= first_numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
