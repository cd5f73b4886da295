# -*- test-case-name: tests.unit.test_fuzz_targets -*-
"""Fuzz the ``_mta-sts`` TXT record parser (spec A2-A14).

Input: ``<record separator> <string separator> <payload>``
(fuzz/contract.txt_rrset).

Contract: ``parse_sts_records`` never raises and returns a StsRecord whose
id is 1-32 letters and digits, or a RecordInvalid naming an A rule with a
one-line reason; the way a record is cut into strings changes nothing but
the A9 note (A9).
"""

from __future__ import annotations

import re

from fuzz.contract import require, single_line, txt_rrset
from postfix_mtasts.core.record import RecordInvalid, StsRecord, parse_sts_records

_ID = re.compile(r"[A-Za-z0-9]{1,32}\Z")
_RULES = frozenset({"A2", "A3", "A4", "A7"})


def one_input(data: bytes) -> None:
    records = txt_rrset(data)
    result = parse_sts_records(records)
    check_result(result)
    joined = parse_sts_records([[b"".join(strings)] for strings in records])
    require(
        strip_a9(result) == strip_a9(joined),
        "%r: %r, joined %r (A9)",
        records,
        result,
        joined,
    )


def check_result(result: StsRecord | RecordInvalid) -> None:
    if isinstance(result, StsRecord):
        require(_ID.match(result.id) is not None, "id %r (A4)", result.id)
    else:
        require(isinstance(result, RecordInvalid), "result %r", result)
        require(result.rule in _RULES, "rule %r", result.rule)
        require(single_line(result.reason), "reason %r", result.reason)
    for note in result.notes:
        require(single_line(note.text), "note %r", note)


def strip_a9(result: StsRecord | RecordInvalid) -> object:
    notes = tuple(note for note in result.notes if note.rule != "A9")
    if isinstance(result, StsRecord):
        return ("record", result.id, notes)
    return ("invalid", result.rule, notes)
