# -*- test-case-name: tests.unit.test_policy -*-
"""Parse and validate the policy file (RFC 8461 §3.2, spec C).

Pure: no I/O, no clock.  A parser returns the parsed value or a rejection
naming the spec.md rule it breaks, never raising; ``notes`` list what a
domain-owner checker should warn about (the ``_mta-sts`` TXT record is
parsed the same way, in record.py).  Decisions (spec.md J): C3 a leading BOM and trailing blank (empty or
WSP-only) lines tolerated, other blank lines and ``#`` comments invalid; C9
``max_age`` > :data:`MAX_AGE_LIMIT_S` invalid; C10 ``max_age: 0`` valid; C13 and
C15 strict: one bad ``mx`` or extension line invalidates the policy, so an IP
never reaches Postfix; an ``mx`` needs two or more labels after any ``*.``.
"""

from __future__ import annotations

import enum
import re

import idna
from attrs import evolve, frozen

from postfix_mtasts.core.policyhost import MAX_POLICY_BYTES
from postfix_mtasts.core.text import quote

__all__ = [
    "MAX_AGE_LIMIT_S",
    "Mode",
    "MxPattern",
    "Note",
    "Policy",
    "PolicyInvalid",
    "parse_mx_pattern",
    "parse_policy",
]

MAX_AGE_LIMIT_S = 31_557_600


class Mode(enum.Enum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@frozen
class Note:
    """Something tolerated or ignored while parsing, for the checker (e.g. C5)."""

    rule: str
    text: str


@frozen
class MxPattern:
    """One ``mx`` value: lower-case A-label, no trailing dot (C12, D4).

    ``text`` is the normalised pattern (``*.example.net`` or ``mx.example.net``);
    ``wildcard`` tells whether it began with ``*.``; ``base`` is ``text``
    without the ``*.``.
    """

    text: str
    wildcard: bool
    base: str


@frozen
class Policy:
    """A valid policy (spec C19). ``mx`` is deduplicated in policy order;
    ``lines`` are the raw lines (trimmed of their terminator) in order (C18)."""

    mode: Mode
    max_age: int
    mx: tuple[MxPattern, ...]
    lines: tuple[str, ...]
    notes: tuple[Note, ...] = ()


@frozen
class PolicyInvalid:
    """The body is not a valid policy; counts as a fetch failure (C17)."""

    rule: str
    reason: str
    notes: tuple[Note, ...] = ()


_WSP = " \t"
_UTF8_BOM = b"\xef\xbb\xbf"
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_BAD_EXT_VALUE = re.compile(r"\A\Z|[\x00-\x1f\x7f]")  # empty, or a CTL
_BARE_CR = re.compile(r"\r(?!\n)")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A fast path for the common mx, accepting only what _check_mx accepts: two
# or more lower-case LDH labels, the last not all digits, no trailing dot (no
# "xn--": IDNA is checked).
_GOOD_MX = re.compile(
    r"(\*\.)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?=[a-z0-9-]*[a-z-])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
)
_REQUIRED = {"version": "C4", "mode": "C6", "max_age": "C8"}
_KNOWN_KEYS = frozenset((*_REQUIRED, "mx"))
_MODES = {mode.value: mode for mode in Mode}


def parse_mx_pattern(value: str) -> MxPattern | None:
    """Parse one ``mx`` value (C12, C13); ``None`` if it is not valid."""
    checked = _check_mx(value)
    return checked if isinstance(checked, MxPattern) else None


def _check_mx(value: str) -> MxPattern | tuple[str, str]:
    """The pattern, or ``(rule, reason)`` saying why ``value`` is not one."""
    if (
        len(value) <= 253
        and "xn--" not in value
        and (good := _GOOD_MX.fullmatch(value))
    ):
        return MxPattern(text=value, wildcard=good[1] is not None, base=good[2])
    if not value.isascii():
        return "C12", f"mx {quote(value)} is not ASCII (U-labels must be A-labels)"
    text = value.lower().removesuffix(".")  # one trailing dot (C13, D4)
    for chars, what in (("[]", "an IP literal"), (":", "a port or IPv6"), ("_", "_")):
        if any(c in text for c in chars):
            return "C13", f"mx {quote(value)} contains {what}"
    wildcard = text.startswith("*.")
    base = text[2:] if wildcard else text
    labels = base.split(".")
    if "*" in base:
        return "C12", f"mx {quote(value)}: '*' is allowed only as a leading '*.'"
    if len(labels) < 2:
        return "C12", f"mx {quote(value)} needs 2 or more labels after any '*.'"
    if len(text) > 253:
        return "C12", f"mx {quote(value)} is longer than 253 characters"
    for label in labels:
        if not _LDH_LABEL.fullmatch(label):
            return "C12", f"mx {quote(value)} has invalid label {quote(label)}"
        if label.startswith("xn--") and not _is_a_label(label):
            return "C12", f"mx {quote(value)} has invalid A-label {quote(label)}"
    if labels[-1].isdigit():
        return "C13", f"mx {quote(value)} looks like an IP address"
    return MxPattern(text=text, wildcard=wildcard, base=base)


def _is_a_label(label: str) -> bool:
    try:
        return idna.encode(idna.decode(label)) == label.encode("ascii")
    except ValueError:  # idna.IDNAError and UnicodeError are ValueErrors
        return False


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
        notes.append(Note("C3", "leading UTF-8 byte order mark ignored"))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        why = f"not UTF-8: byte {quote(body[exc.start : exc.start + 1])} at {exc.start}"
        return PolicyInvalid("C16", why, tuple(notes))
    lines = text.split("\n")
    if "\r" in text:
        if bare_cr := _BARE_CR.search(text):
            number = text.count("\n", 0, bare_cr.start()) + 1
            return PolicyInvalid("C1", f"line {number}: bare CR", tuple(notes))
        if text.count("\r\n") < len(lines) - 1:
            notes.append(Note("C1", "mixed LF and CRLF line endings"))
        lines = [line.removesuffix("\r") for line in lines]
    if lines[-1] == "":
        lines.pop()  # after the final terminator, or an empty body
    blank = 0
    while lines and not lines[-1].strip(_WSP):
        lines.pop()
        blank += 1
    if blank:
        notes.append(Note("C3", f"{blank} trailing blank line(s) ignored"))
    return _parse_fields(lines, notes, max_age_limit)


def _split_line(number: int, line: str) -> tuple[str, str] | PolicyInvalid:
    """``(key, value)`` of one line, value stripped of WSP (C2, C3, C15)."""
    key, colon, value = line.partition(":")
    where = f"line {number}: {quote(line)}"
    if not line.strip(_WSP) or line.startswith("#"):
        what = "comment" if line.startswith("#") else "blank line"
        return PolicyInvalid("C3", f"{where} is a {what} (only trailing ones allowed)")
    if line[0] in _WSP:
        return PolicyInvalid("C2", f"{where} has whitespace before the key")
    if not colon:
        return PolicyInvalid("C2", f"{where} has no ':'")
    if not key:
        return PolicyInvalid("C2", f"{where} has no key before ':'")
    if key[-1] in _WSP:
        return PolicyInvalid("C2", f"{where} has whitespace before ':'")
    if not _EXT_NAME.fullmatch(key):
        return PolicyInvalid("C15", f"{where}: invalid field name {quote(key)}")
    return key, value.strip(_WSP)


def _parse_fields(
    lines: list[str], notes: list[Note], max_age_limit: int | None
) -> Policy | PolicyInvalid:
    first: dict[str, tuple[int, str]] = {}  # key: (line number, value)
    mx: dict[str, MxPattern] = {}
    unknown: dict[str, None] = {}
    duplicates: dict[str, None] = {}
    duplicate_mx = 0
    for number, line in enumerate(lines, 1):
        key, colon, value = line.partition(":")
        if colon and (key in _KNOWN_KEYS or _EXT_NAME.fullmatch(key)):
            value = value.strip(_WSP)
        else:
            split = _split_line(number, line)
            if isinstance(split, PolicyInvalid):
                return evolve(split, notes=tuple(notes))
            key, value = split
        if key == "mx":
            pattern = _check_mx(value)
            if not isinstance(pattern, MxPattern):
                why = f"line {number}: {pattern[1]}"
                return PolicyInvalid(pattern[0], why, tuple(notes))
            duplicate_mx += pattern.text in mx
            mx.setdefault(pattern.text, pattern)
        elif key in _KNOWN_KEYS and key not in first:
            first[key] = number, value
        elif bad := _BAD_EXT_VALUE.search(value):
            what = (
                f"a control character {quote(bad.group())}"
                if value
                else "an empty value"
            )
            why = f"line {number}: {quote(line)} has {what}"
            return PolicyInvalid("C15", why, tuple(notes))
        elif key in first:
            duplicates[key] = None
        else:
            unknown[key] = None
    variants = [key for key in unknown if key.lower() in _KNOWN_KEYS] if unknown else []
    if variants:
        why = f"field(s) {quote(variants)} ignored: keys are case-sensitive"
        notes.append(Note("C7", why))
    if unknown:
        notes.append(Note("C14", f"unknown field(s) ignored: {quote(list(unknown))}"))
    if duplicates:
        why = f"duplicate field(s) ignored, first kept: {quote(list(duplicates))}"
        notes.append(Note("C14", why))
    if duplicate_mx:
        notes.append(Note("C11", f"{duplicate_mx} duplicate mx line(s) ignored"))
    for key, rule in _REQUIRED.items() if len(first) < len(_REQUIRED) else ():
        if key not in first:
            near = [k for k in variants if k.lower() == key]
            if near:
                why = f"no {key!r} field ({quote(near[0])} differs in case)"
                return PolicyInvalid("C7", why, tuple(notes))
            return PolicyInvalid(rule, f"no {key!r} field", tuple(notes))
    if (version_line := first["version"][0]) != 1:
        notes.append(Note("C5", f"'version' is on line {version_line}, not 1"))
    return _check_values(first, tuple(mx.values()), lines, notes, max_age_limit)


def _check_values(
    first: dict[str, tuple[int, str]],
    mx: tuple[MxPattern, ...],
    lines: list[str],
    notes: list[Note],
    max_age_limit: int | None,
) -> Policy | PolicyInvalid:
    def bad(rule: str, key: str, why: str) -> PolicyInvalid:
        number, value = first[key]
        why = f"line {number}: {key} {quote(value)} {why}"
        return PolicyInvalid(rule, why, tuple(notes))

    if first["version"][1] != "STSv1":
        return bad("C4", "version", "is not 'STSv1'")
    if (mode := _MODES.get(first["mode"][1])) is None:
        return bad("C6", "mode", "is not one of enforce, testing, none")
    if not _MAX_AGE.fullmatch(first["max_age"][1]):
        return bad("C8", "max_age", "is not 1-10 ASCII digits")
    max_age = int(first["max_age"][1])
    if max_age_limit is not None and max_age > max_age_limit:
        return bad("C9", "max_age", f"exceeds {max_age_limit}")
    if not mx and mode is not Mode.NONE:
        why = f"mode {mode.value!r} needs at least one mx line"
        return PolicyInvalid("C11", why, tuple(notes))
    return Policy(mode, max_age, mx, tuple(lines), tuple(notes))
