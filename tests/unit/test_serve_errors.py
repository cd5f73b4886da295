"""Tests for how ``postfix-mtasts serve`` reports a listener that cannot
bind: exit status 1 for a port in use (a restart may succeed), 2 for an
address the configuration got wrong, one error event naming the address
(issue 11; F7 listeners)."""

from __future__ import annotations

import errno
import os

from twisted.internet.error import CannotListenError
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cli.serve import _cannot_listen


def _error(interface: str, port: object, code: int) -> CannotListenError:
    return CannotListenError(interface, port, OSError(code, os.strerror(code)))


class CannotListenTests(SynchronousTestCase):
    def test_port_in_use_is_runtime(self) -> None:
        """EADDRINUSE: exit status 1 and one error naming the address."""
        with capturedLogs() as events:
            status = _cannot_listen(_error("127.0.0.1", 8461, errno.EADDRINUSE))
        self.assertEqual(status, 1)
        (event,) = events
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertEqual(
            formatEvent(event),
            "cannot listen on 127.0.0.1:8461: Address already in use",
        )

    def test_wrong_address_is_configuration(self) -> None:
        """An address this host does not have, or a privileged port: a
        configuration error, exit status 2, so systemd does not retry."""
        for error, where in (
            (_error("192.0.2.1", 8461, errno.EADDRNOTAVAIL), "192.0.2.1:8461"),
            (_error("", 25, errno.EACCES), "25"),
            (_error("", "/run/x.sock", errno.EACCES), "/run/x.sock"),
        ):
            with capturedLogs() as events:
                self.assertEqual(_cannot_listen(error), 2)
            (event,) = events
            self.assertEqual(event["log_level"], LogLevel.error)
            self.assertTrue(
                formatEvent(event).startswith(
                    f"configuration error: cannot listen on {where}: "
                ),
                formatEvent(event),
            )
