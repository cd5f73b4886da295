"""Status and metrics across a SIGHUP reload (issue 11): the counts run on
from the same totals although a reload builds a new DNS client, fetcher
and resolver, and the listeners a reload adds or removes show at once.

The daemon is the real one (``start_daemon``) on test_reload's fake
reactor, here also answering DNS over fake UDP ports; HTTPS connections
are recorded and never answered, so each fetch ends in its timeout, on the
clock.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from typing import Any, cast

import dns.message
import dns.rdatatype
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.core.config import load
from postfix_mtasts.journal import ObserverSwitch
from postfix_mtasts.metrics import make_registry
from postfix_mtasts.reload import Reloader
from postfix_mtasts.service import Daemon, start_daemon

from .test_reload import CONFIG, FakeReactor
from .test_txt import FakeUdpPort, response

SECOND = '[[listener]]\nendpoint = "tcp:8462:interface=127.0.0.1"\n'


class DnsAnsweringReactor(FakeReactor):
    """test_reload's reactor, whose UDP ports record what the DNS client
    sends; :meth:`answer` replies to each question not yet answered."""

    def __init__(self) -> None:
        super().__init__()
        self.udp_ports: list[FakeUdpPort] = []
        self.answered = 0  # udp_ports answered so far, in order
        self.asked: Counter[str] = Counter()  # questions sent, by type

    def listenUDP(self, port: int, protocol: Any, *args: Any, **kw: Any) -> Any:
        udp_port = FakeUdpPort(protocol, kw.get("interface", ""))
        self.udp_ports.append(udp_port)
        protocol.makeConnection(udp_port)
        return udp_port

    def answer(self) -> None:
        """An MTA-STS record for every TXT question, an address for every
        A question, no data for AAAA; until nothing more is asked."""
        while self.answered < len(self.udp_ports):
            port = self.udp_ports[self.answered]
            self.answered += 1
            for datagram, source in list(port.sent):
                query = dns.message.from_wire(datagram)
                question = query.question[0]
                kind = dns.rdatatype.to_text(question.rdtype)
                self.asked[kind.lower()] += 1
                name = question.name.to_text()
                data = {"TXT": ['"v=STSv1; id=1;"'], "A": ["192.0.2.80"]}
                texts = data.get(kind, [])
                answer = [(name, kind, *texts)] if texts else []
                reply = response(query, *answer)
                port.protocol.datagramReceived(reply.to_wire(), source)


class ReloadStatsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = DnsAnsweringReactor()
        self.reactor.advance(1_000_000)
        fd, self.path = tempfile.mkstemp(suffix=".toml")
        os.close(fd)
        self.addCleanup(os.unlink, self.path)
        self.write(extra="[fetch]\ntimeout = 3\n[refresh]\nenabled = false\n")
        config = load(self.path)
        switch = ObserverSwitch(cast(ILogObserver, lambda event: None))
        self.reloader = Reloader(self.path, self.reactor, logging=switch)
        self.daemon: Daemon = self.successResultOf(
            Deferred.fromCoroutine(start_daemon(config, self.reactor))
        )
        self.addCleanup(self.daemon.stopService)
        self.reloader.started(self.daemon, config)

    def write(self, listeners: str = "", dns: str = "", extra: str = "") -> None:
        values = {"listeners": listeners, "map": "", "dns": dns, "store": ""}
        with open(self.path, "w") as f:
            f.write(CONFIG.format(**values, extra=extra))

    def discover(self, domain: str) -> None:
        """A lookup of a domain not cached: its discovery asks DNS (all
        answered) and starts a fetch that is never answered."""
        self.daemon.lookup.front_door.lookup("postfix", domain.encode())
        self.reactor.answer()

    def test_counts_run_on_across_a_reload(self) -> None:
        """A fetch started before a reload that changes the DNS and fetch
        settings, and one started after it through the new DNS client and
        fetcher: status and /metrics count both, with every DNS question
        sent, each discovery, and both fetch durations (3 s on the old
        fetcher, 4 s on the new one) (B1, A15)."""
        self.discover("a.example")
        before = self.daemon.lookup.dns
        self.write(dns="timeout = 2", extra="[fetch]\ntimeout = 4\n")
        self.reloader.request()
        self.assertEqual(self.reloader.config.fetch.timeout_s, 4)  # type: ignore[union-attr]
        self.assertIsNot(self.daemon.lookup.dns, before)
        self.reactor.advance(3)  # the fetch started before the reload ends
        self.discover("b.example")
        self.reactor.advance(4)
        snap = self.daemon.stats.snapshot()
        asked = self.reactor.asked
        self.assertEqual(set(asked), {"txt", "a", "aaaa"})
        self.assertEqual(asked["txt"], 2)
        self.assertEqual(snap.dns, {(kind, "noerror"): n for kind, n in asked.items()})
        self.assertEqual(snap.fetches, {"timeout": 2})
        self.assertEqual(snap.fetch_seconds_sum, 3 + 4)
        self.assertEqual(snap.discoveries, {"fetch_failed": 2})
        self.assertEqual(snap.lookups_total(), 2)
        status = self.daemon.stats.status()
        self.assertEqual(status["fetches"]["failed"], 2)
        self.assertEqual(status["lookups"]["total"], 2)
        text = make_registry(self.daemon.stats.snapshot).get_sample_value(
            "postfix_mtasts_dns_queries_total", {"type": "txt", "result": "noerror"}
        )
        self.assertEqual(text, 2)

    def test_listeners_follow_a_reload(self) -> None:
        """A listener a reload adds shows in status at once; one it removes
        is gone from it (G6)."""
        listening = [x["endpoint"] for x in self.daemon.stats.status()["listeners"]]
        self.assertEqual(listening, ["tcp:8461:interface=127.0.0.1"])
        self.write(listeners=SECOND)
        self.reloader.request()
        listening = [x["endpoint"] for x in self.daemon.stats.status()["listeners"]]
        self.assertEqual(
            listening, ["tcp:8461:interface=127.0.0.1", "tcp:8462:interface=127.0.0.1"]
        )
        self.write()
        self.reloader.request()
        listening = [x["endpoint"] for x in self.daemon.stats.status()["listeners"]]
        self.assertEqual(listening, ["tcp:8461:interface=127.0.0.1"])

    def test_metrics_endpoint_waits_for_a_restart(self) -> None:
        """[metrics] is bound once, at start: a reload that sets an
        endpoint binds nothing and says, in one warning line, that it
        needs a restart; the rest of the file is applied."""
        self.write(
            extra="[metrics]\nendpoint = 'tcp:9461:interface=127.0.0.1'\n"
            "[fetch]\ntimeout = 4\n"
        )
        with capturedLogs() as events:
            self.reloader.request()
        warnings = [formatEvent(e) for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(warnings, ["metrics.endpoint changed: restart to apply"])
        self.assertNotIn(9461, self.reactor.ports)
        self.assertEqual(self.reloader.config.fetch.timeout_s, 4)  # type: ignore[union-attr]
