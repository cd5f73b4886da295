"""Tests for postfix_mtasts.core.policy: the TXT record (spec A), the policy body
(spec C) and mx patterns (C12, C13, D4).

Rules A1, A10 (beyond the empty RRset), A11 and A15-A17 are about DNS lookups
and caching, not parsing; they are tested with txt.py, resolver.py and
decision.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.policy import (
    MAX_AGE_LIMIT_S,
    Mode,
    MxPattern,
    Note,
    Policy,
    PolicyInvalid,
    Tolerance,
    parse_mx_pattern,
    parse_policy,
)
from postfix_mtasts.core.policy_fields import MAX_IDNA_MX, MAX_LISTED_LINES
from postfix_mtasts.core.policyhost import MAX_POLICY_BYTES, split_content_type
from postfix_mtasts.core.record import (
    RecordInvalid,
    StsRecord,
    is_ext_value,
    parse_sts_records,
    split_tag_field,
    split_tag_record,
    version_prefix,
)

# -- helpers -----------------------------------------------------------------

VALID_LINES = (
    "version: STSv1",
    "mode: enforce",
    "mx: mail.example.com",
    "max_age: 86400",
)


def body(*lines: str, term: str = "\n", final: bool = True) -> bytes:
    """A policy body from ``lines`` joined by ``term``."""
    return (term.join(lines) + (term if final else "")).encode("utf-8")


def replaced(key: str, line: str | None) -> tuple[str, ...]:
    """VALID_LINES with the line for ``key`` replaced (or dropped if None)."""
    out = [line if old.startswith(key + ":") else old for old in VALID_LINES]
    return tuple(x for x in out if x is not None)


def rules(notes: Sequence[Note]) -> list[str]:
    return [note.rule for note in notes]


U_LABEL_NAME = "\u0431\u0430\u0440.\u0440\u0444"  # "bar.rf" in Cyrillic (U-labels)


class _Assertions(SynchronousTestCase):
    def assert_record(self, records: list[list[bytes]], record_id: str) -> StsRecord:
        result = parse_sts_records(records)
        self.assertIsInstance(result, StsRecord, f"{records!r}: {result!r}")
        assert isinstance(result, StsRecord)
        self.assertEqual(result.id, record_id, msg=repr(records))
        return result

    def assert_record_invalid(
        self, records: list[list[bytes]], rule: str
    ) -> RecordInvalid:
        result = parse_sts_records(records)
        self.assertIsInstance(result, RecordInvalid, f"{records!r}: {result!r}")
        assert isinstance(result, RecordInvalid)
        self.assertEqual(result.rule, rule, msg=f"{records!r}: {result!r}")
        self.assertNotIn("\n", result.reason)
        return result

    def assert_policy(self, data: bytes) -> Policy:
        result = parse_policy(data)
        self.assertIsInstance(result, Policy, f"{data!r}: {result!r}")
        assert isinstance(result, Policy)
        return result

    def assert_policy_invalid(self, data: bytes, rule: str) -> PolicyInvalid:
        result = parse_policy(data)
        self.assertIsInstance(result, PolicyInvalid, f"{data!r}: {result!r}")
        assert isinstance(result, PolicyInvalid)
        self.assertEqual(result.rule, rule, msg=f"{data!r}: {result!r}")
        self.assertNotIn("\n", result.reason)
        return result


# -- TXT record (spec A) --------------------------------------------------------


class StsRecordTests(_Assertions):
    def test_a2_non_ascii(self) -> None:
        """A2: a chosen record with a byte >= 0x80 is invalid; junk elsewhere is not."""
        for records in (
            [[b"v=STSv1; id=caf\xe9"]],
            [[b"v=STSv1; id=1; x=\xc3\xa9"]],
            [[b"v=STSv1; id=1", b"\x80"]],
        ):
            self.assert_record_invalid(records, "A2")
        self.assert_record([[b"\xff\xfe junk"], [b"v=STSv1; id=1"]], "1")

    def test_a3_syntax(self) -> None:
        """A3: the record must start with case-sensitive v=STSv1 and follow the ABNF."""
        cases = [
            b"id=1; v=STSv1",
            b"V=stsv1; id=1",
            b"v=stsv1; id=1",
            b"V=STSv1; id=1",
            b" v=STSv1; id=1",
            b"v=STSv1 id=1",
            b"v=STSv1;; id=1",
            b"v=STSv1; id=1;; x=y",
            b"v=STSv1; =x; id=1",
            b"v=STSv1; id=1; bare",
            b"v=STSv1; id=1; x=a=b",
            b"v=STSv1; id=1; x=a;b c",
            b"v=STSv1; id=1; x=",
            b"v=STSv1; id=1; _x=1",
            b"v=STSv1; id=1; " + b"x" * 33 + b"=1",
            b"v=STSv1; id=1; x=a\x00",
        ]
        for raw in cases:
            self.assert_record_invalid([[raw]], "A3")
        self.assert_record([[b"v=STSv1; id=1; " + b"x" * 32 + b"=1"]], "1")

    def test_a4_id(self) -> None:
        """A4: id is required, 1-32 ALPHA/DIGIT; a bad or missing id is invalid."""
        for raw in (
            b"v=STSv1; id=",
            b"v=STSv1; id=" + b"a" * 33,
            b"v=STSv1; id=2024-01-01",
            b"v=STSv1; id=a_b",
            b"v=STSv1; id=a b",
            b"v=STSv1; foo=bar",
            b"v=STSv1; ID=abc",
            b"v=STSv1",
            b"v=STSv1;",
            b"v=STSv1 ;  ",
        ):
            self.assert_record_invalid([[raw]], "A4")
        self.assert_record([[b"v=STSv1; id=" + b"a1" * 16]], "a1" * 16)
        self.assert_record([[b"v=STSv1; id=20240101T000000Z"]], "20240101T000000Z")

    def test_a5_id_is_exact(self) -> None:
        """A5: the id is kept exactly (case preserved) for an equality compare."""
        self.assert_record([[b"v=STSv1; id=ABC"]], "ABC")
        self.assert_record([[b"v=STSv1; id=abc"]], "abc")

    def test_a6_other_records_discarded(self) -> None:
        """A6: records not starting v=STSv1 are discarded and counted in a note."""
        result = self.assert_record(
            [
                [b"v=spf1 -all"],
                [b"google-site-verification=xyz"],
                [b"v=STSv10; id=9"],
                [b"v=STSv1; id=abc"],
            ],
            "abc",
        )
        self.assertEqual(rules(result.notes), ["A6"])
        self.assertIn("3", result.notes[0].text)

    def test_a7_exactly_one(self) -> None:
        """A7: zero or several v=STSv1 records mean no policy."""
        cases: list[list[list[bytes]]] = [
            [],
            [[]],
            [[b"v=spf1 -all"]],
            [[b"v=STSv1; id=1"], [b"v=STSv1; id=2"]],
            [[b"v=STSv1; id=1"], [b"v=STSv1; id=1"]],
            [[b"v=STSv1; id=1"], [b"v=STSv1; junk"]],
        ]
        for records in cases:
            self.assert_record_invalid(records, "A7")

    def test_a8_whitespace_before_semicolon(self) -> None:
        """A8 (decided: accept, note): WSP before the first ';' is fine;
        v=STSv10 is not a prefix match."""
        for raw in (b"v=STSv1 ; id=x", b"v=STSv1\t;id=x", b"v=STSv1 \t ; id=x"):
            result = self.assert_record([[raw]], "x")
            self.assertEqual(rules(result.notes), ["A8"])
        self.assertEqual(parse_sts_records([[b"v=STSv1; id=x"]]).notes, ())
        self.assert_record_invalid([[b"v=STSv10; id=1"]], "A3")
        self.assert_record_invalid([[b"v=STSv1x; id=1"]], "A3")

    def test_a9_strings_joined_without_spaces(self) -> None:
        """A9: a multi-string record is concatenated with nothing in between."""
        result = self.assert_record([[b"v=STSv1; i", b"d=abc"]], "abc")
        self.assertEqual(rules(result.notes), ["A9"])
        self.assert_record([[b"v=STS", b"v1; id=1"]], "1")
        self.assert_record([[b"v=STSv1;", b"id=a", b"b"]], "ab")
        self.assert_record([[b"v=STSv1; id=a", b"", b"b"]], "ab")

    def test_a10_no_record_is_a_value(self) -> None:
        """A10/A7: an empty RRset is a RecordInvalid value, never an exception."""
        result = self.assert_record_invalid([], "A7")
        self.assertIn("no TXT record", result.reason)

    def test_a12_unknown_fields_ignored(self) -> None:
        """A12: unknown extension fields are accepted, ignored and noted."""
        result = self.assert_record([[b"v=STSv1; id=1; foo=bar;"]], "1")
        self.assertEqual(rules(result.notes), ["A12"])
        self.assertIn("foo", result.notes[0].text)
        self.assert_record([[b"v=STSv1; x.y-z_1=%7e!; id=2"]], "2")

    def test_a13_duplicate_fields(self) -> None:
        """A13: for duplicate fields the first wins (first id), noted."""
        result = self.assert_record([[b"v=STSv1; id=a; id=b"]], "a")
        self.assertEqual(rules(result.notes), ["A13"])
        result = self.assert_record([[b"v=STSv1; id=a; v=STSv1"]], "a")
        self.assertEqual(rules(result.notes), ["A13"])
        result = self.assert_record([[b"v=STSv1; x=1; x=2; id=a"]], "a")
        self.assertEqual(rules(result.notes), ["A13", "A12"])

    def test_a14_trailing_delimiter(self) -> None:
        """A14: a trailing ';' with optional WSP is allowed; so is no WSP at all."""
        for raw in (
            b"v=STSv1; id=1;  ",
            b"v=STSv1; id=1 ;\t",
            b"v=STSv1;id=1",
            b"v=STSv1;id=1;",
            b"v=STSv1;\tid=1\t",
        ):
            result = self.assert_record([[raw]], "1")
            self.assertEqual(result.notes, ())

    def test_k4_rrset_shapes(self) -> None:
        """K4 (A6, A7, A9): unrelated TXT ignored; two STS records = no policy;
        a record split mid-token is joined."""
        self.assert_record([[b"v=spf1 -all"], [b"v=STSv1; id=abc"]], "abc")
        self.assert_record_invalid([[b"v=STSv1; id=a"], [b"v=STSv1; id=b"]], "A7")
        self.assert_record([[b"v=STSv1; i", b"d=abc"]], "abc")

    def test_k5_syntax_traps(self) -> None:
        """K5 (A3, A4, A8): whitespace before ';', v=STSv10, bad ids, V=STSv1."""
        self.assert_record([[b"v=STSv1 ; id=x"]], "x")
        cases: list[tuple[bytes, str]] = [
            (b"v=STSv10; id=1", "A3"),
            (b"v=STSv1; id=2024-01-01", "A4"),
            (b"v=STSv1; id=" + b"1" * 33, "A4"),
            (b"v=STSv1; id=", "A4"),
            (b"V=STSv1; id=1", "A3"),
        ]
        for raw, rule in cases:
            self.assert_record_invalid([[raw]], rule)

    def test_reason_quotes_and_cuts_peer_input(self) -> None:
        """Rejections quote the peer's record with repr, cut to 200 characters."""
        result = self.assert_record_invalid([[b"v=STSv1; id=" + b"\x01" * 5000]], "A4")
        self.assertLess(len(result.reason), 300)
        self.assertIn("\\x01", result.reason)


class TagValueGrammarTests(SynchronousTestCase):
    """The tag-value grammar shared by the STS and TLSRPT records."""

    def test_version_prefix(self) -> None:
        """``v=<version>`` then WSP, ';' or the end, case-sensitive (A3, A8)."""
        prefix = version_prefix("TLSRPTv1")
        for raw in (b"v=TLSRPTv1", b"v=TLSRPTv1;", b"v=TLSRPTv1 \t; rua=x"):
            self.assertIsNotNone(prefix.match(raw), raw)
        for raw in (b"v=TLSRPTv10;", b"v=tlsrptv1;", b" v=TLSRPTv1;", b"v=TLSRPTv1x"):
            self.assertIsNone(prefix.match(raw), raw)

    def test_split_record(self) -> None:
        """Fields split on ';' with WSP stripped; one trailing ';' dropped;
        the WSP before the first ';' comes back apart (A8, A14)."""
        self.assertEqual(
            split_tag_record("v=STSv1 \t; id=1 ;x=2 ;", "STSv1"),
            (" \t", ["id=1", "x=2"]),
        )
        self.assertEqual(split_tag_record("v=STSv1", "STSv1"), ("", []))
        self.assertEqual(split_tag_record("v=STSv1;", "STSv1"), ("", []))
        self.assertEqual(
            split_tag_record("v=STSv1;;id=1; ;", "STSv1"), ("", ["", "id=1", ""])
        )

    def test_split_field(self) -> None:
        """A field is a 1-32 character name, '=' and the rest (A3)."""
        self.assertEqual(split_tag_field("id=a=b"), ("id", "a=b"))
        self.assertEqual(split_tag_field("x_1.-=\n"), ("x_1.-", "\n"))
        self.assertEqual(split_tag_field("a" * 32 + "="), ("a" * 32, ""))
        for bad in ("", "id", "=1", "_x=1", "a" * 33 + "=1", "i d=1"):
            self.assertIsNone(split_tag_field(bad), bad)

    def test_ext_value(self) -> None:
        """A plain value is printable ASCII but ';' and '=' (A3)."""
        self.assertTrue(is_ext_value("!mailto:a@b:~"))
        for bad in ("", "a b", "a=b", "a;b", "\x7f", "\xe9"):
            self.assertFalse(is_ext_value(bad), bad)


# -- policy body (spec C) ---------------------------------------------------------


class PolicyBodyTests(_Assertions):
    def test_valid_policy(self) -> None:
        """C19: a complete policy parses to its mode, max_age, mx and lines."""
        policy = self.assert_policy(body(*VALID_LINES))
        self.assertEqual(policy.mode, Mode.ENFORCE)
        self.assertEqual(policy.max_age, 86400)
        self.assertEqual(
            policy.mx, (MxPattern("mail.example.com", False, "mail.example.com"),)
        )
        self.assertEqual(policy.lines, VALID_LINES)
        self.assertEqual(policy.notes, ())

    def test_b12_size_limit(self) -> None:
        """B12: a body of exactly MAX_POLICY_BYTES is parsed, one more is invalid."""
        head = body(*VALID_LINES) + b"x-pad: "
        data = head + b"a" * (MAX_POLICY_BYTES - len(head))
        self.assertEqual(len(data), MAX_POLICY_BYTES)
        self.assert_policy(data)
        self.assert_policy_invalid(data + b"a", "B12")

    def test_c1_line_endings(self) -> None:
        """C1: LF, CRLF, mixed and no final terminator all parse the same."""
        expected = self.assert_policy(body(*VALID_LINES))
        mixed = (
            b"version: STSv1\r\nmode: enforce\nmx: mail.example.com\r\nmax_age: 86400"
        )
        for data in (
            body(*VALID_LINES, term="\r\n"),
            body(*VALID_LINES, final=False),
            body(*VALID_LINES, term="\r\n", final=False),
            mixed,
        ):
            policy = self.assert_policy(data)
            self.assertEqual(
                (policy.mode, policy.max_age, policy.mx, policy.lines),
                (expected.mode, expected.max_age, expected.mx, expected.lines),
            )
        self.assertEqual(rules(parse_policy(mixed).notes), ["C1"])
        self.assertEqual(parse_policy(body(*VALID_LINES, term="\r\n")).notes, ())

    def assert_tolerated(self, data: bytes, expected: list[Tolerance]) -> Policy:
        """``data`` reads as the valid policy VALID_LINES say, with these
        tolerances noted in order."""
        policy = self.assert_policy(data)
        self.assertEqual(
            (policy.mode, policy.max_age, [p.text for p in policy.mx]),
            (Mode.ENFORCE, 86400, ["mail.example.com"]),
            msg=repr(data),
        )
        kinds = [note.tolerance for note in policy.tolerated]
        self.assertEqual(kinds, expected, msg=repr(data))
        return policy

    def test_c1_bare_cr(self) -> None:
        """C1 (decided, tolerant): a bare CR (old Mac ending, or mixed in)
        ends a line, noted once with the first line it ends."""
        cr, trailing, blank = (
            Tolerance.BARE_CR,
            Tolerance.TRAILING_BLANK,
            Tolerance.BLANK_LINE,
        )
        for data, kinds, line in (
            (body(*VALID_LINES, term="\r"), [cr], 1),
            (body(*VALID_LINES) + b"\r", [cr, trailing], 5),
            (body(*VALID_LINES, final=False) + b"\r", [cr], 4),
            (body(*VALID_LINES, term="\r\r\n"), [cr, trailing, blank, blank, blank], 1),
        ):
            policy = self.assert_tolerated(data, kinds)
            self.assertEqual(policy.tolerated[0].line, line, msg=repr(data))
        policy = self.assert_tolerated(
            body(*VALID_LINES, "x-foo: a\rb"), [Tolerance.BARE_CR, Tolerance.STRAY_LINE]
        )
        self.assertEqual(policy.lines[-2:], ("x-foo: a", "b"))

    def test_c2_whitespace(self) -> None:
        """C2 (decided, tolerant): whitespace before a key or before ':' has one
        meaning and is tolerated and noted; a line that is not 'key: value' is
        ignored, so the policy lacks that field."""
        for line, kinds in (
            ("mode : enforce", [Tolerance.SPACE_BEFORE_COLON]),
            (" mode: enforce", [Tolerance.INDENTED]),
            ("\tmode: enforce", [Tolerance.INDENTED]),
            ("mode\t: enforce", [Tolerance.SPACE_BEFORE_COLON]),
            ("  mode  : enforce", [Tolerance.INDENTED, Tolerance.SPACE_BEFORE_COLON]),
        ):
            policy = self.assert_tolerated(body(*replaced("mode", line)), kinds)
            self.assertEqual(policy.tolerated[0].rule, "C2")
            self.assertEqual(policy.tolerated[0].line, 2)
        for line in ("mode enforce", "mode= enforce", ": enforce"):
            result = self.assert_policy_invalid(body(*replaced("mode", line)), "C6")
            self.assertEqual(
                [n.tolerance for n in result.notes], [Tolerance.STRAY_LINE]
            )
        for line in ("mode:enforce", "mode: enforce  \t", "mode:\t \tenforce"):
            self.assert_tolerated(body(*replaced("mode", line)), [])

    def test_c2_every_line_indented(self) -> None:
        """C2 (decided): a policy whose every line is indented reads as if it
        were not, in every mode, one note per line."""
        for mode in Mode:
            lines = [f"  {line}" for line in replaced("mode", f"mode: {mode.value}")]
            policy = self.assert_policy(body(*lines))
            self.assertEqual(policy.mode, mode)
            self.assertEqual(
                [n.line for n in policy.tolerated if n.tolerance is Tolerance.INDENTED],
                [1, 2, 3, 4],
            )
            self.assertEqual(policy.lines, tuple(lines))

    def test_c2_comment_after_value(self) -> None:
        """C2 (decided): '#' after whitespace ends a known key's value when what
        is before it is exact; a value that is not exact stays invalid."""
        for key, line in (
            ("max_age", "max_age: 86400 # one day"),
            ("mode", "mode: enforce\t#since 2024"),
            ("mx", "mx: mail.example.com # primary"),
            ("version", "version: STSv1 #"),
        ):
            policy = self.assert_tolerated(
                body(*replaced(key, line)), [Tolerance.VALUE_COMMENT]
            )
            self.assertIn(line, policy.lines)
        for key, line, rule in (
            ("max_age", "max_age: 86400#one day", "C8"),
            ("max_age", "max_age: # 86400", "C8"),
            ("mode", "mode: enforced # typo", "C6"),
            ("mode", "mode: enforce please # x", "C6"),
        ):
            self.assert_policy_invalid(body(*replaced(key, line)), rule)
        policy = self.assert_tolerated(body(*VALID_LINES, "x-note: a # b"), [])
        self.assertEqual(
            policy.notes, (Note("C14", "unknown field(s) ignored: ['x-note']"),)
        )

    def test_c3_tolerated_bom_and_trailing_blank_lines(self) -> None:
        """C3 (decided): a leading BOM and trailing blank lines are tolerated, noted,
        and left out of lines."""
        bom, trailing = Tolerance.BOM, Tolerance.TRAILING_BLANK
        cases: list[tuple[bytes, list[Tolerance]]] = [
            (body(*VALID_LINES) + b"\n", [trailing]),
            (body(*VALID_LINES) + b"\n\n\n", [trailing]),
            (body(*VALID_LINES, term="\r\n") + b"\r\n\r\n", [trailing]),
            (body(*VALID_LINES) + b"  \n\t", [trailing]),
            (b"\xef\xbb\xbf" + body(*VALID_LINES), [bom]),
            (
                b"\xef\xbb\xbf" + body(*VALID_LINES, term="\r\n") + b"\r\n",
                [bom, trailing],
            ),
        ]
        for data, expected in cases:
            policy = self.assert_tolerated(data, expected)
            self.assertEqual(rules(policy.notes), ["C3"] * len(expected))
            self.assertEqual(policy.lines, VALID_LINES)

    def test_c3_blank_comment_and_stray_lines(self) -> None:
        """C3 (decided, tolerant): blank lines anywhere, '#' comment lines and
        lines that are not 'key: value' (a stray word, a sentence) are ignored
        and noted with their line; they stay in ``lines`` (C18)."""
        blank, comment, stray = (
            Tolerance.BLANK_LINE,
            Tolerance.COMMENT_LINE,
            Tolerance.STRAY_LINE,
        )
        for lines, kinds, line in (
            (("", *VALID_LINES), [blank], 1),
            ((VALID_LINES[0], "", *VALID_LINES[1:]), [blank], 2),
            ((VALID_LINES[0], "   ", *VALID_LINES[1:]), [blank], 2),
            (("# MTA-STS policy", *VALID_LINES), [comment], 1),
            ((*VALID_LINES, "# trailing comment"), [comment], 5),
            ((*VALID_LINES, "#x-foo: bar"), [comment], 5),
            ((*VALID_LINES, "enforce"), [stray], 5),
            ((*VALID_LINES, "Change mode to enforce when ready."), [stray], 5),
            ((*VALID_LINES, "see: https://example.com/mta-sts help"), [], 0),
            ((*VALID_LINES, "Contact us: postmaster@example.com"), [stray], 5),
        ):
            policy = self.assert_tolerated(body(*lines), kinds)
            self.assertEqual(policy.lines, lines)
            self.assertEqual(
                [n.line for n in policy.tolerated], [line] if kinds else []
            )
        # A second BOM is part of the first key: that line is stray, and
        # the policy has no version.
        self.assert_policy_invalid(b"\xef\xbb\xbf" * 2 + body(*VALID_LINES), "C4")

    def test_c4_version(self) -> None:
        """C4: version is required and must be exactly STSv1."""
        for line in (
            "version: stsv1",
            "version: STSv2",
            "version: STSV1",
            "version: STSv1.0",
            "version:",
            None,
        ):
            self.assert_policy_invalid(body(*replaced("version", line)), "C4")
        self.assert_policy(body(*replaced("version", "version: STSv1 \t")))

    def test_c5_version_position(self) -> None:
        """C5 (decided): version need not be first; the parser notes it."""
        policy = self.assert_policy(body(*VALID_LINES[1:], VALID_LINES[0]))
        self.assertEqual(rules(policy.notes), ["C5"])
        self.assertIn("line 4", policy.notes[0].text)

    def test_c6_mode(self) -> None:
        """C6: mode is required and exactly one of enforce, testing, none."""
        for line in (
            "mode: Enforce",
            "mode: ENFORCE",
            "mode: report",
            "mode: enforce x",
            "mode: enforce\u00a0",
            "mode:",
            None,
        ):
            self.assert_policy_invalid(body(*replaced("mode", line)), "C6")
        for mode in Mode:
            policy = self.assert_policy(body(*replaced("mode", f"mode: {mode.value}")))
            self.assertIs(policy.mode, mode)

    def test_c7_keys_case_sensitive(self) -> None:
        """C7: keys are case-sensitive; 'Mode' is an ignored extension, so mode is
        missing and the policy invalid."""
        for key in ("version", "mode", "max_age"):
            for variant in (key.capitalize(), key.upper()):
                line = next(x for x in VALID_LINES if x.startswith(key + ":"))
                lines = replaced(key, variant + line[len(key) :])
                result = self.assert_policy_invalid(body(*lines), "C7")
                self.assertIn(variant, result.reason)
                self.assertIn("C7", rules(result.notes))
        none = [x.replace("enforce", "none") for x in replaced("mx", None)]
        policy = self.assert_policy(body(*none, "MX: a.b.c"))
        self.assertEqual(policy.mx, ())
        self.assertEqual(rules(policy.notes), ["C7", "C14"])

    def test_c8_max_age_syntax(self) -> None:
        """C8: max_age is 1-10 ASCII digits, leading zeros allowed."""
        valid = {"0086400": 86400, "0000086400": 86400, "1": 1, "86400": 86400}
        for text, value in valid.items():
            policy = self.assert_policy(body(*replaced("max_age", f"max_age: {text}")))
            self.assertEqual(policy.max_age, value)
        for text in (
            "-1",
            "+1",
            "1e5",
            "86400s",
            "86 400",
            "12345678901",
            "00000864000",
            "0x10",
            "\uff18\uff16\uff14\uff10\uff10",
            "",
        ):
            line = f"max_age: {text}"
            self.assert_policy_invalid(body(*replaced("max_age", line)), "C8")
        self.assert_policy_invalid(body(*replaced("max_age", None)), "C8")

    def test_c9_max_age_cap(self) -> None:
        """C9 (decided): max_age above 31557600 makes the policy invalid."""
        line = f"max_age: {MAX_AGE_LIMIT_S}"
        policy = self.assert_policy(body(*replaced("max_age", line)))
        self.assertEqual(policy.max_age, 31557600)
        for text in ("31557601", "99999999", "9999999999"):
            line = f"max_age: {text}"
            self.assert_policy_invalid(body(*replaced("max_age", line)), "C9")

    def test_c10_max_age_zero(self) -> None:
        """C10 (decided): max_age 0 is valid."""
        policy = self.assert_policy(body(*replaced("max_age", "max_age: 0")))
        self.assertEqual(policy.max_age, 0)

    def test_c11_mx_required_unless_none(self) -> None:
        """C11: enforce and testing need an mx line; none does not."""
        for mode in ("enforce", "testing"):
            lines = replaced("mx", None)
            lines = tuple(
                f"mode: {mode}" if x.startswith("mode:") else x for x in lines
            )
            self.assert_policy_invalid(body(*lines), "C11")
        lines = replaced("mx", None)
        policy = self.assert_policy(
            body(*(x.replace("enforce", "none") for x in lines))
        )
        self.assertEqual((policy.mode, policy.mx), (Mode.NONE, ()))
        policy = self.assert_policy(body(*replaced("mode", "mode: none")))
        self.assertEqual(len(policy.mx), 1)

    def test_c11_mx_repeatable_and_deduplicated(self) -> None:
        """C11: mx repeats; duplicates (after normalising) are dropped, first order."""
        policy = self.assert_policy(
            body(
                *replaced("mx", "mx: b.example.com"),
                "mx: *.example.com",
                "mx: B.Example.Com.",
                "mx: a.example.com",
                "mx: b.example.com",
            )
        )
        self.assertEqual(
            [p.text for p in policy.mx],
            ["b.example.com", "*.example.com", "a.example.com"],
        )
        self.assertEqual(rules(policy.notes), ["C13", "C11"])
        self.assertEqual(policy.notes[0].tolerance, Tolerance.MX_TRAILING_DOT)
        self.assertIn("2", policy.notes[1].text)

    INVALID_MX_C12 = (
        "mail*.example.com",
        "*.*.example.com",
        "*",
        "*.",
        "*.com",
        "ex*mple.com",
        "localhost",
        ".example.com",
        "a..example.com",
        "-a.example.com",
        "a-.example.com",
        "a" * 64 + ".example.com",
        "xn--zzzzzzzz.example.com",
        "",
    )
    INVALID_MX_C13 = (
        "192.0.2.1",
        "[192.0.2.1]",
        "*.192.0.2.1",
        "2001:db8::1",
        "[IPv6:2001:db8::1]",
        "mx.example.com:25",
        "a_b.example.com",
        "_25._tcp.example.com",
        "mx.example.123",
        "https://mail.example.com/",
        "smtp://mail.example.com",
    )

    def test_c12_c13_invalid_mx_alone(self) -> None:
        """C12/C13 (decided): an invalid mx value is dropped; when it was the
        only one, an enforce policy has no mx left and is invalid, naming the
        value's rule and line."""
        for values, rule in (
            (self.INVALID_MX_C12, "C12"),
            (self.INVALID_MX_C13, "C13"),
        ):
            for value in values:
                line = f"mx: {value}"
                result = self.assert_policy_invalid(body(*replaced("mx", line)), rule)
                self.assertIn("no valid mx", result.reason)
                self.assertEqual(
                    [(n.tolerance, n.line) for n in result.notes],
                    [(Tolerance.MX_DROPPED, 3)],
                    msg=value,
                )

    def test_c12_c13_invalid_mx_dropped(self) -> None:
        """C12/C13 (decided): an invalid mx value among valid ones is dropped
        and noted; the valid ones apply, so an IP never reaches match=."""
        for value in self.INVALID_MX_C12 + self.INVALID_MX_C13:
            policy = self.assert_tolerated(
                body(*VALID_LINES, f"mx: {value}"), [Tolerance.MX_DROPPED]
            )
            self.assertEqual(policy.tolerated[0].line, 5)
            self.assertIn(policy.tolerated[0].rule, ("C12", "C13"))

    def test_c12_u_label_mx_read_as_a_label(self) -> None:
        """C12 (decided): a U-label mx is read as the A-label IDNA gives it
        (one meaning), noted; one IDNA refuses is dropped."""
        for value, text in (
            ("münchen.example", "xn--mnchen-3ya.example"),
            ("*.münchen.example", "*.xn--mnchen-3ya.example"),
            ("MÜNCHEN.example", "xn--mnchen-3ya.example"),
            (U_LABEL_NAME, "xn--80ab0c.xn--p1ai"),
            ("bücher.example.", "xn--bcher-kva.example"),
        ):
            data = body(*replaced("mx", f"mx: {value}"))
            policy = self.assert_policy(data)
            self.assertEqual([p.text for p in policy.mx], [text])
            dot = [(Tolerance.MX_TRAILING_DOT, 3)] if value.endswith(".") else []
            self.assertEqual(
                [(n.tolerance, n.line) for n in policy.tolerated],
                [(Tolerance.U_LABEL_MX, 3), *dot],
            )
        for value in ("mü nchen.example", "https://münchen.example/", "münchen"):
            policy = self.assert_tolerated(
                body(*VALID_LINES, f"mx: {value}"), [Tolerance.MX_DROPPED]
            )

    def test_idna_bounded(self) -> None:
        """IDNA costs up to a millisecond a value on the reactor thread: past
        MAX_IDNA_MX internationalised mx values (U-labels or A-labels to
        check) the rest are dropped unread, so a hostile 64 KiB policy of
        U-labels costs what 32 do."""
        values = [f"mx: ü{n}.example" for n in range(MAX_IDNA_MX + 5)]
        values += [f"mx: xn--mnchen-{n}-9db.example" for n in range(3)]
        policy = self.assert_policy(body(*VALID_LINES, *values))
        self.assertEqual(len(policy.mx), 1 + MAX_IDNA_MX)
        dropped = [n for n in policy.tolerated if n.tolerance is Tolerance.MX_DROPPED]
        self.assertEqual(len(dropped), 8)
        self.assertIn("more than 32 internationalised mx values", dropped[0].text)

    def test_notes_bounded(self) -> None:
        """Past MAX_LISTED_LINES tolerated lines are counted, not described:
        a hostile body of thousands of stray lines gets a bounded note list."""
        lines = [*VALID_LINES, *(f"stray {n}" for n in range(500)), "x-a:", "mx: ::1"]
        policy = self.assert_policy(body(*lines))
        self.assertEqual(len(policy.notes), MAX_LISTED_LINES + 3)
        tail = policy.notes[MAX_LISTED_LINES:]
        self.assertEqual(
            [(n.tolerance, n.line, n.text) for n in tail],
            [
                (Tolerance.STRAY_LINE, 0, "400 more line(s) of this kind not listed"),
                (Tolerance.BAD_EXTENSION, 0, "1 more line(s) of this kind not listed"),
                (Tolerance.MX_DROPPED, 0, "1 more line(s) of this kind not listed"),
            ],
        )
        # The note saying what max_age a none policy is kept is never cut.
        none = parse_policy(
            body("mode: none", "version: STSv1", *[""] * 150, "max_age: 9999999999")
        )
        assert isinstance(none, Policy)
        self.assertEqual(
            [(n.tolerance, n.rule, n.line) for n in none.notes[MAX_LISTED_LINES:]],
            [
                (Tolerance.BLANK_LINE, "C3", 0),
                (None, "C5", 2),
                (Tolerance.NONE_MAX_AGE, "C9", 153),
            ],
        )
        invalid = self.assert_policy_invalid(
            body(*replaced("mx", None), *(f"mx: 192.0.2.{n}" for n in range(9))), "C13"
        )
        self.assertTrue(invalid.reason.endswith("; and 6 more"), invalid.reason)

    def test_c13_ip_port_underscore(self) -> None:
        """C13: IP literals, ports and underscores never become a pattern, so an
        IP never reaches Postfix's match=."""
        for value in self.INVALID_MX_C13:
            self.assertIsNone(parse_mx_pattern(value), value)

    def test_c13_trailing_dot_normalised(self) -> None:
        """C13: one trailing dot is removed and the value lower-cased; two are not."""
        policy = self.assert_policy(body(*replaced("mx", "mx: MX.Example.com.")))
        self.assertEqual(policy.mx[0].text, "mx.example.com")
        self.assertEqual(policy.lines[2], "mx: MX.Example.com.")
        self.assert_policy_invalid(body(*replaced("mx", "mx: mx.example.com..")), "C12")

    def test_c14_duplicates_first_wins(self) -> None:
        """C14: a repeated non-mx key keeps its first value, noted."""
        policy = self.assert_policy(
            body(*VALID_LINES, "mode: none", "max_age: 1", "version: STSv2")
        )
        self.assertEqual((policy.mode, policy.max_age), (Mode.ENFORCE, 86400))
        self.assertEqual(rules(policy.notes), ["C14"])
        for key in ("mode", "max_age", "version"):
            self.assertIn(key, policy.notes[0].text)
        # The first value is the one checked, even when a later one is fine.
        self.assert_policy_invalid(
            body(*replaced("mode", "mode: bogus"), "mode: enforce"), "C6"
        )

    def test_c14_unknown_keys_ignored(self) -> None:
        """C14: unknown keys are accepted, ignored, and noted by name."""
        policy = self.assert_policy(body(*VALID_LINES, "x-foo: bar", "report: yes"))
        self.assertEqual(policy.mode, Mode.ENFORCE)
        self.assertEqual(rules(policy.notes), ["C14"])
        self.assertIn("x-foo", policy.notes[0].text)
        self.assertIn("report", policy.notes[0].text)

    def test_c15_extensions(self) -> None:
        """C15 (decided, tolerant): a malformed extension line is ignored and
        noted (a bad name makes it a stray line, a bad value a bad extension)."""
        for line in (
            "x-foo: bar baz",
            "x" * 32 + ": v",
            "x.y_z-9: v",
            "9x: v",
            "x-foo: bär ✓",
            "x-foo: a:b;c=d{}",
        ):
            self.assert_tolerated(body(*VALID_LINES, line), [])
        for line, kind in (
            ("x" * 33 + ": v", Tolerance.STRAY_LINE),
            ("x" * 40 + ": v", Tolerance.STRAY_LINE),
            ("_foo: v", Tolerance.STRAY_LINE),
            ("-foo: v", Tolerance.STRAY_LINE),
            ("x/y: v", Tolerance.STRAY_LINE),
            ("x foo: v", Tolerance.STRAY_LINE),
            ("bär: v", Tolerance.STRAY_LINE),
            ("x-foo: a\tb", Tolerance.BAD_EXTENSION),
            ("x-foo:", Tolerance.BAD_EXTENSION),
            ("x-foo:  \t ", Tolerance.BAD_EXTENSION),
            ("mode:", Tolerance.BAD_EXTENSION),  # a duplicate known key, empty
        ):
            policy = self.assert_tolerated(body(*VALID_LINES, line), [kind])
            self.assertEqual(policy.tolerated[0].line, 5)

    def test_c16_not_text(self) -> None:
        """C16 (decided): a control character other than TAB, CR, LF makes the
        body not text, whatever line it is on."""
        for line in ("x-foo: a\x7fb", "x-foo: a\x00b", "x-foo: a\x1bb", "\x0c"):
            result = self.assert_policy_invalid(body(*VALID_LINES, line), "C16")
            self.assertIn("line 5", result.reason)

    def test_c16_utf8(self) -> None:
        """C16: the body must be valid UTF-8; UTF-8 in extension values is fine."""
        for bad in (
            b"\xff",
            b"\xc3",
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
        ):
            result = self.assert_policy_invalid(
                body(*VALID_LINES) + b"x-foo: " + bad + b"\n", "C16"
            )
            self.assertIn("not UTF-8", result.reason)
        self.assert_policy(body(*VALID_LINES, "x-foo: \u00e9\u4e2d\U0001f600"))

    def test_c17_invalid_is_a_value(self) -> None:
        """C17: an invalid policy is a PolicyInvalid value with a one-line reason
        quoting the peer input cut to 200 characters, never an exception."""
        line = "mode: " + "a\tb" * 3000
        result = self.assert_policy_invalid(body(*replaced("mode", line)), "C6")
        self.assertIn("line 2", result.reason)
        self.assertLess(len(result.reason), 300)
        result = self.assert_policy_invalid(b"\n\n\n", "C4")
        self.assertIsInstance(result.reason, str)

    def test_c18_lines_kept(self) -> None:
        """C18: lines are the raw lines in order, without terminators, BOM or
        trailing blank lines; trailing WSP and unknown lines are kept."""
        raw = ("mode:  enforce \t", "version: STSv1", "x-a: b", *VALID_LINES[2:])
        policy = self.assert_policy(
            b"\xef\xbb\xbf" + body(*raw, term="\r\n") + b"\r\n  \r\n"
        )
        self.assertEqual(policy.lines, raw)

    def test_c19_consolidated(self) -> None:
        """C19: the consolidated table of valid and invalid bodies."""
        cases: list[tuple[bytes, str | None]] = [
            (b"", "C4"),
            (b"\xef\xbb\xbf", "C4"),
            (body("mode: none", "max_age: 1"), "C4"),
            (body("version: STSv1", "max_age: 1"), "C6"),
            (body("version: STSv1", "mode: testing", "mx: a.example"), "C8"),
            (body("version: STSv1", "mode: none"), None),
            (body("version: STSv1", "mode: none", "max_age: forever", "mx: ::1"), None),
            (body("version: STSv1", "mode: enforce", "max_age: 1"), "C11"),
            (body("version: STSv1", "mode: none", "max_age: 1"), None),
            (body("max_age: 1", "mode: none", "version: STSv1"), None),
            (body("version: STSv1", "mode: none", "max_age: 1", "x: y"), None),
            (body(*VALID_LINES, "mode: none"), None),
            (body(*VALID_LINES, term="\r\n", final=False), None),
            (body(*VALID_LINES, "garbage"), None),
            (b"<html>not a policy</html>", "C4"),
            (body("<pre>", *VALID_LINES, "</pre>"), None),
            (body("<pre>version: STSv1", *VALID_LINES[1:]), "C4"),
            (body("mode: enforced", *replaced("mode", None)), "C6"),
            (body("mode: test", *replaced("mode", None)), "C6"),
            (body("mode: [testing]", *replaced("mode", None)), "C6"),
            (body("max_age: enforce", *replaced("max_age", None)), "C8"),
            (body("version: STSv2", *replaced("version", None)), "C4"),
            (body("verison: STSv1", *replaced("version", None)), "C4"),
            (b"\x89PNG\r\n\x1a\n\x00\x00", "C16"),
            (b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\xff", "C16"),
        ]
        for data, rule in cases:
            if rule is None:
                self.assert_policy(data)
            else:
                self.assert_policy_invalid(data, rule)

    def test_k12_line_endings(self) -> None:
        """K12 (C1, C3): LF, CRLF, mixed, no final newline, trailing blank line and
        BOM all give the same policy."""
        expected = self.assert_policy(body(*VALID_LINES))
        for data in (
            body(*VALID_LINES, term="\r\n"),
            b"version: STSv1\nmode: enforce\r\nmx: mail.example.com\nmax_age: 86400",
            body(*VALID_LINES, final=False),
            body(*VALID_LINES) + b"\n",
            b"\xef\xbb\xbf" + body(*VALID_LINES),
        ):
            policy = self.assert_policy(data)
            self.assertEqual(
                (policy.mode, policy.max_age, policy.mx, policy.lines),
                (expected.mode, expected.max_age, expected.mx, expected.lines),
            )

    def test_k13_whitespace(self) -> None:
        """K13 (C2, decided tolerant): 'mode : enforce' and ' mode: enforce' read
        as enforce with a C2 note; 'mode:enforce' and trailing spaces/tabs are
        grammatical, no note."""
        for line in ("mode : enforce", " mode: enforce"):
            policy = self.assert_policy(body(*replaced("mode", line)))
            self.assertEqual(
                (policy.mode, rules(policy.tolerated)), (Mode.ENFORCE, ["C2"])
            )
        self.assert_tolerated(body(*replaced("mode", "mode:enforce")), [])
        self.assert_tolerated(body(*(line + " \t " for line in VALID_LINES)), [])

    def test_k14_case(self) -> None:
        """K14 (C4, C6, C7): Mode:, mode: Enforce and version: stsv1 are invalid."""
        self.assert_policy_invalid(body(*replaced("mode", "Mode: enforce")), "C7")
        self.assert_policy_invalid(body(*replaced("mode", "mode: Enforce")), "C6")
        self.assert_policy_invalid(body(*replaced("version", "version: stsv1")), "C4")

    def test_k15_duplicates_and_unknowns(self) -> None:
        """K15 (C14, A13): first mode wins; identical mx deduplicated; x-foo ignored."""
        policy = self.assert_policy(
            body(*VALID_LINES, "mode: none", VALID_LINES[2], "x-foo: bar")
        )
        self.assertEqual(policy.mode, Mode.ENFORCE)
        self.assertEqual(len(policy.mx), 1)
        self.assertEqual(rules(policy.notes), ["C14", "C14", "C11"])

    def test_k16_max_age(self) -> None:
        """K16 (C8-C10): 0, 0086400, 31557600 valid; 31557601, 99999999 (C9);
        11 digits, -1, 86400s (C8) invalid."""
        for text, value in (("0", 0), ("0086400", 86400), ("31557600", 31557600)):
            policy = self.assert_policy(body(*replaced("max_age", f"max_age: {text}")))
            self.assertEqual(policy.max_age, value)
        cases = [
            ("31557601", "C9"),
            ("99999999", "C9"),
            ("12345678901", "C8"),
            ("-1", "C8"),
            ("86400s", "C8"),
        ]
        for text, rule in cases:
            line = f"max_age: {text}"
            self.assert_policy_invalid(body(*replaced("max_age", line)), rule)

    def test_k17_mx_validity(self) -> None:
        """K17 (C12, C13): *.example.com ok, trailing dot normalised; the rest
        invalidate the policy, so no IP is ever in Policy.mx."""
        policy = self.assert_policy(body(*replaced("mx", "mx: *.example.com")))
        self.assertEqual(policy.mx, (MxPattern("*.example.com", True, "example.com"),))
        policy = self.assert_policy(body(*replaced("mx", "mx: mx.example.com.")))
        self.assertEqual(policy.mx[0].text, "mx.example.com")
        cases = [
            ("*.*.example.com", "C12"),
            ("mail*.example.com", "C12"),
            ("*", "C12"),
            ("192.0.2.1", "C13"),
            ("[192.0.2.1]", "C13"),
            ("mx.example.com:25", "C13"),
        ]
        for value, rule in cases:
            self.assert_policy_invalid(body(*replaced("mx", f"mx: {value}")), rule)
            policy = self.assert_policy(body(*VALID_LINES, f"mx: {value}"))
            self.assertEqual([p.text for p in policy.mx], ["mail.example.com"])
        policy = self.assert_policy(body(*replaced("mx", f"mx: {U_LABEL_NAME}")))
        self.assertEqual([p.text for p in policy.mx], ["xn--80ab0c.xn--p1ai"])


# -- mx patterns (C12, C13, D4) ---------------------------------------------------


class MxPatternTests(SynchronousTestCase):
    def test_d4_inputs(self) -> None:
        """C12/C13/D4: the D4-style inputs parse (normalised) or are rejected."""
        cases: dict[str, MxPattern | None] = {
            "*.example.com": MxPattern("*.example.com", True, "example.com"),
            "MAIL.Example.COM.": MxPattern(
                "mail.example.com", False, "mail.example.com"
            ),
            "*.EXAMPLE.com.": MxPattern("*.example.com", True, "example.com"),
            "xn--80aa.xn--p1ai": MxPattern(
                "xn--80aa.xn--p1ai", False, "xn--80aa.xn--p1ai"
            ),
            "XN--80AA.XN--P1AI": MxPattern(
                "xn--80aa.xn--p1ai", False, "xn--80aa.xn--p1ai"
            ),
            "*.co.uk": MxPattern("*.co.uk", True, "co.uk"),
            "*.*.example.com": None,
            "mail*.example.com": None,
            "*": None,
            "*.com": None,
            "192.0.2.1": None,
            "[192.0.2.1]": None,
            "mx.example.com:25": None,
            U_LABEL_NAME: None,
            "a_b.example.com": None,
            ".example.com": None,
            "example.com..": None,
            "example": None,
            "": None,
        }
        for value, expected in cases.items():
            self.assertEqual(parse_mx_pattern(value), expected, msg=repr(value))

    def test_c12_a_labels(self) -> None:
        """C12: xn-- labels must be valid, canonical punycode (checked with idna)."""
        self.assertIsNotNone(parse_mx_pattern("mx.xn--bcher-kva.example"))
        for label in ("xn--", "xn--zzzzzzzz", "xn--ls8h", "xn--a", "xn--abc-"):
            self.assertIsNone(parse_mx_pattern(f"{label}.example.com"), msg=label)
        # Labels with '--' elsewhere are plain LDH and allowed.
        self.assertIsNotNone(parse_mx_pattern("ab--cd.example.com"))

    def test_c12_lengths(self) -> None:
        """C12: labels are 1-63 characters; the name is at most 253."""
        self.assertIsNotNone(parse_mx_pattern("a" * 63 + ".example.com"))
        self.assertIsNone(parse_mx_pattern("a" * 64 + ".example.com"))
        name = ".".join(["a" * 63] * 3 + ["b" * 61])
        self.assertEqual(len(name), 253)
        self.assertIsNotNone(parse_mx_pattern(name))
        self.assertIsNone(parse_mx_pattern(name + "b"))
        self.assertIsNotNone(parse_mx_pattern(name + "."))
        self.assertIsNone(parse_mx_pattern("*." + name))

    def test_c13_ip_like(self) -> None:
        """C13: a name whose last label is all digits is treated as an IP."""
        for value in ("1.2.3.4", "example.123", "*.10.0.0.1", "0x7f.0.0.1"):
            self.assertIsNone(parse_mx_pattern(value), msg=value)
        self.assertIsNotNone(parse_mx_pattern("123.example.com"))
        self.assertIsNotNone(parse_mx_pattern("mx.example.c0m"))


class CheckerHelperTests(SynchronousTestCase):
    def test_max_age_limit_lifted(self):
        """max_age_limit=None keeps a max_age above the cap, for the checker (C9, H12)."""
        lines = (*VALID_LINES[:3], "max_age: 31557601")
        policy = parse_policy(body(*lines), max_age_limit=None)
        assert isinstance(policy, Policy)
        self.assertEqual(policy.max_age, MAX_AGE_LIMIT_S + 1)
        rejected = parse_policy(body(*lines))
        assert isinstance(rejected, PolicyInvalid)
        self.assertEqual(rejected.rule, "C9")

    def test_split_content_type(self):
        """Media type and parameters, lower-cased names, quotes removed (B10, B11)."""
        self.assertEqual(
            split_content_type('Text/Plain; Charset="UTF-8"; x=1'),
            ("text/plain", {"charset": "UTF-8", "x": "1"}),
        )
        self.assertEqual(split_content_type(None), ("", {}))
        self.assertEqual(split_content_type("text/html"), ("text/html", {}))
