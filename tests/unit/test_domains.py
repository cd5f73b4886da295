"""Per-domain state: every map bounded, pinning, last use (spec E13, B14, D11)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import PolicyFailure
from postfix_mtasts.core.dane import FactsRecord
from postfix_mtasts.core.decision import Event, FetchBackoff, Negative, Update
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.domains import STALE_NEGATIVE_S, USE_GRANULARITY_S, DomainState

from .fakes import make_policy

FETCH_ERROR = PolicyFailure.FETCH_ERROR

NOW = 1_000_000.0
POLICY = make_policy()


def entry(domain: str, at: float = NOW) -> CacheEntry:
    return CacheEntry.fetched(domain, "id1", POLICY, at)


class BoundsTests(SynchronousTestCase):
    def test_distinct_names_leave_bounded_state(self) -> None:
        """200,000 distinct domains, each looked up, failing and backing off,
        leave no map over max_entries (bounded state; a review found last use
        unbounded)."""
        state = DomainState(1000)
        for n in range(200_000):
            domain = f"d{n}.example"
            now = NOW + n
            state.touch(domain, now)
            if n % 2:
                state.put(entry(domain, now))
                state.touch(domain, now + USE_GRANULARITY_S + 1)
            state.apply(
                domain,
                Update(
                    Event.FETCH_FAILED,
                    negative=Negative("HTTP 500", now + 60),
                    backoff=FetchBackoff("id2", now + 300, FETCH_ERROR),
                ),
                now,
            )
        sizes = state.sizes()
        self.assertEqual(sizes["policies"], 1000)
        self.assertLessEqual(sizes["last_used"], 1000)
        self.assertLessEqual(sizes["negative"], 1000)
        self.assertLessEqual(sizes["backoff"], 1000)
        self.assertEqual(sizes["pinned"], 0)

    def test_stream_of_unknown_names_keeps_recent_negatives_only(self) -> None:
        """Three new names a second for an hour, each a 300 s negative
        (D7): only the negatives of the last 300 + STALE_NEGATIVE_S seconds
        are kept, far below max_entries, and a just-expired one still says
        why (a lookup out of budget repeats it)."""
        state = DomainState(100_000)
        ttl = 300.0
        for second in range(3600):
            now = NOW + second
            for n in range(3):
                state.apply(
                    f"u{second}-{n}.example",
                    Update(Event.NO_POLICY, negative=Negative("NXDOMAIN", now + ttl)),
                    now,
                )
        kept = state.sizes()["negative"]
        self.assertLessEqual(kept, 3 * (ttl + STALE_NEGATIVE_S + 1))
        self.assertGreaterEqual(kept, 3 * (ttl + STALE_NEGATIVE_S - 1))
        # Asked at 3290 s, expired at 3590 s, 10 s before the end.
        self.assertEqual(
            state.negative("u3290-0.example"), Negative("NXDOMAIN", NOW + 3290 + ttl)
        )
        self.assertIsNone(state.negative("u0-0.example"))

    def test_unknown_name_leaves_no_last_use(self) -> None:
        """Asking for a domain with no cached policy records nothing (bounded state)."""
        state = DomainState(10)
        state.touch("nothing.example", NOW)
        self.assertIsNone(state.last_used("nothing.example"))
        self.assertEqual(state.sizes()["last_used"], 0)

    def test_last_use_granularity(self) -> None:
        """Last use moves at most every USE_GRANULARITY_S (cheap hot path, D11)."""
        state = DomainState(10)
        state.put(entry("a.example"))
        state.touch("a.example", NOW)
        state.touch("a.example", NOW + USE_GRANULARITY_S)
        self.assertEqual(state.last_used("a.example"), NOW)
        state.touch("a.example", NOW + USE_GRANULARITY_S + 1)
        self.assertEqual(state.last_used("a.example"), NOW + USE_GRANULARITY_S + 1)

    def test_current_entry_and_facts(self) -> None:
        """A remembered answer stays current only while its very entry and
        facts are the domain's (a newer policy or facts end it), and each
        use counts as a lookup, with the same granularity (D11, D13)."""
        state = DomainState(10)
        first = entry("a.example")
        state.put(first)
        self.assertTrue(state.current(first, None, NOW))
        self.assertEqual(state.last_used("a.example"), NOW)
        self.assertTrue(state.current(first, None, NOW + USE_GRANULARITY_S))
        self.assertEqual(state.last_used("a.example"), NOW)
        later = NOW + USE_GRANULARITY_S + 1
        self.assertTrue(state.current(first, None, later))
        self.assertEqual(state.last_used("a.example"), later)
        facts = FactsRecord(None, NOW + 60, "SERVFAIL")
        state.set_facts("a.example", facts)
        self.assertFalse(state.current(first, None, NOW))
        self.assertTrue(state.current(first, facts, NOW))
        state.put(entry("a.example"))  # an equal entry, but another one
        self.assertFalse(state.current(first, None, NOW))
        state.purge("a.example")
        self.assertFalse(state.current(first, None, NOW))
        self.assertIsNone(state.last_used("a.example"))

    def test_evicted_policy_forgets_last_use(self) -> None:
        """A policy the LRU evicts takes its last use with it: last use is
        bounded by the cache itself (bounded state, D11)."""
        state = DomainState(2)
        for domain in ("a.example", "b.example"):
            state.put(entry(domain))
            state.touch(domain, NOW)
        state.put(entry("c.example"))
        self.assertIsNone(state.last_used("a.example"))
        self.assertEqual(state.last_used("b.example"), NOW)
        self.assertEqual(state.sizes()["last_used"], 1)

    def test_evicted_or_purged_policy_forgets_last_use(self) -> None:
        """A purged domain leaves no last use, negative, back-off or MX
        facts (E11, D13)."""
        state = DomainState(10)
        state.put(entry("a.example"))
        state.touch("a.example", NOW)
        state.set_facts("a.example", FactsRecord(None, NOW + 60, "SERVFAIL"))
        state.apply(
            "a.example",
            Update(
                Event.FETCH_FAILED,
                negative=Negative("x", NOW + 60),
                backoff=FetchBackoff("id2", NOW + 300, FETCH_ERROR),
            ),
            NOW,
        )
        self.assertTrue(state.purge("a.example"))
        self.assertEqual(
            state.sizes(),
            {
                "policies": 0,
                "negative": 0,
                "backoff": 0,
                "last_used": 0,
                "facts": 0,
                "pinned": 0,
            },
        )
        self.assertFalse(state.purge("a.example"))

    def test_pinned_domain_not_evicted(self) -> None:
        """A pinned domain (being refreshed) survives a full LRU; unpinned, it goes."""
        state = DomainState(2)
        state.put(entry("a.example"))
        state.put(entry("b.example"))
        state.pin("a.example")
        state.pin("a.example")  # two refreshes hold it
        state.put(entry("c.example"))
        self.assertIsNotNone(state.peek("a.example"))
        self.assertIsNone(state.peek("b.example"))
        state.unpin("a.example")
        state.put(entry("d.example"))
        self.assertIsNotNone(state.peek("a.example"))
        state.unpin("a.example")
        state.put(entry("e.example"))
        self.assertIsNone(state.peek("a.example"))
        self.assertEqual(state.sizes()["pinned"], 0)


class BackoffTests(SynchronousTestCase):
    def test_backoff_per_domain_and_id(self) -> None:
        """A failed fetch backs off that (domain, id) only, until its time (B14)."""
        state = DomainState(10)
        state.apply(
            "a.example",
            Update(
                Event.FETCH_FAILED, backoff=FetchBackoff("id2", NOW + 300, FETCH_ERROR)
            ),
            NOW,
        )
        self.assertFalse(state.may_fetch("a.example", "id2", NOW + 299))
        self.assertTrue(state.may_fetch("a.example", "id3", NOW))
        self.assertTrue(state.may_fetch("b.example", "id2", NOW))
        self.assertTrue(state.may_fetch("a.example", "id2", NOW + 300))

    def test_expired_backoffs_pruned_first(self) -> None:
        """Over the bound, expired back-offs go before live ones (B14 kept)."""
        state = DomainState(2)
        state.apply(
            "old.example",
            Update(Event.FETCH_FAILED, backoff=FetchBackoff("i", NOW, FETCH_ERROR)),
            NOW,
        )
        state.apply(
            "live.example",
            Update(
                Event.FETCH_FAILED, backoff=FetchBackoff("i", NOW + 300, FETCH_ERROR)
            ),
            NOW,
        )
        state.apply(
            "new.example",
            Update(
                Event.FETCH_FAILED, backoff=FetchBackoff("i", NOW + 300, FETCH_ERROR)
            ),
            NOW,
        )
        self.assertFalse(state.may_fetch("live.example", "i", NOW + 1))
        self.assertFalse(state.may_fetch("new.example", "i", NOW + 1))

    def test_backing_off_follows_negative(self) -> None:
        """A negative answer holds network work back until its time (A15, B14)."""
        state = DomainState(10)
        state.remember_failure("a.example", Negative("SERVFAIL", NOW + 60), NOW)
        self.assertTrue(state.backing_off("a.example", NOW + 59))
        self.assertFalse(state.backing_off("a.example", NOW + 60))
        self.assertFalse(state.backing_off("b.example", NOW))


class ApplyTests(SynchronousTestCase):
    def test_delete_forgets_policy(self) -> None:
        """An update that deletes drops the policy and sets the negative (E9)."""
        state = DomainState(10)
        state.put(entry("a.example"))
        negative = Negative("NXDOMAIN", NOW + 300)
        state.apply(
            "a.example", Update(Event.NO_POLICY, delete=True, negative=negative), NOW
        )
        self.assertIsNone(state.peek("a.example"))
        self.assertEqual(state.negative("a.example"), negative)

    def test_new_entry_clears_negative(self) -> None:
        """A stored policy clears an earlier failure (E3)."""
        state = DomainState(10)
        state.remember_failure("a.example", Negative("x", NOW + 60), NOW)
        state.apply("a.example", Update(Event.UPDATED, entry=entry("a.example")), NOW)
        self.assertIsNone(state.negative("a.example"))
        self.assertEqual(state.domains(), ["a.example"])

    def test_preload_keeps_newest_valid(self) -> None:
        """Start-up keeps only valid entries, the most recently checked (E1, E9)."""
        state = DomainState(2)
        loaded = state.preload(
            [
                entry("old.example", NOW - 10),
                entry("new.example", NOW - 1),
                entry("mid.example", NOW - 5),
                entry("expired.example", NOW - 2 * 86400),
            ],
            NOW,
        )
        self.assertEqual(loaded, 2)
        self.assertEqual(sorted(state.domains()), ["mid.example", "new.example"])
