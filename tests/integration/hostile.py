"""Helpers for the hostile-world tests (issue 9): a daemon with short
timeouts, its memory while it is attacked, and lookups timed from Postfix's
side.  Redis and fleet helpers are in hostile_fleet.py.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .daemonctl import ask, socketmap, wait_started
from .world import SERVERS, Proc, World

__all__ = [
    "BUDGET_S",
    "FETCH_TIMEOUT_S",
    "RECHECK_S",
    "SLACK_S",
    "TARPIT_IP",
    "Lookups",
    "RssWatch",
    "assert_no_crash",
    "rss_mib",
    "secure",
    "start_hostile_daemon",
    "tarpit",
    "timed_ask",
    "warn_lines",
]

FETCH_TIMEOUT_S = 3.0  # [fetch] timeout: a hostile host is given up after this
BUDGET_S = 2.0  # [server] lookup_budget: every lookup is answered within it
RECHECK_S = 1.0  # [cache] recheck_interval: how soon a TXT id change is seen
SLACK_S = 1.0  # postmap's own start-up on a busy two-core machine
TARPIT_IP = "10.253.2.20"  # on the world's lo while tarpit() runs

CONFIG = """
[[listener]]
endpoint = "tcp:{port}:interface=127.0.0.1"
protocol = "socketmap"

[dns]
timeout = 0.5
attempts = 2

[fetch]
timeout = {fetch_timeout}

[cache]
recheck_interval = {recheck}
negative_ttl = 1.0

[server]
lookup_budget = {budget}

[log]
level = "debug"

[store]
path = "{work}/policies.sqlite3"

[control]
socket = "{work}/control.sock"
{redis}
"""

REDIS = """
[redis]
url = "redis://127.0.0.1:{port}/0"
timeout = 0.5
"""
FLEET_KEY = """fleet_key_file = "{path}"
"""


def start_hostile_daemon(
    world: World,
    name: str,
    port: int,
    *,
    redis_port: int | None = None,
    fleet_key: Path | None = None,
    skew_s: float = 0.0,
) -> Proc:
    """`postfix-mtasts serve` in $P-mta with the short timeouts above, a
    fleet store on ``redis_port`` (values sealed with ``fleet_key``); with
    ``skew_s``, its wall clock runs that many seconds ahead.  Started again
    under the same name, it finds its SQLite store as it left it."""
    redis = REDIS.format(port=redis_port) if redis_port else ""
    if fleet_key is not None:
        redis += FLEET_KEY.format(path=fleet_key)
    work = world.work / name
    work.mkdir(exist_ok=True)
    config = work / "daemon.toml"
    config.write_text(
        CONFIG.format(
            port=port,
            fetch_timeout=FETCH_TIMEOUT_S,
            recheck=RECHECK_S,
            budget=BUDGET_S,
            work=work,
            redis=redis,
        )
    )
    argv = ["-m", "postfix_mtasts", "serve", "--config", str(config)]
    if skew_s:
        argv = [str(SERVERS / "skewed_clock.py"), str(skew_s), *argv]
    proc = world.spawn("mta", [sys.executable, *argv], name=name)
    world.wait_tcp("mta", "127.0.0.1", port, timeout=20)
    wait_started(proc)
    return proc


def secure(domain: str, mx: str | None = None) -> str:
    """The enforce answer for a world domain published with one MX."""
    return f"secure match={mx or 'mx1.' + domain} servername=hostname"


def timed_ask(world: World, key: str, port: int) -> tuple[int, str, float]:
    """`postmap -q` through the daemon: (rc, answer, seconds it took)."""
    started = time.monotonic()
    rc, answer = ask(world, key, socketmap(port))
    return rc, answer, time.monotonic() - started


class Lookups:
    """Each key asked in its own thread, again and again, until stop():
    Postfix's lookups go on while an attack runs."""

    PACE_S = 0.2

    def __init__(self, world: World, port: int, keys: Iterable[str]) -> None:
        self.answers: dict[str, list[tuple[int, str, float]]] = {k: [] for k in keys}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(world, port, key), daemon=True)
            for key in self.answers
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, world: World, port: int, key: str) -> None:
        while True:
            self.answers[key].append(timed_ask(world, key, port))
            if self._stop.wait(self.PACE_S):
                return

    def stop(self) -> dict[str, list[tuple[int, str, float]]]:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        return self.answers


def rss_mib(pid: int) -> float:
    """VmRSS of a live process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) / 1024


class RssWatch:
    """The peak RSS of ``pid`` while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, AssertionError):
                return  # the process is gone: the test says so

    @property
    def growth_mib(self) -> float:
        return self.peak - self.baseline

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def assert_no_crash(proc: Proc, since: int) -> None:
    """The daemon runs, and wrote no traceback or error line after ``since``
    (a length of its output)."""
    assert proc.alive(), proc.output()[-3000:]
    text = proc.output()[since:]
    bad = [
        line
        for line in text.splitlines()
        if "Traceback" in line or line.startswith(("<3>", "<2>"))
    ]
    assert not bad, "\n".join(bad)[:3000]


def warn_lines(proc: Proc, since: int, domain: str) -> list[str]:
    """Warning lines about ``domain`` the daemon wrote after ``since``."""
    return [
        line
        for line in proc.output()[since:].splitlines()
        if line.startswith("<4>") and f"domain={domain} " in line + " "
    ]


@contextmanager
def tarpit(world: World) -> Iterator[Path]:
    """servers/tarpit.py on TARPIT_IP:443 in $P-world (a TLS handshake that
    stalls right after the TCP accept); yields its log."""
    world.run(
        "world", ["ip", "addr", "add", f"{TARPIT_IP}/32", "dev", "lo"], check=True
    )
    log = world.work / "tarpit.jsonl"
    log.touch()
    proc = world.spawn(
        "world",
        [sys.executable, str(SERVERS / "tarpit.py"), str(log), f"{TARPIT_IP}:443"],
        name="tarpit",
    )
    try:
        world.wait_tcp("world", TARPIT_IP, 443)
        yield log
    finally:
        proc.stop()
        world.run("world", ["ip", "addr", "del", f"{TARPIT_IP}/32", "dev", "lo"])
