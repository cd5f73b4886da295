"""Floods against the real daemon: memory growth, backpressure, idle close and
starvation of a valid domain, one fresh daemon per scenario.

Each scenario starts `python -m postfix_mtasts serve --config FILE` from the
tree given by --daemon-python-path (default: this checkout), with a
memory-only store, a control socket in a temporary directory and
`[log] level = "warn"`, and talks socketmap netstrings to it.  It prints the
daemon's RSS (VmRSS) before the flood, at its peak (sampled every 100 ms)
and after the flood has drained, and the answers and latency of probe
lookups of a valid enforce domain (good.test), each on a connection of its
own, during and after the flood.  The last line holds every figure as JSON.

Scenarios (counts at --scale 1):
  distinct-domains          100,000 never-seen domains whose TXT lookups get
                            NXDOMAIN at once, [cache] max_entries = 1000
  pipelined-dead-dns        200,000 lookups of one domain whose DNS never
                            answers, pipelined on one connection and not read
                            for --no-read-s seconds
  slow-then-instant         one lookup with dead DNS, then 1,000,000 parent
                            probes (".example.com", answered without network)
                            on the same connection, not read for a while
  never-reads               20,000 lookups with long answers (a cached policy
                            with 100 mx) from a client that never reads,
                            [server] idle_timeout = 5: when does the daemon
                            let the connection go?
  starvation                50 connections x 201 lookups pending on dead DNS;
                            good.test asked at +0 s and at +60 s, (a) not
                            cached, (b) cached but due for a TXT re-check
  unresolvable-policy-hosts 20 domains whose TXT answers but whose policy host
                            never resolves, then good.test (not cached)

In the first four, good.test is imported fresh into the cache first, so a
probe measures only how long the daemon takes to get to it.  As root the run
moves itself into a network namespace of its own (loopback only,
/etc/netns/NAME/resolv.conf = 127.0.0.1): a small DNS server (flood_dns.py)
listens on 127.0.0.1:53, so the daemon's own DNS client and the system
resolver (getaddrinfo) ask the same server, and good.test's policy host
(tests/integration/servers/https_server.py, a trustme CA) on 127.0.0.2:443.
Without root the last two scenarios are skipped.

    sudo .venv/bin/python benchmarks/bench_floods.py [--scenario all]
        [--scale 1.0] [--daemon-python-path DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
HTTPS_SERVER = CHECKOUT / "tests" / "integration" / "servers" / "https_server.py"
NETNS_ENV = "MTASTS_FLOODS_NETNS"

GOOD = "good.test"
GOOD_HOST_IP = "127.0.0.2"
GOOD_MX = "mx.good.test"
POLICY = f"version: STSv1\nmode: enforce\nmx: {GOOD_MX}\nmax_age: 86400\n"
STS_RECORD = "v=STSv1; id=1;"
DEAD_NAMESERVER = "127.0.0.1:9"  # nothing listens there: no query is answered
PROBE_TIMEOUT_S = 100.0  # Postfix gives up on a socketmap reply after 100 s
SETTLE_S = 2.0  # after a flood drains, before the "after" RSS sample
MAX_RUN_S = 4 * 3600.0  # the whole run, namespace included

SCENARIOS = (
    "distinct-domains",
    "pipelined-dead-dns",
    "slow-then-instant",
    "never-reads",
    "starvation",
    "unresolvable-policy-hosts",
)

CONFIG = """\
[[listener]]
endpoint = "tcp:{port}:interface=127.0.0.1"
[dns]
nameservers = ["{nameserver}"]
timeout = 5.0
attempts = 2
[fetch]
ca_file = "{ca_file}"
[cache]
max_entries = {max_entries}
recheck_interval = {recheck_interval}
[server]
idle_timeout = {idle_timeout}
[store]
path = ""
[control]
socket = "{control}"
[log]
level = "warn"
"""


class ScenarioError(Exception):
    """The scenario could not run (daemon did not start, world not ready)."""


# -- measuring -------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def rss_kib(pid: int) -> int | None:
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def cpu_s(pid: int) -> float | None:
    """User plus system CPU seconds of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frame(key: str, map_name: str = "postfix") -> bytes:
    request = f"{map_name} {key}".encode()
    return b"%d:%s," % (len(request), request)


def scaled(value: int, scale: float) -> int:
    return max(1, round(value * scale))


class Replies:
    """Counts netstring replies by status (OK, NOTFOUND, TEMP, PERM)."""

    def __init__(self) -> None:
        self._buffer = b""
        self.count = 0
        self.statuses: Counter[str] = Counter()
        self.first: bytes | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None

    def feed(self, data: bytes) -> None:
        buf = self._buffer + data
        pos, before = 0, self.count
        while (colon := buf.find(b":", pos)) >= 0:
            end = colon + 1 + int(buf[pos:colon])
            if end >= len(buf):
                break
            payload = buf[colon + 1 : end]
            if self.first is None:
                self.first = payload
            self.statuses[payload.partition(b" ")[0].decode()] += 1
            self.count += 1
            pos = end + 1
        self._buffer = buf[pos:]
        if self.count > before:
            self.last_at = time.monotonic()
            self.first_at = self.first_at or self.last_at

    def receive(self, sock: socket.socket, expected: int, deadline: float) -> None:
        """Read from ``sock`` until ``expected`` replies, EOF or ``deadline``."""
        sock.settimeout(0.5)
        with suppress(OSError):
            while self.count < expected and time.monotonic() < deadline:
                try:
                    data = sock.recv(1 << 20)
                except TimeoutError:
                    continue
                if not data:
                    return
                self.feed(data)


def summary(replies: list[Replies], started: float) -> dict[str, Any]:
    """Replies of several connections: count, statuses, first and last (s)."""
    statuses: Counter[str] = Counter()
    for r in replies:
        statuses.update(r.statuses)
    firsts = [r.first_at - started for r in replies if r.first_at]
    lasts = [r.last_at - started for r in replies if r.last_at]
    return {
        "answered": sum(r.count for r in replies),
        "statuses": dict(statuses),
        "first_reply_s": round(min(firsts), 2) if firsts else None,
        "last_reply_s": round(max(lasts), 2) if lasts else None,
    }


def ask(
    port: int, key: str, sock: socket.socket | None = None, map_name: str = "postfix"
) -> dict[str, Any]:
    """One lookup on a new connection (or on ``sock``, already connected):
    its status, reply and seconds."""
    started = time.monotonic()
    replies = Replies()
    try:
        with sock or socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(frame(key, map_name))
            replies.receive(s, 1, started + PROBE_TIMEOUT_S)
    except OSError as e:
        return {"status": f"error: {e}", "seconds": since(started)}
    if replies.first is None:
        return {"status": "no reply", "seconds": since(started)}
    return {
        "status": replies.first.partition(b" ")[0].decode(),
        "seconds": since(started),
        "reply": replies.first[:100].decode(errors="replace"),
    }


class Probes:
    """Lookups of good.test, each on a connection and thread of its own."""

    def __init__(self, port: int, origin: float) -> None:
        self.port, self.origin = port, origin
        self._threads: list[threading.Thread] = []
        self._results: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def start(self, phase: str, sock: socket.socket | None = None) -> None:
        """Ask now, on a new connection or on ``sock`` (connected earlier,
        so that the request reaches the daemon right now)."""
        at = since(self.origin)

        def run() -> None:
            result = {"phase": phase, "at_s": at, **ask(self.port, GOOD, sock)}
            with self._lock:
                self._results.append(result)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def every(self, period_s: float, stop: threading.Event) -> None:
        """A "during" probe every ``period_s`` until ``stop`` (at most 2000)."""

        def run() -> None:
            for _ in range(2000):
                self.start("during")
                if stop.wait(period_s):
                    return

        threading.Thread(target=run, daemon=True).start()

    def join(self) -> list[dict[str, Any]]:
        deadline = time.monotonic() + PROBE_TIMEOUT_S + 5
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return sorted(self._results, key=lambda r: r["at_s"])


class RssSampler:
    """The peak VmRSS of one process, sampled every ``period_s``."""

    def __init__(self, pid: int, period_s: float = 0.1) -> None:
        self._pid, self._period_s = pid, period_s
        self._stop = threading.Event()
        self.peak_kib = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_RUN_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.peak_kib = max(self.peak_kib, rss_kib(self._pid) or 0)
            self._stop.wait(self._period_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak_kib


# -- processes: the daemon, DNS and HTTPS --------------------------------------


def tree_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def package_file(tree: Path) -> str:
    """Which postfix_mtasts the daemon's interpreter imports from ``tree``
    (run from ``tree``: `-m` puts the working directory first on sys.path)."""
    done = subprocess.run(
        [sys.executable, "-c", "import postfix_mtasts; print(postfix_mtasts.__file__)"],
        cwd=tree,
        env=tree_env(tree),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() or done.stderr.strip()[-300:]


def cache_entry(domain: str, mx: list[str], fetched_at: float) -> dict[str, Any]:
    """An enforce policy in the export format (CacheEntry.to_bytes, "v": 1)."""
    return {
        "v": 1,
        "domain": domain,
        "id": "1",
        "fetched_at": fetched_at,
        "expires_at": fetched_at + 86400,
        "checked_at": fetched_at,
        "mode": "enforce",
        "max_age": 86400,
        "mx": mx,
        "lines": [
            *("version: STSv1", "mode: enforce"),
            *(f"mx: {m}" for m in mx),
            "max_age: 86400",
        ],
    }


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Daemon:
    """`postfix-mtasts serve` from one tree, in its own process."""

    def __init__(self, tree: Path, work: Path, **settings: Any) -> None:
        self.tree, self.work = tree, work
        self.port = free_port()
        self.control = work / "control.sock"
        self.config = work / "daemon.toml"
        self.log = work / "daemon.log"
        values = {
            "nameserver": DEAD_NAMESERVER,
            "ca_file": "",
            "max_entries": 100_000,
            "recheck_interval": 3600.0,
            "idle_timeout": 120.0,
            **settings,
        }
        self.config.write_text(
            CONFIG.format(port=self.port, control=self.control, **values)
        )
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "postfix_mtasts"),
                    "serve",
                    "--config",
                    self.config,
                ],
                cwd=tree,
                env=tree_env(tree),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready(60.0)
        except ScenarioError:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ScenarioError(f"daemon exited: {self.tail()}")
            with suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                if self.control.exists():
                    return
            time.sleep(0.05)
        raise ScenarioError(f"daemon not listening after {timeout:g} s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with suppress(OSError):
            text = self.log.read_text(errors="replace")
            return " | ".join(text.splitlines()[-lines:])
        return ""

    def rss_kib(self) -> int | None:
        return rss_kib(self.proc.pid)

    def import_entries(self, entries: list[dict[str, Any]]) -> None:
        """Through `postfix-mtasts cache import` and the control socket."""
        path = self.work / "import.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in entries))
        done = subprocess.run(
            [
                *(sys.executable, "-m", "postfix_mtasts", "cache"),
                *("--config", self.config, "--socket", self.control, "import", path),
            ],
            cwd=self.tree,
            env=tree_env(self.tree),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0 or f"imported {len(entries)}," not in done.stdout:
            raise ScenarioError(f"cache import failed: {done.stdout} {done.stderr}")

    def holds(self, inode: int) -> bool:
        """Whether the daemon still has the socket ``inode`` open."""
        target = f"socket:[{inode}]"
        with suppress(OSError):
            for fd in Path(f"/proc/{self.proc.pid}/fd").iterdir():
                with suppress(OSError):
                    if os.readlink(fd) == target:
                        return True
        return False

    def stop(self) -> None:
        stop_process(self.proc)


def start_helper(
    stack: ExitStack, args: list[str], log: Path, ready: Callable[[Any], bool]
) -> None:
    """A server process of ours, stopped when ``stack`` closes."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=err, cwd=log.parent
        )
    stack.callback(stop_process, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ScenarioError(f"{args[0]} exited: {log.read_text()[-500:]}")
        if ready(proc):
            return
        time.sleep(0.05)
    raise ScenarioError(f"{args[0]} not ready: {log.read_text()[-500:]}")


def start_dns(
    stack: ExitStack, work: Path, port: int, rules: dict[str, Any]
) -> Callable[[], dict[str, Any] | None]:
    """flood_dns.py on 127.0.0.1:``port``; returns a reader of its counts,
    which it writes when it stops (so read them after ``stack`` closes)."""
    rules_path, stats = work / "dns-rules.json", work / "dns-stats.json"
    rules_path.write_text(json.dumps(rules))
    args = [str(HERE / "flood_dns.py"), "127.0.0.1", str(port), str(rules_path)]

    def said_ready(proc: Any) -> bool:  # it prints "ready" once bound
        return bool(select.select([proc.stdout], [], [], 0.05)[0])

    start_helper(stack, [*args, str(stats)], work / "dns.log", said_ready)

    def counts() -> dict[str, Any] | None:
        with suppress(OSError, ValueError):
            return dict(json.loads(stats.read_text()))
        return None

    return counts


def world_rules(*txt_domains: str) -> dict[str, Any]:
    """good.test's TXT record and policy host, plus ``txt_domains``' records."""
    txt = {f"_mta-sts.{d}.": STS_RECORD for d in [GOOD, *txt_domains]}
    return {
        "txt": txt,
        "a": {f"mta-sts.{GOOD}.": GOOD_HOST_IP, f"check.{GOOD}.": GOOD_HOST_IP},
        "nxdomain_under": [],
    }


def start_world(
    stack: ExitStack, work: Path, rules: dict[str, Any], result: dict[str, Any]
) -> tuple[Path, Callable[[], dict[str, Any] | None], Callable[[], int]]:
    """DNS on 127.0.0.1:53 and good.test's policy host (trustme CA) on
    127.0.0.2:443, checked; returns the CA file, the DNS counts reader and
    a counter of the daemon's policy fetches."""
    import trustme

    dns_counts = start_dns(stack, work, 53, rules)
    ca = trustme.CA()
    ca_file, leaf = work / "ca.pem", work / "mta-sts.good.test.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert = ca.issue_cert(f"mta-sts.{GOOD}")
    cert.private_key_and_cert_chain_pem.write_to_path(str(leaf))
    config, log = work / "https.json", work / "https-requests.jsonl"
    hosts = {f"mta-sts.{GOOD}": {"response": {"body": POLICY}}}
    config.write_text(json.dumps({"default_cert": str(leaf), "hosts": hosts}))

    def listening(_: Any) -> bool:
        with suppress(OSError), socket.create_connection((GOOD_HOST_IP, 443), 0.5):
            return True
        return False

    args = [str(HTTPS_SERVER), str(config), str(log), GOOD_HOST_IP]
    start_helper(stack, args, work / "https.log", listening)
    result["world"] = check_world(ca_file)

    def fetches() -> int:  # the world check asked another path
        with suppress(OSError):
            lines = log.read_text().splitlines()
            return sum('"path": "/.well-known/mta-sts.txt"' in x for x in lines)
        return 0

    return ca_file, dns_counts, fetches


def check_world(ca_file: Path) -> dict[str, Any]:
    """getaddrinfo finds names through our DNS server, and the policy host
    serves the policy over TLS with the test CA."""
    try:
        found = {a[4][0] for a in socket.getaddrinfo(f"check.{GOOD}", 443)}
    except OSError as e:
        raise ScenarioError(f"getaddrinfo(check.{GOOD}) failed: {e}") from e
    if found != {GOOD_HOST_IP}:
        raise ScenarioError(f"check.{GOOD} resolves to {found}")
    context = ssl.create_default_context(cafile=str(ca_file))
    body = b""
    with (
        socket.create_connection((GOOD_HOST_IP, 443), 5) as raw,
        context.wrap_socket(raw, server_hostname=f"mta-sts.{GOOD}") as tls,
    ):
        tls.sendall(
            b"GET /.well-known/mta-sts.txt?check HTTP/1.1\r\n"
            b"Host: mta-sts.good.test\r\nConnection: close\r\n\r\n"
        )
        while chunk := tls.recv(65536):
            body += chunk
    if POLICY.encode() not in body:
        raise ScenarioError(f"policy host answered {body[:200]!r}")
    return {"getaddrinfo": sorted(found), "policy_host": "ok"}


# -- clients ---------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), 5)


def run_threads(targets: list[Callable[[], None]], timeout: float) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def pipeline(
    port: int, payload: bytes, expected: int, no_read_s: float, timeout_s: float
) -> dict[str, Any]:
    """Write ``payload`` on one connection as fast as the daemon takes it,
    read nothing for ``no_read_s``, then read until ``expected`` replies."""
    started = time.monotonic()
    deadline = started + timeout_s
    replies = Replies()
    sent, last_write = 0, 0.0
    view = memoryview(payload)
    stop = threading.Event()

    def write() -> None:
        nonlocal sent, last_write
        while sent < len(payload) and not stop.is_set():
            if time.monotonic() > deadline:
                return
            try:
                sent += sock.send(view[sent : sent + (1 << 20)])
            except TimeoutError:
                continue  # the daemon is not reading: wait for it
            except OSError:
                return
            last_write = time.monotonic()

    with connect(port) as sock:
        sock.settimeout(0.5)
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        stop.wait(no_read_s)
        replies.receive(sock, expected, deadline)
        stop.set()
        writer.join(5)
    return {
        "sent_all": sent == len(payload),
        "write_s": round(last_write - started, 2) if last_write else None,
        "read_from_s": no_read_s,
        **summary([replies], started),
    }


def windowed(port: int, keys: list[str], window: int, deadline: float) -> Replies:
    """Send ``keys`` on one connection, at most ``window`` of them unanswered."""
    replies = Replies()
    with suppress(OSError), connect(port) as sock:
        sent = 0
        while replies.count < len(keys) and time.monotonic() < deadline:
            if sent < len(keys) and sent - replies.count < window:
                batch = keys[sent : sent + window - (sent - replies.count)]
                sock.sendall(b"".join(frame(k) for k in batch))
                sent += len(batch)
            before = replies.count
            replies.receive(sock, before + 1, deadline)
            if replies.count == before:  # closed by the daemon
                break
    return replies


def tcp_state(sock: socket.socket) -> str:
    names = {1: "ESTABLISHED", 7: "CLOSE", 8: "CLOSE_WAIT"}
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError as e:
        return f"error: {e}"
    return names.get(state, str(state))


def daemon_side_inode(daemon_port: int, client_port: int) -> int | None:
    """The socket inode of the daemon's end of one loopback connection, once
    the daemon has accepted it (until then the inode is 0)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == daemon_port and (
            int(remote.split(":")[1], 16) == client_port
        ):
            return int(fields[9]) or None
    return None


# -- scenarios -------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.tree = Path(args.daemon_python_path).resolve()
        self.work = work
        self.in_netns = bool(os.environ.get(NETNS_ENV))

    def daemon(self, stack: ExitStack, work: Path, **settings: Any) -> Daemon:
        daemon = Daemon(self.tree, work, **settings)
        stack.callback(daemon.stop)
        return daemon

    def count(self, value: int) -> int:
        return scaled(value, self.args.scale)


@contextmanager
def flood(
    daemon: Daemon, result: dict[str, Any], probe_every: float | None
) -> Iterator[Probes]:
    """Measure one flood into ``result``: RSS before it, at its peak and
    ``SETTLE_S`` after it drained (the block ends), the daemon's CPU
    seconds, and a probe every ``probe_every`` seconds while it runs."""
    result["rss_start_mib"] = mib(daemon.rss_kib())
    cpu_before = cpu_s(daemon.proc.pid) or 0.0
    sampler = RssSampler(daemon.proc.pid)
    probes = Probes(daemon.port, time.monotonic())
    stop = threading.Event()
    if probe_every:
        probes.every(probe_every, stop)
    try:
        yield probes
    finally:
        stop.set()
        result["flood_s"] = since(probes.origin)
        time.sleep(SETTLE_S)
        result["rss_after_mib"] = mib(daemon.rss_kib())
        result["rss_peak_mib"] = mib(max(sampler.stop(), daemon.rss_kib() or 0))
        result["daemon_cpu_s"] = round((cpu_s(daemon.proc.pid) or 0) - cpu_before, 2)


def distinct_domains(bench: Bench, work: Path, stack: ExitStack) -> dict[str, Any]:
    a = bench.args
    count = bench.count(a.distinct)
    result: dict[str, Any] = {"lookups": count, "connections": a.connections}
    port = 53 if bench.in_netns else free_port(socket.SOCK_DGRAM)
    rules = {"txt": {}, "a": {}, "nxdomain_under": ["nx.test."]}
    dns_counts = start_dns(stack, work, port, rules)
    daemon = bench.daemon(stack, work, nameserver=f"127.0.0.1:{port}", max_entries=1000)
    daemon.import_entries([cache_entry(GOOD, [GOOD_MX], time.time())])
    keys = [f"n{i}.nx.test" for i in range(count)]
    per_connection = [keys[i :: a.connections] for i in range(a.connections)]
    replies: list[Replies] = []
    with flood(daemon, result, a.probe_every) as probes:
        deadline = probes.origin + a.flood_timeout

        def client(keys: list[str]) -> Callable[[], None]:
            return lambda: replies.append(
                windowed(daemon.port, keys, a.window, deadline)
            )

        run_threads([client(k) for k in per_connection], a.flood_timeout + 10)
        result.update(summary(replies, probes.origin))
        result["lookups_per_s"] = round(result["answered"] / since(probes.origin), 1)
    probes.start("after")
    result["probes"] = probes.join()
    stack.close()  # the DNS server writes its counts when it stops
    result["dns_queries"] = dns_counts()
    return result


def pipelined_dead_dns(bench: Bench, work: Path, stack: ExitStack) -> dict[str, Any]:
    count = bench.count(bench.args.pipelined)
    return pipelined(bench, work, stack, frame("dead.test") * count, count)


def slow_then_instant(bench: Bench, work: Path, stack: ExitStack) -> dict[str, Any]:
    count = bench.count(bench.args.instant)
    payload = frame("dead.test") + frame(".example.com") * count
    return pipelined(bench, work, stack, payload, count + 1)


def pipelined(
    bench: Bench, work: Path, stack: ExitStack, payload: bytes, count: int
) -> dict[str, Any]:
    a = bench.args
    result: dict[str, Any] = {"lookups": count, "no_read_s": a.no_read_s}
    daemon = bench.daemon(stack, work)
    daemon.import_entries([cache_entry(GOOD, [GOOD_MX], time.time())])
    with flood(daemon, result, a.probe_every) as probes:
        args = (daemon.port, payload, count, a.no_read_s, a.flood_timeout)
        result["client"] = pipeline(*args)
    probes.start("after")
    result["probes"] = probes.join()
    return result


def never_reads(bench: Bench, work: Path, stack: ExitStack) -> dict[str, Any]:
    a = bench.args
    count = bench.count(a.never_reads)
    mx = [f"mx{i}.a-long-mail-exchanger-name.big.test" for i in range(a.never_reads_mx)]
    result: dict[str, Any] = {
        "lookups": count,
        "mx_per_answer": len(mx),
        "idle_timeout_s": a.idle_timeout,
    }
    daemon = bench.daemon(stack, work, idle_timeout=a.idle_timeout)
    now = time.time()
    daemon.import_entries(
        [cache_entry(GOOD, [GOOD_MX], now), cache_entry("big.test", mx, now)]
    )
    sock = stack.enter_context(connect(daemon.port))
    # On close, a reset: nothing is left behind for the kernel to deliver.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    inode = None
    for _ in range(500):
        inode = daemon_side_inode(daemon.port, sock.getsockname()[1])
        if inode is not None:
            break
        time.sleep(0.01)
    if inode is None:
        raise ScenarioError("the daemon's end of the connection was not found")
    payload = frame("big.test") * count
    with flood(daemon, result, a.probe_every) as probes:
        sent, blocked, last_write = 0, None, time.monotonic()
        sock.settimeout(0.5)
        deadline = last_write + a.flood_timeout
        while sent < len(payload) and time.monotonic() < deadline:
            try:
                sent += sock.send(payload[sent : sent + 65536])
                last_write, blocked = time.monotonic(), None
            except TimeoutError:  # the daemon stopped reading
                blocked = blocked or time.monotonic()
                if time.monotonic() - blocked > a.write_block_s:
                    break
            except OSError as e:  # the daemon closed or reset the connection
                result["write_error"] = str(e)
                break
        result["sent_requests"] = sent // len(frame("big.test"))
        result["last_write_s"] = round(last_write - probes.origin, 2)
        closed = None
        while time.monotonic() < last_write + a.close_wait_s:
            if not daemon.holds(inode):
                closed = round(time.monotonic() - last_write, 2)
                break
            time.sleep(0.1)
        result["closed_after_last_write_s"] = closed
        result["close_waited_s"] = a.close_wait_s
        result["client_tcp_state"] = tcp_state(sock)
    probes.start("after")
    result["probes"] = probes.join()
    return result


def starvation(
    bench: Bench, work: Path, stack: ExitStack, variant: str
) -> dict[str, Any]:
    a = bench.args
    per = bench.count(a.starvation_per_connection)
    conns = a.starvation_connections
    result: dict[str, Any] = {
        "good_test": "not cached" if variant == "a" else "cached, due for re-check",
        "pending_lookups": per * conns,
        "connections": conns,
        "first_probe": a.first_probe,
    }
    ca_file, dns_counts, fetches = start_world(stack, work, world_rules(), result)
    settings: dict[str, Any] = {"nameserver": "127.0.0.1:53", "ca_file": ca_file}
    if variant == "b":
        settings["recheck_interval"] = a.recheck_interval
    daemon = bench.daemon(stack, work, **settings)
    if variant == "b":  # checked an hour ago: due for a TXT re-check
        daemon.import_entries([cache_entry(GOOD, [GOOD_MX], time.time() - 3600)])
    socks = [stack.enter_context(connect(daemon.port)) for _ in range(conns)]
    replies = [Replies() for _ in socks]
    probe_sock = stack.enter_context(connect(daemon.port))
    with flood(daemon, result, None) as probes:
        for n, sock in enumerate(socks):
            if n == conns // 2 and a.first_probe == "during":
                probes.start("+0 s, during the flood", probe_sock)
                time.sleep(0.05)  # its request goes out before the next ones
            try:
                sock.sendall(b"".join(frame(f"s{n}-{i}.dead.test") for i in range(per)))
            except OSError as e:
                result.setdefault("write_errors", []).append(str(e))
        result["flood_written_s"] = since(probes.origin)
        if a.first_probe == "after":
            probes.start("+0 s, after the flood", probe_sock)
        deadline = probes.origin + a.flood_timeout
        run_threads(
            [
                lambda s=s, r=r: r.receive(s, per, deadline)
                for s, r in zip(socks, replies, strict=True)
            ],
            a.flood_timeout + 10,
        )
        result.update(summary(replies, probes.origin))
    time.sleep(max(0.0, probes.origin + a.second_probe_at - time.monotonic()))
    probes.start(f"+{a.second_probe_at:g} s")
    result["probes"] = probes.join()
    result["policy_fetches"] = fetches()
    stack.close()
    result["dns_queries"] = dns_counts()
    return result


def unresolvable_policy_hosts(
    bench: Bench, work: Path, stack: ExitStack
) -> dict[str, Any]:
    a = bench.args
    domains = [f"u{i}.unres.test" for i in range(a.policy_hosts)]
    result: dict[str, Any] = {"domains": len(domains), "probe_delay_s": a.probe_delay}
    rules = world_rules(*domains)  # mta-sts.uN.unres.test: no answer, ever
    ca_file, dns_counts, fetches = start_world(stack, work, rules, result)
    daemon = bench.daemon(stack, work, nameserver="127.0.0.1:53", ca_file=ca_file)
    socks = [stack.enter_context(connect(daemon.port)) for _ in domains]
    replies = [Replies() for _ in socks]
    with flood(daemon, result, None) as probes:
        for sock, domain in zip(socks, domains, strict=True):
            sock.sendall(frame(domain))
        time.sleep(a.probe_delay)
        probes.start("during")
        deadline = probes.origin + a.flood_timeout
        run_threads(
            [
                lambda s=s, r=r: r.receive(s, 1, deadline)
                for s, r in zip(socks, replies, strict=True)
            ],
            a.flood_timeout + 10,
        )
        result.update(summary(replies, probes.origin))
        probes.join()  # the "during" probe ends before the "after" one starts
    probes.start("after")
    result["probes"] = probes.join()
    result["policy_fetches"] = fetches()
    stack.close()
    result["dns_queries"] = dns_counts()
    return result


# -- running ---------------------------------------------------------------------

Runner = Callable[[Bench, Path, ExitStack], dict[str, Any]]
RUNNERS: dict[str, Runner] = {
    "distinct-domains": distinct_domains,
    "pipelined-dead-dns": pipelined_dead_dns,
    "slow-then-instant": slow_then_instant,
    "never-reads": never_reads,
    "starvation-a": lambda b, w, s: starvation(b, w, s, "a"),
    "starvation-b": lambda b, w, s: starvation(b, w, s, "b"),
    "unresolvable-policy-hosts": unresolvable_policy_hosts,
}


def run_scenarios(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="mtasts-floods-"))
    bench = Bench(args, work)
    names: list[str] = []
    for name in SCENARIOS if args.scenario == "all" else (args.scenario,):
        if name == "starvation":
            names += [f"starvation-{v}" for v in args.starvation_variants]
        else:
            names.append(name)
    results: dict[str, Any] = {
        "tree": str(bench.tree),
        "package": package_file(bench.tree),
        "scale": args.scale,
        "netns": os.environ.get(NETNS_ENV) or None,
        "scenarios": {},
    }
    print(f"daemon package: {results['package']}  scale {args.scale:g}", flush=True)
    try:
        for name in names:
            started = time.monotonic()
            needs_world = name.startswith(("starvation", "unresolvable"))
            if needs_world and not bench.in_netns:
                result: dict[str, Any] = {"skipped": "needs root (its own netns)"}
            else:
                (work / name).mkdir()
                try:
                    with ExitStack() as stack:
                        result = RUNNERS[name](bench, work / name, stack)
                except ScenarioError as e:
                    result = {"error": str(e)}
            result["scenario_s"] = since(started)
            results["scenarios"][name] = result
            report(name, result)
    finally:
        if args.keep_work:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, separators=(",", ":")), flush=True)


def report(name: str, r: dict[str, Any]) -> None:
    """A few lines per scenario for people (the JSON line has everything)."""
    print(f"== {name} ({r['scenario_s']:.0f} s)")
    if "error" in r or "skipped" in r:
        print(f"   {r.get('error') or 'skipped: ' + r['skipped']}")
        return
    print(
        f"   RSS MiB: start {r['rss_start_mib']}  peak {r['rss_peak_mib']}"
        f"  after {r['rss_after_mib']}  (daemon CPU {r['daemon_cpu_s']} s)"
    )
    counts = r.get("client", r)
    if "answered" in counts:
        print(
            f"   answered {counts['answered']} {counts['statuses']}, replies from"
            f" {counts['first_reply_s']} s to {counts['last_reply_s']} s"
        )
    if "closed_after_last_write_s" in r:
        closed = r["closed_after_last_write_s"]
        when = f"not within {r['close_waited_s']:g}" if closed is None else closed
        print(
            f"   idle close: {when} s after the last write (idle_timeout"
            f" {r['idle_timeout_s']:g} s), client socket {r['client_tcp_state']}"
        )
    by_phase: dict[str, list[dict[str, Any]]] = {}
    for p in r.get("probes", []):
        by_phase.setdefault(p["phase"], []).append(p)
    for phase, probes in by_phase.items():
        seconds = [p["seconds"] for p in probes]
        statuses = Counter(p["status"] for p in probes)
        print(
            f"   probe {phase}: {len(probes)}x {dict(statuses)}"
            f"  max {max(seconds):.3f} s  median {statistics.median(seconds):.3f} s"
        )


def run_in_netns(argv: list[str]) -> int:
    """Run this script again in a fresh network namespace; remove it after."""
    name = f"mtfl{os.getpid()}"
    etc = Path("/etc/netns") / name
    child: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        child = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, __file__, *argv],
            env={**os.environ, NETNS_ENV: name},
        )
        return child.wait(MAX_RUN_S)
    except subprocess.TimeoutExpired:
        print(f"run exceeded {MAX_RUN_S:g} s; stopped", file=sys.stderr)
        return 1
    finally:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                child.wait(10)
        stop_namespace(name)
        shutil.rmtree(etc, ignore_errors=True)


def stop_namespace(name: str) -> None:
    """Stop what is left in our namespace (all started by this run), delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        done = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
        )
        pids = [int(p) for p in done.stdout.split()]
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        if pids:
            time.sleep(0.5)
    subprocess.run(["ip", "netns", "del", name], check=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    head, tail = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(
        description=head,
        epilog=tail,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    p.add_argument("--scale", type=float, default=1.0, help="multiply lookup counts")
    p.add_argument(
        "--daemon-python-path",
        default=str(CHECKOUT),
        metavar="DIR",
        help="source tree whose postfix_mtasts runs (default: this checkout)",
    )
    p.add_argument("--netns", choices=["auto", "off"], default="auto")
    p.add_argument("--keep-work", action="store_true", help="keep configs and logs")
    p.add_argument("--probe-every", type=float, default=2.0, metavar="S")
    p.add_argument("--flood-timeout", type=float, default=1200.0, metavar="S")
    g = p.add_argument_group("distinct-domains")
    g.add_argument("--distinct", type=int, default=100_000, metavar="N")
    g.add_argument("--connections", type=int, default=8)
    g.add_argument("--window", type=int, default=128, help="unanswered per connection")
    g = p.add_argument_group("pipelined-dead-dns and slow-then-instant")
    g.add_argument("--pipelined", type=int, default=200_000, metavar="N")
    g.add_argument("--instant", type=int, default=1_000_000, metavar="N")
    g.add_argument("--no-read-s", type=float, default=20.0, metavar="S")
    g = p.add_argument_group("never-reads")
    g.add_argument("--never-reads", type=int, default=20_000, metavar="N")
    g.add_argument("--never-reads-mx", type=int, default=100, metavar="N")
    g.add_argument("--idle-timeout", type=float, default=5.0, metavar="S")
    g.add_argument(
        "--write-block-s",
        type=float,
        default=5.0,
        metavar="S",
        help="stop writing once the daemon has taken nothing for this long",
    )
    g.add_argument("--close-wait-s", type=float, default=120.0, metavar="S")
    g = p.add_argument_group("starvation")
    g.add_argument("--starvation-connections", type=int, default=50)
    g.add_argument("--starvation-per-connection", type=int, default=201, metavar="N")
    g.add_argument("--second-probe-at", type=float, default=60.0, metavar="S")
    g.add_argument("--recheck-interval", type=float, default=30.0, metavar="S")
    g.add_argument("--starvation-variants", default="ab", choices=["a", "b", "ab"])
    g.add_argument(
        "--first-probe",
        choices=["during", "after"],
        default="during",
        help="ask good.test when half the connections have written their"
        " lookups, or once all have",
    )
    g = p.add_argument_group("unresolvable-policy-hosts")
    g.add_argument("--policy-hosts", type=int, default=20, metavar="N")
    g.add_argument("--probe-delay", type=float, default=1.0, metavar="S")
    return p.parse_args(argv)


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.netns == "auto" and not os.environ.get(NETNS_ENV):
        if os.geteuid() == 0 and shutil.which("ip"):
            sys.exit(run_in_netns(argv))
        print("not root: no namespace of its own, two scenarios skipped")
    run_scenarios(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
