"""Tests for the checker's report of what the tolerant reader forgave in a
policy file (spec H10, H11, C1-C3, C12, C13, C15; issue 12): one check per
departure and line, naming the line, what postfix-mtasts does and what
other senders do, with a fix; FAIL where common senders reject the whole
policy."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.model import Check, Status, Verdict
from postfix_mtasts.checker.rules import evaluate
from postfix_mtasts.checker.rules_policy import check_policy_body
from postfix_mtasts.checker.rules_tolerance import MAX_LINES_PER_CHECK, body_lines
from postfix_mtasts.core.policy import Tolerance
from postfix_mtasts.core.policy_fields import MAX_LISTED_LINES

from .checker_facts import (
    FAIL,
    INFO,
    NOW,
    PASS,
    URL,
    WARN,
    facts,
    fetched,
    only,
    policy_host,
    statuses,
)
from .policy_corpus import load_policy_rows

VALID = ("version: STSv1", "mode: enforce", "mx: mx1.example.com", "max_age: 1209600")
NONE = ("version: STSv1", "mode: none", "max_age: 86400")

#: The documented choice per tolerance (docs/checker.md, docs/decisions.md);
#: for a line of the kind each test below uses (see LineDependentTests).
TABLE = {
    Tolerance.BOM: ("H11", "policy-bom", FAIL),
    Tolerance.BARE_CR: ("H10", "policy-bare-cr", FAIL),
    Tolerance.INDENTED: ("H11", "policy-indented", FAIL),
    Tolerance.SPACE_BEFORE_COLON: ("H10", "policy-space-before-colon", FAIL),
    Tolerance.BLANK_LINE: ("H11", "policy-blank-line", WARN),
    Tolerance.TRAILING_BLANK: ("H11", "policy-trailing-blank", WARN),
    Tolerance.COMMENT_LINE: ("H11", "policy-comment", FAIL),
    Tolerance.STRAY_LINE: ("H10", "policy-stray-line", FAIL),
    Tolerance.BAD_EXTENSION: ("H10", "policy-bad-extension", WARN),
    Tolerance.VALUE_COMMENT: ("H10", "policy-value-comment", FAIL),
    Tolerance.U_LABEL_MX: ("H10", "policy-mx-u-label", FAIL),
    Tolerance.MX_TRAILING_DOT: ("H10", "policy-mx-trailing-dot", FAIL),
    Tolerance.MX_DROPPED: ("H10", "policy-mx-dropped", FAIL),
    Tolerance.NONE_MAX_AGE: ("H10", "policy-none-max-age", FAIL),
}
SLUGS = {slug for _, slug, _ in TABLE.values()}


def body(*lines: str, term: str = "\n") -> bytes:
    return "".join(f"{line}{term}" for line in lines).encode()


def with_line(
    number: int, line: str, base: tuple[str, ...] = VALID, term: str = "\n"
) -> bytes:
    """``base`` with ``line`` as line ``number`` (1-based), the rest after it."""
    lines = list(base)
    lines.insert(number - 1, line)
    return body(*lines, term=term)


def departures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.check in SLUGS]


class ToleranceKindTests(SynchronousTestCase):
    """One test per tolerance kind: status, slug, line, quoted line, fix."""

    def assert_departure(
        self,
        data: bytes,
        tolerance: Tolerance,
        line: int,
        quoted: str,
        fix: str,
        *,
        accepted: bool = True,
    ) -> Check:
        rule, slug, status = TABLE[tolerance]
        checks, policy = check_policy_body(URL, data)
        self.assertEqual(policy is not None, accepted, checks)
        [check] = departures(checks)
        self.assertEqual((check.rule, check.check, check.status), (rule, slug, status))
        self.assertIn(f"line {line} {quoted}", check.message)
        self.assertIn("postfix-mtasts", check.message)
        self.assertIn("senders", check.message)
        self.assertIn(fix, check.fix)
        self.assertEqual(check.subject, URL)
        return check

    def test_every_tolerance_has_a_documented_choice(self) -> None:
        """Every Tolerance the reader can note has a row in the table (H10, H11)."""
        self.assertEqual(set(TABLE), set(Tolerance))

    def test_bom(self) -> None:
        """A leading BOM (C3) FAILs on line 1: most senders then find no
        'version' field; fix: save without BOM (H11)."""
        check = self.assert_departure(
            b"\xef\xbb\xbf" + body(*VALID),
            Tolerance.BOM,
            1,
            "'version: STSv1'",
            "without a byte order mark",
        )
        self.assertIn("byte order mark", check.message)
        self.assertIn("find no 'version' field", check.message)

    def test_bare_cr(self) -> None:
        """Bare CR line ends (C1): strict senders see one line; FAIL (H10)."""
        check = self.assert_departure(
            body(*VALID, term="\r"),
            Tolerance.BARE_CR,
            1,
            "'version: STSv1'",
            "LF or CRLF",
        )
        self.assertIn("reject the whole policy", check.message)

    def test_indented(self) -> None:
        """An indented known key (C2) FAILs: senders that match keys exactly
        miss the field; the check names the line and quotes it (H11)."""
        check = self.assert_departure(
            with_line(2, "  mode: enforce", VALID[:1] + VALID[2:]),
            Tolerance.INDENTED,
            2,
            "'  mode: enforce'",
            "remove the whitespace at the start",
        )
        self.assertIn("see no 'mode' field here", check.message)
        self.assertIn("reject the whole policy", check.message)

    def test_every_line_indented_is_one_check_per_line(self) -> None:
        """Each indented line is its own check, in line order (H11, C2)."""
        checks, policy = check_policy_body(URL, body(*(f"   {x}" for x in VALID)))
        self.assertIsNotNone(policy)
        found = departures(checks)
        self.assertEqual([c.check for c in found], ["policy-indented"] * 4)
        for number, check in enumerate(found, 1):
            self.assertIn(f"line {number} '   {VALID[number - 1]}'", check.message)

    def test_space_before_colon(self) -> None:
        """Whitespace before ':' (C2) (H10)."""
        self.assert_departure(
            with_line(2, "mode : enforce", VALID[:1] + VALID[2:]),
            Tolerance.SPACE_BEFORE_COLON,
            2,
            "'mode : enforce'",
            "no space before the ':'",
        )

    def test_blank_line(self) -> None:
        """An interior blank line (C3) (H11)."""
        check = self.assert_departure(
            with_line(3, ""), Tolerance.BLANK_LINE, 3, "''", "remove the blank line"
        )
        self.assertIn("is blank", check.message)

    def test_trailing_blank(self) -> None:
        """Blank lines after the last field (C3): one check at the first (H11)."""
        self.assert_departure(
            body(*VALID, "", " "),
            Tolerance.TRAILING_BLANK,
            5,
            "''",
            "at the end of the file",
        )

    def test_comment_line(self) -> None:
        """A '#' comment line without ':' (C3) FAILs: senders that need a ':'
        on every line reject the policy (H11)."""
        self.assert_departure(
            with_line(5, "# MTA-STS for example.com"),
            Tolerance.COMMENT_LINE,
            5,
            "'# MTA-STS for example.com'",
            "remove the comment line",
        )

    def test_stray_line(self) -> None:
        """A line without ':' (C2), e.g. an editor's leftover, FAILs (H10)."""
        check = self.assert_departure(
            with_line(5, "wq"),
            Tolerance.STRAY_LINE,
            5,
            "'wq'",
            "remove the line",
        )
        self.assertIn("need a ':' on every line", check.message)

    def test_bad_extension(self) -> None:
        """An extension with an empty value or a TAB (C15) WARNs: senders
        ignore unknown fields (H10)."""
        self.assert_departure(
            with_line(5, "x-note:\ta\tb"),
            Tolerance.BAD_EXTENSION,
            5,
            "'x-note:\\ta\\tb'",
            "without control characters",
        )

    def test_value_comment(self) -> None:
        """A comment after max_age (C2): senders read it as the value (H10)."""
        check = self.assert_departure(
            body(*VALID[:3], "max_age: 1209600 # two weeks"),
            Tolerance.VALUE_COMMENT,
            4,
            "'max_age: 1209600 # two weeks'",
            "remove the comment after the value",
        )
        self.assertIn("reject the whole policy", check.message)

    def test_u_label_mx(self) -> None:
        """A U-label mx (C12) FAILs: RFC 8461 requires A-labels; the message
        and the fix give the A-label it is read as (H10)."""
        check = self.assert_departure(
            with_line(3, "mx: münchen.example", VALID[:2] + VALID[3:]),
            Tolerance.U_LABEL_MX,
            3,
            "'mx: münchen.example'",
            "'xn--mnchen-3ya.example'",
        )
        self.assertIn("reads it as 'xn--mnchen-3ya.example'", check.message)
        self.assertIn("A-label", check.message)

    def test_mx_trailing_dot(self) -> None:
        """An mx ending in a dot (C13, D4) FAILs: the daemon drops the dot,
        senders that keep it match no MX host (H10)."""
        check = self.assert_departure(
            with_line(4, "mx: mx2.example.com."),
            Tolerance.MX_TRAILING_DOT,
            4,
            "'mx: mx2.example.com.'",
            "without the trailing dot",
        )
        self.assertIn("match no MX host", check.message)

    def test_mx_dropped(self) -> None:
        """An invalid mx beside a valid one (C13) FAILs: strict senders
        reject the policy, while postfix-mtasts applies the valid ones (H10)."""
        check = self.assert_departure(
            with_line(4, "mx: 192.0.2.1"),
            Tolerance.MX_DROPPED,
            4,
            "'mx: 192.0.2.1'",
            "no IP address",
        )
        self.assertIn("looks like an IP address", check.message)
        self.assertIn("drops this mx line and applies the valid ones", check.message)

    def test_none_max_age(self) -> None:
        """A mode none policy with an unusable max_age FAILs; no H12 check on
        a value the file does not hold (H10, H12)."""
        data = body("version: STSv1", "mode: none", "max_age: soon")
        check = self.assert_departure(
            data, Tolerance.NONE_MAX_AGE, 3, "'max_age: soon'", "max_age: 86400"
        )
        self.assertIn("86400 s", check.message)
        checks, _ = check_policy_body(URL, data)
        self.assertNotIn("policy-max-age", [c.check for c in checks])

    def test_none_max_age_missing(self) -> None:
        """A mode none policy without max_age: the check says the line is missing (H10)."""
        checks, policy = check_policy_body(URL, body("version: STSv1", "mode: none"))
        self.assertIsNotNone(policy)
        check = only(checks, "policy-none-max-age")
        self.assertEqual(check.status, TABLE[Tolerance.NONE_MAX_AGE][2])
        self.assertIn("has no max_age line", check.message)


class LineDependentTests(SynchronousTestCase):
    """Where the status depends on the line: which key, whether it has ':'."""

    def status_of(self, line: str, number: int = 5) -> tuple[str, Status, str]:
        checks, policy = check_policy_body(URL, with_line(number, line))
        self.assertIsNotNone(policy, line)
        [check] = departures(checks)
        return check.check, check.status, check.message

    def test_whitespace_around_an_unknown_key_warns(self) -> None:
        """Senders ignore an unknown field with or without the whitespace:
        WARN; around version, mode, max_age or mx: FAIL (H10, H11, C2)."""
        for line, slug, status in (
            ("  x-note: hi", "policy-indented", WARN),
            ("x-note : hi", "policy-space-before-colon", WARN),
            ("  mx: mx2.example.com", "policy-indented", FAIL),
            ("mx : mx2.example.com", "policy-space-before-colon", FAIL),
        ):
            check, found, _ = self.status_of(line)
            self.assertEqual((check, found), (slug, status), line)
        self.assertIn("ignore this unknown field", self.status_of("  x-note: hi")[2])
        self.assertIn(
            "do not apply this mx", self.status_of("  mx: mx2.example.com")[2]
        )

    def test_a_line_with_a_colon_reads_as_an_unknown_field(self) -> None:
        """A comment or stray line holding ':' is an unknown field to most
        senders: WARN; without ':' it FAILs (H10, H11, C2, C3)."""
        for line, slug, status in (
            ("# see https://example.com/mta-sts", "policy-comment", WARN),
            ("# MTA-STS", "policy-comment", FAIL),
            ("x foo: v", "policy-stray-line", WARN),
            ("x" * 40 + ": v", "policy-stray-line", WARN),
            ("see the wiki", "policy-stray-line", FAIL),
        ):
            check, found, _ = self.status_of(line)
            self.assertEqual((check, found), (slug, status), line)

    def test_bad_value_on_a_repeated_known_key_fails(self) -> None:
        """An empty repeated 'mode:' is read by senders where the last value
        wins, who then reject the policy: FAIL (H10, C14, C15)."""
        check, status, message = self.status_of("mode:")
        self.assertEqual((check, status), ("policy-bad-extension", FAIL))
        self.assertIn("the last 'mode' line wins", message)


class SyntaxAndVerdictTests(SynchronousTestCase):
    """H10 policy-syntax and the verdict for a file that needed tolerance."""

    def test_clean_policy_is_valid(self) -> None:
        """A grammatical policy: H10 PASS 'valid policy', no departure checks (H10)."""
        checks, _ = check_policy_body(URL, body(*VALID))
        self.assertEqual(departures(checks), [])
        syntax = only(checks, "policy-syntax")
        self.assertEqual(syntax.status, PASS)
        self.assertTrue(syntax.message.startswith("valid policy"))

    def test_warn_only_policy_is_readable_not_valid(self) -> None:
        """Only WARN departures: H10 WARN 'readable, but not RFC 8461
        grammar', never 'valid'; nothing FAILs (H10, H11)."""
        checks, policy = check_policy_body(URL, with_line(3, ""))
        self.assertIsNotNone(policy)
        syntax = only(checks, "policy-syntax")
        self.assertEqual(syntax.status, WARN)
        self.assertIn("readable, but not RFC 8461 grammar", syntax.message)
        self.assertNotIn("valid policy", syntax.message)
        self.assertTrue(syntax.fix)
        report = evaluate(
            facts(policy_host=policy_host(fetched(with_line(3, "")))), NOW
        )
        self.assertFalse(report.failed)

    def test_fail_departure_makes_the_verdict_broken(self) -> None:
        """A departure strict senders reject: H10 policy-syntax FAILs too and
        the verdict is broken, exit status 1 (H10)."""
        data = with_line(4, "mx: 192.0.2.1")
        checks, _ = check_policy_body(URL, data)
        syntax = only(checks, "policy-syntax")
        self.assertEqual(syntax.status, FAIL)
        self.assertIn("strict senders reject the whole policy", syntax.message)
        report = evaluate(facts(policy_host=policy_host(fetched(data))), NOW)
        self.assertEqual(report.verdict, Verdict.BROKEN)
        self.assertIn("H10 policy-mx-dropped", report.verdict_reason)
        self.assertEqual(report.mode, "enforce")

    def test_mode_none_names_the_blocked_removal_path(self) -> None:
        """A mode none policy only a tolerant reader accepts: the first
        departure and H18 say that rejecting senders keep their cached
        policy, so the RFC 8461 §8.3 removal path is blocked for them (H10,
        H18)."""
        data = with_line(2, "  mode: none", NONE[:1] + NONE[2:], term="\r\n")
        data += b"\n"
        checks, policy = check_policy_body(URL, data)
        self.assertIsNotNone(policy)
        first, second = departures(checks)
        self.assertEqual(first.check, "policy-indented")
        self.assertIn("keeps its cached enforce or testing policy", first.message)
        self.assertIn("§8.3", first.message)
        self.assertEqual(second.check, "policy-trailing-blank")
        self.assertNotIn("§8.3", second.message)
        h18 = only(checks, "policy-mode")
        self.assertEqual(h18.status, INFO)
        self.assertIn("keep their cached policy", h18.message)
        clean, _ = check_policy_body(URL, body(*NONE))
        self.assertNotIn("cached", only(clean, "policy-mode").message)

    def test_departures_of_a_rejected_policy_are_listed(self) -> None:
        """When the policy is invalid anyway, the lines read past are still
        listed, saying the policy is rejected (H10, C13)."""
        data = body("version: STSv1", "mode: enforce", "mx: 192.0.2.1", " max_age: 1")
        checks, policy = check_policy_body(URL, data)
        self.assertIsNone(policy)
        self.assertEqual(
            statuses(checks)[:3],
            [
                ("H10", "policy-syntax", FAIL),
                ("H10", "policy-mx-dropped", FAIL),
                ("H11", "policy-indented", FAIL),
            ],
        )
        for check in checks[1:3]:
            self.assertIn("but rejects the policy", check.message)
            self.assertNotIn("applies the valid ones", check.message)

    def test_lines_per_check_are_bounded(self) -> None:
        """A file of many like lines lists MAX_LINES_PER_CHECK of them, then
        one check counting the rest with the worst status: the output stays
        bounded whatever the policy host serves (H10, H11)."""
        extra = [f"  x-{i}: v" for i in range(14)] + ["  mx: mx2.example.com"]
        checks, _ = check_policy_body(URL, body(*VALID, *extra))
        indented = [c for c in checks if c.check == "policy-indented"]
        self.assertEqual(len(indented), MAX_LINES_PER_CHECK + 1)
        self.assertIn("line 14 ", indented[-2].message)
        summary = indented[-1]
        self.assertEqual(summary.status, FAIL)  # the indented mx among the rest
        self.assertTrue(summary.message.startswith("and 5 more line(s) like this"))
        self.assertTrue(summary.fix)

    def test_lines_the_reader_only_counted_are_counted(self) -> None:
        """Past the reader's own limit of described lines (MAX_LISTED_LINES)
        its count is added to the rest, never shown as a line of its own
        (H10, H11)."""
        extra = [f"  x-{i}: v" for i in range(MAX_LISTED_LINES + 20)]
        checks, policy = check_policy_body(URL, body(*VALID, *extra))
        self.assertIsNotNone(policy)
        indented = [c for c in checks if c.check == "policy-indented"]
        self.assertEqual(len(indented), MAX_LINES_PER_CHECK + 1)
        self.assertTrue(
            indented[-1].message.startswith(
                f"and {MAX_LISTED_LINES + 20 - MAX_LINES_PER_CHECK} more line(s)"
            )
        )
        self.assertFalse(any(c.message.startswith("the file") for c in checks))

    def test_old_style_notes_not_repeated(self) -> None:
        """BOM and trailing blank lines are reported once, by their own
        checks, not again as policy-style (H11, C3)."""
        checks, _ = check_policy_body(URL, b"\xef\xbb\xbf" + body(*VALID, ""))
        self.assertNotIn("policy-style", [c.check for c in checks])
        self.assertEqual(
            [c.check for c in departures(checks)],
            ["policy-bom", "policy-trailing-blank"],
        )

    def test_body_lines_number_like_the_reader(self) -> None:
        """Quoted lines come from the same numbering as the reader's notes:
        BOM skipped, LF, CRLF and bare CR end lines (C1, C3)."""
        self.assertEqual(
            body_lines(b"\xef\xbb\xbfa\r\nb\rc\nd\xff"), ["a", "b", "c", "d\ufffd"]
        )


class CorpusTests(SynchronousTestCase):
    """The policy corpus (tests/data/policies.tsv) through the checker."""

    def test_every_tolerated_line_is_a_check(self) -> None:
        """For each corpus body the daemon reads: policy-syntax is PASS
        exactly when nothing was tolerated; else each tolerated note is one
        check of its kind's name, and policy-syntax takes their worst
        status; an invalid body FAILs policy-syntax (H10, H11, issue 12)."""
        slug = {tolerance: row[1] for tolerance, row in TABLE.items()}
        for row in load_policy_rows():
            assert isinstance(row.data, bytes)
            checks, policy = check_policy_body(URL, row.data)
            syntax = only(checks, "policy-syntax")
            found = departures(checks)
            if policy is None:
                self.assertEqual(syntax.status, FAIL, row.id)
                continue
            kinds = [n.tolerance for n in policy.tolerated if n.tolerance]
            self.assertEqual(
                sorted(c.check for c in found),
                sorted(slug[k] for k in kinds),
                row.id,
            )
            worst = FAIL if FAIL in {c.status for c in found} else WARN
            self.assertEqual(syntax.status, worst if found else PASS, row.id)
            for check in found:
                self.assertIn("line ", check.message, row.id)
                self.assertTrue(check.fix, row.id)
