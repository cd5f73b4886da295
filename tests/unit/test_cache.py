"""Cache entries and the in-memory LRU (spec E1, E13)."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.memory import MemoryCache
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode, Policy, parse_policy

from .fakes import make_policy


def entry(domain: str, now: float = 1000.0) -> CacheEntry:
    return CacheEntry.fetched(domain, "id1", make_policy(), now)


class CacheEntryTests(SynchronousTestCase):
    def test_expiry_counts_from_fetch(self) -> None:
        """A policy is valid for max_age seconds from its fetch (E1, E9)."""
        e = entry("example.com", now=1000.0)
        self.assertTrue(e.is_valid(1000.0 + 86399))
        self.assertFalse(e.is_valid(1000.0 + 86400))

    def test_round_trip(self) -> None:
        """An entry survives to_bytes/from_bytes with its policy re-parsed (E13)."""
        policy = parse_policy(
            b"version: STSv1\nmode: enforce\nmx: *.example.net\nmx: mx1.example.com\nmax_age: 604800\n"
        )
        assert isinstance(policy, Policy)
        original = CacheEntry.fetched("example.com", "abc", policy, 12.5)
        again = CacheEntry.from_bytes(original.to_bytes())
        self.assertEqual(again, original)
        assert again is not None
        self.assertEqual(again.mode, Mode.ENFORCE)

    def test_corrupt_bytes(self) -> None:
        """Unreadable stored bytes give None, never an exception (bad input loses nothing)."""
        good = entry("example.com").to_bytes()
        for data in (
            b"",
            b"{",
            b"[]",
            b'{"v": 2}',
            good.replace(b"enforce", b"enforced"),
            b"\xff",
        ):
            self.assertIsNone(CacheEntry.from_bytes(data), data)


class MemoryCacheTests(SynchronousTestCase):
    def test_get_put_delete(self) -> None:
        """Entries are found by domain and can be removed."""
        cache = MemoryCache(10)
        cache.put(entry("a.example"))
        got = cache.get("a.example")
        assert got is not None
        self.assertEqual(got.domain, "a.example")
        cache.delete("a.example")
        self.assertIsNone(cache.get("a.example"))
        cache.delete("a.example")

    def test_lru_bound(self) -> None:
        """At most max_entries; the least recently used is evicted first (bounded cache)."""
        cache = MemoryCache(2)
        cache.put(entry("a.example"))
        cache.put(entry("b.example"))
        cache.get("a.example")
        cache.put(entry("c.example"))
        self.assertEqual(
            sorted(e.domain for e in cache.scan()), ["a.example", "c.example"]
        )
        self.assertEqual(len(cache), 2)

    def test_bad_size(self) -> None:
        """A cache of size 0 is a configuration bug."""
        self.assertRaises(ValueError, MemoryCache, 0)


class StoredFormatTests(SynchronousTestCase):
    def test_parsed_fields_checked(self) -> None:
        """A stored mx pattern that is not valid never reaches Postfix (C12, C13)."""
        data = json.loads(entry("example.com").to_bytes())
        for bad in (["192.0.2.1"], ["mx.example.com:25"], [""], [3]):
            self.assertIsNone(
                CacheEntry.from_bytes(json.dumps({**data, "mx": bad}).encode())
            )
        self.assertIsNone(
            CacheEntry.from_bytes(json.dumps({**data, "max_age": 31557601}).encode())
        )
        self.assertIsNone(
            CacheEntry.from_bytes(json.dumps({**data, "mx": []}).encode())
        )

    def test_entry_without_parsed_fields(self) -> None:
        """An entry holding only the policy lines is parsed from them."""
        data = json.loads(entry("example.com").to_bytes())
        for key in ("mode", "max_age", "mx"):
            del data[key]
        self.assertEqual(
            CacheEntry.from_bytes(json.dumps(data).encode()), entry("example.com")
        )


class InUseTests(SynchronousTestCase):
    def test_domain_in_use_not_evicted(self) -> None:
        """The LRU never evicts a domain in use; it takes the next oldest (bounds)."""
        busy = {"a.example"}
        cache = MemoryCache(2, in_use=busy.__contains__)
        cache.put(entry("a.example"))
        cache.put(entry("b.example"))
        cache.put(entry("c.example"))
        self.assertEqual({e.domain for e in cache.scan()}, {"a.example", "c.example"})
        busy.clear()
        cache.put(entry("d.example"))
        self.assertEqual({e.domain for e in cache.scan()}, {"c.example", "d.example"})
