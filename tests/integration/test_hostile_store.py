"""A hostile fleet store (issue 9): Redis holding garbage, and a fleet member
whose clock runs ahead.

Whoever can write to Redis writes entries no daemon would: JSON nested
100,000 deep, ``Infinity``/``NaN``/400-digit timestamps, ``mode: none`` from
ten years ahead, parsed fields that disagree with the policy lines, an expiry
unrelated to max_age.  A stored entry is untrusted input (spec E13): the
daemon keeps running, also through a restart with that garbage in Redis,
answers from the policy it knows (B17, E7) or from DNS and HTTPS, and never
answers `secure` for a domain that has no policy (B16).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from .daemonctl import socketmap, wait_for
from .hostile import (
    BUDGET_S,
    INF,
    NAN,
    RECHECK_S,
    SLACK_S,
    assert_no_crash,
    redis_cli,
    secure,
    start_hostile_daemon,
    start_redis,
    stored_entry,
    timed_ask,
)
from .world import MX_GOOD, Proc, World

REDIS_PORT = 6391
PORT = 8492
SKEWED_PORT = 8493
YEAR_S = 365 * 86400.0
SKEW_S = 6 * 3600.0
LIST = ("list", "--json")
DEEP = "[" * 100_000  # RecursionError in json.loads
HUGE = 10**400  # OverflowError in float()


def now() -> float:
    return time.time()  # noqa: TID251 - the daemon's wall clock, read the same way


def key(domain: str) -> str:
    return f"mtasts:policy:{domain}"


@dataclass
class Member:
    """The fleet daemon under test; restarted in place."""

    proc: Proc

    def restart(self, world: World) -> None:
        self.proc.stop()
        self.proc = start_hostile_daemon(
            world, "hostile-fleet", PORT, redis_port=REDIS_PORT
        )

    def log_tail(self) -> str:
        return self.proc.output()[-3000:]


@pytest.fixture(scope="module")
def redis(world: World) -> Iterator[Proc]:
    proc = start_redis(world, REDIS_PORT)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def fleet_member(world: World, redis: Proc) -> Iterator[Member]:
    member = Member(
        start_hostile_daemon(world, "hostile-fleet", PORT, redis_port=REDIS_PORT)
    )
    yield member
    member.proc.stop()


@pytest.fixture
def member(world: World, fleet_member: Member) -> Member:
    """The fleet daemon, running: one that an earlier test left dead is
    started again on an empty Redis, so each test stands on its own."""
    if not fleet_member.proc.alive():
        redis_cli(world, REDIS_PORT, "FLUSHALL")
        fleet_member.restart(world)
    return fleet_member


def ask(world: World, domain: str, port: int = PORT) -> tuple[int, str]:
    rc, answer, took = timed_ask(world, domain, port)
    assert took < BUDGET_S + SLACK_S, (domain, answer, took)
    return rc, answer


def poll_stored(world: World, domain: str, timeout: float = 10.0) -> dict[str, Any]:
    """The entry the daemon wrote behind for ``domain``, once it is there."""
    deadline = time.monotonic() + timeout
    while not (raw := redis_cli(world, REDIS_PORT, "GET", key(domain))):
        assert time.monotonic() < deadline, f"{domain} never reached Redis"
        time.sleep(0.05)  # noqa: TID251 - polling another process with a deadline
    stored: dict[str, Any] = json.loads(raw)
    return stored


def cache_list(world: World) -> list[dict[str, Any]]:
    """`postfix-mtasts cache list --json` against the member: it must work."""
    control = world.work / "hostile-fleet" / "control.sock"
    proc = world.run(
        "mta",
        [
            sys.executable,
            "-m",
            "postfix_mtasts",
            "cache",
            "--socket",
            str(control),
            *LIST,
        ],
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries: list[dict[str, Any]] = json.loads(proc.stdout)
    return entries


def no_policy(world: World, domain: str) -> None:
    """A domain with an MX host but no MTA-STS record or policy host."""
    world.dns.add(f"{domain}. IN MX 10 mx1.{domain}.", f"mx1.{domain}. IN A {MX_GOOD}")


def test_garbage_for_a_cached_domain(world: World, member: Member) -> None:
    """Garbage stored over a cached enforce policy is read and refused: the
    answer stays `secure` for the policy known (B17, E7, E13), and the TXT
    record is still asked, so a new policy id is seen (D11)."""
    domain = "hostile-store-cached.test"
    world.publish(domain)
    assert ask(world, domain) == (0, secure(domain))
    poll_stored(world, domain)
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
        redis_cli(world, REDIS_PORT, "SET", key(domain), value=value)
        deadline = time.monotonic() + RECHECK_S + BUDGET_S + 5
        # A refresh reads the store first, then writes its own result over
        # the garbage: until then, every answer is the cached policy.
        while redis_cli(world, REDIS_PORT, "GET", key(domain)) == value:
            assert ask(world, domain) == (0, secure(domain)), label
            assert time.monotonic() < deadline, (
                f"{label}: no refresh wrote over it\n{member.log_tail()}"
            )
        for _ in range(2):
            assert ask(world, domain) == (0, secure(domain)), label
    assert_no_crash(member.proc, since)

    world.publish(domain, mx={f"mx2.{domain}": MX_GOOD}, policy_id="2")
    table = socketmap(PORT)
    assert wait_for(world, domain, f"mx2.{domain}", table, timeout=10) == secure(
        domain, f"mx2.{domain}"
    )
    [listed] = [e for e in cache_list(world) if e["domain"] == domain]
    assert listed["mx"] == [f"mx2.{domain}"]


def test_garbage_never_makes_secure(world: World, member: Member) -> None:
    """No stored entry makes a domain without a policy answer `secure`
    unless it is a valid, current policy: deep nesting, non-finite or huge
    timestamps, entries from the future, fields unlike the lines and an
    expiry unrelated to max_age are refused (B16, C17, E1, E13)."""
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
        redis_cli(world, REDIS_PORT, "SET", key(domain), value=make(domain))
    since = len(member.proc.output())
    deadline = time.monotonic() + 1.5 * RECHECK_S
    while True:  # past the negative TTL: asked again, stores read again
        for domain in domains:
            assert ask(world, domain) == (1, ""), domain
        if time.monotonic() > deadline:
            break
    assert_no_crash(member.proc, since)


def test_restart_with_garbage_in_redis(world: World, member: Member) -> None:
    """The daemon starts with garbage in Redis, keeps its cached policy, and
    nothing from Redis reaches its own store: after FLUSHALL and another
    restart, `cache list` works and shows only finite, present times (E1,
    E13)."""
    cached, bare = "hostile-restart-cached.test", "hostile-restart-bare.test"
    world.publish(cached)
    no_policy(world, bare)
    assert ask(world, cached) == (0, secure(cached))
    poll_stored(world, cached)
    t = now()
    for name, value in {
        key(cached): stored_entry(cached, mode="none", mx=(), fetched_at=INF),
        key(bare): stored_entry(bare, fetched_at=t + 10 * YEAR_S),
        key("hostile-restart-deep.test"): DEEP,
        key("hostile-restart-huge.test"): stored_entry(
            "hostile-restart-huge.test", fetched_at=HUGE
        ),
    }.items():
        redis_cli(world, REDIS_PORT, "SET", name, value=value)
    for flush in (False, True):
        if flush:
            redis_cli(world, REDIS_PORT, "FLUSHALL")
        member.restart(world)
        assert ask(world, cached) == (0, secure(cached))
        assert ask(world, bare) == (1, "")
        for entry in cache_list(world):
            for field in ("fetched_at", "checked_at", "expires_at"):
                assert entry[field].startswith("20"), entry  # a real date
            assert _utc(entry["checked_at"]) < now() + 3600, entry
        assert_no_crash(member.proc, 0)


def test_skewed_fleet_member_cannot_pin(world: World, member: Member) -> None:
    """A fleet member whose clock runs 6 h ahead shares a policy with its
    times 6 h in the future; the others do not take it as checked until
    then: a new policy id is seen within seconds (D11, E3, E12)."""
    domain = "hostile-skew.test"
    world.publish(domain, policy_id="1")
    skewed = start_hostile_daemon(
        world, "hostile-skewed", SKEWED_PORT, redis_port=REDIS_PORT, skew_s=SKEW_S
    )
    try:
        assert ask(world, domain, SKEWED_PORT) == (0, secure(domain))
        stored = poll_stored(world, domain)
        assert stored["checked_at"] > now() + SKEW_S - 600, stored
    finally:
        skewed.stop()
    since = len(member.proc.output())
    assert ask(world, domain) == (0, secure(domain))
    world.publish(domain, mx={f"mx2.{domain}": MX_GOOD}, policy_id="2")
    table = socketmap(PORT)
    assert wait_for(world, domain, f"mx2.{domain}", table, timeout=10) == secure(
        domain, f"mx2.{domain}"
    )
    [listed] = [e for e in cache_list(world) if e["domain"] == domain]
    assert _utc(listed["checked_at"]) < now() + 3600, listed
    assert_no_crash(member.proc, since)


def _utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
