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

import re
from collections.abc import Sequence

from attrs import evolve, frozen

from postfix_mtasts.checker.model import Check, Status
from postfix_mtasts.core.policy import NONE_MAX_AGE_S, Mode, Note, Tolerance
from postfix_mtasts.core.text import quote

__all__ = ["MAX_LINES_PER_CHECK", "body_lines", "syntax_status", "tolerance_checks"]

#: At most this many lines are listed per check name; the rest are counted.
MAX_LINES_PER_CHECK = 10

_UTF8_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(r"\r\n|\r|\n")
_WSP = " \t"
_KNOWN_KEYS = frozenset(("version", "mode", "max_age", "mx"))
_REJECT = "reject the whole policy"


@frozen
class _Kind:
    """How one tolerance is reported: rule, check slug, status, what the
    line is, how this daemon reads it, what other senders do, the fix."""

    rule: str
    check: str
    status: Status
    what: str
    reads: str
    others: str
    fix: str


# What other senders do comes from a survey of public MTA-STS readers
# (docs/decisions.md, "The checker: tolerated lines"); FAIL where common
# senders reject the whole policy.
_KINDS: dict[Tolerance, _Kind] = {
    Tolerance.BOM: _Kind(
        "H11",
        "policy-bom",
        Status.FAIL,
        "begins with a UTF-8 byte order mark",
        "skips it",
        "most senders keep the mark in the first key, find no 'version' field"
        f" and {_REJECT}",
        "save the file as UTF-8 without a byte order mark (BOM)",
    ),
    Tolerance.BARE_CR: _Kind(
        "H10",
        "policy-bare-cr",
        Status.FAIL,
        "ends with a bare CR (a carriage return without a line feed)",
        "reads a bare CR as a line end",
        f"most senders end lines only at LF, see one long line and {_REJECT}",
        "end every line with LF or CRLF",
    ),
    Tolerance.INDENTED: _Kind(
        "H11",
        "policy-indented",
        Status.FAIL,
        "begins with whitespace",
        "ignores the whitespace",
        "",  # per key: _variant
        "remove the whitespace at the start of the line",
    ),
    Tolerance.SPACE_BEFORE_COLON: _Kind(
        "H10",
        "policy-space-before-colon",
        Status.FAIL,
        "has whitespace between the key and ':'",
        "ignores the whitespace",
        "",  # per key: _variant
        "write 'key: value', with no space before the ':'",
    ),
    Tolerance.BLANK_LINE: _Kind(
        "H11",
        "policy-blank-line",
        Status.WARN,
        "is blank",
        "skips it",
        f"most senders skip it too; some strict senders {_REJECT}",
        "remove the blank line",
    ),
    Tolerance.TRAILING_BLANK: _Kind(
        "H11",
        "policy-trailing-blank",
        Status.WARN,
        "is blank, after the last field",
        "skips it",
        f"most senders skip it too; some strict senders {_REJECT}",
        "remove the blank line(s) at the end of the file",
    ),
    Tolerance.COMMENT_LINE: _Kind(
        "H11",
        "policy-comment",
        Status.FAIL,
        "is a '#' comment (the policy format has none)",
        "skips it",
        "",  # with or without ':': _variant
        "remove the comment line",
    ),
    Tolerance.STRAY_LINE: _Kind(
        "H10",
        "policy-stray-line",
        Status.FAIL,
        "is not 'key: value'",
        "skips it",
        "",  # with or without ':': _variant
        "remove the line (or write it as 'key: value')",
    ),
    Tolerance.BAD_EXTENSION: _Kind(
        "H10",
        "policy-bad-extension",
        Status.WARN,
        "has an empty value or a control character",
        "skips it",
        f"most senders ignore an unknown field; strict senders {_REJECT}",
        "remove the line, or give it a value without control characters (TAB)",
    ),
    Tolerance.VALUE_COMMENT: _Kind(
        "H10",
        "policy-value-comment",
        Status.FAIL,
        "has a '#' comment after the value",
        "reads the value without the comment",
        "other senders read the comment as part of the value, which is then"
        f" invalid: they {_REJECT} (for an mx line, they never match it)",
        "remove the comment after the value",
    ),
    Tolerance.U_LABEL_MX: _Kind(
        "H10",
        "policy-mx-u-label",
        Status.FAIL,
        "is an mx in Unicode (U-label) form; RFC 8461 requires A-labels",
        "reads it as its A-label",
        f"strict senders {_REJECT}; others may keep the Unicode form, which need"
        " not match the MX host name",
        "write the mx value in A-label (xn--) form",
    ),
    Tolerance.MX_DROPPED: _Kind(
        "H10",
        "policy-mx-dropped",
        Status.FAIL,
        "is not a valid mx value",
        "drops this mx line",
        f"strict senders {_REJECT}; lenient ones keep the value as a pattern that"
        " matches no MX host",
        "remove the line, or write an MX host name or '*.domain' (no IP address,"
        " port, URL or partial wildcard)",
    ),
    Tolerance.NONE_MAX_AGE: _Kind(
        "H10",
        "policy-none-max-age",
        Status.FAIL,
        "has no usable max_age (1-10 digits)",
        f"keeps this mode none policy for {NONE_MAX_AGE_S} s",
        f"other senders require a valid max_age in every mode and {_REJECT}",
        f"add 'max_age: {NONE_MAX_AGE_S}' (digits only)",
    ),
}


def _variant(kind: _Kind, tolerance: Tolerance, line: str) -> _Kind:
    """Where the status depends on the line itself: whitespace around a key
    matters only for the keys senders need; a line with a ':' is an unknown
    field to most senders, one without is not; a bad value on a repeated
    known key is read by senders where the last value wins."""
    key = line.strip(_WSP).partition(":")[0].strip(_WSP)
    if tolerance in (Tolerance.INDENTED, Tolerance.SPACE_BEFORE_COLON):
        if key not in _KNOWN_KEYS:
            others = "senders ignore this unknown field either way"
            return evolve(kind, status=Status.WARN, others=others)
        missed = "do not apply this mx" if key == "mx" else _REJECT
        others = (
            f"senders that match keys exactly see no {key!r} field here and {missed}"
        )
        return evolve(kind, others=others)
    if tolerance in (Tolerance.COMMENT_LINE, Tolerance.STRAY_LINE):
        if ":" in line:
            others = (
                f"most senders ignore it as an unknown field; strict ones {_REJECT}"
            )
            return evolve(kind, status=Status.WARN, others=others)
        others = (
            f"senders that need a ':' on every line {_REJECT}, and readers that"
            " take a key up to the next ':' lose the next line's key"
        )
        return evolve(kind, others=others)
    if tolerance is Tolerance.BAD_EXTENSION and key in _KNOWN_KEYS:
        others = (
            f"senders where the last {key!r} line wins read this value and {_REJECT}"
        )
        return evolve(kind, status=Status.FAIL, others=others)
    return kind


_REMOVAL_BLOCKED = (
    "; a sender that rejects this mode none policy keeps its cached enforce or"
    " testing policy until that expires, so the removal path (RFC 8461 §8.3)"
    " is blocked for it"
)


def body_lines(body: bytes) -> list[str]:
    """The lines of ``body`` as the reader numbers them (BOM skipped; LF,
    CRLF and bare CR end a line), for quoting."""
    body = body.removeprefix(_UTF8_BOM)
    return _LINE_END.split(body.decode("utf-8", "replace"))


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
    read (a rejected ``mode: none`` blocks the removal path for strict
    senders).
    """
    lines = body_lines(body)
    tolerated = sorted(
        ((n, n.tolerance) for n in notes if n.tolerance is not None),
        key=lambda pair: pair[0].line,
    )
    checks: list[Check] = []
    more: dict[str, list[tuple[int, Check]]] = {}
    for note, tolerance in tolerated:
        check = _check(url, lines, note, tolerance, accepted, mode)
        if sum(c.check == check.check for c in checks) < MAX_LINES_PER_CHECK:
            checks.append(check)
        else:
            more.setdefault(check.check, []).append((note.line, check))
    for rest in more.values():
        first, last = rest[0][0], rest[-1][0]
        worst = syntax_status([c for _, c in rest])
        message = (
            f"and {len(rest)} more line(s) like this, lines {first}-{last}:"
            " not listed one by one"
        )
        checks.append(evolve(rest[0][1], status=worst, message=message))
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
    kind = _variant(_KINDS[tolerance], tolerance, raw)
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
    others = kind.others
    if accepted and mode is Mode.NONE:
        others += _REMOVAL_BLOCKED
    message = f"{where} {what} ({note.rule}): {daemon}; {others}"
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
