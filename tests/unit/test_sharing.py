"""The memory cache with stores and a fleet coordinator behind it (issue 4; spec E1, B21)."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer, Status
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import DnsFailed, Fetched, NoPolicy, Timing
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.service import assemble_lookup
from postfix_mtasts.sharing import PolicySharing

from .fake_redis import FakeRedis, fake_store
from .fakes import FakeCoordinator, FakeResolver, FakeStore, make_policy

TIMING = Timing(recheck_interval_s=3600, negative_ttl_s=300, failure_backoff_s=300)
MAPS = {"postfix": MapConfig()}


class SharingTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.resolver = FakeResolver()
        self.store = FakeStore()
        self.coordinator = FakeCoordinator()
        self.sharing = PolicySharing(
            [self.store], self.clock, coordinator=self.coordinator, claim_ttl_s=30
        )
        parts = assemble_lookup(
            self.resolver,
            self.clock,
            maps=MAPS.get,
            timing=TIMING,
            max_entries=100,
            budget_s=15,
            max_in_flight=4,
            sharing=self.sharing,
        )
        self.service, self.front_door = parts.admin, parts.front_door

    def lookup(self, key: bytes = b"example.com") -> Answer | Deferred[Answer]:
        return self.front_door.lookup("postfix", key)

    def stored(self, checked_ago: float = 0, policy_id: str = "s1") -> CacheEntry:
        now = self.clock.seconds()
        entry = CacheEntry.fetched(
            "example.com", policy_id, make_policy(), now - checked_ago
        )
        self.store.entries["example.com"] = entry
        return entry


class AdoptTests(SharingTestCase):
    def test_adopts_usable_stored_policy(self) -> None:
        """A fresh policy in the store is adopted with no DNS or HTTPS (E1, fleet)."""
        self.stored()
        result = self.lookup()
        assert isinstance(result, Deferred)
        self.assertEqual(self.successResultOf(result).status, Status.OK)
        self.assertEqual(self.resolver.calls, [])
        self.assertEqual(self.coordinator.mine, set())

    def test_stale_stored_policy_is_rechecked(self) -> None:
        """A stored policy due for a TXT re-check does not spare the network (D11)."""
        self.stored(checked_ago=3600)
        self.lookup()
        self.assertEqual(len(self.resolver.calls), 1)

    def test_fetched_policy_written_and_claim_released(self) -> None:
        """A fetched policy reaches the store; the claim is released (B21)."""
        self.lookup()
        self.assertEqual(self.coordinator.mine, {"example.com"})
        self.resolver.answer_last(Fetched("id1", make_policy()))
        self.assertEqual(self.store.entries["example.com"].policy_id, "id1")
        self.assertEqual(self.coordinator.released, ["example.com"])

    def test_no_policy_deletes_expired(self) -> None:
        """A domain whose policy expired and whose record is gone leaves the store."""
        self.lookup()
        self.resolver.answer_last(Fetched("id1", make_policy(max_age=10)))
        self.clock.advance(11)
        self.lookup()
        self.resolver.answer_last(NoPolicy("NXDOMAIN"))
        self.assertNotIn("example.com", self.store.entries)


class FleetTests(SharingTestCase):
    def test_waits_for_other_hosts_fetch(self) -> None:
        """Another host holds the claim: wait and adopt its result, no fetch (fleet single-flight)."""
        self.coordinator.others.add("example.com")
        result = self.lookup()
        assert isinstance(result, Deferred)
        self.clock.advance(0.2)
        self.assertNoResult(result)
        self.stored(policy_id="other-host")
        self.clock.advance(0.2)
        self.assertEqual(self.successResultOf(result).status, Status.OK)
        self.assertEqual(self.resolver.calls, [])
        entry = self.service.peek("example.com")
        assert entry is not None
        self.assertEqual(entry.policy_id, "other-host")

    def test_claim_freed_without_result(self) -> None:
        """The other host releases without a policy (none found): discover ourselves."""
        self.coordinator.others.add("example.com")
        self.lookup()
        self.clock.advance(0.2)
        self.coordinator.others.clear()
        self.clock.advance(0.2)
        self.assertEqual(len(self.resolver.calls), 1)

    def test_claim_ttl_bounds_the_wait(self) -> None:
        """A claim never released stops blocking after claim_ttl (a dead host)."""
        self.coordinator.others.add("example.com")
        self.lookup()
        self.clock.pump([0.2] * 151)
        self.assertEqual(len(self.resolver.calls), 1)


class OutageTests(SharingTestCase):
    def test_store_down_never_fails_a_lookup(self) -> None:
        """A dead store costs only its benefit: discovery and answers go on."""
        self.store.down = True
        result = self.lookup()
        assert isinstance(result, Deferred)
        self.resolver.answer_last(Fetched("id1", make_policy()))
        self.assertEqual(self.successResultOf(result).status, Status.OK)
        self.assertEqual(self.flushLoggedErrors(), [])


class AdminTests(SharingTestCase):
    def test_preload_serves_without_network(self) -> None:
        """Stored policies are served at once after a restart, expired ones dropped (E1)."""
        good = self.stored()
        expired = CacheEntry.fetched("old.example", "x", make_policy(max_age=10), 0.0)
        self.store.entries["old.example"] = expired
        loaded = self.successResultOf(Deferred.fromCoroutine(self.sharing.load()))
        self.assertEqual(self.service.preload(loaded), 1)
        self.assertEqual(self.service.peek("example.com"), good)
        result = self.lookup()
        self.assertIsInstance(result, Answer)
        self.assertEqual(self.resolver.calls, [])

    def test_purge(self) -> None:
        """purge forgets a domain here and in the store (E11 admin escape hatch)."""
        self.service.preload([self.stored()])
        self.assertTrue(self.service.purge("example.com"))
        self.assertIsNone(self.service.peek("example.com"))
        self.assertNotIn("example.com", self.store.entries)
        self.assertFalse(self.service.purge("example.com"))

    def test_forced_refresh_fetches(self) -> None:
        """A forced refresh asks for a fetch even with a valid cached id (E5)."""
        self.service.preload([self.stored()])
        done = self.service.refresh_in_background("example.com", force_fetch=True)
        assert done is not None
        self.assertIsNone(self.resolver.calls[-1][1])
        self.assertIsNone(self.service.refresh_in_background("example.com"))
        self.resolver.answer_last(Fetched("id2", make_policy()))
        self.assertEqual(self.successResultOf(done).policy_id, "id2")  # type: ignore[union-attr]


class UntrustedStoreTests(SharingTestCase):
    """Stored entries are untrusted input: a refused one never replaces the
    policy already known, an accepted one that weakens it is a warning, and a
    store's own bug costs only its benefit (issue 9)."""

    def cached(self, checked_ago: float = 3600) -> CacheEntry:
        """A valid enforce policy in memory, due for its TXT re-check."""
        now = self.clock.seconds()
        entry = CacheEntry.fetched(
            "example.com", "mine", make_policy(max_age=86400 * 30), now - checked_ago
        )
        self.service.preload([entry])
        return entry

    def test_refused_redis_value_keeps_cached_policy(self) -> None:
        """A forged Redis value (mode none, checked ten years ahead) is
        refused with one warning: the cached enforce policy stays, DNS is asked
        again, and the answer is still secure (E7, D11; issue 9 saw NOTFOUND
        and DNS never asked again)."""
        redis = FakeRedis()
        store = fake_store(redis, self.clock)
        sharing = PolicySharing([store], self.clock, claim_ttl_s=30)
        parts = assemble_lookup(
            self.resolver,
            self.clock,
            maps=MAPS.get,
            timing=TIMING,
            max_entries=100,
            budget_s=15,
            max_in_flight=4,
            sharing=sharing,
        )
        now = self.clock.seconds()
        mine = CacheEntry.fetched(
            "example.com", "mine", make_policy(max_age=86400 * 30), now - 3600
        )
        parts.admin.preload([mine])
        forged = CacheEntry.fetched(
            "example.com", "forged", make_policy(Mode.NONE, mx=()), now
        )
        raw = json.loads(forged.to_bytes())
        raw["checked_at"] = now + 10 * 365 * 86400
        redis.values[store.key("example.com")] = json.dumps(raw).encode()
        with capturedLogs() as events:
            answer = parts.front_door.lookup("postfix", b"example.com")
            self.resolver.answer_last(DnsFailed("SERVFAIL"))
        if isinstance(answer, Deferred):
            answer = self.successResultOf(answer)
        self.assertEqual(answer.status, Status.OK)
        self.assertEqual(len(self.resolver.calls), 1)
        self.assertEqual(parts.admin.peek("example.com"), mine)
        (refused,) = [e for e in events if e.get("source") == "redis"]
        self.assertEqual(refused["log_level"], LogLevel.warn)
        self.assertIn("from the future", refused["reason"])

    def test_adopted_weaker_policy_warns(self) -> None:
        """A newer stored policy that protects less (enforce -> testing) is
        adopted, as the owner may have changed it, in one warning event."""
        self.cached()
        newer = CacheEntry.fetched(
            "example.com", "t1", make_policy(Mode.TESTING), self.clock.seconds()
        )
        self.store.entries["example.com"] = newer
        with capturedLogs() as events:
            self.lookup()
        self.assertEqual(self.resolver.calls, [])
        self.assertEqual(self.service.peek("example.com"), newer)
        adopted = [e for e in events if "adopted" in e["log_format"]]
        self.assertEqual(len(adopted), 1)
        self.assertEqual(adopted[0]["log_level"], LogLevel.warn)
        self.assertEqual(adopted[0]["change"], "mode enforce -> testing")
        self.assertEqual(adopted[0]["old_id"], "mine")

    def test_adopted_dropping_mx_warns(self) -> None:
        """A newer stored policy whose mx set drops a pattern is a warning."""
        self.cached()
        swapped = CacheEntry.fetched(
            "example.com",
            "s2",
            make_policy(mx=("mx.attacker.example",)),
            self.clock.seconds(),
        )
        self.store.entries["example.com"] = swapped
        with capturedLogs() as events:
            self.lookup()
        (adopted,) = [e for e in events if "adopted" in e["log_format"]]
        self.assertEqual(adopted["log_level"], LogLevel.warn)
        self.assertIn("mx1.example.com", adopted["change"])

    def test_adopted_same_strength_is_info(self) -> None:
        """A newer stored policy as strong as the cached one is one info line."""
        self.cached()
        self.stored(policy_id="s3")
        with capturedLogs() as events:
            self.lookup()
        (adopted,) = [e for e in events if "adopted" in e["log_format"]]
        self.assertEqual(adopted["log_level"], LogLevel.info)

    def test_store_bug_is_a_miss(self) -> None:
        """A store that raises something unexpected costs only its benefit:
        the lookup is discovered, the bug logged (B21)."""
        self.store.get = lambda domain: fail(RuntimeError("bug"))  # type: ignore[method-assign]
        result = self.lookup()
        self.assertEqual(len(self.resolver.calls), 1)
        self.resolver.answer_last(Fetched("id1", make_policy()))
        assert isinstance(result, Deferred)
        self.assertEqual(self.successResultOf(result).status, Status.OK)
        self.assertTrue(self.flushLoggedErrors(RuntimeError))

    def test_load_survives_store_bug(self) -> None:
        """A store whose load raises something unexpected is left out at
        start; the others still load (issue 9: serve exited 1)."""
        broken = FakeStore()
        broken.load = lambda: fail(RecursionError("bug"))  # type: ignore[method-assign]
        good = self.stored()
        sharing = PolicySharing([broken, self.store], self.clock)
        loaded = self.successResultOf(Deferred.fromCoroutine(sharing.load()))
        self.assertEqual(loaded, [good])
        self.assertEqual(len(self.flushLoggedErrors(RecursionError)), 1)

    def test_load_warns_when_newer_store_weakens(self) -> None:
        """At start, a newer entry in one store that weakens another store's
        valid one is loaded, with one summary warning."""
        now = self.clock.seconds()
        local = FakeStore()
        local.entries["example.com"] = CacheEntry.fetched(
            "example.com", "e1", make_policy(), now - 10
        )
        self.store.entries["example.com"] = CacheEntry.fetched(
            "example.com", "n1", make_policy(Mode.NONE, mx=()), now
        )
        sharing = PolicySharing([local, self.store], self.clock)
        with capturedLogs() as events:
            loaded = self.successResultOf(Deferred.fromCoroutine(sharing.load()))
        self.assertEqual([e.policy_id for e in loaded], ["n1"])
        (warning,) = events
        self.assertEqual(warning["count"], 1)
        self.assertIn("mode enforce -> none", warning["first"])
