# -*- test-case-name: tests.unit.test_policy -*-
"""One ``mx`` value of a policy (RFC 8461 §3.2, spec C12, C13).

Pure.  :func:`check_mx` is the strict reading: a lower-case A-label domain of
two or more labels, a leading ``*.`` at most, one trailing dot dropped (D4).
:func:`a_label_form` is the one tolerance the reader applies to a value
before that check: a U-label domain written by a human is the A-label domain
IDNA (UTS 46) maps it to, which has exactly one meaning.
"""

from __future__ import annotations

import re

import idna
from attrs import frozen

from postfix_mtasts.core.text import quote
from postfix_mtasts.core.value import Value

__all__ = ["MxPattern", "a_label_form", "check_mx", "parse_mx_pattern"]


@frozen(repr=False)
class MxPattern(Value):
    """One ``mx`` value: lower-case A-label, no trailing dot (C12, D4).

    ``text`` is the normalised pattern (``*.example.net`` or ``mx.example.net``);
    ``wildcard`` tells whether it began with ``*.``; ``base`` is ``text``
    without the ``*.``.
    """

    text: str
    wildcard: bool
    base: str


_IP_LIKE = re.compile(r"[0-9.]+")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A fast path for the common mx, accepting only what check_mx accepts: two
# or more lower-case LDH labels, the last not all digits, no trailing dot (no
# "xn--": IDNA is checked).
_GOOD_MX = re.compile(
    r"(\*\.)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?=[a-z0-9-]*[a-z-])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
)
# What a U-label value may be made of before IDNA sees it: no ASCII but
# letters, digits, '-', '.' and a leading '*.' (so a URL or an address stays
# invalid rather than being mapped), at most a domain's length.
_U_LABEL_VALUE = re.compile(r"(\*\.)?[^\x00-\x2c/:-@\[-`{-\x7f]{1,253}")


def parse_mx_pattern(value: str) -> MxPattern | None:
    """Parse one ``mx`` value (C12, C13); ``None`` if it is not valid."""
    checked = check_mx(value)
    return checked if isinstance(checked, MxPattern) else None


def check_mx(value: str) -> MxPattern | tuple[str, str]:
    """The pattern, or ``(rule, reason)`` saying why ``value`` is not one."""
    if (
        len(value) <= 253
        and "xn--" not in value
        and (good := _GOOD_MX.fullmatch(value))
    ):
        return MxPattern(text=value, wildcard=good[1] is not None, base=good[2])
    if not value:
        return "C12", "mx is empty"
    if not value.isascii():
        return "C12", f"mx {quote(value)} is not ASCII (U-labels must be A-labels)"
    if _IP_LIKE.fullmatch(value):  # the common invalid value, answered fast
        return "C13", f"mx {quote(value)} looks like an IP address"
    text = value.lower().removesuffix(".")  # one trailing dot (C13, D4)
    if "/" in text:
        return "C13", f"mx {quote(value)} is a URL or path, not a host name"
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


def a_label_form(value: str) -> str | None:
    """The A-label form of a non-ASCII ``mx`` value (``münchen.example`` is
    ``xn--mnchen-3ya.example``, a leading ``*.`` kept), or None when IDNA
    refuses it or it holds ASCII that no domain name holds."""
    if value.isascii() or not _U_LABEL_VALUE.fullmatch(value):
        return None
    wildcard = value.startswith("*.")
    base = value[2:] if wildcard else value
    try:
        encoded = idna.encode(base, uts46=True, transitional=False)
    except (ValueError, UnicodeError):  # idna.IDNAError is a ValueError
        return None
    return ("*." if wildcard else "") + encoded.decode("ascii")


def _is_a_label(label: str) -> bool:
    try:
        return idna.encode(idna.decode(label)) == label.encode("ascii")
    except ValueError:  # idna.IDNAError and UnicodeError are ValueErrors
        return False
