"""The Redis fleet store and claim against a real redis-server (issue 4).

A private `redis-server` runs on 127.0.0.1 on a free port (redis_server.py);
each test uses its own key prefix.  pytest-twisted (greenlet mode) runs the
``async def`` tests inside the reactor; the trial-style contract class runs
outside it and waits with ``blockon``.  Outage tests stop (SIGTERM) or freeze
(SIGSTOP) that server and measure wall time, since the fault is a real
process.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet import task
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.redis import (
    RedisCoordinator,
    RedisStore,
    make_redis,
)
from postfix_mtasts.cache.store import CacheUnavailableError, PolicyStore
from postfix_mtasts.core.entry import CacheEntry
from tests.unit.fakes import make_policy
from tests.unit.store_contract import DurableStoreContract

from .redis_server import RedisServer

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def async_test(f: F) -> F:
    """pytest-twisted's mark for an ``async def`` test, typed."""
    return pytest_twisted.ensureDeferred(f)  # type: ignore[no-any-return]


_prefixes = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="class")
def class_server(request: pytest.FixtureRequest, server: RedisServer) -> None:
    request.cls.server = server


@pytest.mark.usefixtures("class_server")
class RedisStoreContractTests(DurableStoreContract, SynchronousTestCase):
    """The shared store contract against RedisStore on a real redis-server;
    the store's clock is the test's Clock (expiry on read), the I/O real.
    Redis holds any number of keys: there is no size bound to evict by, so
    the bounded contract does not apply."""

    server: RedisServer

    def setUp(self) -> None:
        self.prefix = f"c{next(_prefixes)}:"

    def make_store(self, clock: Clock, max_entries: int = 1000) -> PolicyStore:
        store = make_redis(clock, self.server.url, prefix=self.prefix)[0]
        self.addCleanup(lambda: pytest_twisted.blockon(store.close()))
        return store

    def wait(self, d: Deferred[T]) -> T:
        return pytest_twisted.blockon(d)  # type: ignore[no-any-return]

    def flush(self, store: PolicyStore) -> None:
        assert isinstance(store, RedisStore)
        assert store.pending == 0  # a put is written before it fires

    def reopen(self, store: PolicyStore, clock: Clock) -> PolicyStore:
        return self.make_store(clock)

    def corrupt(self, store: PolicyStore, domain: str, data: bytes) -> None:
        assert isinstance(store, RedisStore)
        self.server.command("SET", store.key(domain), data)


@pytest.fixture
def reactor() -> IReactorTime:
    # pytest-twisted runs the global reactor; tests hand it in as the clock.
    from twisted.internet import reactor  # noqa: TID251 - the running one

    return reactor


@pytest.fixture
def prefix() -> str:
    return f"t{next(_prefixes)}:"


@pytest.fixture
def closing() -> Iterator[Callable[[RedisStore], RedisStore]]:
    """Close every store a test makes, even when it fails."""
    stores: list[RedisStore] = []
    yield lambda s: stores.append(s) or s  # type: ignore[func-returns-value]
    for s in stores:
        pytest_twisted.blockon(s.close())


async def spin(reactor: IReactorTime, seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def poll(
    reactor: IReactorTime, check: Callable[[], object], deadline_s: float
) -> float:
    """Run the reactor until ``await check()`` (or ``check()``) is true; the
    seconds it took."""
    start = time.monotonic()
    while True:
        ok = check()
        if isinstance(ok, Deferred):
            ok = await ok
        if ok:
            return time.monotonic() - start
        assert time.monotonic() - start < deadline_s, "condition not reached"
        await spin(reactor, 0.02)


def entry(domain: str, now: float, max_age: int = 3600) -> CacheEntry:
    return CacheEntry.fetched(domain, "id1", make_policy(max_age=max_age), now)


def events(logged: Any, level: LogLevel) -> list[dict[str, Any]]:
    return [
        e
        for e in logged
        if e["log_level"] is level
        and e.get("log_namespace", "").startswith("postfix_mtasts.cache.redis")
    ]


@async_test
async def test_put_sets_key_with_policy_ttl(server, reactor, prefix, closing) -> None:
    """A put stores to_bytes() at <prefix>policy:<domain> with PX =
    expires_at + grace - now: every key expires with its policy."""
    store = closing(make_redis(reactor, server.url, prefix=prefix)[0])
    store.grace_s = 50.0
    e = entry("a.example", reactor.seconds(), max_age=100)
    await store.put(e)
    key = f"{prefix}policy:a.example"
    assert server.command("GET", key) == e.to_bytes().decode()
    pttl = server.command("PTTL", key)
    assert isinstance(pttl, int)
    assert 148_000 < pttl <= 150_000
    assert await store.get("a.example") == e


@async_test
async def test_key_really_expires(server, reactor, prefix, closing) -> None:
    """Redis itself drops the key once expires_at + grace has passed."""
    store = closing(make_redis(reactor, server.url, prefix=prefix)[0])
    store.grace_s = 0.1
    await store.put(entry("short.example", reactor.seconds(), max_age=0))
    key = f"{prefix}policy:short.example"
    assert server.command("EXISTS", key) == 1
    took = await poll(reactor, lambda: server.command("EXISTS", key) == 0, 5.0)
    assert took < 2.0
    assert await store.get("short.example") is None


@async_test
async def test_dead_entry_is_not_written_and_replaces(
    server, reactor, prefix, closing
) -> None:
    """Putting an entry already past expires_at + grace writes nothing and
    removes the domain's older key (a put replaces)."""
    store = closing(make_redis(reactor, server.url, prefix=prefix)[0])
    store.grace_s = 10.0
    now = reactor.seconds()
    key = f"{prefix}policy:d.example"
    await store.put(entry("d.example", now - 100.0, max_age=50))
    assert server.command("EXISTS", key) == 0
    await store.put(entry("d.example", now))
    assert server.command("EXISTS", key) == 1
    await store.put(entry("d.example", now - 100.0, max_age=50))
    assert server.command("EXISTS", key) == 0


@async_test
async def test_reads_filter_by_store_clock(server, prefix, closing) -> None:
    """get() and load() never return an entry past expires_at + grace by the
    store's clock, even while Redis still holds the key."""
    clock = task.Clock()
    clock.advance(1000)
    store = closing(make_redis(clock, server.url, prefix=prefix)[0])
    store.grace_s = 10.0
    e = entry("c.example", clock.seconds(), max_age=100)
    await store.put(e)
    clock.advance(109)
    assert await store.get("c.example") == e
    assert await store.load() == [e]
    clock.advance(1)
    assert await store.get("c.example") is None
    assert await store.load() == []
    assert server.command("EXISTS", f"{prefix}policy:c.example") == 1


@async_test
async def test_load_scans_prefix_in_batches(server, reactor, closing) -> None:
    """load() walks SCAN + bounded GETRANGE reads (more keys than one batch), only under its own
    prefix (glob characters in it are escaped), skipping unreadable values."""
    prefix = "t[x]*?:"
    store = closing(make_redis(reactor, server.url, prefix=prefix)[0])
    other = closing(make_redis(reactor, server.url, prefix="tx:")[0])
    now = reactor.seconds()
    wanted = {entry(f"d{i}.example", now) for i in range(1234)}
    await _put_all(store, wanted)
    await other.put(entry("other.example", now))
    server.command("SET", f"{prefix}policy:junk.example", "not json")
    server.command("SET", f"{prefix}claim:x.example", "host/1")
    assert set(await store.load()) == wanted
    assert await store.get("junk.example") is None


async def _put_all(store: RedisStore, entries: set[CacheEntry]) -> None:
    for e in entries:
        await store.put(e)


@async_test
async def test_delete(server, reactor, prefix, closing) -> None:
    """delete() removes the domain's key; deleting a missing one is fine."""
    store = closing(make_redis(reactor, server.url, prefix=prefix)[0])
    await store.put(entry("del.example", reactor.seconds()))
    await store.delete("del.example")
    await store.delete("never.example")
    assert await store.get("del.example") is None
    assert server.command("EXISTS", f"{prefix}policy:del.example") == 0


@async_test
async def test_claim_and_release(server, reactor, prefix, closing) -> None:
    """One claim per domain: a second host's claim is False until the owner
    releases it; a release by a non-owner does nothing."""
    store = closing(make_redis(reactor, server.url, prefix=prefix)[0])
    one = RedisCoordinator(store.link, reactor, prefix=prefix, holder="host1")
    two = RedisCoordinator(store.link, reactor, prefix=prefix, holder="host2")
    key = f"{prefix}claim:x.example"
    assert await one.claim("x.example", 30.0) is True
    assert await two.claim("x.example", 30.0) is False
    assert server.command("GET", key) == "host1"
    pttl = server.command("PTTL", key)
    assert isinstance(pttl, int)
    assert 29_000 < pttl <= 30_000
    await two.release("x.example")
    assert server.command("GET", key) == "host1"
    await one.release("x.example")
    assert server.command("EXISTS", key) == 0
    assert await two.claim("x.example", 30.0) is True
    assert await one.claim("y.example", 30.0) is True  # domains are independent


@async_test
async def test_claim_lapses_and_late_release_spares_new_owner(
    server, reactor, prefix, closing
) -> None:
    """A claim ends by itself after its TTL; its old owner's release then
    leaves the new owner's claim alone (token compared inside Redis)."""
    store = closing(make_redis(reactor, server.url, prefix=prefix)[0])
    stale_clock = task.Clock()  # host1 believes its claim is still held
    one = RedisCoordinator(store.link, stale_clock, prefix=prefix, holder="host1")
    two = RedisCoordinator(store.link, reactor, prefix=prefix, holder="host2")
    assert await one.claim("z.example", 0.2) is True
    assert await two.claim("z.example", 0.2) is False
    await poll(reactor, lambda: two.claim("z.example", 30.0), 5.0)
    await one.release("z.example")  # runs the script: the token differs
    assert server.command("GET", f"{prefix}claim:z.example") == "host2"


@async_test
async def test_unix_socket_url_and_db(reactor, prefix, closing) -> None:
    """make_redis() takes unix:///path?db=N and redis://host:port/db."""
    srv = RedisServer(unix_socket=True)
    srv.start()
    try:
        unix = closing(
            make_redis(reactor, f"unix://{srv.socket}?db=2", prefix=prefix)[0]
        )
        await unix.put(entry("u.example", reactor.seconds()))
        assert srv.command("EXISTS", f"{prefix}policy:u.example", db=2) == 1
        tcp = closing(
            make_redis(reactor, f"redis://127.0.0.1:{srv.port}/2", prefix=prefix)[0]
        )
        assert await tcp.get("u.example") == await unix.get("u.example")
        assert srv.command("EXISTS", f"{prefix}policy:u.example") == 0  # not db 0
    finally:
        srv.close()
    with pytest.raises(ValueError, match="expected redis:"):
        make_redis(reactor, "http://127.0.0.1/")


@async_test
async def test_outage_fails_fast_then_replays(reactor, prefix, closing) -> None:
    """Redis stopped: writes never raise and wait (latest per domain); reads
    fail with CacheUnavailableError within the op timeout; one warning.
    Redis back on the same port: the waiting writes reach it; one info line."""
    srv = RedisServer()
    srv.start()
    try:
        store, coordinator = make_redis(
            reactor, srv.url, prefix=prefix, timeout_s=1.0, retry_s=0.1
        )
        closing(store)
        now = reactor.seconds()
        await store.put(entry("before.example", now))
        with capturedLogs() as logged:
            srv.stop()
            start = time.monotonic()
            for i in range(10):
                await store.put(entry(f"o{i}.example", now))
            await store.put(entry("o0.example", now + 1))  # the latest wins
            await store.delete("before.example")
            puts_s = time.monotonic() - start
            start = time.monotonic()
            with pytest.raises(CacheUnavailableError):
                await store.get("absent.example")
            get_s = time.monotonic() - start
            with pytest.raises(CacheUnavailableError):
                await store.load()
            assert await coordinator.claim("o1.example", 5.0) is True  # fail open
            assert store.pending == 11
            assert puts_s < 1.0
            assert get_s < 1.0
            assert len(events(logged, LogLevel.warn)) == 1
            await spin(reactor, 0.5)  # probes fail quietly meanwhile
            assert len(events(logged, LogLevel.warn)) == 1
            assert events(logged, LogLevel.info) == []

            srv.start()
            keys = [f"{prefix}policy:o{i}.example" for i in range(10)]
            await poll(reactor, lambda: srv.command("EXISTS", *keys) == 10, 10.0)
            await poll(reactor, lambda: store.pending == 0, 5.0)
            assert len(events(logged, LogLevel.info)) == 1
            assert len(events(logged, LogLevel.warn)) == 1
        stored = srv.command("GET", keys[0])
        assert isinstance(stored, str)
        assert CacheEntry.from_bytes(stored.encode()) == entry("o0.example", now + 1)
        assert srv.command("EXISTS", f"{prefix}policy:before.example") == 0
        assert await store.get("o5.example") == entry("o5.example", now)
        assert await coordinator.claim("o1.example", 5.0) is True
        assert await coordinator.claim("o1.example", 5.0) is False
    finally:
        srv.close()


@async_test
async def test_hung_redis_times_out(reactor, prefix, closing) -> None:
    """A Redis that accepts but never answers (SIGSTOP): a read fails after
    the op timeout, later reads fail at once, writes wait; after SIGCONT the
    link comes back and the writes land."""
    srv = RedisServer()
    srv.start()
    try:
        store = closing(
            make_redis(reactor, srv.url, prefix=prefix, timeout_s=0.3, retry_s=0.1)[0]
        )
        assert await store.get("warm.example") is None
        srv.pause()
        with capturedLogs() as logged:
            start = time.monotonic()
            with pytest.raises(CacheUnavailableError):
                await store.get("h.example")
            first_s = time.monotonic() - start
            start = time.monotonic()
            with pytest.raises(CacheUnavailableError):
                await store.get("h.example")
            second_s = time.monotonic() - start
            await store.put(entry("h.example", reactor.seconds()))
            assert 0.25 < first_s < 0.8
            assert second_s < 0.05
            assert store.pending == 1
            await spin(reactor, 0.5)
            srv.resume()
            await poll(reactor, lambda: store.pending == 0, 10.0)
            assert len(events(logged, LogLevel.warn)) == 1
            assert len(events(logged, LogLevel.info)) == 1
        assert srv.command("EXISTS", f"{prefix}policy:h.example") == 1
    finally:
        srv.resume()
        srv.close()


@async_test
async def test_busy_reactor_is_not_an_outage(server, reactor, prefix, closing) -> None:
    """Calls made just before the reactor is blocked for longer than the op
    timeout (a burst, a long task) still complete: the timeout counts from
    the reactor's next free turn.  Writes go out at most 64 at a time."""
    store = closing(make_redis(reactor, server.url, prefix=prefix, timeout_s=0.2)[0])
    assert await store.get("warm.example") is None
    now = reactor.seconds()
    with capturedLogs() as logged:
        puts = [store.put(entry(f"b{i}.example", now)) for i in range(300)]
        get = store.get("b0.example")
        time.sleep(0.5)  # noqa: TID251 - blocking the reactor is the point
        await gatherResults(puts)
        assert await get in (None, entry("b0.example", now))
    assert events(logged, LogLevel.warn) == []
    assert store.pending == 0
    keys = [f"{prefix}policy:b{i}.example" for i in range(300)]
    assert server.command("EXISTS", *keys) == 300


@async_test
async def test_close_sends_queued_writes(server, reactor, prefix) -> None:
    """Writes nobody waits for (write-behind) still reach Redis when the
    store is closed right after them; then every call is unavailable."""
    store = make_redis(reactor, server.url, prefix=prefix)[0]
    now = reactor.seconds()
    for i in range(200):
        store.put(entry(f"q{i}.example", now))
    await store.close()
    keys = [f"{prefix}policy:q{i}.example" for i in range(200)]
    assert server.command("EXISTS", *keys) == 200
    with pytest.raises(CacheUnavailableError):
        await store.get("q1.example")


@async_test
async def test_pending_writes_are_bounded(reactor, prefix, closing) -> None:
    """During an outage at most max_pending writes wait; the oldest go first
    (the local store still has them)."""
    store = closing(
        RedisStore(
            lambda: Deferred(),  # never connects
            task.Clock(),
            prefix=prefix,
            max_pending=3,
        )
    )
    clock = store.clock
    assert isinstance(clock, task.Clock)
    d = store.get("x.example")
    clock.advance(0)  # the reactor's next turn starts the op timeout
    clock.advance(1.0)  # which passes: the link goes down
    with pytest.raises(CacheUnavailableError):
        await d
    for i in range(5):
        await store.put(entry(f"p{i}.example", 0.0))
    assert store.pending == 3
    assert store.dropped == 2
    assert await store.get("p4.example") == entry("p4.example", 0.0)


@async_test
async def test_huge_value_is_refused_after_a_bounded_read(
    server, reactor, prefix, closing
) -> None:
    """A 4 MiB value under a policy key (any Redis writer can put one) is
    read through GETRANGE up to READ_LIMIT bytes and refused, at a lookup
    and at load, while the good entries load (issue 9, Build 1 and 2)."""
    store = closing(make_redis(reactor, server.url, prefix=prefix)[0])
    good = entry("good.example", reactor.seconds())
    await store.put(good)
    server.command("SET", f"{prefix}policy:huge.example", "[" * (4 << 20))
    assert await store.get("huge.example") is None
    assert await store.load() == [good]
    assert store.link.available
