"""Tests for postfix_mtasts.journal: journald-ready log lines."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import tempfile
from collections.abc import Callable
from typing import Literal, cast

from twisted.logger import (
    ILogObserver,
    InvalidLogLevelError,
    LogEvent,
    Logger,
    LogLevel,
    globalLogBeginner,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.journal import make_observer, report_crash, start_logging
from postfix_mtasts.journal_native import (
    MAX_VALUE_BYTES,
    encode_entry,
    stream_is_journal,
)


def _logger(
    level: LogLevel = LogLevel.debug, fmt: Literal["text", "json"] = "text"
) -> tuple[Logger, io.StringIO]:
    stream = io.StringIO()
    observer = make_observer(stream, level=level, fmt=fmt)
    return Logger(namespace="postfix_mtasts.test", observer=observer), stream


def _failure() -> Failure:
    try:
        1 / 0  # noqa: B018 -- raise a real exception with a traceback
    except ZeroDivisionError:
        return Failure()
    raise AssertionError("unreachable")


class TextFormatTests(SynchronousTestCase):
    def test_priority_prefix_per_level(self) -> None:
        """Each level gets its syslog priority prefix, no timestamp, and the
        formatted message (style.md section 4: debug 7 … critical 2)."""
        log, stream = _logger()
        log.debug("d {domain}", domain="example.com")
        log.info("i {answer}", answer="OK")
        log.warn("w")
        log.error("e")
        log.critical("c")
        self.assertEqual(
            stream.getvalue(),
            "<7>d example.com\n<6>i OK\n<4>w\n<3>e\n<2>c\n",
        )

    def test_newline_in_message_escaped(self) -> None:
        """A newline or other control in a message (e.g. from peer input) is
        escaped, so one event stays one journal line."""
        log, stream = _logger()
        log.warn("bad request {request}", request="a\nb\rc\x00d\te")
        self.assertEqual(stream.getvalue(), "<4>bad request a\\nb\\rc\\x00d\te\n")

    def test_failure_traceback_lines_prefixed(self) -> None:
        """A failure's traceback follows the message, indented, every line with
        the event's priority prefix so journald keeps them at that level."""
        log, stream = _logger()
        log.failure("lookup crashed for {domain}", _failure(), domain="example.com")
        lines = stream.getvalue().splitlines()
        self.assertEqual(lines[0], "<2>lookup crashed for example.com")
        self.assertEqual(lines[1], "<2>    Traceback (most recent call last):")
        self.assertEqual(
            lines[-1], "<2>    builtins.ZeroDivisionError: division by zero"
        )
        for line in lines[1:]:
            self.assertTrue(line.startswith("<2>    "), line)

    def test_failure_at_error_level(self) -> None:
        """log.failure at a chosen level uses that level's prefix for all lines."""
        log, stream = _logger()
        log.failure("oops", _failure(), level=LogLevel.error)
        lines = stream.getvalue().splitlines()
        self.assertEqual(lines[0], "<3>oops")
        self.assertTrue(all(line.startswith("<3>") for line in lines))

    def test_empty_event_dropped(self) -> None:
        """An event with no message and no failure writes nothing (no bare
        "<6>" lines)."""
        log, stream = _logger()
        log.info("")
        self.assertEqual(stream.getvalue(), "")

    def test_event_without_level_counts_as_info(self) -> None:
        """A raw event without log_level (legacy emitters) is written at info."""
        stream = io.StringIO()
        observer = make_observer(stream, level=LogLevel.info, fmt="text")
        publish = cast("Callable[[LogEvent], None]", observer)
        publish({"log_format": "legacy {x}", "x": 1})
        self.assertEqual(stream.getvalue(), "<6>legacy 1\n")

    def test_unformattable_event_still_logged(self) -> None:
        """A format string naming a missing key still produces a line rather
        than an exception inside the log system."""
        log, stream = _logger()
        log.info("no such {key}")
        self.assertTrue(stream.getvalue().startswith("<6>Unable to format event"))
        self.assertEqual(len(stream.getvalue().splitlines()), 1)


class FilterTests(SynchronousTestCase):
    def test_below_level_dropped(self) -> None:
        """Events below the configured level are not written (config log.level)."""
        log, stream = _logger(level=LogLevel.warn)
        log.debug("d")
        log.info("i")
        log.warn("w")
        log.error("e")
        log.critical("c")
        self.assertEqual(stream.getvalue(), "<4>w\n<3>e\n<2>c\n")

    def test_debug_level_keeps_all(self) -> None:
        """At debug every level is written, per-lookup answers included."""
        log, stream = _logger(level=LogLevel.debug)
        log.debug("d")
        self.assertEqual(stream.getvalue(), "<7>d\n")

    def test_filter_applies_to_json(self) -> None:
        """The level filter applies to the JSON format too."""
        log, stream = _logger(level=LogLevel.error, fmt="json")
        log.info("i")
        self.assertEqual(stream.getvalue(), "")

    def test_level_by_name(self) -> None:
        """The level may be given by its config name ("warn"), as log.level
        holds it."""
        stream = io.StringIO()
        log = Logger(observer=make_observer(stream, level="warn", fmt="text"))
        log.info("i")
        log.warn("w")
        self.assertEqual(stream.getvalue(), "<4>w\n")

    def test_unknown_level_name_rejected(self) -> None:
        """An unknown level name is an error, not a silent default."""
        self.assertRaises(
            InvalidLogLevelError,
            make_observer,
            io.StringIO(),
            level="verbose",
            fmt="text",
        )

    def test_unknown_format_rejected(self) -> None:
        """A format other than text or json is a programming error."""
        self.assertRaises(
            ValueError,
            make_observer,
            io.StringIO(),
            level=LogLevel.info,
            fmt="xml",
        )


ISO_UTC = r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z"


class JsonFormatTests(SynchronousTestCase):
    def test_time_is_the_events_in_utc(self) -> None:
        """Each JSON line carries the event's own time (Twisted's log_time)
        as ISO 8601 in UTC to the millisecond (issue 11: JSON lines had no
        time); an event without one gets null."""
        stream = io.StringIO()
        observer = make_observer(stream, level=LogLevel.info, fmt="json")
        base = {"log_level": LogLevel.info, "log_format": "x"}
        observer({**base, "log_time": 1_780_000_000.25})
        observer(dict(base))
        first, second = (json.loads(line) for line in stream.getvalue().splitlines())
        self.assertEqual(first["time"], "2026-05-28T20:26:40.250Z")
        self.assertIsNone(second["time"])

    def test_one_object_per_line_with_keys(self) -> None:
        """JSON lines carry priority, level, namespace, message and the
        event's own keys, never the private log_* ones (style.md section 4)."""
        log, stream = _logger(fmt="json")
        log.info(
            "policy updated domain={domain} id={policy_id}",
            domain="example.com",
            policy_id="20240101",
            max_age=86400,
        )
        text = stream.getvalue()
        self.assertEqual(text.count("\n"), 1)
        self.assertTrue(text.endswith("\n"))
        record = json.loads(text)
        self.assertRegex(record.pop("time"), ISO_UTC)
        self.assertEqual(
            record,
            {
                "priority": 6,
                "level": "info",
                "namespace": "postfix_mtasts.test",
                "message": "policy updated domain=example.com id=20240101",
                "domain": "example.com",
                "policy_id": "20240101",
                "max_age": 86400,
            },
        )

    def test_values_made_json_safe(self) -> None:
        """Values JSON cannot hold (objects, NaN, tuples) are written as repr;
        plain strings, numbers, booleans and None stay as they are."""
        log, stream = _logger(fmt="json")
        log.warn(
            "x",
            answer=("OK", 1),
            ratio=float("nan"),
            elapsed_ms=1.5,
            ok=True,
            reason=None,
        )
        record = json.loads(stream.getvalue())
        self.assertEqual(record["answer"], "('OK', 1)")
        self.assertEqual(record["ratio"], "nan")
        self.assertEqual(record["elapsed_ms"], 1.5)
        self.assertIs(record["ok"], True)
        self.assertIsNone(record["reason"])

    def test_newline_stays_inside_json(self) -> None:
        """A newline in a message is escaped by JSON, so one event = one line."""
        log, stream = _logger(fmt="json")
        log.warn("bad {request}", request="a\nb")
        text = stream.getvalue()
        self.assertEqual(text.count("\n"), 1)
        self.assertEqual(json.loads(text)["message"], "bad a\nb")

    def test_event_keys_do_not_override_fixed_fields(self) -> None:
        """An event key named like a fixed field (message, priority) cannot
        replace it."""
        log, stream = _logger(fmt="json")
        log.info("real", message="fake", priority=0, namespace="fake")
        record = json.loads(stream.getvalue())
        self.assertEqual(
            (record["message"], record["priority"], record["namespace"]),
            ("real", 6, "postfix_mtasts.test"),
        )

    def test_failure_has_traceback(self) -> None:
        """A failure event carries its traceback in the "traceback" key."""
        log, stream = _logger(fmt="json")
        log.failure("crash", _failure())
        record = json.loads(stream.getvalue())
        self.assertEqual((record["priority"], record["level"]), (2, "critical"))
        self.assertIn("ZeroDivisionError", record["traceback"])


class StartLoggingTests(SynchronousTestCase):
    def test_begins_global_logging_without_stdio_redirect(self) -> None:
        """start_logging hands the observer to the global log beginner and
        leaves sys.stdout/sys.stderr alone."""
        calls: list[tuple[list[ILogObserver], bool]] = []

        def record(
            observers: list[ILogObserver],
            discardBuffer: bool = False,  # noqa: N803 -- Twisted's signature
            redirectStandardIO: bool = True,  # noqa: N803
        ) -> None:
            calls.append((list(observers), redirectStandardIO))

        self.patch(globalLogBeginner, "beginLoggingTo", record)
        observer = make_observer(io.StringIO(), level=LogLevel.info, fmt="text")
        start_logging(observer)
        self.assertEqual(calls, [([observer], False)])


class TwistedChatterTests(SynchronousTestCase):
    def test_twisted_info_hidden_unless_debug(self) -> None:
        """Twisted's own info lines are dropped at level info, shown at debug."""
        for level, expected in (
            ("info", ""),
            ("debug", "<6>Port closed\n<6>Starting factory\n"),
        ):
            stream = io.StringIO()
            observer = make_observer(stream, level=level, fmt="text")
            Logger(namespace="twisted.internet.tcp", observer=observer).info(
                "Port closed"
            )
            observer(
                {
                    "log_namespace": "log_legacy",
                    "log_level": LogLevel.info,
                    "log_format": "Starting factory",
                }
            )
            self.assertEqual(stream.getvalue(), expected)

    def test_twisted_warnings_kept(self) -> None:
        """Twisted's warnings still reach the journal at level info."""
        stream = io.StringIO()
        observer = make_observer(stream, level="info", fmt="text")
        Logger(namespace="twisted.internet.tcp", observer=observer).warn("trouble")
        self.assertEqual(stream.getvalue(), "<4>trouble\n")


def parse_entry(data: bytes) -> dict[str, str]:
    """One native-protocol datagram (sd_journal_sendv(3)) as a dict."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        eq = data.find(b"=", i, end)
        if eq != -1:
            fields[data[i:eq].decode()] = data[eq + 1 : end].decode()
            i = end + 1
            continue
        (size,) = struct.unpack("<Q", data[end + 1 : end + 9])
        value = data[end + 9 : end + 9 + size]
        if data[end + 9 + size : end + 10 + size] != b"\n":
            raise AssertionError(f"no newline after the value at {i}")
        fields[data[i:end].decode()] = value.decode()
        i = end + 10 + size
    return fields


class NativeJournalTests(SynchronousTestCase):
    """Under systemd, stdout is the journal (JOURNAL_STREAM names it), and
    journald splits a stream at newlines: each event goes to journald's
    socket instead, one entry with its traceback inside (issue 11)."""

    def setUp(self) -> None:
        directory = tempfile.TemporaryDirectory(prefix="journal-")
        self.addCleanup(directory.cleanup)
        self.socket_path = os.path.join(directory.name, "socket")
        self.journald = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.journald.close)
        self.journald.bind(self.socket_path)
        self.journald.setblocking(False)
        self.stream = open(  # noqa: SIM115 -- closed by the cleanup
            os.path.join(directory.name, "stdout"), "w", encoding="utf-8"
        )
        self.addCleanup(self.stream.close)
        info = os.fstat(self.stream.fileno())
        self.environ = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}

    def _logger(self, environ: dict[str, str] | None = None) -> Logger:
        observer = make_observer(
            self.stream,
            level=LogLevel.debug,
            fmt="text",
            environ=self.environ if environ is None else environ,
            journal_socket=self.socket_path,
        )
        return Logger(namespace="postfix_mtasts.test", observer=observer)

    def _entries(self) -> list[dict[str, str]]:
        entries = []
        while True:
            try:
                entries.append(parse_entry(self.journald.recv(1 << 20)))
            except BlockingIOError:
                return entries

    def _written(self) -> str:
        self.stream.flush()
        with open(self.stream.name, encoding="utf-8") as f:
            return f.read()

    def test_traceback_is_one_entry(self) -> None:
        """A failure is one entry: its message, then its traceback on the
        following lines of the same MESSAGE, at its priority, under the
        unit's identifier; nothing is written to the stream."""
        log = self._logger()
        log.failure("lookup crashed", failure=_failure(), level=LogLevel.error)
        (entry,) = self._entries()
        lines = entry["MESSAGE"].split("\n")
        self.assertEqual(lines[0], "lookup crashed")
        self.assertIn("Traceback (most recent call last):", lines[1])
        self.assertIn("ZeroDivisionError", lines[-1])
        self.assertEqual(entry["PRIORITY"], "3")
        self.assertEqual(entry["SYSLOG_IDENTIFIER"], "postfix-mtasts")
        self.assertEqual(self._written(), "")

    def test_plain_events_go_there_too(self) -> None:
        """Every event takes the same road, so entries keep their order."""
        log = self._logger()
        log.info("one {n}", n=1)
        log.warn("two")
        entries = self._entries()
        self.assertEqual(
            [(e["MESSAGE"], e["PRIORITY"]) for e in entries],
            [("one 1", "6"), ("two", "4")],
        )

    def test_legacy_err_is_reason_and_traceback(self) -> None:
        """A twisted.python.log.err event (Twisted's react: "main function
        encountered error") carries its traceback in its text: the entry
        holds the reason and the traceback once, not an escaped copy."""
        observer = make_observer(
            self.stream,
            level=LogLevel.info,
            fmt="text",
            environ=self.environ,
            journal_socket=self.socket_path,
        )
        failure = _failure()
        observer(
            {
                "isError": 1,
                "failure": failure,
                "why": "main function encountered error",
                "log_format": "{log_text}",
                "log_text": "main function encountered error\n" + "Traceback...",
                "log_level": LogLevel.critical,
                "log_namespace": "log_legacy",
            }
        )
        (entry,) = self._entries()
        message = entry["MESSAGE"]
        self.assertTrue(message.startswith("main function encountered error\n"))
        self.assertEqual(message.count("Traceback (most recent call last)"), 1)
        self.assertNotIn("\\n", message)
        self.assertEqual(entry["PRIORITY"], "2")

    def test_journald_away_one_escaped_line(self) -> None:
        """When journald does not take the entry, the event is one stream
        line, its traceback's newlines escaped: still one journal entry."""
        self.journald.close()
        os.unlink(self.socket_path)
        log = self._logger()
        log.failure("lookup crashed", failure=_failure())
        (line,) = self._written().splitlines()
        self.assertTrue(line.startswith("<2>lookup crashed\\nTraceback"), line)

    def test_other_stream_keeps_lines(self) -> None:
        """A stream that is not the journal (a terminal, a file, a pipe)
        gets prefixed lines as before, and journald's socket nothing."""
        log = self._logger({"JOURNAL_STREAM": "1:2"})
        log.info("hello")
        self.assertEqual(self._written(), "<6>hello\n")
        self.assertEqual(self._entries(), [])

    def test_report_crash(self) -> None:
        """report_crash: one critical entry with the traceback (the console
        script's last resort)."""
        report_crash(
            self.stream,
            _failure(),
            environ=self.environ,
            journal_socket=self.socket_path,
        )
        (entry,) = self._entries()
        self.assertEqual(entry["PRIORITY"], "2")
        self.assertTrue(entry["MESSAGE"].endswith("division by zero"), entry)


class EncodeEntryTests(SynchronousTestCase):
    def test_native_encoding(self) -> None:
        """Single-line values as KEY=value; a value with a newline as KEY,
        its 64-bit little-endian length and the bytes; names journald would
        refuse are left out; long values are cut (sd_journal_sendv(3))."""
        data = encode_entry(
            [
                ("MESSAGE", "a\nb"),
                ("PRIORITY", "3"),
                ("lower", "x"),
                ("_TRUSTED", "x"),
                ("LONG", "y" * (MAX_VALUE_BYTES + 10)),
            ]
        )
        self.assertTrue(
            data.startswith(b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\nPRIORITY=3\n")
        )
        fields = parse_entry(data)
        self.assertEqual(set(fields), {"MESSAGE", "PRIORITY", "LONG"})
        self.assertEqual(len(fields["LONG"]), MAX_VALUE_BYTES)
        self.assertTrue(fields["LONG"].endswith("..."))

    def test_stream_is_journal(self) -> None:
        """Only a JOURNAL_STREAM of the stream's own device and inode
        counts; a StringIO (no descriptor) never does."""
        with tempfile.TemporaryFile("w") as f:
            info = os.fstat(f.fileno())
            mine = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
            self.assertTrue(stream_is_journal(f, mine))
            self.assertFalse(stream_is_journal(f, {"JOURNAL_STREAM": "0:0"}))
            self.assertFalse(stream_is_journal(f, {"JOURNAL_STREAM": "x"}))
            self.assertFalse(stream_is_journal(f, {}))
        self.assertFalse(stream_is_journal(io.StringIO(), mine))
