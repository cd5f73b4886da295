"""The policy and TXT record corpus: tests/data/policies.tsv and
tests/data/sts-records.tsv (spec A, C; issue 12).

A row is a shape seen in the wild, in an RFC, or in another implementation's
test suite, with the reading expected of it.  Shared by
tests/unit/test_policy_corpus.py, which replays the rows, and
scripts/compare-policy-readers, which reads them with an older reader too.

policies.tsv columns: id, source, body, expected.  The body is a Python
bytes literal (``+`` and ``*`` allowed, as in socketmap.tsv), so CR, BOM,
tabs and bad bytes are exact.  The expected reading is
``MODE MAX_AGE MX[,MX...] [KIND[,KIND...]]`` (``-`` for no mx; the
tolerance kinds in the order first noted, each once) or ``invalid RULE``.

sts-records.tsv columns: id, source, records, expected.  The records are a
Python list of records, each a list of bytes character-strings; the
expected reading is the record's id, or ``invalid RULE``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from attrs import frozen

from postfix_mtasts.core.policy import Policy, PolicyInvalid
from postfix_mtasts.core.record import RecordInvalid, StsRecord

__all__ = [
    "DATA",
    "CorpusRow",
    "bytes_expression",
    "load_policy_rows",
    "load_record_rows",
    "policy_fields",
    "policy_reading",
    "record_reading",
]

DATA = Path(__file__).resolve().parent.parent / "data"

_ROW_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class CorpusError(ValueError):
    """A row of a corpus table is malformed."""


@frozen
class CorpusRow:
    """One row: ``line`` in its file, a unique ``id``, where the shape comes
    from (``source``), the input, and the reading expected of it."""

    line: int
    id: str
    source: str
    data: bytes | list[list[bytes]]
    expected: str


def load_policy_rows(path: Path | None = None) -> list[CorpusRow]:
    """The rows of policies.tsv (or ``path``), bodies as bytes."""
    return [
        _row(line, fields, bytes_expression(fields[2]))
        for line, fields in _lines(path or DATA / "policies.tsv")
    ]


def load_record_rows(path: Path | None = None) -> list[CorpusRow]:
    """The rows of sts-records.tsv (or ``path``), records as lists of lists
    of bytes."""
    return [
        _row(line, fields, _records_literal(fields[2]))
        for line, fields in _lines(path or DATA / "sts-records.tsv")
    ]


def policy_fields(result: Policy | PolicyInvalid) -> str:
    """What enforcement depends on: ``MODE MAX_AGE MX,...`` or ``invalid RULE``."""
    if isinstance(result, PolicyInvalid):
        return f"invalid {result.rule}"
    mx = ",".join(pattern.text for pattern in result.mx) or "-"
    return f"{result.mode.value} {result.max_age} {mx}"


def policy_reading(result: Policy | PolicyInvalid) -> str:
    """:func:`policy_fields` and, for a valid policy, the tolerance kinds
    noted, each once, in the order first noted."""
    if isinstance(result, PolicyInvalid):
        return policy_fields(result)
    kinds = dict.fromkeys(
        note.tolerance.value for note in result.tolerated if note.tolerance
    )
    return " ".join([policy_fields(result), *([",".join(kinds)] if kinds else [])])


def record_reading(result: StsRecord | RecordInvalid) -> str:
    """The record's id, or ``invalid RULE``."""
    if isinstance(result, RecordInvalid):
        return f"invalid {result.rule}"
    return result.id


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise CorpusError(f"{path.name}:{number}: {len(fields)} columns, not 4")
        rows.append((number, fields))
    return rows


def _row(line: int, fields: list[str], data: bytes | list[list[bytes]]) -> CorpusRow:
    row_id, source, _, expected = fields
    if not _ROW_ID.fullmatch(row_id):
        raise CorpusError(f"line {line}: bad row id {row_id!r}")
    if not source.strip() or not expected.strip():
        raise CorpusError(f"line {line} {row_id}: empty source or expectation")
    return CorpusRow(line, row_id, source, data, expected)


def bytes_expression(text: str) -> bytes:
    """A bytes literal, or literals joined by ``+`` and repeated by ``*``."""

    def value(node: ast.expr) -> bytes | int:
        if isinstance(node, ast.Constant) and isinstance(node.value, bytes | int):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add) and isinstance(left, bytes):
                if isinstance(right, bytes):
                    return left + right
            elif isinstance(left, bytes) and isinstance(right, int):
                return left * right
        raise CorpusError(f"not a bytes expression: {text!r}")

    result = value(ast.parse(text, mode="eval").body)
    if not isinstance(result, bytes):
        raise CorpusError(f"not a bytes expression: {text!r}")
    return result


def _records_literal(text: str) -> list[list[bytes]]:
    records = ast.literal_eval(text)
    if not isinstance(records, list) or not all(
        isinstance(record, list) and all(isinstance(s, bytes) for s in record)
        for record in records
    ):
        raise CorpusError(f"not a list of lists of bytes: {text!r}")
    return records
