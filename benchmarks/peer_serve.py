"""The peer's socketmap server with its cache pre-filled, for bench_lookup.py.

Run by ``bench_lookup.py --peer VENV`` under that venv's python (it imports
only the standard library and the peer's package, never this project):
the peer's own responder (``STSSocketmapResponder``: its netstring reader,
per-request tasks, reply ordering and rendering) over its own in-memory LRU
cache (``internal``), filled with the same synthetic enforce policies as
bench_lookup.py's, parsed by the peer's own policy parser.  No network:
``cache_grace`` is raised above the run's length (its default, 60 s, would
make the first lookup of each domain after a minute re-check DNS) and the
resolver is replaced by one that stops the server if it is ever called.
On uvloop when the venv has it, else asyncio's own loop, as the daemon.

Prints, like bench_lookup.serve, a JSON line with the port and RSS before
and after the fill, and one with the RSS on SIGTERM.

    VENV/bin/python benchmarks/peer_serve.py --policies N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

from bench_lookup import rss_kib
from postfix_mta_sts_resolver import utils
from postfix_mta_sts_resolver.base_cache import CacheEntry
from postfix_mta_sts_resolver.responder import STSSocketmapResponder


def domain_name(i: int) -> str:  # as bench_lookup.domain_name
    return f"d{i}.bench-domain.example"


class NoNetwork:
    """The peer's resolver interface; any call is a benchmark bug."""

    async def resolve(self, domain: str, last_known_id: Any = None) -> Any:
        raise SystemExit(f"benchmark bug: network lookup for {domain}")


def policy(domain: str) -> dict[str, Any]:
    """What the peer's resolver stores for a fetched enforce policy."""
    body = (
        f"version: STSv1\nmode: enforce\nmx: mx1.{domain}\nmx: *.mx.{domain}\n"
        "max_age: 31557600\n"
    )
    parsed: dict[str, Any] = utils.parse_mta_sts_policy(body)
    parsed["max_age"] = int(parsed["max_age"])
    return parsed


async def serve(policies: int) -> None:
    cfg = utils.populate_cfg_defaults(
        {
            "host": "127.0.0.1",
            "port": 0,
            "cache_grace": 10**9,
            "cache": {"type": "internal", "options": {"cache_size": max(policies, 1)}},
        }
    )
    cache = utils.create_cache(cfg["cache"]["type"], cfg["cache"]["options"])
    await cache.setup()
    loop = asyncio.get_running_loop()
    responder = STSSocketmapResponder(cfg, loop, cache)
    zone = responder._default_zone
    responder._default_zone = zone._replace(resolver=NoNetwork())
    before = rss_kib()
    now = time.time()
    for i in range(policies):
        await cache.set(
            domain_name(i), CacheEntry(now, f"id{i}", policy(domain_name(i)))
        )
    await responder.start()
    server: Any = responder._server
    port = server.sockets[0].getsockname()[1]
    after = rss_kib()
    print(
        json.dumps(
            {
                "port": port,
                "rss_before_kib": before,
                "rss_after_kib": after,
                "event_loop": type(loop).__module__.split(".")[0],
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(json.dumps({"rss_kib": rss_kib()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", type=int, default=100_000)
    policies = parser.parse_args().policies
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(serve(policies))
    else:
        uvloop.run(serve(policies))


if __name__ == "__main__":
    main()
