"""Start-up: process start to the first socketmap answer, daemon against a
bare Twisted NetstringReceiver answering from a dict.

No root, no network: everything runs on 127.0.0.1 on a free port, with a
temporary directory for the daemon's configuration and store.  Each rep
starts, one after the other and in an order that alternates between reps,

- ``bare``: a Twisted NetstringReceiver server answering from a dict
  (:data:`BARE_SERVER`, run with ``python -c``: the same python, the epoll
  reactor, no other import);
- ``notfound``: ``python -m postfix_mtasts serve`` with a minimal
  configuration (one socketmap listener on the port, the embedded SQLite
  store in the temporary directory, everything else built in), asked
  ``[1.2.3.4]``, which is NOTFOUND by its form alone (no DNS, no HTTPS);
- ``cached``: the same daemon asked a domain whose enforce policy is in the
  store (written before the reps with ``cache --offline import``), so the
  answer is ``OK secure ...`` from the stored policy, without network.

The client connects and asks every ``--interval-ms`` (2 ms) from just before
the process is spawned until a whole netstring answer comes back; the time
is that answer's arrival.  Also read then: the CPU time the process's main
thread has used (/proc/PID/task/PID/schedstat), which other load on the
machine inflates far less than the wall time.  Then, on one connection,
it asks again after each answer for ``--after-s`` (1 s): the slowest of
those answers shows any stall the daemon's work after listening causes
(the imports of the DNS and HTTPS parts).  Reported: median, min
and max ms per kind, the CPU median, the slowest answer after the first
(median and max over reps), the daemon's medians minus the bare
server's, then one JSON line.

Every child gets its own ``PYTHONPYCACHEPREFIX`` in the temporary
directory, and one warm-up start per kind (not counted) fills it, so every
counted start reads compiled bytecode, as an installed package does.

    .venv/bin/python benchmarks/bench_startup.py [--reps 7]
        [--daemon-python-path DIR] [--instructions]

``--instructions`` (valgrind installed) then starts each kind once more
under callgrind, asks once, and stops it with SIGTERM as soon as the answer
arrives: the instructions its main thread ran, from exec through that
answer and the shutdown.  Unlike the times, the count does not move with
the machine's load (runs agree within about 0.2 %); the worker threads (the
store's, the imports after listening) are left out, as with the CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
NOTFOUND_KEY = "[1.2.3.4]"
CACHED_DOMAIN = "cached.bench-startup.example"
POLICY = (
    "version: STSv1\n"
    "mode: enforce\n"
    f"mx: mx1.{CACHED_DOMAIN}\n"
    f"mx: *.mx.{CACHED_DOMAIN}\n"
    "max_age: 31557600\n"
)
KINDS = ("bare", "notfound", "cached")


#: The bare server, run with ``python -c`` so that it imports only what it
#: serves with (this script's own imports would slow its start).
BARE_SERVER = f"""
import sys
from twisted.internet import epollreactor

epollreactor.install()
from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.protocols.basic import NetstringReceiver

table = {{{CACHED_DOMAIN.encode()!r}: b"OK secure match=mx1.example"}}


class Bare(NetstringReceiver):
    def stringReceived(self, string):
        _, _, key = string.partition(b" ")
        self.sendString(table.get(key, b"NOTFOUND "))


reactor.listenTCP(int(sys.argv[1]), Factory.forProtocol(Bare), interface="127.0.0.1")
reactor.run()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def frame(key: str) -> bytes:
    request = f"postfix {key}".encode()
    return b"%d:%s," % (len(request), request)


def ask(port: int, request: bytes, deadline: float) -> bytes | None:
    """One request on a new connection; its answer, or None when nothing
    listens yet or the connection ends before a whole answer."""
    with socket.socket() as s:
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(request)
            buf = b""
            while True:
                colon = buf.find(b":")
                if colon > 0 and len(buf) >= colon + 2 + int(buf[:colon]):
                    return buf[colon + 1 : colon + 1 + int(buf[:colon])]
                s.settimeout(max(0.001, deadline - time.monotonic()))
                data = s.recv(4096)
                if not data:
                    return None
                buf += data
        except OSError:
            return None


class Setup:
    """The temporary directory: the daemon's configuration and store, and
    the children's bytecode cache."""

    def __init__(self, work: Path, tree: Path, port: int) -> None:
        self.work, self.tree, self.port = work, tree, port
        self.config = work / "postfix-mtasts.toml"
        self.config.write_text(
            "[[listener]]\n"
            f'endpoint = "tcp:{port}:interface=127.0.0.1"\n'
            "[store]\n"
            f'path = "{work / "policies.sqlite3"}"\n'
        )
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
        }
        self.env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")

    def daemon_env(self) -> dict[str, str]:
        return {**self.env, "PYTHONPATH": str(self.tree)}

    def fill_store(self) -> None:
        """One valid enforce policy for CACHED_DOMAIN, through the daemon
        tree's own ``cache --offline import`` into the store its first start
        created (a fresh fetch, so it is neither due for a TXT re-check nor
        expired during the run)."""
        code = (
            "import sys, time\n"
            "from postfix_mtasts.core.entry import CacheEntry\n"
            "from postfix_mtasts.core.policy import parse_policy\n"
            f"policy = parse_policy({POLICY.encode()!r})\n"
            f"entry = CacheEntry.fetched({CACHED_DOMAIN!r}, 'bench1', policy, time.time())\n"
            "sys.stdout.write(entry.to_bytes().decode() + '\\n')\n"
        )
        line = subprocess.run(
            [sys.executable, "-c", code],
            env=self.daemon_env(),
            cwd=self.work,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        entries = self.work / "entries.jsonl"
        entries.write_text(line)
        cache = [sys.executable, "-m", "postfix_mtasts", "cache"]
        done = subprocess.run(
            [*cache, "--config", str(self.config), "--offline", "import", str(entries)],
            env=self.daemon_env(),
            cwd=self.work,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"cache import failed: {done.stdout}{done.stderr}")

    def argv(self, kind: str) -> tuple[list[str], dict[str, str]]:
        if kind == "bare":
            return [sys.executable, "-c", BARE_SERVER, str(self.port)], self.env
        serve = [sys.executable, "-m", "postfix_mtasts", "serve"]
        return [*serve, "--config", str(self.config)], self.daemon_env()


def cpu_ms(pid: int) -> float:
    """CPU time of the main thread of ``pid`` so far (schedstat: ns, unlike
    /proc/PID/stat's 10 ms ticks): the thread that answers.  Not the
    daemon's worker threads (the store's, the imports after listening) nor
    its children (postconf)."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e6


def after_first(port: int, request: bytes, seconds: float) -> float:
    """The slowest answer (ms) on one connection asking again and again,
    each after the last answer, for ``seconds`` after the first answer:
    whatever the daemon still does once it answers (the imports after the
    listeners) shows here as a stall."""
    slowest = 0.0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            asked = time.monotonic()
            s.sendall(request)
            buf = b""
            while not (buf.endswith(b",") and b":" in buf):
                data = s.recv(4096)
                if not data:
                    raise OSError("connection closed")
                buf += data
            slowest = max(slowest, time.monotonic() - asked)
    return slowest * 1000


def one_start(
    setup: Setup, kind: str, interval_s: float, timeout_s: float, after_s: float
) -> tuple[float, float, float, bytes]:
    """Spawn ``kind``, ask until answered; (ms to that answer, CPU ms the
    process had used by then, the slowest answer in the ``after_s``
    seconds that follow, the answer)."""
    key = CACHED_DOMAIN if kind == "cached" else NOTFOUND_KEY
    request = frame(key)
    argv, env = setup.argv(kind)
    log = open(setup.work / f"{kind}.log", "ab")  # noqa: SIM115 (closed below)
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, env=env, cwd=setup.work, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            attempt = time.monotonic()
            reply = ask(setup.port, request, deadline)
            if reply is not None:
                wall = (time.monotonic() - started) * 1000
                cpu = cpu_ms(proc.pid)
                return wall, cpu, after_first(setup.port, request, after_s), reply
            if proc.poll() is not None:
                raise SystemExit(f"{kind} exited {proc.returncode}; see {log.name}")
            time.sleep(max(0.0, interval_s - (time.monotonic() - attempt)))
        raise SystemExit(f"{kind}: no answer within {timeout_s} s; see {log.name}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main_thread_instructions(setup: Setup, kind: str, timeout_s: float) -> int:
    """Instructions of ``kind``'s main thread under callgrind: exec, the
    first answer, then a SIGTERM shutdown (see the module's docstring)."""
    key = CACHED_DOMAIN if kind == "cached" else NOTFOUND_KEY
    argv, env = setup.argv(kind)
    out = setup.work / f"callgrind-{kind}"
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}.%p",
    ]
    proc = subprocess.Popen(
        [*valgrind, *argv],
        env=env,
        cwd=setup.work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while ask(setup.port, frame(key), deadline) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{kind} under callgrind: no answer")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    # callgrind names each thread's file PID-NN; the main thread is 01.
    with open(f"{out}.{proc.pid}-01") as f:
        totals = [line for line in f if line.startswith(("totals:", "summary:"))]
    return int(totals[-1].split()[1])


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values), 1),
        "min_ms": round(min(values), 1),
        "max_ms": round(max(values), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--interval-ms", type=float, default=2.0)
    p.add_argument("--timeout-s", type=float, default=30.0)
    p.add_argument(
        "--after-s",
        type=float,
        default=1.0,
        help="seconds of asking again after the first answer (the slowest is reported)",
    )
    p.add_argument("--port", type=int, default=0, help="0: a free one")
    p.add_argument(
        "--daemon-python-path",
        default=str(CHECKOUT),
        metavar="DIR",
        help="source tree of the daemon to start (default: this checkout)",
    )
    p.add_argument(
        "--instructions",
        action="store_true",
        help="then count each kind's main-thread instructions under callgrind",
    )
    args = p.parse_args()
    tree = Path(args.daemon_python_path).resolve()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpus: dict[str, list[float]] = {kind: [] for kind in KINDS}
    stalls: dict[str, list[float]] = {kind: [] for kind in KINDS}
    answers: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        setup = Setup(Path(tmp), tree, args.port or free_port())
        interval, timeout = args.interval_ms / 1000, args.timeout_s
        # Warm-up, not counted: fills the bytecode cache; the daemon's first
        # start creates the store that fill_store then writes to.
        for kind in KINDS:
            if kind == "cached":
                setup.fill_store()
            one_start(setup, kind, interval, timeout, 0.0)
        for rep in range(args.reps):
            order = KINDS if rep % 2 == 0 else KINDS[::-1]
            for kind in order:
                ms, cpu, slowest, reply = one_start(
                    setup, kind, interval, timeout, args.after_s
                )
                times[kind].append(ms)
                cpus[kind].append(cpu)
                stalls[kind].append(slowest)
                answers[kind] = reply.decode(errors="replace")[:60]
                print(
                    f"rep {rep} {kind:>8}: {ms:7.1f} ms (CPU {cpu:6.1f} ms),"
                    f" then slowest {slowest:5.1f} ms  {answers[kind]!r}"
                )
        counts = {
            kind: main_thread_instructions(setup, kind, 300.0)
            for kind in (KINDS if args.instructions else ())
        }
    results: dict[str, Any] = {
        "reps": args.reps,
        "interval_ms": args.interval_ms,
        "daemon_tree": str(tree),
        "python": sys.version.split()[0],
    }
    for kind in KINDS:
        results[kind] = {
            **summary(times[kind]),
            "cpu_median_ms": round(statistics.median(cpus[kind]), 1),
            "slowest_after_median_ms": round(statistics.median(stalls[kind]), 1),
            "slowest_after_max_ms": round(max(stalls[kind]), 1),
            "answer": answers[kind],
        }
    bare, bare_cpu = results["bare"]["median_ms"], results["bare"]["cpu_median_ms"]
    for kind in ("notfound", "cached"):
        results[f"{kind}_minus_bare_ms"] = round(results[kind]["median_ms"] - bare, 1)
        results[f"{kind}_minus_bare_cpu_ms"] = round(
            results[kind]["cpu_median_ms"] - bare_cpu, 1
        )
    print(f"start to first answer, {args.reps} alternating reps (ms):")
    for kind in KINDS:
        r = results[kind]
        print(
            f"  {kind:>8}: median {r['median_ms']:7.1f}  min {r['min_ms']:7.1f}"
            f"  max {r['max_ms']:7.1f}   CPU median {r['cpu_median_ms']:7.1f}"
            f"   slowest after: median {r['slowest_after_median_ms']:5.1f}"
            f" max {r['slowest_after_max_ms']:5.1f}"
        )
    for kind in ("notfound", "cached"):
        print(
            f"  {kind} - bare (medians): {results[f'{kind}_minus_bare_ms']:+.1f} ms,"
            f" CPU {results[f'{kind}_minus_bare_cpu_ms']:+.1f} ms"
        )
    if counts:
        print("main-thread instructions, exec to first answer and shutdown:")
        for kind in KINDS:
            extra = counts[kind] - counts["bare"]
            results[f"{kind}_instructions"] = counts[kind]
            print(f"  {kind:>8}: {counts[kind]:>13,}  ({extra:+,} over bare)")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
