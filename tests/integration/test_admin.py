"""The admin commands against the real daemon (issue 11): `query` says what
Postfix hears, an unreachable control socket never leads to the store being
edited behind the daemon, an older backup never replaces a newer policy."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemonctl import (
    ask,
    cache_cli,
    control_socket,
    run_query,
    socketmap,
    start_daemon,
)
from .world import World

# Ports of their own: daemons live until the session ends unless stopped,
# and other modules' daemons listen on 8461/8462 in the same namespace.
PORT = 8486
TABLE = socketmap(PORT)


@pytest.fixture(autouse=True)
def _stop_daemons(world: World) -> Iterator[None]:
    """Each test's daemons are stopped when it ends, pass or fail."""
    before = len(world.procs)
    yield
    for proc in world.procs[before:]:
        proc.stop()


def stored(path: Path) -> dict[str, bytes]:
    """The store file's rows, read-only (domain -> stored entry)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT domain, data FROM policies"))


def secure(domain: str) -> str:
    return f"secure match=mx1.{domain} servername=hostname"


def test_query_says_what_postfix_hears(world: World) -> None:
    """During an outage (TXT record gone, policy host resetting) Postfix
    hears the cached `secure`, and so does `query`, through the daemon's
    control socket with the cached entry; `query --direct`, a discovery of
    its own, finds nothing: NOTFOUND (issue 11; E7, B17, A15)."""
    domain = "admin-outage.test"
    world.publish(domain, policy_id="out1")
    start_daemon(world, "admin-query", port=PORT)
    config = world.work / "admin-query" / "daemon.toml"
    try:
        assert ask(world, domain, TABLE) == (0, secure(domain))
        world.dns.drop(f"_mta-sts.{domain}")
        world.https.update_host(f"mta-sts.{domain}", abort="reset")
        assert ask(world, domain, TABLE) == (0, secure(domain))
        proc = run_query(world, domain, config=config)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["reply"] == "OK " + secure(domain)
        assert (report["policy"]["id"], report["policy"]["source"]) == (
            "out1",
            "cache",
        )
        text = world.run(
            "mta",
            [
                sys.executable,
                "-m",
                "postfix_mtasts",
                "query",
                "--config",
                str(config),
                domain,
            ],
        )
        assert text.returncode == 0, text.stderr
        assert f"reply:    OK {secure(domain)}" in text.stdout
        direct = run_query(world, domain, config=config, direct=True)
        assert direct.returncode == 1, direct.stderr
        assert json.loads(direct.stdout)["reply"] == "NOTFOUND"
        wrong = run_query(
            world, domain, config=config, socket=world.work / "nowhere.sock"
        )
        assert wrong.returncode == 3
        assert "--direct" in wrong.stderr
        assert wrong.stdout == ""
    finally:
        world.dns.clear_fault(f"_mta-sts.{domain}")
        world.publish(domain, policy_id="out1")


def test_wrong_socket_never_edits_the_store(world: World) -> None:
    """`cache --socket WRONG purge` is refused (exit 2, naming the socket and
    --offline) and `cache --offline purge` is refused while the daemon has
    the store open: the store file and the daemon's answer are unchanged
    (issue 11; E11)."""
    domain = "admin-purge.test"
    world.publish(domain, policy_id="p1")
    start_daemon(world, "admin-purge", port=PORT + 1)
    table = socketmap(PORT + 1)
    store = world.work / "admin-purge" / "policies.sqlite3"
    assert ask(world, domain, table) == (0, secure(domain))
    deadline = time.monotonic() + 10
    while domain not in stored(store):
        assert time.monotonic() < deadline, "the policy never reached the store"
    before = stored(store)
    rc, out = cache_cli(
        world, "admin-purge", "purge", domain, socket=str(world.work / "wrong.sock")
    )
    assert rc == 2
    assert "cannot reach the daemon at" in out
    assert "'cache --offline purge' works on its store" in out
    config = world.work / "admin-purge" / "daemon.toml"
    offline = world.run(
        "mta",
        [
            sys.executable,
            "-m",
            "postfix_mtasts",
            "cache",
            "--config",
            str(config),
            "--offline",
            "purge",
            domain,
        ],
    )
    assert offline.returncode == 2
    assert "is in use, by a running daemon most likely" in offline.stderr
    assert stored(store) == before
    assert ask(world, domain, table) == (0, secure(domain))


def test_import_keeps_the_newer_policy(world: World) -> None:
    """A backup exported before the policy changed, imported afterwards,
    does not put the old policy back: "kept 1 newer", and Postfix still
    hears the new one (issue 11; E1, E10)."""
    domain = "admin-backup.test"
    world.publish(domain, policy_id="b1")
    start_daemon(world, "admin-backup", port=PORT + 2)
    table = socketmap(PORT + 2)
    assert ask(world, domain, table) == (0, secure(domain))
    backup = world.work / "admin-backup" / "backup.jsonl"
    assert cache_cli(world, "admin-backup", "export", str(backup))[0] == 0
    world.publish(domain, policy_id="b2", patterns=[f"mx9.{domain}"])
    rc, out = cache_cli(world, "admin-backup", "refresh", domain)
    assert rc == 0, out
    assert cache_cli(world, "admin-backup", "import", str(backup)) == (
        0,
        "imported 0, kept 1 newer, rejected 0\n",
    )
    assert ask(world, domain, table) == (
        0,
        f"secure match=mx9.{domain} servername=hostname",
    )
    assert control_socket(world, "admin-backup").exists()
