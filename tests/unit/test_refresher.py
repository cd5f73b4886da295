"""Proactive refresh driven by task.Clock (spec E5, E6, D11)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import Fetched, Timing, Unchanged
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.refresher import Refresher
from postfix_mtasts.service import assemble_lookup

from .fakes import FakeResolver, make_policy

DAY = 86400.0
TIMING = Timing(recheck_interval_s=3600, negative_ttl_s=300, failure_backoff_s=300)


class RefresherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.resolver = FakeResolver()
        parts = assemble_lookup(
            self.resolver,
            self.clock,
            maps={"postfix": MapConfig()}.get,
            timing=TIMING,
            max_entries=10_000,
            budget_s=15,
            max_in_flight=8,
        )
        self.lookup, self.front_door = parts.admin, parts.front_door
        self.refresher = Refresher(
            self.lookup,
            self.clock,
            interval_s=60,
            refetch_after_s=DAY,
            recheck_interval_s=3600,
            recently_used_s=DAY,
            max_in_flight=2,
        )
        self.refresher.startService()

    def cache(self, domain: str, max_age: int = 30 * 86400) -> None:
        policy = make_policy(max_age=max_age)
        self.lookup.preload(
            [CacheEntry.fetched(domain, "id1", policy, self.clock.seconds())]
        )

    def test_daily_refetch(self) -> None:
        """A 30-day policy is fetched again within about a day, unused or not (E5)."""
        self.cache("a.example")
        start = self.clock.seconds()
        while not self.resolver.calls and self.clock.seconds() - start < 2 * DAY:
            self.clock.advance(60)
        self.assertEqual([c[:2] for c in self.resolver.calls], [("a.example", None)])
        self.assertTrue(0.8 * DAY <= self.clock.seconds() - start <= DAY + 60)

    def test_short_max_age_refetched_at_half(self) -> None:
        """A policy with max_age 1 h is fetched again at half its life, before it expires (E5)."""
        self.cache("a.example", max_age=3600)
        start = self.clock.seconds()
        while not self.resolver.calls:
            self.clock.advance(60)
        self.assertLessEqual(self.clock.seconds() - start, 1800 + 60)
        self.resolver.answer_last(Fetched("id1", make_policy(max_age=3600)))
        entry = self.lookup.peek("a.example")
        assert entry is not None
        self.assertGreater(entry.expires_at, self.clock.seconds() + 3000)

    def test_recently_used_rechecked_in_background(self) -> None:
        """A domain Postfix asked for gets its TXT id re-checked before the lookup path must (D11)."""
        self.cache("used.example")
        self.cache("idle.example")
        self.front_door.lookup("postfix", b"used.example")
        start = self.clock.seconds()
        while not self.resolver.calls:
            self.clock.advance(60)
        self.assertLess(self.clock.seconds() - start, 3600)
        self.assertEqual(
            [c[:2] for c in self.resolver.calls], [("used.example", "id1")]
        )
        self.resolver.answer_last(Unchanged("id1"))
        self.clock.advance(600)
        # the lookup path finds the re-checked policy: answered without waiting
        self.assertIsInstance(
            self.front_door.lookup("postfix", b"used.example"), Answer
        )
        self.assertEqual(len(self.resolver.calls), 1)

    def test_bounded_concurrency(self) -> None:
        """At most max_in_flight background refreshes run at once; the rest wait."""
        for n in range(5):
            self.cache(f"d{n}.example", max_age=3600)
        while not self.resolver.calls:
            self.clock.advance(60)
        self.clock.advance(60)
        self.assertEqual(len(self.resolver.calls), 2)
        self.resolver.calls[0][3].callback(Fetched("id1", make_policy(max_age=3600)))
        self.clock.advance(60)
        self.assertEqual(len(self.resolver.calls), 3)

    def test_tick_survives_errors(self) -> None:
        """A failing tick is logged and the loop goes on."""
        self.cache("a.example", max_age=3600)

        def broken(domain: str) -> None:
            raise RuntimeError("bug")

        self.lookup.peek = broken  # type: ignore[method-assign]
        self.clock.advance(60)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(self.refresher._loop.running)
