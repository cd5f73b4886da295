"""The integration test world, driven by bench_attacks.py and soak.py.

tests/integration/world.py builds two network namespaces (unbound DNS, HTTPS
policy hosts with a test CA, MX hosts); here a daemon from any source tree
runs in ``$P-mta`` beside a private redis-server, clients talk to it from
this process through sockets made in that namespace, and the daemon process
is read from /proc (VmRSS, open fds) and from its log (the ``<N>`` priority
prefix of each line).  Needs root, like the integration tests.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_floods import ask, rss_kib

CHECKOUT = Path(__file__).resolve().parent.parent
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))

from tests.integration.world import HTTPS_IPS, Proc, World  # noqa: E402

__all__ = [
    "ERROR_PRIORITIES",
    "HOSTILE_IP",
    "HTTPS_IPS",
    "REDIS_PORT",
    "Redis",
    "World",
    "WorldDaemon",
    "daemon_config",
    "exit_on_sigterm",
    "fleet_key_setting",
    "parser",
    "priorities",
    "start_hostile_host",
]

HOSTILE_IP = "10.253.2.20"  # added to $P-world's lo for hostile_https.py
REDIS_PORT = 6391
ERROR_PRIORITIES = ("<0>", "<1>", "<2>", "<3>")

CONFIG = """\
[[listener]]
endpoint = "tcp:{port}:interface=127.0.0.1"
protocol = "socketmap"
{listeners}
[maps.postfix]
[maps.temp]
dns_failure = "temp"
[dns]
timeout = {dns_timeout}
attempts = 2
[store]
path = "{store}"
[redis]
url = "{redis}"
{redis_settings}
[control]
socket = "{work}/control.sock"
[log]
level = "{level}"
{extra}
"""


def daemon_config(
    port: int,
    work: Path,
    *,
    sqlite: bool = False,
    redis: bool = False,
    level: str = "info",
    dns_timeout: float = 1.0,
    listeners: str = "",
    redis_settings: str = "",
    extra: str = "",
) -> str:
    """A daemon config: a socketmap listener on 127.0.0.1:``port``, maps
    ``postfix`` (defaults) and ``temp`` (dns_failure = "temp"), the control
    socket in ``work``; ``redis_settings`` are more lines of the [redis]
    table, ``extra`` adds whole tables."""
    return CONFIG.format(
        port=port,
        work=work,
        listeners=listeners,
        dns_timeout=dns_timeout,
        store=work / "policies.sqlite3" if sqlite else "",
        redis=f"redis://127.0.0.1:{REDIS_PORT}/0" if redis else "",
        level=level,
        redis_settings=redis_settings,
        extra=extra,
    )


def fleet_key_setting(world: World) -> str:
    """A fleet key file (mode 0600) in the world's work dir, and the
    ``[redis]`` line that names it (``fleet_key_file``, issue 9)."""
    path = world.work / "fleet.key"
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return f'fleet_key_file = "{path}"'


def priorities(lines: list[str]) -> Counter[str]:
    """Log lines by their ``<N>`` priority prefix ("other" without one)."""
    return Counter(line[:3] if line[:1] == "<" else "other" for line in lines)


class WorldDaemon:
    """`postfix-mtasts serve` from ``tree`` in ``$P-mta``, restartable."""

    def __init__(
        self, world: World, tree: Path, name: str, port: int, config: str
    ) -> None:
        self.world, self.tree, self.name, self.port = world, tree, name, port
        self.work = world.work / name
        self.work.mkdir(exist_ok=True)
        self.config = self.work / "daemon.toml"
        self.config.write_text(config)
        self.control = self.work / "control.sock"
        self.procs: list[Proc] = []

    @property
    def proc(self) -> Proc:
        return self.procs[-1]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.tree), "PYTHONDONTWRITEBYTECODE": "1"}

    def python(self, *argv: str | Path) -> list[str]:
        return [sys.executable, "-m", "postfix_mtasts", *map(str, argv)]

    def start(self, timeout: float = 30.0) -> bool:
        """Start it; True once its port and control socket answer, False if
        it exited first or did not get there within ``timeout``."""
        self.control.unlink(missing_ok=True)
        argv = self.python("serve", "--config", self.config)
        return self.spawn_until(argv, self.tree, self.control.exists, timeout)

    def spawn_until(
        self, argv: list[str], cwd: Path, ready: Callable[[], bool], timeout: float
    ) -> bool:
        """Spawn ``argv`` in the mta namespace; True once its port answers
        and ``ready()``, False if it exited first or did not within
        ``timeout``."""
        self.procs.append(
            self.world.spawn("mta", argv, env=self.env(), name=self.name, cwd=cwd)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                return False
            try:
                self.world.mta.connect("127.0.0.1", self.port, 1.0).close()
                if ready():
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> int | None:
        return self.proc.stop() if self.procs else None

    def alive(self) -> bool:
        return bool(self.procs) and self.proc.alive()

    def exit_code(self) -> int | None:
        return self.proc.popen.poll()

    def rss_kib(self) -> int | None:
        return rss_kib(self.pid) if self.alive() else None

    def fd_count(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def lines(self) -> list[str]:
        """Every line it has written, over all its runs."""
        out: list[str] = []
        for proc in self.procs:
            out += proc.output().splitlines()
        return out

    def lines_since(self, mark: int) -> list[str]:
        return self.lines()[mark:]

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return self.world.mta.connect("127.0.0.1", self.port, timeout)

    def ask(self, key: str, map_name: str = "postfix") -> dict[str, Any]:
        """One socketmap lookup on a new connection: status, reply, seconds."""
        try:
            sock = self.connect()
        except OSError as e:
            return {"status": f"error: {e}", "seconds": 0.0}
        return ask(self.port, key, sock, map_name)

    def postmap(self, key: str, map_name: str = "postfix") -> str:
        """What Postfix's own client (``postmap -q``) gets: the value, "(not
        found)", or "rc=N" and its error text."""
        table = f"socketmap:inet:127.0.0.1:{self.port}:{map_name}"
        rc, out, err = self.world.postmap(key, table, timeout=120)
        if rc == 0:
            return out.strip()
        if rc == 1 and not (out + err).strip():
            return "(not found)"
        return f"rc={rc} {(out + err).strip()[-160:]}"

    def cache(self, *args: str) -> tuple[int, str]:
        """`postfix-mtasts cache ARGS` against its control socket."""
        done = subprocess.run(
            self.python("cache", "--socket", self.control, *args),
            cwd=self.tree,
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.returncode, (done.stdout + done.stderr).strip()


class Redis:
    """redis-server on ``$P-mta``'s loopback (no persistence), restartable;
    commands go through redis-cli in that namespace."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.dir = world.work / "redis"
        self.dir.mkdir(exist_ok=True)
        self.proc: Proc | None = None

    def start(self) -> None:
        self.proc = self.world.spawn(
            "mta",
            [
                "redis-server",
                *("--bind", "127.0.0.1", "--port", str(REDIS_PORT)),
                *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
            ],
            name="redis",
        )
        self.world.wait_tcp("mta", "127.0.0.1", REDIS_PORT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def cli(self, *args: str, value: str | None = None) -> str:
        """``redis-cli ARGS``; ``value`` goes in as the last argument (-x)."""
        argv = ["redis-cli", "-p", str(REDIS_PORT), "--raw"]
        if value is not None:
            argv.append("-x")
        done = self.world.run("mta", [*argv, *args], input=value, timeout=30)
        return (done.stdout + done.stderr).strip()

    def set(self, key: str, value: str) -> str:
        return self.cli("SET", key, value=value)

    def get(self, key: str) -> str:
        return self.cli("GET", key)


def start_hostile_host(world: World, hosts: list[str], stats: Path) -> Proc:
    """hostile_https.py on HOSTILE_IP:443 in ``$P-world`` with one good
    certificate naming every host in ``hosts``; returns once it listens."""
    world.run("world", ["ip", "addr", "add", f"{HOSTILE_IP}/32", "dev", "lo"])
    script = Path(__file__).resolve().parent / "hostile_https.py"
    cert = world.pki.directory / "hostile-hosts.pem"
    leaf = world.pki.ca.issue_cert(*hosts)
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    proc = world.spawn(
        "world",
        [sys.executable, str(script), HOSTILE_IP, str(cert), str(stats)],
        name="hostile-https",
    )
    world.wait_tcp("mta", HOSTILE_IP, 443, timeout=20)
    return proc


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def exit_on_sigterm() -> None:
    """SIGTERM ends the run through its ``finally`` blocks, so the world
    (namespaces, daemons, servers) is torn down as after Ctrl-C."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser whose help is ``doc``: its first paragraph, then
    the rest after the options."""
    head, tail = doc.split("\n\n", 1)
    return argparse.ArgumentParser(
        description=head,
        epilog=tail,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
