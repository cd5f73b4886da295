"""Tests for the checker's rules on the DNS records and the policy host and
file (spec H1-H12, H17, H18, H20, H21) and the verdict, from pure facts."""

from __future__ import annotations

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.facts import (
    AddressFacts,
    FetchFacts,
    FetchProblem,
    Found,
    MxFacts,
    PolicyHostFacts,
    Stage,
    TxtFacts,
)
from postfix_mtasts.checker.model import Check, Verdict
from postfix_mtasts.checker.report import exit_status
from postfix_mtasts.checker.rules import decide, evaluate, unanswered_lookups
from postfix_mtasts.checker.rules_policy import (
    check_fetch,
    check_max_age,
    check_policy_body,
    check_policy_host,
)
from postfix_mtasts.checker.rules_sts import (
    check_domain_name,
    check_sts_record,
    check_tlsrpt_record,
)
from postfix_mtasts.core.policy import Mode

from .checker_facts import (
    DAY,
    FAIL,
    HOST,
    INCONCLUSIVE,
    INFO,
    NOW,
    PASS,
    URL,
    WARN,
    facts,
    fetched,
    not_passing,
    only,
    policy_body,
    policy_host,
    session,
    statuses,
    tls,
    txt,
)

STS = "_mta-sts.example.com"


def sts(*records, chain=()):
    return check_sts_record(txt(STS, *records, chain=chain), "20270101T000000")


class VerdictTests(SynchronousTestCase):
    def test_good_enforce_domain(self):
        """A well-configured enforce domain passes every check: ready for enforce (H, verdict)."""
        report = evaluate(facts(), NOW)
        self.assertEqual(not_passing(report.checks), [])
        self.assertEqual(report.verdict, Verdict.READY_FOR_ENFORCE)
        self.assertEqual(report.mode, "enforce")
        self.assertFalse(report.failed)
        rules = {c.rule for c in report.checks}
        self.assertEqual(
            rules,
            {
                "H1",
                "H2",
                "H5",
                "H6",
                "H7",
                "H8",
                "H9",
                "H10",
                "H12",
                "H13",
                "H14",
                "H15",
                "H16",
                "H17",
            },
        )

    def test_testing_with_reports_is_ready_for_enforce(self):
        """Testing mode, everything passing and TLSRPT valid: switch to enforce after ~2 weeks (guide)."""
        good = facts(
            policy_host=policy_host(fetched(policy_body("testing", max_age=604800)))
        )
        report = evaluate(good, NOW)
        self.assertEqual(report.verdict, Verdict.READY_FOR_ENFORCE)
        self.assertIn("two weeks", report.verdict_reason)

    def test_testing_without_reports_is_ready_for_testing(self):
        """Testing without TLSRPT teaches nothing: ready for testing only (H17, guide)."""
        good = facts(
            policy_host=policy_host(fetched(policy_body("testing", max_age=604800))),
            tlsrpt_txt=TxtFacts(
                "_smtp._tls.example.com", Found.NONE, reason="NXDOMAIN"
            ),
        )
        report = evaluate(good, NOW)
        self.assertEqual(not_passing(report.checks), [("H17", "tlsrpt-record", WARN)])
        self.assertEqual(report.verdict, Verdict.READY_FOR_TESTING)

    def test_fail_is_broken(self):
        """Any FAIL makes the verdict broken and names the check."""
        verdict, why = decide([Check("H1", "sts-record", FAIL, STS, "x")], Mode.ENFORCE)
        self.assertEqual(verdict, Verdict.BROKEN)
        self.assertIn("H1 sts-record", why)

    def test_inconclusive_is_ready_for_testing(self):
        """Nothing fails but something was not checked: ready for testing (H15 INCONCLUSIVE)."""
        checks = [Check("H15", "mx-connect", INCONCLUSIVE, "mx", "x")]
        self.assertEqual(decide(checks, Mode.ENFORCE)[0], Verdict.READY_FOR_TESTING)

    def test_warnings_named_not_hidden(self):
        """Nothing fails but a check WARNs (e.g. a blank line the daemon
        tolerates): the verdict stands, and its reason names the WARN rather
        than say every check passes (H10, H11, issue 12)."""
        checks = [Check("H11", "policy-blank-line", WARN, "url", "x")]
        verdict, why = decide(checks, Mode.ENFORCE)
        self.assertEqual(verdict, Verdict.READY_FOR_ENFORCE)
        self.assertIn("1 check(s) WARN (H11 policy-blank-line)", why)
        self.assertNotIn("every check passes", why)
        self.assertEqual(
            decide([], Mode.ENFORCE)[1], "enforce mode, and every check passes"
        )

    def test_mode_none_and_no_policy(self):
        """Mode none, or no readable policy, is never ready for enforce (H18)."""
        self.assertEqual(decide([], Mode.NONE)[0], Verdict.READY_FOR_TESTING)
        self.assertEqual(decide([], None)[0], Verdict.READY_FOR_TESTING)


def blind(why: str = "no reply from 192.0.2.53 in 5.0s", **changes):
    """Facts of a run where no DNS lookup was answered, with ``changes``."""
    unseen = {
        "sts_txt": TxtFacts(STS, Found.ERROR, reason=why),
        "tlsrpt_txt": TxtFacts("_smtp._tls.example.com", Found.ERROR, reason=why),
        "mx": MxFacts(Found.ERROR, reason=why),
        "policy_host": PolicyHostFacts(AddressFacts(HOST, Found.ERROR, reason=why)),
        "mx_hosts": (),
    }
    return facts(**{**unseen, **changes})


class CouldNotCheckTests(SynchronousTestCase):
    """Issue 12: no DNS answer is no data, and no data must not pass."""

    def test_dns_unreachable(self):
        """No lookup that decides MTA-STS answered (timeouts): could-not-check,
        exit status 3, the reason naming each lookup and why (H1, H5, H13)."""
        report = evaluate(blind(), NOW)
        self.assertEqual(report.verdict, Verdict.COULD_NOT_CHECK)
        self.assertEqual(exit_status(report), 3)
        self.assertFalse(report.failed)
        reason = report.verdict_reason
        self.assertTrue(
            reason.startswith("no DNS lookup that decides MTA-STS was answered"), reason
        )
        for lookup in (
            "_mta-sts.example.com TXT: no reply from 192.0.2.53 in 5.0s",
            "example.com MX: no reply from",
            "mta-sts.example.com A/AAAA: no reply from",
        ):
            self.assertIn(lookup, reason)
        self.assertIn("--nameserver", reason)

    def test_resolver_errors_count_as_unanswered(self):
        """SERVFAIL and REFUSED (the resolver gave no data) count as no
        answer, like a timeout (H1, H13, A15)."""
        for rcode in ("SERVFAIL", "REFUSED"):
            self.assertEqual(
                evaluate(blind(rcode), NOW).verdict, Verdict.COULD_NOT_CHECK
            )

    def test_an_answer_anywhere_is_partial_failure(self):
        """One of the deciding lookups answered, even NXDOMAIN or NODATA: not
        could-not-check; the failed ones stay INCONCLUSIVE and a missing
        record FAILs as usual (H1, H5, H13)."""
        nx_txt = TxtFacts(STS, Found.NONE, reason="NXDOMAIN")
        nodata_host = PolicyHostFacts(AddressFacts(HOST, Found.NONE, reason="NODATA"))
        for seen, verdict in (
            ({"sts_txt": nx_txt}, Verdict.BROKEN),
            ({"policy_host": nodata_host}, Verdict.BROKEN),
            ({"mx": MxFacts(Found.NONE)}, Verdict.BROKEN),  # no MX and no A/AAAA
            ({"sts_txt": facts().sts_txt}, Verdict.READY_FOR_TESTING),
        ):
            report = evaluate(blind(**seen), NOW)
            self.assertEqual(unanswered_lookups(blind(**seen)), ())
            self.assertEqual(report.verdict, verdict, seen)
            self.assertNotEqual(exit_status(report), 3)

    def test_tlsrpt_answer_alone_does_not_decide(self):
        """Only the TLSRPT TXT answered: it says nothing about MTA-STS, so
        still could-not-check (H17)."""
        report = evaluate(blind(tlsrpt_txt=facts().tlsrpt_txt), NOW)
        self.assertEqual(report.verdict, Verdict.COULD_NOT_CHECK)

    def test_a_fail_wins(self):
        """A FAIL is real data: broken and exit 1 even when no deciding
        lookup answered (an unusable TLSRPT record, H17)."""
        bad = txt("_smtp._tls.example.com", "v=TLSRPTv1; rua=ftp://x")
        report = evaluate(blind(tlsrpt_txt=bad), NOW)
        self.assertEqual(report.verdict, Verdict.BROKEN)
        self.assertEqual(exit_status(report), 1)
        verdict, _ = decide(
            [Check("H17", "tlsrpt-record", FAIL, STS, "x")], None, ("a TXT: x",)
        )
        self.assertEqual(verdict, Verdict.BROKEN)

    def test_decide_without_unanswered_lookups(self):
        """decide without unanswered lookups keeps its verdicts (INCONCLUSIVE
        checks give ready-for-testing)."""
        checks = [Check("H1", "sts-record", INCONCLUSIVE, STS, "x")]
        self.assertEqual(decide(checks, None)[0], Verdict.READY_FOR_TESTING)
        self.assertEqual(
            decide(checks, None, ("x TXT: SERVFAIL",))[0], Verdict.COULD_NOT_CHECK
        )


class StsRecordTests(SynchronousTestCase):
    def test_one_valid_record(self):
        """One v=STSv1 record passes H1 and H2, naming its id (H1, H2)."""
        checks = sts("v=STSv1; id=abc123;")
        self.assertEqual(
            statuses(checks),
            [("H1", "sts-record", PASS), ("H2", "sts-record-syntax", PASS)],
        )
        self.assertIn("(id abc123)", checks[0].message)

    def test_missing(self):
        """NXDOMAIN/NODATA: H1 FAIL with the record to publish; a DNS error is INCONCLUSIVE (H1)."""
        [check] = check_sts_record(TxtFacts(STS, Found.NONE, reason="NXDOMAIN"), "X1")
        self.assertEqual((check.rule, check.status), ("H1", FAIL))
        self.assertIn('TXT "v=STSv1; id=X1"', check.fix)
        [check] = check_sts_record(TxtFacts(STS, Found.ERROR, reason="SERVFAIL"), "X1")
        self.assertEqual((check.rule, check.status), ("H1", INCONCLUSIVE))

    def test_two_records(self):
        """Two v=STSv1 records: H1 FAIL, no H2 (H1, A7)."""
        checks = sts("v=STSv1; id=a;", "v=STSv1; id=b;")
        self.assertEqual(statuses(checks), [("H1", "sts-record", FAIL)])

    def test_no_sts_record_among_others(self):
        """Only unrelated TXT records: H1 FAIL, and H3 notes the others (H1, H3)."""
        checks = sts("hello")
        self.assertEqual(
            statuses(checks),
            [("H1", "sts-record", FAIL), ("H3", "sts-record-style", WARN)],
        )

    def test_syntax_errors(self):
        """A bad id, a missing id or wrong case: H1 PASS, H2 FAIL (H2, A3, A4)."""
        for record in ("v=STSv1; id=2024-01-01;", "v=STSv1; foo=bar", "V=stsv1; id=1"):
            checks = sts(record)
            self.assertEqual(
                statuses(checks)[:2],
                [("H1", "sts-record", PASS), ("H2", "sts-record-syntax", FAIL)],
                record,
            )

    def test_style_notes(self):
        """WSP before ';' and other TXT records WARN, split strings are INFO (H3, A6, A8, A9)."""
        checks = sts("v=STSv1 ; id=1", "spf junk")
        self.assertEqual(
            not_passing(checks),
            [("H3", "sts-record-style", WARN), ("H3", "sts-record-style", WARN)],
        )
        checks = sts(("v=STSv1; ", "id=1"))
        self.assertEqual(not_passing(checks), [("H3", "sts-record-style", INFO)])

    def test_cname_delegation_shown(self):
        """A CNAME chain to the record is shown as INFO (H20, A11)."""
        checks = sts("v=STSv1; id=1", chain=("_mta-sts.provider.example",))
        self.assertEqual(checks[0].check, "sts-record-delegation")
        self.assertEqual(checks[0].status, INFO)
        self.assertIn("_mta-sts.provider.example", checks[0].message)

    def test_idn(self):
        """A U-label domain is checked as its A-label (H21)."""
        [check] = check_domain_name("bücher.example", "xn--bcher-kva.example")
        self.assertEqual((check.rule, check.status), ("H21", INFO))
        self.assertEqual(check_domain_name("Example.COM.", "example.com"), [])


class TlsRptTests(SynchronousTestCase):
    name = "_smtp._tls.example.com"

    def check(self, *records):
        return check_tlsrpt_record(txt(self.name, *records), "example.com")

    def test_valid(self):
        """One valid record passes and lists its rua targets (H17)."""
        [check] = self.check("v=TLSRPTv1; rua=mailto:a@example.com,https://r.example/x")
        self.assertEqual(check.status, PASS)
        self.assertIn("mailto:a@example.com, https://r.example/x", check.message)

    def test_missing_warns(self):
        """No record is a WARN with the record to publish (H17)."""
        [check] = check_tlsrpt_record(
            TxtFacts(self.name, Found.NONE, reason="NXDOMAIN"), "example.com"
        )
        self.assertEqual(check.status, WARN)
        self.assertIn("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", check.fix)

    def test_invalid_fails(self):
        """Two records, no rua, or an http: URI: senders ignore it, FAIL (H17, RFC 8460 §3)."""
        for records in (
            (
                "v=TLSRPTv1; rua=mailto:a@example.com",
                "v=TLSRPTv1; rua=mailto:b@example.com",
            ),
            ("v=TLSRPTv1; foo=bar",),
            ("v=TLSRPTv1; rua=http://r.example/",),
        ):
            [check] = self.check(*records)
            self.assertEqual(check.status, FAIL, records)


class PolicyHostTests(SynchronousTestCase):
    def test_no_address(self):
        """mta-sts.<domain> without A/AAAA: H5 FAIL; a DNS error is INCONCLUSIVE (H5)."""
        for found, status in ((Found.NONE, FAIL), (Found.ERROR, INCONCLUSIVE)):
            host = PolicyHostFacts(AddressFacts(HOST, found, reason="x"))
            checks, fetch = check_policy_host(host, HOST, NOW)
            self.assertEqual(statuses(checks), [("H5", "policy-host-dns", status)])
            self.assertIsNone(fetch)

    def test_cname_shown(self):
        """A CNAME'd policy host is INFO, reminding the cert must name mta-sts.<domain> (H20)."""
        host = policy_host()
        host = evolve(
            host,
            addresses=evolve(host.addresses, cname_chain=("web.provider.example",)),
        )
        checks, _ = check_policy_host(host, HOST, NOW)
        self.assertIn(("H20", "policy-host-delegation", INFO), statuses(checks))

    def test_connect_failure(self):
        """No TCP connection to 443: H5 policy-host-https FAIL, nothing fetched (H5)."""
        probe = session(
            "192.0.2.80", HOST, port=443, stage=Stage.CONNECT, tls=None, error="refused"
        )
        checks, fetch = check_policy_host(policy_host(probe=probe), HOST, NOW)
        self.assertEqual(not_passing(checks), [("H5", "policy-host-https", FAIL)])
        self.assertIsNone(fetch)

    def test_handshake_failure(self):
        """A failed handshake: H6 FAIL (H6)."""
        probe = session(
            "192.0.2.80", HOST, port=443, stage=Stage.HANDSHAKE, tls=None, error="alert"
        )
        checks, _ = check_policy_host(policy_host(probe=probe), HOST, NOW)
        self.assertEqual(not_passing(checks), [("H6", "policy-tls", FAIL)])

    def test_certificate_problems_stop_before_the_fetch(self):
        """Wrong name or expired cert: H6 FAIL once, and no fetch checks (H6, B3)."""
        for cert_tls, name in (
            (tls(("other.example.com",)), "policy-cert-name"),
            (tls((HOST,), not_after=NOW - DAY), "policy-cert-expiry"),
        ):
            probe = session("192.0.2.80", HOST, port=443, tls=cert_tls)
            checks, fetch = check_policy_host(policy_host(probe=probe), HOST, NOW)
            self.assertEqual(not_passing(checks), [("H6", name, FAIL)])
            self.assertIsNone(fetch)

    def test_good(self):
        """Resolves, connects, good certificate: all PASS, fetch to judge (H5, H6)."""
        checks, fetch = check_policy_host(policy_host(), HOST, NOW)
        self.assertEqual(not_passing(checks), [])
        self.assertEqual(
            [c.check for c in checks],
            [
                "policy-host-dns",
                "policy-host-https",
                "policy-tls-version",
                "policy-cert-trust",
                "policy-cert-name",
                "policy-cert-expiry",
            ],
        )
        self.assertIsNotNone(fetch)


class FetchTests(SynchronousTestCase):
    def failed(self, problem, **fields):
        return check_fetch(
            FetchFacts(URL, 0.5, problem=problem, reason="why", **fields)
        )

    def test_redirect(self):
        """A 3xx is H7 FAIL naming the Location (H7, B8)."""
        [check] = self.failed(
            FetchProblem.REDIRECT, status=301, location="https://x.example/p"
        )
        self.assertEqual(
            (check.rule, check.check, check.status), ("H7", "policy-status", FAIL)
        )
        self.assertIn("301 redirect to 'https://x.example/p'", check.message)

    def test_redirect_location_quoted_and_cut(self):
        """A long Location is quoted with repr and cut to 200 characters,
        "..." included (H7; peer input is quoted one way)."""
        location = "https://x.example/" + "p" * 300
        [check] = self.failed(FetchProblem.REDIRECT, status=301, location=location)
        shown = ("'" + location)[:197] + "..."
        self.assertEqual(check.message, f"answers HTTP 301 redirect to {shown}")

    def test_problems_map_to_rules(self):
        """Each fetch fault fails the check it belongs to (H5-H9)."""
        for problem, expected in (
            (FetchProblem.STATUS, ("H7", "policy-status")),
            (FetchProblem.TIMEOUT, ("H9", "policy-time")),
            (FetchProblem.TOO_LARGE, ("H9", "policy-size")),
            (FetchProblem.HEADERS_TOO_LARGE, ("H9", "policy-size")),
            (FetchProblem.ENCODING, ("H8", "policy-content-type")),
            (FetchProblem.TLS, ("H6", "policy-tls")),
            (FetchProblem.CONNECT, ("H5", "policy-host-https")),
        ):
            [check] = self.failed(problem, status=404)
            self.assertEqual(
                (check.rule, check.check, check.status), (*expected, FAIL), problem
            )

    def test_content_type(self):
        """text/plain passes, charset utf-8/us-ascii pass, others WARN, other types FAIL (H8, B10, B11)."""
        for value, status in (
            ("text/plain", PASS),
            ("Text/Plain; charset=UTF-8", PASS),
            ("text/plain; charset=us-ascii", PASS),
            ("text/plain; charset=iso-8859-1", WARN),
            ("text/html", FAIL),
            (None, FAIL),
        ):
            check = only(
                check_fetch(fetched(content_type=value)), "policy-content-type"
            )
            self.assertEqual(check.status, status, value)

    def test_response_time(self):
        """Over 10 s is slow: WARN; 10 s passes (H9)."""
        self.assertEqual(
            only(check_fetch(fetched(elapsed=10.0)), "policy-time").status, PASS
        )
        self.assertEqual(
            only(check_fetch(fetched(elapsed=10.5)), "policy-time").status, WARN
        )

    def test_good(self):
        """200, text/plain, small and fast: H7, H8, H9 PASS."""
        self.assertEqual(not_passing(check_fetch(fetched())), [])


class PolicyBodyTests(SynchronousTestCase):
    def check(self, *lines):
        return check_policy_body(URL, "".join(f"{line}\n" for line in lines).encode())

    def test_valid(self):
        """A valid policy passes H10 and H12 and is returned (H10)."""
        checks, policy = check_policy_body(URL, policy_body())
        self.assertEqual(
            statuses(checks),
            [("H10", "policy-syntax", PASS), ("H12", "policy-max-age", PASS)],
        )
        assert policy is not None
        self.assertEqual(policy.mode, Mode.ENFORCE)

    def test_invalid(self):
        """Grammar errors are H10 FAIL with the parser's rule and a fix (H10, C6, C12)."""
        for mode, mx, rule in (
            ("mode: Enforce", "mx: mx1.example.com", "C6"),
            ("mode: enforce", "mx: mail*.example.com", "C12"),
        ):
            checks, policy = self.check("version: STSv1", mode, mx, "max_age: 86400")
            self.assertIsNone(policy)
            self.assertEqual(statuses(checks)[0], ("H10", "policy-syntax", FAIL))
            self.assertIn(f"({rule})", checks[0].message)
            self.assertTrue(checks[0].fix)

    def test_version_not_first(self):
        """version not on line 1: H11 WARN policy-version-first, policy still valid (H11, C5)."""
        checks, policy = self.check(
            "mode: enforce", "version: STSv1", "mx: mx1.example.com", "max_age: 1209600"
        )
        self.assertIsNotNone(policy)
        self.assertEqual(not_passing(checks), [("H11", "policy-version-first", WARN)])

    def test_style_notes(self):
        """Unknown keys INFO; duplicate keys and key case WARN (H11, C7, C14)."""
        base = (
            "version: STSv1",
            "mode: enforce",
            "mx: mx1.example.com",
            "max_age: 1209600",
        )
        for extra, status in (
            ("x-note: hi", INFO),
            ("mode: none", WARN),
            ("Mode: none", WARN),
        ):
            checks, policy = self.check(*base, extra)
            self.assertIsNotNone(policy, extra)
            self.assertIn(("H11", "policy-style", status), statuses(checks), extra)
        checks, _ = self.check(*base, "mode: none")
        self.assertIn("the last line wins", only(checks, "policy-style").message)

    def test_max_age_above_cap(self):
        """max_age > 31557600 is H12 FAIL, not an H10 error (H12, C9)."""
        checks, policy = check_policy_body(URL, policy_body(max_age=31557601))
        self.assertIsNotNone(policy)
        self.assertEqual(not_passing(checks), [("H12", "policy-max-age", FAIL)])

    def test_max_age_boundaries(self):
        """86400..31557600 (guide); testing 604800..1209600; enforce >= 604800 (H12)."""
        for mode, max_age, status in (
            (Mode.ENFORCE, 31557600, PASS),
            (Mode.ENFORCE, 31557601, FAIL),
            (Mode.ENFORCE, 604800, PASS),
            (Mode.ENFORCE, 604799, WARN),
            (Mode.ENFORCE, 86399, WARN),
            (Mode.TESTING, 604799, WARN),
            (Mode.TESTING, 604800, PASS),
            (Mode.TESTING, 1209600, PASS),
            (Mode.TESTING, 1209601, WARN),
            (Mode.NONE, 86400, PASS),
            (Mode.NONE, 86399, WARN),
        ):
            check = check_max_age(URL, mode, max_age)
            self.assertEqual(check.status, status, (mode, max_age))

    def test_mode_none(self):
        """mode none reminds of the removal workflow (H18)."""
        checks, _ = check_policy_body(URL, policy_body("none", mx=(), max_age=86400))
        self.assertIn(("H18", "policy-mode", INFO), statuses(checks))

    def test_evaluate_skips_body_after_failed_fetch(self):
        """When the fetch fails, no policy checks run and coverage is not judged (H7, H14)."""
        fetch = FetchFacts(
            URL, 0.1, problem=FetchProblem.STATUS, status=404, reason="x"
        )
        report = evaluate(facts(policy_host=policy_host(fetch)), NOW)
        self.assertEqual(not_passing(report.checks), [("H7", "policy-status", FAIL)])
        self.assertFalse({"H10", "H12", "H14"} & {c.rule for c in report.checks})
        self.assertIsNone(report.mode)
