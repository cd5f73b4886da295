"""The daemon under systemd's protocols: sd_notify readiness, watchdog and
stop (through a NOTIFY_SOCKET the test owns), socket activation (through
``systemd-socket-activate``, asked by Postfix's ``postmap -q``), the
shipped units (``systemd-analyze verify``), and a unix socket whose group
cannot be applied (issue 11; spec E1, F7, G1)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemonctl import BASE_CONFIG, wait_for
from .policystore import fill_store
from .world import World

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
INSTALLED = "/opt/postfix-mtasts/venv/bin/postfix-mtasts"
STORED = 20_000
WATCHDOG_USEC = 200_000


def write_config(world: World, name: str, *, port: int, listeners: str = "") -> Path:
    """A daemon config in the world's work dir (its own store and control
    socket), listening on 127.0.0.1:``port`` plus ``listeners``."""
    work = world.work / name
    work.mkdir(exist_ok=True)
    config = work / "daemon.toml"
    config.write_text(
        BASE_CONFIG.format(
            port=port,
            listeners=listeners.format(work=work),
            maps="",
            extra="",
            dns="",
            store=work / "policies.sqlite3",
            control=work / "control.sock",
        )
    )
    return config


def serve_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "postfix_mtasts", "serve", "--config", str(config)]


class Datagrams:
    """The test's own NOTIFY_SOCKET: every datagram with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.got: list[tuple[float, bytes]] = []

    def until(self, wanted: bytes, timeout: float) -> tuple[float, bytes]:
        """Receive until a datagram containing ``wanted`` (a line) arrives."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            self.got.append((time.monotonic(), data))
            if wanted in data.splitlines():
                return self.got[-1]
        raise AssertionError(f"no {wanted!r} within {timeout} s; got {self.got}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(world: World) -> Iterator[Datagrams]:
    path = world.work / "notify.sock"
    path.unlink(missing_ok=True)
    sink = Datagrams(path)
    yield sink
    sink.close()


def test_ready_after_store_and_listeners(fresh_world: World, notify: Datagrams) -> None:
    """READY=1 comes once, after the stored policies are loaded (E1) and the
    listener accepts (a connect at that moment succeeds), with a STATUS=
    line naming both; WATCHDOG=1 keeps coming at about half WATCHDOG_USEC;
    SIGTERM brings STOPPING=1 and a clean exit."""
    world = fresh_world
    config = write_config(world, "notify", port=8421)
    fill_store(world.work / "notify" / "policies.sqlite3", STORED)
    proc = world.spawn(
        "mta",
        serve_argv(config),
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)},
        name="notify",
    )
    try:
        ready_at, ready = notify.until(b"READY=1", timeout=60)
        world.mta.connect("127.0.0.1", 8421, timeout=1.0).close()
        status = re.search(rb"STATUS=(.*)", ready)
        assert status is not None, ready
        assert status.group(1) == (
            f"{STORED} policies cached; listening on "
            "tcp:8421:interface=127.0.0.1".encode()
        )
        output = proc.output()
        assert output.index(f"loaded {STORED} stored policies") < output.index(
            "started"
        )
        pings_after = len(notify.got)
        for _ in range(10):
            notify.until(b"WATCHDOG=1", timeout=2)
        pings = [t for t, data in notify.got[pings_after:] if data == b"WATCHDOG=1\n"]
        gaps = sorted(b - a for a, b in itertools.pairwise(pings))
        median = gaps[len(gaps) // 2]
        assert 0.05 < median < 0.2, gaps
        proc.signal(signal.SIGTERM)
        notify.until(b"STOPPING=1", timeout=10)
        assert proc.popen.wait(20) == 0, proc.output()
    finally:
        proc.stop()
    readies = [data for _, data in notify.got if b"READY=1" in data.splitlines()]
    assert len(readies) == 1, notify.got
    before = [data for _, data in notify.got[: notify.got.index((ready_at, ready))]]
    assert b"STATUS=starting: loading stored policies\n" in before


def test_socket_activation(fresh_world: World) -> None:
    """Under systemd-socket-activate the daemon adopts the passed TCP and
    unix sockets (``systemd:domain=INET|UNIX:name=...`` endpoints) and
    answers Postfix through them; the first connect, made before the daemon
    even runs, waits in the backlog instead of being refused (G1)."""
    world = fresh_world
    listeners = """
[[listener]]
endpoint = "systemd:domain=INET:name=socketmap"

[[listener]]
endpoint = "systemd:domain=UNIX:name=unixmap"
"""
    config = write_config(world, "activated", port=8423, listeners=listeners)
    unix_path = world.work / "activated" / "socketmap.sock"
    passed = [f"-E{key}" for key in ("SSL_CERT_FILE", "SSL_CERT_DIR", "PYTHONPATH")]
    proc = world.spawn(
        "mta",
        [
            "systemd-socket-activate",
            "-l",
            "127.0.0.1:8422",
            "-l",
            str(unix_path),
            "--fdname=socketmap:unixmap",
            *[p for p in passed if p[2:] in world.env],
            *serve_argv(config),
        ],
        name="activated",
    )
    try:
        world.wait_unix(unix_path, timeout=10)  # bound by systemd, not the daemon
        answer = wait_for(
            world, "enforce.test", "secure", "socketmap:inet:127.0.0.1:8422:postfix"
        )
        assert answer.startswith("secure"), (answer, proc.output())
        answer = wait_for(
            world, "enforce.test", "secure", f"socketmap:unix:{unix_path}:postfix"
        )
        assert answer.startswith("secure"), (answer, proc.output())
        output = proc.output()
        assert "listening on systemd:domain=INET:name=socketmap" in output
        assert "Connection refused" not in output
    finally:
        proc.stop()


def test_unknown_socket_group_exits_2(fresh_world: World) -> None:
    """A unix listener with a group that does not exist ends the start with
    exit status 2 and one line naming the socket and the group, before the
    daemon says it started (F7: never a socket with the wrong group)."""
    world = fresh_world
    listeners = """
[[listener]]
endpoint = "unix:{work}/grp.sock:mode=660"
group = "no-such-group"
"""
    config = write_config(world, "badgroup", port=8424, listeners=listeners)
    proc = world.spawn("mta", serve_argv(config), name="badgroup")
    try:
        assert proc.popen.wait(30) == 2, proc.output()
    finally:
        proc.stop()
    output = proc.output()
    lines = [line for line in output.splitlines() if "no-such-group" in line]
    sock = world.work / "badgroup" / "grp.sock"
    assert len(lines) == 1, output
    assert lines[0].startswith("<3>"), output
    assert str(sock) in lines[0], output
    assert "started" not in output
    assert "Traceback" not in output
    assert not sock.exists()


def verify_units(units: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of the service, the socket and the
    postfix@ instance with our drop-in, loaded from ``units`` first (then
    the system's unit path, for Debian's postfix@.service)."""
    return subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            "postfix-mtasts.service",
            "postfix-mtasts.socket",
            "postfix@-.service",
        ],
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def installed_copy(tmp_path: Path) -> Path:
    """The shipped units with ExecStart pointing at this checkout's
    console script instead of /opt/postfix-mtasts/venv (verify checks that
    the program exists)."""
    script = Path(sys.executable).parent / "postfix-mtasts"
    assert script.exists(), script
    units = tmp_path / "units"
    shutil.copytree(UNITS, units)
    service = units / "postfix-mtasts.service"
    text = service.read_text()
    assert f"ExecStart={INSTALLED} serve --config " in text
    service.write_text(text.replace(INSTALLED, str(script)))
    return units


def test_units_verify(tmp_path: Path) -> None:
    """Every shipped unit, and Debian's postfix@-.service with our drop-in,
    passes ``systemd-analyze verify`` without a single warning."""
    units = installed_copy(tmp_path)
    result = verify_units(units)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    assert result.stdout == "", result.stdout


def test_units_verify_reads_the_drop_in(tmp_path: Path) -> None:
    """The check above does read the postfix@ drop-in and the socket unit:
    a misspelt key in either is reported."""
    units = installed_copy(tmp_path)
    for path in (
        units / "postfix@.service.d" / "postfix-mtasts.conf",
        units / "postfix-mtasts.socket",
    ):
        path.write_text(path.read_text() + "Wantz=nothing.service\n")
    result = verify_units(units)
    assert "postfix-mtasts.conf" in result.stderr, result.stderr
    assert "postfix-mtasts.socket" in result.stderr, result.stderr


def test_unit_paths_match_the_install() -> None:
    """The unit runs the documented install: the venv's script with the
    config in /etc/postfix-mtasts, reload by SIGHUP, and no restart loop on
    a configuration error (exit 2)."""
    text = (UNITS / "postfix-mtasts.service").read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={INSTALLED} serve --config /etc/postfix-mtasts/postfix-mtasts.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "Before=postfix.service postfix@-.service",
    ):
        assert line in text.splitlines(), line
