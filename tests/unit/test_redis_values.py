"""Redis values are untrusted input (issue 9; spec C19, E1, E13): the Redis
store refuses, with one warning, every value that is not a valid entry for
its key from now; with a fleet key, every value that does not carry its MAC;
and it drops, with one error, a write it cannot encode instead of treating
it as an outage.  Runs RedisStore over a dict-backed fake connection."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.redis import READ_LIMIT, RedisStore
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.core.seal import seal
from postfix_mtasts.core.stored import MAX_CLOCK_SKEW_S, MAX_STORED_BYTES

from .fake_redis import FakeRedis, fake_store
from .fakes import make_policy

NOW = 1_700_000_000.0
KEY = b"k" * 32
OLD_KEY = b"o" * 32


def entry(domain: str = "example.com", now: float = NOW, **kw: Any) -> CacheEntry:
    return CacheEntry.fetched(domain, "id1", make_policy(**kw), now)


def events_at(
    events: Sequence[Mapping[str, Any]], level: LogLevel
) -> list[Mapping[str, Any]]:
    return [e for e in events if e["log_level"] is level]


class RedisTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.redis = FakeRedis()

    def store(self, keys: tuple[bytes, ...] = ()) -> RedisStore:
        return fake_store(self.redis, self.clock, keys)

    def get(self, store: RedisStore, domain: str = "example.com") -> CacheEntry | None:
        return self.successResultOf(store.get(domain))


class RefusedValueTests(RedisTestCase):
    def bad_values(self) -> dict[str, bytes]:
        good = entry().to_bytes()
        raw = json.loads(good)
        return {
            "Infinity": good.replace(
                b'"expires_at":1700086400.0', b'"expires_at":Infinity'
            ),
            "nesting": b"[" * 100_000,
            "400 digits": good.replace(b"1700000000.0", b"9" * 400, 1),
            "future": entry(now=NOW + MAX_CLOCK_SKEW_S + 1).to_bytes(),
            "other domain": entry("other.example").to_bytes(),
            "forged mode": json.dumps({**raw, "mode": "none", "mx": []}).encode(),
            "oversize": b" " * (MAX_STORED_BYTES + 100),
            "not UTF-8": b"\xff" + good,
        }

    def test_each_refused_value_is_one_warning(self) -> None:
        """A bad value is a miss with one warning naming the key and the
        reason, never an exception and never an outage (issue 9: a RecursionError
        here once turned an enforce domain into NOTFOUND)."""
        store = self.store()
        for name, value in self.bad_values().items():
            self.redis.values["mtasts:policy:example.com"] = value
            with capturedLogs() as events:
                self.assertIsNone(self.get(store), name)
            warnings = events_at(events, LogLevel.warn)
            self.assertEqual(len(warnings), 1, (name, events))
            self.assertEqual(warnings[0]["source"], "redis")
            self.assertEqual(warnings[0]["key"], "'mtasts:policy:example.com'")
            self.assertTrue(store.link.available, name)

    def test_one_line_per_refusal_not_per_read(self) -> None:
        """A refresh reads a domain twice (before and after its claim): the
        same refusal at the same moment is one line; a second later, another."""
        store = self.store()
        self.redis.values["mtasts:policy:example.com"] = b"[" * 10
        with capturedLogs() as events:
            self.assertIsNone(self.get(store))
            self.assertIsNone(self.get(store))
            self.clock.advance(1)
            self.assertIsNone(self.get(store))
        self.assertEqual(len(events_at(events, LogLevel.warn)), 2)

    def test_load_summarises(self) -> None:
        """Many refused values at start give one line: the count and the
        first five; the good entries still load (E1)."""
        for i, value in enumerate(self.bad_values().values()):
            self.redis.values[f"mtasts:policy:d{i}.example"] = value
        good = entry("good.example")
        self.redis.values["mtasts:policy:good.example"] = good.to_bytes()
        with capturedLogs() as events:
            loaded = self.successResultOf(self.store().load())
        self.assertEqual(loaded, [good])
        (warning,) = events_at(events, LogLevel.warn)
        self.assertEqual(warning["count"], 8)
        self.assertEqual(warning["first"].count("mtasts:policy:"), 5)

    def test_huge_value_is_read_bounded(self) -> None:
        """A 16 MiB value written by anyone is read only up to one byte past
        the largest acceptable one, then refused, at a lookup and at the
        load at start: its bytes are bounded before they are buffered
        (issue 9, Build 1)."""
        served: list[int] = []
        execute = self.redis.execute_command

        def count(raw: Any) -> Any:
            served.append(len(raw))
            return raw

        def counting(*args: str | int) -> Any:
            return execute(*args).addCallback(count)

        self.redis.execute_command = counting  # type: ignore[method-assign]
        self.redis.values["mtasts:policy:example.com"] = b"[" * (16 << 20)
        store = self.store()
        with capturedLogs() as events:
            self.assertIsNone(self.get(store))
            self.assertEqual(self.successResultOf(store.load()), [])
        self.assertEqual(served, [READ_LIMIT, READ_LIMIT])
        self.assertEqual(len(events_at(events, LogLevel.warn)), 2)

    def test_within_clock_skew(self) -> None:
        """Another host's clock a little ahead is no reason to refuse (E1)."""
        ahead = entry(now=NOW + MAX_CLOCK_SKEW_S - 1)
        self.redis.values["mtasts:policy:example.com"] = ahead.to_bytes()
        self.assertEqual(self.get(self.store()), ahead)


class WriterTests(RedisTestCase):
    def test_unencodable_write_is_dropped(self) -> None:
        """An entry that cannot be written back (Infinity) is dropped with one
        error line; Redis stays available, nothing is retried (issue 9: the
        OverflowError was taken for an outage and replayed in a loop)."""
        store = self.store()
        bad = CacheEntry("example.com", "id1", make_policy(), NOW, float("inf"), NOW)
        with capturedLogs() as events:
            self.successResultOf(store.put(bad))
            self.clock.advance(120)
        (error,) = events_at(events, LogLevel.error)
        self.assertEqual(error["domain"], "example.com")
        self.assertEqual(events_at(events, LogLevel.warn), [])
        self.assertEqual(self.redis.calls, [])
        self.assertTrue(store.link.available)
        self.assertEqual(store.pending, 0)
        self.successResultOf(store.put(entry()))
        self.assertEqual(self.redis.calls, [("set", "mtasts:policy:example.com")])

    def test_unencodable_write_waiting_for_redis(self) -> None:
        """A bad entry parked during an outage is dropped once at replay, not
        replayed again and again."""
        store = self.store()
        self.redis.down = True
        self.failureResultOf(store.get("x.example"))
        self.assertFalse(store.link.available)
        bad = CacheEntry("example.com", "id1", make_policy(), NOW, float("nan"), NOW)
        store.put(bad)
        store.put(entry("good.example"))
        self.assertEqual(store.pending, 2)
        self.redis.down = False
        with capturedLogs() as events:
            self.clock.advance(300)
        self.assertEqual(len(events_at(events, LogLevel.error)), 1)
        self.assertEqual(store.pending, 0)
        self.assertEqual(list(self.redis.values), ["mtasts:policy:good.example"])


class FleetKeyTests(RedisTestCase):
    def refused(self, store: RedisStore, because: str) -> None:
        self.clock.advance(1)  # each a refusal of its own (one line a second)
        with capturedLogs() as events:
            self.assertIsNone(self.get(store))
        (warning,) = events_at(events, LogLevel.warn)
        self.assertIn(because, warning["reason"])

    def test_sealed_round_trip(self) -> None:
        """With a fleet key every value carries its MAC, and a host with the
        same key reads it."""
        self.successResultOf(self.store((KEY,)).put(entry()))
        value = self.redis.values["mtasts:policy:example.com"]
        self.assertTrue(value.startswith(b"mac1:"))
        self.assertEqual(self.get(self.store((KEY,))), entry())

    def test_writer_without_key_is_refused(self) -> None:
        """A Redis writer without the key cannot inject a policy: a plain
        value, one sealed with another key, or a sealed payload changed, are
        refused (issue 9: Redis write access was control of every policy)."""
        store = self.store((KEY,))
        forged = entry(mx=("mx.attacker.example",)).to_bytes()
        self.redis.values["mtasts:policy:example.com"] = forged
        self.refused(store, "no fleet key MAC")
        name = "mtasts:policy:example.com"
        self.redis.values[name] = seal(b"x" * 32, name, forged)
        self.refused(store, "does not match")
        genuine = seal(KEY, name, entry().to_bytes())
        self.redis.values[name] = genuine.replace(
            b"mx1.example.com", b"mx1.example.org"
        )
        self.refused(store, "does not match")
        self.redis.values[name] = b"mac1:" + b"0" * 10 + b":" + entry().to_bytes()
        self.refused(store, "MAC")

    def test_sealed_value_bound_to_its_key(self) -> None:
        """A genuine sealed value copied under another domain's key is refused
        (the MAC covers the Redis key)."""
        other = entry("other.example")
        name = "mtasts:policy:other.example"
        self.redis.values["mtasts:policy:example.com"] = seal(
            KEY, name, other.to_bytes()
        )
        self.refused(self.store((KEY,)), "does not match")

    def test_key_rotation(self) -> None:
        """The first key seals, every key opens: a host rolled to (new, old)
        is read by one still on (old, new), but not by one on (old) only."""
        self.successResultOf(self.store((KEY, OLD_KEY)).put(entry()))
        self.assertEqual(self.get(self.store((OLD_KEY, KEY))), entry())
        self.refused(self.store((OLD_KEY,)), "does not match")

    def test_sealed_value_without_key(self) -> None:
        """A host without the fleet key refuses sealed values rather than
        misread them."""
        self.successResultOf(self.store((KEY,)).put(entry()))
        self.refused(self.store(), "none configured")

    def test_modes_survive_sealing(self) -> None:
        """Sealing changes nothing in what is stored: a testing policy comes
        back as it was written (E13)."""
        testing = entry(mode=Mode.TESTING)
        self.successResultOf(self.store((KEY,)).put(testing))
        self.assertEqual(self.get(self.store((KEY,))), testing)
