"""The peer daemon, postfix-mta-sts-resolver, run from a throwaway venv.

The project never depends on it: scripts/peer-venv installs it (pinned,
PEER_VERSION) into a venv outside the checkout, and the benchmarks that
compare against it take that venv's path (``--peer VENV``).  Here: its
YAML config, what the venv holds (versions, for the results), and
PeerDaemon, the peer's ``mta-sts-daemon`` in the integration world's
``$P-mta`` namespace, driven like WorldDaemon drives ours.

How the peer is set up, from its installed package (``defaults.py``,
``utils.populate_cfg_defaults``, ``responder.py``): a TCP socketmap
listener on 127.0.0.1:PORT; the in-memory LRU cache (``internal``) sized
above the run's domain count so that nothing is evicted; proactive policy
fetching off (its default); every other setting at its default (4 s
timeout, 60 s ``cache_grace``, SNI required: its enforce answer is ``OK
secure match=... servername=hostname``).  It fetches a new domain's policy
inline and answers after the fetch (``NOTFOUND`` when the fetch fails).
Its TLS is Python's default context, which honours SSL_CERT_FILE (the
world's CA); its DNS client (c-ares) reads the namespace's resolv.conf,
like ours.  It runs on uvloop when the venv has it (``scripts/peer-venv DIR
uvloop``), else on asyncio's own loop; the results say which.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from attack_world import World, WorldDaemon

PEER_DISTRIBUTION = "postfix-mta-sts-resolver"
PEER_VERSION = "1.5.1"

CONFIG = """\
host: 127.0.0.1
port: {port}
reuse_port: true
cache:
  type: internal
  options:
    cache_size: {cache_size}
proactive_policy_fetching:
  enabled: false
"""

VERSIONS = """\
import importlib.metadata as m, json, sys
print(json.dumps({
    "python": sys.version.split()[0],
    **{d.metadata["Name"].lower().replace("_", "-"): d.version for d in m.distributions()},
}))
"""


def peer_config(port: int, cache_size: int) -> str:
    """The peer's YAML config: listener on 127.0.0.1:``port``, an internal
    cache of ``cache_size`` entries, no proactive fetching."""
    return CONFIG.format(port=port, cache_size=cache_size)


def peer_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def peer_versions(venv: Path) -> dict[str, str]:
    """Python and every distribution in the venv, by lower-case name; exits
    with a hint when the venv does not hold the peer."""
    python = peer_python(venv)
    if not python.exists():
        raise SystemExit(f"{python} missing: run scripts/peer-venv {venv}")
    out = subprocess.run(
        [str(python), "-c", VERSIONS],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    versions: dict[str, str] = json.loads(out)
    if versions.get(PEER_DISTRIBUTION) is None:
        raise SystemExit(f"{venv} has no {PEER_DISTRIBUTION}: run scripts/peer-venv")
    return versions


class PeerDaemon(WorldDaemon):
    """``mta-sts-daemon`` from ``venv`` in ``$P-mta``, optionally pinned to
    one CPU (taskset) and under cProfile, trusting the world's CA (the
    world's environment) or ``trust``."""

    def __init__(
        self,
        world: World,
        venv: Path,
        name: str,
        port: int,
        config: str,
        *,
        cpu: str | None = None,
        profile: Path | None = None,
        trust: Path | None = None,
    ) -> None:
        super().__init__(world, venv, name, port, "")
        self.config.unlink(missing_ok=True)
        self.config = self.work / "mta-sts-daemon.yml"
        self.config.write_text(config)
        self.venv = venv
        self.cpu, self.profile, self.trust = cpu, profile, trust

    def env(self) -> dict[str, str]:
        return {"SSL_CERT_FILE": str(self.trust)} if self.trust is not None else {}

    def python(self, *argv: str | Path) -> list[str]:
        pin = ["taskset", "-c", self.cpu] if self.cpu is not None else []
        prof = ["-m", "cProfile", "-o", str(self.profile)] if self.profile else []
        script = self.venv / "bin" / "mta-sts-daemon"
        return [*pin, str(peer_python(self.venv)), *prof, str(script), *map(str, argv)]

    def start(self, timeout: float = 30.0) -> bool:
        """Start it; True once its port answers, False if it exited first or
        did not get there within ``timeout``."""
        argv = self.python("-c", self.config, "-v", "info")
        return self.spawn_until(argv, self.work, lambda: True, timeout)

    def cache(self, *args: str) -> tuple[int, str]:
        raise NotImplementedError("the peer has no control socket")


def describe(venv: Path, cache_size: int) -> dict[str, Any]:
    """What the results say about the peer: where, which versions, config."""
    versions = peer_versions(venv)
    return {
        "venv": str(venv),
        "version": versions[PEER_DISTRIBUTION],
        "python": versions["python"],
        "dependencies": {
            k: v
            for k, v in sorted(versions.items())
            if k not in (PEER_DISTRIBUTION, "python", "pip", "setuptools")
        },
        "event_loop": "uvloop" if "uvloop" in versions else "asyncio",
        "config": peer_config(0, cache_size).replace("port: 0", "port: PORT"),
        "verbosity": "info",
    }
