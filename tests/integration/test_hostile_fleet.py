"""A fleet member whose clock runs ahead (issue 9).

Its entries carry times hours in the future, no attacker needed.  Taken as
they are, they pin its view of a domain on every other member until then:
a new policy id would go unseen for hours (D11, E3, E12).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .daemonctl import socketmap, wait_for
from .hostile import assert_no_crash, secure, start_hostile_daemon
from .hostile_fleet import Member, now, start_redis, utc
from .world import MX_GOOD, World

REDIS_PORT = 6393
PORT, SKEWED_PORT = 8495, 8496
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
