# -*- test-case-name: tests.unit.test_policy -*-
"""Pick and parse the ``_mta-sts`` TXT record (RFC 8461 §3.1, spec A).

Pure: no I/O, no clock.  :func:`parse_sts_records` returns the record or a
rejection naming the spec.md rule it breaks, never raising; ``notes`` list
what a domain-owner checker should warn about.  Decision (spec.md J): A8 WSP
before the first ``;`` accepted.

The tag-value grammar it shares with the TLSRPT record (RFC 8460 §3, parsed
in :mod:`postfix_mtasts.checker.tlsrpt`) lives here once: a record begins
``v=<version>`` then WSP, ``;`` or its end (:func:`version_prefix`); its
fields are split on ``;`` with WSP stripped and a trailing ``;`` allowed
(:func:`split_tag_record`); a field is ``name=value`` with a 1-32 character
name (:func:`split_tag_field`); a plain value is printable ASCII but ``;``
and ``=`` (:func:`is_ext_value`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from attrs import frozen

from postfix_mtasts.core.policy import Note
from postfix_mtasts.core.text import quote
from postfix_mtasts.core.value import Value

__all__ = [
    "RecordInvalid",
    "StsRecord",
    "is_ext_value",
    "parse_sts_records",
    "split_tag_field",
    "split_tag_record",
    "version_prefix",
]

_WSP = " \t"
_TXT_FIELD = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31})=(.*)", re.DOTALL)
_TXT_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_TXT_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")


def version_prefix(version: str) -> re.Pattern[bytes]:
    """Matches the start of a record of ``version`` (``STSv1``): ``v=``, the
    case-sensitive version, then WSP, ``;`` or the end (A3, A8)."""
    return re.compile(b"v=" + re.escape(version.encode("ascii")) + rb"[ \t]*(?:;|\Z)")


def split_tag_record(text: str, version: str) -> tuple[str, list[str]]:
    """Split ``text``, which :func:`version_prefix` matched: the WSP between
    the version and the first ``;`` (A8), and the fields with WSP stripped,
    a trailing empty one (a final ``;``, A14) dropped."""
    head, *fields = text[len(f"v={version}") :].split(";")
    fields = [field.strip(_WSP) for field in fields]
    if fields and not fields[-1]:
        fields.pop()
    return head, fields


def split_tag_field(field: str) -> tuple[str, str] | None:
    """``field`` as (name, value), split at the first ``=``; None if it is
    not ``name=value`` with a 1-32 character name (sts-ext-name, A3)."""
    match = _TXT_FIELD.fullmatch(field)
    return None if match is None else (match[1], match[2])


def is_ext_value(value: str) -> bool:
    """Tell whether ``value`` is a plain field value: one or more printable
    ASCII characters but ``;`` and ``=`` (sts-ext-value, A3)."""
    return _TXT_EXT_VALUE.fullmatch(value) is not None


_STS_PREFIX = version_prefix("STSv1")


@frozen(repr=False)
class StsRecord(Value):
    """A valid ``v=STSv1`` TXT record (spec A)."""

    id: str
    notes: tuple[Note, ...] = ()


@frozen(repr=False)
class RecordInvalid(Value):
    """No usable record: none found, more than one, or a syntax error (A2-A8)."""

    rule: str
    reason: str
    notes: tuple[Note, ...] = ()


def parse_sts_records(records: Sequence[Sequence[bytes]]) -> StsRecord | RecordInvalid:
    """Pick and parse the one ``v=STSv1`` record from a TXT RRset.

    ``records`` is a sequence of records, each a sequence of ``bytes``
    character-strings (as dnspython's ``TXT.strings``), joined without spaces
    (A9).
    """
    joined = [(b"".join(strings), len(strings)) for strings in records]
    found = [item for item in joined if _STS_PREFIX.match(item[0])]
    notes: list[Note] = []
    if skipped := len(joined) - len(found):
        notes.append(Note("A6", f"{skipped} TXT record(s) not starting 'v=STSv1;'"))
    if len(found) > 1:
        why = f"{len(found)} TXT records begin with 'v=STSv1', need exactly one"
        quoted = quote([raw for raw, _ in found])
        return RecordInvalid("A7", f"{why}: {quoted}", tuple(notes))
    if not found:
        near = [raw for raw, _ in joined if b"v=stsv1" in raw.lower()]
        if near:
            why = "does not begin with case-sensitive 'v=STSv1' then ';' or WSP"
            return RecordInvalid("A3", f"record {quote(near[0])} {why}", tuple(notes))
        why = f"no TXT record begins with 'v=STSv1' ({len(joined)} record(s) seen)"
        return RecordInvalid("A7", why, tuple(notes))
    raw, count = found[0]
    if count > 1:
        notes.append(Note("A9", f"record split into {count} strings, joined as-is"))
    if not raw.isascii():
        pos = next(i for i, byte in enumerate(raw) if byte >= 0x80)
        why = f"record {quote(raw)} has non-ASCII byte 0x{raw[pos]:02x} at offset {pos}"
        return RecordInvalid("A2", why, tuple(notes))
    return _parse_record(raw.decode("ascii"), notes)


def _parse_record(text: str, notes: list[Note]) -> StsRecord | RecordInvalid:
    head, fields = split_tag_record(text, "STSv1")
    if head:
        notes.append(Note("A8", "whitespace between 'v=STSv1' and the first ';'"))
    record_id: str | None = None
    seen: set[str] = set()
    unknown: list[str] = []
    for field in fields:
        tag = split_tag_field(field)
        if tag is None:
            why = f"field {quote(field)} is not name=value in {quote(text)}"
            return RecordInvalid("A3", why, tuple(notes))
        name, value = tag
        if name == "id" and record_id is None:
            if not _TXT_ID.fullmatch(value):
                why = f"id {quote(value)} is not 1-32 letters/digits"
                return RecordInvalid("A4", why, tuple(notes))
            record_id = value
        elif not is_ext_value(value):
            why = f"field {quote(field)} has an invalid value in {quote(text)}"
            return RecordInvalid("A3", why, tuple(notes))
        elif name in seen or name == "v":
            notes.append(Note("A13", f"duplicate field {quote(name)} ignored"))
        elif name != "id":
            unknown.append(name)
        seen.add(name)
    if unknown:
        notes.append(Note("A12", f"unknown field(s) ignored: {quote(unknown)}"))
    if record_id is None:
        return RecordInvalid("A4", f"no id field in {quote(text)}", tuple(notes))
    return StsRecord(record_id, tuple(notes))
