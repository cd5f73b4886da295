"""Refused connects at start, with and without socket activation.

A daemon with 100,000 stored policies (SQLite) is started the way systemd
would: directly (it binds its port only once the store is loaded, so every
Postfix connect before that is refused and its mail deferred), and under
``systemd-socket-activate`` (the socket exists before the daemon runs;
connects wait in the listen queue and are answered once the store is
loaded).  A client connects every 5 ms from the moment of the start, like a
Postfix that starts right after the daemon, and asks for a stored domain.

    .venv/bin/python benchmarks/bench_activation.py [--policies 100000] [--runs 3]

Needs systemd-socket-activate (package systemd); loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_daemon import CONFIG, fill_sqlite, free_port
from bench_lookup import domain_name, synthetic_entries

RETRY_S = 0.005


def client(port: int, key: str, started: float, deadline: float) -> dict[str, Any]:
    """Connect until accepted (counting refusals), then ask ``key`` and wait
    for the answer; times in seconds from ``started``."""
    import socket

    request = f"postfix {key}".encode()
    frame = b"%d:%s," % (len(request), request)
    refused = 0
    last_refused = None
    while time.monotonic() < deadline:
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=120)
        except ConnectionRefusedError:
            refused += 1
            last_refused = time.monotonic() - started
            time.sleep(RETRY_S)
            continue
        accepted = time.monotonic() - started
        with conn:
            conn.sendall(frame)
            reply = conn.recv(65536)
        answered = time.monotonic() - started
        if b":OK " not in reply:
            raise SystemExit(f"unexpected reply {reply!r}")
        return {
            "refused_connects": refused,
            "refused_until_s": round(last_refused, 3) if last_refused else 0.0,
            "accepted_s": round(accepted, 3),
            "answered_s": round(answered, 3),
        }
    raise SystemExit("the daemon never answered")


def write_config(work: Path, name: str, endpoint: str, policies: int) -> Path:
    config = work / f"{name}.toml"
    text = CONFIG.format(
        port=0,
        max_entries=policies,
        store=work / "policies.sqlite3",
        control=work / f"{name}.sock",
        redis="",
    ).replace('endpoint = "tcp:0:interface=127.0.0.1"', f'endpoint = "{endpoint}"')
    config.write_text(text + "\n[refresh]\nenabled = false\n")
    return config


def serve(config: Path) -> list[str]:
    return [sys.executable, "-m", "postfix_mtasts", "serve", "--config", str(config)]


def direct(work: Path, policies: int, key: str) -> dict[str, Any]:
    port = free_port()
    config = write_config(work, "direct", f"tcp:{port}:interface=127.0.0.1", policies)
    with (work / "direct.log").open("ab") as log:
        started = time.monotonic()
        proc = subprocess.Popen(serve(config), stdout=log, stderr=subprocess.STDOUT)
        try:
            return client(port, key, started, started + 300)
        finally:
            proc.terminate()
            proc.wait(30)


def activated(work: Path, policies: int, key: str) -> dict[str, Any]:
    port = free_port()
    config = write_config(
        work, "activated", "systemd:domain=INET:name=socketmap", policies
    )
    with (work / "activated.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                "systemd-socket-activate",
                "-l",
                f"127.0.0.1:{port}",
                "--fdname=socketmap",
                "-EPYTHONPATH",
                *serve(config),
            ],
            stdout=log,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()  # "Listening on 127.0.0.1:PORT as 3."
            if b"Listening on" not in line:
                raise SystemExit(f"systemd-socket-activate: {line!r}")
            started = time.monotonic()  # the first connect starts the daemon
            return client(port, key, started, started + 300)
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mtasts-activation-"))
    try:
        items = synthetic_entries(args.policies, time.time())
        fill_sqlite(work / "policies.sqlite3", items)
        key = domain_name(args.policies - 1)
        results: dict[str, Any] = {
            "policies": args.policies,
            "load_average": os.getloadavg()[0],
        }
        for _ in range(args.runs):  # interleaved: both see the same machine load
            for name, run in (("direct", direct), ("socket_activation", activated)):
                results.setdefault(name, {"runs": []})["runs"].append(
                    run(work, args.policies, key)
                )
        for name in ("direct", "socket_activation"):
            runs = results[name]["runs"]
            results[name]["median"] = {
                field: statistics.median(r[field] for r in runs) for field in runs[0]
            }
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
