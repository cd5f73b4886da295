"""The attacks of issue 9, re-run against the daemon of any source tree.

Each scenario starts a fresh `postfix-mtasts serve` (from --daemon-python-path,
default this checkout) in the integration test world (tests/integration/
world.py: unbound, HTTPS policy hosts with a test CA, Postfix's postmap), and
prints one summary line, ``NAME: key=value ...``; the last line holds every
figure as JSON.  Needs root (network namespaces).

  header-flood     a policy host answers 200 and streams 1 kB header lines;
                   --flood-domains domains that use it are looked up at once,
                   enforce.test is asked every 2 s meanwhile: daemon RSS over
                   time, its peak, and the other lookups' answers
  poison-infinity  Redis holds enforce.test with Infinity timestamps and an
                   attacker's mx: does serve start, what does postmap answer,
                   does it survive FLUSHALL and a restart (SQLite beside Redis)
  poison-future    enforce.test cached, then its Redis entry replaced by
                   mode none with checked_at ten years ahead (new id)
  poison-inject    a Redis entry alone for nosts.test (no policy anywhere)
                   with an attacker's mx: does postmap answer "secure"?
  poison-brackets  "[" x 100,000 as enforce.test's stored value: does serve
                   start, and is enforce.test answered (its host is up)?
  poison-bigint    a 400-digit fetched_at, likewise
  slot-starvation  --slots connections trickle one byte every 2 s, then a
                   real lookup: answered? latency; time to open the slots
  long-names       names of 245-253 octets on a dns_failure = "temp" map,
                   asked every 10 s for --long-names-s: answers, warnings/min
  waiting-lookups  --waiting lookups of a domain whose DNS never answers,
                   lookup_budget 2 s: answers and log lines
  control-line     one 64 MiB line to the control socket: bytes taken, RSS
  control-idle     --control-conns idle connections to the control socket:
                   how many are held, daemon fds, RSS, is `cache list` served

    .venv/bin/python benchmarks/bench_attacks.py [--scenario NAME ...]
        [--daemon-python-path DIR] [--fleet-key]
        [--redis-setting 'key = "value"' ...]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

from attack_world import (
    HOSTILE_IP,
    Redis,
    World,
    WorldDaemon,
    daemon_config,
    exit_on_sigterm,
    fleet_key_setting,
    parser,
    priorities,
    read_json,
    start_hostile_host,
)
from bench_floods import (
    Replies,
    RssSampler,
    cache_entry,
    cpu_s,
    frame,
    mib,
    package_file,
    summary,
)

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
TEN_YEARS_S = 10 * 365 * 86400.0
ATTACKER_MX = "mx.attacker.test"


class Bench:
    """One world for all scenarios; each scenario gets its own daemon."""

    def __init__(self, args: argparse.Namespace, world: World) -> None:
        self.args, self.world = args, world
        self.tree = Path(args.daemon_python_path).resolve()
        self._ports = iter(range(8600, 8700))
        settings = list(args.redis_setting)
        if args.fleet_key:
            settings.append(fleet_key_setting(world))
        self.redis_settings = "\n".join(settings)

    def daemon(self, name: str, *, start: bool = True, **config: Any) -> WorldDaemon:
        port = next(self._ports)
        work = self.world.work / name
        text = daemon_config(port, work, redis_settings=self.redis_settings, **config)
        daemon = WorldDaemon(self.world, self.tree, name, port, text)
        if start and not daemon.start():
            raise ScenarioError(f"daemon did not start: {tail(daemon)}")
        return daemon


class ScenarioError(Exception):
    """The scenario could not run."""


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def tail(daemon: WorldDaemon, lines: int = 6) -> str:
    return " | ".join(line[:200] for line in daemon.lines()[-lines:])


def window(daemon: WorldDaemon, mark: int) -> dict[str, Any]:
    """The daemon's log lines since ``mark``: count, by priority, and the
    first few (cut at 200 characters)."""
    lines = daemon.lines_since(mark)
    return {
        "log_lines": len(lines),
        "by_priority": dict(priorities(lines)),
        "tracebacks": sum("Traceback" in line for line in lines),
        "first_lines": [line[:200] for line in lines[:5]],
    }


def relevant(daemon: WorldDaemon, mark: int, *words: str) -> list[str]:
    return [
        line[:200] for line in daemon.lines_since(mark) if any(w in line for w in words)
    ]


# -- (a) response header flood ---------------------------------------------------


def header_flood(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    a, world = bench.args, bench.world
    domains = [f"flood{i}.test" for i in range(a.flood_domains)]
    stats = world.work / "hostile-stats.json"
    stack.callback(
        start_hostile_host(world, [f"mta-sts.{d}" for d in domains], stats).stop
    )
    with world.dns.batch():
        for domain in domains:
            world.publish(domain, https_ip=HOSTILE_IP)
    daemon = bench.daemon("header-flood")
    stack.callback(daemon.stop)
    mark = len(daemon.lines())
    result: dict[str, Any] = {"domains": len(domains), "fetch_timeout_s": 20}
    result["rss_start_mib"] = mib(daemon.rss_kib())
    sampler = RssSampler(daemon.pid)
    started = time.monotonic()
    answers: dict[str, Any] = {}

    def lookup(domain: str) -> None:
        answers[domain] = daemon.ask(domain)

    threads = [threading.Thread(target=lookup, args=(d,)) for d in domains]
    for t in threads:
        t.start()
    timeline: list[tuple[float, float | None]] = []
    probes: list[dict[str, Any]] = []
    killed = None
    while time.monotonic() - started < a.flood_s:
        rss = daemon.rss_kib()
        timeline.append((round(time.monotonic() - started, 1), mib(rss)))
        if rss and rss > a.rss_limit_mib * 1024:
            killed = mib(rss)
            daemon.stop()
            break
        probes.append(daemon.ask("enforce.test"))
        time.sleep(max(0.0, 2.0 - probes[-1]["seconds"]))
    for t in threads:
        t.join(120)
    time.sleep(3)
    result["rss_after_mib"] = mib(daemon.rss_kib())
    result["rss_peak_mib"] = mib(sampler.stop())
    result["killed_at_mib"] = killed
    result["rss_timeline_mib"] = timeline
    result["flood_answers"] = dict(Counter(r["status"] for r in answers.values()))
    result["probes"] = summarize(probes)
    served = read_json(stats) or {}
    result["header_bytes_sent"] = sorted(served.get("header_bytes", []))
    result["fresh_lookup_after"] = daemon.ask("mismatch.test")
    result.update(window(daemon, mark))
    result["flood_lines"] = relevant(daemon, mark, "flood")[:5]
    return result


def summarize(probes: list[dict[str, Any]]) -> dict[str, Any]:
    if not probes:
        return {"count": 0}
    seconds = [p["seconds"] for p in probes]
    return {
        "count": len(probes),
        "statuses": dict(Counter(p["status"] for p in probes)),
        "median_s": round(statistics.median(seconds), 3),
        "max_s": max(seconds),
    }


# -- (b) Redis poison ------------------------------------------------------------


def stored(domain: str, *, mode: str = "enforce", mx: str, at: float) -> dict[str, Any]:
    """A well-formed entry in the stored format, as any Redis writer can make."""
    entry = cache_entry(domain, [mx], at)
    entry["lines"] = ["version: STSv1", f"mode: {mode}", f"mx: {mx}", "max_age: 86400"]
    entry["mode"] = mode
    return entry


def poison_key(domain: str) -> str:
    return f"mtasts:policy:{domain}"


def fleet(bench: Bench, stack: ExitStack, name: str, **config: Any) -> WorldDaemon:
    daemon = bench.daemon(name, start=False, sqlite=True, redis=True, **config)
    stack.callback(daemon.stop)
    return daemon


def redis_for(bench: Bench, stack: ExitStack) -> Redis:
    redis = Redis(bench.world)
    redis.start()
    stack.callback(redis.stop)
    return redis


def poison_infinity(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    redis = redis_for(bench, stack)
    entry = stored("enforce.test", mx=ATTACKER_MX, at=time.time())
    entry.update(fetched_at=float("inf"), expires_at=float("inf"), checked_at=1e300)
    redis.set(poison_key("enforce.test"), json.dumps(entry))
    daemon = fleet(bench, stack, "poison-infinity")
    result: dict[str, Any] = {"started": daemon.start()}
    if not result["started"]:
        result["exit_code"] = daemon.exit_code()
        result.update(window(daemon, 0))
        return result
    result["postmap"] = daemon.postmap("enforce.test")
    time.sleep(5)  # writers and refresh rounds run
    result["cache_list"] = daemon.cache("list")[1][:160]
    redis.cli("FLUSHALL")
    daemon.stop()
    result["restarted"] = daemon.start()
    result["postmap_after_flushall_restart"] = daemon.postmap("enforce.test")
    result["redis_after"] = redis.get(poison_key("enforce.test"))[:120]
    time.sleep(3)
    result["cache_list_after"] = daemon.cache("list")[1][:160]
    result.update(window(daemon, 0))
    result["overflow_lines"] = sum("Overflow" in x for x in daemon.lines())
    return result


def poison_future(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    redis = redis_for(bench, stack)
    extra = "[cache]\nrecheck_interval = 1.0\n[refresh]\ninterval = 1.0\n"
    daemon = fleet(bench, stack, "poison-future", extra=extra)
    if not daemon.start():
        raise ScenarioError(f"daemon did not start: {tail(daemon)}")
    result: dict[str, Any] = {"postmap_before": daemon.postmap("enforce.test")}
    time.sleep(2)  # the fetched policy reaches Redis
    now = time.time()
    entry = stored("enforce.test", mode="none", mx="mx1.enforce.test", at=now)
    entry.update(id="2", checked_at=now + TEN_YEARS_S)
    mark = len(daemon.lines())
    redis.set(poison_key("enforce.test"), json.dumps(entry))
    answers = []
    for _ in range(a_few(bench.args.poison_wait_s)):
        time.sleep(1)
        answers.append(daemon.postmap("enforce.test"))
    result["postmap_after"] = answers[-1]
    result["answers_seen"] = dict(Counter(x[:40] for x in answers))
    result.update(window(daemon, mark))
    result["store_lines"] = relevant(daemon, mark, "store", "adopt", "enforce.test")
    return result


def a_few(seconds: float) -> int:
    return max(1, round(seconds))


def poison_inject(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    redis = redis_for(bench, stack)
    entry = stored("nosts.test", mx=ATTACKER_MX, at=time.time())
    redis.set(poison_key("nosts.test"), json.dumps(entry))
    daemon = fleet(bench, stack, "poison-inject")
    result: dict[str, Any] = {"started": daemon.start()}
    if not result["started"]:
        result["exit_code"] = daemon.exit_code()
    else:
        result["postmap"] = daemon.postmap("nosts.test")
    result.update(window(daemon, 0))
    return result


def poison_malformed(
    bench: Bench, stack: ExitStack, name: str, value: str
) -> dict[str, Any]:
    redis = redis_for(bench, stack)
    redis.set(poison_key("enforce.test"), value)
    daemon = fleet(bench, stack, name)
    result: dict[str, Any] = {"value_bytes": len(value), "started": daemon.start()}
    if not result["started"]:
        time.sleep(1)
        result["exit_code"] = daemon.exit_code()
        result["start_lines"] = [x[:200] for x in daemon.lines()[-3:]]
        # at run time instead: the daemon is up, then the value appears
        redis.cli("FLUSHALL")
        if not daemon.start():
            raise ScenarioError(
                f"daemon did not start on a clean Redis: {tail(daemon)}"
            )
        redis.set(poison_key("enforce.test"), value)
    result["postmap"] = daemon.postmap("enforce.test")
    time.sleep(2)
    result["postmap_again"] = daemon.postmap("enforce.test")
    result["alive"] = daemon.alive()
    result.update(window(daemon, 0))
    return result


def poison_brackets(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    return poison_malformed(bench, stack, "poison-brackets", "[" * 100_000)


def poison_bigint(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    entry = stored("enforce.test", mx="mx1.enforce.test", at=time.time())
    entry["fetched_at"] = 0
    value = json.dumps(entry).replace('"fetched_at": 0', '"fetched_at": ' + "9" * 400)
    return poison_malformed(bench, stack, "poison-bigint", value)


# -- (c) slot starvation ---------------------------------------------------------


def slot_starvation(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    a = bench.args
    daemon = bench.daemon("slot-starvation")
    stack.callback(daemon.stop)
    mark = len(daemon.lines())
    daemon.postmap("enforce.test")  # cached: the probe measures only the slot
    result: dict[str, Any] = {"slots": a.slots}
    socks: list[socket.socket] = []
    started = time.monotonic()
    errors: Counter[str] = Counter()
    for _ in range(a.slots):
        try:
            socks.append(daemon.connect(timeout=30))
        except OSError as e:
            errors[type(e).__name__] += 1
    result["open_s"] = round(time.monotonic() - started, 2)
    result["opened"] = len(socks)
    result["open_errors"] = dict(errors)
    stack.callback(close_all, socks)
    payload = frame("x" * 200 + ".trickle.test")
    stop = threading.Event()
    closed: set[int] = set()

    def trickle() -> None:
        for i in range(len(payload)):
            for n, sock in enumerate(socks):
                if n not in closed:
                    try:
                        sock.send(payload[i : i + 1])
                    except OSError:
                        closed.add(n)
            if stop.wait(2.0):
                return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    time.sleep(a.trickle_s)
    result["probe"] = daemon.ask("enforce.test")
    result["postmap"] = daemon.postmap("enforce.test")
    result["probe_again"] = daemon.ask("enforce.test")
    stop.set()
    thread.join(10)
    for n, sock in enumerate(socks):
        sock.setblocking(False)
        with suppress(BlockingIOError):
            if sock.recv(1) == b"":
                closed.add(n)
        with suppress(OSError):
            sock.send(b"1")
            continue
        closed.add(n)
    result["trickling_closed_by_daemon"] = len(closed)
    result.update(window(daemon, mark))
    return result


# -- (d) long names ---------------------------------------------------------------


def long_name(octets: int) -> str:
    """A valid name of exactly ``octets`` octets under ``test``."""
    body = ("a" * 62 + "b.") * 5
    body = body[: octets - len(".test")]
    if body.endswith("."):
        body = body[:-2] + ".c"
    return body + ".test"


def long_names(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    a = bench.args
    daemon = bench.daemon("long-names")
    stack.callback(daemon.stop)
    names = [long_name(n) for n in range(245, 254)]
    assert all(len(n) == o for n, o in zip(names, range(245, 254), strict=True))
    mark = len(daemon.lines())
    started = time.monotonic()
    first = {len(n): daemon.ask(n, "temp").get("reply", "-") for n in names}
    rounds = 1
    while time.monotonic() - started < a.long_names_s:
        time.sleep(10)
        for name in names:
            daemon.ask(name, "temp")
        rounds += 1
    elapsed = time.monotonic() - started
    result: dict[str, Any] = {
        "answers": {str(k): v for k, v in first.items()},
        "answer_set": dict(Counter(v.split("'")[0].strip() for v in first.values())),
        "rounds": rounds,
        "seconds": round(elapsed, 1),
    }
    result.update(window(daemon, mark))
    warns = result["by_priority"].get("<4>", 0)
    result["warnings_per_min"] = round(warns * 60 / elapsed, 1)
    return result


# -- (e) waiting lookups ----------------------------------------------------------


def waiting_lookups(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    a, world = bench.args, bench.world
    world.dns.drop("slow.test")
    stack.callback(world.dns.clear_faults)
    extra = (
        "[server]\nlookup_budget = 2.0\nmax_pending_per_connection = 10000\n"
        "max_connections = 512\n"
    )
    daemon = bench.daemon("waiting-lookups", dns_timeout=5.0, extra=extra)
    stack.callback(daemon.stop)
    mark = len(daemon.lines())
    per = a.waiting // a.waiting_conns
    result: dict[str, Any] = {"lookups": per * a.waiting_conns, "budget_s": 2.0}
    started = time.monotonic()
    replies = [Replies() for _ in range(a.waiting_conns)]
    socks = [daemon.connect(timeout=30) for _ in replies]
    stack.callback(close_all, socks)
    payload = frame("slow.test") * per
    threads = []
    for sock, r in zip(socks, replies, strict=True):
        sock.sendall(payload)

        def read(sock: socket.socket = sock, r: Any = r) -> None:
            r.receive(sock, per, started + 60)

        threads.append(threading.Thread(target=read))
        threads[-1].start()
    for t in threads:
        t.join(70)
    result.update(summary(replies, started))
    time.sleep(a.waiting_tail_s)  # the DNS attempts run out; summary lines
    result["rss_after_mib"] = mib(daemon.rss_kib())
    result.update(window(daemon, mark))
    result["slow_lines"] = sum("slow.test" in x for x in daemon.lines_since(mark))
    return result


# -- (f) control socket ------------------------------------------------------------


def control_line(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    daemon = bench.daemon("control-line")
    stack.callback(daemon.stop)
    mark = len(daemon.lines())
    result: dict[str, Any] = {"rss_start_mib": mib(daemon.rss_kib())}
    sampler = RssSampler(daemon.pid)
    cpu_before = cpu_s(daemon.pid) or 0.0
    sent, error = 0, None
    chunk = b"x" * (1 << 20)
    started = time.monotonic()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(daemon.control))
        sock.settimeout(5)
        try:
            while sent < (64 << 20) + (1 << 20):
                sent += sock.send(chunk)
        except OSError as e:
            error = type(e).__name__
        result["send_s"] = round(time.monotonic() - started, 2)
        try:
            result["daemon_reply"] = sock.recv(200).decode(errors="replace")
        except OSError as e:
            result["daemon_reply"] = type(e).__name__
    time.sleep(2)
    result.update(bytes_taken=sent, send_error=error)
    result["rss_peak_mib"] = mib(sampler.stop())
    result["rss_after_mib"] = mib(daemon.rss_kib())
    result["daemon_cpu_s"] = round((cpu_s(daemon.pid) or 0.0) - cpu_before, 1)
    result["cache_list_rc"] = daemon.cache("list")[0]
    result.update(window(daemon, mark))
    return result


def connect_unix(path: Path, patience_s: float) -> socket.socket:
    """A connection to a unix socket, retried while its backlog is full."""
    deadline = time.monotonic() + patience_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(str(path))
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        except OSError:
            sock.close()
            raise


def peer_state(sock: socket.socket) -> str:
    """What the daemon did with a connection: "closed" (EOF, after a reply
    or not), or "open" (no EOF yet: held, or still in the listen queue)."""
    sock.setblocking(False)
    try:
        while chunk := sock.recv(65536):
            del chunk
    except BlockingIOError:
        return "open"
    except OSError:
        return "reset"
    return "closed"


def control_idle(bench: Bench, stack: ExitStack) -> dict[str, Any]:
    a = bench.args
    daemon = bench.daemon("control-idle")
    stack.callback(daemon.stop)
    mark = len(daemon.lines())
    result: dict[str, Any] = {"connections": a.control_conns}
    result["rss_start_mib"] = mib(daemon.rss_kib())
    result["fds_start"] = daemon.fd_count()
    socks: list[socket.socket] = []
    stack.callback(close_all, socks)
    errors: Counter[str] = Counter()
    started = time.monotonic()
    for _ in range(a.control_conns):
        try:
            socks.append(connect_unix(daemon.control, 2.0))
        except OSError as e:
            errors[type(e).__name__] += 1
    result["open_s"] = round(time.monotonic() - started, 2)
    result["connected"] = len(socks)
    result["connect_errors"] = dict(errors)
    time.sleep(2)
    result["fds_peak"] = daemon.fd_count()
    result["rss_held_mib"] = mib(daemon.rss_kib())
    t = time.monotonic()
    rc, out = daemon.cache("list")
    result["cache_list"] = {
        "rc": rc,
        "seconds": round(time.monotonic() - t, 2),
        "output": out[-120:],
    }
    time.sleep(max(0.0, a.control_hold_s - (time.monotonic() - started)))
    states = Counter(peer_state(sock) for sock in socks)
    result["held_after_s"] = a.control_hold_s
    result["still_open"] = states["open"]
    result["client_states"] = dict(states)
    t = time.monotonic()
    rc, out = daemon.cache("list")
    result["cache_list_after"] = {
        "rc": rc,
        "seconds": round(time.monotonic() - t, 2),
        "output": out[-120:],
    }
    result["fds_end"] = daemon.fd_count()
    result.update(window(daemon, mark))
    return result


# -- running ------------------------------------------------------------------------

Runner = Callable[[Bench, ExitStack], dict[str, Any]]
RUNNERS: dict[str, Runner] = {
    "header-flood": header_flood,
    "poison-infinity": poison_infinity,
    "poison-future": poison_future,
    "poison-inject": poison_inject,
    "poison-brackets": poison_brackets,
    "poison-bigint": poison_bigint,
    "slot-starvation": slot_starvation,
    "long-names": long_names,
    "waiting-lookups": waiting_lookups,
    "control-line": control_line,
    "control-idle": control_idle,
}

# The figures of each summary line, in order: (label, path into the result).
SUMMARY: dict[str, list[tuple[str, str]]] = {
    "header-flood": [
        ("rss_mib_start", "rss_start_mib"),
        ("peak", "rss_peak_mib"),
        ("after", "rss_after_mib"),
        ("killed_at_mib", "killed_at_mib"),
        ("flood_answers", "flood_answers"),
        ("probes", "probes.statuses"),
        ("probe_max_s", "probes.max_s"),
        ("fresh_after", "fresh_lookup_after.status"),
        ("log_lines", "log_lines"),
        ("by_priority", "by_priority"),
    ],
    "poison-infinity": [
        ("started", "started"),
        ("postmap", "postmap"),
        ("after_flushall_restart", "postmap_after_flushall_restart"),
        ("cache_list", "cache_list"),
        ("overflow_lines", "overflow_lines"),
        ("by_priority", "by_priority"),
        ("tracebacks", "tracebacks"),
    ],
    "poison-future": [
        ("before", "postmap_before"),
        ("after", "postmap_after"),
        ("by_priority", "by_priority"),
        ("store_lines", "store_lines"),
    ],
    "poison-inject": [
        ("started", "started"),
        ("postmap", "postmap"),
        ("by_priority", "by_priority"),
    ],
    "poison-brackets": [
        ("started", "started"),
        ("exit_code", "exit_code"),
        ("postmap", "postmap"),
        ("again", "postmap_again"),
        ("by_priority", "by_priority"),
        ("tracebacks", "tracebacks"),
    ],
    "slot-starvation": [
        ("opened", "opened"),
        ("open_s", "open_s"),
        ("probe", "probe.status"),
        ("probe_s", "probe.seconds"),
        ("postmap", "postmap"),
        ("trickling_closed", "trickling_closed_by_daemon"),
        ("by_priority", "by_priority"),
    ],
    "long-names": [
        ("answers", "answer_set"),
        ("seconds", "seconds"),
        ("warnings_per_min", "warnings_per_min"),
        ("by_priority", "by_priority"),
    ],
    "waiting-lookups": [
        ("lookups", "lookups"),
        ("answered", "answered"),
        ("statuses", "statuses"),
        ("last_reply_s", "last_reply_s"),
        ("log_lines", "log_lines"),
        ("slow_lines", "slow_lines"),
        ("by_priority", "by_priority"),
    ],
    "control-line": [
        ("bytes_taken", "bytes_taken"),
        ("send_error", "send_error"),
        ("send_s", "send_s"),
        ("daemon_cpu_s", "daemon_cpu_s"),
        ("rss_mib_start", "rss_start_mib"),
        ("peak", "rss_peak_mib"),
        ("after", "rss_after_mib"),
        ("by_priority", "by_priority"),
    ],
    "control-idle": [
        ("connected", "connected"),
        ("connect_errors", "connect_errors"),
        ("client_states", "client_states"),
        ("held_s", "held_after_s"),
        ("daemon_fds", "fds_peak"),
        ("rss_mib", "rss_held_mib"),
        ("cache_list", "cache_list"),
        ("cache_list_after", "cache_list_after"),
        ("by_priority", "by_priority"),
    ],
}
SUMMARY["poison-bigint"] = SUMMARY["poison-brackets"]


def dig(result: dict[str, Any], path: str) -> Any:
    value: Any = result
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def summary_line(name: str, result: dict[str, Any]) -> str:
    """``NAME: key=value ...``, each value in JSON."""
    if "error" in result:
        return f"{name}: error={json.dumps(result['error'])}"
    fields = []
    for label, path in SUMMARY[name]:
        text = json.dumps(dig(result, path), separators=(",", ":"))
        fields.append(f"{label}={text}")
    return f"{name}: " + " ".join(fields)


def run(args: argparse.Namespace) -> int:
    names = args.scenario or list(RUNNERS)
    world = World.create()
    results: dict[str, Any] = {
        "tree": str(Path(args.daemon_python_path).resolve()),
        "package": package_file(Path(args.daemon_python_path).resolve()),
        "redis_settings": args.redis_setting,
        "fleet_key": args.fleet_key,
        "scenarios": {},
    }
    print(f"daemon package: {results['package']}", flush=True)
    try:
        bench = Bench(args, world)
        for name in names:
            world.reset()
            started = time.monotonic()
            try:
                with ExitStack() as stack:
                    result = RUNNERS[name](bench, stack)
            except Exception as e:  # a broken scenario must not hide the others
                result = {"error": f"{type(e).__name__}: {e}"[:500]}
            result["scenario_s"] = round(time.monotonic() - started, 1)
            results["scenarios"][name] = result
            print(summary_line(name, result), flush=True)
    finally:
        world.close()
    print(json.dumps(results, separators=(",", ":")), flush=True)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--scenario", action="append", choices=list(RUNNERS))
    p.add_argument("--daemon-python-path", default=str(CHECKOUT), metavar="DIR")
    p.add_argument(
        "--redis-setting",
        action="append",
        default=[],
        metavar="LINE",
        help="a line for the daemons' [redis] table, e.g. 'key_file = \"/k\"'",
    )
    p.add_argument(
        "--fleet-key",
        action="store_true",
        help="seal the fleet's Redis values: a fresh [redis] fleet_key_file",
    )
    p.add_argument("--flood-domains", type=int, default=8)
    p.add_argument("--flood-s", type=float, default=30.0)
    p.add_argument("--rss-limit-mib", type=int, default=6144)
    p.add_argument("--poison-wait-s", type=float, default=8.0)
    p.add_argument("--slots", type=int, default=512)
    p.add_argument("--trickle-s", type=float, default=6.0)
    p.add_argument("--long-names-s", type=float, default=60.0)
    p.add_argument("--waiting", type=int, default=20_000)
    p.add_argument("--waiting-conns", type=int, default=2)
    p.add_argument(
        "--waiting-tail-s",
        type=float,
        default=12.0,
        metavar="S",
        help="log lines are counted this long after the last answer (65 s"
        " also sees a per-minute summary line)",
    )
    p.add_argument("--control-conns", type=int, default=2000)
    p.add_argument("--control-hold-s", type=float, default=20.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench_attacks.py needs root (network namespaces)")
    exit_on_sigterm()
    sys.exit(run(parse_args(sys.argv[1:])))
