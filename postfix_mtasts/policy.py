# -*- test-case-name: tests.unit.test_policy -*-
"""Parse and validate the ``_mta-sts`` TXT record and the policy file (RFC 8461 §3).

Pure: no I/O, no clock.  Every outcome is data: a parser returns the parsed
value or a rejection naming the spec.md rule it breaks; it never raises on
any input.
"""

from __future__ import annotations

import enum

from attrs import frozen

__all__ = [
    "MAX_AGE_LIMIT_S",
    "MAX_POLICY_BYTES",
    "Mode",
    "MxPattern",
    "Note",
    "Policy",
    "PolicyInvalid",
    "RecordInvalid",
    "StsRecord",
    "parse_mx_pattern",
    "parse_policy",
    "parse_sts_records",
]

MAX_POLICY_BYTES = 64 * 1024
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
class StsRecord:
    """A valid ``v=STSv1`` TXT record (spec A)."""

    id: str
    notes: tuple[Note, ...] = ()


@frozen
class RecordInvalid:
    """No usable record: none found, more than one, or a syntax error (A2-A8)."""

    rule: str
    reason: str
    notes: tuple[Note, ...] = ()


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


def parse_sts_records(records: object) -> StsRecord | RecordInvalid:
    """Pick and parse the one ``v=STSv1`` record from a TXT RRset.

    ``records`` is a sequence of records, each a sequence of ``bytes``
    character-strings (as dnspython's ``TXT.strings``), joined without spaces
    (A9).
    """
    raise NotImplementedError


def parse_mx_pattern(value: str) -> MxPattern | None:
    """Parse one ``mx`` value (C12, C13); ``None`` if it is not valid."""
    raise NotImplementedError


def parse_policy(body: bytes) -> Policy | PolicyInvalid:
    """Parse and validate a policy body (spec C1-C19)."""
    raise NotImplementedError
