# -*- test-case-name: tests.unit.test_tlsreport_html -*-
"""The TLS report summary as one self-contained HTML file (``--html``).

Pure.  The same three tables as the terminal summary
(:mod:`~postfix_mtasts.core.tlsreport_text`) under the per-day chart of
:mod:`~postfix_mtasts.core.tlsreport_chart`.  The file is meant to be
opened offline and mailed around (docs/decisions.md): no script, no
stylesheet, image or font from elsewhere, and a Content-Security-Policy
that forbids them all, so that even a mistake in escaping could load or
run nothing.  Every string from a report (RFC 8460 §7: reports come from
strangers) goes through :func:`~postfix_mtasts.core.tlsreport_chart.escape`.
"""

from __future__ import annotations

from collections.abc import Sequence

from postfix_mtasts.core.tlsreport_chart import daily_totals, escape, render_chart
from postfix_mtasts.core.tlsreport_summary import DaySummary

__all__ = ["CELL_CHARS", "CSP", "render_html"]

#: The most characters of report text in a table cell.
CELL_CHARS = 200
#: Nothing may be loaded or run; the inline style is the only exception.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'"
)

_STYLE = (
    "body{font-family:sans-serif;margin:1.5em;color:#111}"
    "table{border-collapse:collapse;margin:0 0 1.5em}"
    "th,td{border:1px solid #bbb;padding:2px 8px;text-align:left}"
    "td.n{text-align:right}th{background:#eee}"
)


def render_html(rows: Sequence[DaySummary], selection: str = "") -> str:
    """The whole document; ``selection`` says which reports were asked
    for (it is escaped too)."""
    title = "SMTP TLS reports (RFC 8460)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{title}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
    ]
    if selection:
        parts.append(f"<p>{escape(selection, CELL_CHARS)}</p>")
    if not rows:
        parts.append("<p>No TLS reports stored (for this selection).</p>")
    else:
        parts += [
            "<h2>Sessions per day</h2>",
            render_chart(daily_totals(rows)),
            "<h2>Sessions per day and organisation</h2>",
            _table(
                ("Day", "Organisation", "Reports", "Successful", "Failed"),
                [
                    (r.day, r.organization, r.reports, r.successful, r.failed)
                    for r in rows
                ],
            ),
            *_failures(rows),
            "<h2>Policies senders applied</h2>",
            _table(
                ("Day", "Organisation", "Policy", "Domain", "MX patterns", "Sessions"),
                [
                    (
                        r.day,
                        r.organization,
                        seen.policy_type,
                        seen.policy_domain,
                        " ".join(seen.mx_hosts) or "-",
                        sessions,
                    )
                    for r in rows
                    for seen, sessions in r.policies
                ],
            ),
        ]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _failures(rows: Sequence[DaySummary]) -> list[str]:
    failures: list[tuple[str | int, ...]] = [
        (r.day, r.organization, kind, value, count)
        for r in rows
        for kind, tally in (
            ("result-type", r.result_types),
            ("mx-host", r.mx_hosts),
            ("receiving-ip", r.receiving_ips),
        )
        for value, count in tally
    ]
    if not failures:
        return ["<p>No failed sessions reported.</p>"]
    return [
        "<h2>Failed sessions</h2>",
        _table(("Day", "Organisation", "By", "Value", "Failed"), failures),
    ]


def _table(header: tuple[str, ...], rows: Sequence[tuple[str | int, ...]]) -> str:
    """A table; numbers right-aligned, every string escaped."""
    lines = [
        "<table>",
        "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>",
    ]
    for row in rows:
        cells = "".join(
            f'<td class="n">{cell}</td>'
            if isinstance(cell, int)
            else f"<td>{escape(cell, CELL_CHARS)}</td>"
            for cell in row
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</table>")
    return "\n".join(lines)
