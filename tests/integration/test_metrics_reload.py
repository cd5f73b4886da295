"""/metrics and ``postfix-mtasts status`` across a SIGHUP reload (issue 11):
the reload builds a new DNS client and HTTPS fetcher, and the counts must
still equal everything sent before and after it; a listener the reload
adds shows at once.  Lookups go through Postfix's ``postmap -q``; fetches
are counted by the world's HTTPS hosts.
"""

from __future__ import annotations

import json

from .daemonctl import ask, socketmap, start_daemon, write_config
from .test_metrics import scrape, status
from .test_reload import line_count, reloaded
from .world import World

PORT, METRICS_PORT, ADDED_PORT = 8483, 8484, 8485
NAME = "metrics-reload"
EXTRA = (
    f'[metrics]\nendpoint = "tcp:{METRICS_PORT}:interface=127.0.0.1"\n\n'
    "[refresh]\nenabled = false\n"
)
ADDED = f'[[listener]]\nendpoint = "tcp:{ADDED_PORT}:interface=127.0.0.1"\n'
BEFORE, AFTER = "counted-before.test", "counted-after.test"


def counter(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[str, float]:
    """Each postfix_mtasts_*_total sample, keyed by name and labels."""
    return {
        f"{name}{dict(labels)}": value
        for (name, labels), value in samples.items()
        if name.endswith("_total") and name.startswith("postfix_mtasts_")
    }


def test_counts_run_on_across_a_reload(world: World) -> None:
    """Lookups before and after a reload that changes the DNS and fetch
    settings: every counter after it is at least what it was before (none
    restarts at zero), the fetches counted equal the policy fetches the
    HTTPS hosts saw (B1), the lookups counted equal the postmap -q sent,
    and ``status`` agrees; the listener the reload added is listed (G6)."""
    world.reset()
    world.publish(BEFORE)
    world.publish(AFTER)
    proc = start_daemon(world, NAME, port=PORT, extra=EXTRA)
    try:
        sent = 0
        for domain in (BEFORE, "nosts.test", BEFORE):
            rc, answer = ask(world, domain, socketmap(PORT))
            assert rc == 1 if domain == "nosts.test" else answer.startswith("secure")
            sent += 1
        before = scrape(world, METRICS_PORT)
        ok = ("postfix_mtasts_fetches_total", (("result", "ok"),))
        assert before[ok] == 1

        write_config(
            world,
            NAME,
            port=PORT,
            listeners=ADDED,
            extra=EXTRA,
            dns="case_randomization = false",
            fetch="max_in_flight = 3",
        )
        lines = reloaded(proc, line_count(proc))
        info = [x for x in lines if "configuration reloaded" in x]
        assert len(info) == 1, lines
        assert "dns.case_randomization" in info[0]
        assert "fetch.max_in_flight" in info[0]

        rc, answer = ask(world, AFTER, socketmap(PORT))
        assert answer.startswith("secure"), answer
        rc, answer = ask(world, "nosts.test", socketmap(ADDED_PORT))
        assert rc == 1, answer  # NOTFOUND, through the listener just added
        sent += 2
        after = scrape(world, METRICS_PORT)
        grown = counter(after)
        for key, value in counter(before).items():
            assert grown[key] >= value, key
        fetched = sum(
            len(world.https.requests(f"mta-sts.{d}")) for d in (BEFORE, AFTER)
        )
        assert fetched == 2
        assert after[ok] == fetched
        assert after["postfix_mtasts_fetch_duration_seconds_count", ()] == fetched
        fetched_outcome = (
            "postfix_mtasts_discoveries_total",
            (("outcome", "fetched"),),
        )
        assert after[fetched_outcome] == fetched
        txt = (
            "postfix_mtasts_dns_queries_total",
            (("result", "noerror"), ("type", "txt")),
        )
        assert after[txt] > before[txt]
        lookups = sum(
            v for (n, _), v in after.items() if n == "postfix_mtasts_lookups_total"
        )
        assert lookups == sent
        listener = (
            ("endpoint", f"tcp:{ADDED_PORT}:interface=127.0.0.1"),
            ("protocol", "socketmap"),
        )
        assert ("postfix_mtasts_connections", listener) in after

        rc, out = status(world, "--json", name=NAME)
        assert rc == 0, out
        report = json.loads(out)
        assert report["lookups"]["total"] == sent
        assert report["fetches"]["ok"] == fetched
        assert [x["endpoint"] for x in report["listeners"]] == [
            f"tcp:{PORT}:interface=127.0.0.1",
            f"tcp:{ADDED_PORT}:interface=127.0.0.1",
        ]
    finally:
        proc.stop()
        world.unpublish(BEFORE)
        world.unpublish(AFTER)
