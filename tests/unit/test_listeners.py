"""Listen queues sized for the connection limit (issue 9; spec F9, G6)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.config import ListenerConfig, ServerConfig
from postfix_mtasts.core.config_listeners import listen_backlog, with_backlog
from postfix_mtasts.listeners import listener_service


def lookup(map_name: str, key: bytes, source: object) -> Answer:
    return Answer.notfound()


class BacklogTests(SynchronousTestCase):
    def test_backlog_follows_the_limit(self) -> None:
        """The queue holds max_connections connects, at least Twisted's 50 and
        at most Linux's default somaxconn, 4096 (F9)."""
        self.assertEqual(
            [listen_backlog(n) for n in (1, 50, 512, 4096, 100_000)],
            [50, 50, 512, 4096, 4096],
        )

    def test_backlog_added_unless_given(self) -> None:
        """tcp:, tcp6: and unix: endpoints get ``backlog=``; one that names a
        backlog (by keyword or position) keeps it; systemd: sockets are sized
        by systemd."""
        cases = {
            "tcp:8461:interface=127.0.0.1": "tcp:8461:interface=127.0.0.1:backlog=9",
            "tcp6:8461:interface=\\:\\:1": "tcp6:8461:interface=\\:\\:1:backlog=9",
            "unix:/run/m.sock:mode=660": "unix:/run/m.sock:mode=660:backlog=9",
            "tcp:8461:backlog=7": "tcp:8461:backlog=7",
            "tcp:8461:127.0.0.1:7": "tcp:8461:127.0.0.1:7",
            "tcp6:8461:7": "tcp6:8461:7",
            "unix:/run/m.sock:660:7": "unix:/run/m.sock:660:7",
            "systemd:domain=INET:index=0": "systemd:domain=INET:index=0",
        }
        for endpoint, expected in cases.items():
            self.assertEqual(with_backlog(endpoint, 9), expected, endpoint)

    def test_backlog_reaches_the_reactor(self) -> None:
        """A listener's queue reaches listenTCP/listenUNIX sized for the
        connection limit (512 by default: opening 512 connections at once
        no longer waits for SYN retransmits, issue 9)."""
        reactor = MemoryReactor()
        for endpoint in ("tcp:8461:interface=127.0.0.1", "unix:/nonexistent/m.sock"):
            service = listener_service(
                ListenerConfig(endpoint), ServerConfig(), lookup, reactor
            )
            service.privilegedStartService()
        self.assertEqual(reactor.tcpServers[0][2], 512)
        self.assertEqual(reactor.unixServers[0][2], 512)
        service = listener_service(
            ListenerConfig("tcp:8462:interface=127.0.0.1"),
            ServerConfig(max_connections=10_000),
            lookup,
            reactor,
        )
        service.privilegedStartService()
        self.assertEqual(reactor.tcpServers[1][2], 4096)
