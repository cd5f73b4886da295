"""DaemonStats reads the counters of the daemon's parts into one snapshot;
the ``status`` control command and ``postfix-mtasts status`` show it; the
error ring keeps the last warnings (issue 11, point 3)."""

from __future__ import annotations

import json
from collections import Counter

from twisted.application.service import MultiService, Service
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.cli.status import format_status
from postfix_mtasts.connections import LookupFactory
from postfix_mtasts.control import AdminCommands
from postfix_mtasts.core.answer import Answer, TlsPolicyValue
from postfix_mtasts.core.config import ListenerConfig
from postfix_mtasts.core.tally import (
    CACHE_HIT,
    CACHE_MISS,
    LookupTally,
    NetworkCounts,
)
from postfix_mtasts.protocols import SocketmapProtocol
from postfix_mtasts.stats import MAX_ERRORS_KEPT, DaemonStats, ErrorRing

SECURE = Answer.ok(TlsPolicyValue("secure", ("mx.example",), "hostname"))


class FakeBacklog:
    def pending(self) -> int:
        return 3


class FakeModes:
    def modes(self) -> dict[str, int]:
        return {"enforce": 2, "testing": 1}


class FakeStore:
    def __init__(self, kind: str, up: bool, errors: int) -> None:
        self.kind, self.up, self.errors = kind, up, errors


class FakeListener(Service):
    """A listener service as the daemon's tree holds it."""

    def __init__(self, endpoint: str, connections: int) -> None:
        self.listener = ListenerConfig(endpoint=endpoint)
        self.factory = LookupFactory(
            SocketmapProtocol,
            lambda *a: SECURE,
            Clock(),
            max_connections=10,
            idle_timeout_s=60,
        )
        for _ in range(connections):
            self.factory.slots.admit(SocketmapProtocol())


class StatsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.tally = LookupTally()
        services = MultiService()
        FakeListener("tcp:8461:interface=127.0.0.1", 2).setServiceParent(services)
        nested = MultiService()
        nested.setServiceParent(services)
        FakeListener("unix:/run/x.sock", 0).setServiceParent(nested)
        network = NetworkCounts(
            dns=Counter({("txt", "noerror"): 9}),
            fetches=Counter({"ok": 4, "timeout": 1}),
            discoveries=Counter({"fetched": 2}),
        )
        self.stats = DaemonStats(
            self.clock,
            tally=self.tally,
            policies=FakeModes(),
            backlog=FakeBacklog(),
            network=network,
            stores=(FakeStore("sqlite", True, 0), FakeStore("redis", False, 5)),
            services=services,
            version="1.2.3",
        )

    def test_snapshot_reads_every_part(self) -> None:
        """Each figure comes from the part that counts it, at snapshot time."""
        self.tally.count("postfix", SECURE, CACHE_HIT)
        self.clock.advance(90)
        snap = self.stats.snapshot()
        self.assertEqual(snap.now - snap.started_at, 90)
        self.assertEqual(snap.lookups, ((("postfix", "OK", "secure", "hit"), 1),))
        self.assertEqual(snap.policies, {"enforce": 2, "testing": 1})
        self.assertEqual(snap.fetches, {"ok": 4, "timeout": 1})
        self.assertEqual(snap.dns, {("txt", "noerror"): 9})
        self.assertEqual(snap.discoveries, {"fetched": 2})
        self.assertEqual(snap.refresh_pending, 3)
        self.assertEqual(snap.tls_reports, {})
        self.stats.tls_reports = {"stored": 2}  # as the report receiver counts
        self.assertEqual(self.stats.snapshot().tls_reports, {"stored": 2})
        self.assertEqual(
            [(s.kind, s.up, s.errors) for s in snap.stores],
            [("sqlite", True, 0), ("redis", False, 5)],
        )
        self.assertEqual(
            [(x.endpoint, x.connections) for x in snap.listeners],
            [("tcp:8461:interface=127.0.0.1", 2), ("unix:/run/x.sock", 0)],
        )

    def test_status_data(self) -> None:
        """status: uptime, version, policies, lookups by answer with hits
        and misses, fetches ok and failed, stores, listeners."""
        for _ in range(5):
            self.tally.count("postfix", SECURE, CACHE_HIT)
        self.tally.count("postfix", Answer.notfound(), CACHE_MISS)
        self.clock.advance(3725)
        status = self.stats.status()
        json.dumps(status)  # plain JSON data
        self.assertEqual(status["version"], "1.2.3")
        self.assertEqual(status["uptime_s"], 3725)
        self.assertEqual(
            status["lookups"],
            {
                "total": 6,
                "cache_hits": 5,
                "cache_misses": 1,
                "by_answer": {"postfix": {"NOTFOUND": 1, "OK secure": 5}},
            },
        )
        self.assertEqual((status["fetches"]["ok"], status["fetches"]["failed"]), (4, 1))
        text = format_status(status)
        self.assertIn("up 1h 2m 5s", text)
        self.assertIn("map postfix: NOTFOUND 1, OK secure 5", text)
        self.assertIn("fetches: 4 ok, 1 failed (timeout 1)", text)
        self.assertIn("redis DOWN (5 errors)", text)
        self.assertIn("tcp:8461:interface=127.0.0.1 socketmap: 2 connections", text)

    def test_control_status_command(self) -> None:
        """The control socket's status command answers one JSON line with
        the daemon's status; without a daemon (the store file) it says so."""
        commands = AdminCommands(None, status=self.stats.status)  # type: ignore[arg-type]
        reply = json.loads(b"".join(commands.run(b'{"cmd": "status"}')))  # type: ignore[arg-type]
        self.assertTrue(reply["ok"])
        self.assertEqual(reply["status"]["version"], "1.2.3")
        offline = AdminCommands(None)  # type: ignore[arg-type]
        reply = json.loads(b"".join(offline.run(b'{"cmd": "status"}')))  # type: ignore[arg-type]
        self.assertEqual(
            reply, {"ok": False, "error": "status needs the running daemon"}
        )


class ErrorRingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ring = ErrorRing()
        publisher = LogPublisher(self.ring)  # type: ignore[arg-type]
        self.log = Logger(namespace="test", observer=publisher)

    def test_keeps_last_warnings_and_errors(self) -> None:
        """Only warnings and errors are kept, the last MAX_ERRORS_KEPT, the
        newest last; every one is counted by level."""
        self.log.info("not kept")
        for i in range(MAX_ERRORS_KEPT + 5):
            self.log.warn("warning {i}", i=i)
        self.log.error("broken {what}", what="store")
        self.assertEqual(len(self.ring.events), MAX_ERRORS_KEPT)
        self.assertEqual(self.ring.events[-1].text, "broken store")
        self.assertEqual(self.ring.events[-1].level, "error")
        self.assertEqual(self.ring.events[0].text, "warning 6")
        self.assertEqual(dict(self.ring.counts), {"warn": 15, "error": 1})

    def test_long_text_cut_to_one_line(self) -> None:
        """A long, multi-line message (peer input quoted) is kept short, on
        one line."""
        self.log.warn("{text}", text="a\n" * 1000)
        kept = self.ring.events[0].text
        self.assertLessEqual(len(kept), 310)
        self.assertNotIn("\n", kept)

    def test_failure_named(self) -> None:
        """A logged failure (a bug) keeps its exception type and message."""
        try:
            raise KeyError("lost")
        except KeyError:
            self.log.failure("bug in {part}", part="x", level=LogLevel.error)
        self.assertIn("bug in x: KeyError: 'lost'", self.ring.events[0].text)
