"""/metrics and ``postfix-mtasts status`` against the real daemon (issue
11, point 3): lookups sent through Postfix's own ``postmap -q`` for
published domains (enforce, testing, none, no policy), the page scraped
over HTTP in $P-mta and parsed with prometheus_client's parser; its
counters and the status answer must equal what was sent.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .daemonctl import ask, control_socket, socketmap, start_daemon
from .world import MX_GOOD, Proc, World

PORT = 8431
METRICS_PORT = 8432
METRICS = f"tcp:{METRICS_PORT}:interface=127.0.0.1"
ROUNDS = 4
#: domain -> what the daemon answers (G.6: testing and none are NOTFOUND).
DOMAINS = {
    "enforce.test": ("OK", "secure"),
    "testing.test": ("NOTFOUND", ""),
    "nonemode.test": ("NOTFOUND", ""),
    "nosts.test": ("NOTFOUND", ""),
}


@pytest.fixture(scope="module")
def daemon(world: World) -> Iterator[Proc]:
    world.reset()
    world.publish("nonemode.test", mode="none", mx={"mx1.nonemode.test": MX_GOOD})
    proc = start_daemon(
        world,
        "metrics",
        port=PORT,
        extra=f'[metrics]\nendpoint = "{METRICS}"\n\n[refresh]\nenabled = false\n',
    )
    yield proc
    proc.stop()
    world.unpublish("nonemode.test")


def http_get(world: World, path: str, port: int = METRICS_PORT) -> tuple[int, str]:
    """GET ``path`` of the metrics endpoint from inside $P-mta."""
    proc = world.run(
        "mta",
        [
            "curl",
            "-s",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            f"http://127.0.0.1:{port}{path}",
        ],
        timeout=30,
    )
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), body


def scrape(
    world: World, port: int = METRICS_PORT
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, text = http_get(world, "/metrics", port)
    assert code == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def status(world: World, *args: str, name: str = "metrics") -> tuple[int, str]:
    proc = world.run(
        "mta",
        [
            sys.executable,
            "-m",
            "postfix_mtasts",
            "status",
            "--socket",
            str(control_socket(world, name)),
            *args,
        ],
        timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_counters_equal_lookups_sent(world: World, daemon: Proc) -> None:
    """Each postmap -q is counted once under its map and answer (OK secure
    for enforce, NOTFOUND for testing, none and no policy, G.6; PERM for
    an unknown map), domain lookups split into cache hits and misses; the
    fetches, policies by mode, DNS questions, the store and the listener
    show on the same page, and ``status`` reports the same counts."""
    sent: Counter[tuple[str, str, str]] = Counter()
    for _ in range(ROUNDS):
        for domain, (status_word, level) in DOMAINS.items():
            rc, answer = ask(world, domain, socketmap(PORT))
            assert answer.startswith("secure") if level else rc == 1, (domain, answer)
            sent["postfix", status_word, level] += 1
    for _ in range(2):
        rc, answer = ask(world, "enforce.test", socketmap(PORT, "nosuchmap"))
        assert rc == 1
        sent["(unknown)", "PERM", ""] += 1

    samples = scrape(world)
    counted = {
        (labels["map"], labels["status"], labels["level"]): value
        for (name, pairs), value in samples.items()
        if name == "postfix_mtasts_lookups_total"
        for labels in [dict(pairs)]
    }
    assert counted == dict(sent)
    hits = samples["postfix_mtasts_cache_lookups_total", (("result", "hit"),)]
    misses = samples["postfix_mtasts_cache_lookups_total", (("result", "miss"),)]
    assert hits + misses == ROUNDS * len(DOMAINS)
    assert misses >= len(DOMAINS)  # each domain's first lookup waited
    assert samples["postfix_mtasts_fetches_total", (("result", "ok"),)] >= 3
    assert samples["postfix_mtasts_fetch_duration_seconds_count", ()] >= 3
    for mode in ("enforce", "testing", "none"):
        assert samples["postfix_mtasts_policies", (("mode", mode),)] == 1, mode
    assert (
        samples[
            "postfix_mtasts_dns_queries_total", (("result", "noerror"), ("type", "txt"))
        ]
        >= 3
    )
    assert (
        samples[
            "postfix_mtasts_dns_queries_total",
            (("result", "nxdomain"), ("type", "txt")),
        ]
        >= 1
    )
    assert samples["postfix_mtasts_discoveries_total", (("outcome", "fetched"),)] >= 3
    assert samples["postfix_mtasts_store_up", (("store", "sqlite"),)] == 1
    listener = (
        ("endpoint", f"tcp:{PORT}:interface=127.0.0.1"),
        ("protocol", "socketmap"),
    )
    assert ("postfix_mtasts_connections", listener) in samples
    assert ("postfix_mtasts_build_info", (("version", _version()),)) in samples

    rc, out = status(world, "--json")
    assert rc == 0, out
    report = json.loads(out)
    assert report["version"] == _version()
    assert report["lookups"]["total"] == sum(sent.values())
    assert report["lookups"]["cache_hits"] == hits
    assert report["lookups"]["cache_misses"] == misses
    assert report["lookups"]["by_answer"] == {
        "(unknown)": {"PERM": 2},
        "postfix": {"NOTFOUND": 3 * ROUNDS, "OK secure": ROUNDS},
    }
    assert report["policies"] == {"enforce": 1, "none": 1, "testing": 1}
    assert report["stores"] == [{"kind": "sqlite", "up": True, "errors": 0}]
    assert [x["endpoint"] for x in report["listeners"]] == [
        f"tcp:{PORT}:interface=127.0.0.1"
    ]
    rc, out = status(world)
    assert rc == 0, out
    assert f"lookups: {sum(sent.values())} " in out
    assert "policies cached: enforce 1, none 1, testing 1" in out


def test_only_get_metrics(world: World, daemon: Proc) -> None:
    """Any other path is a 404 and shows no figures."""
    for path in ("/", "/metrics/", "/status"):
        code, body = http_get(world, path)
        assert code == 404, path
        assert "postfix_mtasts" not in body


def test_last_errors(world: World, daemon: Proc) -> None:
    """A failed fetch's warning shows in status's last errors and in the
    count of warnings (B7: a 404 policy host)."""
    world.publish("broken.test", mx={"mx1.broken.test": MX_GOOD})
    world.https.update_host("mta-sts.broken.test", status=404)
    try:
        ask(world, "broken.test", socketmap(PORT))
        rc, out = status(world, "--json")
        assert rc == 0, out
        errors = json.loads(out)["last_errors"]
        assert any("broken.test" in e["text"] for e in errors), errors
        samples = scrape(world)
        assert samples["postfix_mtasts_log_events_total", (("level", "warn"),)] >= 1
        assert samples["postfix_mtasts_fetches_total", (("result", "status"),)] >= 1
    finally:
        world.unpublish("broken.test")


def _version() -> str:
    from postfix_mtasts import __version__

    return __version__


REDIS_PORT = 6395


def test_redis_state(world: World) -> None:
    """With a Redis store (issue 4), store_up{store="redis"} is 1 while it
    answers and turns 0 with failures counted once it is stopped; status
    says the same."""
    from .hostile_fleet import start_redis

    world.reset()
    redis = start_redis(world, REDIS_PORT)
    port, metrics_port = PORT + 10, METRICS_PORT + 10
    proc = start_daemon(
        world,
        "metrics-redis",
        port=port,
        extra=(
            f'[metrics]\nendpoint = "tcp:{metrics_port}:interface=127.0.0.1"\n\n'
            f'[redis]\nurl = "redis://127.0.0.1:{REDIS_PORT}"\n\n'
            "[refresh]\nenabled = false\n"
        ),
    )
    try:
        rc, answer = ask(world, "enforce.test", socketmap(port))
        assert answer.startswith("secure"), answer
        redis_up = ("postfix_mtasts_store_up", (("store", "redis"),))
        redis_errors = ("postfix_mtasts_store_errors_total", (("store", "redis"),))
        samples = scrape(world, metrics_port)
        assert samples[redis_up] == 1
        assert samples["postfix_mtasts_store_up", (("store", "sqlite"),)] == 1
        redis.stop()
        deadline = time.monotonic() + 20
        while samples[redis_up] == 1 and time.monotonic() < deadline:
            ask(world, "nosts.test", socketmap(port))  # each asks the stores first
            samples = scrape(world, metrics_port)
        assert samples[redis_up] == 0
        assert samples[redis_errors] >= 1
        rc, out = status(world, "--json", name="metrics-redis")
        assert rc == 0, out
        stores = {s["kind"]: s for s in json.loads(out)["stores"]}
        assert stores["redis"]["up"] is False
        assert stores["sqlite"]["up"] is True
    finally:
        proc.stop()
        redis.stop()
