# -*- test-case-name: tests.unit.test_policy -*-
"""What the policy reader returns (RFC 8461 §3.2, spec C): a valid
:class:`Policy` with its :class:`Note` s, or :class:`PolicyInvalid`.  Pure."""

from __future__ import annotations

import enum

from attrs import frozen

from postfix_mtasts.core.policy_mx import MxPattern
from postfix_mtasts.core.value import Value

__all__ = [
    "MAX_AGE_LIMIT_S",
    "NONE_MAX_AGE_S",
    "Mode",
    "Note",
    "Policy",
    "PolicyInvalid",
    "Tolerance",
]

MAX_AGE_LIMIT_S = 31_557_600

#: How long a ``mode: none`` policy without a usable ``max_age`` is kept.
NONE_MAX_AGE_S = 86_400


class Mode(enum.Enum):
    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


class Tolerance(enum.Enum):
    """A departure from the RFC 8461 §3.2 grammar the reader forgave."""

    BOM = "bom"
    BARE_CR = "bare-cr"
    INDENTED = "indented"
    SPACE_BEFORE_COLON = "space-before-colon"
    BLANK_LINE = "blank-line"
    TRAILING_BLANK = "trailing-blank"
    COMMENT_LINE = "comment-line"
    STRAY_LINE = "stray-line"
    BAD_EXTENSION = "bad-extension"
    VALUE_COMMENT = "value-comment"
    U_LABEL_MX = "u-label-mx"
    MX_TRAILING_DOT = "mx-trailing-dot"
    MX_DROPPED = "mx-dropped"
    NONE_MAX_AGE = "none-max-age"


@frozen(repr=False)
class Note(Value):
    """Something tolerated or ignored while parsing (e.g. C5), at ``line``
    (1-based; 0 for the whole body); ``tolerance`` is set when the body
    departs from the grammar there.  ``unlisted`` counts the lines of this
    kind past the reader's listing bound that the note (line 0) stands for."""

    rule: str
    text: str
    line: int = 0
    tolerance: Tolerance | None = None
    unlisted: int = 0


@frozen(repr=False)
class Policy(Value):
    """A valid policy (spec C19). ``mx`` is deduplicated in policy order;
    ``lines`` are the raw lines (trimmed of their terminator) in order (C18)."""

    mode: Mode
    max_age: int
    mx: tuple[MxPattern, ...]
    lines: tuple[str, ...]
    notes: tuple[Note, ...] = ()

    @property
    def tolerated(self) -> tuple[Note, ...]:
        """The notes saying where the body departs from the grammar."""
        return tuple(note for note in self.notes if note.tolerance is not None)


@frozen(repr=False)
class PolicyInvalid(Value):
    """The body is not a valid policy; counts as a fetch failure (C17)."""

    rule: str
    reason: str
    notes: tuple[Note, ...] = ()
