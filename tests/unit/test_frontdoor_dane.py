"""DANE precedence as Postfix sees it: the front door, the refresh round,
the domain state and the proactive refresher around a fake resolver and a
fake MX facts gatherer, driven by task.Clock (spec D13, L9-L12, G14)."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer, Status, render_value
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.dane import FactsFailed, MxFacts, TlsaState
from postfix_mtasts.core.decision import Fetched, Timing, Unchanged
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.refresher import Refresher
from postfix_mtasts.service import assemble_lookup

from .fakes import FakeResolver, make_policy

DOMAIN = "example.com"
HOSTS = ("mx1.example.com", "mx2.example.com")
ENFORCE = make_policy(Mode.ENFORCE, ("*.example.com",))
TIMING = Timing(
    recheck_interval_s=3600, negative_ttl_s=300, failure_backoff_s=300, retry_s=60
)
V, N = TlsaState.VALIDATED, TlsaState.NONE
SECURE = "OK secure match=.example.com servername=hostname"


class FakeGatherer:
    """Each gather() is recorded with a Deferred the test fires."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Deferred[MxFacts | FactsFailed]]] = []

    def gather(self, domain: str) -> Deferred[MxFacts | FactsFailed]:
        d: Deferred[MxFacts | FactsFailed] = Deferred()
        self.calls.append((domain, d))
        return d


def wire(answer: Answer) -> str:
    if answer.value is not None:
        return f"{answer.status.value} {render_value(answer.value)}"
    return f"{answer.status.value} {answer.reason}".rstrip()


class DaneLookupTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.resolver = FakeResolver()
        self.gatherer = FakeGatherer()
        self.make()

    def make(self, **settings: object) -> None:
        # DANE precedence on, as "auto" resolves where Postfix does DANE.
        maps = {"postfix": MapConfig(**{"dane": True, **settings})}  # type: ignore[arg-type]
        parts = assemble_lookup(
            self.resolver,
            self.clock,
            timing=TIMING,
            maps=maps.get,
            max_entries=100,
            max_in_flight=8,
            budget_s=15.0,
            facts=self.gatherer,
        )
        self.door, self.admin = parts.front_door, parts.admin

    def facts(self, tlsa: tuple[TlsaState, ...], ttl: float = 300.0) -> MxFacts:
        return MxFacts(HOSTS, True, tlsa, self.clock.seconds(), ttl)

    def ask(self) -> Answer | Deferred[Answer]:
        return self.door.lookup("postfix", DOMAIN.encode())

    def answered(self) -> str:
        """A lookup answered at once, from memory."""
        result = self.ask()
        self.assertIsInstance(result, Answer, "the hot path waited")
        assert isinstance(result, Answer)
        return wire(result)

    def cold(self, outcome: MxFacts | FactsFailed) -> str:
        """A first lookup: policy fetched, then the facts, within the budget."""
        d = self.ask()
        assert isinstance(d, Deferred)
        self.resolver.answer_last(Fetched("id1", ENFORCE))
        self.assertNoResult(d)  # the answer waits for the facts too
        self.assertEqual(self.gatherer.calls[-1][0], DOMAIN)
        self.gatherer.calls[-1][1].callback(outcome)
        return wire(self.successResultOf(d))


class ColdLookupTests(DaneLookupTestCase):
    def test_all_hosts_with_tlsa(self) -> None:
        """Cold lookup of an enforce domain whose MX hosts all have validated
        TLSA: `dane-only`, never `secure` (D13, L9, L11)."""
        self.assertEqual(self.cold(self.facts((V, V))), "OK dane-only")
        self.assertEqual(self.answered(), "OK dane-only")

    def test_some_hosts_with_tlsa(self) -> None:
        """Only some MX hosts with TLSA: `dane` (L11)."""
        self.assertEqual(self.cold(self.facts((V, N))), "OK dane")

    def test_no_tlsa_is_secure(self) -> None:
        """Signed, no TLSA: the STS answer (G24)."""
        self.assertEqual(self.cold(self.facts((N, N))), SECURE)

    def test_unsigned_is_secure(self) -> None:
        """No AD on the MX RRset: the STS answer (L12)."""
        unsigned = MxFacts(HOSTS, False, (), self.clock.seconds(), 300)
        self.assertEqual(self.cold(unsigned), SECURE)

    def test_mx_servfail_without_cache_is_temp(self) -> None:
        """MX SERVFAIL (bogus) and no facts known: TEMP, not NOTFOUND nor
        `secure` (RFC 8461 §2: never override a failing DANE validation)."""
        self.assertEqual(
            self.cold(FactsFailed("MX lookup failed: SERVFAIL")),
            "TEMP DANE status of example.com unknown: MX lookup failed: SERVFAIL",
        )

    def test_budget_spent_while_gathering_is_temp(self) -> None:
        """The budget ends while the facts are gathered: TEMP (unknown), and
        the gathering goes on (G14)."""
        d = self.ask()
        assert isinstance(d, Deferred)
        self.resolver.answer_last(Fetched("id1", ENFORCE))
        self.clock.advance(15)
        self.assertEqual(self.successResultOf(d).status, Status.TEMP)
        self.gatherer.calls[-1][1].callback(self.facts((V, V)))
        self.assertEqual(self.answered(), "OK dane-only")

    def test_dane_off_gathers_nothing_for_the_answer(self) -> None:
        """`dane = false`: the STS answer even where DANE applies (G24)."""
        self.make(dane=False)
        self.assertEqual(self.cold(self.facts((V, V))), SECURE)

    def test_mode_none_gathers_no_facts(self) -> None:
        """A mode none policy answers NOTFOUND and costs no MX query (D10)."""
        d = self.ask()
        assert isinstance(d, Deferred)
        self.resolver.answer_last(Fetched("id1", make_policy(Mode.NONE)))
        self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)
        self.assertEqual(self.gatherer.calls, [])


class CachedLookupTests(DaneLookupTestCase):
    def test_mx_servfail_keeps_cached_answer(self) -> None:
        """Facts past their TTL whose refresh meets SERVFAIL: the cached
        answer stays (a bogus reply can neither strip DANE nor invent it),
        with one warning; asked again after retry_s (D13)."""
        self.cold(self.facts((V, V)))
        self.clock.advance(301)
        with capturedLogs() as events:
            self.assertEqual(self.answered(), "OK dane-only")
            self.gatherer.calls[-1][1].callback(FactsFailed("MX lookup failed: x"))
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["kept"], "dane-only")
        self.assertEqual(self.answered(), "OK dane-only")
        self.assertEqual(len(self.gatherer.calls), 2)  # no retry before retry_s
        self.clock.advance(60)
        self.answered()
        self.assertEqual(len(self.gatherer.calls), 3)

    def test_ttl_expiry_refreshes_behind_the_hot_path(self) -> None:
        """Facts past their TTL: the lookup answers at once from them (no
        wait, no TXT query) and one background refresh gathers new facts,
        which the next lookup uses (D13; the hot path stays memory-only)."""
        self.cold(self.facts((V, V)))
        self.assertEqual(len(self.gatherer.calls), 1)
        self.clock.advance(299)
        self.assertEqual(self.answered(), "OK dane-only")
        self.assertEqual(len(self.gatherer.calls), 1)  # not due yet
        self.clock.advance(1)
        for _ in range(3):
            self.assertEqual(self.answered(), "OK dane-only")
        self.assertEqual(len(self.gatherer.calls), 2)  # one refresh for three
        self.assertEqual(len(self.resolver.calls), 1)  # TXT not asked
        self.gatherer.calls[-1][1].callback(self.facts((N, N)))
        self.assertEqual(self.answered(), SECURE)

    def test_restart_waits_for_facts_only(self) -> None:
        """A policy loaded from a store has no facts: the first lookup waits
        for them within the budget, without a TXT query (E1, D13)."""
        self.admin.preload(
            [CacheEntry.fetched(DOMAIN, "id1", ENFORCE, self.clock.seconds())]
        )
        d = self.ask()
        assert isinstance(d, Deferred)
        self.assertEqual(self.resolver.calls, [])
        self.gatherer.calls[-1][1].callback(self.facts((V, N)))
        self.assertEqual(wire(self.successResultOf(d)), "OK dane")

    def test_no_wait_where_facts_change_nothing(self) -> None:
        """After a restart, a map whose answer cannot depend on facts answers
        at once: a testing policy it does not report, or `dane = false` with
        `match = "patterns"` (G14: no needless wait)."""
        now = self.clock.seconds()
        testing = make_policy(Mode.TESTING, ("*.example.com",))
        self.admin.preload([CacheEntry.fetched(DOMAIN, "id1", testing, now)])
        self.assertEqual(self.answered(), "NOTFOUND policy id1 mode testing")
        self.make(dane=False)
        self.admin.preload([CacheEntry.fetched(DOMAIN, "id1", ENFORCE, now)])
        self.assertEqual(self.answered(), SECURE)
        self.assertEqual(self.gatherer.calls, [])

    def test_txt_recheck_gathers_due_facts_in_the_same_round(self) -> None:
        """A lookup due for its TXT re-check also renews facts that are due,
        in the same refresh (D11, D13)."""
        self.cold(self.facts((V, V), ttl=3600))
        self.clock.advance(3600)
        d = self.ask()
        assert isinstance(d, Deferred)
        self.resolver.answer_last(Unchanged("id1"))
        self.gatherer.calls[-1][1].callback(self.facts((N, N)))
        self.assertEqual(wire(self.successResultOf(d)), SECURE)
        self.assertEqual(len(self.gatherer.calls), 2)

    def test_facts_forgotten_with_the_policy(self) -> None:
        """Purged policy, purged facts: bounded like the policies."""
        self.cold(self.facts((V, V)))
        self.assertIsNotNone(self.admin.facts(DOMAIN))
        self.admin.purge(DOMAIN)
        self.assertIsNone(self.admin.facts(DOMAIN))

    def test_admin_refresh_gathers_facts_again(self) -> None:
        """`cache refresh` (force) gathers the facts even before their TTL."""
        self.cold(self.facts((V, V)))
        self.admin.refresh_in_background(DOMAIN, force_fetch=True)
        self.resolver.answer_last(Fetched("id2", ENFORCE))
        self.assertEqual(len(self.gatherer.calls), 2)


class RefresherFactsTests(DaneLookupTestCase):
    def test_recently_used_facts_renewed_before_they_end(self) -> None:
        """The refresher gathers a recently used domain's facts one tick
        before their TTL ends, so Postfix does not meet them stale (D13)."""
        refresher = Refresher(
            self.admin,
            self.clock,
            interval_s=60,
            refetch_after_s=86400,
            recheck_interval_s=3600,
            recently_used_s=86400,
            max_in_flight=2,
        )
        refresher.startService()
        self.addCleanup(refresher.stopService)
        self.cold(self.facts((V, V), ttl=600))
        self.answered()  # Postfix asked: recently used
        for _ in range(8):
            self.clock.advance(60)
        self.assertEqual(len(self.gatherer.calls), 1)
        self.clock.advance(60)  # 540 s: the tick before 600 s
        self.assertEqual(len(self.gatherer.calls), 2)
        self.assertEqual(len(self.resolver.calls), 1)
        self.gatherer.calls[-1][1].callback(self.facts((V, V), ttl=600))
        self.assertEqual(self.answered(), "OK dane-only")
