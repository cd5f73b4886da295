"""A crowd of hostile policy hosts at once (issue 9).

One hostile host costs one fetch; forty cost at most the fetches in flight
(``[fetch] max_in_flight``, 32 per lane).  Before the response head was
bounded, that was the dangerous case: 1 kB header lines streamed into every
fetch in flight until its timeout, gigabytes in all.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .hostile import (
    BUDGET_S,
    FETCH_TIMEOUT_S,
    SLACK_S,
    TARPIT_IP,
    RssWatch,
    assert_no_crash,
    secure,
    start_hostile_daemon,
    tarpit,
    timed_ask,
)
from .world import HTTPS_IPS, Proc, World

PORT = 8499
CLIENTS = Path(__file__).resolve().parent / "clients"
KINDS = ("flood", "drip", "stall", "tarpit")
PER_KIND = 10
RSS_BOUND_MIB = 64.0


@pytest.fixture(scope="module")
def daemon(world: World) -> Iterator[Proc]:
    with tarpit(world):
        proc = start_hostile_daemon(world, "hostile-crowd", PORT)
        yield proc
        proc.stop()


def crowd(world: World) -> list[str]:
    """PER_KIND new domains of each kind, published in one DNS reload."""
    domains = {
        f"hostile-crowd-{kind}-{n}.test": kind
        for kind in KINDS
        for n in range(PER_KIND)
    }
    with world.dns.batch():
        for domain, kind in domains.items():
            ip = TARPIT_IP if kind == "tarpit" else HTTPS_IPS[0]
            policy = world.publish(domain, https_ip=ip)
            host = f"mta-sts.{domain}"
            if kind == "flood":
                world.https.update_host(host, header_flood=2 << 30)
            elif kind == "drip":
                world.https.update_host(host, header_drip=1)
            elif kind == "stall":
                world.https.set_host(host, policy, handshake_delay=60.0)
    return list(domains)


def test_forty_hostile_hosts_at_once(world: World, daemon: Proc) -> None:
    """Forty new domains whose policy hosts flood, drip, stall the TLS
    handshake or tarpit the connection, all asked at once: every one is
    answered NOTFOUND within the budget (B16, G14), RSS grows < 64 MiB (B12,
    F4), a cached policy stays `secure` meanwhile (B17) and a good new
    domain is `secure` once the crowd is gone."""
    cached, later = "hostile-crowd-cached.test", "hostile-crowd-later.test"
    world.publish(cached)
    world.publish(later)
    assert timed_ask(world, cached, PORT)[:2] == (0, secure(cached))
    domains = crowd(world)
    since = len(daemon.output())
    with RssWatch(daemon.pid) as rss:
        proc = world.run(
            "mta",
            [
                sys.executable,
                str(CLIENTS / "socketmap_parallel.py"),
                str(PORT),
                *domains,
            ],
            timeout=120,
        )
        replies: dict[str, tuple[str, float]] = {
            domain: (reply, seconds)
            for domain, (reply, seconds) in json.loads(proc.stdout).items()
        }
        rc, answer, took = timed_ask(world, cached, PORT)
        assert (rc, answer) == (0, secure(cached))
        assert took < BUDGET_S + SLACK_S
        # until the last hostile fetch has timed out
        deadline = time.monotonic() + FETCH_TIMEOUT_S + SLACK_S
        while time.monotonic() < deadline:
            assert timed_ask(world, cached, PORT)[:2] == (0, secure(cached))
    slow = {d: r for d, r in replies.items() if r[1] >= BUDGET_S + SLACK_S}
    assert not slow, slow
    assert {r[0] for r in replies.values()} == {"NOTFOUND "}, replies
    assert rss.growth_mib < RSS_BOUND_MIB, (
        f"RSS {rss.baseline:.1f} -> {rss.peak:.1f} MiB for {len(domains)} hosts"
    )
    assert timed_ask(world, later, PORT)[:2] == (0, secure(later))
    assert_no_crash(daemon, since)
