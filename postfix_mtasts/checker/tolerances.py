# -*- test-case-name: tests.unit.test_checker_tolerance -*-
"""How each kind of line the daemon's reader tolerates is reported (spec
H10, H11): rule, check name, status, what the line is, how postfix-mtasts
reads it, what other senders do, and the fix.  Pure data and one choice.

What other senders do comes from a survey of public MTA-STS readers
(docs/decisions.md, "The checker: lines the daemon tolerates"): FAIL where
common senders reject the whole policy, WARN where they generally read the
line as the daemon does.  Where that depends on the line itself,
:func:`kind_of` decides.
"""

from __future__ import annotations

from attrs import evolve, frozen

from postfix_mtasts.checker.model import Status
from postfix_mtasts.core.policy import NONE_MAX_AGE_S, Tolerance
from postfix_mtasts.core.value import Value

__all__ = ["Kind", "kind_of"]

_WSP = " \t"
_KNOWN_KEYS = frozenset(("version", "mode", "max_age", "mx"))
_REJECT = "reject the whole policy"


@frozen(repr=False)
class Kind(Value):
    """How one tolerance is reported: rule, check slug, status, what the
    line is, how this daemon reads it, what other senders do, the fix."""

    rule: str
    check: str
    status: Status
    what: str
    reads: str
    others: str
    fix: str


_KINDS: dict[Tolerance, Kind] = {
    Tolerance.BOM: Kind(
        "H11",
        "policy-bom",
        Status.FAIL,
        "begins with a UTF-8 byte order mark",
        "skips it",
        "most senders keep the mark in the first key, find no 'version' field"
        f" and {_REJECT}",
        "save the file as UTF-8 without a byte order mark (BOM)",
    ),
    Tolerance.BARE_CR: Kind(
        "H10",
        "policy-bare-cr",
        Status.FAIL,
        "ends with a bare CR (a carriage return without a line feed)",
        "reads a bare CR as a line end",
        f"most senders end lines only at LF, see one long line and {_REJECT}",
        "end every line with LF or CRLF",
    ),
    Tolerance.INDENTED: Kind(
        "H11",
        "policy-indented",
        Status.FAIL,
        "begins with whitespace",
        "ignores the whitespace",
        "",  # per key: kind_of
        "remove the whitespace at the start of the line",
    ),
    Tolerance.SPACE_BEFORE_COLON: Kind(
        "H10",
        "policy-space-before-colon",
        Status.FAIL,
        "has whitespace between the key and ':'",
        "ignores the whitespace",
        "",  # per key: kind_of
        "write 'key: value', with no space before the ':'",
    ),
    Tolerance.BLANK_LINE: Kind(
        "H11",
        "policy-blank-line",
        Status.WARN,
        "is blank",
        "skips it",
        f"most senders skip it too; some strict senders {_REJECT}",
        "remove the blank line",
    ),
    Tolerance.TRAILING_BLANK: Kind(
        "H11",
        "policy-trailing-blank",
        Status.WARN,
        "is blank, after the last field",
        "skips it",
        f"most senders skip it too; some strict senders {_REJECT}",
        "remove the blank line(s) at the end of the file",
    ),
    Tolerance.COMMENT_LINE: Kind(
        "H11",
        "policy-comment",
        Status.FAIL,
        "is a '#' comment (the policy format has none)",
        "skips it",
        "",  # with or without ':': kind_of
        "remove the comment line",
    ),
    Tolerance.STRAY_LINE: Kind(
        "H10",
        "policy-stray-line",
        Status.FAIL,
        "is not 'key: value'",
        "skips it",
        "",  # with or without ':': kind_of
        "remove the line (or write it as 'key: value')",
    ),
    Tolerance.BAD_EXTENSION: Kind(
        "H10",
        "policy-bad-extension",
        Status.WARN,
        "has an empty value or a control character",
        "skips it",
        f"most senders ignore an unknown field; strict senders {_REJECT}",
        "remove the line, or give it a value without control characters (TAB)",
    ),
    Tolerance.VALUE_COMMENT: Kind(
        "H10",
        "policy-value-comment",
        Status.FAIL,
        "has a '#' comment after the value",
        "reads the value without the comment",
        "other senders read the comment as part of the value, which is then"
        f" invalid: they {_REJECT} (for an mx line, they never match it)",
        "remove the comment after the value",
    ),
    Tolerance.U_LABEL_MX: Kind(
        "H10",
        "policy-mx-u-label",
        Status.FAIL,
        "is an mx in Unicode (U-label) form; RFC 8461 requires A-labels",
        "reads it as its A-label",
        f"strict senders {_REJECT}; others may keep the Unicode form, which need"
        " not match the MX host name",
        "write the mx value in A-label (xn--) form",
    ),
    Tolerance.MX_TRAILING_DOT: Kind(
        "H10",
        "policy-mx-trailing-dot",
        Status.FAIL,
        "ends its mx name with a dot",
        "drops the dot",
        "senders that keep it match no MX host with this pattern (under"
        f" enforce, its mail is deferred); strict senders {_REJECT}",
        "write the name without the trailing dot",
    ),
    Tolerance.MX_DROPPED: Kind(
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
    Tolerance.NONE_MAX_AGE: Kind(
        "H10",
        "policy-none-max-age",
        Status.FAIL,
        "has no usable max_age (1-10 digits)",
        f"keeps this mode none policy for {NONE_MAX_AGE_S} s",
        f"other senders require a valid max_age in every mode and {_REJECT}",
        f"add 'max_age: {NONE_MAX_AGE_S}' (digits only)",
    ),
}


def kind_of(tolerance: Tolerance, line: str) -> Kind:
    """How ``tolerance`` on ``line`` is reported.  Where the status depends
    on the line itself: whitespace around a key matters only for the keys
    senders need; a line with a ':' is an unknown field to most senders, one
    without is not; a bad value on a repeated known key is read by senders
    where the last value wins."""
    kind = _KINDS[tolerance]
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
