"""Fleet fetch counts: N simultaneous lookups of new domains spread over two
daemons sharing one Redis, and how many HTTPS fetches they cause.

Builds the integration tests' hermetic world (network namespaces, DNS, HTTPS
policy hosts; needs root, as scripts/test does), starts Redis and two
`postfix-mtasts serve` in it, and for each N publishes a fresh domain whose
policy host answers after 0.5 s, then sends N lookups at once.

    sudo .venv/bin/python benchmarks/bench_fleet.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.daemonctl import burst, start_daemon
from tests.integration.test_fleet import FLEET, PORTS, start_redis
from tests.integration.world import World


def main() -> None:
    world = World.create()
    try:
        start_redis(world)
        for n, port in enumerate(PORTS):
            start_daemon(world, f"bench{n}", port=port, extra=FLEET)
        rows = []
        for count in (2, 10, 50, 200):
            domain = f"bench-fleet-{count}.test"
            world.publish(domain)
            world.https.update_host(f"mta-sts.{domain}", delay=0.5)
            started = time.monotonic()
            replies = burst(
                world, ",".join(map(str, PORTS)), count, f"postfix {domain}"
            )
            elapsed = time.monotonic() - started
            rows.append(
                {
                    "lookups": count,
                    "daemons": len(PORTS),
                    "https_fetches": len(world.https.requests(f"mta-sts.{domain}")),
                    "secure_answers": sum(r.startswith("OK secure") for r in replies),
                    "seconds": round(elapsed, 2),
                }
            )
        print(json.dumps(rows, indent=2))
    finally:
        world.close()


if __name__ == "__main__":
    main()
