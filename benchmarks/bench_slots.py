"""Connection slots and the control socket against the real daemon (issue 9).

Starts `python -m postfix_mtasts serve --config FILE` from the tree given by
--daemon-python-path (default: this checkout) on a loopback TCP listener,
with a memory-only store, a dead nameserver (so a lookup of an unknown
domain is answered NOTFOUND quickly) and a control socket in a temporary
directory.  Prints one line per measurement and every figure as JSON last.

slots:   a "postfix" connection asks once and stays open; then N connections
         (default 512, the default [server] max_connections) each start a
         netstring and send one more byte of it every --trickle-s seconds.
         Measured: how long opening them takes, whether a lookup on a new
         connection and on the established one is answered (and how fast)
         right after the flood and later, how many trickling connections
         the daemon still holds, and then a churn of --churn more such
         connections opened one after another: the daemon's log lines.
control: --control-idle idle connections to the control socket, how many
         the daemon still holds after 1 s and after 15 s; one 16 MiB line
         without a newline (the daemon's RSS growth); then `cache import`
         and `cache list` of --entries entries through the CLI.

    .venv/bin/python benchmarks/bench_slots.py [--scenario all]
        [--connections 512] [--trickle-s 2] [--churn 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
CONFIG = """\
[[listener]]
endpoint = "tcp:{port}:interface=127.0.0.1"
[dns]
nameservers = ["127.0.0.1:9"]
timeout = 0.5
attempts = 1
[server]
max_connections = {max_connections}
[store]
path = ""
[control]
socket = "{control}"
[log]
level = "info"
"""
KEY = "nosuch.invalid"
TRICKLE = b"9999:" + b"a" * 9999  # a valid frame, sent a byte at a time


def frame(key: str) -> bytes:
    payload = f"postfix {key}".encode()
    return b"%d:%s," % (len(payload), payload)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Daemon:
    def __init__(self, tree: Path, work: Path, max_connections: int) -> None:
        self.tree, self.work = tree, work
        self.port = free_port()
        self.control = work / "control.sock"
        self.config = work / "daemon.toml"
        self.log = work / "daemon.log"
        self.config.write_text(
            CONFIG.format(
                port=self.port, control=self.control, max_connections=max_connections
            )
        )
        self.env = {**os.environ, "PYTHONPATH": str(tree)}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "postfix_mtasts",
                    "serve",
                    "--config",
                    self.config,
                ],
                cwd=tree,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not self.control.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"daemon did not start: {self.log.read_text()[-2000:]}"
                )
            time.sleep(0.05)

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def cli(self, *args: str, stdin: str | None = None) -> tuple[float, str]:
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "postfix_mtasts",
                "cache",
                "--config",
                self.config,
                *args,
            ],
            cwd=self.tree,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return time.monotonic() - started, (done.stdout + done.stderr)[-300:]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def ask(sock: socket.socket, key: str = KEY, timeout: float = 20.0) -> dict[str, Any]:
    """One lookup on ``sock``: the reply, or how the daemon failed it."""
    started = time.monotonic()
    try:
        sock.settimeout(timeout)
        sock.sendall(frame(key))
        reply = sock.recv(4096)
    except OSError as e:
        return {"answered": False, "error": type(e).__name__, "ms": ms(started)}
    if not reply:
        return {"answered": False, "error": "closed unanswered", "ms": ms(started)}
    return {
        "answered": True,
        "reply": reply.decode(errors="replace"),
        "ms": ms(started),
    }


def ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


class Tricklers:
    """Connections that send one byte of a netstring every ``period_s``."""

    def __init__(self, port: int, period_s: float) -> None:
        self.port, self.period_s = port, period_s
        self.socks: list[socket.socket] = []
        self.sent: dict[int, int] = {}
        self.refused = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def open(self, count: int) -> float:
        """Open ``count`` connections at once, as a flood does; the seconds
        until the last one is established and has sent its first byte."""
        started = time.monotonic()
        connecting = []
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            connecting.append(s)
        deadline = started + 60
        while connecting and time.monotonic() < deadline:
            _, ready, _ = select.select([], connecting, [], 1.0)
            for s in ready:
                connecting.remove(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self.refused += 1
                    s.close()
                    continue
                with suppress(OSError):
                    s.send(TRICKLE[:1])
                with self._lock:
                    self.socks.append(s)
                    self.sent[s.fileno()] = 1
        self.refused += len(connecting)
        for s in connecting:
            s.close()
        return time.monotonic() - started

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> int:
        """Connections the daemon has not closed yet (reaps the closed)."""
        with self._lock:
            kept = []
            for s in self.socks:
                try:
                    closed = s.recv(1) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                if closed:
                    s.close()
                else:
                    kept.append(s)
            self.socks = kept
            return len(kept)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            with self._lock:
                for s in self.socks:
                    n = self.sent[s.fileno()]
                    with suppress(OSError):
                        s.send(TRICKLE[n : n + 1])
                        self.sent[s.fileno()] = n + 1

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for s in self.socks:
            s.close()


def slots(args: argparse.Namespace, daemon: Daemon) -> dict[str, Any]:
    r: dict[str, Any] = {}
    regular = socket.create_connection(("127.0.0.1", daemon.port))
    r["regular_before"] = ask(regular)
    lines_before = len(daemon.log_lines())
    tricklers = Tricklers(daemon.port, args.trickle_s)
    r["open_s"] = round(tricklers.open(args.connections), 2)
    r["open_refused"] = tricklers.refused
    tricklers.start()
    t0 = time.monotonic()
    print(f"opened {args.connections} trickling connections in {r['open_s']} s")
    for at in (0.0, 5.0, 15.0, 30.0):
        while time.monotonic() < t0 + at:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", daemon.port), 30) as fresh:
            probe = {
                "t_s": at,
                "held_by_flood": tricklers.alive(),
                "new_connection": ask(fresh),
                "established": ask(regular),
            }
        print(json.dumps(probe))
        r.setdefault("probes", []).append(probe)
    if args.churn:
        started = time.monotonic()
        churn = Tricklers(daemon.port, args.trickle_s)
        for _ in range(args.churn):
            churn.open(1)
            churn.alive()
        r["churn_s"] = round(time.monotonic() - started, 2)
        r["churn_held"] = churn.alive()
        with socket.create_connection(("127.0.0.1", daemon.port), 30) as fresh:
            r["churn_probe"] = ask(fresh)
        r["churn_established"] = ask(regular)
        churn.close()
        print(f"churn of {args.churn}: {json.dumps(r['churn_probe'])}")
    tricklers.close()
    regular.close()
    time.sleep(1)
    lines = daemon.log_lines()[lines_before:]
    r["log_lines"] = len(lines)
    r["log_sample"] = lines[:3] + lines[-3:]
    return r


def control(args: argparse.Namespace, daemon: Daemon) -> dict[str, Any]:
    r: dict[str, Any] = {}
    pid, path = daemon.proc.pid, str(daemon.control)
    fds = open_fds(pid)
    idle = []
    for _ in range(args.control_idle):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        idle.append(s)
    time.sleep(1)
    r["idle_held_1s"] = open_fds(pid) - fds
    time.sleep(14)
    r["idle_held_15s"] = open_fds(pid) - fds
    for s in idle:
        s.close()
    time.sleep(0.5)
    rss = rss_kib(pid)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.settimeout(30)
        chunk = b"x" * (1 << 20)
        sent = 0
        with suppress(OSError):
            for _ in range(16):
                s.sendall(chunk)
                sent += len(chunk)
        r["long_line_sent_mib"] = sent >> 20
        r["long_line_rss_growth_mib"] = round((rss_kib(pid) - rss) / 1024, 1)
        with suppress(OSError):
            r["long_line_reply"] = s.recv(4096).decode(errors="replace")[:200]
    now = time.time()
    entries = "".join(
        json.dumps(entry(f"d{i}.example", now)) + "\n" for i in range(args.entries)
    )
    import_file = daemon.work / "import.jsonl"
    import_file.write_text(entries)
    r["import_s"], r["import_out"] = daemon.cli("import", str(import_file))
    r["list_s"], out = daemon.cli("list")
    r["list_out"] = out[-120:]
    r["rss_after_mib"] = round(rss_kib(pid) / 1024, 1)
    return r


def entry(domain: str, now: float) -> dict[str, Any]:
    return {
        "v": 1,
        "domain": domain,
        "id": "1",
        "fetched_at": now,
        "expires_at": now + 86400,
        "checked_at": now,
        "mode": "enforce",
        "max_age": 86400,
        "mx": [f"mx.{domain}"],
        "lines": [
            "version: STSv1",
            "mode: enforce",
            f"mx: mx.{domain}",
            "max_age: 86400",
        ],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=("slots", "control", "all"), default="all")
    p.add_argument("--connections", type=int, default=512)
    p.add_argument("--max-connections", type=int, default=512)
    p.add_argument("--trickle-s", type=float, default=2.0)
    p.add_argument("--churn", type=int, default=10_000)
    p.add_argument("--control-idle", type=int, default=64)
    p.add_argument("--entries", type=int, default=20_000)
    p.add_argument("--daemon-python-path", type=Path, default=CHECKOUT)
    args = p.parse_args()
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for name, run in (("slots", slots), ("control", control)):
            if args.scenario in (name, "all"):
                daemon = Daemon(args.daemon_python_path, work, args.max_connections)
                try:
                    results[name] = run(args, daemon)
                finally:
                    daemon.stop()
                (work / "control.sock").unlink(missing_ok=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
