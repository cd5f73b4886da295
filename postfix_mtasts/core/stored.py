# -*- test-case-name: tests.unit.test_stored -*-
"""The checks that make a stored entry as trustworthy as a fresh fetch.

Pure.  Whatever a store hands back (a Redis value, a SQLite row, a ``cache
import`` line) is untrusted input, whoever wrote it: a host with a wrong
clock, an older version, or anyone with write access to Redis.  These
functions read the stored JSON without any way to raise (bounded size, flat
structure, no ``Infinity``/``NaN``), re-parse the policy from its stored lines
(spec C19: the stored mode, max_age and mx only have to agree with it), and
hold the times to what :meth:`.entry.CacheEntry.fetched` writes (E1).
:mod:`postfix_mtasts.core.entry` builds the entry from what they return.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from attrs import evolve, frozen

from postfix_mtasts.core.nexthop import KeyKind, classify_key
from postfix_mtasts.core.policy import Mode, Policy, parse_policy
from postfix_mtasts.core.policyhost import MAX_POLICY_BYTES
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.value import Value

__all__ = [
    "FORMAT_VERSION",
    "MAX_CLOCK_SKEW_S",
    "MAX_STORED_BYTES",
    "MAX_TIMESTAMP_S",
    "MAX_TOLERATED_TEXT",
    "Fields",
    "StoredInvalid",
    "ahead_of",
    "check_times",
    "read_fields",
    "weakening",
]

FORMAT_VERSION = 1

#: The longest line of an entry's ``tolerated`` list, and how many it holds
#: at most (one per kind of tolerance).
MAX_TOLERATED_TEXT = 240
MAX_TOLERATED_LINES = 16
_MAX_TOLERATED_BYTES = MAX_TOLERATED_LINES * (MAX_TOLERATED_TEXT + 3)

# The largest entry to_bytes() writes for a valid policy of MAX_POLICY_BYTES:
# a valid line holds no control character but TAB (C2, C15), so a line of k
# bytes takes at most 3k in a JSON string (\uXXXX for a two-byte character)
# plus 3 for its quotes and comma, at most 3x its bytes with the terminator;
# the mx list repeats at most the body; the other fields (a 253-octet
# domain, a 32-character id, numbers, the keys) fit in 1 KiB; a tolerated
# line takes at most 6x its characters (\uXXXX, a surrogate pair 12 for 2).
MAX_STORED_BYTES = 4 * MAX_POLICY_BYTES + 1024 + 6 * _MAX_TOLERATED_BYTES

#: How far ahead of this host's clock a stored time may be: more is a wrong
#: clock (or a forgery) that would pin the entry until that time.
MAX_CLOCK_SKEW_S = 300.0

#: No stored time lies beyond 2242; utc_timestamp() and Redis TTLs stay sane.
MAX_TIMESTAMP_S = float(2**33)

# Rounding of fetched_at + max_age in a float: well under a millisecond.
_EXPIRY_TOLERANCE_S = 0.001

# One object holding two arrays (three with "tolerated"); a JSON string, unterminated ones too (so
# that no string is scanned twice: linear time on any bytes).
_MAX_OPENERS = 3
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_POLICY_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_REQUIRED = frozenset(
    ("v", "domain", "id", "fetched_at", "expires_at", "checked_at", "lines")
)
_PARSED = frozenset(("mode", "max_age", "mx"))
_ALL = _REQUIRED | _PARSED
_OPTIONAL = frozenset(("tolerated",))
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")  # or a lone surrogate
_STRENGTH = {Mode.NONE: 0, Mode.TESTING: 1, Mode.ENFORCE: 2}

# (domain, policy id, policy, fetched_at, expires_at, checked_at, tolerated)
Fields = tuple[str, str, Policy, float, float, float, tuple[str, ...]]


@frozen(repr=False)
class StoredInvalid(Value):
    """Why stored bytes are not a usable entry; the store's miss (C17)."""

    reason: str


def read_fields(data: bytes) -> Fields | StoredInvalid:
    """The checked fields of an entry stored by ``CacheEntry.to_bytes``.
    Never raises, whatever ``data`` holds."""
    raw = _load_object(data)
    if isinstance(raw, StoredInvalid):
        return raw
    try:
        return _check_fields(raw)
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as e:
        return StoredInvalid(f"unreadable: {type(e).__name__}")  # a bug: be safe


def check_times(
    fetched_at: float, expires_at: float, checked_at: float, max_age: int
) -> str | None:
    """Why these times cannot have been written by ``CacheEntry.fetched``
    and a later re-check (E1, D11), or None."""
    for name, value in (("fetched_at", fetched_at), ("checked_at", checked_at)):
        if not 0 <= value <= MAX_TIMESTAMP_S:  # False for NaN too
            return f"{name} {value!r} is not a time between 1970 and 2242"
    if not abs(expires_at - (fetched_at + max_age)) <= _EXPIRY_TOLERANCE_S:
        return f"expires_at {expires_at!r} is not fetched_at + max_age {max_age}"
    if checked_at < fetched_at:
        return f"checked_at {checked_at!r} is before fetched_at {fetched_at!r}"
    return None


def ahead_of(fetched_at: float, checked_at: float, now: float) -> str | None:
    """Why an entry with these times is from the future at ``now`` (a clock
    ahead by more than :data:`MAX_CLOCK_SKEW_S`), or None."""
    ahead = max(fetched_at, checked_at) - now
    if ahead > MAX_CLOCK_SKEW_S:
        return f"from the future: {ahead:.0f} s ahead of this host's clock"
    return None


def weakening(old: Policy, new: Policy) -> str | None:
    """How ``new`` protects less than ``old`` (a lower mode, or mx patterns
    dropped), or None.  The owner may have done it; so may a forger."""
    if _STRENGTH[new.mode] < _STRENGTH[old.mode]:
        return f"mode {old.mode.value} -> {new.mode.value}"
    if new.mode is not Mode.NONE:
        kept = {pattern.text for pattern in new.mx}
        dropped = [pattern.text for pattern in old.mx if pattern.text not in kept]
        if dropped:
            return f"mx dropped {quote(dropped)}"
    return None


def _load_object(data: bytes) -> dict[str, Any] | StoredInvalid:
    """The JSON object in ``data``, refused before decoding when too big or
    nested (json recurses per level: 100,000 ``[`` would overflow the stack)."""
    if len(data) > MAX_STORED_BYTES:
        return StoredInvalid(f"{len(data)} bytes > {MAX_STORED_BYTES}")
    openers = _MAX_OPENERS + (b'"tolerated"' in data)
    if data.count(b"[") + data.count(b"{") > openers:
        bare = _JSON_STRING.sub(b"", data)
        if bare.count(b"[") + bare.count(b"{") > openers:
            return StoredInvalid("nested deeper than one object of flat lists")
    try:
        raw = _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError, OverflowError, MemoryError) as e:
        return StoredInvalid(f"not JSON: {quote(str(e), 80)}")
    if not isinstance(raw, dict):
        return StoredInvalid(f"not a JSON object but {type(raw).__name__}")
    return raw


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _check_fields(raw: dict[str, Any]) -> Fields | StoredInvalid:
    tolerated = _tolerated(raw.pop("tolerated", []))
    if isinstance(tolerated, StoredInvalid):
        return tolerated
    keys = raw.keys()
    if keys != _ALL and (missing := _REQUIRED - keys):
        return StoredInvalid(f"missing {quote(sorted(missing))}")
    if keys != _ALL and (unknown := keys - _ALL):
        return StoredInvalid(f"unknown field(s) {quote(sorted(unknown))}")
    if type(raw["v"]) is not int or raw["v"] != FORMAT_VERSION:
        return StoredInvalid(f"format {quote(raw['v'])}, not {FORMAT_VERSION}")
    domain, policy_id = raw["domain"], raw["id"]
    if not isinstance(domain, str) or not _normalised_domain(domain):
        return StoredInvalid(f"domain {quote(domain)} is not a normalised domain")
    if not isinstance(policy_id, str) or not _POLICY_ID.fullmatch(policy_id):
        return StoredInvalid(f"id {quote(policy_id)} is not 1-32 letters and digits")
    policy = _reparsed_policy(raw)
    if isinstance(policy, StoredInvalid):
        return policy
    times = []
    for name in ("fetched_at", "expires_at", "checked_at"):
        value = _time(raw[name])
        if value is None:
            return StoredInvalid(f"{name} {quote(raw[name], 40)} is not a time")
        times.append(value)
    fetched_at, expires_at, checked_at = times
    if why := check_times(fetched_at, expires_at, checked_at, policy.max_age):
        return StoredInvalid(why)
    return domain, policy_id, policy, fetched_at, expires_at, checked_at, tolerated


def _tolerated(value: object) -> tuple[str, ...] | StoredInvalid:
    """The ``tolerated`` list: at most 16 printable lines of at most 240
    characters (a writer never stores an empty list, a reader accepts one)."""
    if type(value) is not list or len(value) > MAX_TOLERATED_LINES:
        return StoredInvalid(f"tolerated {quote(value, 80)} is not a short list")
    for line in value:
        if type(line) is not str or not 0 < len(line) <= MAX_TOLERATED_TEXT:
            return StoredInvalid(
                f"tolerated line {quote(line, 80)} is not 1-240 characters"
            )
        if _CONTROL.search(line):
            return StoredInvalid(
                f"tolerated line {quote(line, 80)} holds a control character"
                " or lone surrogate"
            )
    return tuple(value)


def _normalised_domain(domain: str) -> bool:
    hop = classify_key(domain.encode()) if domain.isascii() else None
    return hop is not None and hop.kind is KeyKind.DOMAIN and hop.domain == domain


def _time(value: object) -> float | None:
    """A finite float from a JSON number, never raising: a huge integer is
    refused before float() could overflow."""
    if type(value) is int:
        return float(value) if 0 <= value <= MAX_TIMESTAMP_S else None
    if type(value) is float and math.isfinite(value):
        return value
    return None


def _reparsed_policy(raw: dict[str, Any]) -> Policy | StoredInvalid:
    """The policy parsed again from the stored lines (C19); the stored mode,
    max_age and mx (when present) must be what the lines say."""
    lines = raw["lines"]
    try:  # join() refuses anything but strings
        body = "\n".join(lines).encode("utf-8") if type(lines) is list else None
    except TypeError:
        body = None
    except UnicodeEncodeError:
        return StoredInvalid("lines hold a lone surrogate")
    if body is None:
        return StoredInvalid("lines are not a list of strings")
    policy = parse_policy(body)
    if not isinstance(policy, Policy):
        return StoredInvalid(f"policy invalid ({policy.rule}): {policy.reason}")
    if policy.lines != tuple(lines):
        return StoredInvalid("lines are not as the policy parser writes them")
    present = _PARSED if raw.keys() == _ALL else _PARSED & raw.keys()
    if present and present != _PARSED:
        return StoredInvalid(f"only some parsed fields: {quote(sorted(present))}")
    if present:
        stored = (raw["mode"], raw["max_age"], raw["mx"])
        parsed = (policy.mode.value, policy.max_age, [p.text for p in policy.mx])
        if type(raw["max_age"]) is not int or stored != parsed:
            return StoredInvalid(
                f"stored mode/max_age/mx {quote(stored, 120)} disagree with the"
                f" policy lines {quote(parsed, 120)}"
            )
    return evolve(policy, notes=()) if policy.notes else policy
