"""The front door with the coordinator and domain state behind it: the cache
rules as Postfix sees them, driven by a fake resolver and task.Clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.admin import Admin
from postfix_mtasts.coordinator import RefreshCoordinator
from postfix_mtasts.core.answer import Answer, PolicyFailure, Status, render_value
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import (
    BackedOff,
    DnsFailed,
    Fetched,
    FetchFailed,
    NoPolicy,
    Timing,
    Unchanged,
)
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.domains import DomainState
from postfix_mtasts.frontdoor import FrontDoor
from postfix_mtasts.refresh import RefreshRound

from .fakes import FakeResolver, make_policy

ENFORCE = make_policy(Mode.ENFORCE, ("mx1.example.com", "*.example.net"))
TIMING = Timing(
    recheck_interval_s=3600, negative_ttl_s=300, failure_backoff_s=300, retry_s=60
)


def maps(**overrides: object) -> dict[str, MapConfig]:
    settings = {"strict_testing": False, "tlsrpt": False, "dns_failure": "notfound"}
    settings.update(overrides)
    return {"postfix": MapConfig(**settings)}  # type: ignore[arg-type]


class LookupTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.resolver = FakeResolver()
        self.make()

    def make(
        self,
        budget_s: float = 15.0,
        max_in_flight: int = 8,
        max_entries: int = 1000,
        *,
        state: DomainState | None = None,
        max_pending: int = 10_000,
        log_lookups: bool = False,
        **map_settings: object,
    ) -> None:
        table = maps(**map_settings)
        self.domains = state or DomainState(max_entries)
        refresh = RefreshRound(self.resolver, self.domains, self.clock, timing=TIMING)
        self.coordinator = RefreshCoordinator(
            refresh,
            self.domains,
            self.clock,
            max_in_flight=max_in_flight,
            max_pending=max_pending,
        )
        self.service = FrontDoor(
            self.domains,
            self.coordinator,
            self.clock,
            maps=table.get,
            timing=TIMING,
            budget_s=budget_s,
            log_lookups=log_lookups,
        )
        self.admin = Admin(self.domains, self.coordinator, self.clock)

    def state(self, domain: str):
        return self.domains.peek(domain), self.domains.negative(domain)

    def lookup(self, key: bytes = b"example.com", map_name: str = "postfix") -> Answer:
        result = self.service.lookup(map_name, key)
        if isinstance(result, Deferred):
            return self.successResultOf(result)
        return result

    def pending(self, key: bytes = b"example.com") -> Deferred[Answer]:
        result = self.service.lookup("postfix", key)
        assert isinstance(result, Deferred)
        self.assertNoResult(result)
        return result

    def cache_enforce(self, policy_id: str = "id1") -> None:
        d = self.pending()
        self.resolver.answer_last(Fetched(policy_id, ENFORCE))
        self.assertEqual(self.successResultOf(d).status, Status.OK)


class FirstLookupTests(LookupTestCase):
    def test_enforce_answer(self) -> None:
        """A fetched enforce policy answers secure with match= and servername (D6, G22)."""
        d = self.pending()
        self.assertEqual(self.resolver.calls[0][:2], ("example.com", None))
        self.resolver.answer_last(Fetched("id1", ENFORCE))
        answer = self.successResultOf(d)
        assert answer.value is not None
        self.assertEqual(
            render_value(answer.value),
            "secure match=mx1.example.com:.example.net servername=hostname",
        )

    def test_cached_answer_needs_no_network(self) -> None:
        """An unexpired cached policy is answered synchronously, no resolve (E2)."""
        self.cache_enforce()
        self.clock.advance(3599)
        result = self.service.lookup("postfix", b"EXAMPLE.com.")
        self.assertIsInstance(result, Answer)
        self.assertEqual(len(self.resolver.calls), 1)

    def test_single_flight(self) -> None:
        """100 simultaneous lookups of a new domain share one discovery (B21)."""
        waiting = [self.pending() for _ in range(100)]
        self.assertEqual(len(self.resolver.calls), 1)
        self.resolver.answer_last(Fetched("id1", ENFORCE))
        self.assertEqual({self.successResultOf(d).status for d in waiting}, {Status.OK})

    def test_testing_mode_notfound(self) -> None:
        """Mode testing answers NOTFOUND by default (D9, G.6)."""
        d = self.pending()
        self.resolver.answer_last(Fetched("id1", make_policy(Mode.TESTING)))
        self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)

    def test_strict_testing(self) -> None:
        """strict_testing answers testing like enforce (G.6 option)."""
        self.make(strict_testing=True)
        d = self.pending()
        self.resolver.answer_last(Fetched("id1", make_policy(Mode.TESTING)))
        self.assertEqual(self.successResultOf(d).status, Status.OK)

    def test_tlsrpt_attributes_per_map(self) -> None:
        """tlsrpt=true adds policy_type/policy_domain/mx_host_pattern (G24-G28)."""
        self.make(tlsrpt=True)
        d = self.pending()
        self.resolver.answer_last(Fetched("id1", ENFORCE))
        value = self.successResultOf(d).value
        assert value is not None
        text = render_value(value)
        self.assertIn("policy_type=sts policy_domain=example.com", text)
        self.assertIn("mx_host_pattern=*.example.net", text)
        self.assertIn("{ policy_string = mode: enforce }", text)

    def test_no_record_notfound_and_negative_cache(self) -> None:
        """No TXT record → NOTFOUND, remembered for negative_ttl (B16, A15)."""
        d = self.pending()
        self.resolver.answer_last(NoPolicy("NXDOMAIN"))
        self.assertEqual(self.successResultOf(d), Answer.notfound("NXDOMAIN"))
        self.clock.advance(299)
        self.assertEqual(self.lookup().status, Status.NOTFOUND)
        self.assertEqual(len(self.resolver.calls), 1)
        self.clock.advance(1)
        self.pending()
        self.assertEqual(len(self.resolver.calls), 2)

    def test_dns_failure_fail_open(self) -> None:
        """DNS failure with nothing cached → NOTFOUND by default (A15 decision)."""
        d = self.pending()
        self.resolver.answer_last(DnsFailed("SERVFAIL"))
        self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)

    def test_dns_failure_temp_option(self) -> None:
        """dns_failure = temp defers mail when nothing is cached (A15 option)."""
        self.make(dns_failure="temp")
        d = self.pending()
        self.resolver.answer_last(DnsFailed("SERVFAIL"))
        answer = self.successResultOf(d)
        self.assertEqual(answer.status, Status.TEMP)
        self.assertIn("SERVFAIL", answer.reason)

    def test_fetch_failure_no_cache(self) -> None:
        """Valid TXT but the fetch fails and nothing is cached → NOTFOUND (B16)."""
        d = self.pending()
        self.resolver.answer_last(
            FetchFailed("id1", "HTTP 500", PolicyFailure.FETCH_ERROR)
        )
        self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)


class KeyTests(LookupTestCase):
    def test_parent_probe_no_network(self) -> None:
        """Leading-dot keys answer NOTFOUND without any discovery (G11, A16)."""
        for key in (
            b".example.com",
            b".com",
            b"[192.0.2.1]",
            b"127.0.0.1",
            b"localhost",
        ):
            self.assertEqual(self.lookup(key).status, Status.NOTFOUND)
        self.assertEqual(self.resolver.calls, [])

    def test_smarthost_key_no_network(self) -> None:
        """Bracketed and port keys answer NOTFOUND by default (G12 decision)."""
        for key in (b"[relay.example.net]:587", b"example.net:2525"):
            self.assertEqual(self.lookup(key).status, Status.NOTFOUND)
        self.assertEqual(self.resolver.calls, [])

    def test_unknown_map_perm(self) -> None:
        """An unknown socketmap name answers PERM (G.6 decision)."""
        answer = self.lookup(map_name="other")
        self.assertEqual(answer.status, Status.PERM)
        self.assertEqual(self.resolver.calls, [])

    def test_key_normalised_to_one_entry(self) -> None:
        """Case, trailing dot and U-labels reach one A-label cache entry (G8, G9, E13)."""
        d = self.pending("bücher.example".encode())
        self.assertEqual(self.resolver.calls[0][0], "xn--bcher-kva.example")
        self.resolver.answer_last(Fetched("id1", ENFORCE))
        self.successResultOf(d)
        self.assertEqual(self.lookup(b"XN--BCHER-KVA.Example.").status, Status.OK)
        self.assertEqual(len(self.resolver.calls), 1)


class RefreshTests(LookupTestCase):
    def test_recheck_unchanged(self) -> None:
        """After the re-check interval the TXT id is compared; same id → kept (E3, D11)."""
        self.cache_enforce()
        self.clock.advance(3600)
        d = self.pending()
        self.assertEqual(self.resolver.calls[1][1], "id1")
        self.resolver.answer_last(Unchanged("id1"))
        self.assertEqual(self.successResultOf(d).status, Status.OK)
        self.clock.advance(3599)
        self.lookup()
        self.assertEqual(len(self.resolver.calls), 2)

    def test_changed_id_new_policy(self) -> None:
        """A changed id fetches and serves the new policy (D11, E3)."""
        self.cache_enforce()
        self.clock.advance(3600)
        d = self.pending()
        self.resolver.answer_last(
            Fetched("id2", make_policy(Mode.ENFORCE, ("mx2.example.com",)))
        )
        value = self.successResultOf(d).value
        assert value is not None
        self.assertEqual(value.match, ("mx2.example.com",))

    def test_failed_fetch_keeps_policy_and_backs_off(self) -> None:
        """New id, fetch fails: old policy served, id not recorded, 5 min backoff (E8, B14)."""
        self.cache_enforce()
        self.clock.advance(3600)
        d = self.pending()
        self.resolver.answer_last(
            FetchFailed("id2", "HTTP 500", PolicyFailure.FETCH_ERROR)
        )
        self.assertEqual(self.successResultOf(d).status, Status.OK)
        self.clock.advance(60)
        d = self.pending()
        _, known, held_back, _ = self.resolver.calls[-1]
        self.assertEqual(known, "id1")  # the new id was not recorded
        self.assertIs(held_back("id2"), PolicyFailure.FETCH_ERROR)
        self.assertIsNone(held_back("id3"))
        self.resolver.answer_last(BackedOff("id2", PolicyFailure.FETCH_ERROR))
        self.assertEqual(self.successResultOf(d).status, Status.OK)
        self.clock.advance(240)
        self.assertIsNone(held_back("id2"))

    def test_dns_failure_keeps_policy(self) -> None:
        """DNS failure with a valid cached policy keeps serving it (B17, E7)."""
        self.cache_enforce()
        self.clock.advance(3600)
        d = self.pending()
        self.resolver.answer_last(DnsFailed("timeout"))
        self.assertEqual(self.successResultOf(d).status, Status.OK)

    def test_record_removed_keeps_policy(self) -> None:
        """TXT gone with a valid cached policy: keep applying it (E7, A10)."""
        self.cache_enforce()
        self.clock.advance(3600)
        d = self.pending()
        self.resolver.answer_last(NoPolicy("NXDOMAIN"))
        self.assertEqual(self.successResultOf(d).status, Status.OK)

    def test_expired_same_id_refetches(self) -> None:
        """Past max_age with an unchanged id the policy is fetched again (E4)."""
        self.cache_enforce()
        self.clock.advance(86400)
        self.pending()
        self.assertIsNone(self.resolver.calls[-1][1])

    def test_expired_and_fetch_fails_notfound(self) -> None:
        """Past max_age without a successful refresh → NOTFOUND (E9)."""
        self.cache_enforce()
        self.clock.advance(86400)
        d = self.pending()
        self.resolver.answer_last(
            FetchFailed("id1", "timeout", PolicyFailure.FETCH_ERROR)
        )
        self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)

    def test_mode_none_replaces(self) -> None:
        """A fetched mode none replaces the cached enforce policy (D10, E10)."""
        self.cache_enforce()
        self.clock.advance(3600)
        d = self.pending()
        self.resolver.answer_last(Fetched("id2", make_policy(Mode.NONE, ())))
        self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)
        entry, _ = self.state("example.com")
        assert entry is not None
        self.assertEqual(entry.policy.mode, Mode.NONE)

    def test_max_age_zero(self) -> None:
        """max_age 0 applies to the current lookup only, then refetches (C10)."""
        d = self.pending()
        self.resolver.answer_last(Fetched("id1", make_policy(max_age=0)))
        self.assertEqual(self.successResultOf(d).status, Status.OK)
        self.clock.advance(1)
        d = self.pending()
        self.assertEqual(len(self.resolver.calls), 2)
        self.assertIsNone(self.resolver.calls[1][1])


class BudgetTests(LookupTestCase):
    def test_budget_answers_then_background(self) -> None:
        """A slow discovery is answered at the budget; it finishes in the background (G14)."""
        self.make(budget_s=5)
        d = self.pending()
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)
        self.resolver.answer_last(Fetched("id1", ENFORCE))
        self.assertEqual(self.lookup().status, Status.OK)
        self.assertEqual(len(self.resolver.calls), 1)

    def test_budget_keeps_cached_policy(self) -> None:
        """A slow re-check still answers from the valid cached policy (G14, B17)."""
        self.make(budget_s=5)
        self.cache_enforce()
        self.clock.advance(3600)
        d = self.pending()
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(d).status, Status.OK)

    def test_refresh_timeout(self) -> None:
        """A discovery that never ends is abandoned as a failure (G14)."""
        d = self.pending()
        self.clock.advance(80)
        self.successResultOf(d)
        self.assertTrue(self.resolver.calls[0][3].called)
        _, negative = self.state("example.com")
        assert negative is not None
        self.assertIn("timed out", negative.reason)

    def test_bounded_in_flight(self) -> None:
        """No more than max_in_flight discoveries run at once (bounded fetches)."""
        self.make(max_in_flight=2)
        for n in range(5):
            self.pending(f"d{n}.example.com".encode())
        self.assertEqual(len(self.resolver.calls), 2)
        self.resolver.calls[0][3].callback(NoPolicy("NXDOMAIN"))
        self.assertEqual(len(self.resolver.calls), 3)


class LoggingTests(LookupTestCase):
    def test_policy_update_event(self) -> None:
        """One info event per policy change, with domain, id, mode and max_age (style 4)."""
        with capturedLogs() as events:
            self.cache_enforce()
        updates = [e for e in events if e.get("event") == "policy updated"]
        self.assertEqual(len(updates), 1)
        self.assertEqual(updates[0]["log_level"], LogLevel.info)
        self.assertEqual(
            (updates[0]["domain"], updates[0]["policy_id"], updates[0]["mode"]),
            ("example.com", "id1", "enforce"),
        )

    def test_failure_warns_for_enforce(self) -> None:
        """A failed refresh of an enforce policy logs a warning (E6)."""
        self.cache_enforce()
        self.clock.advance(3600)
        self.pending()
        with capturedLogs() as events:
            self.resolver.answer_last(
                FetchFailed("id2", "HTTP 500", PolicyFailure.FETCH_ERROR)
            )
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual([e["event"] for e in warnings], ["policy fetch failed"])

    def test_failure_quiet_for_none(self) -> None:
        """A failed refresh of a mode none policy does not warn (E6)."""
        d = self.pending()
        self.resolver.answer_last(Fetched("id1", make_policy(Mode.NONE, ())))
        self.successResultOf(d)
        self.clock.advance(3600)
        self.pending()
        with capturedLogs() as events:
            self.resolver.answer_last(
                FetchFailed("id2", "HTTP 500", PolicyFailure.FETCH_ERROR)
            )
        self.assertEqual([e for e in events if e["log_level"] == LogLevel.warn], [])

    def test_resolver_bug_is_contained(self) -> None:
        """A bug in discovery is logged and the lookup still answers (never crashes)."""
        d = self.pending()
        self.resolver.calls[0][3].errback(RuntimeError("boom"))
        self.assertEqual(self.successResultOf(d).status, Status.NOTFOUND)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class BoundsTests(LookupTestCase):
    def test_refreshing_domain_not_evicted(self) -> None:
        """A full cache evicts the least recently used domain, never one being refreshed (bounds)."""
        self.make(max_entries=2)
        now = self.clock.seconds()
        self.admin.preload(
            [
                CacheEntry.fetched(d, "i", ENFORCE, now)
                for d in ("a.example", "b.example")
            ]
        )
        self.clock.advance(86400)  # both expired: a lookup refreshes a.example
        self.service.lookup("postfix", b"a.example")
        self.domains.entry("b.example")  # b is now the most recently used
        self.admin.import_entry(
            CacheEntry.fetched("c.example", "i", ENFORCE, self.clock.seconds())
        )
        self.assertIsNotNone(self.admin.peek("a.example"))
        self.assertIsNone(self.admin.peek("b.example"))


class _FailingState(DomainState):
    """Domain state that fails on demand, as a bug would (style: fakes)."""

    failing = False

    def entry(self, domain: str) -> CacheEntry | None:
        if self.failing:
            raise RuntimeError("bug")
        return super().entry(domain)


class ProtectiveTests(LookupTestCase):
    def make_failing(self) -> _FailingState:
        state = _FailingState(1000)
        self.make(state=state)
        return state

    def test_internal_error_defers_only_known_policy(self) -> None:
        """A bug answers TEMP where a valid enforce policy is cached, NOTFOUND
        elsewhere, and is logged (G.6 internal-error decision)."""
        state = self.make_failing()
        state.put(
            CacheEntry.fetched("example.com", "id1", ENFORCE, self.clock.seconds())
        )
        state.failing = True
        self.assertEqual(self.lookup(b"example.com"), Answer.temp("internal error"))
        self.assertEqual(
            self.lookup(b"other.example"), Answer.notfound("internal error")
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_internal_error_mode_none_fails_open(self) -> None:
        """A bug never defers mail for a mode none policy (G.6, D10)."""
        state = self.make_failing()
        none = make_policy(Mode.NONE, ())
        state.put(CacheEntry.fetched("example.com", "id1", none, self.clock.seconds()))
        state.failing = True
        self.assertEqual(self.lookup(b"example.com").status, Status.NOTFOUND)
        self.flushLoggedErrors(RuntimeError)

    def test_overload_answers_from_cache_and_warns_once_a_minute(self) -> None:
        """Past the discovery cap, lookups are answered at once from what is
        known, with one warning a minute, not one per lookup (bounded work)."""
        self.make(max_pending=1)
        self.pending(b"first.example")
        with capturedLogs() as events:
            for n in range(100):
                answer = self.service.lookup("postfix", b"d%d.example" % n)
                self.assertEqual(answer, Answer.notfound("no policy"))
            self.clock.advance(60)
            self.service.lookup("postfix", b"late.example")
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual([w["count"] for w in warnings], [1, 100])
        self.assertEqual(len(self.resolver.calls), 1)

    def test_budget_drops_abandoned_discovery(self) -> None:
        """When the budget ends a lookup's wait, its queued discovery is
        dropped: nobody waits for it any more (G14)."""
        self.make(budget_s=5, max_in_flight=1)
        busy, gone = self.pending(b"busy.example"), self.pending(b"gone.example")
        self.clock.advance(5)
        self.assertEqual(self.successResultOf(gone).status, Status.NOTFOUND)
        self.successResultOf(busy)
        self.assertEqual(self.coordinator.dropped, 1)
        self.resolver.answer_last(NoPolicy("NXDOMAIN"))
        self.assertEqual([c[0] for c in self.resolver.calls], ["busy.example"])

    def test_debug_log_per_lookup(self) -> None:
        """With debug logging, one event per lookup names map, key, answer
        and reason, the peer key quoted (style 4)."""
        self.make(log_lookups=True)
        self.cache_enforce()
        with capturedLogs() as events:
            self.lookup(b"example.com")
            self.lookup(b".example.com")
        lookups = [e for e in events if e["log_format"].startswith("lookup map=")]
        self.assertEqual(
            [(e["key"], e["answer"], e["log_level"]) for e in lookups],
            [
                ("b'example.com'", "OK", LogLevel.debug),
                ("b'.example.com'", "NOTFOUND", LogLevel.debug),
            ],
        )

    def test_distinct_domains_leave_bounded_state(self) -> None:
        """20,000 distinct domains through the front door leave every map and
        the answer memo within max_entries (a review found last use unbounded)."""

        class Instant:
            def resolve(self, domain, known, may):
                return succeed(NoPolicy("NXDOMAIN"))

        self.resolver = Instant()  # type: ignore[assignment]
        self.make(max_entries=100)
        for n in range(20_000):
            self.lookup(b"d%d.example" % n)
        for domain in ("a.example", "b.example"):
            self.admin.import_entry(
                CacheEntry.fetched(domain, "i", ENFORCE, self.clock.seconds())
            )
            self.lookup(domain.encode())
        self.assertLessEqual(max(self.domains.sizes().values()), 100)
        self.assertLessEqual(len(self.service._memo), 100)
