"""CPU of the daemon's side of a policy fetch, in one process.

A child process serves the policy over HTTPS on loopback (a test CA's
certificate for ``mta-sts.example.com``, ``Connection: close`` after each
answer, so that no client reuses a connection; ``--hosts H`` names H policy
hosts in the certificate and fetches them in turn, ``--keep-alive`` lets
the host keep connections open, and the open files and RSS after the rounds
show what a client keeps); this process fetches it N
times, C at a time, through ``make_https_client`` and ``HttpsPolicyFetcher``
as the daemon does (the host name resolved at once to 127.0.0.1, no DNS),
and reports the reactor thread's CPU (``time.thread_time``) and wall time
per fetch, median of the rounds.  Both the client's code and the server's
are whatever ``postfix_mtasts`` imports, so pointing PYTHONPATH at another
checkout measures that one with the same script.  The policy host listens on
port 443 of a network namespace of its own (``unshare -n``, run as root).

    .venv/bin/python benchmarks/bench_fetch.py [-n 1000] [-c 1] [--rounds 5]
        [--groups DEFAULT]

``--groups`` replaces the key exchange groups the client offers (OpenSSL's
list syntax; ``DEFAULT`` is OpenSSL's own list), where the checkout has
``https.KEY_EXCHANGE_GROUPS``.  The policy host here is Python's ssl module,
whose OpenSSL may lack the hybrid post-quantum groups: ``--handshakes N``
measures instead the client's CPU for N TLS handshakes in memory against a
pyOpenSSL server (this OpenSSL's default groups), ours against OpenSSL's
default list, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

POLICY = b"version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n"
KEPT = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
    % (
        len(POLICY),
        POLICY,
    )
)
ANSWER = KEPT.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
HOST = "mta-sts.example.com"


def serve(port_file: str, cert: str, key: str, keep_alive: str) -> None:
    """The policy host: answers each request head with the policy, then
    closes, or with ``keep_alive`` "1" waits for the next request."""

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(KEPT if keep_alive == "1" else ANSWER)
                await writer.drain()
                if keep_alive != "1":
                    break
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = await asyncio.start_server(
            answer, "127.0.0.1", 443, ssl=context, backlog=1024
        )
        port = server.sockets[0].getsockname()[1]
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(port_file + ".tmp", port_file)
        await server.serve_forever()

    asyncio.run(main())


def measure(args: argparse.Namespace, ca_file: str, port: int) -> None:
    from twisted.internet import defer, task
    from twisted.internet.address import IPv4Address
    from twisted.internet.interfaces import IHostnameResolver, IHostResolution
    from zope.interface import implementer

    from postfix_mtasts import https
    from postfix_mtasts.fetch import HttpsPolicyFetcher

    if args.groups is not None:
        https.KEY_EXCHANGE_GROUPS = args.groups.encode()

    @implementer(IHostResolution)
    class Resolution:
        def __init__(self, name: str) -> None:
            self.name = name

        def cancel(self) -> None:
            pass

    @implementer(IHostnameResolver)
    class Loopback:
        def resolveHostName(  # noqa: N802 (Twisted's name)
            self, receiver: Any, name: str, *_: Any
        ) -> Any:
            resolution = Resolution(name)
            receiver.resolutionBegan(resolution)
            receiver.addressResolved(IPv4Address("TCP", "127.0.0.1", port))
            receiver.resolutionComplete()
            return resolution

    async def main(reactor: Any) -> None:
        client = https.make_https_client(
            reactor, ca_file=ca_file, name_resolver=Loopback()
        )
        fetcher = HttpsPolicyFetcher(client, reactor)
        domains = policy_domains(args.hosts)
        asked = 0
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(args.rounds + 1):  # the first round warms up
            todo = args.n
            started_cpu, started = time.thread_time(), time.perf_counter()

            async def worker() -> None:
                nonlocal todo, asked
                while todo > 0:
                    todo -= 1
                    asked += 1
                    body = await fetcher.fetch(domains[asked % len(domains)])
                    assert body == POLICY

            await defer.gatherResults(
                [defer.Deferred.fromCoroutine(worker()) for _ in range(args.c)]
            )
            cpu.append((time.thread_time() - started_cpu) / args.n)
            wall.append((time.perf_counter() - started) / args.n)
        cpu, wall = cpu[1:], wall[1:]
        checkout = os.path.dirname(os.path.dirname(https.__file__))
        print(
            f"{checkout}: n={args.n} c={args.c} rounds={args.rounds} groups={args.groups}: "
            f"client CPU per fetch {statistics.median(cpu) * 1e6:.0f} us "
            f"(min {min(cpu) * 1e6:.0f}, max {max(cpu) * 1e6:.0f}), "
            f"wall per fetch {statistics.median(wall) * 1e6:.0f} us; "
            f"fetch results {dict(fetcher.results)}; after them "
            f"{len(os.listdir('/proc/self/fd'))} open files, {_rss_mib():.1f} MiB RSS"
        )

    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))


def policy_domains(hosts: int) -> list[str]:
    """The policy domains fetched in turn: one, or ``hosts`` of them."""
    return ["example.com"] if hosts == 1 else [f"d{i}.example" for i in range(hosts)]


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def handshakes(count: int) -> None:
    """The client's CPU per handshake, the shared context's groups against
    OpenSSL's default ones, both against a server with the default ones."""
    import contextlib
    import functools

    import trustme
    from OpenSSL import SSL
    from OpenSSL._util import lib
    from twisted.internet.ssl import Certificate

    from postfix_mtasts.https import _client_context

    ca = trustme.CA()
    server = SSL.Context(SSL.TLS_SERVER_METHOD)
    ca.issue_cert(HOST).configure_cert(server)
    trusted = [Certificate.loadPEM(ca.cert_pem.bytes())]

    def timed(step: Any) -> float:
        started = time.thread_time()
        with contextlib.suppress(SSL.WantReadError):
            step()
        return time.thread_time() - started

    def one(context: SSL.Context) -> tuple[float, str | None]:
        client = SSL.Connection(context, None)
        client.set_connect_state()
        client.set_tlsext_host_name(HOST.encode())
        peer = SSL.Connection(server, None)
        peer.set_accept_state()
        cpu, out = 0.0, [b""]

        def send() -> None:
            client.do_handshake()

        def read() -> None:
            out[0] = client.bio_read(65536)

        for _ in range(4):
            out[0] = b""
            cpu += timed(send) + timed(read)
            if out[0]:
                peer.bio_write(out[0])
            with contextlib.suppress(SSL.WantReadError):
                peer.do_handshake()
            with contextlib.suppress(SSL.WantReadError):
                answer = peer.bio_read(65536)
                cpu += timed(functools.partial(client.bio_write, answer))
        cpu += timed(send)
        return cpu, client.get_group_name()

    ours = _client_context(trusted)
    default = _client_context(trusted)
    raw = default._context
    assert lib.SSL_CTX_set1_curves_list(raw, b"DEFAULT") == 1
    for _ in range(2):
        for label, context in (("ours", ours), ("OpenSSL default", default)):
            for _ in range(count // 10):
                one(context)  # warm up
            times, group = [], None
            for _ in range(count):
                cpu, group = one(context)
                times.append(cpu)
            times.sort()
            print(
                f"{label:16} group {group}: client CPU per handshake median "
                f"{statistics.median(times) * 1e6:.0f} us, "
                f"p10 {times[len(times) // 10] * 1e6:.0f} us"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="fetches per round")
    parser.add_argument("-c", type=int, default=1, help="fetches at a time")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--groups", help="key exchange groups the client offers")
    parser.add_argument("--handshakes", type=int, help="TLS handshakes only")
    parser.add_argument("--hosts", type=int, default=1, help="policy hosts, in turn")
    parser.add_argument(
        "--keep-alive", action="store_true", help="the host keeps connections open"
    )
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.handshakes:
        handshakes(args.handshakes)
        return
    if os.environ.get("BENCH_FETCH_NETNS") != "1":
        env = {**os.environ, "BENCH_FETCH_NETNS": "1"}
        command = "ip link set lo up && exec " + " ".join(
            [sys.executable, *map(_quoted, sys.argv)]
        )
        raise SystemExit(
            subprocess.call(["unshare", "-n", "sh", "-c", command], env=env)
        )
    if args.serve:
        serve(*args.serve)
        return
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert(*(f"mta-sts.{d}" for d in policy_domains(args.hosts)))
    with tempfile.TemporaryDirectory() as d:
        ca_file, cert, key = (os.path.join(d, n) for n in ("ca.pem", "c.pem", "k.pem"))
        ca.cert_pem.write_to_path(ca_file)
        leaf.cert_chain_pems[0].write_to_path(cert)
        leaf.private_key_pem.write_to_path(key)
        port_file = os.path.join(d, "port")
        child = subprocess.Popen(
            [
                *(sys.executable, __file__, "--serve", port_file, cert, key),
                "1" if args.keep_alive else "0",
            ]
        )
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(port_file):
                if time.monotonic() > deadline or child.poll() is not None:
                    raise SystemExit("the policy host did not start")
                time.sleep(0.01)  # waiting for a child, not timing
            with open(port_file) as f:
                port = int(f.read())
            measure(args, ca_file, port)
        finally:
            child.terminate()
            child.wait()


def _quoted(word: str) -> str:
    import shlex

    return shlex.quote(word)


if __name__ == "__main__":
    main()
