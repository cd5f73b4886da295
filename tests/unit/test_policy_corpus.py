"""The corpus of real-world policy and TXT record shapes (issue 12, spec A, C).

tests/data/policies.tsv and tests/data/sts-records.tsv hold one row per
shape (RFC 8461 examples, the shapes issue 12 lists, shapes from other
implementations' test suites, grammar edges) with the reading expected of
it; tests/unit/policy_corpus.py describes the columns.  Each row is replayed
as its own case, named by its id.  scripts/compare-policy-readers reads the
same policies with the strict reader that preceded the tolerant one, and
must find no policy whose mode, max_age or mx list changed.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import re
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.policy import (
    Mode,
    MxPattern,
    Policy,
    PolicyInvalid,
    Tolerance,
    parse_mx_pattern,
    parse_policy,
)
from postfix_mtasts.core.record import parse_sts_records
from tests.unit.policy_corpus import (
    CorpusError,
    CorpusRow,
    load_policy_rows,
    load_record_rows,
    policy_reading,
    record_reading,
)

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "compare-policy-readers"
POLICY_ROWS = load_policy_rows()
RECORD_ROWS = load_record_rows()

#: The strict reader that the tolerant one (b6ee5ee) replaced.
STRICT_READER = "05fef18"

#: Issue 12's list: shapes read as a valid policy, then shapes that stay invalid.
ISSUE_TOLERATED = (
    "issue-stray-word-after-last-key",
    "issue-stray-sentence-after-last-key",
    "issue-indented-testing",
    "issue-indented-enforce",
    "issue-indented-none",
    "issue-interior-blank",
    "issue-bare-cr",
    "issue-u-label-mx",
    "issue-max-age-comment",
    "issue-mx-ip-dropped",
    "issue-mx-url-dropped",
    "issue-mx-empty-dropped",
    "issue-none-junk",
    "issue-none-no-max-age",
)
ISSUE_REJECTED = (
    "issue-mode-enforced",
    "issue-mode-test",
    "issue-mode-bracketed",
    "issue-max-age-word",
    "issue-version-missing",
    "issue-version-key-misspelled",
    "issue-version-value-misspelled",
    "issue-empty-body",
    "issue-blank-lines-only",
    "issue-binary-png",
    "issue-enforce-all-mx-invalid",
)

_INVALID = re.compile(r"invalid [A-Z][0-9]+")
_VALID = re.compile(r"(enforce|testing|none) (0|[1-9][0-9]{0,9}) (\S+)(?: (\S+))?")
_RECORD_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_DISPUTED = " # disputed"


def _row_id(row: CorpusRow) -> str:
    return row.id


@pytest.mark.parametrize("row", POLICY_ROWS, ids=_row_id)
def test_policy_row(row: CorpusRow) -> None:
    """Each policies.tsv row reads as its expected mode, max_age, mx list and
    tolerances, or is invalid under its expected rule (spec C1-C19, issue 12)."""
    assert isinstance(row.data, bytes)
    reading = policy_reading(parse_policy(row.data))
    assert reading == row.expected, f"{row.id} (line {row.line}: {row.source})"


@pytest.mark.parametrize("row", RECORD_ROWS, ids=_row_id)
def test_record_row(row: CorpusRow) -> None:
    """Each sts-records.tsv row gives its expected id, or is invalid under its
    expected rule: the TXT grammar stays exact (spec A2-A14, RFC 8461 §3.1)."""
    assert isinstance(row.data, list)
    reading = record_reading(parse_sts_records(row.data))
    assert reading == row.expected, f"{row.id} (line {row.line}: {row.source})"


class PolicyTableTests(SynchronousTestCase):
    def check_rows(self, rows: list[CorpusRow], least: int) -> None:
        """At least ``least`` rows, unique ids, one row per input, a source."""
        self.assertGreaterEqual(len(rows), least)
        ids = [row.id for row in rows]
        self.assertEqual(sorted(ids), sorted(set(ids)), "duplicate row ids")
        seen: dict[str, str] = {}
        for row in rows:
            self.assertNotIn(
                repr(row.data), seen, f"{row.id}: same input as another row"
            )
            seen[repr(row.data)] = row.id
            self.assertEqual(
                "disputed" in row.source,
                row.source.endswith(_DISPUTED),
                f"{row.id}: a disputed row's source ends '{_DISPUTED}'",
            )

    def test_policy_table_well_formed(self) -> None:
        """policies.tsv: 120 rows or more, unique ids and bodies; each
        expectation is 'invalid RULE' or a mode, a max_age within C9, mx
        patterns as the reader normalises them (none for enforce/testing is
        impossible, C11) and known tolerance kinds, each once (issue 12)."""
        self.check_rows(POLICY_ROWS, 120)
        for row in POLICY_ROWS:
            if _INVALID.fullmatch(row.expected):
                continue
            match = _VALID.fullmatch(row.expected)
            assert match is not None, f"{row.id}: bad expectation {row.expected!r}"
            mode, max_age, mx, kinds = match.groups()
            self.assertLessEqual(int(max_age), 31_557_600, row.id)
            if mx == "-":
                self.assertEqual(mode, Mode.NONE.value, f"{row.id}: no mx (C11)")
            else:
                for value in mx.split(","):
                    pattern = parse_mx_pattern(value)
                    self.assertIsInstance(pattern, MxPattern, f"{row.id}: {value!r}")
                    assert pattern is not None
                    self.assertEqual(pattern.text, value, row.id)
                self.assertEqual(len(mx.split(",")), len(set(mx.split(","))), row.id)
            names = kinds.split(",") if kinds else []
            self.assertEqual(len(names), len(set(names)), row.id)
            self.assertLessEqual(set(names), {k.value for k in Tolerance}, row.id)

    def test_record_table_well_formed(self) -> None:
        """sts-records.tsv: 40 rows or more, unique ids and RRsets; each
        expectation is an id of 1-32 letters and digits (A4) or 'invalid RULE'."""
        self.check_rows(RECORD_ROWS, 40)
        for row in RECORD_ROWS:
            self.assertTrue(
                _INVALID.fullmatch(row.expected) or _RECORD_ID.fullmatch(row.expected),
                f"{row.id}: bad expectation {row.expected!r}",
            )

    def test_every_tolerance_in_corpus(self) -> None:
        """Every tolerance the reader applies (issue 12 point 1) is shown by at
        least one row, and so is a row valid in each mode."""
        shown = {
            kind
            for row in POLICY_ROWS
            if (match := _VALID.fullmatch(row.expected)) and match[4]
            for kind in match[4].split(",")
        }
        self.assertEqual(shown, {kind.value for kind in Tolerance})
        modes = {row.expected.split()[0] for row in POLICY_ROWS}
        self.assertLessEqual({mode.value for mode in Mode}, modes)

    def test_issue_shapes_present(self) -> None:
        """Every shape issue 12 lists has its row: the tolerated ones read as a
        valid policy, the others stay invalid."""
        expected = {row.id: row.expected for row in POLICY_ROWS}
        for row_id in ISSUE_TOLERATED:
            self.assertRegex(expected[row_id], _VALID, row_id)
        for row_id in ISSUE_REJECTED:
            self.assertRegex(expected[row_id], _INVALID, row_id)

    def test_malformed_table_refused(self) -> None:
        """A row with the wrong number of columns, a bad id, an empty
        expectation or a body that is not a bytes literal is refused by name."""
        good = "ok-row\tsource\tb'x'\tinvalid C4"
        with tempfile.TemporaryDirectory() as work:
            path = Path(work) / "table.tsv"
            path.write_text(f"# header\n\n{good}\n")
            self.assertEqual([row.id for row in load_policy_rows(path)], ["ok-row"])
            for line in (
                "ok-row\tsource\tb'x'",
                "Bad_Id\tsource\tb'x'\tinvalid C4",
                "ok-row\tsource\tb'x'\t ",
                "ok-row\tsource\t'x'\tinvalid C4",
                "ok-row\tsource\t__import__('os')\tinvalid C4",
            ):
                path.write_text(line + "\n")
                self.assertRaises(CorpusError, load_policy_rows, path)
            path.write_text("ok-row\tsource\t[b'x']\tinvalid A7\n")
            self.assertRaises(CorpusError, load_record_rows, path)
            self.assertRaises(CorpusError, load_policy_rows, path)


def _load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("compare_policy_readers", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class CompareReadersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.script: Any = _load_script()

    def test_no_policy_changed_since_strict_reader(self) -> None:
        """Issue 12, done when: no policy the strict reader (05fef18) accepted
        has another mode, max_age or mx list now; some it rejected are read.
        The revision is in every clone of main, so its absence is a failure."""
        present = subprocess.run(
            [*self.script.git(ROOT), "cat-file", "-e", f"{STRICT_READER}^{{commit}}"],
            check=False,
            capture_output=True,
        )
        self.assertEqual(present.returncode, 0, f"revision {STRICT_READER} missing")
        before = self.script.load_reader(STRICT_READER, ROOT)
        table = self.script.compare(POLICY_ROWS, before)
        changed = [row for row in table if row[3] == self.script.CHANGED]
        self.assertEqual(changed, [])
        counts = self.script.counts(table)
        self.assertEqual(counts["rows"], len(POLICY_ROWS))
        self.assertGreater(counts["valid before"], 40)
        self.assertGreater(counts["now accepted"], 20)
        self.assertEqual(
            counts["valid after"], counts["valid before"] + counts["now accepted"]
        )

    def test_compare_names_each_verdict(self) -> None:
        """compare() says 'same' when the fields agree (tolerances aside),
        'now accepted' when only the new reader accepts, and 'CHANGED' when a
        policy valid before reads otherwise or is rejected now."""
        rows = {row.id: row for row in POLICY_ROWS}
        picked = [
            rows["rfc-example"],
            rows["issue-interior-blank"],
            rows["impl-max-age-10-digits"],
            rows["issue-mode-enforced"],
        ]

        def before(body: bytes) -> Policy | PolicyInvalid:
            result = parse_policy(body)
            if body == rows["impl-max-age-10-digits"].data:
                assert isinstance(result, Policy)
                return Policy(Mode.TESTING, 1, result.mx, result.lines)
            if body == rows["issue-interior-blank"].data:
                return PolicyInvalid("C3", "blank line")
            return result

        def after(body: bytes) -> Policy | PolicyInvalid:
            if body == rows["rfc-example"].data:
                return PolicyInvalid("C9", "as if a cap had moved")
            return parse_policy(body)

        table = self.script.compare(picked, before, after)
        self.assertEqual(
            [(row_id, verdict) for row_id, _, _, verdict in table],
            [
                ("rfc-example", "CHANGED"),
                ("issue-interior-blank", "now accepted"),
                ("impl-max-age-10-digits", "CHANGED"),
                ("issue-mode-enforced", "same"),
            ],
        )
        self.assertEqual(table[1][2], "enforce 86400 mail.example.com blank-line")
        self.assertEqual(table[2][1], "testing 1 mail.example.com")

    def test_main_exit_status(self) -> None:
        """The script prints a line per row and the counts, and exits 0 when
        nothing changed, 2 when the revision cannot be read."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(self.script.main([STRICT_READER]), 0)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 1 + 1 + len(POLICY_ROWS) + 2)
        self.assertIn("changed 0", lines[-1])
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(self.script.main(["no-such-revision"]), 2)
        self.assertIn("no-such-revision", err.getvalue())
