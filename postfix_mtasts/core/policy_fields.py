# -*- test-case-name: tests.unit.test_policy -*-
"""The fields of a policy body, line by line (RFC 8461 §3.2, spec C2-C15).

Pure.  :func:`read_fields` takes the body's lines (terminators and trailing
blank lines gone) and returns the policy or why it is invalid, tolerating
what has one meaning and staying strict on what changes what is enforced
(see :mod:`postfix_mtasts.core.policy`).
"""

from __future__ import annotations

import re

from postfix_mtasts.core.policy_mx import MxPattern, a_label_form, check_mx
from postfix_mtasts.core.policy_types import (
    NONE_MAX_AGE_S,
    Mode,
    Note,
    Policy,
    PolicyInvalid,
    Tolerance,
)
from postfix_mtasts.core.text import quote

__all__ = ["MAX_IDNA_MX", "MAX_LISTED_LINES", "read_fields", "tolerated"]

_WSP = " \t"
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_BAD_EXT_VALUE = re.compile(r"\A\Z|[\x00-\x1f\x7f]")  # empty, or a CTL
_VALUE_COMMENT = re.compile(r"(?:\A|[ \t])#")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_REQUIRED = {"version": "C4", "mode": "C6", "max_age": "C8"}
_KNOWN_KEYS = frozenset((*_REQUIRED, "mx"))
_MODES = {mode.value: mode for mode in Mode}
_IDNA = re.compile("xn--", re.IGNORECASE)

#: How many internationalised mx values (U-labels, or A-labels to check) a
#: policy may hold: IDNA in Python costs up to a millisecond a value, and the
#: reader runs on the reactor thread; no real policy lists more than a few.
MAX_IDNA_MX = 32

#: How many tolerated lines are noted one by one; the rest are counted.
MAX_LISTED_LINES = 100


def read_fields(
    lines: list[str], notes: list[Note], max_age_limit: int | None
) -> Policy | PolicyInvalid:
    """The policy these lines hold; ``notes`` so far are kept and added to."""
    return _Reader(notes, max_age_limit).read(lines)


def tolerated(tolerance: Tolerance, rule: str, line: int, text: str) -> Note:
    return Note(rule, text, line, tolerance)


class _Reader:
    """One pass over the lines, then the values' checks."""

    def __init__(self, notes: list[Note], max_age_limit: int | None) -> None:
        self.notes = notes
        self.max_age_limit = max_age_limit
        self.first: dict[str, tuple[int, str]] = {}  # key: (line number, value)
        self.mx: dict[str, MxPattern] = {}
        self.dropped_mx: list[tuple[str, str]] = []  # (rule, reason)
        self.unknown: dict[str, None] = {}
        self.duplicates: dict[str, None] = {}
        self.duplicate_mx = 0
        self.idna_left = MAX_IDNA_MX
        self.listed = 0
        self.unlisted: dict[Tolerance, tuple[str, int]] = {}  # kind: (rule, count)

    def tolerate(self, tolerance: Tolerance, rule: str, number: int, why: str) -> None:
        if self.listed < MAX_LISTED_LINES or not number:
            self.listed += bool(number)
            self.notes.append(tolerated(tolerance, rule, number, why))
        else:
            _, count = self.unlisted.get(tolerance, (rule, 0))
            self.unlisted[tolerance] = rule, count + 1

    def tolerate_line(
        self, tolerance: Tolerance, rule: str, number: int, line: str, words: str
    ) -> None:
        """Note a tolerated line, quoted; past :data:`MAX_LISTED_LINES` only
        counted (a hostile body of 10,000 stray lines gets 100 notes)."""
        if self.listed < MAX_LISTED_LINES:
            self.tolerate(
                tolerance, rule, number, f"line {number}: {quote(line)} {words}"
            )
        else:
            self.tolerate(tolerance, rule, number, "")

    def read(self, lines: list[str]) -> Policy | PolicyInvalid:
        first, mx = self.first, self.mx
        for number, line in enumerate(lines, 1):
            key, colon, value = line.partition(":")
            if not colon or key not in _KNOWN_KEYS:
                self.odd_line(number, line)
                continue
            value = value.strip(_WSP)
            if "#" not in value:  # the common, grammatical line, inline
                if key != "mx":
                    if key not in first:
                        first[key] = number, value
                        continue
                elif value.isascii() and not _IDNA.search(value):
                    pattern = check_mx(value)
                    if isinstance(pattern, tuple):
                        self.drop_mx(number, pattern)
                    elif pattern.text in mx:
                        self.duplicate_mx += 1
                    else:
                        mx[pattern.text] = pattern
                    if value[-1:] == "." and not isinstance(pattern, tuple):
                        self.trailing_dot(number, value, pattern)
                    continue
            self.field(number, line, key, value)
        return self.finish(lines)

    def odd_line(self, number: int, line: str) -> None:
        """A line that does not begin with a known key and ':'."""
        stripped = line.strip(_WSP)
        if not stripped:
            self.tolerate_line(Tolerance.BLANK_LINE, "C3", number, line, "is blank")
            return
        if stripped.startswith("#"):
            self.tolerate_line(
                Tolerance.COMMENT_LINE, "C3", number, line, "is a comment"
            )
            return
        key, colon, value = stripped.partition(":")
        name = key.rstrip(_WSP)
        if not colon or not _EXT_NAME.fullmatch(name):
            words = "is not 'key: value'"
            self.tolerate_line(Tolerance.STRAY_LINE, "C2", number, line, words)
            return
        if line[0] in _WSP:
            words = "begins with whitespace"
            self.tolerate_line(Tolerance.INDENTED, "C2", number, line, words)
        if name != key:
            words = "has whitespace before ':'"
            self.tolerate_line(Tolerance.SPACE_BEFORE_COLON, "C2", number, line, words)
        self.field(number, line, name, value.strip(_WSP))

    def field(self, number: int, line: str, key: str, value: str) -> None:
        if key in _KNOWN_KEYS and (comment := _VALUE_COMMENT.search(value)):
            value = value[: comment.start()].rstrip(_WSP)
            why = f"line {number}: comment after {key} {quote(value)} ignored"
            self.tolerate(Tolerance.VALUE_COMMENT, "C2", number, why)
        if key == "mx":
            self.mx_value(number, value)
        elif key in _KNOWN_KEYS and key not in self.first:
            self.first[key] = number, value
        elif bad := _BAD_EXT_VALUE.search(value):
            what = f"a control character {quote(bad.group())}" if value else "no value"
            words = f"has {what}: ignored"
            self.tolerate_line(Tolerance.BAD_EXTENSION, "C15", number, line, words)
        elif key in self.first:
            self.duplicates[key] = None
        else:
            self.unknown[key] = None

    def mx_value(self, number: int, value: str) -> None:
        if not value.isascii() or _IDNA.search(value):
            if not self.idna_left:
                why = f"mx {quote(value)} dropped unread: more than {MAX_IDNA_MX}"
                self.drop_mx(number, ("C12", why + " internationalised mx values"))
                return
            self.idna_left -= 1
        pattern = check_mx(value)
        if not isinstance(pattern, MxPattern) and (a_label := a_label_form(value)):
            converted = check_mx(a_label)
            if isinstance(converted, MxPattern):
                why = f"line {number}: mx {quote(value)} read as {converted.text!r}"
                self.tolerate(Tolerance.U_LABEL_MX, "C12", number, why)
                pattern = converted
        if not isinstance(pattern, MxPattern):
            self.drop_mx(number, pattern)
            return
        if value.endswith("."):
            self.trailing_dot(number, value, pattern)
        self.duplicate_mx += pattern.text in self.mx
        self.mx.setdefault(pattern.text, pattern)

    def trailing_dot(self, number: int, value: str, pattern: MxPattern) -> None:
        """C13: one trailing dot is normalised away (D4), and noted: it is
        not in RFC 5321's Domain."""
        why = f"line {number}: mx {quote(value)} read as {pattern.text!r}"
        self.tolerate(Tolerance.MX_TRAILING_DOT, "C13", number, why)

    def drop_mx(self, number: int, invalid: tuple[str, str]) -> None:
        rule, reason = invalid
        self.tolerate(Tolerance.MX_DROPPED, rule, number, f"line {number}: {reason}")
        self.dropped_mx.append(invalid)

    def finish(self, lines: list[str]) -> Policy | PolicyInvalid:
        notes, unknown = self.notes, self.unknown
        for kind, (rule, count) in self.unlisted.items():
            why = f"{count} more line(s) of this kind not listed"
            notes.append(Note(rule, why, 0, kind, unlisted=count))
        variants = [k for k in unknown if k.lower() in _KNOWN_KEYS] if unknown else []
        if variants:
            why = f"field(s) {quote(variants)} ignored: keys are case-sensitive"
            notes.append(Note("C7", why))
        if unknown:
            notes.append(
                Note("C14", f"unknown field(s) ignored: {quote(list(unknown))}")
            )
        if self.duplicates:
            duplicates = quote(list(self.duplicates))
            notes.append(
                Note("C14", f"duplicate field(s) ignored, first kept: {duplicates}")
            )
        if self.duplicate_mx:
            notes.append(
                Note("C11", f"{self.duplicate_mx} duplicate mx line(s) ignored")
            )
        for key in ("version", "mode"):
            if key not in self.first:
                return self.missing(key, variants)
        if (version_line := self.first["version"][0]) != 1:
            notes.append(
                Note("C5", f"'version' is on line {version_line}, not 1", version_line)
            )
        return self.check_values(lines)

    def missing(self, key: str, variants: list[str]) -> PolicyInvalid:
        near = [k for k in variants if k.lower() == key]
        if near:
            why = f"no {key!r} field ({quote(near[0])} differs in case)"
            return PolicyInvalid("C7", why, tuple(self.notes))
        return PolicyInvalid(_REQUIRED[key], f"no {key!r} field", tuple(self.notes))

    def bad(self, rule: str, key: str, why: str) -> PolicyInvalid:
        number, value = self.first[key]
        why = f"line {number}: {key} {quote(value)} {why}"
        return PolicyInvalid(rule, why, tuple(self.notes))

    def check_values(self, lines: list[str]) -> Policy | PolicyInvalid:
        if self.first["version"][1] != "STSv1":
            return self.bad("C4", "version", "is not 'STSv1'")
        if (mode := _MODES.get(self.first["mode"][1])) is None:
            return self.bad("C6", "mode", "is not one of enforce, testing, none")
        max_age = self.max_age()
        if isinstance(max_age, PolicyInvalid):
            if mode is not Mode.NONE:
                return max_age
            why = f"mode none: {max_age.reason}; kept {NONE_MAX_AGE_S} s"
            number = self.first.get("max_age", (0, ""))[0]
            # Always listed, whatever came before: it says what max_age applies.
            self.notes.append(
                tolerated(Tolerance.NONE_MAX_AGE, max_age.rule, number, why)
            )
            max_age = NONE_MAX_AGE_S
        if not self.mx and mode is not Mode.NONE:
            if self.dropped_mx:  # the first invalid value names the rule
                reasons = "; ".join(reason for _, reason in self.dropped_mx[:3])
                if len(self.dropped_mx) > 3:
                    reasons += f"; and {len(self.dropped_mx) - 3} more"
                why = f"no valid mx line left: {reasons}"
                return PolicyInvalid(self.dropped_mx[0][0], why, tuple(self.notes))
            why = f"mode {mode.value!r} needs at least one mx line"
            return PolicyInvalid("C11", why, tuple(self.notes))
        mx = tuple(self.mx.values())
        return Policy(mode, max_age, mx, tuple(lines), tuple(self.notes))

    def max_age(self) -> int | PolicyInvalid:
        if "max_age" not in self.first:
            return self.missing(
                "max_age", [k for k in self.unknown if k.lower() == "max_age"]
            )
        if not _MAX_AGE.fullmatch(self.first["max_age"][1]):
            return self.bad("C8", "max_age", "is not 1-10 ASCII digits")
        max_age = int(self.first["max_age"][1])
        if self.max_age_limit is not None and max_age > self.max_age_limit:
            return self.bad("C9", "max_age", f"exceeds {self.max_age_limit}")
        return max_age
