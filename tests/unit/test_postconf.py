"""Reading Postfix's smtp_dns_support_level with postconf, for maps with
``dane = "auto"`` (spec D13; docs/postfix-versions.md V6).

The child is a real process: a small executable script each test writes
into its own directory, standing in for postconf (it prints a value,
fails, hangs, floods its output).  pytest-twisted runs the global reactor
(``blockon``); the hang test fires the timeout on a ``task.Clock``, so no
test waits for wall time except for the child to start and end.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.childprocess import ChildResult, run_child
from postfix_mtasts.core.config import MapConfig, parse_config
from postfix_mtasts.core.dane_auto import PostfixDns
from postfix_mtasts.postconf import (
    MAX_OUTPUT_BYTES,
    find_postconf,
    read_postfix_dns,
    settle_dane,
)

T = TypeVar("T")
DEADLINE_S = 20.0

#: Answers like postconf: ``-dh config_directory`` with ``{default}``, else
#: (``-c DIR -xh smtp_dns_support_level``) with ``{level}``; records each
#: call's arguments, one call per line.
PRINTS = """#!/bin/sh
printf '%s\\n' "$*" >> "{work}/calls"
if [ "$1" = -dh ]; then echo "{default}"; else echo "{level}"; fi
"""
FAILS = """#!/bin/sh
echo "postconf: warning: {work}/main.cf: unused parameter: x=y" >&2
echo "postconf: fatal: open {work}/main.cf: Permission denied" >&2
exit 1
"""
HANGS = """#!/bin/sh
echo $$ > "{work}/pid"
printf '{work}\\n'
exec sleep 30
"""
FLOODS = """#!/bin/sh
exec yes dnssec
"""
TWO_LINES = """#!/bin/sh
printf 'dnssec\\nenabled\\n'
"""


def reactor() -> Any:
    # pytest-twisted runs the global reactor; the runner needs a real one.
    from twisted.internet import reactor  # noqa: TID251 - real child processes

    return reactor


def wait(d: Deferred[T]) -> T:
    """The result of ``d``, running the reactor (at most DEADLINE_S)."""
    d.addTimeout(DEADLINE_S, reactor())
    return pytest_twisted.blockon(d)  # type: ignore[no-any-return]


def wait_until(check: Callable[[], bool]) -> None:
    """Run the reactor until ``check()`` holds (polling, with a deadline)."""

    async def poll() -> None:
        for _ in range(int(DEADLINE_S / 0.02)):
            if check():
                return
            await task.deferLater(reactor(), 0.02, lambda: None)
        raise AssertionError("condition not met within the deadline")

    wait(Deferred.fromCoroutine(poll()))


def gone(pid: int) -> bool:
    """The process ``pid`` has ended: reaped, or a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state == "Z"


class ScriptCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.work = Path(tempfile.mkdtemp())
        self.addCleanup(self._clean)

    def _clean(self) -> None:
        shutil.rmtree(self.work)

    def script(self, text: str, name: str = "postconf", **values: str) -> str:
        path = self.work / name
        values.setdefault("default", str(self.work / "default"))
        path.write_text(text.format(work=self.work, **values))
        path.chmod(stat.S_IRWXU)
        return str(path)

    def etc(self, name: str = "etc") -> str:
        """A Postfix configuration directory with a main.cf."""
        directory = self.work / name
        directory.mkdir()
        (directory / "main.cf").write_text("smtp_dns_support_level = dnssec\n")
        return str(directory)

    def calls(self) -> list[str]:
        """The arguments of each run of a PRINTS script."""
        path = self.work / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def read(self, executable: str, directory: str | None = None) -> PostfixDns:
        return wait(
            Deferred.fromCoroutine(
                read_postfix_dns(reactor(), directory, executable=executable)
            )
        )


class ReadTests(ScriptCase):
    def test_reads_level_of_the_given_directory(self) -> None:
        """postconf is asked once, with -c DIR and -xh (values expanded, as
        Postfix reads them) for smtp_dns_support_level (D13, V6)."""
        etc = self.etc()
        got = self.read(self.script(PRINTS, level="dnssec"), etc)
        self.assertEqual(got, PostfixDns("dnssec", f"postconf -c {etc}"))
        self.assertEqual(self.calls(), [f"-c {etc} -xh smtp_dns_support_level"])

    def test_default_directory_is_postfix_own(self) -> None:
        """Without [postfix] config_directory the directory is Postfix's
        compiled-in default (-dh reads no main.cf), then asked like one
        given; MAIL_CONFIG plays no part."""
        etc = self.etc("default")
        got = self.read(self.script(PRINTS, level="enabled"))
        self.assertEqual(got, PostfixDns("enabled", f"postconf -c {etc}"))
        self.assertEqual(
            self.calls(),
            ["-dh config_directory", f"-c {etc} -xh smtp_dns_support_level"],
        )

    def test_no_main_cf_is_not_asked(self) -> None:
        """A directory without a readable main.cf (Postfix installed with
        "No configuration"): no level, and postconf is not run on it (its
        fatal error would cost a second)."""
        empty = self.work / "empty"
        empty.mkdir()
        got = self.read(self.script(PRINTS, level="dnssec"), str(empty))
        self.assertEqual(
            got,
            PostfixDns(None, f"postconf -c {empty}", f"cannot read {empty}/main.cf"),
        )
        self.assertEqual(self.calls(), [])
        got = self.read(self.script(PRINTS, level="dnssec"))
        self.assertEqual(got.error, f"cannot read {self.work}/default/main.cf")
        self.assertEqual(self.calls(), ["-dh config_directory"])

    def test_unset_level_is_empty(self) -> None:
        """A main.cf without smtp_dns_support_level: "" (not dnssec)."""
        got = self.read(self.script(PRINTS, level=""), self.etc())
        self.assertEqual(got.level, "")

    def test_failure_names_status_and_fatal_line(self) -> None:
        """postconf fails: no level, and the reason names the exit status
        and postconf's last (fatal) line."""
        got = self.read(self.script(FAILS), self.etc())
        self.assertIsNone(got.level)
        self.assertIn("exited with status 1", got.error)
        self.assertIn("fatal: open", got.error)
        self.assertIn("Permission denied", got.error)

    def test_flood_is_cut_and_killed(self) -> None:
        """A child that writes without end is killed once it passes the
        bound: no level, and the result comes without waiting for it."""
        got = self.read(self.script(FLOODS), self.etc())
        self.assertIsNone(got.level)
        self.assertIn(f"killed: wrote more than {MAX_OUTPUT_BYTES} bytes", got.error)

    def test_unexpected_output(self) -> None:
        """Output that is not one value is no level; nor is a default
        directory that is not an absolute path."""
        got = self.read(self.script(TWO_LINES), self.etc())
        self.assertIsNone(got.level)
        self.assertIn("postconf wrote 'dnssec\\nenabled\\n'", got.error)
        got = self.read(self.script(PRINTS, level="dnssec", default="etc/postfix"))
        self.assertEqual(
            (got.level, got.error), (None, "postconf wrote 'etc/postfix\\n'")
        )

    def test_not_executable(self) -> None:
        """A program that cannot be run is no level, never an exception."""
        program = self.script(PRINTS, level="dnssec")
        os.chmod(program, stat.S_IRUSR)
        got = self.read(program, self.etc())
        self.assertIsNone(got.level)
        self.assertIn("exited with status 1", got.error)


class RunChildTests(ScriptCase):
    def test_hang_killed_at_timeout(self) -> None:
        """A child still running at the timeout is killed (by its pid) and
        the result says so at once; the child is gone afterwards."""
        clock = task.Clock()
        program = self.script(HANGS)
        d = run_child(reactor(), clock, [program], env={}, timeout_s=10, max_bytes=4096)
        wait_until(lambda: (self.work / "pid").exists())
        pid = int((self.work / "pid").read_text())
        self.assertNoResult(d)
        clock.advance(10)
        result = self.successResultOf(d)
        self.assertEqual(result.killed, "no answer within 10 s")
        self.assertFalse(result.ok)
        self.assertEqual(result.describe(), "killed: no answer within 10 s")
        wait_until(lambda: gone(pid))

    def test_output_bounded(self) -> None:
        """At most max_bytes of output are kept."""
        result = wait(
            run_child(
                reactor(),
                reactor(),
                [self.script(FLOODS)],
                env={},
                timeout_s=DEADLINE_S,
                max_bytes=100,
            )
        )
        self.assertEqual(len(result.stdout), 100)
        self.assertTrue(result.stdout.startswith(b"dnssec\ndnssec\n"))

    def test_exit_status(self) -> None:
        """A child that exits is described by its status."""
        result = wait(
            run_child(
                reactor(),
                reactor(),
                [self.script(FAILS)],
                env={},
                timeout_s=DEADLINE_S,
                max_bytes=4096,
            )
        )
        self.assertEqual(
            (result.exit_code, result.describe()), (1, "exited with status 1")
        )
        self.assertEqual(
            ChildResult(b"", b"", None, signal=9).describe(), "ended by signal 9"
        )


class FindTests(ScriptCase):
    def test_installed_path_first(self) -> None:
        """Postfix's own install location comes before PATH."""
        installed = self.script(TWO_LINES)
        other = self.work / "bin"
        other.mkdir()
        self.assertEqual(find_postconf(str(other), installed=installed), installed)

    def test_path_absolute_entries_only(self) -> None:
        """Without the installed one, the first executable postconf in an
        absolute PATH entry; relative entries (the working directory) and
        files that are not executable are skipped."""
        missing = str(self.work / "nowhere")
        first, second = self.work / "a", self.work / "b"
        for d in (first, second):
            d.mkdir()
        (first / "postconf").write_text("#!/bin/sh\n")  # not executable
        program = second / "postconf"
        program.write_text("#!/bin/sh\n")
        program.chmod(stat.S_IRWXU)
        cwd = os.getcwd()
        os.chdir(second)
        self.addCleanup(os.chdir, cwd)
        path = os.pathsep.join([".", str(first), str(second)])
        self.assertEqual(find_postconf(path, installed=missing), str(program))
        self.assertIsNone(find_postconf(".", installed=missing))


class SettleTests(ScriptCase):
    def settle(self, text: str, program: str) -> tuple[Any, list[Any]]:
        config = parse_config(text)
        with capturedLogs() as events:
            settled = wait(
                Deferred.fromCoroutine(
                    settle_dane(config, reactor(), executable=program)
                )
            )
        return settled, list(events)

    def test_dnssec_turns_auto_on(self) -> None:
        """Postfix at dnssec: every "auto" map gets DANE precedence; a map
        with dane = false keeps none; one info line names the auto maps,
        the level and the directory (D13, V6)."""
        program = self.script(PRINTS, level="dnssec")
        etc = self.etc()
        text = (
            '[maps.postfix]\n[maps.off]\ndane = false\n[maps.b]\ndane = "auto"\n'
            f'[postfix]\nconfig_directory = "{etc}"\n'
        )
        (config, postfix), events = self.settle(text, program)
        self.assertEqual(
            [(name, m.dane) for name, m in config.maps],
            [("postfix", True), ("off", False), ("b", True)],
        )
        self.assertEqual(postfix, PostfixDns("dnssec", f"postconf -c {etc}"))
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual((event["dane"], event["maps"]), ("on", "postfix, b"))
        self.assertEqual(
            event["reason"],
            f"Postfix smtp_dns_support_level = 'dnssec' (postconf -c {etc})",
        )

    def test_failure_turns_auto_off_with_one_warning(self) -> None:
        """No main.cf (Postfix installed with "No configuration", as on the
        test machines): "auto" maps get no DANE precedence, dane = true
        keeps it, and one warning says so and how to force it."""
        program = self.script(PRINTS, level="dnssec")
        text = "[maps.postfix]\n[maps.forced]\ndane = true\n"
        (config, postfix), events = self.settle(text, program)
        self.assertEqual(
            [(name, m.dane_on) for name, m in config.maps],
            [("postfix", False), ("forced", True)],
        )
        self.assertIsNone(postfix.level)
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual((event["dane"], event["maps"]), ("off", "postfix"))
        self.assertIn("cannot read Postfix's smtp_dns_support_level", event["reason"])
        self.assertIn(f"cannot read {self.work}/default/main.cf", event["reason"])
        self.assertIn("dane = true on a map to force", event["reason"])

    def test_no_auto_map_runs_nothing(self) -> None:
        """Without an "auto" map postconf is not run and nothing is logged."""
        program = self.script(PRINTS, level="dnssec")
        text = "[maps.postfix]\ndane = false\n[maps.b]\ndane = true\n"
        (config, postfix), events = self.settle(text, program)
        self.assertEqual(config.map_named("b"), MapConfig(dane=True))
        self.assertIsNone(postfix)
        self.assertEqual(events, [])
        self.assertEqual(self.calls(), [])
