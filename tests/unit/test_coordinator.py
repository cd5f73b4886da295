"""The refresh coordinator: single-flight, lanes, dropping abandoned work,
the overload cap and fleet claims released on every path (spec B21, G14, D11)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.coordinator import NEWEST_FIRST_AFTER_S, Lane, RefreshCoordinator
from postfix_mtasts.core.decision import (
    DnsFailed,
    Fetched,
    NoPolicy,
    Outcome,
    Timing,
)
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Policy, parse_policy
from postfix_mtasts.domains import DomainState
from postfix_mtasts.governor import LagGovernor
from postfix_mtasts.refresh import RefreshRound
from postfix_mtasts.sharing import PolicySharing

from .fakes import FakeCoordinator, FakeResolver, FakeStore, make_policy

TIMING = Timing(
    recheck_interval_s=3600, negative_ttl_s=300, failure_backoff_s=300, retry_s=60
)
POLICY = make_policy()


class CoordinatorTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.resolver = FakeResolver()
        self.domains = DomainState(1000)
        self.make()

    def make(
        self,
        max_in_flight: int = 2,
        max_pending: int = 10_000,
        sharing: PolicySharing | None = None,
        resolver: object = None,
    ) -> None:
        refresh = RefreshRound(
            resolver or self.resolver,  # type: ignore[arg-type]
            self.domains,
            self.clock,
            timing=TIMING,
            sharing=sharing,
        )
        self.coordinator = RefreshCoordinator(
            refresh,
            self.domains,
            self.clock,
            max_in_flight=max_in_flight,
            max_pending=max_pending,
        )

    def cache(self, domain: str) -> None:
        self.domains.put(
            CacheEntry.fetched(domain, "id1", POLICY, self.clock.seconds())
        )

    def asked(self) -> list[str]:
        return [call[0] for call in self.resolver.calls]

    def answer(self, domain: str, outcome: Outcome) -> None:
        for call in self.resolver.calls:
            if call[0] == domain and not call[3].called:
                call[3].callback(outcome)
                return
        raise AssertionError(f"no open resolve for {domain}")


class SingleFlightTests(CoordinatorTestCase):
    def test_one_refresh_for_many_waiters(self) -> None:
        """Lookups waiting for one domain share one discovery (B21)."""
        waiting = [self.coordinator.wait("a.example") for _ in range(50)]
        self.assertEqual(self.asked(), ["a.example"])
        self.answer("a.example", Fetched("id1", POLICY))
        results = [self.successResultOf(d) for d in waiting if d is not None]
        self.assertEqual(len(results), 50)
        self.assertEqual({r.policy_id for r in results if r is not None}, {"id1"})
        self.assertEqual(self.coordinator.pending(), 0)
        self.assertEqual(self.domains.sizes()["pinned"], 0)

    def test_background_refresh_not_doubled(self) -> None:
        """A background refresh of a domain already refreshing is refused (E5)."""
        self.coordinator.wait("a.example")
        self.assertIsNone(self.coordinator.refresh_in_background("a.example"))
        self.assertEqual(len(self.resolver.calls), 1)

    def test_resolver_bug_remembered_as_failure(self) -> None:
        """A bug in discovery is logged, answers its waiters and holds the
        domain back for retry_s (never crashes the daemon)."""
        d = self.coordinator.wait("a.example")
        self.resolver.calls[0][3].errback(RuntimeError("boom"))
        self.assertIsNone(self.successResultOf(d))  # type: ignore[arg-type]
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        negative = self.domains.negative("a.example")
        assert negative is not None
        self.assertEqual(negative.reason, "internal error")
        self.assertEqual(negative.until, self.clock.seconds() + 60)


class LaneTests(CoordinatorTestCase):
    def test_known_domain_not_starved_by_new_ones(self) -> None:
        """With every discovery slot taken and the queue full up to the
        overload cap against dead DNS, a cached domain's re-check starts at
        once in its own lane (D11)."""
        self.cache("known.example")
        for n in range(10_050):
            self.coordinator.wait(f"new{n}.example")
        self.assertEqual(self.coordinator.running(Lane.NEW), 2)
        self.assertEqual(self.coordinator.queued(Lane.NEW), 9_998)
        self.coordinator.wait("known.example")
        self.assertEqual(self.asked()[-1], "known.example")
        self.assertEqual(self.coordinator.running(Lane.KNOWN), 1)

    def test_new_discoveries_in_turn_then_newest_first(self) -> None:
        """Discoveries start in the order asked while the queue keeps up;
        once the oldest has waited past half the lookup budget the newest
        starts first: it still has budget left (G14)."""
        for name in ("a", "b", "c", "d"):
            self.coordinator.wait(f"{name}.example")
        self.assertEqual(self.asked(), ["a.example", "b.example"])
        self.answer("a.example", NoPolicy("NXDOMAIN"))
        self.assertEqual(self.asked()[-1], "c.example")
        self.clock.advance(NEWEST_FIRST_AFTER_S)
        for name in ("e", "f"):
            self.coordinator.wait(f"{name}.example")
        self.clock.advance(0.1)  # d has waited 7.6 s
        self.answer("b.example", NoPolicy("NXDOMAIN"))
        self.assertEqual(self.asked()[-1], "f.example")

    def test_flooding_client_cannot_hold_back_another(self) -> None:
        """A connection pipelining discoveries against dead DNS cannot keep
        another connection's one lookup waiting: the least-served source
        goes first (G14; a probe answered NOTFOUND mid-flood before)."""
        for n in range(50):
            self.coordinator.wait(f"a{n}.example", "flooder")
        self.coordinator.wait("probe.example", "postfix")
        for n in range(50, 100):
            self.coordinator.wait(f"a{n}.example", "flooder")
        self.answer("a0.example", DnsFailed("timeout"))
        self.assertEqual(self.asked()[-1], "probe.example")
        self.answer("a1.example", DnsFailed("timeout"))
        self.assertEqual(self.asked()[-1], "a2.example")  # then the flood in turn

    def test_equal_sources_in_turn(self) -> None:
        """Sources with as much running and waiting, as Postfix's
        one-request connections are, are served in the order they asked
        while the queue keeps up (G14)."""
        self.make(max_in_flight=1)
        self.coordinator.wait("busy.example", "p0")
        for n in range(1, 4):
            self.coordinator.wait(f"d{n}.example", f"p{n}")
        self.answer("busy.example", NoPolicy("NXDOMAIN"))
        self.assertEqual(self.asked()[-1], "d1.example")

    def test_connections_asking_again_all_served(self) -> None:
        """Six connections that each ask a new domain as soon as they are
        answered, two discovery slots, one discovery ending every 0.5 s:
        every lookup starts within 2 s of asking.  Newest first left the
        same four waiting until their budget ended (in bench_cold.py, 30 of
        10,000 new domains over 100 connections answered NOTFOUND) (G14)."""
        self.make(max_in_flight=2)
        asked_at: dict[str, float] = {}
        count = iter(range(10_000))

        def ask(source: str) -> None:
            domain = f"d{next(count)}.example"
            asked_at[domain] = self.clock.seconds()
            waiter = self.coordinator.wait(domain, source)
            assert waiter is not None
            waiter.addCallback(lambda _: ask(source))

        for n in range(6):
            ask(f"postfix-{n}")
        waited = []
        for _ in range(200):
            self.clock.advance(0.5)
            before = len(self.resolver.calls)
            oldest = next(c for c in self.resolver.calls if not c[3].called)
            oldest[3].callback(NoPolicy("NXDOMAIN"))
            waited += [
                self.clock.seconds() - asked_at[call[0]]
                for call in self.resolver.calls[before:]
            ]
        self.assertEqual(len(waited), 200)
        self.assertLessEqual(max(waited), 2.0)
        served = {domain for domain, *_ in self.resolver.calls}
        unserved = [asked_at[d] for d in asked_at if d not in served]
        self.assertEqual(len(unserved), 4)
        self.assertGreaterEqual(min(unserved), self.clock.seconds() - 2.0)

    def test_known_lane_first_in_first_out(self) -> None:
        """Re-checks of cached domains run in the order asked."""
        for name in ("a", "b", "c", "d"):
            self.cache(f"{name}.example")
            self.coordinator.refresh_in_background(f"{name}.example")
        self.answer("a.example", NoPolicy("NXDOMAIN"))
        self.assertEqual(self.asked()[-1], "c.example")

    def test_synchronous_completions_do_not_recurse(self) -> None:
        """5,000 queued discoveries that complete at once drain in a loop,
        not a recursion (no RecursionError, every waiter answered)."""
        held: Deferred[Outcome] = Deferred()

        class Instant:
            calls = 0

            def resolve(
                self, domain: str, known: str | None, may: Callable[[str], bool]
            ) -> Deferred[Outcome]:
                Instant.calls += 1
                if domain == "first.example":
                    return held
                return succeed(NoPolicy("NXDOMAIN"))

        self.make(max_in_flight=1, resolver=Instant())
        first = self.coordinator.wait("first.example")
        waiting = [self.coordinator.wait(f"d{n}.example") for n in range(5000)]
        held.callback(NoPolicy("NXDOMAIN"))
        self.successResultOf(first)  # type: ignore[arg-type]
        self.assertEqual(len([self.successResultOf(d) for d in waiting]), 5000)  # type: ignore[arg-type]
        self.assertEqual(Instant.calls, 5001)
        self.assertEqual(self.coordinator.pending(), 0)


class AbandonTests(CoordinatorTestCase):
    def test_abandoned_discovery_dropped(self) -> None:
        """A queued discovery whose every waiter gave up never runs (G14: no
        work nobody waits for)."""
        self.make(max_in_flight=1)
        self.coordinator.wait("busy.example")
        first = self.coordinator.wait("gone.example")
        second = self.coordinator.wait("gone.example")
        assert first is not None
        assert second is not None
        first.cancel()
        self.assertEqual(self.coordinator.dropped, 0)  # one still waits
        second.cancel()
        self.assertEqual(self.coordinator.dropped, 1)
        self.assertEqual(self.coordinator.pending(), 1)
        self.assertEqual(self.domains.sizes()["pinned"], 1)  # busy.example only
        self.answer("busy.example", DnsFailed("timeout"))
        self.assertEqual(self.asked(), ["busy.example"])
        self.failureResultOf(first, CancelledError)
        self.failureResultOf(second, CancelledError)

    def test_cached_domain_work_kept(self) -> None:
        """A queued re-check of a cached domain runs even if its lookup gave
        up: the answer keeps mail protected later (D11, E5)."""
        self.make(max_in_flight=1)
        self.cache("a.example")
        self.cache("b.example")
        self.coordinator.wait("a.example")
        waiter = self.coordinator.wait("b.example")
        assert waiter is not None
        waiter.cancel()
        self.failureResultOf(waiter, CancelledError)
        self.answer("a.example", NoPolicy("NXDOMAIN"))
        self.assertEqual(self.asked(), ["a.example", "b.example"])

    def test_background_refresh_kept(self) -> None:
        """A refresh the admin or the refresher asked for is never dropped."""
        self.make(max_in_flight=1)
        self.coordinator.wait("busy.example")
        self.coordinator.refresh_in_background("new.example", force_fetch=True)
        self.answer("busy.example", NoPolicy("NXDOMAIN"))
        self.assertEqual(self.asked(), ["busy.example", "new.example"])
        self.assertIsNone(self.resolver.calls[1][1])  # forced: no known id

    def test_running_refresh_finishes_after_waiter_leaves(self) -> None:
        """A discovery already running is not stopped by its waiter leaving;
        its result is cached for the next lookup (G14)."""
        waiter = self.coordinator.wait("a.example")
        assert waiter is not None
        waiter.cancel()
        self.failureResultOf(waiter, CancelledError)
        self.answer("a.example", Fetched("id1", POLICY))
        entry = self.domains.peek("a.example")
        assert entry is not None
        self.assertEqual(entry.policy_id, "id1")

    def test_overload_cap(self) -> None:
        """Past max_pending discoveries, a new domain is refused (answered
        from what is known by the front door) rather than queued without
        end; a cached domain's re-check is not capped (D11)."""
        self.make(max_pending=3)
        for name in ("a", "b", "c"):
            self.assertIsNotNone(self.coordinator.wait(f"{name}.example"))
        self.assertIsNone(self.coordinator.wait("d.example"))
        self.assertIsNotNone(self.coordinator.wait("a.example"))  # joins
        self.cache("known.example")
        self.assertIsNotNone(self.coordinator.wait("known.example"))


class _StoreWrittenWhileClaiming(FakeStore):
    """A store whose entry appears between the first read and the claim: the
    other host wrote just before releasing its claim."""

    def __init__(self, late: CacheEntry) -> None:
        super().__init__()
        self._late = late

    def get(self, domain: str) -> Deferred[CacheEntry | None]:
        reads = [c for c in self.calls if c == ("get", domain)]
        if reads:
            self.entries[domain] = self._late
        return super().get(domain)


class ClaimTests(CoordinatorTestCase):
    def claiming(self, store: FakeStore | None = None) -> FakeCoordinator:
        fleet = FakeCoordinator()
        sharing = PolicySharing([store or FakeStore()], self.clock, coordinator=fleet)
        self.make(sharing=sharing)
        return fleet

    def test_claim_released_when_entry_adopted_after_claiming(self) -> None:
        """The claim is released when another host's entry is adopted right
        after claiming (a review found it lived out its TTL)."""
        late = CacheEntry.fetched("a.example", "id9", POLICY, self.clock.seconds())
        fleet = self.claiming(_StoreWrittenWhileClaiming(late))
        d = self.coordinator.wait("a.example")
        adopted = self.successResultOf(d)  # type: ignore[arg-type]
        self.assertEqual(adopted, late)
        self.assertEqual(self.resolver.calls, [])
        self.assertEqual((fleet.mine, fleet.released), (set(), ["a.example"]))

    def test_claim_released_after_fetch(self) -> None:
        """The host that fetched releases its claim (fleet single-flight)."""
        fleet = self.claiming()
        self.coordinator.wait("a.example")
        self.assertEqual(fleet.mine, {"a.example"})
        self.answer("a.example", Fetched("id1", POLICY))
        self.assertEqual((fleet.mine, fleet.released), (set(), ["a.example"]))

    def test_claim_released_after_resolver_bug(self) -> None:
        """A bug in discovery still releases the claim."""
        fleet = self.claiming()
        self.coordinator.wait("a.example")
        self.resolver.calls[0][3].errback(RuntimeError("boom"))
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual((fleet.mine, fleet.released), (set(), ["a.example"]))

    def test_claim_released_after_timeout(self) -> None:
        """A discovery that never ends times out and releases the claim (G14)."""
        fleet = self.claiming()
        self.coordinator.wait("a.example")
        self.clock.advance(80)
        self.assertEqual((fleet.mine, fleet.released), (set(), ["a.example"]))
        negative = self.domains.negative("a.example")
        assert negative is not None
        self.assertIn("timed out", negative.reason)


class ToleratedLogTests(CoordinatorTestCase):
    """Issue 12: one log line per policy update says what the reader
    tolerated, and the entry keeps it."""

    def fetch(self, policy: Policy) -> tuple[CacheEntry, list[str]]:
        with capturedLogs() as events:
            waiting = self.coordinator.wait("a.example")
            assert waiting is not None
            self.answer("a.example", Fetched("id1", policy))
            entry = self.successResultOf(waiting)
        assert entry is not None
        lines = [formatEvent(e) for e in events]
        return entry, [line for line in lines if "mode=" in line]

    def test_update_line_names_tolerances(self) -> None:
        body = b"  version: STSv1\n  mode: enforce\n  mx: mx.example.com\n  max_age: 86400\nok\n"
        policy = parse_policy(body)
        assert isinstance(policy, Policy)
        entry, updates = self.fetch(policy)
        self.assertEqual(len(entry.tolerated), 2)
        self.assertEqual(len(updates), 1)
        self.assertIn("mode=enforce max_age=86400 tolerated=[", updates[0])
        self.assertIn("indented (C2) line(s) 1, 2, 3, 4", updates[0])
        self.assertIn("stray-line (C2) line(s) 5", updates[0])

    def test_strict_policy_line_unchanged(self) -> None:
        _, updates = self.fetch(POLICY)
        self.assertEqual(len(updates), 1)
        self.assertNotIn("tolerated", updates[0])


class GovernedTests(CoordinatorTestCase):
    def test_late_reactor_starts_fewer_then_more(self) -> None:
        """With a lag governor, a reactor running late lets fewer
        discoveries start than configured; back on time, the queued ones
        start as the bound grows (issue 13: hot lookups keep their p99)."""
        governor = LagGovernor(
            self.clock,
            8,
            least=2,
            interval_s=0.02,
            late_s=0.005,
            cpu_clock=self.clock.seconds,  # the reactor thread ran all along
        )
        refresh = RefreshRound(self.resolver, self.domains, self.clock, timing=TIMING)
        self.coordinator = RefreshCoordinator(
            refresh, self.domains, self.clock, max_in_flight=8, governor=governor
        )
        for i in range(3):
            self.coordinator.wait(f"d{i}.example", "postfix-1")
        self.assertEqual(self.coordinator.running(Lane.NEW), 3)
        self.clock.advance(0.05)  # late by 30 ms: 8 -> 4
        self.clock.advance(0.05)  # 4 -> 2
        self.assertEqual(governor.limit, 2)
        for i in range(3, 12):
            self.coordinator.wait(f"d{i}.example", "postfix-1")
        for domain in ("d0.example", "d1.example", "d2.example"):
            self.answer(domain, NoPolicy("NXDOMAIN"))
        self.assertEqual(self.coordinator.running(Lane.NEW), 2)
        for _ in range(6):
            self.clock.advance(0.02)  # on time: 2 -> 8, one per tick
        self.assertEqual(governor.limit, 8)
        self.assertEqual(self.coordinator.running(Lane.NEW), 8)
        self.assertEqual(self.coordinator.queued(Lane.NEW), 1)
