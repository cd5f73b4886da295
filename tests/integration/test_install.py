"""scripts/install and scripts/uninstall (issue 11, install path; docs/install.md).

The real installer runs into a staging tree (``--root``) with
``--no-systemctl`` (systemd is not PID 1 here): a venv built with pip from
this checkout, the conffile, the units, the man page, the symlink.  The
tests run in file order on one staged tree; the uninstall test comes last.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from postfix_mtasts import __version__

from .world import World

SRC = Path(__file__).resolve().parents[2]
VENV = "opt/postfix-mtasts/venv"
CONF = "etc/postfix-mtasts/postfix-mtasts.toml"
MAN = "usr/local/share/man/man8/postfix-mtasts.8"
DOC = "usr/local/share/doc/postfix-mtasts"
BIN = "usr/local/bin/postfix-mtasts"


@dataclass
class Staged:
    root: Path
    output: str
    seconds: float


def _run(script: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SRC / "scripts" / script), "--root", str(root), "--no-systemctl", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _install(root: Path) -> Staged:
    start = time.monotonic()
    proc = _run("install", root)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Staged(root, proc.stdout, seconds)


def _shipped_units() -> dict[str, Path]:
    """What systemd/ ships to /etc/systemd/system: units and drop-in files
    (installed path relative to the root -> the file in the checkout)."""
    units = {}
    systemd = SRC / "systemd"
    for f in [*systemd.glob("*.service"), *systemd.glob("*.socket")]:
        units[f"etc/systemd/system/{f.name}"] = f
    for d in systemd.glob("*.d"):
        for f in d.glob("*.conf"):
            units[f"etc/systemd/system/{d.name}/{f.name}"] = f
    return units


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staged]:
    """One staged install, removed afterwards (a venv is ~100 MB)."""
    base = tmp_path_factory.mktemp("install")
    try:
        yield _install(base / "root")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_every_file_in_place(staged: Staged) -> None:
    """scripts/install places the venv, the config (0644, the shipped
    default), every unit and drop-in of systemd/, the man page, the docs and
    the /usr/local/bin symlink, each 0644 (0755 directories), owned by root."""
    root = staged.root
    expected = {
        CONF: SRC / "conf" / "postfix-mtasts.toml",
        MAN: SRC / "man" / "postfix-mtasts.8",
        f"{DOC}/README.md": SRC / "README.md",
        f"{DOC}/LICENSE": SRC / "LICENSE",
        f"{DOC}/install.md": SRC / "docs" / "install.md",
        f"{DOC}/chroot.md": SRC / "docs" / "chroot.md",
        f"{DOC}/postfix-mtasts.toml": SRC / "conf" / "postfix-mtasts.toml",
        **{
            f"{DOC}/examples/{f.name}": f
            for f in (SRC / "systemd" / "examples").iterdir()
        },
        **_shipped_units(),
    }
    assert "etc/systemd/system/postfix-mtasts.service" in expected
    for rel, source in expected.items():
        path = root / rel
        assert path.read_bytes() == source.read_bytes(), rel
        assert _mode(path) == 0o644, rel
        assert path.stat().st_uid == 0, rel
    for rel in ("etc/postfix-mtasts", DOC, "opt/postfix-mtasts", VENV):
        assert _mode(root / rel) == 0o755, rel
    assert os.readlink(root / BIN) == f"/{VENV}/bin/postfix-mtasts"
    assert not (root / f"{CONF}.dist").exists()


def test_venv_readable_by_the_dynamic_user(staged: Staged) -> None:
    """Every file of the venv is readable (and every directory searchable) by
    others: the unit's DynamicUser must run it, whatever root's umask."""
    for dirpath, dirnames, filenames in os.walk(staged.root / VENV):
        for name in dirnames:
            assert _mode(Path(dirpath, name)) & 0o005 == 0o005, Path(dirpath, name)
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                assert _mode(path) & 0o004, path


def test_installed_command_runs(staged: Staged) -> None:
    """The venv's postfix-mtasts runs and is this checkout's version, with
    the redis extra installed (txredisapi importable)."""
    venv = staged.root / VENV
    proc = subprocess.run(
        [str(venv / "bin" / "postfix-mtasts"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == f"postfix-mtasts {__version__}"
    subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import txredisapi"], check=True
    )


def test_unit_runs_an_installed_program(staged: Staged) -> None:
    """The installed service's ExecStart names a program the install put in
    place (through the /usr/local/bin symlink or the venv directly), with
    the installed configuration file."""
    unit = (staged.root / "etc/systemd/system/postfix-mtasts.service").read_text()
    lines = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    argv = lines[0].removeprefix("ExecStart=").split()
    program = staged.root / argv[0].lstrip("/")
    if program.is_symlink():
        program = staged.root / os.readlink(program).lstrip("/")
    assert os.access(program, os.X_OK), argv[0]
    assert "/" + CONF in argv


def test_installed_daemon_answers_postfix(staged: Staged, world: World) -> None:
    """The installed program on the installed configuration, as the unit
    runs it, answers Postfix: ``postmap -q`` through the default listener
    (127.0.0.1:8461) says ``secure`` for enforce.test (G1, D8).  It runs in
    $P-mta with tmpfs over /var/lib and /run, where the default store and
    control socket go, so the host's are not touched; the directories in them
    are made as the unit's StateDirectory= and RuntimeDirectory= make them."""
    program = staged.root / VENV / "bin" / "postfix-mtasts"
    shell = (
        "mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /run"
        " && mkdir /var/lib/postfix-mtasts /run/postfix-mtasts"
        ' && exec "$@"'
    )
    proc = world.spawn(
        "mta",
        [
            "unshare", "--mount", "--propagation", "private",
            "sh", "-c", shell, "sh",
            str(program), "serve", "--config", str(staged.root / CONF),
        ],
        name="installed",
    )  # fmt: skip
    try:
        world.wait_tcp("mta", "127.0.0.1", 8461, timeout=30)
        rc, out, err = world.postmap(
            "enforce.test", "socketmap:inet:127.0.0.1:8461:postfix"
        )
        assert (rc, out.split()[:1]) == (0, ["secure"]), err + proc.output()
    finally:
        proc.stop()


def test_rerun_keeps_an_edited_config(staged: Staged) -> None:
    """A second run (an upgrade) keeps the admin's edited configuration
    byte for byte, puts the new default beside it as .dist and says so, and
    leaves a working venv."""
    conf = staged.root / CONF
    edited = conf.read_text() + '\n[[listener]]\nendpoint = "tcp:8462"\n'
    conf.write_text(edited)
    again = _install(staged.root)
    assert conf.read_text() == edited
    dist = staged.root / f"{CONF}.dist"
    assert dist.read_bytes() == (SRC / "conf" / "postfix-mtasts.toml").read_bytes()
    assert _mode(dist) == 0o644
    assert "/etc/postfix-mtasts/postfix-mtasts.toml.dist" in again.output
    assert "upgraded" in again.output
    proc = subprocess.run(
        [str(staged.root / VENV / "bin" / "postfix-mtasts"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert __version__ in proc.stdout
    print(f"install {staged.seconds:.1f} s, upgrade {again.seconds:.1f} s")


def test_refuses_to_install_as_non_root() -> None:
    """Without --root, a user other than root is refused before anything is
    written, with a line that says what to do."""
    proc = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         str(SRC / "scripts" / "install"), "--no-systemctl"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "run it as root" in proc.stderr


def test_uninstall_keeps_config_unless_purged(staged: Staged) -> None:
    """scripts/uninstall removes the venv, units, man page, docs and
    symlink but keeps /etc/postfix-mtasts; --purge removes that too.
    (Runs last: it takes the staged tree apart.)"""
    root = staged.root
    proc = _run("uninstall", root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rel in (VENV, MAN, DOC, BIN, *_shipped_units()):
        assert not os.path.lexists(root / rel), rel
    assert (root / CONF).exists()
    proc = _run("uninstall", root, "--purge")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (root / "etc/postfix-mtasts").exists()
