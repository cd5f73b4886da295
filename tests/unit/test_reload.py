"""SIGHUP reload against a whole daemon on a fake reactor (issue 11).

The daemon is the real one (``start_daemon``) over a MemoryReactorClock
that records listening ports and connections, so a test sees which sockets
a reload opens or closes and that it asks the network nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError, ProcessDone
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.connections import LookupFactory
from postfix_mtasts.core.answer import Answer, Status
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.core.policy import Mode
from postfix_mtasts.journal import ObserverSwitch
from postfix_mtasts.reload import Reloader
from postfix_mtasts.service import Daemon, start_daemon
from postfix_mtasts.sharing import PolicySharing

from .fakes import FakeStore, make_policy

CONFIG = """
[[listener]]
endpoint = "tcp:8461:interface=127.0.0.1"
{listeners}
[maps.postfix]
dane = false
{map}
[dns]
nameservers = ["127.0.0.1"]
{dns}
[store]
path = "{store}"
[control]
socket = ""
{extra}
"""


class _Port:
    def __init__(self, port: int) -> None:
        self.port, self.stopped = port, False

    def stopListening(self) -> None:
        self.stopped = True

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", self.port)


class FakeReactor(MemoryReactorClock):
    """Records ports (``ports``); ``busy`` ports cannot be bound."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[int, tuple[_Port, Factory[Any]]] = {}
        self.busy: set[int] = set()
        self.udp: list[object] = []  # DNS queries would start here
        self.children: list[Any] = []  # postconf runs, ended by the test

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        if port in self.busy:
            raise CannotListenError(interface, port, OSError("Address in use"))
        listening = _Port(port)
        self.ports[port] = (listening, factory)
        return listening

    def listenUDP(self, port: int, protocol: object, *args: Any) -> Any:
        self.udp.append(protocol)
        raise CannotListenError("", port, OSError("no network in unit tests"))

    def spawnProcess(
        self, protocol: Any, executable: str, *args: Any, **kw: Any
    ) -> None:
        self.children.append(protocol)

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kw: Any) -> None:
        f(*args, **kw)


def socketmap_request(key: str, name: str = "postfix") -> bytes:
    payload = f"{name} {key}".encode()
    return b"%d:%s," % (len(payload), payload)


class ReloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.reactor.advance(1_000_000)
        fd, self.path = tempfile.mkstemp(suffix=".toml")
        os.close(fd)
        self.addCleanup(os.unlink, self.path)
        self.write()
        self.switch = ObserverSwitch(cast(ILogObserver, lambda event: None))
        self.reloader = Reloader(self.path, self.reactor, logging=self.switch)
        from postfix_mtasts.core.config import load

        self.config = load(self.path)
        self.daemon: Daemon = self.successResultOf(
            Deferred.fromCoroutine(start_daemon(self.config, self.reactor))
        )
        self.addCleanup(self.daemon.stopService)  # its log observer too
        self.reloader.started(self.daemon, self.config)
        entry = CacheEntry.fetched(
            "testing.example", "1", make_policy(Mode.TESTING), self.reactor.seconds()
        )
        self.daemon.lookup.admin.preload([entry])
        self.entry = entry

    def write(self, **parts: str) -> None:
        values = {"listeners": "", "map": "", "dns": "", "store": "", "extra": ""}
        values.update(parts)
        with open(self.path, "w") as f:
            f.write(CONFIG.format(**values))

    def reload(self) -> list[LogEvent]:
        with capturedLogs() as events:
            self.reloader.request()
        return list(events)

    def ask(self, key: str = "testing.example", name: str = "postfix") -> Answer:
        answer = self.daemon.lookup.front_door.lookup(name, key.encode())
        self.assertIsInstance(answer, Answer)  # from the cache, at once
        assert isinstance(answer, Answer)
        return answer

    def lines(self, events: list[LogEvent], level: LogLevel) -> list[str]:
        return [formatEvent(e) for e in events if e.get("log_level") is level]

    def test_map_change_applies_keeping_the_cache(self) -> None:
        """Flipping strict_testing changes the answer for a cached
        testing-mode domain at once, from the same cache entry, with no
        DNS or HTTPS traffic; one info line names the key (D9, G.6, E2)."""
        self.assertIs(self.ask().status, Status.NOTFOUND)
        self.write(map="strict_testing = true")
        events = self.reload()
        answer = self.ask()
        self.assertIs(answer.status, Status.OK)
        self.assertIn("secure", str(answer.value))
        self.assertIs(self.daemon.lookup.domains.peek("testing.example"), self.entry)  # type: ignore[union-attr]
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(self.reactor.udp, [])
        infos = self.lines(events, LogLevel.info)
        self.assertEqual(len(infos), 1, infos)
        self.assertIn("configuration reloaded", infos[0])
        self.assertIn("maps.postfix.strict_testing", infos[0])
        self.assertEqual(self.lines(events, LogLevel.error), [])

    def test_broken_files_keep_the_running_configuration(self) -> None:
        """TOML syntax, an unknown key, a bad value, an unreadable CA file,
        a listener that cannot bind: each keeps the running configuration
        whole (answers, listeners) with one error line naming the key,
        file or endpoint."""
        self.reactor.busy.add(8499)
        broken = {
            "invalid TOML": {"extra": "[fetch\n"},
            "fetch.bogus: unknown key": {"extra": "[fetch]\nbogus = 1\n"},
            "maps.postfix.dns_failure": {"map": "dns_failure = 'maybe'"},
            "fetch.ca_file: /nonexistent/ca.pem: cannot read": {
                "extra": "[fetch]\nca_file = '/nonexistent/ca.pem'\n"
            },
            "listener[2].endpoint: cannot listen on tcp:8499": {
                "listeners": '[[listener]]\nendpoint = "tcp:8498"\n'
                '[[listener]]\nendpoint = "tcp:8499"\n',
                "map": "strict_testing = true",
            },
        }
        running = self.reloader.config
        for needle, parts in broken.items():
            self.write(**parts)
            events = self.reload()
            errors = self.lines(events, LogLevel.error)
            self.assertEqual(len(errors), 1, (needle, errors))
            self.assertIn("the running configuration is kept", errors[0])
            self.assertIn(needle, errors[0])
            self.assertIs(self.reloader.config, running)
            self.assertIs(self.ask().status, Status.NOTFOUND)
        # the listener bound before the one that failed was closed again
        self.assertTrue(self.reactor.ports[8498][0].stopped)
        self.assertFalse(self.reactor.ports[8461][0].stopped)
        self.assertEqual(
            sorted(self.daemon.listeners), ["tcp:8461:interface=127.0.0.1"]
        )

    def test_listener_added_and_removed(self) -> None:
        """An added listener listens; a removed one stops listening while
        its open connection is still answered; a kept one is untouched
        (same port object, never stopped) (G6)."""
        two = '[[listener]]\nendpoint = "tcp:8462:interface=127.0.0.1"\n'
        self.write(listeners=two)
        self.reload()
        port_8461 = self.reactor.ports[8461][0]
        old_port, old_factory = self.reactor.ports[8462]
        conn = old_factory.buildProtocol(None)
        assert conn is not None
        transport = StringTransport()
        conn.makeConnection(transport)
        self.write(
            listeners='[[listener]]\nendpoint = "tcp:8463:interface=127.0.0.1"\n',
            map="strict_testing = true",
        )
        events = self.reload()
        self.assertTrue(old_port.stopped)
        self.assertIn(8463, self.reactor.ports)
        self.assertIs(self.reactor.ports[8461][0], port_8461)
        self.assertFalse(port_8461.stopped)
        conn.dataReceived(socketmap_request("testing.example"))
        self.assertIn(b"OK secure", transport.value())
        self.assertFalse(transport.disconnecting)
        info = self.lines(events, LogLevel.info)
        self.assertIn("listener tcp:8463:interface=127.0.0.1 added", info[-1])
        self.assertIn("listener tcp:8462:interface=127.0.0.1 removed", info[-1])

    def test_restart_keys_warned_rest_applied(self) -> None:
        """A store path change cannot be applied: one warning line "X
        changed: restart to apply"; the other changes are applied."""
        self.write(store="/tmp/elsewhere.sqlite3", map="strict_testing = true")
        events = self.reload()
        warnings = self.lines(events, LogLevel.warn)
        self.assertEqual(warnings, ["store.path changed: restart to apply"])
        self.assertIs(self.ask().status, Status.OK)

    def test_bounds_timeouts_log_refresh_in_place(self) -> None:
        """Bounds, timeouts, log level and refresh settings reach the
        running parts: connection limit, cache size (trimmed at once),
        refresh concurrency, budget, the log observer, a new refresher."""
        refresher = self.daemon.refresher
        observer = self.switch.target
        self.write(
            extra="[server]\nmax_connections = 7\nlookup_budget = 3\n"
            "idle_timeout = 9\n[cache]\nmax_entries = 1\n"
            "[fetch]\nmax_in_flight = 3\n[log]\nlevel = 'debug'\n"
            "[refresh]\ninterval = 30\n"
        )
        self.daemon.lookup.admin.preload(
            [
                CacheEntry.fetched(
                    "b.example", "1", make_policy(), self.reactor.seconds()
                )
            ]
        )
        events = self.reload()
        factory = self.reactor.ports[8461][1]
        assert isinstance(factory, LookupFactory)
        self.assertEqual(factory.slots.limit, 7)
        self.assertEqual(factory.idle_timeout_s, 9)
        self.assertEqual(self.daemon.lookup.front_door.budget_s, 3)
        self.assertEqual(self.daemon.lookup.domains.sizes()["policies"], 1)  # type: ignore[union-attr]
        self.assertEqual(self.daemon.lookup.coordinator._max_in_flight, 3)  # type: ignore[union-attr]
        self.assertIsNot(self.switch.target, observer)
        self.assertIsNot(self.daemon.refresher, refresher)
        assert refresher is not None
        self.assertFalse(refresher.running)
        self.assertTrue(self.daemon.refresher.running)  # type: ignore[union-attr]
        self.assertEqual(self.lines(events, LogLevel.error), [])

    def test_new_network_for_new_fetches(self) -> None:
        """Each reload builds a new DNS and HTTPS client (the CA file read
        again) for the fetches that start after it (B3)."""
        dns = self.daemon.lookup.dns
        self.write(dns="timeout = 2")
        self.reload()
        self.assertIsNot(self.daemon.lookup.dns, dns)
        self.assertEqual(self.daemon.lookup.dns._timeout_s, 2)  # type: ignore[union-attr]

    def test_dane_auto_asked_again_and_reloads_queue(self) -> None:
        """A reload asks postconf again for ``dane = "auto"`` (D13, V6): its
        answer "dnssec" turns DANE precedence on, logged once.  A reload
        asked for while one waits for postconf runs after it, not beside."""
        etc = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, etc)
        with open(os.path.join(etc, "main.cf"), "w"):
            pass
        self.write(extra=f'[postfix]\nconfig_directory = "{etc}"\n')
        with open(self.path) as f:
            text = f.read().replace("dane = false", 'dane = "auto"')
        with open(self.path, "w") as f:
            f.write(text)
        self.reloader._postconf = "/usr/sbin/postconf"
        with capturedLogs() as events:
            self.assertIsNotNone(self.reloader.request())
            self.assertIsNone(self.reloader.request())  # queued behind it
            self.assertEqual(len(self.reactor.children), 1)
            self.assertEqual(self.reloader.reloads, 0)
            child = self.reactor.children.pop()
            child.outReceived(b"dnssec\n")
            child.processEnded(Failure(ProcessDone(0)))
            self.assertEqual(self.reloader.reloads, 1)
            self.assertEqual(len(self.reactor.children), 1)  # the second one
            child = self.reactor.children.pop()
            child.outReceived(b"dnssec\n")
            child.processEnded(Failure(ProcessDone(0)))
        self.assertEqual(self.reloader.reloads, 2)
        config = self.reloader.config
        assert config is not None
        self.assertTrue(config.map_named("postfix").dane_on)  # type: ignore[union-attr]
        infos = self.lines(list(events), LogLevel.info)
        self.assertEqual(len([x for x in infos if "DANE precedence on" in x]), 1)
        self.assertIn("maps.postfix.dane", infos[1])
        self.assertIn("nothing changed", infos[-1])

    def test_sighup_reloads_and_waits_for_start(self) -> None:
        """SIGHUP asks for a reload through the reactor; one that arrives
        before the daemon has started is served once it has."""
        previous = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, previous)
        early = Reloader(self.path, self.reactor)
        early.install()
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler)
        self.write(map="strict_testing = true")
        handler(signal.SIGHUP, None)  # before start: remembered
        self.assertEqual(early.reloads, 0)
        early.started(self.daemon, self.config)
        self.assertEqual(early.reloads, 1)
        self.assertIs(self.ask().status, Status.OK)


class _SizedStore(FakeStore):
    """A store with a bound of its own, as the SQLite file has."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def resize(self, max_entries: int) -> None:
        self.sizes.append(max_entries)


class StoreBoundTests(SynchronousTestCase):
    def test_max_entries_reaches_stores_with_a_bound(self) -> None:
        """A reload's max_entries reaches the stores that bound themselves
        (the SQLite file); others are left alone (E1)."""
        sized, plain = _SizedStore(), FakeStore()
        PolicySharing([sized, plain], MemoryReactorClock()).resize(7)
        self.assertEqual(sized.sizes, [7])
