"""DANE precedence, the pure part: facts, verdict and answers (spec D13,
L7, L9-L12, G22, G23; RFC 8461 §2, §4.1).

Every answer here is checked in the bytes Postfix reads (render_value)."""

from __future__ import annotations

from attrs import evolve
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer, Status, render_value
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.dane import (
    MAX_MX_HOSTS,
    MIN_FACTS_TTL_S,
    NOT_GATHERED,
    FactsFailed,
    FactsRecord,
    MxFacts,
    TlsaState,
    Verdict,
    clamp_ttl,
    dane_verdict,
    exact_match_list,
    mx_hosts,
    record_after,
    tlsa_name,
    valid_host,
)
from postfix_mtasts.core.decision import Negative, answer_for
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode

from .fakes import make_policy

NOW = 1_000_000.0
DOMAIN = "example.com"
V, N, F = TlsaState.VALIDATED, TlsaState.NONE, TlsaState.FAILED
HOSTS = ("mx1.example.com", "mx2.example.com")


def facts(
    tlsa: tuple[TlsaState, ...] = (V, V),
    *,
    secure: bool = True,
    hosts: tuple[str, ...] = HOSTS,
    more: int = 0,
    ttl: float = 300.0,
) -> MxFacts:
    return MxFacts(hosts, secure, tlsa if secure else (), NOW, ttl, more)


def record(known: MxFacts | None = None, failure: str = "") -> FactsRecord:
    if known is None:
        return FactsRecord(None, NOW + 60, failure or "SERVFAIL")
    return FactsRecord(known, known.expires_at, failure)


def entry(
    mode: Mode = Mode.ENFORCE, mx: tuple[str, ...] = ("*.example.com",)
) -> CacheEntry:
    return CacheEntry.fetched(DOMAIN, "id1", make_policy(mode, mx), NOW)


def answer(
    facts_record: FactsRecord | None,
    mode: Mode = Mode.ENFORCE,
    mx: tuple[str, ...] = ("*.example.com",),
    **settings: object,
) -> Answer:
    return answer_for(
        DOMAIN,
        entry(mode, mx),
        None,
        NOW,
        MapConfig(**{"dane": True, **settings}),  # type: ignore[arg-type]
        facts=facts_record,
    )


def wire(a: Answer) -> str:
    """What Postfix reads after the status word."""
    if a.value is not None:
        return f"{a.status.value} {render_value(a.value)}"
    return f"{a.status.value} {a.reason}".rstrip()


class VerdictTests(SynchronousTestCase):
    def test_table(self) -> None:
        """The verdict of each kind of facts (D13, L9-L12): every host with
        validated or failed (bogus) TLSA is dane-only, some is dane, a
        signed zone without TLSA or an unsigned one is STS; hosts past the
        bound count as without TLSA; nothing known is UNKNOWN."""
        rows = [
            ("all hosts TLSA", record(facts((V, V))), Verdict.DANE_ONLY),
            ("some hosts TLSA", record(facts((V, N))), Verdict.DANE),
            ("signed, no TLSA", record(facts((N, N))), Verdict.STS),
            ("no AD on MX", record(facts(secure=False)), Verdict.STS),
            ("bogus TLSA counts", record(facts((F, N))), Verdict.DANE),
            ("bogus TLSA everywhere", record(facts((F, F))), Verdict.DANE_ONLY),
            ("hosts past the bound", record(facts((V, V), more=3)), Verdict.DANE),
            ("null MX", record(facts((), hosts=())), Verdict.STS),
            ("MX failed, nothing known", record(None), Verdict.UNKNOWN),
            ("never gathered", NOT_GATHERED, Verdict.UNKNOWN),
            ("no record at all", None, Verdict.UNKNOWN),
            (
                "MX failed, last good facts stay",
                record(facts((V, V)), failure="SERVFAIL"),
                Verdict.DANE_ONLY,
            ),
        ]
        wrong = [
            (name, got, want)
            for name, given, want in rows
            if (got := dane_verdict(given)) is not want
        ]
        self.assertEqual(wrong, [])


class AnswerTests(SynchronousTestCase):
    def test_all_hosts_with_tlsa_is_dane_only(self) -> None:
        """Every MX host with validated TLSA: `dane-only`, never `secure`, so
        Postfix's own DANE runs and a wrong TLSA defers (D13, L9, L11)."""
        self.assertEqual(wire(answer(record(facts((V, V))))), "OK dane-only")

    def test_some_hosts_with_tlsa_is_dane(self) -> None:
        """Only some MX hosts with TLSA: `dane` (L11)."""
        self.assertEqual(wire(answer(record(facts((V, N))))), "OK dane")

    def test_signed_without_tlsa_is_secure(self) -> None:
        """A signed zone without TLSA: the STS answer as before (D13, G24)."""
        self.assertEqual(
            wire(answer(record(facts((N, N))))),
            "OK secure match=.example.com servername=hostname",
        )

    def test_unsigned_is_secure(self) -> None:
        """No AD bit on the MX RRset: no DANE, the STS answer (L12)."""
        self.assertEqual(
            wire(answer(record(facts(secure=False)))),
            "OK secure match=.example.com servername=hostname",
        )

    def test_unknown_is_temp(self) -> None:
        """MX lookup failed (bogus) and nothing known before: TEMP, neither
        `secure` (could override DANE, RFC 8461 §2) nor NOTFOUND (drops STS)."""
        got = answer(record(None, failure="MX lookup failed: SERVFAIL"))
        self.assertEqual(
            wire(got),
            "TEMP DANE status of example.com unknown: MX lookup failed: SERVFAIL",
        )

    def test_failure_keeps_last_good_answer(self) -> None:
        """A failed MX lookup after good facts answers from them (D13)."""
        got = answer(record(facts((V, V)), failure="MX lookup failed: SERVFAIL"))
        self.assertEqual(wire(got), "OK dane-only")

    def test_dane_off_is_secure(self) -> None:
        """`dane = false`: the STS answer whatever the facts (G24)."""
        self.assertEqual(
            wire(answer(record(facts((V, V))), dane=False)),
            "OK secure match=.example.com servername=hostname",
        )
        self.assertEqual(wire(answer(record(None), dane=False))[:9], "OK secure")

    def test_unresolved_auto_is_off(self) -> None:
        """`dane = "auto"` not turned on by start-up (Postfix without dnssec,
        or not known) is off: the STS answer, never a dane-only that such a
        Postfix would defer (D13, V6)."""
        self.assertEqual(
            wire(answer(record(facts((V, V))), dane="auto")),
            "OK secure match=.example.com servername=hostname",
        )

    def test_no_facts_gathered_is_secure(self) -> None:
        """A daemon that gathers no facts (facts None) answers as before."""
        self.assertEqual(wire(answer(None))[:9], "OK secure")

    def test_report_attributes_ride_along_without_match(self) -> None:
        """A tlsrpt map: the STS report attributes follow `dane-only`,
        without `match=` or `servername=` (L11, G23, G25-G28)."""
        got = answer(record(facts((V, V))), tlsrpt=True, mx=("mx1.example.com",))
        self.assertEqual(
            wire(got),
            "OK dane-only policy_type=sts policy_domain=example.com "
            "mx_host_pattern=mx1.example.com { policy_string = version: STSv1 } "
            "{ policy_string = mode: enforce } "
            "{ policy_string = mx: mx1.example.com } "
            "{ policy_string = max_age: 86400 }",
        )

    def test_policy_modes_that_do_not_answer_stay_notfound(self) -> None:
        """mode none, and testing on a map that neither reports nor treats
        it as enforce: NOTFOUND, facts or not (D9, D10): Postfix's own level
        (and its DANE) applies."""
        for mode in (Mode.NONE, Mode.TESTING):
            self.assertEqual(
                answer(record(facts((V, V))), mode).status, Status.NOTFOUND
            )
            self.assertEqual(answer(record(None), mode).status, Status.NOTFOUND)

    def test_strict_testing_goes_through_dane(self) -> None:
        """strict_testing answers testing like enforce, DANE first (D13)."""
        got = answer(record(facts((V, N))), Mode.TESTING, strict_testing=True)
        self.assertEqual(wire(got), "OK dane")
        got = answer(record(None), Mode.TESTING, strict_testing=True)
        self.assertEqual(got.status, Status.TEMP)

    def test_testing_report_answers_let_dane_run(self) -> None:
        """A tlsrpt map reports testing mode: `dane` with the attributes where
        DANE applies (L11); elsewhere, and while unknown, the report-only
        answer at default_level, never TEMP (testing must not block, D9)."""
        got = answer(record(facts((V, N))), Mode.TESTING, tlsrpt=True)
        self.assertEqual(wire(got)[:40], "OK dane policy_type=sts policy_domain=ex")
        for unknown_or_sts in (record(None), record(facts((N, N)))):
            got = answer(unknown_or_sts, Mode.TESTING, tlsrpt=True)
            self.assertEqual(wire(got)[:31], "OK may servername=hostname poli")

    def test_negative_answers_ignore_facts(self) -> None:
        """No policy: NOTFOUND as before; facts belong to cached policies."""
        got = answer_for(
            DOMAIN, None, Negative("NXDOMAIN", NOW + 60), NOW, MapConfig(), facts=None
        )
        self.assertEqual(got.status, Status.NOTFOUND)


class MatchFromMxTests(SynchronousTestCase):
    def test_exact_names_that_the_patterns_allow(self) -> None:
        """`match = "mx"`: match= lists the current MX names a pattern allows,
        `*.` for exactly one label (RFC 8461 §4.1, D4, L7, G22)."""
        hosts = ("a.example.net", "a.b.example.net", "example.net", "mx.other.org")
        known = facts(secure=False, hosts=hosts)
        got = answer(record(known), mx=("*.example.net",), match="mx")
        self.assertEqual(wire(got), "OK secure match=a.example.net servername=hostname")

    def test_two_labels_never_satisfy_a_wildcard(self) -> None:
        """`*.example.net` with MX `a.b.example.net` only: no MX host may
        receive the mail, so TEMP (defer, D8, D11) rather than `.example.net`."""
        known = facts(secure=False, hosts=("a.b.example.net",))
        got = answer(record(known), mx=("*.example.net",), match="mx")
        self.assertEqual(
            wire(got), "TEMP no MX host of example.com matches its MTA-STS policy"
        )

    def test_patterns_when_the_mx_lookup_failed(self) -> None:
        """No MX facts (lookup failed, nothing known): the patterns' list."""
        got = answer(record(None), mx=("*.example.net",), match="mx", dane=False)
        self.assertEqual(wire(got), "OK secure match=.example.net servername=hostname")

    def test_patterns_by_default(self) -> None:
        """`match = "patterns"` (default) ignores the MX names (G22)."""
        known = facts(secure=False, hosts=("a.example.net",))
        got = answer(record(known), mx=("*.example.net",))
        self.assertEqual(wire(got), "OK secure match=.example.net servername=hostname")

    def test_exact_match_list(self) -> None:
        """Case and one trailing dot do not matter; order is the MX order."""
        patterns = make_policy(mx=("mx2.example.com", "*.example.org")).mx
        self.assertEqual(
            exact_match_list(
                ["x.example.org", "mx2.example.com", "y.z.example.org"], patterns
            ),
            ("x.example.org", "mx2.example.com"),
        )


class FactsTests(SynchronousTestCase):
    def test_mx_hosts_order_and_bound(self) -> None:
        """MX hosts come best preference first (ties by name), deduplicated at
        their best preference, at most MAX_MX_HOSTS; the rest are counted."""
        records = [(20, "b.example"), (10, "c.example"), (10, "a.example")]
        records += [(5, "c.example")]
        self.assertEqual(
            mx_hosts(records), (("c.example", "a.example", "b.example"), 0)
        )
        many = [(i % 7, f"mx{i}.example") for i in range(5000)]
        hosts, more = mx_hosts(many)
        self.assertEqual(len(hosts), MAX_MX_HOSTS)
        self.assertEqual(more, 5000 - MAX_MX_HOSTS)
        self.assertEqual(hosts[0], "mx0.example")

    def test_hostile_names_are_skipped(self) -> None:
        """Names that are no host names never become a TLSA query or a
        match= entry: IPs, localhost, single labels, escapes, over-long
        names, a null MX (F8, RFC 7505)."""
        bad = [
            "",
            "192.0.2.1",
            "localhost",
            "mx.localhost",
            "single",
            "bad\\032name.example",
            "under_score.example",
            "mx.example:25",
            "[mx.example]",
            "a" * 64 + ".example",
            ("a" * 62 + ".") * 4 + "example",  # 259 octets
        ]
        self.assertEqual([n for n in bad if valid_host(n) is not None], [])
        self.assertEqual(mx_hosts([(0, n) for n in bad]), ((), 0))
        self.assertEqual(valid_host("MX1.Example.COM"), "mx1.example.com")

    def test_tlsa_name_fits_dns(self) -> None:
        """`_25._tcp.<mx>` only while it is a DNS name (RFC 7672 §3)."""
        self.assertEqual(tlsa_name("mx.example"), "_25._tcp.mx.example")
        long = ("a" * 61 + ".") * 4 + "ex"  # 250 octets: valid host
        self.assertIsNotNone(valid_host(long))
        self.assertIsNone(tlsa_name(long))

    def test_ttl_clamp(self) -> None:
        """Facts live the least TTL, 60 s at least, the recheck interval at
        most; an unknown TTL (a failed lookup) is the minimum."""
        self.assertEqual(clamp_ttl(5, 3600), MIN_FACTS_TTL_S)
        self.assertEqual(clamp_ttl(300, 3600), 300)
        self.assertEqual(clamp_ttl(86400, 3600), 3600)
        self.assertEqual(clamp_ttl(None, 3600), MIN_FACTS_TTL_S)

    def test_record_after(self) -> None:
        """New facts replace old ones; a failure keeps the last good facts
        and is retried after retry_s."""
        good = facts((V, V))
        self.assertEqual(
            record_after(None, good, NOW, 60), FactsRecord(good, NOW + 300)
        )
        failed = record_after(FactsRecord(good, NOW), FactsFailed("SERVFAIL"), NOW, 60)
        self.assertEqual(failed, FactsRecord(good, NOW + 60, "SERVFAIL"))
        self.assertEqual(
            record_after(None, FactsFailed("timeout"), NOW, 60),
            FactsRecord(None, NOW + 60, "timeout"),
        )
        later = evolve(good, checked_at=NOW + 500)
        self.assertEqual(record_after(failed, later, NOW + 500, 60).facts, later)
