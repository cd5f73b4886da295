"""The behaviour every PolicyStore shares (spec E1, E13), as mixins.

:class:`StoreContract` holds the tests every store passes;
:class:`BoundedStoreContract` adds eviction, for a store with ``max_entries``;
:class:`DurableStoreContract` adds ``close`` then reopen, and unreadable
stored bytes, for a store whose data outlives it.  Mix the ones a store meets
into trial's ``SynchronousTestCase`` and provide the hooks:
``make_store(clock, max_entries)``, ``wait(d)`` and ``flush(store)``, plus
``reopen`` and ``corrupt`` for the durable contract.  ``wait`` is
``successResultOf`` for a store whose Deferreds fire synchronously; the Redis
suite (tests/integration/test_redis_store.py) runs the global reactor with
``pytest_twisted.blockon``, which works from a ``SynchronousTestCase`` method
but not from pytest-twisted's plain test functions.  Assertions are plain
``assert``s.  Time is the ``twisted.internet.task.Clock`` handed to
``make_store``, never the wall.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.task import Clock

from postfix_mtasts.cache.store import PolicyStore
from postfix_mtasts.core.entry import STORE_GRACE_S, CacheEntry
from postfix_mtasts.core.policy import Policy, parse_policy

__all__ = [
    "MAX_AGE_S",
    "START",
    "BoundedStoreContract",
    "DurableStoreContract",
    "StoreContract",
    "make_entry",
    "run_now",
]

T = TypeVar("T")

START = 1_000_000.0  # the clock's reading when a test starts
MAX_AGE_S = 86400


def run_now(f: Callable[[], T]) -> Deferred[T]:
    """A synchronous ``run_in_thread``: runs ``f`` at once, on this thread."""
    return maybeDeferred(f)


def make_entry(
    domain: str, policy_id: str = "id1", now: float = START, mx: str = "mx1.example.com"
) -> CacheEntry:
    body = f"version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: {MAX_AGE_S}\n"
    policy = parse_policy(body.encode())
    assert isinstance(policy, Policy), policy
    return CacheEntry.fetched(domain, policy_id, policy, now)


class StoreContract:
    """Tests every store passes: memory, SQLite and Redis."""

    # -- hooks -------------------------------------------------------------

    def make_store(self, clock: Clock, max_entries: int = 1000) -> PolicyStore:
        raise NotImplementedError

    def wait(self, d: Deferred[T]) -> T:
        raise NotImplementedError

    def flush(self, store: PolicyStore) -> None:
        """Force the store's pending writes out (no-op for a direct store)."""
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------

    def fresh(self, max_entries: int = 1000) -> tuple[Clock, PolicyStore]:
        clock = Clock()
        clock.advance(START)
        return clock, self.make_store(clock, max_entries)

    def get(self, store: PolicyStore, domain: str) -> CacheEntry | None:
        return self.wait(store.get(domain))

    def put(self, store: PolicyStore, entry: CacheEntry) -> None:
        self.wait(store.put(entry))

    def loaded(self, store: PolicyStore) -> dict[str, CacheEntry]:
        entries = self.wait(store.load())
        by_domain = {entry.domain: entry for entry in entries}
        assert len(by_domain) == len(entries), entries
        return by_domain

    # -- the contract ------------------------------------------------------

    def test_round_trip(self) -> None:
        """get returns an equal CacheEntry to the one put, before and after it
        is written out: id, policy, raw lines and times survive (E13)."""
        _, store = self.fresh()
        entry = make_entry("example.com", "20240101", mx="*.mail.example.net")
        self.put(store, entry)
        assert self.get(store, "example.com") == entry
        self.flush(store)
        got = self.get(store, "example.com")
        assert got == entry, got
        assert got is not None
        assert got.policy.lines == entry.policy.lines

    def test_tolerated_round_trip(self) -> None:
        """A policy read with tolerance (issue 12) comes back from the store
        with its lines, its reading and what was tolerated (E13)."""
        _, store = self.fresh()
        body = (
            "  version: STSv1\nmode: enforce\nmx: münchen.example\nmax_age: 60\nnote\n"
        )
        policy = parse_policy(body.encode())
        assert isinstance(policy, Policy), policy
        entry = CacheEntry.fetched("example.com", "id1", policy, START)
        assert len(entry.tolerated) == 3, entry.tolerated
        self.put(store, entry)
        self.flush(store)
        got = self.get(store, "example.com")
        assert got is not None
        assert (got.policy.mode, got.policy.mx, got.policy.lines, got.tolerated) == (
            policy.mode,
            policy.mx,
            policy.lines,
            entry.tolerated,
        ), got

    def test_replace(self) -> None:
        """A put replaces the domain's entry: one entry per domain key (E13)."""
        clock, store = self.fresh()
        self.put(store, make_entry("example.com", "old"))
        self.flush(store)
        clock.advance(10)
        new = make_entry("example.com", "new", now=clock.seconds())
        self.put(store, new)
        assert self.get(store, "example.com") == new
        self.flush(store)
        assert self.get(store, "example.com") == new
        assert self.loaded(store) == {"example.com": new}

    def test_delete(self) -> None:
        """A deleted domain is gone, written out or not; deleting an unknown
        domain is no error (cache purge)."""
        _, store = self.fresh()
        self.put(store, make_entry("a.example"))
        self.put(store, make_entry("b.example"))
        self.flush(store)
        self.wait(store.delete("a.example"))
        self.wait(store.delete("never.example"))
        assert self.get(store, "a.example") is None
        self.flush(store)
        assert self.get(store, "a.example") is None
        assert set(self.loaded(store)) == {"b.example"}

    def test_get_unknown(self) -> None:
        """get of a domain never stored is None, not an error (E13)."""
        _, store = self.fresh()
        assert self.get(store, "unknown.example") is None

    def test_load_all_live(self) -> None:
        """load returns every live entry, written out or still pending (E1:
        the start-up set served without the network)."""
        _, store = self.fresh()
        entries = [make_entry(f"d{i}.example", f"id{i}") for i in range(5)]
        for entry in entries[:3]:
            self.put(store, entry)
        self.flush(store)
        for entry in entries[3:]:
            self.put(store, entry)
        assert self.loaded(store) == {entry.domain: entry for entry in entries}

    def test_expiry(self) -> None:
        """An entry is kept STORE_GRACE_S past its expiry (its id still tells
        what changed, E9), then neither get nor load returns it (E1)."""
        clock, store = self.fresh()
        flushed = make_entry("flushed.example")
        pending = make_entry("pending.example")
        self.put(store, flushed)
        self.flush(store)
        self.put(store, pending)
        clock.advance(MAX_AGE_S + STORE_GRACE_S - 1)
        assert self.get(store, "flushed.example") == flushed
        assert self.get(store, "pending.example") == pending
        assert set(self.loaded(store)) == {"flushed.example", "pending.example"}
        clock.advance(2)
        assert self.get(store, "flushed.example") is None
        assert self.get(store, "pending.example") is None
        assert self.loaded(store) == {}
        self.flush(store)
        assert self.loaded(store) == {}

    def test_interleaved(self) -> None:
        """100 puts and gets issued without waiting, on the same and different
        domains: every get sees a value already put (or None), and each domain
        ends with its last value (one entry per key, E13)."""
        _, store = self.fresh()
        domains = [f"d{i}.example" for i in range(7)]
        put_so_far: dict[str, set[str]] = {domain: set() for domain in domains}
        last: dict[str, CacheEntry] = {}
        reads: list[tuple[str, set[str], Deferred[Any]]] = []
        writes: list[Deferred[Any]] = []
        for i in range(100):
            entry = make_entry(domains[i % 7], f"v{i}")
            writes.append(store.put(entry))
            put_so_far[entry.domain].add(entry.policy_id)
            last[entry.domain] = entry
            seen = domains[(i * 3) % 7]
            reads.append((seen, set(put_so_far[seen]), store.get(seen)))
        self.wait(gatherResults(writes))
        got = self.wait(gatherResults([d for _, _, d in reads]))
        for (domain, allowed, _), entry in zip(reads, got, strict=True):
            assert entry is None or entry.policy_id in allowed, (domain, entry)
        assert {domain: self.get(store, domain) for domain in domains} == last
        self.flush(store)
        assert {domain: self.get(store, domain) for domain in domains} == last
        assert self.loaded(store) == last


class BoundedStoreContract(StoreContract):
    """A store holding at most ``max_entries``: the memory and SQLite stores."""

    def test_eviction(self) -> None:
        """Beyond max_entries the least recently updated entries go first
        (bounded store, E13)."""
        clock, store = self.fresh(max_entries=3)
        for domain in ("a.example", "b.example", "c.example", "d.example"):
            self.put(store, make_entry(domain))
            clock.advance(1)
        self.flush(store)
        assert set(self.loaded(store)) == {"b.example", "c.example", "d.example"}
        assert self.get(store, "a.example") is None

    def test_eviction_counts_replace(self) -> None:
        """Replacing an entry makes it recently updated, so an older one is
        evicted instead (bounded store, E13)."""
        clock, store = self.fresh(max_entries=2)
        for domain in ("a.example", "b.example", "a.example", "c.example"):
            self.put(store, make_entry(domain, now=clock.seconds()))
            clock.advance(1)
        self.flush(store)
        assert set(self.loaded(store)) == {"a.example", "c.example"}
        assert self.get(store, "b.example") is None


class DurableStoreContract(StoreContract):
    """A store whose data outlives it, as encoded bytes: SQLite and Redis."""

    def reopen(self, store: PolicyStore, clock: Clock) -> PolicyStore:
        """A new store over the same data, ``store`` being closed."""
        raise NotImplementedError

    def corrupt(self, store: PolicyStore, domain: str, data: bytes) -> None:
        """Store raw ``data`` as the value for ``domain``, behind the codec."""
        raise NotImplementedError

    def test_corrupt_never_raises(self) -> None:
        """Unreadable stored data is a miss, never an exception, and does not
        hide the other entries; the domain can be stored again (E13 key: an
        entry under another domain's key is not this domain's)."""
        _, store = self.fresh()
        good = make_entry("good.example")
        self.put(store, good)
        self.flush(store)
        for data in (
            b"",
            b"\xff\xfe\x00",
            b"{}",
            b'{"v": 1}',
            make_entry("bad.example").to_bytes().replace(b"enforce", b"enforced"),
            make_entry("other.example").to_bytes(),
        ):
            self.corrupt(store, "bad.example", data)
            assert self.get(store, "bad.example") is None, data
            self.corrupt(store, "bad.example", data)
            assert self.loaded(store) == {"good.example": good}, data
        fixed = make_entry("bad.example", "fixed")
        self.put(store, fixed)
        self.flush(store)
        assert self.get(store, "bad.example") == fixed

    def test_hostile_values_are_misses(self) -> None:
        """Values that once stopped or pinned the daemon are misses, never an
        exception, and hide nothing else (issue 9): 100,000 '[' (a
        RecursionError), a 400-digit time (OverflowError), Infinity, a mode
        or mx its policy lines do not say, an entry from the future."""
        clock, store = self.fresh()
        good = make_entry("good.example")
        self.put(store, good)
        self.flush(store)
        base = make_entry("bad.example").to_bytes()
        now = clock.seconds()
        for data in (
            b"[" * 100_000,
            base.replace(b'"fetched_at":%r' % now, b'"fetched_at":' + b"9" * 400),
            base.replace(b'"checked_at":%r' % now, b'"checked_at":Infinity'),
            base.replace(b'"mode":"enforce"', b'"mode":"none"'),
            base.replace(b'"mx":["mx1.example.com"]', b'"mx":["mx.attacker.example"]'),
            make_entry("bad.example", now=now + 3600).to_bytes(),
        ):
            assert data != base
            self.corrupt(store, "bad.example", data)
            assert self.get(store, "bad.example") is None, data[:80]
            self.corrupt(store, "bad.example", data)
            assert self.loaded(store) == {"good.example": good}, data[:80]

    def test_close_flushes(self) -> None:
        """close() writes the pending entries and deletes before it fires, so a
        clean restart keeps every update (E1 persist)."""
        clock, store = self.fresh()
        self.put(store, make_entry("gone.example"))
        self.flush(store)
        kept = make_entry("kept.example")
        self.put(store, kept)
        self.wait(store.delete("gone.example"))
        self.wait(store.close())
        again = self.reopen(store, clock)
        assert self.get(again, "kept.example") == kept
        assert self.loaded(again) == {"kept.example": kept}
