"""Lookups of domains with no MTA-STS record, over C connections.

Most next-hop domains Postfix asks about publish no ``_mta-sts`` TXT
record: their lookups are NOTFOUND, and the only network work is the TXT
query (NXDOMAIN).  Each rep asks --names names under ``test.`` that the
integration test world (tests/integration/world.py) does not publish, in a
fixed rotation, over --connections persistent connections for --seconds,
with benchmarks/netstring_load.c run inside the daemon's namespace (each
connection sequential, like Postfix).  The world's zone gets SOA MINIMUM
--dns-negative-ttl (default 0), so no resolver may hold an NXDOMAIN: the
peer's c-ares query cache would otherwise answer its repeats.  Two modes:

  uncached  ours with ``[cache] negative_ttl = 0``: no negative is held, so
            every lookup sends a TXT query, as the peer does for every
            lookup of a domain without a policy (it caches policies only)
  held      ours as shipped (negatives held for ``negative_ttl``, 300 s);
            --warm-s of load first, so that every name has been asked once

A fresh daemon per rep and mode (from --daemon-python-path, default this
checkout; pinned to CPU 0 with taskset, the world and the load on the
other CPUs).  Meanwhile one extra connection asks enforce.test (cached
before the load) every --hot-interval-ms, in a forked process of its own.

Reported per rep, then as medians: requests/s, p50/p99 of the lookups,
answers other than NOTFOUND, daemon CPU (all, and system) per request,
the daemon's CPU share, DNS queries per request (unbound's ``total.num.queries``), RSS
after the load, and the hot lookup's p99 during it.  With --peer VENV
--compare each rep runs ours and the peer (postfix-mta-sts-resolver, from
scripts/peer-venv) alternately first; the peer holds no negative of its
own (its DNS library holds an NXDOMAIN for the zone's negative TTL, 0
here), so it runs once per rep, and its medians are set beside each of our
modes.  The
last line is JSON with it all.  --py-spy FILE samples our daemon during the
last rep's load (collapsed stacks, FILE.MODE); --profile FILE runs it under
cProfile (FILE.MODE, start-up included); benchmarks/profile_layers.py reads
either.  Needs root (network namespaces).

    .venv/bin/python benchmarks/bench_negative.py [--names 1000]
        [--connections 100] [--seconds 5] [--reps 3] [--mode both]
        [--peer VENV [--compare]]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from attack_world import World, exit_on_sigterm
from bench_cold import (
    HOT_DOMAIN,
    HotProbe,
    dns_queries,
    latency,
    medians,
    start_daemon,
    start_py_spy,
    user_sys,
    wait_secure,
)
from bench_cold import parse_args as cold_args
from bench_floods import cpu_s, package_file, rss_kib
from bench_lookup import c_client
from peer import describe

CHECKOUT = Path(__file__).resolve().parent.parent
PORT = 8661
MODES = ("uncached", "held")


def load_in(world: World, port: int, conns: int, seconds: float, keys: Path) -> Any:
    """netstring_load.c in the daemon's namespace: its JSON summary."""
    client = c_client()
    if client is None:
        raise SystemExit("bench_negative.py needs a C compiler (cc) for the load")
    argv = ["ip", "netns", "exec", world.mta.name, client]
    argv += [str(port), str(conns), str(seconds), str(keys)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def one_rep(
    args: argparse.Namespace, world: World, rep: int, mode: str, server: str
) -> dict[str, Any]:
    world.reset()
    label = "peer" if server == "peer" else mode
    names = [f"nx-{label}{rep}-{i}.test" for i in range(args.names)]
    keys = world.work / f"negative-{label}-{rep}.keys"
    keys.write_text("".join(f"postfix {name}\n" for name in names))
    run_args = argparse.Namespace(**vars(args))
    if server == "ours" and mode == "uncached":
        run_args.setting = [*args.setting, ("cache", "negative_ttl = 0")]
    last = server == "ours" and rep == args.reps - 1
    profile = Path(f"{args.profile}.{mode}") if args.profile and last else None
    daemon = start_daemon(run_args, world, server, f"neg-{label}-{rep}", profile)
    try:
        if not wait_secure(daemon, HOT_DOMAIN):
            raise RuntimeError(f"{HOT_DOMAIN} never answered secure")
        if server == "ours" and mode == "held" and args.warm_s > 0:
            load_in(world, args.port, args.connections, args.warm_s, keys)
        time.sleep(0.5)
        probe = HotProbe(daemon, args.hot_interval_ms / 1000)
        time.sleep(1.0)
        spy = None
        if args.py_spy and last:
            spy = start_py_spy(daemon.pid, f"{args.py_spy}.{mode}")
        dns0, cpu0 = dns_queries(world), cpu_s(daemon.pid)
        split0 = user_sys(daemon.pid)
        started = time.monotonic()
        result = load_in(world, args.port, args.connections, args.seconds, keys)
        ended = time.monotonic()
        cpu1, dns1 = cpu_s(daemon.pid), dns_queries(world)
        split1 = user_sys(daemon.pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        samples = probe.stop()
        rss = rss_kib(daemon.pid)
    finally:
        daemon.stop()
    n = result["requests"] or 1
    cpu_used = (cpu1 or 0.0) - (cpu0 or 0.0)
    return {
        "rep": rep,
        "server": server,
        "mode": mode,
        "requests": result["requests"],
        "req_per_s": round(result["req_per_s"], 1),
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "not_notfound": result["requests"] - result["notfound_replies"],
        "cpu_us_per_request": round(cpu_used * 1e6 / n, 1),
        "daemon_cpu_share": round(cpu_used / (ended - started), 3),
        "sys_us_per_request": (
            round((split1[1] - split0[1]) * 1e6 / n, 1) if split0 and split1 else None
        ),
        "dns_queries_per_request": (
            round((dns1 - dns0) / n, 3)
            if dns0 is not None and dns1 is not None
            else None
        ),
        "rss_after_kib": rss,
        "hot_during": latency(samples, started, ended),
    }


MEDIAN_KEYS = (
    "req_per_s",
    "p50_ms",
    "p99_ms",
    "not_notfound",
    "cpu_us_per_request",
    "sys_us_per_request",
    "daemon_cpu_share",
    "dns_queries_per_request",
    "rss_after_kib",
    "hot_during.p99_ms",
    "hot_during.max_ms",
)


def order_of(args: argparse.Namespace, rep: int) -> list[tuple[str, str]]:
    """(server, mode) runs of this rep: ours in each mode, and with
    --compare the peer, first in odd reps and last in even ones."""
    ours = [("ours", mode) for mode in args.modes]
    if not args.peer:
        return ours
    if not args.compare:
        return [("peer", "uncached")]
    return (
        [*ours, ("peer", "uncached")] if rep % 2 == 0 else [("peer", "uncached"), *ours]
    )


def run(args: argparse.Namespace) -> int:
    tree = Path(args.daemon_python_path).resolve()
    if not args.no_pin and (os.cpu_count() or 1) > 1:
        others = set(range(os.cpu_count() or 1)) - {int(args.daemon_cpu)}
        os.sched_setaffinity(0, others)  # the world and the load inherit this
    results: dict[str, Any] = {
        "tree": str(tree),
        "package": package_file(tree),
        "names": args.names,
        "connections": args.connections,
        "seconds": args.seconds,
        "dns_negative_ttl": args.dns_negative_ttl,
        "daemon_cpu": None if args.no_pin else args.daemon_cpu,
        "reps": [],
    }
    if args.peer:
        results["peer"] = describe(Path(args.peer).resolve(), args.names + 100)
        print(f"peer: {results['peer']['version']} in {args.peer}", flush=True)
    world = World.create()
    try:
        world.dns.set_negative_ttl(args.dns_negative_ttl)
        for rep in range(args.reps):
            for server, mode in order_of(args, rep):
                result = one_rep(args, world, rep, mode, server)
                results["reps"].append(result)
                print(json.dumps(result, separators=(",", ":")), flush=True)
    finally:
        world.close()
    groups = {
        f"{server} {mode}": [
            r for r in results["reps"] if (r["server"], r["mode"]) == (server, mode)
        ]
        for server, mode in [*(("ours", m) for m in args.modes), ("peer", "uncached")]
    }
    results["median"] = {
        name: medians(reps, MEDIAN_KEYS) for name, reps in groups.items() if reps
    }
    for name, values in results["median"].items():
        for key, value in values.items():
            print(f"{name} median {key}: {value}", flush=True)
    peer = results["median"].get("peer uncached")
    for mode in args.modes:
        ours = results["median"].get(f"ours {mode}")
        if peer and ours and peer["req_per_s"]:
            ratio = round(ours["req_per_s"] / peer["req_per_s"], 2)
            print(f"ours {mode}/peer req_per_s: {ratio}", flush=True)
    print(json.dumps(results, separators=(",", ":")), flush=True)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    """bench_cold's options (daemon tree, pinning, --setting, --peer,
    --compare) plus this benchmark's own."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--names", type=int, default=1000)
    own.add_argument("--seconds", type=float, default=5.0)
    own.add_argument("--warm-s", type=float, default=2.0)
    own.add_argument("--mode", choices=[*MODES, "both"], default="both")
    own.add_argument(
        "--dns-negative-ttl",
        type=int,
        default=0,
        help="the SOA MINIMUM of the world's zone: 0 (the default) lets no"
        " resolver hold the NXDOMAIN (the peer's c-ares would, for this long)",
    )
    mine, rest = own.parse_known_args(argv)
    args = cold_args([*rest, "--port", str(PORT)] if "--port" not in rest else rest)
    args.__dict__.update(vars(mine))
    args.modes = list(MODES) if mine.mode == "both" else [mine.mode]
    args.domains = args.names  # what bench_cold sizes the peer's cache by
    return args


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench_negative.py needs root (network namespaces)")
    exit_on_sigterm()
    sys.exit(run(parse_args(sys.argv[1:])))
