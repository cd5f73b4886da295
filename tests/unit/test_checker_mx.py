"""Tests for the checker's MX rules (spec H13-H16, H19) and the shared TLS
certificate rules (H6, H15), from pure facts."""

from __future__ import annotations

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.checker.facts import (
    AddressFacts,
    ConnectProblem,
    Found,
    MxFacts,
    MxHostFacts,
    MxRecord,
    ProbeFacts,
    Stage,
    TlsaFacts,
)
from postfix_mtasts.checker.model import Check, Status, Verdict
from postfix_mtasts.checker.rules import evaluate
from postfix_mtasts.checker.rules_mx import (
    check_coverage,
    check_mx_host,
    check_mx_hosts,
    check_mx_records,
    port25_answered,
)
from postfix_mtasts.checker.rules_tls import tls_checks
from postfix_mtasts.core.policy import Policy, parse_policy

from .checker_facts import (
    DAY,
    DOMAIN,
    FAIL,
    INCONCLUSIVE,
    INFO,
    IP1,
    MX1,
    MX2,
    NOW,
    PASS,
    WARN,
    facts,
    fetched,
    mx_host,
    not_passing,
    only,
    policy_body,
    policy_host,
    session,
    statuses,
    tls,
)


def policy(*patterns: str, mode: str = "enforce") -> Policy:
    parsed = parse_policy(policy_body(mode, patterns))
    assert isinstance(parsed, Policy)
    return parsed


class MxRecordTests(SynchronousTestCase):
    def test_sorted_by_preference(self):
        """MX hosts are listed best preference first (H13)."""
        mx = MxFacts(Found.YES, (MxRecord(20, MX2), MxRecord(10, MX1)))
        checks, hosts = check_mx_records(DOMAIN, mx, None)
        self.assertEqual(statuses(checks), [("H13", "mx-records", PASS)])
        self.assertEqual(hosts, (MX1, MX2))
        self.assertIn("mx1.example.com (10), mx2.example.com (20)", checks[0].message)

    def test_null_mx(self):
        """A null MX means no mail: FAIL, no hosts (H13, RFC 7505)."""
        checks, hosts = check_mx_records(
            DOMAIN, MxFacts(Found.YES, (MxRecord(0, ""),)), None
        )
        self.assertEqual(statuses(checks), [("H13", "mx-records", FAIL)])
        self.assertEqual(hosts, ())

    def test_no_mx(self):
        """No MX: the A/AAAA host is the implicit MX (WARN); with no address, FAIL (H13)."""
        implicit = AddressFacts(DOMAIN, Found.YES, ("192.0.2.9",))
        checks, hosts = check_mx_records(DOMAIN, MxFacts(Found.NONE), implicit)
        self.assertEqual((checks[0].status, hosts), (WARN, (DOMAIN,)))
        none = AddressFacts(DOMAIN, Found.NONE)
        checks, hosts = check_mx_records(DOMAIN, MxFacts(Found.NONE), none)
        self.assertEqual((checks[0].status, hosts), (FAIL, ()))

    def test_dns_error(self):
        """An MX lookup error is INCONCLUSIVE (H13)."""
        checks, _ = check_mx_records(
            DOMAIN, MxFacts(Found.ERROR, reason="SERVFAIL"), None
        )
        self.assertEqual(checks[0].status, INCONCLUSIVE)


class CoverageTests(SynchronousTestCase):
    def test_every_mx_covered(self):
        """Each MX matching a pattern passes, naming the patterns (H14)."""
        checks = check_coverage((MX1, MX2), policy(MX1, MX2))
        self.assertEqual(statuses(checks), [("H14", "mx-coverage", PASS)] * 2)

    def test_uncovered_mx_fails(self):
        """An MX matching no pattern FAILs with the line to add (H14, D3)."""
        checks = check_coverage((MX1, MX2), policy(MX1))
        self.assertEqual(not_passing(checks), [("H14", "mx-coverage", FAIL)])
        self.assertIn("mx: mx2.example.com", checks[1].fix)

    def test_stale_pattern_warns(self):
        """A pattern matching no MX is stale: WARN (H14)."""
        checks = check_coverage((MX1,), policy(MX1, "old.example.com"))
        self.assertEqual(not_passing(checks), [("H14", "mx-pattern-stale", WARN)])
        self.assertEqual(checks[-1].subject, "old.example.com")

    def test_wildcard_one_label_and_breadth(self):
        """*. covers one label only (a.b. is uncovered), and warns for breadth (H14, D4, F5)."""
        checks = check_coverage((MX1, "a.b.example.com"), policy("*.example.com"))
        self.assertEqual(
            statuses(checks),
            [
                ("H14", "mx-coverage", PASS),
                ("H14", "mx-coverage", FAIL),
                ("H14", "mx-pattern-wildcard", WARN),
            ],
        )

    def test_mode_none_not_judged(self):
        """mode none lists no MX: coverage is not judged (H14, C11)."""
        self.assertEqual(check_coverage((MX1,), policy(mode="none")), [])

    def test_evaluate_uncovered(self):
        """evaluate: an MX outside the policy fails exactly H14 mx-coverage (H14)."""
        two = facts(
            mx=MxFacts(Found.YES, (MxRecord(10, MX1), MxRecord(20, MX2))),
            mx_hosts=(mx_host(), mx_host(MX2, address="192.0.2.2")),
        )
        self.assertEqual(
            not_passing(evaluate(two, NOW).checks), [("H14", "mx-coverage", FAIL)]
        )
        stale = facts(policy_host=policy_host(fetched(policy_body(mx=(MX1, MX2)))))
        self.assertEqual(
            not_passing(evaluate(stale, NOW).checks),
            [("H14", "mx-pattern-stale", WARN)],
        )


class MxSessionTests(SynchronousTestCase):
    def host(self, **changes):
        return check_mx_host(mx_host(probe=session(**changes)), NOW)

    def test_good(self):
        """STARTTLS, TLS 1.3, trusted, named, current, no-SNI works: all PASS (H15, H16)."""
        checks = check_mx_host(mx_host(), NOW)
        self.assertEqual(
            [c.check for c in checks],
            [
                "mx-starttls",
                "mx-tls-version",
                "mx-cert-trust",
                "mx-cert-name",
                "mx-cert-expiry",
                "mx-no-sni",
            ],
        )
        self.assertEqual(not_passing(checks), [])
        self.assertEqual(checks[0].subject, f"{MX1} [{IP1}]")

    def test_no_address(self):
        """An MX host without A/AAAA FAILs; a lookup error is INCONCLUSIVE (H15)."""
        for found, status in ((Found.NONE, FAIL), (Found.ERROR, INCONCLUSIVE)):
            host = evolve(
                mx_host(), addresses=AddressFacts(MX1, found, reason="x"), probes=()
            )
            self.assertEqual(
                statuses(check_mx_host(host, NOW)), [("H15", "mx-address", status)]
            )

    def test_unreachable_is_inconclusive(self):
        """Refused, timed out or no IPv6 route with no other MX address seen:
        INCONCLUSIVE, not FAIL (H15)."""
        for address, problem in (
            (IP1, ConnectProblem.REFUSED),
            (IP1, ConnectProblem.TIMEOUT),
            ("2001:db8::1", ConnectProblem.UNREACHABLE),
        ):
            probe = session(
                address,
                stage=Stage.CONNECT,
                tls=None,
                starttls_offered=None,
                connect_problem=problem,
                error="x",
            )
            checks = check_mx_host(mx_host(address=address, probe=probe), NOW)
            self.assertEqual(
                not_passing(checks)[0], ("H15", "mx-connect", INCONCLUSIVE)
            )

    def test_session_refused_or_stalled(self):
        """A 554 greeting or a timeout mid-dialogue is INCONCLUSIVE (H15)."""
        for changes in (
            {"stage": Stage.GREETING, "reply": "554 go away", "error": "greeting"},
            {"stage": Stage.EHLO, "timed_out": True, "error": "no answer"},
        ):
            checks = self.host(tls=None, starttls_offered=None, **changes)
            self.assertEqual(not_passing(checks)[0], ("H15", "mx-smtp", INCONCLUSIVE))

    def test_no_starttls(self):
        """No STARTTLS in EHLO: FAIL mx-starttls only (H15, D3)."""
        checks = self.host(stage=Stage.EHLO, starttls_offered=False, tls=None)
        self.assertEqual(not_passing(checks), [("H15", "mx-starttls", FAIL)])

    def test_starttls_refused(self):
        """STARTTLS answered 454: FAIL mx-starttls, quoting the reply (H15)."""
        checks = self.host(
            stage=Stage.STARTTLS, reply="454 TLS not available", tls=None
        )
        self.assertEqual(not_passing(checks)[0], ("H15", "mx-starttls", FAIL))
        message = only(checks, "mx-starttls").message
        self.assertIn("refused it: '454 TLS not available'", message)

    def test_handshake_failures(self):
        """A version alert fails mx-tls-version; other handshake errors fail mx-tls (H15)."""
        checks = self.host(
            stage=Stage.HANDSHAKE, tls=None, error="tlsv1 alert protocol version"
        )
        self.assertEqual(not_passing(checks)[0], ("H15", "mx-tls-version", FAIL))
        checks = self.host(
            stage=Stage.HANDSHAKE, tls=None, error="sslv3 alert handshake failure"
        )
        self.assertEqual(not_passing(checks)[0], ("H15", "mx-tls", FAIL))

    def test_no_sni_failure_warns(self):
        """A server that needs SNI gets a WARN (H16, RFC 8461 §7.1)."""
        no_sni = session(IP1, None, stage=Stage.HANDSHAKE, tls=None, error="alert")
        checks = check_mx_host(mx_host(no_sni=no_sni), NOW)
        self.assertEqual(not_passing(checks), [("H16", "mx-no-sni", WARN)])

    def test_tlsa_info(self):
        """TLSA records are INFO: DANE takes precedence (H19)."""
        host = evolve(mx_host(), tlsa=TlsaFacts(Found.YES, 2, authenticated=True))
        check = check_mx_host(host, NOW)[-1]
        self.assertEqual((check.rule, check.status), ("H19", INFO))
        self.assertIn("DNSSEC-validated", check.message)


class TlsRuleTests(SynchronousTestCase):
    def judge(self, host=MX1, **tls_args):
        return {
            c.check: c
            for c in tls_checks("H15", "mx", host, host, tls(**tls_args), NOW)
        }

    def test_versions(self):
        """TLS 1.2 and 1.3 pass; 1.1 and 1.0 FAIL (H15, RFC 8461 §7.2)."""
        for version, status in (
            ("TLSv1.3", PASS),
            ("TLSv1.2", PASS),
            ("TLSv1.1", FAIL),
            ("TLSv1", FAIL),
        ):
            self.assertEqual(
                self.judge(version=version)["mx-tls-version"].status, status
            )

    def test_untrusted(self):
        """An unknown issuer fails trust only (H15, D5)."""
        checks = self.judge(errors=[(0, 20), (0, 21)])
        self.assertEqual(checks["mx-cert-trust"].status, FAIL)
        self.assertIn(
            "unable to get local issuer certificate", checks["mx-cert-trust"].message
        )
        self.assertEqual(checks["mx-cert-expiry"].status, PASS)

    def test_expired_fails_expiry_only(self):
        """Expired: the date error is not a trust error; expiry FAILs (H15)."""
        checks = self.judge(not_after=NOW - 3 * DAY, errors=[(0, 10)])
        self.assertEqual(checks["mx-cert-trust"].status, PASS)
        self.assertEqual(checks["mx-cert-expiry"].status, FAIL)
        self.assertIn("3 days ago", checks["mx-cert-expiry"].message)

    def test_expiry_boundary(self):
        """Under 14 days left WARNs; 14 days passes (H6, H15)."""
        self.assertEqual(
            self.judge(not_after=NOW + 13.9 * DAY)["mx-cert-expiry"].status, WARN
        )
        self.assertEqual(
            self.judge(not_after=NOW + 14 * DAY)["mx-cert-expiry"].status, PASS
        )

    def test_not_yet_valid_and_expired_intermediate(self):
        """Not yet valid, or an expired CA in the chain: expiry FAILs (H15)."""
        self.assertEqual(
            self.judge(not_before=NOW + DAY)["mx-cert-expiry"].status, FAIL
        )
        self.assertEqual(self.judge(errors=[(1, 10)])["mx-cert-expiry"].status, FAIL)

    def test_names(self):
        """SAN exact or one-label wildcard passes; deeper, other or CN-only FAILs (H15, B4, D5)."""
        for names, cn, status in (
            ((MX1,), None, PASS),
            (("MX1.Example.COM",), None, PASS),
            (("*.example.com",), None, PASS),
            (("*.com",), None, FAIL),
            (("other.example.com",), None, FAIL),
            (("mx*.example.com",), None, FAIL),
            ((), MX1, FAIL),
        ):
            check = self.judge(names=names, cn=cn)["mx-cert-name"]
            self.assertEqual(check.status, status, names)
        deep = tls_checks(
            "H15",
            "mx",
            "a.b.example.com",
            "a.b.example.com",
            tls(("*.example.com",)),
            NOW,
        )
        self.assertEqual(only(deep, "mx-cert-name").status, FAIL)
        cn_only = self.judge(names=(), cn=MX1)["mx-cert-name"]
        self.assertIn("no subjectAltName", cn_only.message)
        partial = self.judge(names=("mx*.example.com",))["mx-cert-name"]
        self.assertIn("partial wildcard", partial.message)

    def test_no_certificate(self):
        """A handshake without a certificate fails trust (H15)."""
        empty = evolve(tls(), chain=())
        checks = tls_checks("H15", "mx", MX1, MX1, empty, NOW)
        self.assertEqual(statuses(checks)[-1], ("H15", "mx-cert-trust", FAIL))


IP2 = "192.0.2.2"
V6 = ("2001:db8::1", "2001:db8::2")


def unreached(address: str, problem: ConnectProblem, host: str = MX2) -> ProbeFacts:
    """A session that never got a TCP connection to ``address``:25."""
    errors = {
        ConnectProblem.REFUSED: "connection refused",
        ConnectProblem.TIMEOUT: "connection timed out",
        ConnectProblem.UNREACHABLE: "no route to host",
        ConnectProblem.OTHER: "something else",
    }
    return session(
        address,
        host,
        stage=Stage.CONNECT,
        tls=None,
        starttls_offered=None,
        connect_problem=problem,
        error=errors[problem],
    )


def two_mx(second: ProbeFacts, first: ProbeFacts | None = None) -> list[Check]:
    """check_mx_hosts over MX1 (at IP1, a good session by default) and MX2."""
    hosts = (
        mx_host(MX1, address=first.address if first else IP1, probe=first),
        mx_host(MX2, address=second.address, probe=second),
    )
    return check_mx_hosts(hosts, NOW)


def connect_checks(checks: list[Check]) -> list[tuple[str, Status]]:
    return [(c.subject, c.status) for c in checks if c.check == "mx-connect"]


class Port25EvidenceTests(SynchronousTestCase):
    """A dead MX next to a live one is a FAIL, not INCONCLUSIVE (H15, issue 12)."""

    def test_refused_or_timed_out_beside_an_answering_mx_fails(self):
        """Refused or timed out while another MX answered on port 25 in the
        same run: FAIL naming the host, what happened, the MX that answered
        and the fix (H15)."""
        for problem, what in (
            (ConnectProblem.REFUSED, "refused the connection to port 25"),
            (ConnectProblem.TIMEOUT, "did not answer on port 25"),
        ):
            checks = two_mx(unreached(IP2, problem))
            self.assertEqual(not_passing(checks), [("H15", "mx-connect", FAIL)])
            check = only(checks, "mx-connect")
            self.assertEqual(check.subject, f"{MX2} [{IP2}]")
            self.assertIn(f"{MX2} [{IP2}] {what}", check.message)
            self.assertIn(f"while {MX1} [{IP1}] answered on port 25", check.message)
            self.assertIn(f"make {MX2} accept SMTP on port 25 of {IP2}", check.fix)
            self.assertIn("remove it from the MX records", check.fix)

    def test_any_answer_after_connect_is_a_witness(self):
        """An MX that accepted the connection but then stalled or lacked
        STARTTLS still shows port 25 is open from here (H15)."""
        for stage in (Stage.GREETING, Stage.EHLO, Stage.HANDSHAKE):
            live = session(IP1, MX1, stage=stage, tls=None, timed_out=True)
            checks = two_mx(unreached(IP2, ConnectProblem.REFUSED), live)
            self.assertIn((f"{MX2} [{IP2}]", FAIL), connect_checks(checks))

    def test_no_mx_answered_stays_inconclusive(self):
        """Every MX refused or timed out: each is INCONCLUSIVE (this network
        may block port 25), and the verdict is not ready-for-enforce (H15)."""
        first = unreached(IP1, ConnectProblem.TIMEOUT, MX1)
        checks = two_mx(unreached(IP2, ConnectProblem.REFUSED), first)
        self.assertEqual(
            connect_checks(checks),
            [(f"{MX1} [{IP1}]", INCONCLUSIVE), (f"{MX2} [{IP2}]", INCONCLUSIVE)],
        )
        self.assertIn("may block outbound port 25", checks[0].message)
        both = facts(
            mx=MxFacts(Found.YES, (MxRecord(10, MX1), MxRecord(20, MX2))),
            mx_hosts=(
                mx_host(MX1, probe=first),
                mx_host(MX2, address=IP2, probe=unreached(IP2, ConnectProblem.REFUSED)),
            ),
            policy_host=policy_host(fetched(policy_body(mx=(MX1, MX2)))),
        )
        report = evaluate(both, NOW)
        self.assertEqual(report.verdict, Verdict.READY_FOR_TESTING)

    def test_only_the_same_ip_version_is_a_witness(self):
        """An IPv6 MX address that times out while only IPv4 answered stays
        INCONCLUSIVE (this network's IPv6 may be what fails); an IPv6 witness
        makes it a FAIL (H15)."""
        checks = two_mx(unreached(V6[1], ConnectProblem.TIMEOUT))
        self.assertEqual(connect_checks(checks), [(f"{MX2} [{V6[1]}]", INCONCLUSIVE)])
        self.assertIn(
            "no other IPv6 MX address answered", only(checks, "mx-connect").message
        )
        checks = two_mx(unreached(V6[1], ConnectProblem.TIMEOUT), session(V6[0]))
        self.assertEqual(connect_checks(checks), [(f"{MX2} [{V6[1]}]", FAIL)])

    def test_other_address_of_the_same_host_is_a_witness(self):
        """One MX host with two addresses: one answering, one refusing, is a
        FAIL for the refusing one (H15)."""
        host = MxHostFacts(
            MX1,
            10,
            AddressFacts(MX1, Found.YES, (IP1, IP2)),
            (
                (session(IP1, MX1), session(IP1, None)),
                (unreached(IP2, ConnectProblem.REFUSED, MX1), None),
            ),
        )
        self.assertEqual(port25_answered([host]), ((MX1, IP1),))
        checks = check_mx_hosts([host], NOW)
        self.assertEqual(connect_checks(checks), [(f"{MX1} [{IP2}]", FAIL)])
        self.assertIn(
            f"while {MX1} [{IP1}] answered", only(checks, "mx-connect").message
        )

    def test_no_route_or_other_errors_stay_inconclusive(self):
        """No route to host and other connect errors are not a refusal or a
        timeout: INCONCLUSIVE even beside an answering MX (H15)."""
        for problem in (ConnectProblem.UNREACHABLE, ConnectProblem.OTHER):
            checks = two_mx(unreached(IP2, problem))
            self.assertEqual(connect_checks(checks), [(f"{MX2} [{IP2}]", INCONCLUSIVE)])
        checks = two_mx(unreached(V6[1], ConnectProblem.UNREACHABLE), session(V6[0]))
        self.assertEqual(connect_checks(checks), [(f"{MX2} [{V6[1]}]", INCONCLUSIVE)])
        self.assertIn("no IPv6 route", only(checks, "mx-connect").message)

    def test_evaluate_fails_the_dead_mx(self):
        """evaluate: a domain whose second MX refuses port 25 is broken (H15)."""
        two = facts(
            mx=MxFacts(Found.YES, (MxRecord(10, MX1), MxRecord(20, MX2))),
            mx_hosts=(
                mx_host(),
                mx_host(MX2, address=IP2, probe=unreached(IP2, ConnectProblem.REFUSED)),
            ),
            policy_host=policy_host(fetched(policy_body(mx=(MX1, MX2)))),
        )
        report = evaluate(two, NOW)
        self.assertEqual(not_passing(report.checks), [("H15", "mx-connect", FAIL)])
        self.assertEqual(report.verdict, Verdict.BROKEN)
        self.assertIn("H15 mx-connect", report.verdict_reason)
