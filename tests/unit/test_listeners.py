"""Listen queues sized for the connection limit (issue 9; spec F9, G6)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.answer import Answer
from postfix_mtasts.core.config import ListenerConfig, ServerConfig
from postfix_mtasts.core.config_listeners import listen_backlog, with_backlog
from postfix_mtasts.listeners import ListenerError, listener_service


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


class OwnershipTests(SynchronousTestCase):
    def test_unknown_group_fails_before_binding(self) -> None:
        """A group (or owner) that does not exist is a configuration error
        naming the socket and the group, raised before anything is bound
        (F7: the socket must never listen with the wrong group)."""
        reactor = MemoryReactor()
        for key in ("group", "owner"):
            name = "no-such-name-4711"
            listener = ListenerConfig(
                "unix:/run/x/m.sock:mode=660",
                owner=name if key == "owner" else None,
                group=name if key == "group" else None,
            )
            with self.assertRaises(ListenerError) as raised:
                listener_service(listener, ServerConfig(), lookup, reactor)
            self.assertTrue(raised.exception.config_problem)
            message = str(raised.exception)
            self.assertIn("/run/x/m.sock", message)
            self.assertIn(f"{key} 'no-such-name-4711'", message)
            self.assertNotIn("\n", message)
        self.assertEqual(reactor.unixServers, [])

    def test_chown_failure_stops_the_start(self) -> None:
        """A chown the system refuses raises from privilegedStartService (an
        OS error, not a configuration one) and closes the port, instead of
        a 'started' daemon with the wrong group and a traceback at
        shutdown (issue 11; F7)."""
        reactor = MemoryReactor()
        listener = ListenerConfig("unix:/nonexistent/m.sock", group="root")
        service = listener_service(listener, ServerConfig(), lookup, reactor)
        with self.assertRaises(ListenerError) as raised:
            service.privilegedStartService()
        self.assertFalse(raised.exception.config_problem)
        self.assertIn("unix socket /nonexistent/m.sock", str(raised.exception))
        self.assertIn("group='root'", str(raised.exception))
        self.assertEqual(len(reactor.unixServers), 1)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_systemd_socket_not_passed(self) -> None:
        """A systemd: endpoint whose socket systemd did not pass is one
        configuration error naming the endpoint, not a traceback."""
        listener = ListenerConfig("systemd:domain=INET:name=nosuchname")
        with self.assertRaises(ListenerError) as raised:
            listener_service(listener, ServerConfig(), lookup, MemoryReactor())
        self.assertTrue(raised.exception.config_problem)
        self.assertIn("systemd:domain=INET:name=nosuchname", str(raised.exception))
