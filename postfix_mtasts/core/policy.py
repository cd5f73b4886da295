# -*- test-case-name: tests.unit.test_policy -*-
"""Parse and validate the policy file (RFC 8461 §3.2, spec C).

Pure: no I/O, no clock.  A parser returns the parsed value or a rejection
naming the spec.md rule it breaks, never raising.

The reader is tolerant where a file has exactly one meaning, and strict on
what changes what is enforced (docs/decisions.md, C2/C3/C13/C15):

* tolerated, each as a :class:`Note` with its :class:`Tolerance` and line:
  a leading BOM, bare CR line ends, whitespace around a key, blank lines,
  ``#`` comment lines, lines that are not ``key: value`` (stray words or
  sentences), malformed extension lines, a ``#`` comment after the value of
  a known key, a U-label ``mx`` (read as its A-label), an invalid ``mx``
  value (dropped while a valid one remains), and in a policy whose mode is
  plainly ``none``, a missing or unusable ``max_age`` or ``mx``;
* strict: ``version`` must be ``STSv1``, ``mode`` one of the three words,
  ``max_age`` 1-10 digits within :data:`MAX_AGE_LIMIT_S` (C9), and an
  ``enforce`` or ``testing`` policy needs a valid ``mx`` (C11).

Other notes (no ``tolerance``) are grammatical but worth a domain owner's
look, e.g. C5 ``version`` not first.  The ``_mta-sts`` TXT record is parsed
exactly, in record.py.
"""

from __future__ import annotations

import re

from postfix_mtasts.core.policy_fields import read_fields, tolerated
from postfix_mtasts.core.policy_mx import MxPattern, parse_mx_pattern
from postfix_mtasts.core.policy_types import (
    MAX_AGE_LIMIT_S,
    NONE_MAX_AGE_S,
    Mode,
    Note,
    Policy,
    PolicyInvalid,
    Tolerance,
)
from postfix_mtasts.core.policyhost import MAX_POLICY_BYTES
from postfix_mtasts.core.text import quote

__all__ = [
    "MAX_AGE_LIMIT_S",
    "NONE_MAX_AGE_S",
    "Mode",
    "MxPattern",
    "Note",
    "Policy",
    "PolicyInvalid",
    "Tolerance",
    "body_lines",
    "parse_mx_pattern",
    "parse_policy",
]


_WSP = " \t"
_UTF8_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(r"\r\n|\r|\n")
_BARE_CR = re.compile(r"\r(?!\n)")
# A C0 control but TAB, CR and LF, or DEL: the body is not text (C16).
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def parse_policy(
    body: bytes, *, max_age_limit: int | None = MAX_AGE_LIMIT_S
) -> Policy | PolicyInvalid:
    """Parse and validate a policy body (spec C1-C19).

    ``max_age_limit=None`` accepts any 1-10 digit ``max_age`` (C9 lifted), for
    the checker, which judges the range itself (H12).
    """
    if len(body) > MAX_POLICY_BYTES:
        return PolicyInvalid("B12", f"{len(body)} bytes > {MAX_POLICY_BYTES}")
    notes: list[Note] = []
    if body.startswith(_UTF8_BOM):
        body = body[len(_UTF8_BOM) :]
        notes.append(tolerated(Tolerance.BOM, "C3", 1, "leading UTF-8 BOM ignored"))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        why = f"not UTF-8: byte {quote(body[exc.start : exc.start + 1])} at {exc.start}"
        return PolicyInvalid("C16", why, tuple(notes))
    if control := _NOT_TEXT.search(text):
        number = len(_LINE_END.split(text[: control.start()]))
        why = f"not text: control character {quote(control.group())} on line {number}"
        return PolicyInvalid("C16", why, tuple(notes))
    lines = _split_lines(text, notes) if "\r" in text else text.split("\n")
    if lines[-1] == "":
        lines.pop()  # after the final terminator, or an empty body
    blank = len(lines)
    while blank and not lines[blank - 1].strip(_WSP):
        blank -= 1
    if blank < len(lines):
        why = f"{len(lines) - blank} trailing blank line(s) ignored"
        notes.append(tolerated(Tolerance.TRAILING_BLANK, "C3", blank + 1, why))
    return read_fields(lines[:blank], notes, max_age_limit)


def body_lines(body: bytes) -> list[str]:
    """The lines of ``body`` numbered as :func:`parse_policy` numbers them
    (BOM skipped; LF, CRLF and bare CR end a line), whatever its bytes: for
    quoting a line a note names."""
    text = body.removeprefix(_UTF8_BOM).decode("utf-8", "replace")
    return _LINE_END.split(text)


def _split_lines(text: str, notes: list[Note]) -> list[str]:
    """C1: CRLF and LF are grammatical, mixed too; a bare CR is not, and is
    read as a line end."""
    crlf = text.count("\r\n")
    if crlf == text.count("\r"):  # every CR ends a line with its LF
        if crlf < text.count("\n"):
            notes.append(Note("C1", "mixed LF and CRLF line endings"))
        return [line.removesuffix("\r") for line in text.split("\n")]
    first = _BARE_CR.search(text)
    number = len(_LINE_END.split(text[: first.start() if first else 0]))
    why = "line(s) ended by a bare CR, read as line ends"
    notes.append(tolerated(Tolerance.BARE_CR, "C1", number, why))
    return _LINE_END.split(text)
