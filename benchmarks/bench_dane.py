"""What DANE precedence costs a cold lookup: DNS queries and latency.

Two daemons in the integration test world (tests/integration/world.py):
one with DANE precedence (`dane = true`), one with `dane = false` on its
only map (so it gathers no MX facts at all).  For each of `--domains` fresh
enforce domains of each kind, both are asked once, on a new socketmap
connection from $P-mta, in alternating order, after the resolver's cache
for the domain was flushed: the lookup is cold for the daemon and for
unbound.  Kinds: `signed` (a zone of its own below sec.test, two MX hosts
with validated TLSA: +1 MX and +2 TLSA queries expected) and `unsigned`
(below test., two MX hosts: +1 MX query, no TLSA is asked without AD).

Queries are counted by unbound (`unbound-control stats_noreset`,
total.num.queries) around each lookup.  Root only, like the integration
tests.  Output: one line per kind and daemon (queries per lookup, median,
p90 and max seconds), then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from attack_world import exit_on_sigterm, parser
from bench_floods import ask

CHECKOUT = Path(__file__).resolve().parent.parent
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))

from tests.integration.daemonctl import start_daemon  # noqa: E402
from tests.integration.world import MX_GOOD, MX_SEC_IPS, World  # noqa: E402

PORTS = {"dane": 8650, "nodane": 8651}
MAPS = {
    "dane": "[maps.postfix]\ndane = true\n",
    "nodane": "[maps.postfix]\ndane = false\n",
}
# No proactive refresh and no start-up probe: only the lookups measured
# send queries.
EXTRA = "[refresh]\nenabled = false\n"
DNS = 'dnssec_probe = ""'


def queries(world: World) -> int:
    """Queries unbound has answered so far."""
    for line in world.dns.control("stats_noreset").splitlines():
        if line.startswith("total.num.queries="):
            return int(line.partition("=")[2])
    raise RuntimeError("unbound reports no total.num.queries")


def publish(world: World, count: int) -> dict[str, list[str]]:
    domains: dict[str, list[str]] = {"signed": [], "unsigned": []}
    with world.dns.batch():
        for i in range(count):
            signed = f"b{i}.sec.test"
            mx = {f"mx1.{signed}": MX_SEC_IPS[0], f"mx2.{signed}": MX_SEC_IPS[1]}
            world.publish(
                signed, mx=mx, dnssec="signed", tlsa=dict.fromkeys(mx, "good")
            )
            domains["signed"].append(signed)
            unsigned = f"b{i}.bench.test"
            mx = {f"mx1.{unsigned}": MX_GOOD, f"mx2.{unsigned}": MX_GOOD}
            world.publish(unsigned, mx=mx)
            domains["unsigned"].append(unsigned)
    return domains


def cold_lookup(world: World, name: str, domain: str) -> dict[str, Any]:
    world.dns.control("flush_zone", domain)
    world.dns.control("flush_infra", "all")
    before = queries(world)
    with world.mta.connect("127.0.0.1", PORTS[name]) as sock:
        result = ask(PORTS[name], domain, sock=sock)
    result["queries"] = queries(world) - before
    return result


def run(args: argparse.Namespace) -> int:
    world = World.create()
    figures: dict[str, Any] = {"domains": args.domains, "runs": {}}
    try:
        world.reset()
        domains = publish(world, args.domains)
        daemons = {
            name: start_daemon(
                world,
                f"bench-{name}",
                port=PORTS[name],
                maps=MAPS[name],
                extra=EXTRA,
                dns=DNS,
            )
            for name in PORTS
        }
        for kind, names in domains.items():
            for i, domain in enumerate(names):
                order = list(PORTS) if i % 2 == 0 else list(reversed(PORTS))
                for name in order:
                    result = cold_lookup(world, name, domain)
                    figures["runs"].setdefault(f"{kind}/{name}", []).append(result)
        for proc in daemons.values():
            proc.stop()
    finally:
        world.close()
    summary: dict[str, Any] = {}
    for key, runs in figures["runs"].items():
        seconds = sorted(r["seconds"] for r in runs)
        counts = [r["queries"] for r in runs]
        # The answer's level, without the names that differ per domain.
        replies = sorted(
            {r.get("reply", r["status"]).split(" match=")[0] for r in runs}
        )
        summary[key] = {
            "lookups": len(runs),
            "queries_per_lookup": round(statistics.mean(counts), 2),
            "queries_min_max": [min(counts), max(counts)],
            "median_s": round(statistics.median(seconds), 4),
            "p90_s": round(seconds[int(0.9 * (len(seconds) - 1))], 4),
            "max_s": round(seconds[-1], 4),
            "replies": replies,
        }
        print(f"{key}: " + json.dumps(summary[key], separators=(",", ":")), flush=True)
    figures["summary"] = summary
    print(json.dumps(figures, separators=(",", ":")), flush=True)
    return 0


def main(argv: list[str]) -> int:
    p = parser(__doc__)
    p.add_argument("--domains", type=int, default=20, help="fresh domains per kind")
    exit_on_sigterm()
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
