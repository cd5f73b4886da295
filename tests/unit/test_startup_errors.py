"""Every broken configuration of tests/broken_configs.py stops
``postfix-mtasts serve`` before the reactor runs, with exit status 2 and
ONE line on stderr: the ``<3>`` priority prefix (``journalctl -p err``
shows it), the file, and the key, endpoint or file at fault (issue 11).

The same cases run as real processes in
tests/integration/test_startup_errors.py, with the runtime failures
(a port in use: exit 1) that need a bound socket.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest

from postfix_mtasts.cli import main
from postfix_mtasts.core.config import ConfigError, load
from postfix_mtasts.preflight import check_serve
from tests.broken_configs import CASES, BrokenConfig, render

CONFIG_ERRORS = [case for case in CASES if case.status == 2]


def _no_dns(host: str, port: None, family: int, kind: int) -> object:
    raise AssertionError(f"asked to resolve {host!r}")


@pytest.mark.parametrize("case", CONFIG_ERRORS, ids=lambda case: case.name)
def test_one_clean_line(case: BrokenConfig) -> None:
    """The configuration error is found by the load or the start-up checks
    (never by the daemon), and ``serve`` prints one ``<3>`` line naming the
    file and what is wrong, and exits 2."""
    with tempfile.TemporaryDirectory(prefix="broken-") as work:
        path = Path(work) / "broken.toml"
        path.write_text(render(case, port=8461, work=work, busy=1))
        with pytest.raises(ConfigError):
            check_serve(load(str(path)), environ={}, resolve=_no_dns)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["serve", "--config", str(path)])
    assert status == 2
    assert out.getvalue() == ""
    line, *rest = err.getvalue().split("\n")
    assert rest == [""], err.getvalue()
    assert line.startswith(f"<3>postfix-mtasts: configuration error: {path}: ")
    for name in case.names:
        assert name.replace("{work}", work) in line, (name, line)


def test_enough_cases() -> None:
    """The list covers every section, types, typos, endpoints, files and
    stores: some forty cases, each with its own name."""
    assert len(CONFIG_ERRORS) >= 40
    assert len({case.name for case in CASES}) == len(CASES)
