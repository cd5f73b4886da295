"""Cached-lookup throughput, p99 latency and RSS of the socketmap daemon.

Runs, side by side in one run, the daemon's real socketmap path (protocol,
codec, key classification, lookup service, in-memory cache, rendering) and a
bare Twisted NetstringReceiver answering from a dict, each in its own
process on the epoll reactor, loaded by a client process over 1 and 100
persistent connections with sequential requests per connection (as Postfix
does).  The cache is filled with synthetic policies first, so no network is
involved; the daemon's resolver fails the run if it is ever called.
With ``--dane`` the daemon also keeps MX facts for every domain (DANE
precedence, gathered once by an instant fake during the warm-up), so the
hot path includes their check, as on a map with DANE precedence on
(``dane = true``, or "auto" where Postfix does DANE).
With ``--peer VENV`` the peer daemon, postfix-mta-sts-resolver from a venv
made by scripts/peer-venv, is one more server: its own socketmap responder
over its own in-memory cache, filled with the same policies
(benchmarks/peer_serve.py, run by that venv's python).
With ``--before DIR`` one more server runs the daemon of another source
tree (e.g. ``git worktree add /tmp/before main``) through that tree's own
copy of this script, in the same rounds, so one run gives before, after and
the bare ceiling side by side.

    .venv/bin/python benchmarks/bench_lookup.py [--policies 100000] [--seconds 5]
        [--dane] [--peer VENV] [--before DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def domain_name(i: int) -> str:
    return f"d{i}.bench-domain.example"


def synthetic_entries(count: int, now: float) -> list[Any]:
    """``count`` enforce policies (two mx patterns each), fetched at ``now``."""
    from postfix_mtasts.core.entry import CacheEntry
    from postfix_mtasts.core.policy import Policy, parse_policy

    out = []
    for i in range(count):
        d = domain_name(i)
        body = f"version: STSv1\nmode: enforce\nmx: mx1.{d}\nmx: *.mx.{d}\nmax_age: 31557600\n"
        policy = parse_policy(body.encode())
        assert isinstance(policy, Policy)
        out.append(CacheEntry.fetched(d, f"id{i}", policy, now))
    return out


# -- servers (run in a child process) ------------------------------------------


def serve(kind: str, policies: int, dane: bool = False) -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import Factory
    from twisted.protocols.basic import NetstringReceiver

    if kind == "daemon":
        # Code is not data: import the daemon's modules before the baseline,
        # so that bytes per policy count policies only.
        import postfix_mtasts.service  # noqa: F401
    before = rss_kib()
    listening: Any
    if kind == "bare":
        secure = b"OK secure match=mx1.%s:.mx.%s servername=hostname"
        table = {
            domain_name(i).encode(): secure
            % (domain_name(i).encode(), domain_name(i).encode())
            for i in range(policies)
        }

        class Bare(NetstringReceiver):
            def stringReceived(self, string: bytes) -> None:
                _, _, key = string.partition(b" ")
                self.sendString(table.get(key, b"NOTFOUND "))

        listening = reactor.listenTCP(
            0, Factory.forProtocol(Bare), interface="127.0.0.1"
        )
    else:
        from postfix_mtasts.core.config import MapConfig
        from postfix_mtasts.core.decision import Outcome, Timing
        from postfix_mtasts.protocols import LookupFactory, SocketmapProtocol
        from postfix_mtasts.service import assemble_lookup

        class NoNetwork:
            def resolve(
                self, domain: str, known: str | None, may: Callable[[str], bool]
            ) -> Deferred[Outcome]:
                raise SystemExit(f"benchmark bug: network lookup for {domain}")

        from twisted.internet.defer import succeed

        from postfix_mtasts.core.dane import FactsFailed, MxFacts, TlsaState

        class InstantFacts:
            def gather(self, domain: str) -> Deferred[MxFacts | FactsFailed]:
                validated = (TlsaState.VALIDATED,)
                now = reactor.seconds()
                return succeed(MxFacts(("mx1." + domain,), True, validated, now, 1e6))

        parts = assemble_lookup(
            NoNetwork(),
            reactor,
            max_entries=max(policies, 1),
            maps={
                "postfix": MapConfig(
                    strict_testing=False,
                    tlsrpt=False,
                    dns_failure="notfound",
                    dane=dane,
                )
            }.get,
            timing=Timing(
                recheck_interval_s=86400, negative_ttl_s=300, failure_backoff_s=300
            ),
            budget_s=15,
            max_in_flight=32,
            facts=InstantFacts() if dane else None,
        )
        parts.admin.preload(synthetic_entries(policies, reactor.seconds()))
        gc.freeze()  # as the daemon does after loading its store
        factory = LookupFactory(
            SocketmapProtocol,
            parts.front_door.lookup,
            reactor,
            max_connections=1000,
            idle_timeout_s=600,
        )
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    after = rss_kib()
    print(
        json.dumps(
            {
                "port": listening.getHost().port,
                "rss_before_kib": before,
                "rss_after_kib": after,
            }
        ),
        flush=True,
    )

    def report_rss() -> None:
        print(json.dumps({"rss_kib": rss_kib()}), flush=True)

    reactor.addSystemEventTrigger("before", "shutdown", report_rss)
    reactor.run()


# -- client ---------------------------------------------------------------------


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


_C_CLIENT: list[str] = []


def c_client() -> str | None:
    """benchmarks/netstring_load.c compiled once per run, or None without a
    C compiler (then the Python client below is used)."""
    if not _C_CLIENT:
        compiler = shutil.which("cc") or shutil.which("gcc")
        binary = os.path.join(
            tempfile.mkdtemp(prefix="mtasts-bench-"), "netstring_load"
        )
        source = os.path.join(HERE, "netstring_load.c")
        ok = (
            compiler
            and subprocess.run([compiler, "-O2", "-o", binary, source]).returncode == 0
        )
        _C_CLIENT.append(binary if ok else "")
    return _C_CLIENT[0] or None


def load(port: int, connections: int, seconds: float, policies: int) -> dict[str, Any]:
    """Sequential requests on ``connections`` persistent connections for
    ``seconds``, over a fixed pool of 4096 random cached domains."""
    client = c_client()
    if client is None:
        return py_load(port, connections, seconds, policies)
    rng = random.Random(1)
    keys = [f"postfix {domain_name(rng.randrange(policies))}" for _ in range(4096)]
    with tempfile.NamedTemporaryFile("w", suffix=".keys") as f:
        f.write("\n".join(keys) + "\n")
        f.flush()
        out = subprocess.run(
            [client, str(port), str(connections), str(seconds), f.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def py_load(
    port: int, connections: int, seconds: float, policies: int
) -> dict[str, Any]:
    rng = random.Random(1)
    keys = [
        netstring(b"postfix " + domain_name(rng.randrange(policies)).encode())
        for _ in range(4096)
    ]
    sel = selectors.DefaultSelector()
    socks = []
    for n in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, [n, 0.0, b""])
    latencies: list[float] = []
    k = 0
    deadline = time.perf_counter() + seconds
    for s in socks:
        key = sel.get_key(s)
        key.data[1] = time.perf_counter()
        s.send(keys[k % 4096])
        k += 1
    errors = 0
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            data = key.data
            chunk = s.recv(65536)  # type: ignore[union-attr]
            if not chunk:
                raise SystemExit("server closed a connection")
            buf = data[2] + chunk
            if not buf.endswith(b","):
                data[2] = buf
                continue
            data[2] = b""
            if b":OK " not in buf:
                errors += 1
            t = time.perf_counter()
            latencies.append(t - data[1])
            data[1] = t
            s.send(keys[k % 4096])  # type: ignore[union-attr]
            k += 1
    elapsed = seconds
    for s in socks:
        s.close()
    latencies.sort()
    return {
        "connections": connections,
        "requests": len(latencies),
        "req_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "non_ok_replies": errors,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc: the server's cost per
    request, whatever the client's speed."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(
    kind: str,
    policies: int,
    dane: bool = False,
    peer: str | None = None,
    tree: str | None = None,
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """Serve ``kind`` in a child process: the peer from its venv, else from
    ``tree`` (a source tree with its own copy of this script) or this one."""
    if kind == "peer":
        assert peer is not None
        argv = [
            os.path.join(peer, "bin", "python"),
            os.path.join(HERE, "peer_serve.py"),
        ]
        argv += ["--policies", str(policies)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    else:
        script = (
            os.path.join(tree, "benchmarks", "bench_lookup.py") if tree else __file__
        )
        argv = [sys.executable, script, "--serve", kind, "--policies", str(policies)]
        argv += ["--dane"] if dane else []
        env = {**os.environ, "PYTHONPATH": tree or os.path.dirname(HERE)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=["bare", "daemon"])
    parser.add_argument("--policies", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternating rounds; medians are reported"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--dane", action="store_true", help="MX facts kept too")
    parser.add_argument(
        "--peer", metavar="VENV", help="the peer daemon from this venv as well"
    )
    parser.add_argument(
        "--before", metavar="DIR", help="also the daemon of this source tree"
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.policies, args.dane)
        return
    kinds: tuple[str, ...] = ("bare", "daemon")
    kinds += ("peer",) if args.peer else ()
    kinds += ("before",) if args.before else ()
    servers = {
        kind: start(
            "daemon" if kind == "before" else kind,
            args.policies,
            args.dane,
            args.peer,
            args.before if kind == "before" else None,
        )
        for kind in kinds
    }
    rounds: dict[str, dict[int, list[dict[str, Any]]]] = {
        k: {1: [], 100: []} for k in kinds
    }
    ratios: dict[str, dict[int, list[float]]] = {k: {1: [], 100: []} for k in kinds}
    try:
        for _, info in servers.values():  # warm up: every key of the pool seen once
            load(info["port"], 100, 2.0, args.policies)
        for n in range(args.repeat):
            for c in (1, 100):
                # rotate who goes first, so drift on a shared machine evens out
                got = {}
                for kind in kinds[n % len(kinds) :] + kinds[: n % len(kinds)]:
                    proc, info = servers[kind]
                    cpu_before = cpu_seconds(proc.pid)
                    run = load(info["port"], c, args.seconds, args.policies)
                    run["server_cpu_us_per_req"] = round(
                        (cpu_seconds(proc.pid) - cpu_before)
                        / max(run["requests"], 1)
                        * 1e6,
                        1,
                    )
                    rounds[kind][c].append(run)
                    got[kind] = run["req_per_s"]
                for kind in kinds[1:]:
                    ratios[kind][c].append(got[kind] / got["bare"])
    finally:
        tails = {}
        for kind, (proc, _) in servers.items():
            proc.terminate()
            assert proc.stdout is not None
            tails[kind] = proc.stdout.read()
            proc.wait()
    results: dict[str, Any] = {"policies": args.policies, "repeat": args.repeat}
    if args.peer:
        results["peer_event_loop"] = servers["peer"][1].get("event_loop")
    for kind in kinds:
        info = servers[kind][1]
        rss = max(
            (json.loads(x).get("rss_kib", 0) for x in tails[kind].splitlines() if x),
            default=0,
        )
        results[kind] = {
            "rss_kib": rss,
            "bytes_per_policy": round(
                (info["rss_after_kib"] - info["rss_before_kib"])
                * 1024
                / max(args.policies, 1)
            ),
            "median": {
                c: {
                    key: statistics.median(r[key] for r in rounds[kind][c])
                    for key in (
                        "req_per_s",
                        "p50_ms",
                        "p99_ms",
                        "server_cpu_us_per_req",
                    )
                }
                for c in (1, 100)
            },
            "rounds": rounds[kind],
        }
    for c in (1, 100):
        results[f"ratio_{c}_conn"] = round(statistics.median(ratios["daemon"][c]), 3)
        if args.peer:
            results[f"peer_ratio_{c}_conn"] = round(
                statistics.median(ratios["peer"][c]), 3
            )
        if args.before:
            results[f"ratio_before_{c}_conn"] = round(
                statistics.median(ratios["before"][c]), 3
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"policies cached: {args.policies}, {args.repeat} rotating rounds, medians")
    for kind in kinds:
        r = results[kind]
        print(
            f"{kind:>7}: RSS {r['rss_kib'] / 1024:.1f} MiB, {r['bytes_per_policy']} B/policy"
        )
        for c in (1, 100):
            m = r["median"][c]
            print(
                f"         {c:>3} conn: {m['req_per_s']:>7.0f} req/s "
                f"p50 {m['p50_ms']:.3f} ms p99 {m['p99_ms']:.3f} ms "
                f"server CPU {m['server_cpu_us_per_req']} us/req"
            )
    print(
        f"daemon/bare throughput (median of rounds): 1 conn {results['ratio_1_conn']}x, "
        f"100 conn {results['ratio_100_conn']}x"
    )
    if args.peer:
        print(
            f"peer ({results['peer_event_loop']} loop)/bare throughput"
            " (median of rounds): 1 conn "
            f"{results['peer_ratio_1_conn']}x, 100 conn {results['peer_ratio_100_conn']}x"
        )
    if args.before:
        print(
            f"before/bare throughput (median of rounds): "
            f"1 conn {results['ratio_before_1_conn']}x, "
            f"100 conn {results['ratio_before_100_conn']}x"
        )


if __name__ == "__main__":
    main()
