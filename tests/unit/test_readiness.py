"""Is a domain ready for ``mode: enforce``? (issue 14, ``reports
--verdict``): each rule a function of data, checked against a table of
cases; the guide's two weeks of testing mode with TLS reports (RFC 8460)
before enforce (RFC 8461 §5)."""

from __future__ import annotations

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.facts import FetchProblem
from postfix_mtasts.checker.model import Check, Report, Status, Verdict
from postfix_mtasts.checker.readiness import Outcome, judge
from postfix_mtasts.checker.readiness_evidence import (
    Evidence,
    Finding,
    SeenPolicy,
    gather_evidence,
)
from postfix_mtasts.checker.readiness_policies import compare_policies
from postfix_mtasts.checker.readiness_report import (
    exit_status,
    readiness_json,
    render_readiness,
)
from postfix_mtasts.checker.readiness_rules import (
    rule_days,
    rule_live,
    rule_policy,
    rule_recent,
    rule_senders,
    rule_sts_failures,
    rule_uncovered,
)
from postfix_mtasts.checker.rules import published_policy
from postfix_mtasts.core.policy import Mode, Policy, parse_policy

from .checker_facts import (
    DOMAIN,
    MX1,
    MX2,
    NOW,
    facts,
    fetched,
    policy_body,
    policy_host,
)
from .readiness_samples import daily_report, two_weeks

TODAY = "2027-01-15"  # NOW's UTC day


def _policy(mode: str = "testing", mx: tuple[str, ...] = (MX1,)) -> Policy:
    policy = parse_policy(policy_body(mode, mx, 604800))
    assert isinstance(policy, Policy), policy
    return policy


def _live(*checks: Check, verdict: Verdict = Verdict.READY_FOR_ENFORCE) -> Report:
    return Report(DOMAIN, NOW, checks, verdict, "why", "testing")


def _codes(findings: list[Finding] | tuple[Finding, ...]) -> list[tuple[int, str]]:
    return [(f.rank, f.code) for f in findings]


class EvidenceTests(SynchronousTestCase):
    def test_days_senders_and_window(self) -> None:
        """Days and senders count the reports of an sts policy of the
        domain (RFC 8460 §4.4 policy-type); failures and MX hosts count
        from the window's first day on only."""
        reports = [
            daily_report(20, failures=((MX1, "certificate-expired", 5),)),
            daily_report(3, "Sender B", failures=((MX1, "certificate-expired", 2),)),
            daily_report(3, failures=(("", "sts-policy-fetch-error", 1),)),
            daily_report(2, "Sender C", policy_type="no-policy-found"),
            daily_report(2, "Sender D", domain="other.example"),
            daily_report(1, failures=((MX2, "starttls-not-supported", 4),)),
            daily_report(1, failures=((MX2, "tlsa-invalid", 9),)),
        ]
        self.assertEqual(
            gather_evidence(reports, DOMAIN, NOW, 14),
            Evidence(
                days=("2026-12-26", "2027-01-12", "2027-01-14"),
                senders=("Sender A", "Sender B"),
                window_start="2027-01-01",
                failures=(
                    (MX2, "starttls-not-supported", 4),
                    (MX1, "certificate-expired", 2),
                    ("", "sts-policy-fetch-error", 1),
                ),
                hosts=((MX2, 13), (MX1, 2)),
                policies=(
                    SeenPolicy(
                        "sts",
                        (),
                        ("Sender A", "Sender B"),
                        "2027-01-12",
                        "2027-01-14",
                        416,
                    ),
                    SeenPolicy(
                        "no-policy-found",
                        (),
                        ("Sender C",),
                        "2027-01-13",
                        "2027-01-13",
                        100,
                    ),
                ),
            ),
        )

    def test_policies_seen_apart(self) -> None:
        """Each distinct (policy-type, policy-string) senders reported in
        the window is one seen policy (RFC 8460 §4.4), most sessions
        first; the same strings from two senders are one."""
        old = _strings("testing", (MX1,), 86400)
        new = _strings("testing", (MX1, MX2), 604800)
        reports = [
            daily_report(2, policy_strings=old),
            daily_report(1, policy_strings=new),
            daily_report(1, "Sender B", policy_strings=new),
        ]
        evidence = gather_evidence(reports, DOMAIN, NOW, 14)
        self.assertEqual(
            [(p.policy_strings, p.senders, p.sessions) for p in evidence.policies],
            [(new, ("Sender A", "Sender B"), 200), (old, ("Sender A",), 100)],
        )


def _strings(mode: str, mx: tuple[str, ...], max_age: int) -> tuple[str, ...]:
    return tuple(policy_body(mode, mx, max_age).decode().splitlines())


def _seen(policy_type: str = "sts", strings: tuple[str, ...] = ()) -> SeenPolicy:
    return SeenPolicy(policy_type, strings, ("Sender A",), TODAY, TODAY, 100)


class PolicyComparisonTests(SynchronousTestCase):
    def test_against_the_published_policy(self) -> None:
        """A seen policy is as published when its mode, mx patterns (in any
        order and case) and max_age are the published one's; otherwise the
        difference names each field (RFC 8461 §3.2), and what cannot be
        compared says why."""
        published = _policy("enforce", (MX1, MX2))
        cases = [
            (_seen(strings=_strings("enforce", (MX2, MX1.upper()), 604800)), ""),
            (
                _seen(strings=_strings("testing", (MX1,), 86400)),
                f"mode testing, now enforce; mx {MX1}, now {MX1} {MX2};"
                " max_age 86400, now 604800",
            ),
            (_seen("no-policy-found"), "not an MTA-STS policy"),
            (_seen(), "the senders did not say which policy (no policy-string)"),
            (
                _seen(strings=("version: STSv1", "mode: sometimes")),
                "not a valid policy (C6: line 2: mode 'sometimes' is not one"
                " of enforce, testing, none)",
            ),
        ]
        for seen, difference in cases:
            [compared] = compare_policies([seen], published)
            self.assertEqual(compared.difference, difference, seen)
            self.assertEqual(compared.as_published, not difference)
        [unpublished] = compare_policies(
            [_seen(strings=_strings("testing", (MX1,), 86400))], None
        )
        self.assertEqual(
            (unpublished.described, unpublished.difference),
            (
                f"sts mode testing, mx {MX1}, max_age 86400",
                "no valid MTA-STS policy is published now",
            ),
        )


class RuleTests(SynchronousTestCase):
    def test_policy(self) -> None:
        """Rank 10: no policy, or mode none, leaves nothing to enforce
        (RFC 8461 §5: mode none); testing and enforce pass this rule."""
        cases = [
            (None, [(10, "no-policy")]),
            (Mode.NONE, [(10, "mode-none")]),
            (Mode.TESTING, []),
            (Mode.ENFORCE, []),
        ]
        for mode, expected in cases:
            self.assertEqual(_codes(rule_policy(DOMAIN, mode)), expected, mode)
        [finding] = rule_policy(DOMAIN, None)
        self.assertIn("--suggest", finding.fix)

    def test_live(self) -> None:
        """Rank 20 for each live check that FAILs, 25 for each that could
        not be made, nothing for PASS/WARN/INFO; rank 10 alone when the
        live check saw nothing (spec H.1)."""
        fail = Check("H15", "mx-cert-expiry", Status.FAIL, MX1, "expired", "renew")
        unsure = Check("H15", "mx-connect", Status.INCONCLUSIVE, MX2, "refused")
        fine = [
            Check("H1", "sts-record", status, DOMAIN, "ok")
            for status in (Status.PASS, Status.WARN, Status.INFO)
        ]
        cases = [
            (_live(*fine), []),
            (
                _live(fail, unsure, *fine),
                [(20, "check-mx-cert-expiry"), (25, "check-mx-connect")],
            ),
            (
                _live(unsure, verdict=Verdict.COULD_NOT_CHECK),
                [(10, "live-check")],
            ),
        ]
        for live, expected in cases:
            self.assertEqual(_codes(rule_live(live)), expected)
        findings = rule_live(_live(fail, unsure))
        self.assertEqual(findings[0].fix, "renew")
        self.assertIn("from a host that reaches it", findings[1].fix)

    def test_sts_failures(self) -> None:
        """Rank 30: an STS failure (RFC 8460 §4.3) in the window on a host
        the policy matches, on an unnamed host, or on the policy host;
        none for a host the policy no longer matches (rule 40's)."""
        patterns = _policy(mx=("*.example.com",)).mx
        cases = [
            ((MX1, "certificate-expired", 3), patterns, MX1),
            (("mx.other.net", "certificate-expired", 3), patterns, None),
            (("mx.other.net", "certificate-expired", 3), None, "mx.other.net"),
            (("", "validation-failure", 1), patterns, f"an MX host of {DOMAIN}"),
            (("", "sts-webpki-invalid", 1), patterns, f"mta-sts.{DOMAIN}"),
        ]
        for failure, given, subject in cases:
            evidence = Evidence((), (), "2027-01-01", failures=(failure,))
            findings = rule_sts_failures(evidence, DOMAIN, given)
            self.assertEqual(
                [f.subject for f in findings], [subject] if subject else []
            )
        [finding] = rule_sts_failures(
            Evidence((), (), "2027-01-01", ((MX1, "starttls-not-supported", 7),)),
            DOMAIN,
            patterns,
        )
        self.assertEqual((finding.rank, finding.fix), (30, f"offer STARTTLS on {MX1}"))
        self.assertIn(
            "7 session(s) failing with starttls-not-supported", finding.message
        )

    def test_uncovered(self) -> None:
        """Rank 40: every MX host senders named must match the policy's mx
        patterns (RFC 8461 §4.1: one whole left-most label for *.)."""
        cases = [
            ((MX1,), MX1, []),
            (("*.example.com",), MX2, []),
            (("*.example.com",), "a.b.example.com", [(40, "mx-not-covered")]),
            ((MX1,), MX2, [(40, "mx-not-covered")]),
        ]
        for mx, host, expected in cases:
            evidence = Evidence((), (), "2027-01-01", hosts=((host, 2),))
            found = rule_uncovered(evidence, _policy(mx=mx).mx)
            self.assertEqual(_codes(found), expected, (mx, host))
        self.assertEqual(
            rule_uncovered(Evidence((), (), "x", hosts=((MX2, 1),)), None), []
        )
        [finding] = rule_uncovered(
            Evidence((), (), "x", hosts=((MX2, 1),)), _policy().mx
        )
        self.assertIn(f"add 'mx: {MX2}'", finding.fix)

    def test_senders(self) -> None:
        """Rank 50: at least min_senders reporting organisations."""
        cases = [((), 2, 1), (("A",), 2, 1), (("A", "B"), 2, 0), (("A",), 1, 0)]
        for senders, wanted, found in cases:
            evidence = Evidence((), senders, "x")
            self.assertEqual(len(rule_senders(evidence, DOMAIN, wanted)), found)
        [finding] = rule_senders(Evidence((), ("\x1b[2J",), "x"), DOMAIN, 2)
        self.assertIn("('\\x1b[2J')", finding.message)

    def test_days(self) -> None:
        """Rank 60: reports cover at least min_days UTC days (the guide:
        two weeks of testing mode)."""
        fourteen = tuple(f"2027-01-{d:02d}" for d in range(1, 15))
        cases = [((), 14, 1), (fourteen[:13], 14, 1), (fourteen, 14, 0)]
        for days, wanted, found in cases:
            self.assertEqual(
                len(rule_days(Evidence(days, (), "x"), DOMAIN, wanted)), found
            )
        [finding] = rule_days(Evidence(fourteen[:3], (), "x"), DOMAIN, 14)
        self.assertIn("3 day(s) (2027-01-01 to 2027-01-03)", finding.message)
        self.assertIn("11 more day(s)", finding.fix)

    def test_recent(self) -> None:
        """Rank 55: the newest report is at most three days old (a daily
        report is mailed after its day ends, RFC 8460 §4.1)."""
        cases = [((), 0), (("2027-01-12",), 0), (("2027-01-11",), 1)]
        for days, found in cases:
            self.assertEqual(
                len(rule_recent(Evidence(days, (), "x"), DOMAIN, NOW)), found
            )


class JudgeTests(SynchronousTestCase):
    def test_ready(self) -> None:
        """Testing mode, two weeks of clean reports from two senders, a
        clean live check: ready for enforce, exit 0."""
        readiness = judge(_live(), _policy(), two_weeks(), min_days=14, min_senders=2)
        self.assertEqual((readiness.outcome, readiness.findings), (Outcome.READY, ()))
        self.assertTrue(readiness.ready)
        self.assertEqual(exit_status(readiness), 0)
        text = render_readiness(readiness)
        self.assertIn("verdict: ready for enforce — switch the policy", text)
        self.assertIn("reports: 14 day(s), 2027-01-01 to 2027-01-14 (wanted 14)", text)

    def test_policies_beside_the_verdict(self) -> None:
        """The verdict lists the policies senders applied in the window,
        each as published now or not and why, in text and JSON; they are
        information, not findings."""
        old = _strings("testing", (MX1,), 86400)
        reports = two_weeks(daily_report(1, "Sender C", policy_strings=old))
        readiness = judge(
            _live(), _policy("testing", (MX1, MX2)), reports, min_days=14, min_senders=2
        )
        self.assertEqual(readiness.outcome, Outcome.READY)
        lines = render_readiness(readiness).splitlines()
        self.assertEqual(
            lines[-3:],
            [
                "policies senders applied since 2027-01-01:",
                "  sts: 2 organisation(s), 2027-01-01 to 2027-01-14, 2800 session(s)"
                " — not as published now: the senders did not say which policy"
                " (no policy-string)",
                f"  sts mode testing, mx {MX1}, max_age 86400: 1 organisation(s),"
                f" 2027-01-14 to 2027-01-14, 100 session(s) — not as published"
                f" now: mx {MX1}, now {MX1} {MX2}; max_age 86400, now 604800",
            ],
        )
        [_, seen] = readiness_json(readiness)["policies_seen"]
        self.assertEqual(
            (seen["policy_string"], seen["organizations"], seen["as_published"]),
            (list(old), ["Sender C"], False),
        )

    def test_most_severe_first(self) -> None:
        """Findings run most severe first: live FAIL, reported STS failure,
        uncovered MX host, senders, days; exit 1."""
        fail = Check("H15", "mx-cert-name", Status.FAIL, MX1, "wrong name", "fix it")
        reports = [
            daily_report(1, failures=((MX2, "certificate-expired", 1),)),
            daily_report(2, failures=((MX1, "certificate-host-mismatch", 4),)),
        ]
        readiness = judge(_live(fail), _policy(), reports, min_days=14, min_senders=2)
        self.assertEqual(
            _codes(readiness.findings),
            [
                (20, "check-mx-cert-name"),
                (30, "certificate-host-mismatch"),
                (40, "mx-not-covered"),
                (50, "few-senders"),
                (60, "few-days"),
            ],
        )
        self.assertEqual(
            (readiness.outcome, exit_status(readiness)), (Outcome.NOT_READY, 1)
        )
        lines = render_readiness(readiness).splitlines()
        self.assertEqual(
            lines[3],
            "verdict: not ready for enforce — fix these first (most severe first):",
        )
        self.assertEqual(
            lines[4],
            f"  1. {MX1}: live check H15 mx-cert-name FAIL: wrong name — fix it",
        )
        document = readiness_json(readiness)
        self.assertEqual(
            (document["verdict"], document["exit_status"]), ("not-ready", 1)
        )
        self.assertEqual(document["findings"][1]["code"], "certificate-host-mismatch")

    def test_enforce_and_no_policy(self) -> None:
        """Already in enforce: said so, and the testing-period rules no
        longer apply; no policy, or a domain not seen at all, is not ready."""
        enforce = judge(_live(), _policy("enforce"), [], min_days=14, min_senders=2)
        self.assertEqual((enforce.outcome, enforce.findings), (Outcome.ENFORCING, ()))
        self.assertIn("already in enforce mode, and nothing", render_readiness(enforce))
        self.assertEqual(exit_status(enforce), 0)
        broken = judge(
            _live(),
            _policy("enforce"),
            [daily_report(1, failures=((MX1, "certificate-expired", 1),))],
            min_days=14,
            min_senders=2,
        )
        self.assertEqual(_codes(broken.findings), [(30, "certificate-expired")])
        self.assertIn("already in enforce mode — fix these", render_readiness(broken))
        self.assertEqual(exit_status(broken), 1)
        missing = judge(_live(), None, two_weeks(), min_days=14, min_senders=2)
        self.assertEqual(_codes(missing.findings), [(10, "no-policy")])
        self.assertIn("published policy: mode (none)", render_readiness(missing))
        unseen = judge(
            evolve(_live(), verdict=Verdict.COULD_NOT_CHECK),
            None,
            two_weeks(),
            min_days=14,
            min_senders=2,
        )
        self.assertEqual(_codes(unseen.findings), [(10, "live-check")])
        self.assertEqual(readiness_json(unseen)["mode"], None)


class PublishedPolicyTests(SynchronousTestCase):
    def test_published_policy(self) -> None:
        """The policy the live check read, as the checker's rules read it
        (H10); None when nothing was fetched or it is invalid."""
        policy = published_policy(facts())
        assert policy is not None
        self.assertEqual(policy.mode, Mode.ENFORCE)
        failed = evolve(fetched(), body=None, problem=FetchProblem.STATUS)
        for broken in (fetched(b"not a policy"), failed):
            self.assertIsNone(published_policy(facts(policy_host=policy_host(broken))))
        no_fetch = evolve(policy_host(), fetch=None)
        self.assertIsNone(published_policy(facts(policy_host=no_fetch)))
