"""Debian's chrooted smtp(8) and the daemon's unix socket (issue 11 point 5,
docs/chroot.md, systemd/examples/chroot-socket.conf).

Debian runs smtp chrooted in the queue directory.  The recipe puts the
socket inside the spool (``<spool>/mtasts/mtasts.sock``, made by the
drop-in's ExecStartPre) and names it in main.cf relative to the spool
(``socketmap:unix:mtasts/mtasts.sock:postfix``): smtp's working directory is
the spool, chrooted or not.  The trap: an absolute path answers
``postmap -q`` (not chrooted) but every chrooted delivery is deferred.

Each case is a real delivery to enforce.test (G1 socketmap, D8 enforce:
``secure``, "Verified TLS" in Postfix's log) from one Postfix instance whose
master.cf is switched between chroot ``y`` and ``n``.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .chroot import ChrootPostfix, chroot_postfix
from .daemonctl import start_daemon
from .world import Proc, World

DROP_IN = Path(__file__).resolve().parents[2] / "systemd/examples/chroot-socket.conf"
UNIT = Path(__file__).resolve().parents[2] / "systemd/postfix-mtasts.service"
SPOOL = "/var/spool/postfix"  # as the recipe writes it; the test's spool replaces it
PORT = 8489


@dataclass(frozen=True)
class Recipe:
    """The drop-in's directory command, listener endpoint and main.cf table."""

    exec_start_pre: list[str]
    endpoint: str
    table: str


def _recipe() -> Recipe:
    text = DROP_IN.read_text()
    pre = re.search(r"^ExecStartPre=\+(.*)$", text, re.M)
    endpoint = re.search(r'^#\s+endpoint = "(unix:[^"]+)"$', text, re.M)
    table = re.search(r"^#\s+smtp_tls_policy_maps = (\S+)$", text, re.M)
    assert pre, "the drop-in has no ExecStartPre=+ line"
    assert endpoint, "the drop-in no longer shows the listener"
    assert table, "the drop-in no longer shows the main.cf line"
    return Recipe(shlex.split(pre[1]), endpoint[1], table[1])


@dataclass
class Setup:
    world: World
    postfix: ChrootPostfix
    daemon: Proc
    inside: Path  # the socket inside the spool
    outside: Path  # a socket where the unit's RuntimeDirectory would put it
    listeners: str  # the daemon's [[listener]] tables


@pytest.fixture(scope="module")
def setup(world: World) -> Setup:
    recipe = _recipe()
    postfix = chroot_postfix(world, "chroot", "")
    spool = str(postfix.spool)
    # The drop-in's ExecStartPre, for this instance's spool.
    subprocess.run(
        [arg.replace(SPOOL, spool) for arg in recipe.exec_start_pre], check=True
    )
    inside = Path(recipe.endpoint.replace(SPOOL, spool).split(":")[1])
    run_dir = world.work / "chroot-run"
    run_dir.mkdir()
    outside = run_dir / "mtasts.sock"
    listeners = (
        f'[[listener]]\nendpoint = "{recipe.endpoint.replace(SPOOL, spool)}"\n'
        'protocol = "socketmap"\ngroup = "postfix"\n\n'
        f'[[listener]]\nendpoint = "unix:{outside}:mode=660"\n'
        'protocol = "socketmap"\ngroup = "postfix"\n'
    )
    daemon = start_daemon(
        world, "chroot", port=PORT, listeners=listeners, store="", control=""
    )
    world.wait_unix(inside)
    world.wait_unix(outside)
    return Setup(world, postfix, daemon, inside, outside, listeners)


def _deliver(setup: Setup, *, chroot: bool, table: str) -> tuple[str, str, str]:
    """Switch smtp's chroot, point the policy map at ``table``, deliver one
    message to enforce.test: (status, dsn, log of the delivery)."""
    setup.postfix.set_chroot(chroot)
    setup.postfix.configure(smtp_tls_policy_maps=table)
    assert ("smtp" in setup.postfix.chrooted_services()) is chroot
    delivery, log = setup.postfix.deliver("enforce.test")
    return delivery.status, delivery.dsn, log


def test_recipe_delivers_from_chrooted_smtp(fresh_world: World, setup: Setup) -> None:
    """The recipe: a chrooted smtp reaches the socket inside the spool through
    the relative table, gets ``secure`` for enforce.test (D8) and delivers
    over verified TLS."""
    assert setup.inside.parent.parent == setup.postfix.spool
    status, dsn, log = _deliver(setup, chroot=True, table=_recipe().table)
    assert (status, dsn) == ("sent", "2.0.0"), log
    assert "Verified TLS connection established to mx1.enforce.test" in log


def test_recipe_also_without_chroot(fresh_world: World, setup: Setup) -> None:
    """The same main.cf line works for an smtp that is not chrooted (its
    working directory is the spool too), so the recipe survives a master.cf
    change."""
    status, dsn, log = _deliver(setup, chroot=False, table=_recipe().table)
    assert (status, dsn) == ("sent", "2.0.0"), log
    assert "Verified TLS connection established to mx1.enforce.test" in log


def test_socket_outside_chroot_is_the_trap(fresh_world: World, setup: Setup) -> None:
    """The trap: a socket outside the spool (as under /run) answers
    ``postmap -q`` with ``secure``, and an unchrooted smtp delivers, but the
    chrooted smtp cannot reach it: the lookup fails and the mail is deferred
    (4.7.5), for every MTA-STS domain alike."""
    table = f"socketmap:unix:{setup.outside}:postfix"
    rc, out, err = setup.world.postmap("enforce.test", table)
    assert (rc, out.split()[:1]) == (0, ["secure"]), err
    status, _, log = _deliver(setup, chroot=False, table=table)
    assert status == "sent", log
    status, dsn, log = _deliver(setup, chroot=True, table=table)
    assert (status, dsn) == ("deferred", "4.7.5"), log
    assert "No such file or directory" in log, log


def test_absolute_path_into_spool_fails_chrooted(
    fresh_world: World, setup: Setup
) -> None:
    """Naming the socket inside the spool by its absolute path is the same
    trap: inside the chroot that path does not exist."""
    table = f"socketmap:unix:{setup.inside}:postfix"
    rc, _, err = setup.world.postmap("enforce.test", table)
    assert rc == 0, err
    status, dsn, log = _deliver(setup, chroot=True, table=table)
    assert (status, dsn) == ("deferred", "4.7.5"), log


def test_socket_of_a_killed_daemon_is_replaced(
    fresh_world: World, setup: Setup
) -> None:
    """A daemon killed by SIGKILL (or systemd's watchdog) leaves its socket in
    the spool, which systemd does not clean as it cleans /run; the lock file
    Twisted keeps beside a unix socket (``lockfile=1``, its default) lets the
    next start replace it, and mail flows again."""
    setup.daemon.signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while setup.daemon.alive() and time.monotonic() < deadline:
        time.sleep(0.05)  # noqa: TID251 - polling a real process
    assert not setup.daemon.alive()
    assert setup.inside.is_socket()  # left behind
    setup.outside.unlink()  # systemd's RuntimeDirectory= cleanup, for /run
    setup.daemon = start_daemon(
        setup.world,
        "chroot",
        port=PORT,
        listeners=setup.listeners,
        store="",
        control="",
    )
    setup.world.wait_unix(setup.inside)
    status, dsn, log = _deliver(setup, chroot=True, table=_recipe().table)
    assert (status, dsn) == ("sent", "2.0.0"), log


def test_drop_in_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify reads the shipped service with the drop-in
    beside it and finds nothing wrong in the drop-in (ExecStart pointed at
    this venv's program, which verify wants to exist)."""
    program = Path(sys.executable).parent / "postfix-mtasts"
    unit = re.sub(
        r"^ExecStart=\S+", f"ExecStart={program}", UNIT.read_text(), flags=re.M
    )
    (tmp_path / UNIT.name).write_text(unit)
    drop_ins = tmp_path / f"{UNIT.name}.d"
    drop_ins.mkdir()
    (drop_ins / DROP_IN.name).write_text(DROP_IN.read_text())
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / UNIT.name)],
        capture_output=True,
        text=True,
        env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert DROP_IN.name not in proc.stderr, proc.stderr
