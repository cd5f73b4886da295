# -*- test-case-name: tests.unit.test_tlsreport_html -*-
"""The per-day chart of the TLS report summary, as inline SVG.

Pure, and no plotting library (docs/decisions.md): the chart is a few
rectangles and labels, written as text.  Two panels share the day axis:
the sessions that succeeded and failed each day (RFC 8460 §4.4 summary),
and the failed sessions by result type (§4.3).  Every string that came
from a report (a result type) is escaped for both text and attribute
positions; the SVG holds no script, link or external reference.

Bounded: at most :data:`MAX_DAYS` days are drawn (the latest), the earlier
ones are summed in one line under the chart; at most :data:`MAX_TYPES`
result types get a colour of their own, the rest are drawn as "other".
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence

from attrs import frozen

from postfix_mtasts.core.text import cut
from postfix_mtasts.core.tlsreport_summary import DaySummary
from postfix_mtasts.core.value import Value

__all__ = [
    "MAX_DAYS",
    "MAX_TYPES",
    "DayTotal",
    "daily_totals",
    "escape",
    "render_chart",
]

#: The most days drawn; earlier days are summed in a line of text.
MAX_DAYS = 92
#: The most result types drawn in a colour of their own.
MAX_TYPES = 6
#: The most characters of report text in a label.
LABEL_CHARS = 60

_BAR_PX = 12
_GAP_PX = 4
_PANEL_PX = 160
_LEFT_PX = 70
_TOP_PX = 24
_LEGEND_ROW_PX = 16
_SUCCESS = "#2e7d32"
_FAILURE = "#c62828"
_PALETTE = ("#c62828", "#ef6c00", "#6a1b9a", "#1565c0", "#00838f", "#5d4037")
_OTHER_COLOUR = "#757575"
OTHER = "other"
# the key of the "other" result types: a report's result-type is never empty
_OTHER_KEY = ""


@frozen(repr=False)
class DayTotal(Value):
    """One day, every reporting organisation summed."""

    day: str
    successful: int
    failed: int
    result_types: tuple[tuple[str, int], ...]


def escape(value: str, limit: int = LABEL_CHARS) -> str:
    """Report text for HTML or SVG, as text or in a quoted attribute:
    control characters shown as their repr, cut at ``limit``, then
    escaped (``&``, ``<``, ``>``, both quotes)."""
    shown = value if value.isprintable() else repr(value)
    return html.escape(cut(shown, limit), quote=True)


def daily_totals(rows: Iterable[DaySummary]) -> list[DayTotal]:
    """The summary rows summed per day, oldest first."""
    sessions: dict[str, list[int]] = {}
    types: dict[str, Counter[str]] = {}
    for row in rows:
        counts = sessions.setdefault(row.day, [0, 0])
        counts[0] += row.successful
        counts[1] += row.failed
        tally = types.setdefault(row.day, Counter())
        for result_type, count in row.result_types:
            tally[result_type] += count
    return [
        DayTotal(day, ok, failed, tuple(sorted(types[day].items())))
        for day, (ok, failed) in sorted(sessions.items())
    ]


def render_chart(totals: Sequence[DayTotal]) -> str:
    """The ``<svg>`` element (and a line on the days left out), or a
    sentence when there is no day to draw."""
    if not totals:
        return "<p>No sessions to chart.</p>"
    shown = list(totals[-MAX_DAYS:])
    earlier = totals[: max(len(totals) - MAX_DAYS, 0)]
    kinds = _top_types(shown)
    legend_rows = len(kinds) + (1 if _has_other(shown, kinds) else 0)
    width = _LEFT_PX + len(shown) * (_BAR_PX + _GAP_PX) + 20
    sessions_top = _TOP_PX
    types_top = sessions_top + _PANEL_PX + 3 * _TOP_PX
    legend_top = types_top + _PANEL_PX + 2 * _TOP_PX
    height = legend_top + (legend_rows + 2) * _LEGEND_ROW_PX
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" role="img"'
        ' aria-label="sessions per day" font-family="sans-serif" font-size="11">',
        _panel_title(sessions_top, "Sessions per day (successful, failed)"),
        *_sessions_panel(shown, sessions_top + 8),
        _panel_title(types_top, "Failed sessions per day, by result type"),
        *_types_panel(shown, kinds, types_top + 8),
        *_legend(kinds, legend_rows > len(kinds), legend_top),
        "</svg>",
    ]
    if earlier:
        ok = sum(t.successful for t in earlier)
        failed = sum(t.failed for t in earlier)
        parts.append(
            f"<p>{len(earlier)} earlier day(s) not charted"
            f" ({escape(earlier[0].day)} to {escape(earlier[-1].day)}):"
            f" {ok} successful, {failed} failed session(s).</p>"
        )
    return "\n".join(parts)


def _top_types(totals: Sequence[DayTotal]) -> list[str]:
    overall: Counter[str] = Counter()
    for total in totals:
        for result_type, count in total.result_types:
            overall[result_type] += count
    ranked = sorted(overall.items(), key=lambda item: (-item[1], item[0]))
    return [result_type for result_type, _ in ranked[:MAX_TYPES]]


def _has_other(totals: Sequence[DayTotal], kinds: Sequence[str]) -> bool:
    return any(t not in kinds for total in totals for t, _ in total.result_types)


def _panel_title(top: int, text: str) -> str:
    return f'<text x="{_LEFT_PX}" y="{top}" font-weight="bold">{text}</text>'


def _axis(top: int, most: int, days: Sequence[DayTotal]) -> list[str]:
    """The panel's frame: the largest count on the left, first and last
    day under it."""
    bottom = top + _PANEL_PX
    right = _LEFT_PX + len(days) * (_BAR_PX + _GAP_PX)
    out = [
        f'<line x1="{_LEFT_PX}" y1="{bottom}" x2="{right}" y2="{bottom}"'
        ' stroke="#000"/>',
        f'<line x1="{_LEFT_PX}" y1="{top}" x2="{_LEFT_PX}" y2="{bottom}"'
        ' stroke="#000"/>',
        f'<text x="{_LEFT_PX - 4}" y="{top + 10}" text-anchor="end">{most}</text>',
        f'<text x="{_LEFT_PX - 4}" y="{bottom}" text-anchor="end">0</text>',
        f'<text x="{_LEFT_PX}" y="{bottom + 14}">{escape(days[0].day)}</text>',
    ]
    if len(days) > 1:
        out.append(
            f'<text x="{right}" y="{bottom + 14}" text-anchor="end">'
            f"{escape(days[-1].day)}</text>"
        )
    return out


def _height(count: int, most: int) -> int:
    """Pixels for ``count`` on a panel whose top is ``most``; at least one
    pixel for any count above zero, so that one failure shows."""
    if count <= 0 or most <= 0:
        return 0
    return max(1, round(_PANEL_PX * count / most))


def _bar(x: int, bottom: int, px: int, colour: str, title: str) -> str:
    return (
        f'<rect x="{x}" y="{bottom - px}" width="{_BAR_PX}" height="{px}"'
        f' fill="{colour}"><title>{title}</title></rect>'
    )


def _sessions_panel(days: Sequence[DayTotal], top: int) -> list[str]:
    most = max(t.successful + t.failed for t in days)
    bottom = top + _PANEL_PX
    out = _axis(top, most, days)
    for i, total in enumerate(days):
        x = _LEFT_PX + _GAP_PX // 2 + i * (_BAR_PX + _GAP_PX)
        day = escape(total.day)
        ok_px = _height(total.successful, most)
        failed_px = _height(total.failed, most)
        if ok_px:
            title = f"{day}: {total.successful} successful"
            out.append(_bar(x, bottom, ok_px, _SUCCESS, title))
        if failed_px:
            title = f"{day}: {total.failed} failed"
            out.append(_bar(x, bottom - ok_px, failed_px, _FAILURE, title))
    return out


def _types_panel(days: Sequence[DayTotal], kinds: Sequence[str], top: int) -> list[str]:
    most = max((sum(c for _, c in t.result_types) for t in days), default=0)
    bottom = top + _PANEL_PX
    out = _axis(top, most, days)
    colours = dict(zip(kinds, _PALETTE, strict=False))
    for i, total in enumerate(days):
        x = _LEFT_PX + _GAP_PX // 2 + i * (_BAR_PX + _GAP_PX)
        stacked: Counter[str] = Counter()
        for result_type, count in total.result_types:
            stacked[result_type if result_type in colours else _OTHER_KEY] += count
        y = bottom
        for kind in [*kinds, _OTHER_KEY]:
            px = _height(stacked[kind], most)
            if px:
                name = escape(kind) if kind else f"{OTHER} result types"
                title = f"{escape(total.day)}: {stacked[kind]} {name}"
                colour = colours.get(kind, _OTHER_COLOUR)
                out.append(_bar(x, y, px, colour, title))
                y -= px
    return out


def _legend(kinds: Sequence[str], other: bool, top: int) -> list[str]:
    entries = [(_SUCCESS, "successful sessions"), (_FAILURE, "failed sessions")]
    entries += list(zip(_PALETTE, kinds, strict=False))
    if other:
        entries.append((_OTHER_COLOUR, f"{OTHER} result types"))
    out = []
    for row, (colour, label) in enumerate(entries):
        y = top + row * _LEGEND_ROW_PX
        out.append(
            f'<rect x="{_LEFT_PX}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
        )
        out.append(f'<text x="{_LEFT_PX + 16}" y="{y}">{escape(label)}</text>')
    return out
