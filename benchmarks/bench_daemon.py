"""The real daemon: start-up with 100,000 stored policies, and cached-lookup
throughput with each store (memory only, SQLite, SQLite + Redis).

Each daemon is `postfix-mtasts serve` in its own process on the epoll
reactor, with DNS pointed at a loopback port where nothing answers, so every
answer comes from the stored policies.  The memory-only daemon is filled
through `postfix-mtasts cache import`.  Redis runs only where redis-server is
installed (scripts/test installs it).

    .venv/bin/python benchmarks/bench_daemon.py [--policies 100000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_lookup import cpu_seconds, domain_name, load, synthetic_entries

from postfix_mtasts.cache.sqlite_db import open_db, write
from postfix_mtasts.core.entry import CacheEntry

CONFIG = """
[[listener]]
endpoint = "tcp:{port}:interface=127.0.0.1"
[dns]
nameservers = ["127.0.0.1:9"]
timeout = 1.0
[cache]
max_entries = {max_entries}
[store]
path = "{store}"
[control]
socket = "{control}"
[log]
level = "warn"
{redis}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fill_sqlite(path: Path, items: list[CacheEntry]) -> None:
    db = open_db(str(path), 2.0)
    write(db, [(e.domain, (e, e.fetched_at)) for e in items], len(items))
    db.close()


def first_answer(port: int, key: bytes, deadline: float) -> float:
    """Seconds until the daemon answers OK for ``key``."""
    request = b"postfix " + key
    frame = b"%d:%s," % (len(request), request)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.sendall(frame)
                if b":OK " in s.recv(65536):
                    return time.monotonic()
        except OSError:
            time.sleep(0.01)
    raise SystemExit("the daemon never answered")


def run_daemon(
    work: Path, name: str, *, store: str, redis: str, policies: int
) -> tuple[subprocess.Popen[bytes], int, float]:
    port = free_port()
    config = work / f"{name}.toml"
    config.write_text(
        CONFIG.format(
            port=port,
            max_entries=max(policies, 1),
            store=store,
            control=work / f"{name}.sock",
            redis=f'[redis]\nurl = "{redis}"' if redis else "",
        )
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "postfix_mtasts", "serve", "--config", str(config)],
        stdout=(work / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    return proc, port, started


def measure(
    proc: subprocess.Popen[bytes], port: int, seconds: float, policies: int
) -> list[dict[str, Any]]:
    runs = []
    for connections in (1, 100):
        before = cpu_seconds(proc.pid)
        run = load(port, connections, seconds, policies)
        run["server_cpu_us_per_req"] = round(
            (cpu_seconds(proc.pid) - before) / max(run["requests"], 1) * 1e6, 1
        )
        runs.append(run)
    return runs


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mtasts-bench-"))
    results: dict[str, Any] = {"policies": args.policies}
    redis_proc = None
    try:
        items = synthetic_entries(args.policies, time.time())
        export = work / "export.jsonl"
        export.write_bytes(b"".join(e.to_bytes() + b"\n" for e in items))
        sqlite_path = work / "policies.sqlite3"
        fill_sqlite(sqlite_path, items)
        redis_url = ""
        if shutil.which("redis-server"):
            redis_port = free_port()
            redis_proc = subprocess.Popen(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(work),
                ],
                stdout=subprocess.DEVNULL,
            )
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        configs = [
            ("memory", "", ""),
            ("sqlite", str(sqlite_path), ""),
            ("sqlite+redis", str(sqlite_path), redis_url),
        ]
        for name, store, redis in configs:
            if name == "sqlite+redis" and not redis:
                continue
            proc, port, started = run_daemon(
                work, name, store=store, redis=redis, policies=args.policies
            )
            try:
                if name == "memory":
                    first_answer_s = None
                    while True:  # wait for the listener, then import
                        try:
                            socket.create_connection(("127.0.0.1", port), 1).close()
                            break
                        except OSError:
                            time.sleep(0.05)
                    subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "postfix_mtasts",
                            "cache",
                            "--socket",
                            str(work / "memory.sock"),
                            "import",
                            str(export),
                        ],
                        check=True,
                        stdout=subprocess.DEVNULL,
                    )
                else:
                    first_answer_s = round(
                        first_answer(
                            port, domain_name(args.policies - 1).encode(), started + 120
                        )
                        - started,
                        2,
                    )
                results[name] = {
                    "first_answer_s": first_answer_s,
                    "runs": measure(proc, port, args.seconds, args.policies),
                    "rss_mib": round(rss_kib(proc.pid) / 1024, 1),
                }
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    base = results["memory"]["runs"]
    for name in ("sqlite", "sqlite+redis"):
        if name in results:
            results[name]["throughput_vs_memory"] = [
                round(r["req_per_s"] / b["req_per_s"], 3)
                for r, b in zip(results[name]["runs"], base, strict=True)
            ]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
