"""Fleets against their own Redis (issue 9).

A member whose clock runs ahead writes entries with times hours in the
future, no attacker needed.  Taken as they are, they pin its view of a
domain on every other member until then: a new policy id would go unseen
for hours (D11, E3, E12).  And with a fleet key, a Redis writer without it
cannot decide any member's answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from .daemonctl import socketmap, wait_for
from .hostile import assert_no_crash, secure, start_hostile_daemon
from .hostile_fleet import Member, no_policy, now, start_redis, stored_entry, utc
from .world import MX_GOOD, World

REDIS_PORT, SEALED_REDIS_PORT = 6393, 6394
PORT, SKEWED_PORT = 8495, 8496
SEALED_PORTS = (8497, 8498)
SKEW_S = 6 * 3600.0


@pytest.fixture(scope="module")
def member(world: World) -> Iterator[Member]:
    redis = start_redis(world, REDIS_PORT)
    member = Member(world, "hostile-on-time", PORT, REDIS_PORT)
    yield member
    member.proc.stop()
    redis.stop()


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
        assert member.ask(domain, SKEWED_PORT) == (0, secure(domain))
        stored = member.stored(domain)
        assert stored["checked_at"] > now() + SKEW_S - 600, stored
    finally:
        skewed.stop()
    since = len(member.proc.output())
    assert member.ask(domain) == (0, secure(domain))
    world.publish(domain, mx={f"mx2.{domain}": MX_GOOD}, policy_id="2")
    table = socketmap(PORT)
    assert wait_for(world, domain, f"mx2.{domain}", table, timeout=10) == secure(
        domain, f"mx2.{domain}"
    )
    [listed] = [e for e in member.cache_list() if e["domain"] == domain]
    assert utc(listed["checked_at"]) < now() + 3600, listed
    assert_no_crash(member.proc, since)


@pytest.fixture(scope="module")
def sealed(world: World) -> Iterator[tuple[Member, Member]]:
    """Two members sharing a Redis, their values sealed with a fleet key."""
    key_file = world.work / "fleet.key"
    key_file.write_text(secrets.token_hex(32) + "\n")
    key_file.chmod(0o600)
    redis = start_redis(world, SEALED_REDIS_PORT)
    members = tuple(
        Member(world, f"hostile-sealed-{n}", port, SEALED_REDIS_PORT, key_file)
        for n, port in enumerate(SEALED_PORTS)
    )
    yield members[0], members[1]
    for member in members:
        member.proc.stop()
    redis.stop()


def test_sealed_fleet_refuses_forgeries(
    world: World, sealed: tuple[Member, Member]
) -> None:
    """With [redis] fleet_key_file, a member adopts only values sealed with
    the fleet's key: a well-formed, current enforce entry from a Redis writer
    without the key, or one with a made-up MAC, never makes a domain without
    a policy `secure` on any member (B16, E13), while what the members seal
    is shared: one fetch for the fleet (B21)."""
    first, second = sealed
    shared = "hostile-sealed.test"
    world.publish(shared)
    assert first.ask(shared) == (0, secure(shared))
    assert first.stored_value(shared).startswith("mac1:")
    assert second.ask(shared) == (0, secure(shared))
    assert len(world.https.requests(f"mta-sts.{shared}")) == 1

    forged, faked = "hostile-sealed-forged.test", "hostile-sealed-faked.test"
    with world.dns.batch():
        no_policy(world, forged)
        no_policy(world, faked)
    since = [len(m.proc.output()) for m in sealed]
    t = now()
    first.redis(
        "SET", f"mtasts:policy:{forged}", value=stored_entry(forged, fetched_at=t)
    )
    made_up = "mac1:" + "0" * 64 + ":" + stored_entry(faked, fetched_at=t)
    first.redis("SET", f"mtasts:policy:{faked}", value=made_up)
    for member in sealed:
        for domain in (forged, faked):
            assert member.ask(domain) == (1, ""), (member.name, domain)
    for member, offset in zip(sealed, since, strict=True):
        assert_no_crash(member.proc, offset)
