"""Two daemons share one Redis: one fetch per fleet, and Redis faults never
fail a lookup (issue 4; spec B21, E1)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemonctl import ask, burst, socketmap, start_daemon
from .world import HTTPS_IPS, Proc, World

REDIS_PORT = 6390
PORTS = (8481, 8482)
CLIENTS = Path(__file__).resolve().parent / "clients"
FLEET = f"""
[redis]
url = "redis://127.0.0.1:{REDIS_PORT}/0"
timeout = 0.5
"""


def start_redis(world: World) -> Proc:
    """redis-server on the mta namespace's loopback, where the daemons run."""
    directory = world.work / "redis"
    directory.mkdir(exist_ok=True)
    proc = world.spawn(
        "mta",
        [
            "redis-server",
            *("--bind", "127.0.0.1", "--port", str(REDIS_PORT)),
            *("--save", "", "--appendonly", "no", "--dir", str(directory)),
        ],
        name="redis",
    )
    world.wait_tcp("mta", "127.0.0.1", REDIS_PORT)
    return proc


def redis_get(world: World, key: str) -> str:
    proc = world.run("mta", ["redis-cli", "-p", str(REDIS_PORT), "--raw", "GET", key])
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def fleet(world: World) -> Iterator[list[Proc]]:
    redis = start_redis(world)
    daemons = [
        start_daemon(world, f"fleet{n}", port=port, extra=FLEET)
        for n, port in enumerate(PORTS)
    ]
    yield [redis, *daemons]
    for proc in daemons:
        proc.stop()
    redis.stop()


def test_one_fetch_per_fleet(world: World, fleet: list[Proc]) -> None:
    """50 simultaneous lookups of a new domain spread over two daemons: one HTTPS fetch, one answer (B21)."""
    domain = "fleet-new.test"
    world.publish(domain, https_ip=HTTPS_IPS[2])
    world.https.update_host(f"mta-sts.{domain}", delay=0.5)
    replies = burst(world, ",".join(map(str, PORTS)), 50, f"postfix {domain}")
    assert replies == [f"OK secure match=mx1.{domain} servername=hostname"] * 50
    assert len(world.https.requests(f"mta-sts.{domain}")) == 1
    assert json.loads(redis_get(world, f"mtasts:policy:{domain}"))["id"] == "1"


def test_redis_outage_under_load(world: World, fleet: list[Proc]) -> None:
    """Redis killed and restarted under load: zero failed lookups, and what was
    written meanwhile reaches Redis when it returns."""
    redis = fleet[0]
    cached = ["fleet-a.test", "fleet-b.test"]
    for domain in cached:
        world.publish(domain)
        for port in PORTS:
            assert ask(world, domain, socketmap(port))[0] == 0
    load = world.spawn(
        "mta",
        [
            sys.executable,
            str(CLIENTS / "socketmap_load.py"),
            ",".join(map(str, PORTS)),
            "6",
            *cached,
        ],
        name="load",
    )
    redis.stop()
    late = "fleet-during-outage.test"
    world.publish(late)
    started = time.monotonic()
    assert ask(world, late, socketmap(PORTS[0])) == (
        0,
        f"secure match=mx1.{late} servername=hostname",
    )
    assert time.monotonic() - started < 3
    fleet[0] = start_redis(world)
    deadline = time.monotonic() + 20
    while not redis_get(world, f"mtasts:policy:{late}"):
        assert time.monotonic() < deadline, (
            "the entry written during the outage never reached Redis"
        )
        time.sleep(0.2)  # noqa: TID251 - polling another process with a deadline
    load.popen.wait(30)
    result = json.loads(load.output().strip().splitlines()[-1])
    assert result["total"] > 100
    assert result["failed"] == []
