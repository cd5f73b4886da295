"""Redis replies are input (issue 9, Build 1): a reply over MAX_REPLY_BYTES
or one txredisapi cannot parse ends the connection with one warning instead
of being buffered whole or raising out of dataReceived.  Runs txredisapi's
real protocol, guarded, over a StringTransport."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import txredisapi
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cache.redis_wire import MAX_REPLY_BYTES, guarded_protocol


class GuardedProtocolTests(SynchronousTestCase):
    def connect(self) -> tuple[Any, StringTransport]:
        protocol = guarded_protocol(txredisapi.RedisProtocol)(
            "utf-8", convertNumbers=False
        )
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def warnings(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["log_level"] is LogLevel.warn]

    def test_reply_within_bounds(self) -> None:
        """A well-formed GET reply reaches the caller unchanged."""
        protocol, transport = self.connect()
        d = protocol.get("k")
        protocol.dataReceived(b"$5\r\nhello\r\n")
        self.assertEqual(self.successResultOf(d), "hello")
        self.assertFalse(transport.disconnecting)

    def test_endless_bulk_is_cut_off(self) -> None:
        """A bulk announcing 2**63 bytes is read no further than
        MAX_REPLY_BYTES: the connection is aborted with one warning and the
        caller's command fails (an outage, handled by the link)."""
        protocol, transport = self.connect()
        d = protocol.get("k")
        chunk = b"x" * 65536
        with capturedLogs() as events:
            protocol.dataReceived(b"$9223372036854775807\r\n")
            for _ in range(MAX_REPLY_BYTES // len(chunk) + 2):
                protocol.dataReceived(chunk)
        self.assertTrue(transport.disconnecting)
        self.assertLessEqual(len(protocol.bulk_buffer), MAX_REPLY_BYTES)
        (warning,) = self.warnings(events)
        self.assertIn("over", warning["why"])
        protocol.connectionLost(None)
        self.failureResultOf(d)

    def test_unparseable_reply_is_one_warning(self) -> None:
        """A status line that is not UTF-8 made txredisapi raise out of
        dataReceived (an unhandled error with a traceback); now it closes
        the connection with one warning and nothing escapes."""
        protocol, transport = self.connect()
        protocol.get("k")
        with capturedLogs() as events:
            protocol.dataReceived(b"+\xff\xfe not UTF-8\r\n")
            protocol.dataReceived(b"+OK\r\n")  # ignored after the refusal
        self.assertTrue(transport.disconnecting)
        (warning,) = self.warnings(events)
        self.assertIn("unreadable", warning["why"])
