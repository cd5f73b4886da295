"""``postfix-mtasts serve`` on each broken configuration of
tests/broken_configs.py, as a real process in $P-mta: exit status 2 for a
configuration error, 1 for a port in use, and exactly one error line, with
the ``<3>`` priority prefix and the key, endpoint or file at fault; no
traceback, no critical line (issue 11).  The cases run four at a time.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.broken_configs import CASES, BrokenConfig, render

from .world import World

PORT = 28461  # BASE's listener: PORT + case number; {busy}: PORT - 1
BUSY = PORT - 1
FILE_CASES = ["config missing", "config is a directory", "not UTF-8"]

Outcome = tuple[int, list[str]]


def _serve(world: World, config: Path) -> Outcome:
    done = world.run(
        "mta",
        [sys.executable, "-m", "postfix_mtasts", "serve", "--config", str(config)],
        timeout=60,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


@pytest.fixture(scope="module")
def outcomes(world: World) -> Iterator[dict[str, tuple[Outcome, Path]]]:
    work = world.work / "broken-configs"
    work.mkdir(exist_ok=True)
    jobs: dict[str, Path] = {}
    for i, case in enumerate(CASES):
        path = work / f"{i:02d}.toml"
        path.write_text(render(case, port=PORT + i, work=str(work), busy=BUSY))
        jobs[case.name] = path
    (work / "latin1.toml").write_bytes(b"# caf\xe9\n")
    files = [work / "missing.toml", work, work / "latin1.toml"]
    jobs.update(zip(FILE_CASES, files, strict=True))
    with ThreadPoolExecutor(4) as pool:
        results = pool.map(lambda path: _serve(world, path), jobs.values())
        yield {name: (r, jobs[name]) for name, r in zip(jobs, results, strict=True)}


def _one_error_line(lines: list[str]) -> str:
    """Every line has a priority prefix; none is critical; exactly one is
    an error."""
    assert all(line[:1] == "<" and line[2:3] == ">" for line in lines), lines
    errors = [line for line in lines if line[:3] in ("<0>", "<1>", "<2>", "<3>")]
    assert len(errors) == 1, lines
    assert errors[0].startswith("<3>"), errors
    return errors[0]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_one_clean_line(
    outcomes: dict[str, tuple[Outcome, Path]], case: BrokenConfig
) -> None:
    """The case's exit status (2: configuration, 1: port in use) and its
    one ``<3>`` line naming what is wrong (issue 11)."""
    (status, lines), path = outcomes[case.name]
    assert status == case.status, lines
    line = _one_error_line(lines)
    if case.status == 2:
        assert line.startswith(f"<3>postfix-mtasts: configuration error: {path}: ")
    for name in case.names:
        name = name.replace("{work}", str(path.parent)).replace("{busy}", str(BUSY))
        assert name in line, (name, line)


@pytest.mark.parametrize("name", FILE_CASES)
def test_unreadable_file(outcomes: dict[str, tuple[Outcome, Path]], name: str) -> None:
    """A configuration file that cannot be read or decoded: exit 2, one
    line naming the file."""
    (status, lines), path = outcomes[name]
    assert status == 2, lines
    line = _one_error_line(lines)
    assert line.startswith(f"<3>postfix-mtasts: configuration error: {path}: ")
