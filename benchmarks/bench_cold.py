"""Cold discovery: N new MTA-STS domains asked over C connections.

Each rep publishes --domains new domains in the integration test world
(tests/integration/world.py) in one DNS reload: ``_mta-sts`` TXT, an MX
with its A record, and a policy host ``mta-sts.<domain>`` with a
certificate of its own (the world's HTTPS server picks it by SNI).  A fresh
`postfix-mtasts serve` (from --daemon-python-path, default this checkout;
pinned to CPU 0 with taskset, the world and this client on the other
CPUs) then gets every new domain once over --connections connections,
each sequential like Postfix.  A lookup answered with anything but
``OK secure`` is asked again on the same connection until --deadline-s.
Meanwhile one extra connection asks enforce.test (cached before the cold
phase) every --hot-interval-ms, in a forked process of its own.

Reported per rep, then as medians: wall time until all N answer secure,
policies/s, daemon CPU seconds (/proc/PID/stat) and CPU ms per policy,
daemon CPU share of the wall time, HTTPS requests (the world's request
log) and DNS queries (unbound's ``total.num.queries``, stats_noreset) per
policy, retries, RSS before/after, and the hot lookup's p50/p99/max before
(baseline) and during the cold phase.  The last line is JSON with it all.

--profile FILE runs the daemon of the last rep under cProfile (``python -m
cProfile -o FILE``); the file covers start-up too and is written when the
daemon exits on SIGTERM.  --py-spy FILE samples the last rep's daemon with
py-spy (``pip install py-spy`` into the venv) during the cold phase only,
without slowing it much (collapsed stacks).  benchmarks/profile_layers.py
reads either and sums the time per layer.  Needs root (network namespaces).

--peer VENV runs the peer daemon, postfix-mta-sts-resolver, from a venv made
by scripts/peer-venv (benchmarks/peer.py: how it is configured) in the same
world, the same way, instead of ours; with --compare each rep runs both on
domains of their own, alternating who goes first, and the medians of each
and the peer's over ours follow (``peer median ...``, ``peer/ours ...``).

    .venv/bin/python benchmarks/bench_cold.py [--domains 1000]
        [--connections 100] [--reps 3] [--daemon-python-path DIR]
        [--profile FILE] [--peer VENV [--compare]]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from attack_world import World, WorldDaemon, daemon_config, exit_on_sigterm, parser
from bench_floods import cpu_s, frame, package_file, rss_kib
from peer import PeerDaemon, describe, peer_config

CHECKOUT = Path(__file__).resolve().parent.parent
PORT = 8660
HOT_DOMAIN = "enforce.test"
BASELINE_S = 2.0
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class ColdDaemon(WorldDaemon):
    """The daemon pinned to one CPU, optionally under cProfile."""

    def __init__(
        self, *args: Any, cpu: str | None, profile: Path | None, trust: Path | None
    ) -> None:
        super().__init__(*args)
        self.cpu, self.profile, self.trust = cpu, profile, trust

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.trust is not None:
            env["SSL_CERT_FILE"] = str(self.trust)
        return env

    def python(self, *argv: str | Path) -> list[str]:
        pin = ["taskset", "-c", self.cpu] if self.cpu is not None else []
        prof = ["-m", "cProfile", "-o", str(self.profile)] if self.profile else []
        return [*pin, sys.executable, *prof, "-m", "postfix_mtasts", *map(str, argv)]


def read_reply(sock: socket.socket, deadline: float) -> bytes:
    """One netstring reply from a blocking socket."""
    buf = b""
    while True:
        colon = buf.find(b":")
        if colon > 0 and len(buf) >= colon + 2 + int(buf[:colon]):
            return buf[colon + 1 : colon + 1 + int(buf[:colon])]
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(4096)
        if not data:
            raise OSError("connection closed")
        buf += data


def hot_probe(sock: socket.socket, interval: float, stop: Any, out: Connection) -> None:
    """Ask HOT_DOMAIN on ``sock`` every ``interval`` s until ``stop`` is
    set; send back (sent_at, seconds, secure) triples."""
    samples: list[tuple[float, float, bool]] = []
    request = frame(HOT_DOMAIN)
    while not stop.is_set():
        started = time.monotonic()
        try:
            sock.sendall(request)
            reply = read_reply(sock, started + 10)
        except (OSError, ValueError):
            samples.append((started, time.monotonic() - started, False))
            break
        samples.append((started, time.monotonic() - started, b"secure" in reply))
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    out.send(samples)
    out.close()


class HotProbe:
    """hot_probe in a forked process (its own GIL), on a socket of $P-mta."""

    def __init__(self, daemon: WorldDaemon, interval: float) -> None:
        ctx = multiprocessing.get_context("fork")
        self.stop_event = ctx.Event()
        self.recv, send = ctx.Pipe(duplex=False)
        sock = daemon.connect()
        self.proc = ctx.Process(
            target=hot_probe, args=(sock, interval, self.stop_event, send)
        )
        self.proc.start()
        sock.close()
        send.close()

    def stop(self) -> list[tuple[float, float, bool]]:
        self.stop_event.set()
        samples: list[tuple[float, float, bool]] = []
        if self.recv.poll(30):
            samples = self.recv.recv()
        self.proc.join(10)
        return samples


def latency(samples: list[tuple[float, float, bool]], start: float, end: float) -> Any:
    """p50/p99/max in ms of the samples sent in [start, end)."""
    ms = sorted(s * 1000 for t, s, _ in samples if start <= t < end)
    if not ms:
        return {"count": 0}
    bad = sum(1 for t, _, ok in samples if start <= t < end and not ok)
    return {
        "count": len(ms),
        "p50_ms": round(ms[len(ms) // 2], 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "max_ms": round(ms[-1], 3),
        "not_secure": bad,
    }


class Conn:
    """One cold connection: its domains, asked one after another."""

    def __init__(self, sock: socket.socket, domains: list[str]) -> None:
        self.sock, self.domains = sock, domains
        self.buf = b""
        self.index = 0
        self.retry_at: float | None = None

    def send(self) -> None:
        self.sock.sendall(frame(self.domains[self.index]))

    def replies(self) -> list[bytes]:
        out = []
        while (colon := self.buf.find(b":")) > 0:
            size = int(self.buf[:colon])
            if len(self.buf) < colon + 2 + size:
                break
            out.append(self.buf[colon + 1 : colon + 1 + size])
            self.buf = self.buf[colon + 2 + size :]
        return out


def cold_phase(
    daemon: WorldDaemon,
    domains: list[str],
    conns: int,
    deadline_s: float,
    retry_s: float,
) -> dict[str, Any]:
    """Every domain once, split over ``conns`` sequential connections;
    returns the wall time until the last answered secure, retries and the
    non-secure answers seen."""
    sel = selectors.DefaultSelector()
    per = [domains[i::conns] for i in range(conns)]
    live: list[Conn] = []
    for part in per:
        if part:
            conn = Conn(daemon.connect(), part)
            conn.sock.setblocking(False)
            live.append(conn)
    started = time.monotonic()
    deadline = started + deadline_s
    for conn in live:
        conn.send()
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    retries, seen, done, last = 0, {}, 0, started
    waiting: list[Conn] = []
    while done < len(domains) and time.monotonic() < deadline:
        now = time.monotonic()
        for conn in [
            c for c in waiting if c.retry_at is not None and c.retry_at <= now
        ]:
            waiting.remove(conn)
            conn.retry_at = None
            conn.send()
        timeout = retry_s if waiting else 1.0
        for key, _ in sel.select(timeout):
            conn = key.data
            data = conn.sock.recv(65536)
            if not data:
                raise OSError("the daemon closed a connection")
            conn.buf += data
            for reply in conn.replies():
                if reply.startswith(b"OK ") and b"secure" in reply:
                    done += 1
                    last = time.monotonic()
                    conn.index += 1
                    if conn.index < len(conn.domains):
                        conn.send()
                else:
                    retries += 1
                    word = reply.split(b" ", 1)[0].decode(errors="replace")
                    seen[word] = seen.get(word, 0) + 1
                    conn.retry_at = time.monotonic() + retry_s
                    waiting.append(conn)
    for conn in live:
        sel.unregister(conn.sock)
        conn.sock.close()
    return {
        "secure": done,
        "wall_s": round(last - started, 3),
        "started": started,
        "ended": last,
        "retries": retries,
        "retry_answers": seen,
    }


def dns_queries(world: World) -> int | None:
    with suppress(Exception):
        text = world.dns.control("stats_noreset")
        match = re.search(r"^total\.num\.queries=(\d+)$", text, re.M)
        if match:
            return int(match.group(1))
    return None


def system_trust(world: World) -> Path:
    """The system's CA bundle plus the world's CA: what a daemon trusts in
    production (loading 140-odd CAs into a TLS context has a cost the
    world's one-CA file hides)."""
    path = world.work / "system-plus-test-ca.pem"
    bundle = Path(SYSTEM_BUNDLE).read_bytes()
    path.write_bytes(bundle + b"\n" + Path(world.pki.ca_pem).read_bytes())
    return path


def user_sys(pid: int) -> tuple[float, float] | None:
    """User and system CPU seconds of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def side_cpu(world: World) -> dict[str, float]:
    """CPU seconds of the world's HTTPS server and unbound and of this
    client (all on the CPUs the daemon does not have)."""
    out = {"client": time.process_time()}
    for proc in world.procs:
        if proc.name in ("https", "unbound") and (used := cpu_s(proc.pid)) is not None:
            out[proc.name] = used
    return out


def wait_secure(daemon: WorldDaemon, domain: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "secure" in str(daemon.ask(domain).get("reply", "")):
            return True
        time.sleep(0.1)
    return False


def start_py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (collapsed stacks, one line per stack) until
    SIGINT; it needs the py-spy binary beside this interpreter."""
    binary = Path(sys.executable).parent / "py-spy"
    argv = [str(binary), "record", "--pid", str(pid), "--rate", "250"]
    argv += ["--format", "raw", "--output", out, "--nonblocking"]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    return spy


def start_daemon(
    args: argparse.Namespace,
    world: World,
    server: str,
    name: str,
    profile: Path | None,
) -> WorldDaemon:
    """Ours (from --daemon-python-path) or the peer (from --peer), pinned
    alike, trusting the same CAs."""
    cpu = None if args.no_pin else args.daemon_cpu
    trust = system_trust(world) if args.system_trust else None
    daemon: WorldDaemon
    if server == "peer":
        config = peer_config(args.port, peer_cache_size(args))
        venv = Path(args.peer).resolve()
        daemon = PeerDaemon(
            world, venv, name, args.port, config, cpu=cpu, profile=profile, trust=trust
        )
    else:
        extra = "\n".join(f"[{table}]\n{line}" for table, line in args.setting)
        config = daemon_config(args.port, world.work / name, extra=extra)
        tree = Path(args.daemon_python_path).resolve()
        daemon = ColdDaemon(
            world, tree, name, args.port, config, cpu=cpu, profile=profile, trust=trust
        )
    if not daemon.start():
        raise RuntimeError(f"{server} daemon did not start: {daemon.lines()[-5:]}")
    return daemon


def peer_cache_size(args: argparse.Namespace) -> int:
    """Room for every domain of a rep and the world's own, so that the
    peer's LRU cache evicts nothing."""
    return max(10_000, 2 * args.domains + 100)


def one_rep(
    args: argparse.Namespace,
    world: World,
    rep: int,
    profile: Path | None,
    server: str = "ours",
    spy_path: str | None = None,
) -> dict[str, Any]:
    world.reset()
    prefix = "peer" if server == "peer" else "cold"
    domains = [f"{prefix}{rep}-{i}.test" for i in range(args.domains)]
    t0 = time.monotonic()
    world.publish_new(domains)
    publish_s = time.monotonic() - t0
    daemon = start_daemon(args, world, server, f"{prefix}-{rep}", profile)
    try:
        if not wait_secure(daemon, HOT_DOMAIN):
            raise RuntimeError(f"{HOT_DOMAIN} never answered secure")
        time.sleep(0.5)
        world.https.clear_log()
        rss_before = rss_kib(daemon.pid)
        probe = HotProbe(daemon, args.hot_interval_ms / 1000)
        time.sleep(BASELINE_S)
        spy = start_py_spy(daemon.pid, spy_path) if spy_path else None
        dns0, cpu0, side0 = dns_queries(world), cpu_s(daemon.pid), side_cpu(world)
        split0 = user_sys(daemon.pid)
        cold = cold_phase(
            daemon, domains, args.connections, args.deadline_s, args.retry_ms / 1000
        )
        cpu1, dns1, side1 = cpu_s(daemon.pid), dns_queries(world), side_cpu(world)
        split1 = user_sys(daemon.pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        time.sleep(0.5)
        samples = probe.stop()
        rss_after = rss_kib(daemon.pid)
        rss_idle = None
        if args.idle_s > 0:  # the pool's idle connections (and contexts) close
            time.sleep(args.idle_s)
            rss_idle = rss_kib(daemon.pid)
        fetches = sum(
            1
            for e in world.https.requests()
            if e.get("host", "").startswith("mta-sts.")
        )
    finally:
        daemon.stop()
    n = cold["secure"] or 1
    cpu_used = (cpu1 or 0.0) - (cpu0 or 0.0)
    wall = cold["wall_s"] or 1e-9
    return {
        "rep": rep,
        "server": server,
        "publish_s": round(publish_s, 2),
        "secure": cold["secure"],
        "wall_s": cold["wall_s"],
        "policies_per_s": round(cold["secure"] / wall, 1),
        "daemon_cpu_s": round(cpu_used, 3),
        "cpu_ms_per_policy": round(cpu_used * 1000 / n, 3),
        "daemon_cpu_share": round(cpu_used / wall, 3),
        "daemon_sys_s": (
            round(split1[1] - split0[1], 3) if split0 and split1 else None
        ),
        "https_requests_per_policy": round(fetches / n, 3),
        "dns_queries_per_policy": (
            round((dns1 - dns0) / n, 3)
            if dns0 is not None and dns1 is not None
            else None
        ),
        "side_cpu_s": {k: round(side1[k] - side0[k], 2) for k in side0 if k in side1},
        "retries": cold["retries"],
        "retry_answers": cold["retry_answers"],
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_after_idle_kib": rss_idle,
        "hot_baseline": latency(samples, 0.0, cold["started"]),
        "hot_cold": latency(samples, cold["started"], cold["ended"]),
    }


MEDIAN_KEYS = (
    "wall_s",
    "policies_per_s",
    "daemon_cpu_s",
    "cpu_ms_per_policy",
    "daemon_cpu_share",
    "daemon_sys_s",
    "https_requests_per_policy",
    "dns_queries_per_policy",
    "retries",
    "rss_before_kib",
    "rss_after_kib",
    "rss_after_idle_kib",
    "hot_baseline.p50_ms",
    "hot_baseline.p99_ms",
    "hot_baseline.max_ms",
    "hot_cold.p50_ms",
    "hot_cold.p99_ms",
    "hot_cold.max_ms",
)


def pick(rep: dict[str, Any], path: str) -> Any:
    value: Any = rep
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def medians(
    reps: list[dict[str, Any]], keys: tuple[str, ...] = MEDIAN_KEYS
) -> dict[str, Any]:
    """The median of each of ``keys`` (dotted paths) over ``reps``."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [v for r in reps if (v := pick(r, key)) is not None]
        out[key] = statistics.median(values) if values else None
    return out


RATIO_KEYS = (
    "wall_s",
    "cpu_ms_per_policy",
    "policies_per_s",
    "rss_after_kib",
    "hot_cold.p99_ms",
)


def servers_of(args: argparse.Namespace, rep: int) -> list[str]:
    """Who runs in this rep, in order: with --compare both, the first
    alternating, so drift on a shared machine falls on each alike."""
    if args.compare:
        return ["ours", "peer"] if rep % 2 == 0 else ["peer", "ours"]
    return ["peer"] if args.peer else ["ours"]


def ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, float | None]:
    """Peer's median over ours, per key (above 1: the peer takes more)."""
    return {
        key: round(peer[key] / ours[key], 3)
        if peer.get(key) and ours.get(key)
        else None
        for key in RATIO_KEYS
    }


def run(args: argparse.Namespace) -> int:
    tree = Path(args.daemon_python_path).resolve()
    if not args.no_pin and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        others = set(range(os.cpu_count() or 1)) - {int(args.daemon_cpu)}
        os.sched_setaffinity(0, others)  # the world's servers inherit this
    results: dict[str, Any] = {
        "tree": str(tree),
        "package": package_file(tree),
        "domains": args.domains,
        "connections": args.connections,
        "daemon_cpu": None if args.no_pin else args.daemon_cpu,
        "dns_queries_from": "unbound total.num.queries (stats_noreset)",
        "certificates": "one per policy host (world pki, chosen by SNI)",
        "trust": SYSTEM_BUNDLE + " + world CA" if args.system_trust else "world CA",
        "settings": [f"[{table}] {line}" for table, line in args.setting],
        "reps": [],
    }
    if args.peer:
        results["peer"] = describe(Path(args.peer).resolve(), peer_cache_size(args))
        print(f"peer: {results['peer']['version']} in {args.peer}", flush=True)
    if args.compare or not args.peer:
        print(f"daemon package: {results['package']}", flush=True)
    world = World.create()
    try:
        for rep in range(args.reps):
            order = servers_of(args, rep)
            for server in order:
                last = rep == args.reps - 1 and server == order[-1]
                profile = (
                    Path(args.profile).resolve() if args.profile and last else None
                )
                spy = args.py_spy if args.py_spy and last else None
                result = one_rep(args, world, rep, profile, server, spy)
                results["reps"].append(result)
                print(json.dumps(result, separators=(",", ":")), flush=True)
    finally:
        world.close()
    ours = [r for r in results["reps"] if r["server"] == "ours"]
    theirs = [r for r in results["reps"] if r["server"] == "peer"]
    if ours:
        results["median"] = medians(ours)
        for key, value in results["median"].items():
            print(f"median {key}: {value}", flush=True)
    if theirs:
        results["peer"]["median"] = medians(theirs)
        for key, value in results["peer"]["median"].items():
            print(f"peer median {key}: {value}", flush=True)
    if ours and theirs:
        results["peer_over_ours"] = ratios(results["median"], results["peer"]["median"])
        for key, ratio in results["peer_over_ours"].items():
            print(f"peer/ours {key}: {ratio}", flush=True)
    print(json.dumps(results, separators=(",", ":")), flush=True)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--domains", type=int, default=1000)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--daemon-python-path", default=str(CHECKOUT), metavar="DIR")
    p.add_argument("--daemon-cpu", default="0", help="taskset CPU for the daemon")
    p.add_argument("--no-pin", action="store_true", help="no CPU pinning")
    p.add_argument("--deadline-s", type=float, default=120.0)
    p.add_argument("--retry-ms", type=float, default=20.0)
    p.add_argument("--hot-interval-ms", type=float, default=5.0)
    p.add_argument(
        "--setting",
        nargs=2,
        action="append",
        default=[],
        metavar=("TABLE", "LINE"),
        help="a line of our daemon's config in its own table, e.g."
        " --setting fetch 'max_in_flight = 8'",
    )
    p.add_argument(
        "--idle-s",
        type=float,
        default=0.0,
        help="also read RSS this long after the cold phase (the daemon's"
        " HTTPS pool keeps a connection per host for 30 s)",
    )
    p.add_argument("--profile", metavar="FILE", help="cProfile the last rep's daemon")
    p.add_argument(
        "--system-trust",
        action="store_true",
        help=f"the daemon trusts {SYSTEM_BUNDLE} plus the world's CA",
    )
    p.add_argument(
        "--py-spy",
        metavar="FILE",
        help="py-spy (collapsed stacks) on the last rep's cold phase only",
    )
    p.add_argument(
        "--peer",
        metavar="VENV",
        help="the peer daemon from this venv (scripts/peer-venv) instead of ours",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="with --peer: ours and the peer in each rep, alternating who goes"
        " first, each on fresh domains; medians of both and their ratio",
    )
    args = p.parse_args(argv)
    if args.compare and not args.peer:
        p.error("--compare needs --peer VENV")
    return args


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench_cold.py needs root (network namespaces)")
    exit_on_sigterm()
    sys.exit(run(parse_args(sys.argv[1:])))
