"""Policies survive restarts; the admin verbs reach the running daemon (issue 4; E1, E11)."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time

from .daemonctl import ask, cache_cli, socketmap, start_daemon
from .world import World

PORT = 8471
TABLE = socketmap(PORT)


def stored_domains(world: World, name: str) -> set[str]:
    path = world.work / name / "policies.sqlite3"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return {row[0] for row in db.execute("SELECT domain FROM policies")}
    except sqlite3.Error:
        return set()


def test_restart_after_kill_keeps_enforcing(world: World) -> None:
    """kill -9, DNS and HTTPS blocked, restart: every cached enforce policy is still secure (E1, B17)."""
    domains = [f"restart{n}.test" for n in range(3)]
    for domain in domains:
        world.publish(domain)
    daemon = start_daemon(world, "restart", port=PORT)
    for domain in domains:
        assert ask(world, domain, TABLE) == (
            0,
            f"secure match=mx1.{domain} servername=hostname",
        )
    deadline = time.monotonic() + 10
    while stored_domains(world, "restart") != set(domains):
        assert time.monotonic() < deadline, "policies never reached the store"
    daemon.signal(signal.SIGKILL)
    daemon.stop()
    for domain in domains:
        world.dns.drop(f"_mta-sts.{domain}")
        world.https.update_host(f"mta-sts.{domain}", abort="reset")
    world.https.clear_log()
    try:
        start_daemon(world, "restart", port=PORT)
        for domain in domains:
            assert ask(world, domain, TABLE) == (
                0,
                f"secure match=mx1.{domain} servername=hostname",
            )
        assert world.https.requests() == []
    finally:
        for domain in domains:
            world.dns.clear_fault(f"_mta-sts.{domain}")


def test_cache_verbs(world: World) -> None:
    """cache list/show/export/purge/import/refresh act on the running daemon (E11)."""
    world.publish("verbs.test", policy_id="v1")
    daemon = start_daemon(world, "verbs", port=PORT + 1)
    table = socketmap(PORT + 1)
    assert ask(world, "verbs.test", table)[0] == 0

    rc, out = cache_cli(world, "verbs", "list")
    assert rc == 0
    assert "verbs.test" in out
    assert "id=v1" in out
    rc, out = cache_cli(world, "verbs", "show", "VERBS.test")
    assert rc == 0
    assert json.loads(out)["mx"] == ["mx1.verbs.test"]

    export = world.work / "verbs" / "export.jsonl"
    assert cache_cli(world, "verbs", "export", str(export))[0] == 0
    assert [json.loads(line)["domain"] for line in export.read_text().splitlines()] == [
        "verbs.test"
    ]

    assert cache_cli(world, "verbs", "purge", "verbs.test") == (
        0,
        "purged: verbs.test\n",
    )
    rc, out = cache_cli(world, "verbs", "list")
    assert "verbs.test" not in out

    assert cache_cli(world, "verbs", "import", str(export)) == (
        0,
        "imported 1, kept 0 newer, rejected 0\n",
    )
    world.https.clear_log()
    assert ask(world, "verbs.test", table)[0] == 0
    assert world.https.requests("mta-sts.verbs.test") == []

    world.publish("verbs.test", policy_id="v2", patterns=["mx9.verbs.test"])
    rc, out = cache_cli(world, "verbs", "refresh", "verbs.test")
    assert rc == 0, out
    assert json.loads(out)["mx"] == ["mx9.verbs.test"]
    assert ask(world, "verbs.test", table) == (
        0,
        "secure match=mx9.verbs.test servername=hostname",
    )

    rc, out = cache_cli(world, "verbs", "show", "nothing-here.test")
    assert rc == 1
    assert "not cached" in out

    # With the daemon stopped, --offline works on its store file directly.
    daemon.stop()
    offline = [
        sys.executable,
        "-m",
        "postfix_mtasts",
        "cache",
        "--config",
        str(world.work / "verbs" / "daemon.toml"),
        "--offline",
    ]
    listing = world.run("mta", [*offline, "list"])
    assert listing.returncode == 0, listing.stderr
    assert "id=v2" in listing.stdout
    assert "verbs.test" in listing.stdout
    assert listing.stderr == ""
    assert (
        world.run("mta", [*offline, "purge", "verbs.test"]).stdout
        == "purged: verbs.test\n"
    )
    assert world.run("mta", [*offline, "refresh", "verbs.test"]).returncode == 2
    start_daemon(world, "verbs", port=PORT + 1)
    world.https.clear_log()
    assert ask(world, "verbs.test", table)[0] == 0
    assert len(world.https.requests("mta-sts.verbs.test")) == 1


def test_control_socket_directory(world: World) -> None:
    """A missing control socket directory is created; an impossible one costs
    only the admin socket, never the daemon (the README's default run)."""
    nested = world.work / "ctl" / "made" / "here.sock"
    start_daemon(world, "ctl1", port=PORT + 2, store="", control=str(nested))
    assert ask(world, ".example.test", socketmap(PORT + 2))[0] == 1
    assert cache_cli(world, "ctl1", "list", socket=str(nested))[0] == 0
    impossible = "/proc/postfix-mtasts-test/ctl.sock"
    daemon = start_daemon(world, "ctl2", port=PORT + 3, store="", control=impossible)
    assert ask(world, ".example.test", socketmap(PORT + 3))[0] == 1
    assert (
        "control socket /proc/postfix-mtasts-test/ctl.sock unavailable"
        in daemon.output()
    )
