"""The admin verbs never hold Postfix's lookups up (issue 11): their work
runs in slices of the control socket's cooperator, with the reactor free
between two; an import reads no further while a backlog waits (F4)."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.controlsocket import ControlFactory, ControlProtocol
from postfix_mtasts.core.answer import Answer, Status
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import Fetched, Timing
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.importsession import IMPORT_BACKLOG_BYTES
from postfix_mtasts.service import assemble_lookup
from postfix_mtasts.slicing import slicer

from .fakes import FakeResolver, make_policy

NOW = 1_000_000.0
STEPS = 10  # steps per slice in these tests
TURN_S = 0.001  # one turn after the other, each its own clock.advance()


def turn(clock: Clock) -> None:
    """One reactor turn: the next slice (or nothing, if none is due)."""
    clock.advance(TURN_S)


def turns(clock: Clock) -> int:
    """Run the slices one at a time until none is left; how many ran."""
    count = 0
    while any(
        call.getTime() <= clock.seconds() + TURN_S for call in clock.getDelayedCalls()
    ):
        turn(clock)
        count += 1
    return count


class SliceTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.resolver = FakeResolver()
        parts = assemble_lookup(
            self.resolver,
            self.clock,
            maps={"postfix": MapConfig()}.get,
            timing=Timing(3600, 300, 300),
            max_entries=5000,
            budget_s=15,
            max_in_flight=4,
        )
        self.admin, self.front_door = parts.admin, parts.front_door
        self.entry = CacheEntry.fetched("example.com", "id1", make_policy(), NOW)
        self.admin.preload([self.entry])
        # A turn ends after STEPS steps, whatever the time: deterministic.
        self.settled = 0
        self.factory = ControlFactory(
            self.admin,
            self.clock,
            cooperator=slicer(
                self.clock, max_steps=STEPS, timer=lambda: 0.0, turn_delay_s=TURN_S
            ),
            settle=self.count_settle,
        )

    def count_settle(self) -> None:
        self.settled += 1

    def connect(self) -> tuple[ControlProtocol, StringTransport]:
        proto = self.factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def entries(self, count: int, fetched_at: float = NOW) -> list[CacheEntry]:
        return [
            CacheEntry.fetched(f"d{i:04}.example", f"i{i}", make_policy(), fetched_at)
            for i in range(count)
        ]

    def lookup_now(self) -> Answer:
        """A Postfix lookup of a cached domain: answered at once."""
        answer = self.front_door.lookup("postfix", b"example.com")
        assert isinstance(answer, Answer)
        return answer


class ImportSliceTests(SliceTestCase):
    def test_lookup_answered_during_import(self) -> None:
        """An import of 200 entries sent in one piece is applied STEPS at a
        time, one slice per reactor turn: after the data arrives none is
        applied yet, a lookup arriving then is answered at once, and the
        import answers only after its 20 slices (issue 11; G14)."""
        proto, transport = self.connect()
        lines = [e.to_bytes() for e in self.entries(200)]
        proto.dataReceived(b"\n".join([b'{"cmd": "import"}', *lines, b"", b""]))
        self.assertIsNone(self.admin.peek("d0000.example"))
        self.assertEqual(self.lookup_now().status, Status.OK)
        turn(self.clock)  # one slice
        self.assertIsNotNone(self.admin.peek("d0009.example"))
        self.assertIsNone(self.admin.peek("d0010.example"))
        self.assertEqual(self.lookup_now().status, Status.OK)
        self.assertEqual(transport.value(), b"")
        self.assertGreaterEqual(turns(self.clock), 19)
        self.assertEqual(
            json.loads(transport.value()),
            {"ok": True, "imported": 200, "kept": 0, "rejected": 0},
        )
        self.assertIsNotNone(self.admin.peek("d0199.example"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.settled, 1)  # once, at the end (200 < SETTLE_EVERY)

    def test_backlog_pauses_reading(self) -> None:
        """While more than IMPORT_BACKLOG_BYTES of entry lines wait, the
        connection's reading is paused; it resumes once slices have applied
        them, so an import's memory is bounded whatever the sender (F4)."""
        proto, transport = self.connect()
        line = self.entry.to_bytes()
        count = IMPORT_BACKLOG_BYTES // len(line) + 50
        proto.dataReceived(b'{"cmd": "import"}\n' + (line + b"\n") * count)
        self.assertEqual(transport.producerState, "paused")
        turns(self.clock)
        self.assertEqual(transport.producerState, "producing")
        proto.dataReceived(b"\n")
        turns(self.clock)
        self.assertEqual(json.loads(transport.value())["imported"], count)

    def test_connection_lost_stops_the_import(self) -> None:
        """A connection lost in the middle stops the import at once: what was
        applied stays, nothing more is, no slice is left scheduled."""
        proto, _ = self.connect()
        lines = [e.to_bytes() for e in self.entries(100)]
        proto.dataReceived(b"\n".join([b'{"cmd": "import"}', *lines, b""]))
        turn(self.clock)
        proto.connectionLost()
        self.assertEqual(turns(self.clock), 0)
        self.assertIsNotNone(self.admin.peek("d0009.example"))
        self.assertIsNone(self.admin.peek("d0010.example"))


class AnswerSliceTests(SliceTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.admin.preload(self.entries(300))

    def answer(self, request: dict[str, Any]) -> tuple[bytes, int]:
        """The whole answer to ``request``, and the turns it took; a lookup
        is answered at once between any two turns."""
        proto, transport = self.connect()
        proto.dataReceived(json.dumps(request).encode() + b"\n")
        count = 0
        while not transport.disconnecting:
            self.assertEqual(self.lookup_now().status, Status.OK)
            turn(self.clock)
            count += 1
        return transport.value(), count

    def test_list_in_slices(self) -> None:
        """list of 301 entries is made a row a step: about 30 slices, with
        lookups answered between them; the rows are all there (issue 11)."""
        data, count = self.answer({"cmd": "list"})
        self.assertGreaterEqual(count, 30)
        self.assertEqual(len(json.loads(data)["entries"]), 301)

    def test_export_in_slices(self) -> None:
        """export of 301 entries likewise: an entry a step (issue 11)."""
        data, count = self.answer({"cmd": "export"})
        self.assertGreaterEqual(count, 30)
        self.assertEqual(len(data.splitlines()), 301)


class QueryVerbTests(SliceTestCase):
    def query(self, **request: Any) -> dict[str, Any]:
        proto, transport = self.connect()
        proto.dataReceived(json.dumps({"cmd": "query", **request}).encode() + b"\n")
        turns(self.clock)
        answer: dict[str, Any] = json.loads(transport.value())
        return answer

    def test_cached_answer(self) -> None:
        """query answers what Postfix hears for a key, through the front
        door, from the cache (no network), with the cached policy (issue 11,
        E2, G24)."""
        reply = self.query(key="EXAMPLE.com", map="postfix")
        report = reply["report"]
        self.assertEqual(
            (report["status"], report["reply"], report["domain"]),
            (
                "OK",
                "OK secure match=mx1.example.com servername=hostname",
                "example.com",
            ),
        )
        self.assertEqual(
            (report["policy"]["id"], report["policy"]["source"]), ("id1", "cache")
        )
        self.assertEqual(report["dane_precedence"]["on"], False)
        self.assertEqual(self.resolver.calls, [])

    def test_discovery_as_postfix_would(self) -> None:
        """A domain not cached is discovered as Postfix's lookup would have
        it, and the answer waits for it (E2, G14)."""
        proto, transport = self.connect()
        proto.dataReceived(b'{"cmd": "query", "key": "new.example"}\n')
        turns(self.clock)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.resolver.calls[0][0], "new.example")
        self.resolver.answer_last(Fetched("n1", make_policy(mx=("mx.new.example",))))
        turns(self.clock)
        report = json.loads(transport.value())["report"]
        self.assertEqual(
            report["reply"], "OK secure match=mx.new.example servername=hostname"
        )

    def test_not_a_domain_and_unknown_map(self) -> None:
        """A parent probe is NOTFOUND without any network (G11); an unknown
        map is PERM as Postfix would hear it (G.6); a key that is no string
        or over 10,000 bytes is an error."""
        report = self.query(key=".example.com")["report"]
        self.assertEqual((report["status"], report["policy"]), ("NOTFOUND", None))
        report = self.query(key="example.com", map="nosuchmap")["report"]
        self.assertEqual(report["reply"], "PERM unknown map name 'nosuchmap'")
        self.assertIsNone(report["dane_precedence"])
        self.assertFalse(self.query(key=7)["ok"])
        self.assertEqual(
            self.query(key="a" * 10_001),
            {"ok": False, "error": "key over 10000 bytes"},
        )
        self.assertEqual(self.resolver.calls, [])
