"""systemd notification: message text, environment checks and the
heartbeat's timing (sd_notify(3); issue 11; spec E1, F7)."""

from __future__ import annotations

import os
import socket

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core import sdmessage
from postfix_mtasts.sdnotify import Heartbeat, Notifier


class AddressTests(SynchronousTestCase):
    def test_paths_and_abstract_names(self) -> None:
        """NOTIFY_SOCKET is an absolute path or an @abstract name (sent to
        as a leading NUL); anything else, or too long for sun_path, is not
        used."""
        cases: dict[str | None, str | None] = {
            "/run/systemd/notify": "/run/systemd/notify",
            "@/org/freedesktop/systemd1/notify/1": "\0/org/freedesktop/systemd1/notify/1",
            "relative/sock": None,
            "vsock:2:1234": None,
            "@": None,
            "": None,
            None: None,
            "/" + "a" * 106: "/" + "a" * 106,
            "/" + "a" * 107: None,
            "/run/a\0b": None,
        }
        for value, expected in cases.items():
            self.assertEqual(sdmessage.notify_address(value), expected, value)


class WatchdogIntervalTests(SynchronousTestCase):
    def test_half_of_watchdog_usec(self) -> None:
        """Pings go at half WATCHDOG_USEC (sd_watchdog_enabled(3))."""
        self.assertEqual(
            sdmessage.watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, 7), 15.0
        )
        self.assertEqual(
            sdmessage.watchdog_interval_s({"WATCHDOG_USEC": "200000"}, 7), 0.1
        )

    def test_pid_must_be_ours(self) -> None:
        """WATCHDOG_PID naming another process means the watchdog is not
        ours to feed (a child inherited the environment)."""
        env = {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "7"}
        self.assertEqual(sdmessage.watchdog_interval_s(env, 7), 0.1)
        self.assertIsNone(sdmessage.watchdog_interval_s(env, 8))
        env["WATCHDOG_PID"] = "x"
        self.assertIsNone(sdmessage.watchdog_interval_s(env, 7))

    def test_junk_means_no_watchdog(self) -> None:
        """Missing, zero, negative, non-decimal or absurd values ask for no
        pings rather than failing the start."""
        for value in ("", "0", "-5", "1e6", " 200000", "٣٠٠", "9" * 40, "86400000001"):
            self.assertIsNone(
                sdmessage.watchdog_interval_s({"WATCHDOG_USEC": value}, 7), value
            )
        self.assertIsNone(sdmessage.watchdog_interval_s({}, 7))


class MessageTests(SynchronousTestCase):
    def test_messages(self) -> None:
        """Each message is KEY=value lines as sd_notify(3) defines them."""
        self.assertEqual(sdmessage.ready("ok"), b"READY=1\nSTATUS=ok\n")
        self.assertEqual(sdmessage.ready(), b"READY=1\n")
        self.assertEqual(sdmessage.watchdog(), b"WATCHDOG=1\n")
        self.assertEqual(sdmessage.stopping(), b"STOPPING=1\nSTATUS=stopping\n")
        self.assertEqual(
            sdmessage.reloading(123456, "reloading"),
            b"RELOADING=1\nMONOTONIC_USEC=123456\nSTATUS=reloading\n",
        )

    def test_status_is_one_bounded_line(self) -> None:
        """A STATUS= value cannot add lines (no READY=1 smuggled in by an
        endpoint string) and is cut at MAX_STATUS_CHARS."""
        self.assertEqual(
            sdmessage.status("a\nREADY=1\r\x00b"), b"STATUS=a READY=1  b\n"
        )
        long = sdmessage.status("x" * 1000)
        self.assertEqual(len(long), len("STATUS=\n") + sdmessage.MAX_STATUS_CHARS)

    def test_status_line(self) -> None:
        """The STATUS= line says how many policies are cached and where the
        daemon listens."""
        self.assertEqual(
            sdmessage.status_line(1, ["tcp:8461:interface=127.0.0.1"]),
            "1 policy cached; listening on tcp:8461:interface=127.0.0.1",
        )
        self.assertEqual(
            sdmessage.status_line(100_000, ["tcp:1", "unix:/run/s"]),
            "100000 policies cached; listening on tcp:1, unix:/run/s",
        )


class NotifierTests(SynchronousTestCase):
    def test_ready_carries_the_current_status(self) -> None:
        """READY=1 goes with the STATUS= that status_source gives now."""
        sent: list[bytes] = []
        notifier = Notifier(sent.append)
        notifier.status_source = lambda: "3 policies cached; listening on tcp:1"
        notifier.ready()
        notifier.status()
        self.assertEqual(
            sent,
            [
                b"READY=1\nSTATUS=3 policies cached; listening on tcp:1\n",
                b"STATUS=3 policies cached; listening on tcp:1\n",
            ],
        )

    def test_reload_brackets(self) -> None:
        """A reload is RELOADING=1 with the monotonic time, then READY=1
        with a fresh STATUS= (systemd >= 253's Type=notify-reload order)."""
        sent: list[bytes] = []
        notifier = Notifier(sent.append)
        notifier.status_source = lambda: "2 policies cached; listening on tcp:1"
        notifier.reloading(5_000_000)
        notifier.ready()
        self.assertEqual(
            sent,
            [
                b"RELOADING=1\nMONOTONIC_USEC=5000000\nSTATUS=reloading\n",
                b"READY=1\nSTATUS=2 policies cached; listening on tcp:1\n",
            ],
        )

    def test_without_systemd_nothing_is_sent(self) -> None:
        """Without NOTIFY_SOCKET the notifier is off and silent."""
        with capturedLogs() as events:
            notifier = Notifier.from_environ({})
            notifier.ready()
            notifier.watchdog()
        self.assertFalse(notifier.enabled)
        self.assertEqual(events, [])

    def test_unusable_socket_warns_once(self) -> None:
        """A NOTIFY_SOCKET of a kind not spoken here is one warning, not a
        failed start."""
        with capturedLogs() as events:
            notifier = Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:9"})
        self.assertFalse(notifier.enabled)
        self.assertEqual(len(events), 1)
        self.assertIn("vsock:2:9", events[0]["log_format"].format(**events[0]))

    def test_send_failures_logged_once_never_raised(self) -> None:
        """A send that fails (systemd gone, socket full) is logged once and
        never stops the daemon."""

        def refuse(message: bytes) -> None:
            raise ConnectionRefusedError(111, "Connection refused")

        notifier = Notifier(refuse)
        with capturedLogs() as events:
            notifier.ready()
            notifier.watchdog()
            notifier.stopping()
        self.assertEqual(len(events), 1)
        self.assertIn("Connection refused", events[0]["error"])

    def test_datagram_reaches_an_abstract_socket(self) -> None:
        """The real sender delivers one datagram per message to an
        @abstract NOTIFY_SOCKET."""
        name = f"@postfix-mtasts-test-{os.getpid()}"
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(receiver.close)
        receiver.bind("\0" + name[1:])
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": name})
        notifier.ready()
        notifier.watchdog()
        receiver.settimeout(5)
        self.assertEqual(receiver.recv(4096), b"READY=1\n")
        self.assertEqual(receiver.recv(4096), b"WATCHDOG=1\n")


class HeartbeatTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.sent: list[bytes] = []
        self.clock = Clock()
        self.notifier = Notifier(self.sent.append)
        self.notifier.status_source = lambda: "s"

    def test_watchdog_pings_at_the_interval(self) -> None:
        """WATCHDOG=1 goes at once and then every interval, driven by the
        reactor's clock: a wedged reactor stops them."""
        beat = Heartbeat(self.notifier, self.clock, watchdog_s=0.1)
        beat.start_watchdog()
        self.assertEqual(self.sent, [b"WATCHDOG=1\n"])
        self.clock.advance(0.05)
        self.assertEqual(len(self.sent), 1)
        self.clock.pump([0.05] * 10)
        self.assertEqual(self.sent, [b"WATCHDOG=1\n"] * 6)

    def test_no_watchdog_asked_no_pings(self) -> None:
        """Without WATCHDOG_USEC nothing is pinged."""
        beat = Heartbeat(self.notifier, self.clock, watchdog_s=None)
        beat.start_watchdog()
        self.clock.advance(3600)
        self.assertEqual(self.sent, [])

    def test_status_refreshed_every_minute(self) -> None:
        """STATUS= is sent again every status_every_s (not at start: READY=1
        carried it)."""
        beat = Heartbeat(self.notifier, self.clock, watchdog_s=None)
        beat.start_status()
        self.assertEqual(self.sent, [])
        self.clock.advance(59)
        self.assertEqual(self.sent, [])
        self.clock.advance(1)
        self.clock.advance(60)
        self.assertEqual(self.sent, [b"STATUS=s\n"] * 2)

    def test_stop_ends_both(self) -> None:
        """At shutdown the pings and status lines stop."""
        beat = Heartbeat(self.notifier, self.clock, watchdog_s=1.0)
        beat.start_watchdog()
        beat.start_status()
        beat.stop()
        self.clock.advance(3600)
        self.assertEqual(self.sent, [b"WATCHDOG=1\n"])
