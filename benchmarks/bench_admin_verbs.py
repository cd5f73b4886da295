"""What the admin verbs cost Postfix: lookup latency while `cache import`,
`cache list` and `cache export` run against a daemon with 100,000 policies.

The daemon is `postfix-mtasts serve` (from --daemon-python-path, default this
checkout, so one script gives before and after figures) on the epoll
reactor, with a SQLite store filled with --policies enforce policies fetched
two minutes ago (within the TXT re-check interval) and DNS pointed at a loopback port where nothing answers: every
answer comes from the cache.  A second process sends socketmap lookups of
random cached domains over one connection, one after the other, without
pause, and records each one's latency.  Meanwhile the verbs run one after
the other, each through the CLI of the same tree: `import` of a file holding
a newer entry for every cached domain (so each one replaces its entry and is
written to the store), then `list`, then `export`; --rounds times.

Reported per phase (idle, then each verb while it runs): lookups answered,
maximum and p99 latency in ms, and the verb's own wall time.

    .venv/bin/python benchmarks/bench_admin_verbs.py [--policies 100000]
        [--daemon-python-path DIR] [--idle-s 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
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

from bench_daemon import CONFIG, fill_sqlite, first_answer, free_port
from bench_lookup import domain_name, synthetic_entries

CHECKOUT = Path(__file__).resolve().parent.parent


def lookups(
    port: int, policies: int, stop: Any, out: Any, ready: Any
) -> None:  # pragma: no cover - a child process
    """Ask for random cached domains until ``stop`` is set; send back
    (sent_at, latency_s) pairs, monotonic clock (shared by processes)."""
    samples: list[tuple[float, float]] = []
    rng = random.Random(1)
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.settimeout(60)
        ready.set()
        while not stop.is_set():
            request = b"postfix " + domain_name(rng.randrange(policies)).encode()
            frame = b"%d:%s," % (len(request), request)
            sent = time.monotonic()
            s.sendall(frame)
            reply = b""
            while not reply.endswith(b","):
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit("the daemon closed the lookup connection")
                reply += chunk
            samples.append((sent, time.monotonic() - sent))
            if b":OK " not in reply:
                raise SystemExit(f"unexpected answer {reply[:80]!r}")
    out.send(samples)


def cli_of(config: Path) -> list[str]:
    return [sys.executable, "-m", "postfix_mtasts", "cache", "--config", str(config)]


def summary(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"lookups": 0}
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "lookups": len(ordered),
        "max_ms": round(ordered[-1] * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "median_ms": round(ordered[len(ordered) // 2] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=int, default=100_000)
    parser.add_argument("--idle-s", type=float, default=3.0)
    parser.add_argument("--daemon-python-path", type=Path, default=CHECKOUT)
    parser.add_argument(
        "--rounds", type=int, default=1, help="import, list, export this often"
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="no SQLite store: the policies are imported before the run",
    )
    args = parser.parse_args()
    tree = args.daemon_python_path.resolve()
    env = dict(os.environ, PYTHONPATH=str(tree))
    work = Path(tempfile.mkdtemp(prefix="mtasts-bench-admin-"))
    results: dict[str, Any] = {"policies": args.policies, "tree": str(tree)}
    proc = None
    try:
        now = time.time()
        fill_sqlite(
            work / "policies.sqlite3", synthetic_entries(args.policies, now - 120)
        )
        newer = []
        for n in range(args.rounds):  # each round's import newer than the last
            newer.append(work / f"newer{n}.jsonl")
            newer[n].write_bytes(
                b"".join(
                    e.to_bytes() + b"\n"
                    for e in synthetic_entries(args.policies, now + n)
                )
            )
        port = free_port()
        config = work / "daemon.toml"
        config.write_text(
            CONFIG.format(
                port=port,
                max_entries=args.policies,
                store="" if args.memory_only else work / "policies.sqlite3",
                control=work / "control.sock",
                redis="",
            )
        )
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "postfix_mtasts", "serve", "--config", str(config)],
            stdout=(work / "daemon.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tree,
        )
        key = domain_name(args.policies - 1).encode()
        if args.memory_only:
            older = work / "older.jsonl"
            older.write_bytes(
                b"".join(
                    e.to_bytes() + b"\n"
                    for e in synthetic_entries(args.policies, now - 120)
                )
            )
            while True:  # the control socket is up: fill the cache
                filled = subprocess.run(
                    [*cli_of(config), "import", str(older)],
                    env=env,
                    cwd=tree,
                    capture_output=True,
                    check=False,
                )
                if filled.returncode == 0:
                    break
                time.sleep(0.2)
        results["first_answer_s"] = round(
            first_answer(port, key, started + 120) - started, 2
        )
        stop, ready = multiprocessing.Event(), multiprocessing.Event()
        receive, send = multiprocessing.Pipe(duplex=False)
        client = multiprocessing.Process(
            target=lookups, args=(port, args.policies, stop, send, ready)
        )
        client.start()
        ready.wait(30)
        phases: list[tuple[str, float, float]] = []
        t0 = time.monotonic()
        time.sleep(args.idle_s)
        phases.append(("idle", t0, time.monotonic()))
        cli = cli_of(config)
        rounds = [
            (f"{verb}#{n + 1}" if args.rounds > 1 else verb, verb, extra)
            for n in range(args.rounds)
            for verb, extra in (
                ("import", [str(newer[n])]),
                ("list", []),
                ("export", [str(work / "export.jsonl")]),
            )
        ]
        for name, verb, extra in rounds:
            t0 = time.monotonic()
            done = subprocess.run(
                [*cli, verb, *extra],
                env=env,
                cwd=tree,
                stdout=subprocess.DEVNULL if verb == "list" else subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
            )
            phases.append((name, t0, time.monotonic()))
            if done.returncode:
                raise SystemExit(f"cache {verb} failed: {done.stderr.decode()}")
            if verb == "import":
                results["import_said"] = done.stdout.decode().strip()
            time.sleep(0.5)  # the store's write-behind settles between verbs
        stop.set()
        samples: list[tuple[float, float]] = receive.recv()
        client.join(30)
        for name, begin, end in phases:
            inside = [lat for sent, lat in samples if begin <= sent <= end]
            # A lookup sent just before the verb and stalled by it counts too.
            inside += [
                lat for sent, lat in samples if sent < begin and sent + lat > begin
            ]
            results[name] = {"verb_s": round(end - begin, 2), **summary(inside)}
            print(f"{name:<9} {json.dumps(results[name])}", flush=True)
        for verb in ("import", "list", "export"):
            worst = [
                v["max_ms"]
                for k, v in results.items()
                if k.startswith(verb) and isinstance(v, dict) and "max_ms" in v
            ]
            results[f"{verb}_worst_ms"] = max(worst)
            print(f"{verb} worst over {args.rounds} rounds: {max(worst)} ms")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
