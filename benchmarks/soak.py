"""A soak: mixed load with refresh churn and faults, for --minutes.

Two daemons of one fleet (this checkout, or --daemon-python-path) share a
redis-server in the integration test world (tests/integration/world.py);
each also has a SQLite store.  Policies are short-lived (max_age
--max-age, refetched every --refetch-after seconds, TXT ids re-checked every
30 s), so fetches, Redis writes and adoptions by the other host happen all
the time.  Load, paced:

  hot      --hot-domains published enforce domains, asked over socketmap by
           --hot-conns connections to daemon A and one to daemon B
           (--hot-rate lookups/s in all); each connection is replaced after
           500 lookups, as Postfix's idle connections are
  unknown  never-seen names (NXDOMAIN) to A, --unknown-rate/s, a new
           connection for each 20
  tcp      the hot domains over a tcp_table listener of A, --tcp-rate/s
  new      at the start of each fault slot a domain never seen before is
           published and asked of A (a fetch), then of B (an adoption)

Faults, five slots per --cycle-s seconds, each fault lasting --fault-s: two
policy hosts answer with a reset; the TXT records of two domains stop
answering (DNS timeouts); one domain publishes a new policy (new id, other
mx); Redis is stopped and started again; one slot is quiet.

Every 10 s it samples each daemon's VmRSS and open fds (/proc/PID/fd), the
lookups answered and failed, and its log lines of priority error or worse
(<0>-<3>).  A hot lookup fails unless it answers "OK secure" with the mx the
domain publishes (either one around a policy change), an unknown one unless
it answers NOTFOUND, a tcp_table one unless "200 secure".  At the end: the
duration, lookups and their rate, RSS median of the first 5 minutes vs the
last 5 (in %), fd min/max, and the error lines.  The last line is JSON.

    nice .venv/bin/python benchmarks/soak.py [--minutes 30] [--fleet-key]
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
from contextlib import suppress
from itertools import takewhile
from pathlib import Path
from typing import Any

from attack_world import (
    ERROR_PRIORITIES,
    HTTPS_IPS,
    Redis,
    World,
    WorldDaemon,
    daemon_config,
    exit_on_sigterm,
    fleet_key_setting,
    parser,
)
from bench_floods import Replies, frame, mib, package_file

from tests.integration.addresses import MX_GOOD

CHECKOUT = Path(__file__).resolve().parent.parent
SAMPLE_S = 10.0
RECONNECT_EVERY = 500
UNKNOWN_PER_CONNECTION = 20


class Stats:
    """Lookup counts per load class, safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.failures: list[str] = []
        self.latency: dict[str, list[float]] = {}

    def record(self, kind: str, ok: bool, seconds: float, detail: str) -> None:
        with self._lock:
            self.answered[kind] += 1
            self.latency.setdefault(kind, []).append(seconds)
            if not ok:
                self.failed[kind] += 1
                if len(self.failures) < 50:
                    self.failures.append(f"{kind}: {detail[:160]}")

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return sum(self.answered.values()), sum(self.failed.values())


class Soak:
    def __init__(self, args: argparse.Namespace, world: World) -> None:
        self.args, self.world = args, world
        self.tree = Path(args.daemon_python_path).resolve()
        self.domains = [f"soak{i}.test" for i in range(args.hot_domains)]
        # domain -> the mx names its answers may carry (two around a change)
        self.expected: dict[str, set[str]] = {d: {f"mx1.{d}"} for d in self.domains}
        self.policy_ids = dict.fromkeys(self.domains, 1)
        self.stats = Stats()
        self.stop = threading.Event()
        self.redis = Redis(world)
        self.events: list[str] = []
        self.started = 0.0
        self.daemon_pair: list[WorldDaemon] = []
        self.redis_settings = fleet_key_setting(world) if args.fleet_key else ""

    # -- world and daemons ---------------------------------------------------------

    def publish(self, domain: str, mx: str) -> None:
        self.world.publish(
            domain,
            mx={mx: MX_GOOD},
            max_age=self.args.max_age,
            policy_id=str(self.policy_ids[domain]),
            https_ip=HTTPS_IPS[0],
        )

    def daemons(self) -> list[WorldDaemon]:
        a = self.args
        extra = (
            f"[cache]\nrecheck_interval = 30.0\nnegative_ttl = 60.0\n"
            f"[refresh]\ninterval = 5.0\nrefetch_after = {a.refetch_after}\n"
            f"[fetch]\ntimeout = 10.0\n"
        )
        made = []
        for n, port in enumerate((8701, 8711)):
            tcp = (
                f'[[listener]]\nendpoint = "tcp:{port + 1}:interface=127.0.0.1"\n'
                'protocol = "tcp_table"\nmap = "postfix"\n'
            )
            work = self.world.work / f"soak-{'ab'[n]}"
            config = daemon_config(
                port,
                work,
                sqlite=True,
                redis=True,
                level="info",
                listeners=tcp,
                redis_settings=self.redis_settings,
                extra=extra,
            )
            daemon = WorldDaemon(self.world, self.tree, work.name, port, config)
            if not daemon.start():
                raise SystemExit(f"daemon {work.name} did not start: {daemon.lines()}")
            made.append(daemon)
        return made

    def note(self, text: str) -> None:
        at = time.monotonic() - self.started
        self.events.append(f"{at:7.1f} s {text}")

    # -- load -------------------------------------------------------------------------

    def paced(self, rate: float, body: Callable[[int], None]) -> Callable[[], None]:
        """A loop calling ``body(n)`` ``rate`` times a second until stopped."""

        def loop() -> None:
            n, period = 0, 1.0 / rate
            next_at = time.monotonic()
            while not self.stop.is_set():
                with suppress(Exception):
                    body(n)
                n += 1
                next_at += period
                self.stop.wait(max(0.0, next_at - time.monotonic()))

        return loop

    def socketmap_client(self, daemon: WorldDaemon, kind: str) -> Callable[[int], None]:
        sock: list[socket.socket] = []

        def ask(n: int) -> None:
            domain = self.domains[n % len(self.domains)]
            if kind == "unknown":
                domain = f"u{n}-{os.getpid()}.unknown.test"
            fresh = n % (
                UNKNOWN_PER_CONNECTION if kind == "unknown" else RECONNECT_EVERY
            )
            if sock and fresh == 0:
                sock.pop().close()
            started = time.monotonic()
            try:
                if not sock:
                    sock.append(daemon.connect(timeout=10))
                sock[0].settimeout(100)
                sock[0].sendall(frame(domain))
                replies = Replies()
                replies.receive(sock[0], 1, started + 100)
                reply = (replies.first or b"").decode(errors="replace")
            except OSError as e:
                reply = f"error: {e}"
                if sock:
                    sock.pop().close()
            seconds = time.monotonic() - started
            if kind == "unknown":
                ok = reply.startswith("NOTFOUND")
            else:
                ok = reply.startswith("OK secure") and any(
                    f"match={mx} " in reply + " " for mx in self.expected[domain]
                )
            if not reply and sock:
                sock.pop().close()
            self.stats.record(kind, ok, seconds, f"{domain} {reply}")

        return ask

    def tcp_client(self, daemon: WorldDaemon) -> Callable[[int], None]:
        holder: list[Any] = []

        def ask(n: int) -> None:
            domain = self.domains[n % len(self.domains)]
            started = time.monotonic()
            try:
                if not holder:
                    sock = self.world.mta.connect("127.0.0.1", daemon.port + 1, 10)
                    sock.settimeout(100)
                    holder.extend([sock, sock.makefile("rb")])
                holder[0].sendall(f"get {domain}\n".encode())
                reply = holder[1].readline().decode(errors="replace").strip()
                if not reply:
                    raise OSError("closed")
            except OSError as e:
                reply = f"error: {e}"
                for item in holder:
                    item.close()
                holder.clear()
            ok = reply.startswith("200 secure")
            self.stats.record(
                "tcp", ok, time.monotonic() - started, f"{domain} {reply}"
            )

        return ask

    def new_domain(self, domain: str) -> None:
        """Publish a domain never seen before, ask A (which fetches it) and
        then B (which may adopt it from Redis)."""
        self.policy_ids[domain] = 1
        self.expected[domain] = {f"mx1.{domain}"}
        self.publish(domain, f"mx1.{domain}")
        for daemon in self.daemon_pair:
            started = time.monotonic()
            answer = daemon.ask(domain)
            reply = answer.get("reply", answer["status"])
            ok = reply.startswith("OK secure") and f"match=mx1.{domain} " in reply + " "
            self.stats.record(
                "new", ok, time.monotonic() - started, f"{domain} {reply}"
            )

    # -- faults -----------------------------------------------------------------------

    def faults(self) -> None:
        a, world = self.args, self.world
        cycle = 0
        while not self.stop.wait(a.cycle_s / 5):
            cycle += 1
            step = cycle % 5
            self.new_domain(f"fresh{cycle}.test")
            if step == 1:  # two policy hosts reset every connection
                hosts = [f"mta-sts.{d}" for d in self.domains[:2]]
                for host in hosts:
                    world.https.update_host(host, abort="reset")
                self.note(f"policy hosts down: {hosts}")
                self.stop.wait(a.fault_s)
                for host in hosts:
                    world.https.update_host(host, abort=None)
                self.note("policy hosts up")
            elif step == 2:  # two TXT records time out
                names = [f"_mta-sts.{d}" for d in self.domains[2:4]]
                for name in names:
                    world.dns.drop(name)
                self.note(f"DNS timeouts: {names}")
                self.stop.wait(a.fault_s)
                for name in names:
                    world.dns.clear_fault(name)
                self.note("DNS answers again")
            elif step == 3:  # a new policy: new id, other mx
                domain = self.domains[4 + cycle // 5 % (len(self.domains) - 4)]
                self.policy_ids[domain] += 1
                mx = f"mx{self.policy_ids[domain]}.{domain}"
                self.expected[domain] = {*self.expected[domain], mx}
                self.publish(domain, mx)
                self.note(f"policy change: {domain} id={self.policy_ids[domain]}")
            elif step == 4:
                self.redis.stop()
                self.note("redis stopped")
                self.stop.wait(a.fault_s / 2)
                self.redis.start()
                self.note("redis started")

    # -- measuring --------------------------------------------------------------------

    def sample(self, daemons: list[WorldDaemon]) -> dict[str, Any]:
        answered, failed = self.stats.snapshot()
        row: dict[str, Any] = {
            "t": round(time.monotonic() - self.started, 1),
            "answered": answered,
            "failed": failed,
        }
        for daemon in daemons:
            lines = daemon.lines()
            row[daemon.name] = {
                "rss_mib": mib(daemon.rss_kib()),
                "fds": daemon.fd_count(),
                "errors": sum(x[:3] in ERROR_PRIORITIES for x in lines),
                "warnings": sum(x[:3] == "<4>" for x in lines),
                "alive": daemon.alive(),
            }
        return row

    def run(self) -> dict[str, Any]:
        a = self.args
        self.redis.start()
        with self.world.dns.batch():
            for domain in self.domains:
                self.publish(domain, f"mx1.{domain}")
        daemon_a, daemon_b = daemons = self.daemon_pair = self.daemons()
        for domain in self.domains:  # warm: every hot domain fetched once
            daemon_a.ask(domain)
        self.started = time.monotonic()
        hot_rate = a.hot_rate / (a.hot_conns + 1)
        loops = [self.paced(hot_rate, self.socketmap_client(daemon_a, "hot"))]
        loops += [
            self.paced(hot_rate, self.socketmap_client(daemon_a, "hot"))
            for _ in range(a.hot_conns - 1)
        ]
        loops.append(self.paced(hot_rate, self.socketmap_client(daemon_b, "hot")))
        loops.append(
            self.paced(a.unknown_rate, self.socketmap_client(daemon_a, "unknown"))
        )
        loops.append(self.paced(a.tcp_rate, self.tcp_client(daemon_a)))
        loops.append(self.faults)
        threads = [threading.Thread(target=f, daemon=True) for f in loops]
        for t in threads:
            t.start()
        samples = []
        deadline = self.started + a.minutes * 60
        while time.monotonic() < deadline:
            samples.append(self.sample(daemons))
            print(json.dumps(samples[-1], separators=(",", ":")), flush=True)
            time.sleep(max(0.0, min(SAMPLE_S, deadline - time.monotonic())))
        self.stop.set()
        for t in threads:
            t.join(120)
        samples.append(self.sample(daemons))
        return self.report(daemons, samples)

    def report(
        self, daemons: list[WorldDaemon], samples: list[dict[str, Any]]
    ) -> dict[str, Any]:
        duration = samples[-1]["t"]
        answered, failed = self.stats.snapshot()
        edge = min(300.0, duration / 3)
        out: dict[str, Any] = {
            "tree": str(self.tree),
            "package": package_file(self.tree),
            "duration_s": duration,
            "lookups": answered,
            "failed": failed,
            "rate_per_s": round(answered / duration, 1) if duration else None,
            "by_kind": dict(self.stats.answered),
            "failed_by_kind": dict(self.stats.failed),
            "failures": self.stats.failures,
            "latency_p99_s": {
                k: round(sorted(v)[int(len(v) * 0.99)], 3)
                for k, v in self.stats.latency.items()
                if v
            },
            "window_s": edge,
            "events": self.events,
            "daemons": {},
            "samples": samples,
        }
        for daemon in daemons:
            rows = [s[daemon.name] for s in samples]
            first = [
                r["rss_mib"]
                for s, r in zip(samples, rows, strict=True)
                if s["t"] <= edge
            ]
            last = [
                r["rss_mib"]
                for s, r in zip(samples, rows, strict=True)
                if s["t"] >= duration - edge
            ]
            fds = [r["fds"] for r in rows if r["fds"] is not None]
            lines = daemon.lines()
            errors = [x[:300] for x in lines if x[:3] in ERROR_PRIORITIES]
            head = statistics.median(first) if first else None
            tail = statistics.median(last) if last else None
            out["daemons"][daemon.name] = {
                "rss_first_median_mib": head,
                "rss_last_median_mib": tail,
                "rss_change_pct": round((tail - head) * 100 / head, 1)
                if head and tail
                else None,
                "rss_max_mib": max(r["rss_mib"] or 0 for r in rows),
                "fd_min": min(fds) if fds else None,
                "fd_max": max(fds) if fds else None,
                "fd_last": fds[-1] if fds else None,
                "error_lines": len(errors),
                "errors": errors[:20],
                "warning_lines": sum(x[:3] == "<4>" for x in lines),
                "log_lines": len(lines),
                "log_events": dict(churn(lines).most_common(12)),
                "alive": daemon.alive(),
                "log_tail": [x[:200] for x in lines[-3:]],
            }
            daemon.stop()
        self.redis.stop()
        return out


def churn(lines: list[str]) -> Counter[str]:
    """Log lines by their message: the words before the first ``key=``."""
    words = (line[3:].split(" ") for line in lines)
    return Counter(
        f"{line[:3]} " + " ".join(w for w in takewhile(lambda w: "=" not in w, ws))
        for line, ws in zip(lines, words, strict=True)
    )


def print_summary(r: dict[str, Any]) -> None:
    print(f"daemon package: {r['package']}")
    print(
        f"duration {r['duration_s'] / 60:.1f} min  lookups {r['lookups']}"
        f" ({r['rate_per_s']}/s)  failed {r['failed']} {r['failed_by_kind']}"
        f"  p99 {r['latency_p99_s']}"
    )
    for name, d in r["daemons"].items():
        print(
            f"{name}: RSS median first {r['window_s'] / 60:.1f} min"
            f" {d['rss_first_median_mib']} MiB, last {d['rss_last_median_mib']} MiB"
            f" ({d['rss_change_pct']:+} %), max {d['rss_max_mib']} MiB;"
            f" fds {d['fd_min']}-{d['fd_max']} (last {d['fd_last']});"
            f" error lines {d['error_lines']}; warnings {d['warning_lines']};"
            f" alive {d['alive']}"
        )
        print(f"   log: {d['log_events']}")
        for line in d["errors"]:
            print(f"   {line}")
    for line in r["failures"][:10]:
        print(f"   failed {line}")
    print(f"faults: {len(r['events'])} events")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--daemon-python-path", default=str(CHECKOUT), metavar="DIR")
    p.add_argument("--hot-domains", type=int, default=20)
    p.add_argument("--hot-conns", type=int, default=2, help="to daemon A")
    p.add_argument("--hot-rate", type=float, default=60.0)
    p.add_argument("--unknown-rate", type=float, default=3.0)
    p.add_argument("--tcp-rate", type=float, default=5.0)
    p.add_argument("--max-age", type=int, default=600)
    p.add_argument("--refetch-after", type=float, default=60.0)
    p.add_argument("--cycle-s", type=float, default=180.0)
    p.add_argument("--fault-s", type=float, default=30.0)
    p.add_argument(
        "--fleet-key",
        action="store_true",
        help="seal the fleet's Redis values: a fresh [redis] fleet_key_file",
    )
    p.add_argument("--json-out", type=Path, help="also write the JSON result here")
    return p.parse_args(argv)


def main() -> int:
    args = parse_args(sys.argv[1:])
    if os.geteuid() != 0:
        sys.exit("soak.py needs root (network namespaces)")
    exit_on_sigterm()
    world = World.create()
    try:
        result = Soak(args, world).run()
    finally:
        world.close()
    print_summary(result)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
