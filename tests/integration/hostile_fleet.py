"""Fleet helpers for the hostile-world tests (issue 9): a private Redis, a
fleet daemon restarted in place, and entries written to Redis as an
attacker or a fleet member with a wrong clock would write them.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .hostile import BUDGET_S, SLACK_S, start_hostile_daemon, timed_ask
from .world import MX_GOOD, Proc, World

__all__ = [
    "DEEP",
    "HUGE",
    "INF",
    "NAN",
    "YEAR_S",
    "Member",
    "no_policy",
    "now",
    "redis_cli",
    "start_redis",
    "stored_entry",
    "utc",
]

INF, NAN = math.inf, math.nan
DEEP = "[" * 100_000  # RecursionError in json.loads
HUGE = 10**400  # OverflowError in float()
YEAR_S = 365 * 86400.0


def now() -> float:
    return time.time()  # noqa: TID251 - the daemon's wall clock, read the same way


def utc(text: str) -> float:
    """A `cache list` time (2026-12-02T23:59:00Z) as a Unix time."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def start_redis(world: World, port: int) -> Proc:
    """redis-server on $P-mta's loopback, where the daemons run."""
    directory = world.work / f"redis-{port}"
    directory.mkdir(exist_ok=True)
    proc = world.spawn(
        "mta",
        [
            "redis-server",
            *("--bind", "127.0.0.1", "--port", str(port)),
            *("--save", "", "--appendonly", "no", "--dir", str(directory)),
        ],
        name=f"redis-{port}",
    )
    world.wait_tcp("mta", "127.0.0.1", port)
    return proc


def redis_cli(world: World, port: int, *args: str, value: str | None = None) -> str:
    """One redis-cli command in $P-mta; ``value`` goes last, read from stdin
    (a 100 kB value is no argument to pass on a command line)."""
    argv = ["redis-cli", "-p", str(port), "--raw", *(("-x",) if value else ()), *args]
    proc = world.run("mta", argv, input=value, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def no_policy(world: World, domain: str) -> None:
    """A domain with an MX host but no MTA-STS record or policy host."""
    world.dns.add(f"{domain}. IN MX 10 mx1.{domain}.", f"mx1.{domain}. IN A {MX_GOOD}")


def stored_entry(
    domain: str,
    *,
    fetched_at: float | int,
    checked_at: float | int | None = None,
    expires_at: float | int | None = None,
    mode: str = "enforce",
    mx: Sequence[str] = ("mx.attacker.test",),
    lines: Sequence[str] | None = None,
    max_age: int = 86400,
    policy_id: str = "1",
) -> str:
    """A stored entry as the daemon writes it (core/entry.py, format 1), with
    whatever values a writer chooses: ``Infinity``, ``NaN`` and 400-digit
    numbers included.  ``lines`` default to the policy the fields describe."""
    if lines is None:
        lines = ["version: STSv1", f"mode: {mode}"]
        lines += [f"mx: {m}" for m in mx] + [f"max_age: {max_age}"]
    if expires_at is None:
        expires_at = fetched_at + max_age
    return json.dumps(
        {
            "v": 1,
            "domain": domain,
            "id": policy_id,
            "fetched_at": fetched_at,
            "expires_at": expires_at,
            "checked_at": fetched_at if checked_at is None else checked_at,
            "mode": mode,
            "max_age": max_age,
            "mx": list(mx),
            "lines": list(lines),
        },
        allow_nan=True,
    )


class Member:
    """A fleet daemon sharing the Redis on ``redis_port``, restarted in place
    (its SQLite store stays)."""

    def __init__(
        self,
        world: World,
        name: str,
        port: int,
        redis_port: int,
        fleet_key: Path | None = None,
    ) -> None:
        self.world, self.name = world, name
        self.port, self.redis_port, self.fleet_key = port, redis_port, fleet_key
        self.proc = self._start()

    def _start(self) -> Proc:
        return start_hostile_daemon(
            self.world,
            self.name,
            self.port,
            redis_port=self.redis_port,
            fleet_key=self.fleet_key,
        )

    def restart(self) -> None:
        self.proc.stop()
        self.proc = self._start()

    def running(self) -> Member:
        """This member, running: one an earlier test left dead is started
        again on an empty Redis, so that each test stands on its own."""
        if not self.proc.alive():
            self.redis("FLUSHALL")
            self.restart()
        return self

    def ask(self, domain: str, port: int | None = None) -> tuple[int, str]:
        """`postmap -q` through this member (or ``port``), within the budget."""
        rc, answer, took = timed_ask(self.world, domain, port or self.port)
        assert took < BUDGET_S + SLACK_S, (domain, answer, took)
        return rc, answer

    def redis(self, *args: str, value: str | None = None) -> str:
        return redis_cli(self.world, self.redis_port, *args, value=value)

    def stored_value(self, domain: str, timeout: float = 10.0) -> str:
        """The value written behind for ``domain``, once it is in Redis."""
        deadline = time.monotonic() + timeout
        while not (raw := self.redis("GET", f"mtasts:policy:{domain}")):
            assert time.monotonic() < deadline, f"{domain} never reached Redis"
            time.sleep(0.05)  # noqa: TID251 - polling another process with a deadline
        return raw

    def stored(self, domain: str, timeout: float = 10.0) -> dict[str, Any]:
        """The entry written behind for ``domain`` (unsealed), decoded."""
        stored: dict[str, Any] = json.loads(self.stored_value(domain, timeout))
        return stored

    def cache_list(self) -> list[dict[str, Any]]:
        """`postfix-mtasts cache list --json` over the control socket: it
        must work."""
        control = str(self.world.work / self.name / "control.sock")
        cache = ["-m", "postfix_mtasts", "cache", "--socket", control]
        proc = self.world.run("mta", [sys.executable, *cache, "list", "--json"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        entries: list[dict[str, Any]] = json.loads(proc.stdout)
        return entries

    def log_tail(self) -> str:
        """The end of the daemon's log, without its per-lookup lines."""
        lines = self.proc.output().splitlines()
        return "\n".join(x for x in lines if not x.startswith("<7>lookup"))[-3000:]
