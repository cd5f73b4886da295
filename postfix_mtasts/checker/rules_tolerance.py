# -*- test-case-name: tests.unit.test_checker_tolerance -*-
"""What the daemon's reader forgave in the policy file, as checks (spec H10,
H11; RFC 8461 §3.2).  Pure.

The reader (:func:`postfix_mtasts.core.policy.parse_policy`) accepts a file
that departs from the §3.2 grammar where it has one meaning, and notes each
departure with its :class:`~postfix_mtasts.core.policy.Tolerance` and line.
Other senders read the same file more strictly: this module turns every such
note into one check naming the line, how this daemon reads it and what
other senders do with it.  FAIL where common senders reject the whole
policy (so the domain has no MTA-STS with them), WARN where senders
generally read it as this daemon does; the table and its reasons are in
docs/checker.md and docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import evolve

from postfix_mtasts.checker.model import Check, Status
from postfix_mtasts.checker.tolerances import kind_of
from postfix_mtasts.core.policy import Mode, Note, Tolerance, body_lines
from postfix_mtasts.core.text import quote

__all__ = ["MAX_LINES_PER_CHECK", "body_lines", "syntax_status", "tolerance_checks"]

#: At most this many lines are listed per check name; the rest are counted.
MAX_LINES_PER_CHECK = 10


_REMOVAL_BLOCKED = (
    "; a sender that rejects this mode none policy keeps its cached enforce or"
    " testing policy until that expires, so the removal path (RFC 8461 §8.3)"
    " is blocked for it"
)


def tolerance_checks(
    url: str,
    body: bytes,
    notes: Sequence[Note],
    *,
    accepted: bool,
    mode: Mode | None = None,
) -> list[Check]:
    """One check per tolerated note, in line order.

    ``accepted``: the reader accepted the policy (else it rejected it for
    another reason, reported by H10 ``policy-syntax``); ``mode`` the mode it
    read: for ``mode: none`` the first check adds that a sender rejecting
    the file keeps its cached policy (the removal path is blocked for it).
    """
    lines = body_lines(body)
    tolerated = sorted(
        ((n, n.tolerance) for n in notes if n.tolerance is not None),
        key=lambda pair: (pair[0].line == 0, pair[0].line),
    )
    checks: list[Check] = []
    more: dict[str, tuple[int, Check]] = {}  # check name: (lines, worst check)
    for note, tolerance in tolerated:
        unlisted = note.unlisted
        check = _check(url, lines, note, tolerance, accepted, mode)
        listed = sum(c.check == check.check for c in checks)
        if not unlisted and listed < MAX_LINES_PER_CHECK:
            checks.append(check)
            continue
        count, worst = more.get(check.check, (0, check))
        worst = check if check.status is Status.FAIL else worst
        more[check.check] = count + (unlisted or 1), worst
    for count, worst in more.values():
        message = f"and {count} more line(s) like this, not listed one by one"
        checks.append(evolve(worst, message=message))
    if checks and accepted and mode is Mode.NONE:  # said once, on the first
        checks[0] = evolve(checks[0], message=checks[0].message + _REMOVAL_BLOCKED)
    return checks


def syntax_status(checks: Sequence[Check]) -> Status:
    """H10 ``policy-syntax`` for a readable policy: FAIL when some departure
    makes strict senders reject it, WARN when there are others, else PASS."""
    statuses = {c.status for c in checks}
    if Status.FAIL in statuses:
        return Status.FAIL
    return Status.WARN if statuses else Status.PASS


def _check(
    url: str,
    lines: list[str],
    note: Note,
    tolerance: Tolerance,
    accepted: bool,
    mode: Mode | None,
) -> Check:
    number = note.line
    raw = lines[number - 1] if 1 <= number <= len(lines) else ""
    kind = kind_of(tolerance, raw)
    where = f"line {number} {quote(raw)}" if number else "the file"
    what, reads, fix, detail = kind.what, kind.reads, kind.fix, _detail(note)
    if tolerance is Tolerance.U_LABEL_MX and detail:
        reads = f"reads it as {detail}"
        fix = f"write the mx value in A-label form: {detail}"
    elif tolerance is Tolerance.MX_DROPPED and detail:
        what = f"is not a valid mx value ({detail})"
    elif tolerance is Tolerance.NONE_MAX_AGE and number == 0:
        what = "has no max_age line"
    if tolerance is Tolerance.MX_DROPPED and accepted:
        reads += " and applies the valid ones"
    if accepted:
        daemon = f"postfix-mtasts accepts it and {reads}"
    else:
        daemon = f"postfix-mtasts {reads}, but rejects the policy (see policy-syntax)"
    message = f"{where} {what} ({note.rule}): {daemon}; {kind.others}"
    return Check(kind.rule, kind.check, kind.status, url, message, fix)


def _detail(note: Note) -> str:
    """The specifics the reader's note adds: the A-label an mx was read as,
    or why an mx value was dropped."""
    if note.tolerance is Tolerance.U_LABEL_MX:
        _, found, a_label = note.text.rpartition(" read as ")
        return a_label if found else ""
    if note.tolerance is Tolerance.MX_DROPPED:
        return note.text.removeprefix(f"line {note.line}: ")
    return ""
