"""A hostile fleet store (issue 9): Redis holding garbage.

Whoever can write to Redis writes entries no daemon would: JSON nested
100,000 deep, ``Infinity``/``NaN``/400-digit timestamps, ``mode: none`` from
ten years ahead, parsed fields that disagree with the policy lines, an expiry
unrelated to max_age, a value of 128 MiB.  A stored entry is untrusted input
(spec E13): the daemon keeps running, also through a restart with that
garbage in Redis, answers from the policy it knows (B17, E7) or from DNS and
HTTPS, never answers `secure` for a domain that has no policy (B16), and
does not buffer what it will refuse (F4).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .daemonctl import socketmap, wait_for
from .hostile import BUDGET_S, RECHECK_S, RssWatch, assert_no_crash, secure
from .hostile_fleet import (
    DEEP,
    HUGE,
    INF,
    NAN,
    YEAR_S,
    Member,
    no_policy,
    now,
    start_redis,
    stored_entry,
    utc,
)
from .world import MX_GOOD, Proc, World

REDIS_PORT = 6391
PORT = 8492
BIG = 128 << 20  # bytes of one Redis value
RSS_BOUND_MIB = 32.0


def key(domain: str) -> str:
    return f"mtasts:policy:{domain}"


@pytest.fixture(scope="module")
def redis(world: World) -> Iterator[Proc]:
    proc = start_redis(world, REDIS_PORT)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def fleet_member(world: World, redis: Proc) -> Iterator[Member]:
    member = Member(world, "hostile-fleet", PORT, REDIS_PORT)
    yield member
    member.proc.stop()


@pytest.fixture
def member(fleet_member: Member) -> Member:
    return fleet_member.running()


def test_garbage_for_a_cached_domain(world: World, member: Member) -> None:
    """Garbage stored over a cached enforce policy is read and refused with a
    warning: the answer stays `secure` for the policy known (B17, E7, E13),
    and the TXT record is still asked, so a new policy id is seen (D11)."""
    domain = "hostile-store-cached.test"
    world.publish(domain)
    assert member.ask(domain) == (0, secure(domain))
    member.stored(domain)
    since = len(member.proc.output())
    t = now()
    lines = ["version: STSv1", "mode: enforce", f"mx: mx1.{domain}", "max_age: 86400"]
    garbage = {
        "nested 100,000 deep": DEEP,
        "mode none, ten years ahead": stored_entry(
            domain, mode="none", mx=(), fetched_at=t + 10 * YEAR_S
        ),
        "mode none, Infinity": stored_entry(domain, mode="none", mx=(), fetched_at=INF),
        "mode none, NaN": stored_entry(domain, mode="none", mx=(), fetched_at=NAN),
        "mode none, 400 digits": stored_entry(
            domain, mode="none", mx=(), fetched_at=HUGE
        ),
        "mx fields unlike the lines": stored_entry(domain, lines=lines, fetched_at=t),
    }
    for label, value in garbage.items():
        before = len(member.proc.output())
        member.redis("SET", key(domain), value=value)
        deadline = time.monotonic() + RECHECK_S + BUDGET_S + 5
        # A refresh reads the store first, then writes its own result over
        # the garbage: until then, every answer is the cached policy.
        while member.redis("GET", key(domain)) == value:
            assert member.ask(domain) == (0, secure(domain)), label
            assert time.monotonic() < deadline, (
                f"{label}: no refresh wrote over it\n{member.log_tail()}"
            )
        for _ in range(2):
            assert member.ask(domain) == (0, secure(domain)), label
        # refused with a word, never silently (issue 9)
        said = member.proc.output()[before:].splitlines()
        assert [x for x in said if x.startswith("<4>") and key(domain) in x], label
    assert_no_crash(member.proc, since)

    world.publish(domain, mx={f"mx2.{domain}": MX_GOOD}, policy_id="2")
    table = socketmap(PORT)
    assert wait_for(world, domain, f"mx2.{domain}", table, timeout=10) == secure(
        domain, f"mx2.{domain}"
    )
    [listed] = [e for e in member.cache_list() if e["domain"] == domain]
    assert listed["mx"] == [f"mx2.{domain}"]


def test_garbage_never_makes_secure(world: World, member: Member) -> None:
    """No stored entry makes a domain without a policy answer `secure`
    unless it is a valid, current policy: deep nesting, non-finite or huge
    timestamps, entries from the future, fields unlike the lines and an
    expiry unrelated to max_age are refused, each with a warning (B16, C17,
    E1, E13)."""
    t = now()
    cases = {
        "deep": lambda d: DEEP,
        "infinity": lambda d: stored_entry(d, fetched_at=INF),
        "nan": lambda d: stored_entry(d, fetched_at=NAN),
        "digits": lambda d: stored_entry(d, fetched_at=HUGE),
        "future": lambda d: stored_entry(d, fetched_at=t + 10 * YEAR_S),
        "lines": lambda d: stored_entry(
            d, lines=["version: STSv1", "mode: none", "max_age: 86400"], fetched_at=t
        ),
        "expiry": lambda d: stored_entry(
            d, fetched_at=t - 2 * 86400, checked_at=t, expires_at=t + 10 * YEAR_S
        ),
    }
    domains = {f"hostile-store-{name}.test": make for name, make in cases.items()}
    with world.dns.batch():
        for domain in domains:
            no_policy(world, domain)
    for domain, make in domains.items():
        member.redis("SET", key(domain), value=make(domain))
    since = len(member.proc.output())
    deadline = time.monotonic() + 1.5 * RECHECK_S
    while True:  # past the negative TTL: asked again, stores read again
        for domain in domains:
            assert member.ask(domain) == (1, ""), domain
        if time.monotonic() > deadline:
            break
    said = [x for x in member.proc.output()[since:].splitlines() if x.startswith("<4>")]
    for domain in domains:  # each refusal said, none silent (issue 9)
        assert [x for x in said if key(domain) in x], domain
    assert_no_crash(member.proc, since)


def test_restart_with_garbage_in_redis(world: World, member: Member) -> None:
    """The daemon starts with garbage in Redis, keeps its cached policy, and
    nothing from Redis reaches its own store: after FLUSHALL and another
    restart, `cache list` works and shows only finite, present times (E1,
    E13)."""
    cached, bare = "hostile-restart-cached.test", "hostile-restart-bare.test"
    world.publish(cached)
    no_policy(world, bare)
    assert member.ask(cached) == (0, secure(cached))
    member.stored(cached)
    t = now()
    for name, value in {
        key(cached): stored_entry(cached, mode="none", mx=(), fetched_at=INF),
        key(bare): stored_entry(bare, fetched_at=t + 10 * YEAR_S),
        key("hostile-restart-deep.test"): DEEP,
        key("hostile-restart-huge.test"): stored_entry(
            "hostile-restart-huge.test", fetched_at=HUGE
        ),
    }.items():
        member.redis("SET", name, value=value)
    for flush in (False, True):
        if flush:
            member.redis("FLUSHALL")
        member.restart()
        assert member.ask(cached) == (0, secure(cached))
        assert member.ask(bare) == (1, "")
        for entry in member.cache_list():
            for field in ("fetched_at", "checked_at", "expires_at"):
                assert entry[field].startswith("20"), entry  # a real date
            assert utc(entry["checked_at"]) < now() + 3600, entry
        assert_no_crash(member.proc, 0)


def test_oversized_value_is_not_buffered(world: World, member: Member) -> None:
    """A 128 MiB value stored over a cached policy is refused without being
    read whole: RSS grows < 32 MiB meanwhile (F4, E13; issue 9 build 1:
    every byte from outside is bounded before it is buffered), and the
    answer stays `secure` (B17)."""
    domain = "hostile-store-big.test"
    world.publish(domain)
    assert member.ask(domain) == (0, secure(domain))
    member.stored(domain)
    since = len(member.proc.output())
    with RssWatch(member.proc.pid) as rss:
        member.redis("SETRANGE", key(domain), str(BIG - 1), "x")
        deadline = time.monotonic() + RECHECK_S + BUDGET_S + 10
        while member.redis("STRLEN", key(domain)) == str(BIG):
            assert member.ask(domain) == (0, secure(domain))
            assert time.monotonic() < deadline, member.log_tail()
        assert member.ask(domain) == (0, secure(domain))
    assert rss.growth_mib < RSS_BOUND_MIB, (
        f"RSS {rss.baseline:.1f} -> {rss.peak:.1f} MiB reading a {BIG >> 20} MiB value"
    )
    assert_no_crash(member.proc, since)
