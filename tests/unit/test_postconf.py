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
LEVEL_ARG = ["smtp_dns_support_level", ""]  # the last name, then the end
DEADLINE_S = 20.0

#: Prints what postconf -xh config_directory smtp_dns_support_level would
#: for main.cf in the -c directory (or /etc/postfix) saying ``$LEVEL``, and
#: records its arguments.
PRINTS = """#!/bin/sh
printf '%s\\n' "$@" > "{work}/argv"
dir=/etc/postfix
[ "$1" = -c ] && dir="$2"
printf '%s\\n%s\\n' "$dir" "{level}"
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
ONE_LINE = """#!/bin/sh
echo dnssec
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
        path.write_text(text.format(work=self.work, **values))
        path.chmod(stat.S_IRWXU)
        return str(path)

    def read(self, executable: str, directory: str | None = None) -> PostfixDns:
        return wait(
            Deferred.fromCoroutine(
                read_postfix_dns(reactor(), directory, executable=executable)
            )
        )


class ReadTests(ScriptCase):
    def test_reads_level_of_the_given_directory(self) -> None:
        """postconf is asked with -c DIR and -xh (values expanded, as Postfix
        reads them) for config_directory and smtp_dns_support_level; the
        level and the directory it read come back (D13, V6)."""
        program = self.script(PRINTS, level="dnssec")
        got = self.read(program, "/srv/postfix-out")
        self.assertEqual(got, PostfixDns("dnssec", "postconf -c /srv/postfix-out"))
        self.assertEqual(
            (self.work / "argv").read_text().split("\n"),
            ["-c", "/srv/postfix-out", "-xh", "config_directory", *LEVEL_ARG],
        )

    def test_default_directory_is_postfix_own(self) -> None:
        """Without [postfix] config_directory no -c is passed: the directory
        is Postfix's own default, named as postconf reports it."""
        program = self.script(PRINTS, level="enabled")
        self.assertEqual(
            self.read(program), PostfixDns("enabled", "postconf -c /etc/postfix")
        )
        self.assertEqual(
            (self.work / "argv").read_text(),
            "-xh\nconfig_directory\nsmtp_dns_support_level\n",
        )

    def test_unset_level_is_empty(self) -> None:
        """A main.cf without smtp_dns_support_level: "" (not dnssec)."""
        program = self.script(PRINTS, level="")
        self.assertEqual(self.read(program).level, "")

    def test_failure_names_status_and_fatal_line(self) -> None:
        """postconf fails (no readable main.cf): no level, and the reason
        names the exit status and postconf's last (fatal) line."""
        got = self.read(self.script(FAILS))
        self.assertIsNone(got.level)
        self.assertIn("exited with status 1", got.error)
        self.assertIn("fatal: open", got.error)
        self.assertIn("Permission denied", got.error)

    def test_flood_is_cut_and_killed(self) -> None:
        """A child that writes without end is killed once it passes the
        bound: no level, and the result comes without waiting for it."""
        got = self.read(self.script(FLOODS))
        self.assertIsNone(got.level)
        self.assertIn(f"killed: wrote more than {MAX_OUTPUT_BYTES} bytes", got.error)

    def test_unexpected_output(self) -> None:
        """Output that is not two lines (directory, level) is no level."""
        got = self.read(self.script(ONE_LINE))
        self.assertIsNone(got.level)
        self.assertIn("not two lines", got.error)

    def test_not_executable(self) -> None:
        """A program that cannot be run is no level, never an exception."""
        program = self.script(PRINTS, level="dnssec")
        os.chmod(program, stat.S_IRUSR)
        got = self.read(program)
        self.assertIsNone(got.level)
        self.assertNotEqual(got.error, "")


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
        installed = self.script(ONE_LINE)
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
        text = (
            '[maps.postfix]\n[maps.off]\ndane = false\n[maps.b]\ndane = "auto"\n'
            '[postfix]\nconfig_directory = "/etc/postfix-out"\n'
        )
        (config, postfix), events = self.settle(text, program)
        self.assertEqual(
            [(name, m.dane) for name, m in config.maps],
            [("postfix", True), ("off", False), ("b", True)],
        )
        self.assertEqual(postfix, PostfixDns("dnssec", "postconf -c /etc/postfix-out"))
        [event] = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual((event["dane"], event["maps"]), ("on", "postfix, b"))
        self.assertEqual(
            event["reason"],
            "Postfix smtp_dns_support_level = 'dnssec' (postconf -c /etc/postfix-out)",
        )

    def test_failure_turns_auto_off_with_one_warning(self) -> None:
        """postconf fails (no main.cf, as on a Postfix installed with "No
        configuration"): "auto" maps get no DANE precedence, dane = true
        keeps it, and one warning says so and how to force it."""
        program = self.script(FAILS)
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
        self.assertIn("dane = true on a map to force", event["reason"])

    def test_no_auto_map_runs_nothing(self) -> None:
        """Without an "auto" map postconf is not run and nothing is logged."""
        program = self.script(PRINTS, level="dnssec")
        text = "[maps.postfix]\ndane = false\n[maps.b]\ndane = true\n"
        (config, postfix), events = self.settle(text, program)
        self.assertEqual(config.map_named("b"), MapConfig(dane=True))
        self.assertIsNone(postfix)
        self.assertEqual(events, [])
        self.assertFalse((self.work / "argv").exists())
