"""A hostile world (issue 9): policy hosts, DNS and Redis that attack the daemon.

Each attack hits a domain the daemon has cached (its TXT id changes, so the
daemon fetches again, from the hostile host) and a domain it has never seen,
while Postfix goes on asking for those and for other domains.  Whatever the
attack: no `secure` without a valid policy (B16, C17), the cached policy
stays (B17, E7, E8), memory stays bounded (B12, B21, F4), every lookup is
answered within the budget (G14), the hostile connection is dropped by the
fetch timeout, and the daemon says so once per decision.  A Redis
that answers garbage costs the daemon its fleet store, nothing more.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .hostile import (
    BUDGET_S,
    FETCH_TIMEOUT_S,
    RECHECK_S,
    SLACK_S,
    TARPIT_IP,
    Lookups,
    RssWatch,
    assert_no_crash,
    secure,
    start_hostile_daemon,
    tarpit,
    timed_ask,
    warn_lines,
)
from .hosts import read_jsonl
from .world import HTTPS_IPS, MTA_IP, MX_GOOD, SERVERS, Proc, World, policy_text

PORT = 8491
IMPOSTOR_PORT, IMPOSTOR_CLIENT_PORT = 6392, 8494
IMPOSTOR_ARGS = ("127.0.0.1", str(IMPOSTOR_PORT))
IMPOSTOR_KINDS = 8  # kinds of wrong answers in servers/redis_impostor.py
CONTROL = "hostile-control.test"
# Far below what an unbounded reader pays: before the response head was
# bounded, the header flood took this daemon from 56 to 240 MiB in 4 s.
RSS_BOUND_MIB = 32.0
FLOOD_BYTES = 2 << 30
BOMB_BYTES = 48 << 20  # 48 MiB of NULs gzip to ~48 kB: under the 64 KiB cap
FLOOD_SENT_MAX = 16 << 20  # a flood refused early: socket buffers at most
MAX_AGE_LINE = b"max_age: 86400\r\n"  # policy_text()'s last line


@dataclass(frozen=True)
class Attack:
    name: str
    response: Callable[[bytes], dict[str, Any]] | None = None  # https_server keys
    handshake_delay: float = 0.0  # the TLS handshake stalls after the ClientHello
    tarpit: bool = False  # the policy host moves to TARPIT_IP
    silent: str = ""  # this DNS name (+ domain) never answers
    stream: bool = False  # https_server logs how long the stream lasted


ATTACKS = [
    Attack("header-flood", lambda _: {"header_flood": FLOOD_BYTES}, stream=True),
    Attack("header-drip", lambda _: {"header_drip": 1}, stream=True),
    Attack("body-drip", lambda _: {"trickle": 1}),
    Attack("length-longer", lambda body: {"content_length": len(body) + 1000}),
    Attack(
        # what is announced lacks max_age; what is sent is a whole policy
        "length-shorter",
        lambda body: {"content_length": len(body) - len(MAX_AGE_LINE)},
    ),
    Attack("rst-mid-body", lambda body: {"reset_after": len(body) // 2}),
    Attack("gzip-bomb", lambda _: {"gzip_bomb": BOMB_BYTES}),
    Attack("handshake-stall", handshake_delay=60.0),
    Attack("tcp-tarpit", tarpit=True),
    Attack("txt-silent", silent="_mta-sts."),
    Attack("host-silent", silent="mta-sts."),
]


@pytest.fixture(scope="module")
def tarpit_log(world: World) -> Iterator[Path]:
    with tarpit(world) as log:
        yield log


@pytest.fixture(scope="module")
def daemon(world: World) -> Iterator[Proc]:
    """The daemon under attack, with CONTROL cached."""
    proc = start_hostile_daemon(world, "hostile", PORT)
    world.publish(CONTROL)
    assert timed_ask(world, CONTROL, PORT)[:2] == (0, secure(CONTROL))
    yield proc
    proc.stop()


def arm(world: World, attack: Attack, domain: str, *, bump: bool) -> None:
    """Turn ``domain``'s policy host (or its DNS) hostile; with ``bump``,
    then publish a new TXT id so that a cached policy is fetched again."""
    host = f"mta-sts.{domain}"
    body = policy_text(mx=[f"mx1.{domain}"])
    if attack.response is not None:
        world.https.update_host(host, **attack.response(body.encode()))
    if attack.handshake_delay:
        world.https.set_host(host, body, handshake_delay=attack.handshake_delay)
    with world.dns.batch():
        if attack.tarpit:
            world.dns.remove(f"{host}. IN A {HTTPS_IPS[0]}")
            world.dns.add(f"{host}. IN A {TARPIT_IP}")
        if bump:
            world.dns.remove(f'_mta-sts.{domain}. IN TXT "v=STSv1; id=1;"')
            world.dns.add(f'_mta-sts.{domain}. IN TXT "v=STSv1; id=2;"')
    if attack.silent:
        world.dns.drop(attack.silent + domain)


def poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # noqa: TID251 - polling other processes with a deadline


def hangups(
    world: World, attack: Attack, hosts: set[str], tarpit_log: Path, tarpit_from: int
) -> list[dict[str, Any]]:
    """How the hostile servers saw each of the daemon's connections end."""
    if attack.stream:
        return [
            e
            for e in world.https.log()
            if e["event"] == "stream" and e["host"] in hosts
        ]
    if attack.tarpit:
        held = read_jsonl(tarpit_log)[tarpit_from:]
        return [e for e in held if e["peer"] == MTA_IP]
    return []


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_hostile_policy_host(
    world: World, daemon: Proc, tarpit_log: Path, attack: Attack
) -> None:
    """A hostile policy host or DNS costs a lookup nothing but that fetch:
    the cached enforce policy stays `secure` (B17, E7, E8), the new domain is
    never `secure` (B16, C17), RSS grows < 32 MiB (B12, B21, F4), every other
    lookup is answered within the budget (G14) and the daemon hangs up by its
    fetch timeout, with one warning per decision, never one per lookup."""
    cached, new, bystander = (
        f"hostile-{attack.name}-{role}.test" for role in ("cached", "new", "other")
    )
    world.publish(cached)
    assert timed_ask(world, cached, PORT)[:2] == (0, secure(cached))
    world.publish(new)
    world.publish(bystander)
    arm(world, attack, new, bump=False)
    arm(world, attack, cached, bump=True)
    since, tarpit_from = len(daemon.output()), len(read_jsonl(tarpit_log))
    started = time.monotonic()
    try:
        with RssWatch(daemon.pid) as rss:
            lookups = Lookups(world, PORT, [cached, new, CONTROL, bystander])
            # Both domains decided (a warning each), then asked once more.
            poll(
                lambda: all(warn_lines(daemon, since, d) for d in (cached, new)),
                FETCH_TIMEOUT_S + BUDGET_S + 5,
                "the daemon to give up on both hostile fetches",
            )
            asked = {k: len(v) for k, v in lookups.answers.items()}
            poll(
                lambda: all(len(lookups.answers[k]) > asked[k] for k in asked),
                2 * (BUDGET_S + SLACK_S),
                "lookups after the attack",
            )
            answers = lookups.stop()
    finally:
        if attack.silent:
            for domain in (cached, new):
                world.dns.clear_fault(attack.silent + domain)
    took = time.monotonic() - started

    assert {a[:2] for a in answers[cached]} == {(0, secure(cached))}, answers[cached]
    assert {a[:2] for a in answers[new]} == {(1, "")}, answers[new]  # NOTFOUND
    assert {a[:2] for a in answers[CONTROL]} == {(0, secure(CONTROL))}
    assert {a[:2] for a in answers[bystander]} == {(0, secure(bystander))}
    slowest = max(s for runs in answers.values() for _, _, s in runs)
    assert slowest < BUDGET_S + SLACK_S, answers
    assert rss.growth_mib < RSS_BOUND_MIB, (
        f"RSS {rss.baseline:.1f} -> {rss.peak:.1f} MiB during {took:.1f} s"
    )
    assert_no_crash(daemon, since)
    # One warning per decision, not per lookup (five a second here): a failed
    # fetch is not tried again for 5 min (B14), a silent TXT name at most at
    # each re-check (E6).
    for domain in (cached, new):
        warned = warn_lines(daemon, since, domain)
        assert 1 <= len(warned) <= 1 + took / RECHECK_S, warned

    if attack.stream or attack.tarpit:
        hosts = {f"mta-sts.{cached}", f"mta-sts.{new}"}
        poll(
            lambda: len(hangups(world, attack, hosts, tarpit_log, tarpit_from)) >= 2,
            FETCH_TIMEOUT_S + SLACK_S,
            "the daemon to hang up on the hostile host",
        )
        for ended in hangups(world, attack, hosts, tarpit_log, tarpit_from):
            assert ended["end"] == "peer-closed", ended
            assert ended["seconds"] <= FETCH_TIMEOUT_S + SLACK_S, ended
            if attack.name == "header-flood":
                assert ended["sent"] < FLOOD_SENT_MAX, ended


# Not strict: whoever fixes these must not have CI fail on the pass; drop
# the mark when the test passes (XPASS in the summary).
def test_redis_impostor(world: World) -> None:
    """A Redis that answers every data command wrongly (wrong types, 100,000
    '[', arrays nested 10,000 deep, errors, an endless bulk, junk) costs the
    daemon only its fleet store: it starts, answers `secure` for a policy
    domain and NOTFOUND for one without (B16, E13) within the budget (G14),
    and writes no traceback."""
    log = world.work / "redis-impostor.jsonl"
    log.touch()
    impostor = world.spawn(
        "mta",
        [sys.executable, str(SERVERS / "redis_impostor.py"), *IMPOSTOR_ARGS, str(log)],
        name="redis-impostor",
    )
    good, bare = "hostile-impostor.test", "hostile-impostor-bare.test"
    world.publish(good)
    world.dns.add(f"{bare}. IN MX 10 mx1.{bare}.", f"mx1.{bare}. IN A {MX_GOOD}")
    world.wait_tcp("mta", "127.0.0.1", IMPOSTOR_PORT)
    name = "hostile-impostor"
    daemon = start_hostile_daemon(
        world, name, IMPOSTOR_CLIENT_PORT, redis_port=IMPOSTOR_PORT
    )

    def served() -> set[str]:
        return {e["reply"] for e in read_jsonl(log)} - {"setup"}

    try:
        deadline = time.monotonic() + 20  # two 5 s reconnect back-offs and more
        while len(served()) < IMPOSTOR_KINDS and time.monotonic() < deadline:
            for domain, expected in ((good, (0, secure(good))), (bare, (1, ""))):
                rc, answer, took = timed_ask(world, domain, IMPOSTOR_CLIENT_PORT)
                assert (rc, answer) == expected, domain
                assert took < BUDGET_S + SLACK_S, (domain, took)
        assert len(served()) == IMPOSTOR_KINDS, served()
        assert_no_crash(daemon, 0)
    finally:
        daemon.stop()
        impostor.stop()
