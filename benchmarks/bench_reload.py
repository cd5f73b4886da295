"""How long a SIGHUP reload takes with a full cache, and how long it stalls
a lookup.

The daemon (the real ``start_daemon`` and ``Reloader``, epoll reactor) runs
in this process with ``--policies`` synthetic enforce policies in its cache;
a client process asks cached domains over one socketmap connection, one
request at a time as Postfix does, and records each lookup's latency.
Meanwhile the daemon sends itself SIGHUP ``--reloads`` times, each time with
a changed file (strict_testing, max_connections and a second listener
toggled; ``dane = "auto"``, so postconf runs as in production).  As in
production, the policies are frozen out of GC passes (``gc.freeze``, which
``start_daemon`` does after loading a store) and the working directory is /
(systemd's default: Twisted starts postconf with posix_spawn there, with a
fork elsewhere, which copies the page tables of the whole cache).  Reported:
the reload time (SIGHUP sent to reload done), the longest lookup that
overlapped a reload, and the longest lookup outside reloads; the time to
read and parse the file alone; and, from a 1 ms ticker on the reactor, the
most CPU time the reactor spent between two turns during a reload (what
the reload itself holds lookups back, unlike wall-clock gaps, which on a
loaded machine include time this process was not scheduled).

    .venv/bin/python benchmarks/bench_reload.py [--policies 100000]
        [--reloads 20]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CONFIG = """
[[listener]]
endpoint = "tcp:{port}:interface=127.0.0.1"
{second}
[maps.postfix]
strict_testing = {strict}

[dns]
nameservers = ["127.0.0.1"]

[cache]
max_entries = {entries}

[server]
max_connections = {connections}

[store]
path = ""

[control]
socket = ""
"""

CLIENT = r"""
import json, socket, sys, time
port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
out = []
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    payload = b"postfix d%d.bench-domain.example" % (i % count)
    t = time.monotonic()
    s.sendall(b"%d:%s," % (len(payload), payload))
    data = b""
    while not data.endswith(b","):
        data += s.recv(65536)
    out.append((t, time.monotonic() - t))
    i += 1
json.dump(out, sys.stdout)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=int, default=100_000)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--port", type=int, default=18471)
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="leave the policies in the GC's generations (no store at start)",
    )
    parser.add_argument(
        "--cwd",
        default="/",
        help="working directory (systemd's default /: postconf is then "
        "started with posix_spawn, not fork)",
    )
    args = parser.parse_args()
    os.chdir(args.cwd)

    from twisted.internet import epollreactor

    epollreactor.install()
    from bench_lookup import synthetic_entries
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.task import LoopingCall

    from postfix_mtasts.core.config import load
    from postfix_mtasts.reload import Reloader
    from postfix_mtasts.service import start_daemon

    work = tempfile.mkdtemp(prefix="bench-reload-")
    path = os.path.join(work, "daemon.toml")

    def write(n: int) -> None:
        second = (
            f'[[listener]]\nendpoint = "tcp:{args.port + 1}:interface=127.0.0.1"\n'
            if n % 2
            else ""
        )
        with open(path, "w") as f:
            f.write(
                CONFIG.format(
                    port=args.port,
                    second=second,
                    strict="true" if n % 2 else "false",
                    entries=args.policies,
                    connections=512 + n % 2,
                )
            )

    write(0)
    t = time.perf_counter()
    for _ in range(100):
        load(path)
    parse_ms = (time.perf_counter() - t) * 10  # per read, in ms
    done: list[float] = []
    sent: list[float] = []
    reloader = Reloader(
        path,
        reactor,
        on_state=lambda s: done.append(time.monotonic()) if s == "ready" else None,
    )
    result: dict[str, Any] = {}
    ticks: list[tuple[float, float]] = []  # the reactor's turns: wall, CPU

    async def run() -> None:
        reloader.install()
        config = load(path)
        daemon = await start_daemon(config, reactor)
        daemon.lookup.admin.preload(synthetic_entries(args.policies, reactor.seconds()))
        if not args.no_freeze:
            gc.freeze()  # as start_daemon does after loading a store's policies
        reloader.started(daemon, config)
        ticker = LoopingCall(
            lambda: ticks.append((time.monotonic(), time.thread_time()))
        )
        ticker.clock = reactor
        ticker.start(0.001)
        seconds = args.reloads * args.interval + 2.0
        samples_file = open(os.path.join(work, "samples.json"), "w+")  # noqa: SIM115
        client = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLIENT,
                str(args.port),
                str(args.policies),
                str(seconds),
            ],
            stdout=samples_file,
        )
        await sleep(1.0)  # warm-up: every answer rendered once
        for n in range(1, args.reloads + 1):
            write(n)
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGHUP)
            await sleep(args.interval)
        while client.poll() is None:
            await sleep(0.1)
        samples_file.seek(0)
        samples = json.load(samples_file)
        samples_file.close()
        windows = list(zip(sent, done[-len(sent) :], strict=True))
        during = [
            lat
            for t0, lat in samples
            if any(t0 < b and t0 + lat > a for a, b in windows)
        ]
        outside = [
            lat
            for t0, lat in samples
            if not any(t0 < b and t0 + lat > a for a, b in windows)
        ]
        reload_ms = [(b - a) * 1000 for a, b in windows]
        # The reactor busy without a turn: CPU time between two ticks (a
        # wall-clock gap with little CPU is this process not scheduled, on
        # a shared machine, and no work of the daemon's).
        busy = [
            (t1, c1 - c0, t1 - t0) for (t0, c0), (t1, c1) in itertools.pairwise(ticks)
        ]
        in_reload = [
            (cpu, wall)
            for t, cpu, wall in busy
            if any(a <= t <= b + 0.05 for a, b in windows)
        ]
        ticker.stop()
        result.update(
            policies=args.policies,
            reloads=len(windows),
            parse_ms=round(parse_ms, 3),
            reload_ms_median=round(statistics.median(reload_ms), 1),
            reload_ms_max=round(max(reload_ms), 1),
            lookups=len(samples),
            lookups_during_reloads=len(during),
            stall_ms_max_during_reloads=round(max(during, default=0) * 1000, 2),
            lookup_ms_max_outside=round(max(outside) * 1000, 2),
            lookup_ms_p99_outside=round(
                sorted(outside)[int(len(outside) * 0.99)] * 1000, 3
            ),
            reactor_busy_ms_max_during_reloads=round(
                max(cpu for cpu, _ in in_reload) * 1000, 2
            ),
            reactor_gap_ms_max_during_reloads=round(
                max(wall for _, wall in in_reload) * 1000, 2
            ),
            cached_after=daemon.lookup.domains.sizes()["policies"],  # type: ignore[union-attr]
        )

    def sleep(seconds: float) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        reactor.callLater(seconds, d.callback, None)
        return d

    def stop(_: object) -> None:
        reactor.stop()

    reactor.callWhenRunning(
        lambda: Deferred.fromCoroutine(run()).addErrback(print).addBoth(stop)
    )
    reactor.run()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
