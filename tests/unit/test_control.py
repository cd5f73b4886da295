"""The admin control socket protocol (issue 4 admin verbs, spec E11; its
bounds, issue 9, as F9 bounds the Postfix side)."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from postfix_mtasts.control import MAX_LINE_BYTES
from postfix_mtasts.controlsocket import (
    DEADLINE_S,
    IDLE_TIMEOUT_S,
    MAX_CONNECTIONS,
    ControlFactory,
    ControlProtocol,
)
from postfix_mtasts.core.config import MapConfig
from postfix_mtasts.core.decision import Fetched, Timing
from postfix_mtasts.core.entry import CacheEntry
from postfix_mtasts.flowcontrol import REPLY_CHUNK_BYTES
from postfix_mtasts.service import assemble_lookup
from postfix_mtasts.slicing import TURN_GAP_S

from .fakes import FakeResolver, make_policy
from .test_protocols import SmallBufferTransport


def answer(transport: StringTransport) -> list[Any]:
    return [json.loads(x) for x in transport.value().splitlines()]


def pump(clock: Clock) -> None:
    """Run the admin work's turns, each TURN_GAP_S after the last, until
    none is due."""
    while any(
        call.getTime() <= clock.seconds() + TURN_GAP_S
        for call in clock.getDelayedCalls()
    ):
        clock.advance(TURN_GAP_S)


class ControlTestCase(SynchronousTestCase):
    max_entries = 100

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.resolver = FakeResolver()
        parts = assemble_lookup(
            self.resolver,
            self.clock,
            maps={"postfix": MapConfig()}.get,
            timing=Timing(3600, 300, 300),
            max_entries=self.max_entries,
            budget_s=15,
            max_in_flight=4,
        )
        self.service, self.front_door = parts.admin, parts.front_door
        self.entry = CacheEntry.fetched("example.com", "id1", make_policy(), 1_000_000)
        self.service.preload([self.entry])
        self.factory = ControlFactory(self.service, self.clock)

    def connect(
        self, transport: StringTransport | None = None
    ) -> tuple[ControlProtocol, StringTransport]:
        proto = self.factory.buildProtocol(None)
        transport = StringTransport() if transport is None else transport
        proto.makeConnection(transport)
        return proto, transport

    def send(self, request: object) -> tuple[list[Any], StringTransport]:
        proto, transport = self.connect()
        line = request if isinstance(request, bytes) else json.dumps(request).encode()
        proto.dataReceived(line + b"\n")
        pump(self.clock)
        proto.connectionLost()
        return answer(transport), transport


class CommandTests(ControlTestCase):
    def test_list(self) -> None:
        """list shows every cached domain with id, mode and expiry."""
        (reply,), transport = self.send({"cmd": "list"})
        self.assertTrue(reply["ok"])
        self.assertEqual([e["domain"] for e in reply["entries"]], ["example.com"])
        self.assertEqual(reply["entries"][0]["mode"], "enforce")
        self.assertTrue(transport.disconnecting)

    def test_show(self) -> None:
        """show gives the whole policy of one domain, keys normalised (G8)."""
        (reply,), _ = self.send({"cmd": "show", "domain": "EXAMPLE.com."})
        self.assertEqual(reply["entry"]["policy"][0], "version: STSv1")
        (missing,), _ = self.send({"cmd": "show", "domain": "other.example"})
        self.assertFalse(missing["ok"])

    def test_purge(self) -> None:
        """purge forgets a domain; the next lookup discovers it again (E11)."""
        (reply,), _ = self.send({"cmd": "purge", "domain": "example.com"})
        self.assertEqual(reply, {"ok": True, "purged": True})
        self.front_door.lookup("postfix", b"example.com")
        self.assertEqual(len(self.resolver.calls), 1)

    def test_refresh(self) -> None:
        """refresh fetches now and answers with the new entry (E11); the
        idle timeout does not cut the wait short."""
        proto, transport = self.connect()
        proto.dataReceived(b'{"cmd": "refresh", "domain": "example.com"}\n')
        self.clock.advance(IDLE_TIMEOUT_S * 3)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.assertIsNone(self.resolver.calls[0][1])
        self.resolver.answer_last(Fetched("id2", make_policy()))
        pump(self.clock)
        reply = json.loads(transport.value())
        self.assertEqual(reply["entry"]["id"], "id2")
        self.assertTrue(transport.disconnecting)

    def test_export_import_round_trip(self) -> None:
        """export writes entries that import, streamed one per line after
        its request line and ended by an empty line, accepts unchanged."""
        _, transport = self.send({"cmd": "export"})
        exported = transport.value().splitlines()
        self.assertEqual(len(exported), 1)
        self.service.purge("example.com")
        _, transport = self.send(
            b"\n".join([b'{"cmd": "import"}', *exported, b'{"v": 9}', b""])
        )
        self.assertEqual(
            answer(transport),
            [{"ok": True, "imported": 1, "kept": 0, "rejected": 1}],
        )
        self.assertEqual(self.service.peek("example.com"), self.entry)

    def test_import_applies_entries_as_they_arrive(self) -> None:
        """Each entry is applied when its line is complete, whatever the
        chunking; nothing is answered before the empty line, and a
        connection lost before it keeps what was applied, with a warning."""
        other = CacheEntry.fetched("other.example", "o1", make_policy(), 1_000_000)
        data = b'{"cmd": "import"}\n' + other.to_bytes() + b"\n"
        for size in (1, 7, len(data)):
            self.service.purge("other.example")
            proto, transport = self.connect()
            for start in range(0, len(data), size):
                proto.dataReceived(data[start : start + size])
            pump(self.clock)
            self.assertEqual(self.service.peek("other.example"), other)
            self.assertEqual(transport.value(), b"")
            with capturedLogs() as events:
                proto.connectionLost()
            self.assertEqual([e["imported"] for e in events], [1])

    def test_inline_import_refused(self) -> None:
        """The old one-line import, a list of entries inside the request, is
        refused with a message saying how to send them (issue 9)."""
        (reply,), _ = self.send({"cmd": "import", "entries": []})
        self.assertFalse(reply["ok"])
        self.assertIn("one per line", reply["error"])

    def test_bad_requests(self) -> None:
        """Garbage, unknown commands and non-domains get an error, never a crash."""
        for request in (
            b"not json",
            {"nocmd": 1},
            {"cmd": "rm -rf"},
            {"cmd": "show", "domain": "10.0.0.1"},
        ):
            (reply,), transport = self.send(request)
            self.assertFalse(reply["ok"])
            self.assertTrue(transport.disconnecting)


class BoundTests(ControlTestCase):
    def test_line_bound(self) -> None:
        """A line over MAX_LINE_BYTES is refused as soon as it is seen, not
        buffered to its end: an error answer, the close (issue 9, F4)."""
        proto, transport = self.connect()
        chunk = b"x" * 4096
        sent = 0
        while not transport.value() and sent < 2 * MAX_LINE_BYTES:
            proto.dataReceived(chunk)
            pump(self.clock)
            sent += len(chunk)
        self.assertLessEqual(sent, MAX_LINE_BYTES + len(chunk))
        self.assertEqual(
            answer(transport),
            [{"ok": False, "error": f"line over {MAX_LINE_BYTES} bytes"}],
        )
        self.assertTrue(transport.disconnecting)
        proto.dataReceived(chunk)  # ignored

    def test_import_line_bound(self) -> None:
        """The bound holds for every entry line of an import; the entries
        before the long one stay applied."""
        proto, transport = self.connect()
        proto.dataReceived(b'{"cmd": "import"}\n' + self.entry.to_bytes() + b"\n")
        proto.dataReceived(b"y" * (MAX_LINE_BYTES + 1))
        pump(self.clock)
        self.assertFalse(answer(transport)[0]["ok"])
        self.assertEqual(self.factory.connections, 1)
        proto.connectionLost()
        self.assertEqual(self.factory.connections, 0)

    def test_connection_cap(self) -> None:
        """At most MAX_CONNECTIONS at once: one more is answered busy and
        closed; a burst of refusals is two log lines; a slot freed is used
        again (issue 9)."""
        held = [self.connect() for _ in range(MAX_CONNECTIONS)]
        with capturedLogs() as events:
            for _ in range(100):
                _, refused = self.connect()
            pump(self.clock)
            self.clock.advance(60)
        self.assertEqual(
            answer(refused),
            [{"ok": False, "error": "busy: 8 control connections are open"}],
        )
        self.assertTrue(refused.disconnecting)
        refusals = [e for e in events if "limit" in e or "count" in e]
        self.assertEqual(len(refusals), 2)
        self.assertEqual(refusals[1]["count"], 99)
        held[0][0].connectionLost()
        proto, transport = self.connect()
        proto.dataReceived(b'{"cmd": "list"}\n')
        pump(self.clock)
        self.assertTrue(answer(transport)[0]["ok"])

    def test_idle_timeout(self) -> None:
        """A connection that sends nothing while a line is expected gets an
        error answer after one idle period, then the close; bytes keep it
        (issue 9)."""
        _, silent = self.connect()
        self.clock.advance(IDLE_TIMEOUT_S)
        pump(self.clock)
        self.assertTrue(silent.disconnecting)
        proto, transport = self.connect()
        self.clock.advance(IDLE_TIMEOUT_S - 1)
        proto.dataReceived(b'{"cmd": "import"}\n')
        self.clock.advance(IDLE_TIMEOUT_S - 1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(IDLE_TIMEOUT_S)
        pump(self.clock)
        self.assertEqual(
            answer(transport), [{"ok": False, "error": f"idle for {IDLE_TIMEOUT_S}s"}]
        )
        self.assertTrue(transport.disconnecting)

    def test_deadline(self) -> None:
        """A connection that trickles bytes is not idle, but is aborted at
        the deadline with one warning (issue 9)."""
        proto, transport = self.connect()
        with capturedLogs() as events:
            for _ in range(int(DEADLINE_S / (IDLE_TIMEOUT_S / 2))):
                proto.dataReceived(b" ")
                self.clock.advance(IDLE_TIMEOUT_S / 2)
        self.assertTrue(transport.disconnected)
        self.assertEqual([e["why"] for e in events], ["open too long"])
        proto.connectionLost()
        self.assertEqual(self.factory.connections, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LongAnswerTests(ControlTestCase):
    max_entries = 3000

    def setUp(self) -> None:
        super().setUp()
        self.service.preload(
            CacheEntry.fetched(f"d{i:04}.example", "1", make_policy(), 1_000_000)
            for i in range(2000)
        )

    def test_list_written_as_it_is_read(self) -> None:
        """A list of 2,000 entries is written a chunk at a time while the
        reader takes it: the buffer never holds much more than one chunk,
        and the whole is the one JSON line it always was (issue 9)."""
        transport = SmallBufferTransport(REPLY_CHUNK_BYTES)
        proto, _ = self.connect(transport)
        proto.dataReceived(b'{"cmd": "list"}\n')
        reads = 0
        while not transport.disconnecting:
            pump(self.clock)
            self.assertLessEqual(len(transport.value()), 2 * REPLY_CHUNK_BYTES)
            transport.read()
            reads += 1
        transport.read()
        self.assertGreater(reads, 3)
        reply = json.loads(transport.received)
        self.assertEqual(len(reply["entries"]), 2001)
        self.assertEqual(
            {e["domain"] for e in reply["entries"]},
            {"example.com"} | {f"d{i:04}.example" for i in range(2000)},
        )

    def test_unread_answer_aborted(self) -> None:
        """A reader that takes none of a long answer for a whole idle period
        is aborted, so the answer is not held for ever (issue 9)."""
        transport = SmallBufferTransport(REPLY_CHUNK_BYTES)
        proto, _ = self.connect(transport)
        proto.dataReceived(b'{"cmd": "export"}\n')
        pump(self.clock)
        self.clock.advance(IDLE_TIMEOUT_S)
        self.assertFalse(transport.disconnected)
        transport.read()
        pump(self.clock)
        self.clock.advance(IDLE_TIMEOUT_S)
        self.assertFalse(transport.disconnected)
        with capturedLogs() as events:
            self.clock.advance(IDLE_TIMEOUT_S)
        self.assertTrue(transport.disconnected)
        self.assertEqual([e["why"] for e in events], ["answer unread"])

    def test_failing_answer_ends_the_connection(self) -> None:
        """A bug while an answer is made is logged and the connection
        closed with what was written, never left open."""

        def broken(domain: str) -> CacheEntry | None:
            raise RuntimeError("bug")

        self.service.peek = broken  # type: ignore[method-assign]
        _, transport = self.send({"cmd": "export"})
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class FailedDeferredTests(ControlTestCase):
    def test_failed_command_deferred(self) -> None:
        """A command whose Deferred fails (a bug after a refresh) answers an
        internal error and closes."""
        d: Deferred[CacheEntry | None] = Deferred()

        def refresh(
            domain: str, *, force_fetch: bool = False, facts_only: bool = False
        ) -> Deferred[CacheEntry | None]:
            return d

        def broken(domain: str) -> CacheEntry | None:
            raise RuntimeError("bug")

        self.service.refresh_in_background = refresh  # type: ignore[method-assign]

        proto, transport = self.connect()
        proto.dataReceived(b'{"cmd": "refresh", "domain": "example.com"}\n')
        self.service.peek = broken  # type: ignore[method-assign]
        d.callback(None)
        pump(self.clock)
        self.assertEqual(
            answer(transport),
            [{"ok": False, "error": "internal error, see the daemon's log"}],
        )
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
