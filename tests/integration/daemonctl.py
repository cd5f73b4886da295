"""Start `postfix-mtasts serve` in the test world and ask it like Postfix does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from .world import Proc, World

#: The line serve logs once everything has started (cli/serve.py).
STARTED = re.compile(r"postfix-mtasts \S+ started")

BASE_CONFIG = """
[[listener]]
endpoint = "tcp:{port}:interface=127.0.0.1"
protocol = "socketmap"
{listeners}
{maps}

[dns]
timeout = 1.0
attempts = 2
{dns}

[fetch]
timeout = 10.0

[cache]
recheck_interval = 1.0
negative_ttl = 1.0

[server]
lookup_budget = 3.0

[log]
level = "debug"

[store]
path = "{store}"

[control]
socket = "{control}"
{extra}
"""


def start_daemon(
    world: World,
    name: str,
    *,
    port: int,
    listeners: str = "",
    maps: str = "",
    extra: str = "",
    dns: str = "",
    fetch: str = "",
    store: str | None = None,
    control: str | None = None,
) -> Proc:
    """`postfix-mtasts serve` named ``name`` in $P-mta, trusting only the
    test CA, with its store and control socket in the world's work dir;
    returns once its socketmap port accepts connections."""
    config = write_config(
        world,
        name,
        port=port,
        listeners=listeners,
        maps=maps,
        extra=extra,
        dns=dns,
        fetch=fetch,
        store=store,
        control=control,
    )
    proc = world.spawn(
        "mta",
        [sys.executable, "-m", "postfix_mtasts", "serve", "--config", str(config)],
        name=name,
    )
    world.wait_tcp("mta", "127.0.0.1", port, timeout=20)
    wait_started(proc)
    return proc


def wait_started(proc: Proc, timeout: float = 20.0) -> None:
    """Wait for the daemon's "started" line: its socketmap port accepts
    (and answers from the store) before its DNS and HTTPS parts, control
    socket and metrics server are up (issue 13)."""
    deadline = time.monotonic() + timeout
    while not STARTED.search(proc.output()):
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{proc} did not start:\n{proc.output()}")
        time.sleep(0.01)  # noqa: TID251 - polling a real process with a deadline


def write_config(
    world: World,
    name: str,
    *,
    port: int,
    listeners: str = "",
    maps: str = "",
    extra: str = "",
    dns: str = "",
    fetch: str = "",
    store: str | None = None,
    control: str | None = None,
) -> Path:
    """(Re)write daemon ``name``'s configuration file; its path."""
    work = world.work / name
    work.mkdir(exist_ok=True)
    config = work / "daemon.toml"
    text = BASE_CONFIG.format(
        port=port,
        listeners=listeners.format(work=work),
        maps=maps,
        extra=extra,
        dns=dns,
        store=work / "policies.sqlite3" if store is None else store,
        control=work / "control.sock" if control is None else control,
    )
    # ``fetch`` lines join the [fetch] table (a second one is invalid TOML).
    fetch_table = "[fetch]\ntimeout = 10.0\n"
    config.write_text(text.replace(fetch_table, fetch_table + fetch + "\n"))
    return config


def control_socket(world: World, name: str) -> Path:
    return world.work / name / "control.sock"


def cache_cli(
    world: World, name: str, *args: str, socket: str | None = None
) -> tuple[int, str]:
    """`postfix-mtasts cache ...` against daemon ``name`` (or the control
    socket at ``socket``), with that daemon's configuration (where the
    store is): (rc, stdout + stderr)."""
    path = socket or str(control_socket(world, name))
    config = world.work / name / "daemon.toml"
    options = ["--config", str(config)] if config.exists() else []
    proc = world.run(
        "mta",
        [
            sys.executable,
            *("-m", "postfix_mtasts", "cache", *options, "--socket", path),
            *args,
        ],
        timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr


def ask(world: World, key: str, table: str) -> tuple[int, str]:
    """`postmap -q key table`: (rc, the value or the error text)."""
    rc, out, err = world.postmap(key, table)
    return rc, (out.strip() or err.strip())


def socketmap(port: int, map_name: str = "postfix") -> str:
    return f"socketmap:inet:127.0.0.1:{port}:{map_name}"


def wait_for(
    world: World, key: str, expected: str, table: str, timeout: float = 15.0
) -> str:
    """Ask until the answer contains ``expected`` (polling with a deadline,
    for changes the daemon picks up at its next re-check)."""
    deadline = time.monotonic() + timeout
    while True:
        _, answer = ask(world, key, table)
        if expected in answer or time.monotonic() > deadline:
            return answer


def burst(world: World, port: int | str, count: int, request: str) -> list[str]:
    """``count`` connections each sending ``request`` at once; their replies."""
    clients = Path(__file__).resolve().parent / "clients"
    proc = world.run(
        "mta",
        [
            sys.executable,
            str(clients / "socketmap_burst.py"),
            str(port),
            str(count),
            request,
        ],
        timeout=60,
    )
    replies: list[str] = json.loads(proc.stdout)
    return replies


def run_query(
    world: World,
    domain: str,
    *,
    config: Path | None = None,
    map_name: str | None = None,
    direct: bool = False,
    socket: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`postfix-mtasts query --json [--config C] [--map M] [--direct]
    [--socket S] DOMAIN` in $P-mta: the running daemon's answer through its
    control socket, or with ``direct`` a discovery of the command's own."""
    argv = [sys.executable, "-m", "postfix_mtasts", "query", "--json"]
    if config is not None:
        argv += ["--config", str(config)]
    if map_name is not None:
        argv += ["--map", map_name]
    if direct:
        argv.append("--direct")
    if socket is not None:
        argv += ["--socket", str(socket)]
    return world.run("mta", [*argv, domain], timeout=60)
